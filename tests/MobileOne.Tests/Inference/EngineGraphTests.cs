using MobileOne.Graph;
using MobileOne.Inference;
using MobileOne.IO.Checkpoints;
using MobileOne.Kernels;
using MobileOne.Models;
using MobileOne.Tests.Graph;
using Xunit.Abstractions;

namespace MobileOne.Tests.Inference;

/// <summary>
/// The engine on graphs other than a fused MobileOne: train-time (multi-branch) networks against the float64
/// fixtures and the reference forward, and hand-built graphs with every layer kind against <see cref="GraphReference"/>.
/// </summary>
public class EngineGraphTests : IClassFixture<EngineFixtures>
{
    private readonly EngineFixtures fixtures;
    private readonly ITestOutputHelper output;

    public EngineGraphTests(EngineFixtures fixtures, ITestOutputHelper output)
    {
        this.fixtures = fixtures;
        this.output = output;
    }

    [Theory]
    [IsaData(IsaLevel.Avx512, "timm", 1)]
    [IsaData(IsaLevel.Avx512, "timm", 2)]
    [IsaData(IsaLevel.Avx2, "timm", 1)]
    [IsaData(IsaLevel.Avx2, "timm", 2)]
    [IsaData(IsaLevel.Scalar, "timm", 1)]
    [IsaData(IsaLevel.Scalar, "timm", 2)]
    [IsaData(IsaLevel.Avx512, "apple", 1)]
    [IsaData(IsaLevel.Avx512, "apple", 2)]
    [IsaData(IsaLevel.Avx2, "apple", 1)]
    [IsaData(IsaLevel.Avx2, "apple", 2)]
    [IsaData(IsaLevel.Scalar, "apple", 1)]
    [IsaData(IsaLevel.Scalar, "apple", 2)]
    public void Unfused_fixture_networks_match_the_float64_reference(IsaLevel isa, string prefix, int threads)
    {
        var network = fixtures.Unfused(prefix);
        Assert.False(network.IsFused);
        using var model = CompiledModel.Compile(network, new InferenceOptions { Isa = isa, Threads = threads });
        foreach (int size in new[] { 224, 64 })
        {
            var input = fixtures.Refs[$"input_{size}"];
            var expected = fixtures.Refs[$"{prefix}.logits_unfused_{size}"];
            EngineTestSupport.AssertClose(expected.Data, model.Run(input).Data, $"unfused {prefix} {isa} x{threads} at {size}");
        }
    }

    [Fact]
    public void An_unfused_network_runs_every_branch_not_a_fused_kernel()
    {
        var network = fixtures.Unfused("timm");
        using var model = CompiledModel.Compile(network);
        var layers = model.DescribeLayers(224, 224);

        // S0 has k = 4: each depthwise block runs its 1x1 scale branch, 4 KxK branches and (stride 1) its BN skip, in timm's order, adding into one buffer.
        Assert.Equal(4, layers.Count(l => l.Layer.Name.StartsWith("stages.1.2.conv_kxk.", StringComparison.Ordinal)));
        Assert.Contains(layers, l => l.Layer.Name == "stages.1.2.conv_kxk.0.conv" && l.Layer.Algorithm.Contains("accumulate", StringComparison.Ordinal));
        Assert.Contains(layers, l => l.Layer.Name == "stages.1.2.identity" && l.Layer.Algorithm.Contains("accumulate", StringComparison.Ordinal));
        Assert.Equal(network.MultiplyAccumulates(224) + UnfusedIdentityMacs(network, 224), layers.Sum(l => l.MultiplyAccumulates));
        Assert.True(layers.Count > 3 * CompiledModel.Compile(fixtures.Fused("timm")).Layers.Count, $"{layers.Count} layers");
    }

