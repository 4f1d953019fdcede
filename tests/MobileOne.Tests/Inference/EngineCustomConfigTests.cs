using MobileOne.Inference;
using MobileOne.Models;
using Xunit.Abstractions;

namespace MobileOne.Tests.Inference;

/// <summary>
/// Random custom configurations (narrow and ragged widths, squeeze-excite, odd resolutions, batch 1..3,
/// in_chans 1..4, few classes) against the reference forward of the same fused network, on every path.
/// </summary>
public class EngineCustomConfigTests
{
    private readonly ITestOutputHelper output;

    public EngineCustomConfigTests(ITestOutputHelper output)
    {
        this.output = output;
    }

    public static TheoryData<int> Seeds() => [1, 2, 3, 4, 5, 6];

    [Theory]
    [MemberData(nameof(Seeds))]
    public void Random_configurations_match_the_reference_forward_on_every_path(int seed)
    {
        var rng = new Random(seed);
        var config = RandomConfig(rng);
        var network = EngineTestSupport.RandomFused(config, seed);
        int batch = rng.Next(1, 4), h = rng.Next(1, 50), w = rng.Next(1, 50);
        if (seed == 1)
        {
            (h, w) = (33, 47);
        }

        var input = EngineTestSupport.RandomInput(rng, batch, config.InChans, h, w);
        var expected = network.Forward(input);
        foreach (var isa in EngineTestSupport.AllIsas)
        {
            foreach (int threads in new[] { 1, 2, 3 })
            {
                using var model = EngineTestSupport.TryCompile(network, isa, threads, out string skipped);
                if (model is null)
                {
                    output.WriteLine(skipped);
                    continue;
                }

                var logits = model.Run(input);
                EngineTestSupport.AssertClose(expected.Data, logits.Data, $"{config} batch {batch} {h}x{w} {isa} x{threads}");
            }
        }
    }

    [Fact]
    public void Results_are_bit_identical_for_any_thread_count()
    {
        var rng = new Random(11);
        var config = MobileOneConfig.Parse("units=1/2/3/1,widths=0.5/0.75/0.625/1.25,k=1,se=0/1/2/1,classes=37,in_chans=3");
        var network = EngineTestSupport.RandomFused(config, 11);
        var input = EngineTestSupport.RandomInput(rng, 2, 3, 45, 39);
        foreach (var isa in EngineTestSupport.AllIsas)
        {
            float[]? first = null;
            foreach (int threads in new[] { 1, 2, 3, 4, 7 })
            {
                using var model = EngineTestSupport.TryCompile(network, isa, threads, out _);
                if (model is null)
                {
                    break;
                }

                var logits = model.Run(input).Data;
                first ??= logits;
                Assert.True(first.AsSpan().SequenceEqual(logits), $"{isa}: {threads} threads differ from 1 thread");
            }
        }
    }

    [Fact]
    public void A_train_time_network_is_fused_automatically()
    {
        var config = MobileOneConfig.Parse("units=1/1/1/1,widths=0.25/0.25/0.25/0.25,k=2,se=0/0/1/1,classes=5");
        var network = MobileOneNetwork.Create(config);
        WeightInit.Initialize(network, 3);
        WeightInit.RandomizeBatchNorm(network, 4);
        var input = EngineTestSupport.RandomInput(new Random(5), 2, 3, 40, 36);
        using var model = CompiledModel.Compile(network);
        Assert.False(network.IsFused);
        EngineTestSupport.AssertClose(network.Forward(input).Data, model.Run(input).Data, "train-time network");
    }

    internal static MobileOneConfig RandomConfig(Random rng)
    {
        int[] units = [rng.Next(1, 3), rng.Next(1, 3), rng.Next(1, 4), rng.Next(1, 3)];
        double[] widths = [0.1 + rng.NextDouble() * 0.7, 0.1 + rng.NextDouble() * 0.6, 0.1 + rng.NextDouble() * 0.5, 0.1 + rng.NextDouble() * 0.4];
        int[] se = [rng.Next(0, units[0] + 1), rng.Next(0, units[1] + 1), rng.Next(0, units[2] + 1), rng.Next(0, units[3] + 1)];
        return MobileOneConfig.FromWidths("custom", widths, numConvBranches: 1, units, se, numClasses: rng.Next(1, 40), inChans: rng.Next(1, 5));
    }
}
