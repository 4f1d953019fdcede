using MobileOne.Models;
using MobileOne.Reparam;
using MobileOne.Tensors;

namespace MobileOne.Tests.Models;

/// <summary>
/// The no-grad Forward runs the training kernels but keeps nothing: it changes no state, returns fresh tensors, and
/// several threads may run it on one network at once and get the single-thread result bit for bit.
/// </summary>
public class NoGradForwardTests
{
    // Stem (im2col), depthwise and stacked-pointwise branches, scale branches, BN skips, SE in the last stages.
    private static readonly MobileOneConfig Config =
        MobileOneConfig.Parse("units=1/2/1/1,widths=0.125/0.125/0.0625/0.0625,k=2,se=0/0/1/1,classes=5");

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Concurrent_no_grad_forwards_on_one_network_match_a_lone_forward_bit_for_bit(bool fused)
    {
        var network = MobileOneNetwork.Create(Config);
        WeightInit.Initialize(network, 5);
        WeightInit.RandomizeBatchNorm(network, 6);
        if (fused)
        {
            network = Reparameterizer.Fuse(network);
        }

        network.Eval();
        var x = new Tensor(3, 3, 24, 20);
        WeightInit.FillNormal(new Random(7), x.Data, 0, 1);
        var state = network.State().Select(e => e.Value.Clone()).ToList();

        var expected = network.Forward(x).Clone();
        var first = network.Forward(x);
        Assert.NotSame(first, network.Forward(x));

        var failures = new System.Collections.Concurrent.ConcurrentBag<string>();
        Parallel.For(0, 8, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i =>
        {
            for (int r = 0; r < 3; r++)
            {
                var y = network.Forward(x);
                if (!y.Data.AsSpan().SequenceEqual(expected.Data))
                {
                    failures.Add($"run {i}.{r}: max diff {Reference.MaxAbsDiff(y.Data, expected.Data)}");
                }
            }
        });

        Assert.Empty(failures);
        var after = network.State().Select(e => e.Value).ToList();
        for (int i = 0; i < state.Count; i++)
        {
            Assert.True(state[i].Data.AsSpan().SequenceEqual(after[i].Data), $"state {i} changed");
        }
    }
}