    [Fact]
    public void Activation_memory_is_the_liveness_peak_between_the_largest_layer_and_the_sum_of_all_values()
    {
        var fusedNet = fixtures.Fused("timm");
        var unfusedNet = fixtures.Unfused("timm");
        using var fused = CompiledModel.Compile(fusedNet);
        using var unfused = CompiledModel.Compile(unfusedNet);
        foreach (var (net, model) in new[] { (fusedNet, fused), (unfusedNet, unfused) })
        {
            var graph = net.ToGraph();
            var shapes = graph.InferShapes(224, 224);
            long Padded(ValueShape v) => 4L * v.Height * v.Width * ((v.Channels + 15) / 16 * 16);
            // A convolution reads its input while it writes its output (activations and BatchNorm run in place).
            long largestLayer = graph.Nodes.Select((n, i) => n is ConvNode c && c.Input != LayerGraph.Input ? Padded(shapes[i + 1]) + Padded(shapes[c.Input]) : 0).Max();
            long everything = shapes.Skip(1).Sum(Padded);
            var (values, arena) = model.ActivationBytes(2, 224, 224);
            Assert.InRange(values, 2 * largestLayer, 2 * everything);
            Assert.True(arena >= values);
        }

        // Branches add into one buffer while the block input stays alive, as one fused convolution reads its input while
        // writing: the train-time graph's peak is never below the fused one's (for S0 they are equal: both peak at the
        // stride-2 block after the stem).
        Assert.True(unfused.ActivationBytes(1, 224, 224).Values >= fused.ActivationBytes(1, 224, 224).Values);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public void Random_train_time_networks_match_the_reference_forward_on_every_path(int seed)
    {
        var rng = new Random(seed);
        var baseConfig = EngineCustomConfigTests.RandomConfig(rng);
        var config = baseConfig with { NumConvBranches = 1 + (seed % 4) };
        var network = MobileOneNetwork.Create(config, fused: false);
        WeightInit.Initialize(network, seed);
        WeightInit.RandomizeBatchNorm(network, seed + 1);
        int batch = rng.Next(1, 4), h = rng.Next(1, 40), w = rng.Next(1, 40);
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

                EngineTestSupport.AssertClose(expected.Data, model.Run(input).Data, $"{config} k={config.NumConvBranches} batch {batch} {h}x{w} {isa} x{threads}");
            }
        }
    }

    [Theory]
    [IsaData(IsaLevel.Avx512, 1)]
    [IsaData(IsaLevel.Avx512, 3)]
    [IsaData(IsaLevel.Avx2, 2)]
    [IsaData(IsaLevel.Scalar, 1)]
    public void Every_layer_kind_matches_the_float64_definition(IsaLevel isa, int threads)
    {
        var graph = EveryLayerGraph(new Random(5), inChannels: 3);
        var rng = new Random(6);
        foreach (var (batch, h, w) in new[] { (2, 9, 9), (1, 13, 7) })
        {
            var input = EngineTestSupport.RandomInput(rng, batch, 3, h, w);
            var expected = GraphReference.Evaluate(graph, input);
            using var model = CompiledModel.Compile(graph, new InferenceOptions { Isa = isa, Threads = threads });
            var actual = model.Run(input);
            EngineTestSupport.AssertClose(expected.Select(v => (float)v).ToArray(), actual.Data, $"{isa} x{threads} batch {batch} {h}x{w}");
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public void Sums_whose_inputs_come_out_of_execution_order_are_lowered_in_execution_order(int threads)
    {
        // s = b + a + r with the convolutions run in the order a, b, r: the chain must start with a, and r (which has
        // a second reader, so it is not in the chain) is computed only after both, so no epilogue of a or b may read it.
        var rng = new Random(12);
        var g = new LayerGraph(3);
        int a = g.Add(ConvNode.Square("a", LayerGraph.Input, 3, 16, 3, 1, 1, 1, Random(rng, 16 * 3 * 9), Random(rng, 16)));
        int b = g.Add(ConvNode.Square("b", LayerGraph.Input, 3, 16, 1, 1, 0, 1, Random(rng, 16 * 3), Random(rng, 16)));
        int r = g.Add(ConvNode.Square("r", LayerGraph.Input, 3, 16, 3, 1, 1, 1, Random(rng, 16 * 3 * 9), null));
        int sum = g.Add(new AddNode("s", [b, a, r]));
        int act = g.Add(new ActivationNode("s.act", sum, ActivationKind.Relu));
        int both = g.Add(new AddNode("out", [act, r]));
        int pooled = g.Add(new GlobalAveragePoolNode("pool", both));
        g.Add(new LinearNode("fc", pooled, 16, 5, Random(rng, 16 * 5), Random(rng, 5)));
        var input = EngineTestSupport.RandomInput(rng, 2, 3, 11, 9);
        using var model = CompiledModel.Compile(g, new InferenceOptions { Threads = threads });
        EngineTestSupport.AssertClose(GraphReference.Evaluate(g, input).Select(v => (float)v).ToArray(), model.Run(input).Data, "out-of-order sum");
    }

    [Theory]
    [InlineData(ActivationKind.Relu6)]
    [InlineData(ActivationKind.Gelu)]
    [InlineData(ActivationKind.GeluTanh)]
    [InlineData(ActivationKind.Silu)]
    [InlineData(ActivationKind.HardSwish)]
    [InlineData(ActivationKind.Sigmoid)]
    [InlineData(ActivationKind.HardSigmoid)]
    [InlineData(ActivationKind.Relu)]
    public void Activations_match_their_float64_definitions_on_every_width(ActivationKind kind)
    {
        // -12..12 in steps of 1/64, plus the vector tails: every lane position of the 16-, 8- and 1-wide loops.
        var x = Enumerable.Range(-768, 1537 + 7).Select(i => i / 64f).ToArray();
        var y = (float[])x.Clone();
        Activations.Apply(kind, y);
        for (int i = 0; i < x.Length; i++)
        {
            double expected = GraphReference.Activation(kind, x[i]);
            float scalar = Activations.Apply(kind, x[i]);
            Assert.True(Math.Abs(y[i] - expected) <= 2e-6 * Math.Max(1, Math.Abs(expected)), $"{kind}({x[i]}) = {y[i]} (vector), expected {expected}");
            Assert.True(Math.Abs(scalar - expected) <= 2e-6 * Math.Max(1, Math.Abs(expected)), $"{kind}({x[i]}) = {scalar} (scalar), expected {expected}");
        }
    }

    [Fact]
    public void Graphs_with_a_spatial_output_return_nchw_maps()
    {
        var rng = new Random(8);
        var graph = new LayerGraph(2);
        int conv = graph.Add(ConvNode.Square("conv", LayerGraph.Input, 2, 5, 3, 2, 1, 1, Random(rng, 5 * 2 * 9), Random(rng, 5)));
        graph.Add(new ActivationNode("act", conv, ActivationKind.Silu));
        using var model = CompiledModel.Compile(graph);
        var input = EngineTestSupport.RandomInput(rng, 2, 2, 11, 6);
        var y = model.Run(input);
        Assert.Equal(new[] { 2, 5, 6, 3 }, y.Shape);
        EngineTestSupport.AssertClose(GraphReference.Evaluate(graph, input).Select(v => (float)v).ToArray(), y.Data, "spatial output");
    }

    /// <summary>
    /// A small network with every node kind and the lowering's cases: a dense stem that adds into a second stem
    /// branch, BatchNorm folded and standalone, an activation whose input has two readers, depthwise with dilation
    /// and an even kernel, a dense 3x3 on NHWC values, a residual add, squeeze-excite with non-default activations,
    /// max and average pooling, an add of three plain values, global pooling and a classifier.
    /// </summary>
    internal static LayerGraph EveryLayerGraph(Random rng, int inChannels)
    {
        var g = new LayerGraph(inChannels);
        int stemA = g.Add(ConvNode.Square("stem.a", LayerGraph.Input, inChannels, 20, 3, 1, 1, 1, Random(rng, 20 * inChannels * 9), null));
        int stemABn = g.Add(Bn(rng, "stem.a.bn", stemA, 20));
        int stemB = g.Add(ConvNode.Square("stem.b", LayerGraph.Input, inChannels, 20, 1, 1, 0, 1, Random(rng, 20 * inChannels), Random(rng, 20)));
        int stem = g.Add(new AddNode("stem.add", [stemABn, stemB]));
        int act = g.Add(new ActivationNode("stem.act", stem, ActivationKind.HardSwish));
        int dw = g.Add(new ConvNode("dw", act, 20, 20, 3, 3, 1, 1, 2, 2, 2, 2, 20, Random(rng, 20 * 9), Random(rng, 20)));
        int dwEven = g.Add(new ConvNode("dw.even", act, 20, 20, 2, 4, 1, 1, 1, 2, 1, 1, 20, Random(rng, 20 * 8), Random(rng, 20)));
        int skip = g.Add(Bn(rng, "skip", act, 20));
        int sum = g.Add(new AddNode("sum3", [dw, skip, act]));
        int gelu = g.Add(new ActivationNode("gelu", sum, ActivationKind.Gelu));
        int dense = g.Add(ConvNode.Square("dense", gelu, 20, 24, 3, 2, 1, 1, Random(rng, 24 * 20 * 9), Random(rng, 24)));
        int dense2 = g.Add(ConvNode.Square("dense2", dwEven, 20, 24, 4, 2, 1, 1, Random(rng, 24 * 20 * 16), null));
        int residual = g.Add(new AddNode("residual", [dense, dense2]));
        int se = g.Add(new SqueezeExciteNode("se", residual, 24, 5, Random(rng, 24 * 5), Random(rng, 5), Random(rng, 24 * 5), Random(rng, 24), ActivationKind.Silu, ActivationKind.HardSigmoid));
        int relu6 = g.Add(new ActivationNode("relu6", se, ActivationKind.Relu6));
        int max = g.Add(new PoolNode("maxpool", relu6, PoolKind.Max, 3, 2, 1));
        int avg = g.Add(new PoolNode("avgpool", max, PoolKind.Average, 3, 1, 1, CountIncludePad: false));
        int avgPad = g.Add(new PoolNode("avgpool.pad", max, PoolKind.Average, 3, 1, 1));
        int pw = g.Add(ConvNode.Square("pw", avg, 24, 40, 1, 1, 0, 1, Random(rng, 40 * 24), Random(rng, 40)));
        int pwBn = g.Add(Bn(rng, "pw.bn", pw, 40));
        int tanh = g.Add(new ActivationNode("gelu.tanh", pwBn, ActivationKind.GeluTanh));
        int avgPw = g.Add(ConvNode.Square("pw.pad", avgPad, 24, 40, 1, 1, 0, 1, Random(rng, 40 * 24), Random(rng, 40)));
        int both = g.Add(new AddNode("both", [tanh, avgPw]));
        int pooled = g.Add(new GlobalAveragePoolNode("pool", both));
        int sig = g.Add(new ActivationNode("pool.act", pooled, ActivationKind.Sigmoid));
        g.Add(new LinearNode("fc", sig, 40, 7, Random(rng, 40 * 7), Random(rng, 7)));
        return g;
    }

    private static BatchNormNode Bn(Random rng, string name, int input, int c) =>
        new(name, input, c, Random(rng, c, 1, 0.5), Random(rng, c), Random(rng, c), Random(rng, c, 1, 0.9), 1e-5);

    private static float[] Random(Random rng, int n, double center = 0, double spread = 0.5) =>
        Enumerable.Range(0, n).Select(_ => (float)(center + ((rng.NextDouble() * 2) - 1) * spread)).ToArray();

    /// <summary>The engine counts the skip BatchNorm as the 1x1 depthwise convolution it runs (C MACs per pixel); the network's counter does not.</summary>
    private static long UnfusedIdentityMacs(MobileOneNetwork network, int size)
    {
        var graph = network.ToGraph();
        var shapes = graph.InferShapes(size, size);
        return graph.Nodes.Select((n, i) => (n, i)).Where(t => t.n is BatchNormNode && t.n.Name.EndsWith(".identity", StringComparison.Ordinal)).Sum(t => shapes[t.i + 1].Elements);
    }
}

/// <summary>Max pooling propagates NaN as PyTorch's does, on the engine (vector lanes) and in the training kernel.</summary>
public class MaxPoolNanTests
{
    [Fact]
    public void A_nan_in_a_window_makes_that_output_nan_and_no_other()
    {
        var g = new MobileOne.Graph.LayerGraph(20);
        g.Add(new MobileOne.Graph.PoolNode("maxpool", MobileOne.Graph.LayerGraph.Input, MobileOne.Graph.PoolKind.Max, 3, 2, 1));
        var x = new MobileOne.Tensors.Tensor(1, 20, 6, 6);
        for (int i = 0; i < x.Length; i++)
        {
            x.Data[i] = (i % 7) - 3f;
        }

        x.Data[(5 * 36) + (0 * 6) + 0] = float.NaN; // channel 5, pixel (0, 0): only output (0, 0) of channel 5 sees it
        using var engine = MobileOne.Inference.CompiledModel.Compile(g);
        var y = engine.Run(x);
        var expected = new float[20 * 9];
        MobileOne.Kernels.Pooling.MaxPool(x.Data, expected, [], 20, 6, 6, 3, 2, 1);
        for (int i = 0; i < y.Length; i++)
        {
            Assert.Equal(i == 5 * 9, float.IsNaN(y.Data[i]));
            Assert.Equal(expected[i], y.Data[i]);
        }
    }
}
