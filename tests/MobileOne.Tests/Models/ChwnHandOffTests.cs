using MobileOne.Kernels;
using MobileOne.Models;
using MobileOne.Tensors;
using MobileOne.Tests.Nn;

namespace MobileOne.Tests.Models;

/// <summary>
/// Between blocks whose training passes both work in CHWN the network hands the activations (and their gradients) on
/// in that layout instead of NCHW (<see cref="MobileOneNetwork"/>). That is only a change of where values lie: the
/// logits, every gradient, the input gradient and every running statistic equal those of the all-NCHW network bit
/// for bit, step after step.
/// </summary>
[Collection(KernelSettingsCollection.Name)]
public sealed class ChwnHandOffTests
{
    [Theory]
    // Batch 32 at 32x32: depthwise blocks on 4x4 and 2x2 planes in lanes (stride 1 and 2), pointwise moment passes on
    // 4x4 and 2x2, stacked 1x1 products on channel rows at 1x1; SE in the last stage keeps NCHW there.
    [InlineData("units=2/3/3/2,widths=0.25/0.25/0.25/0.25,k=4,classes=10", 32, 32, 1)]
    [InlineData("units=1/2/3/1,widths=0.25/0.25/0.5/0.5,k=2,se=0/0/0/1,classes=10", 16, 32, 2)]
    // 16 images on 16x16 inputs: 2x2 then 1x1 last stages, and the rows products where channels outnumber pixels.
    [InlineData("units=1/2/2/1,widths=0.25/0.25/1/1,k=3,classes=7", 16, 16, 1)]
    public void Chwn_hand_offs_change_no_bit_of_a_training_step(string spec, int batch, int size, int threads)
    {
        int saved = ComputeThreads.Count;
        ComputeThreads.Count = threads;
        try
        {
            var config = MobileOneConfig.Parse(spec);
            var nchw = MobileOneNetwork.Create(config);
            WeightInit.Initialize(nchw, 3);
            WeightInit.RandomizeBatchNorm(nchw, 4);
            var chwn = MobileOneNetwork.Create(config);
            chwn.CopyStateFrom(nchw);
            nchw.Train();
            chwn.Train();
            var rng = new Random(5);
            for (int step = 0; step < 2; step++)
            {
                var x = new Tensor(batch, 3, size, size);
                WeightInit.FillNormal(rng, x.Data, 0.5, 1);
                var dLogits = new Tensor(batch, config.NumClasses);
                WeightInit.FillNormal(rng, dLogits.Data, 0, 0.1);

                var (logits1, dx1) = Step(nchw, x, dLogits, handOff: false);
                var (logits2, dx2) = Step(chwn, x, dLogits, handOff: true);
                Assert.True(chwn.LastHandOffs.Count(l => l == ActivationLayout.Chwn) >= 3, $"only {chwn.LastHandOffs.Count(l => l == ActivationLayout.Chwn)} CHWN hand-offs");
                Assert.DoesNotContain(ActivationLayout.Chwn, nchw.LastHandOffs);
                Same(logits1, logits2, $"step {step} logits");
                Same(dx1, dx2, $"step {step} input gradient");
                var grads = chwn.NamedParameters().ToList();
                foreach (var (p, i) in nchw.NamedParameters().Select((p, i) => (p, i)))
                {
                    Same(p.Parameter.Grad!.Data, grads[i].Parameter.Grad!.Data, $"step {step} grad {p.Name}");
                }

                var states = chwn.State().ToList();
                foreach (var (e, i) in nchw.State().Select((e, i) => (e, i)))
                {
                    Same(e.Value.Data, states[i].Value.Data, $"step {step} {e.Name}");
                }

                // A plain SGD step on both, so the second step runs on other weights.
                foreach (var net in new[] { nchw, chwn })
                {
                    foreach (var p in net.NamedParameters())
                    {
                        var (value, grad) = (p.Parameter.Value.Data, p.Parameter.Grad!.Data);
                        for (int j = 0; j < value.Length; j++)
                        {
                            value[j] -= 0.05f * grad[j];
                        }
                    }

                    net.ZeroGrad();
                }
            }
        }
        finally
        {
            ComputeThreads.Count = saved;
            MobileOneNetwork.HandsOffChwn = true;
        }
    }

    private static (float[] Logits, float[] InputGradient) Step(MobileOneNetwork network, Tensor x, Tensor dLogits, bool handOff)
    {
        MobileOneNetwork.HandsOffChwn = handOff;
        var logits = (float[])network.Forward(x).Data.Clone();
        var dx = (float[])network.Backward(dLogits, inputGradient: true)!.Data.Clone();
        return (logits, dx);
    }

    private static void Same(float[] expected, float[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            if (BitConverter.SingleToInt32Bits(expected[i]) != BitConverter.SingleToInt32Bits(actual[i]))
            {
                Assert.Fail($"{what}: element {i} is {actual[i]:R}, not {expected[i]:R}");
            }
        }
    }
}
