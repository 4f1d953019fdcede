using MobileOne.Models;
using MobileOne.Nn;
using MobileOne.Tensors;

namespace MobileOne.Training;

/// <summary>What one training step produced.</summary>
/// <param name="Loss">Mean loss over the batch (before the update).</param>
/// <param name="Logits">The logits of the forward pass, owned by the network until its next forward.</param>
/// <param name="GradientNorm">Global gradient norm before clipping, when clipping is on.</param>
/// <param name="LearningRate">Learning rate used for this step.</param>
/// <param name="WeightDecay">Weight decay used for this step (decayed groups).</param>
/// <param name="Penalties">The branch penalties before the update, unweighted (each 0 when its weight is 0 or there is no <see cref="TrainStep.Regularization"/>); the loss minimized is Loss + the weighted penalties.</param>
public readonly record struct TrainStepResult(double Loss, Tensor Logits, double? GradientNorm, double LearningRate, double WeightDecay, BranchPenalties Penalties = default);

/// <summary>
/// One optimizer step of a train-time network, in timm's train.py order: zero the gradients, set the step's learning
/// rate and weight decay from the schedules, forward in training mode, loss, backward, the branch penalties' gradients
/// (when <see cref="Regularization"/> is set), optional global-norm clipping, optimizer step, EMA update.
/// </summary>
public sealed class TrainStep
{
    /// <summary>A step that trains <paramref name="model"/> with <paramref name="optimizer"/> (built over the model's parameters) against <paramref name="loss"/>.</summary>
    public TrainStep(ClassifierNetwork model, Optimizer optimizer, CrossEntropyLoss loss)
    {
        Model = model ?? throw new ArgumentNullException(nameof(model));
        Optimizer = optimizer ?? throw new ArgumentNullException(nameof(optimizer));
        Loss = loss ?? throw new ArgumentNullException(nameof(loss));
    }

    /// <summary>The train-time network; each <see cref="Run(Tensor, ReadOnlySpan{int})"/> runs it in training mode and updates its parameters in place.</summary>
    public ClassifierNetwork Model { get; }

    /// <summary>The optimizer whose <see cref="Optimizer.Step"/> ends every step; its <see cref="Optimizer.StepCount"/> indexes the schedules.</summary>
    public Optimizer Optimizer { get; }

    /// <summary>The classification loss (label smoothing included) the step minimizes.</summary>
    public CrossEntropyLoss Loss { get; }

    /// <summary>Learning rate per optimizer step (indexed by <see cref="Optimizer.StepCount"/>); null keeps the groups' rates.</summary>
    public CosineSchedule? LearningRateSchedule { get; init; }

    /// <summary>Weight decay per optimizer step for the decayed groups; null keeps the groups' values.</summary>
    public CosineSchedule? WeightDecaySchedule { get; init; }

    /// <summary>Clip gradients to this global L2 norm; null disables clipping.</summary>
    public double? ClipGradientNorm { get; init; }

    /// <summary>The EMA moved toward <see cref="Model"/> after every optimizer step (with its warm-up, indexed by <see cref="Optimizer.StepCount"/>, when <see cref="ModelEma.Warmup"/>); null for none.</summary>
    public ModelEma? Ema { get; init; }

    /// <summary>Orthogonality and branch-diversity penalties added to the loss (their gradients before clipping); null for none.</summary>
    public BranchRegularization? Regularization { get; init; }

    /// <summary>One step on a batch of NCHW <paramref name="images"/> [N, C, H, W] with one class label per image in <paramref name="labels"/>.</summary>
    public TrainStepResult Run(Tensor images, ReadOnlySpan<int> labels)
    {
        Prepare();
        var logits = Model.Forward(images);
        double loss = Loss.Forward(logits, labels);
        return Finish(logits, loss);
    }

    /// <summary>A step with soft targets [N, classes] (mixup / cutmix).</summary>
    public TrainStepResult Run(Tensor images, Tensor targets)
    {
        Prepare();
        var logits = Model.Forward(images);
        double loss = Loss.Forward(logits, targets);
        return Finish(logits, loss);
    }

    private void Prepare()
    {
        if (!Model.Training)
        {
            Model.Train();
        }

        using (OpProfile.Measure("step", "zero-grad"))
        {
            Optimizer.ZeroGrad();
        }

        long step = Optimizer.StepCount;
        if (LearningRateSchedule is not null)
        {
            Optimizer.SetLearningRate(LearningRateSchedule.ValueAt(step));
        }

        if (WeightDecaySchedule is not null)
        {
            Optimizer.SetWeightDecay(WeightDecaySchedule.ValueAt(step));
        }
    }

    private TrainStepResult Finish(Tensor logits, double loss)
    {
        Tensor gradLogits;
        using (OpProfile.Measure("step", "loss backward"))
        {
            gradLogits = Loss.Backward();
        }

        Model.Backward(gradLogits);
        var penalties = Regularization is { IsActive: true } r ? r.AddGradients(Model) : default;
        double? norm = ClipGradientNorm is double max ? GradientClipping.ClipByGlobalNorm(Model, max) : null;
        var decayed = Optimizer.Groups.FirstOrDefault(g => !g.ExemptFromWeightDecay) ?? Optimizer.Groups[0];
        double lr = decayed.LearningRate, wd = decayed.WeightDecay;
        using (OpProfile.Measure("step", "optimizer"))
        {
            Optimizer.Step();
        }

        using (OpProfile.Measure("step", "ema"))
        {
            if (Ema is { Warmup: true } ema)
            {
                // timm's train.py: model_ema.update(model, step=num_updates), num_updates counting this step.
                ema.Update(Model, Optimizer.StepCount);
            }
            else
            {
                Ema?.Update(Model);
            }
        }

        return new TrainStepResult(loss, logits, norm, lr, wd, penalties);
    }
}
