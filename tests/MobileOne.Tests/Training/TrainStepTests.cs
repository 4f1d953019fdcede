using MobileOne.Kernels;
using MobileOne.Models;
using MobileOne.Tensors;
using MobileOne.Tests.Nn;
using MobileOne.Training;

namespace MobileOne.Tests.Training;

/// <summary>Whole training steps: schedules applied per step, clipping, EMA, and bit-for-bit reproducibility.</summary>
[Collection(KernelSettingsCollection.Name)]
public class TrainStepTests
{
    private static readonly MobileOneConfig Tiny = MobileOneConfig.Parse("units=1/2/1/1,widths=0.25/0.25/0.25/0.25,k=2,se=0/0/1/1,classes=6");

    [Fact]
    public void Steps_use_the_scheduled_learning_rate_and_weight_decay()
    {
        var (network, images, labels) = Setup(1);
        var optimizer = new Sgd(ParameterGroups.WeightDecaySplit(network, 0.1, 1e-4));
        var lr = new CosineSchedule(0.1, 0.001, cycleSteps: 10, warmupSteps: 2, warmupInitValue: 0.01);
        var wd = CosineSchedule.WeightDecayAnnealing(10);
        var ema = new ModelEma(network, 0.5);
        var step = new TrainStep(network, optimizer, new CrossEntropyLoss(0.1)) { LearningRateSchedule = lr, WeightDecaySchedule = wd, ClipGradientNorm = 5.0, Ema = ema };
        for (int i = 0; i < 3; i++)
        {
            var r = step.Run(images, labels);
            Assert.Equal(lr.ValueAt(i), r.LearningRate, 15);
            Assert.Equal(wd.ValueAt(i), r.WeightDecay, 15);
            Assert.NotNull(r.GradientNorm);
            Assert.True(double.IsFinite(r.Loss));
            Assert.Equal(0.0, optimizer.Groups[0].WeightDecay);
        }

        Assert.Equal(3, optimizer.StepCount);
        Assert.Equal(3, ema.Updates);
    }

    [Fact]
    public void Training_loss_decreases_on_a_fixed_batch()
    {
        var (network, images, labels) = Setup(2);
        var step = new TrainStep(network, new Sgd(ParameterGroups.WeightDecaySplit(network, 0.05, 1e-4)), new CrossEntropyLoss());
        double first = step.Run(images, labels).Loss, last = first;
        for (int i = 0; i < 15; i++)
        {
            last = step.Run(images, labels).Loss;
        }

        Assert.True(last < first * 0.5, $"loss {first} -> {last}");
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void Same_seed_and_thread_count_reproduce_a_run_bit_for_bit(int threads)
    {
        ComputeThreads.Count = threads;
        try
        {
            var a = Run();
            var b = Run();
            Assert.Equal(a.Losses, b.Losses);
            Assert.Equal(a.State.Count, b.State.Count);
            for (int i = 0; i < a.State.Count; i++)
            {
                Assert.Equal(a.State[i], b.State[i]);
            }
        }
        finally
        {
            ComputeThreads.Count = Environment.ProcessorCount;
        }

        static (List<double> Losses, List<float[]> State) Run()
        {
            var (network, images, labels) = Setup(3, batch: 8, size: 32);
            var step = new TrainStep(network, new AdamW(ParameterGroups.WeightDecaySplit(network, 1e-3, 0.05)), new CrossEntropyLoss(0.1));
            var losses = Enumerable.Range(0, 3).Select(_ => step.Run(images, labels).Loss).ToList();
            return (losses, network.State().Select(e => (float[])e.Value.Data.Clone()).ToList());
        }
    }

    [Fact]
    public void Batch_size_can_change_between_steps()
    {
        var (network, images, labels) = Setup(5, batch: 6);
        var (fresh, _, _) = Setup(5, batch: 6);
        var small = new Tensor(4, 3, 24, 24);
        images.Data.AsSpan(0, small.Length).CopyTo(small.Data);
        var loss = new CrossEntropyLoss(0.1);
        network.Train();
        fresh.Train();
        network.Forward(images);
        var a = network.Forward(small).Data.ToArray();
        var b = fresh.Forward(small).Data.ToArray();
        Assert.Equal(b, a);
        loss.Forward(network.Forward(small), labels.AsSpan(0, 4));
        network.ZeroGrad();
        network.Backward(loss.Backward());
        loss.Forward(fresh.Forward(small), labels.AsSpan(0, 4));
        fresh.ZeroGrad();
        fresh.Backward(loss.Backward());
        foreach (var (x, y) in network.NamedParameters().Zip(fresh.NamedParameters()))
        {
            Assert.Equal(y.Parameter.Grad!.Data, x.Parameter.Grad!.Data);
        }

        Assert.Equal(6, network.Forward(images).Dim(0));
    }

    [Fact]
    public void Train_and_eval_modes_switch_batchnorm_statistics()
    {
        var (network, images, _) = Setup(4);
        var eval = network.Forward(images).Data.ToArray();
        network.Train();
        var train = network.Forward(images).Data.ToArray();
        Assert.True(network.Training && network.Stages[0][0].ConvKxk[0].Bn.Training);
        Assert.NotEqual(eval, train);
        network.Eval();
        Assert.False(network.GradEnabled || network.Stem.ConvKxk[0].Bn.GradEnabled);
        Assert.Equal(1f, network.Stem.ConvKxk[0].Bn.NumBatchesTracked.Data[0]);
    }

    private static (MobileOneNetwork Network, Tensor Images, int[] Labels) Setup(int seed, int batch = 6, int size = 24)
    {
        var network = MobileOneNetwork.Create(Tiny);
        WeightInit.Initialize(network, seed);
        var rng = new Random(seed);
        var images = new Tensor(batch, 3, size, size);
        WeightInit.FillNormal(rng, images.Data, 0, 1);
        var labels = Enumerable.Range(0, batch).Select(_ => rng.Next(Tiny.NumClasses)).ToArray();
        return (network, images, labels);
    }
}
