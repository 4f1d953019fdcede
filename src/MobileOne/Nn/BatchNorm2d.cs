using MobileOne.Kernels;
using MobileOne.Tensors;

namespace MobileOne.Nn;

/// <summary>BatchNorm2d with PyTorch's defaults: eps 1e-5, momentum 0.1, affine, tracked running statistics.</summary>
public sealed class BatchNorm2d : Module
{
    public const float DefaultEps = 1e-5f;
    public const float DefaultMomentum = 0.1f;

    public BatchNorm2d(int channels)
    {
        Channels = channels;
        Weight = new Parameter(Tensor.Full(1f, channels));
        Bias = new Parameter(new Tensor(channels));
        RunningMean = new Tensor(channels);
        RunningVar = Tensor.Full(1f, channels);
        NumBatchesTracked = new Tensor([], [0f]);
    }

    public int Channels { get; }

    public float Eps { get; init; } = DefaultEps;

    public float Momentum { get; init; } = DefaultMomentum;

    public Parameter Weight { get; }

    public Parameter Bias { get; }

    public Tensor RunningMean { get; }

    public Tensor RunningVar { get; }

    public Tensor NumBatchesTracked { get; }

    /// <summary>Eval-mode normalization with the running statistics.</summary>
    public Tensor Forward(Tensor input)
    {
        Shapes.RequireNchw(input, Channels, "BatchNorm input");
        var output = new Tensor(input.Shape);
        BatchNorm.ForwardInference(
            input.Data, output.Data, input.Dim(0), Channels, input.Dim(2) * input.Dim(3),
            Weight.Value.Data, Bias.Value.Data, RunningMean.Data, RunningVar.Data, Eps);
        return output;
    }

    public override IEnumerable<StateEntry> State(string prefix = "")
    {
        yield return new StateEntry(prefix + "weight", Weight.Value, StateKind.Parameter);
        yield return new StateEntry(prefix + "bias", Bias.Value, StateKind.Parameter);
        yield return new StateEntry(prefix + "running_mean", RunningMean, StateKind.Buffer);
        yield return new StateEntry(prefix + "running_var", RunningVar, StateKind.Buffer);
        yield return new StateEntry(prefix + "num_batches_tracked", NumBatchesTracked, StateKind.Counter);
    }
}
