using Google.Protobuf;
using MobileOne.Graph;
using MobileOne.IO.Checkpoints;
using MobileOne.IO.Onnx;
using MobileOne.Kernels;
using MobileOne.Models;
using MobileOne.Reparam;
using MobileOne.Tensors;
using MobileOne.Tests.Graph;
using MobileOne.Tests.Models;
using Onnx;

namespace MobileOne.Tests.IO.Onnx;

/// <summary>
/// Export of any <see cref="LayerGraph"/>: a train-time MobileOne as its branches (judged against the PyTorch
/// logits), and a small graph with every node and activation kind (judged against a float64 evaluation written
/// here from the definitions, independent of the library's kernels).
/// </summary>
public class OnnxGraphExportTests : IClassFixture<ReferenceTensors>
{
    private const double GraphTolerance = 1e-4; // of the reference output's largest magnitude

    private readonly ReferenceTensors refs;

    public OnnxGraphExportTests(ReferenceTensors refs)
    {
        this.refs = refs;
    }

    [Fact]
    public void Unfused_s0_exports_its_branches_and_onnxruntime_matches_the_pytorch_logits()
    {
        var network = ModelCheckpoint.Load(Fixtures.Path("mobileone_s0_timm.safetensors")).Network;
        Assert.False(network.IsFused);
        using var dir = new TempDir();
        string path = dir.File("s0_unfused.onnx");
        OnnxExporter.Export(network, path, fuse: false);
        var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(path));

        // The branch structure, counted from the network rather than from the exporter.
        var blocks = network.Blocks().Select(b => b.Block).ToList();
        int convs = blocks.Sum(b => b.ConvKxk.Count + (b.ConvScale is null ? 0 : 1) + (b.Attn is null ? 0 : 2));
        int norms = blocks.Sum(b => b.ConvKxk.Count + (b.ConvScale is null ? 0 : 1) + (b.Identity is null ? 0 : 1));
        static int Branches(MobileOneBlock b) => b.ConvKxk.Count + (b.ConvScale is null ? 0 : 1) + (b.Identity is null ? 0 : 1);
        var ops = model.Graph.Node.GroupBy(n => n.OpType).ToDictionary(g => g.Key, g => g.Count());
        Assert.Equal(convs, ops["Conv"]);
        Assert.Equal(norms, ops["BatchNormalization"]);
        Assert.Equal(blocks.Count(b => Branches(b) > 2), ops.GetValueOrDefault("Sum"));
        Assert.Equal(blocks.Count(b => Branches(b) == 2), ops.GetValueOrDefault("Add"));
        Assert.Equal(blocks.Count, ops["Relu"]);
        var fused = ModelProto.Parser.ParseFrom(OnnxExporter.ToBytes(network));
        int fusedConvs = fused.Graph.Node.Count(n => n.OpType == "Conv");
        Assert.Equal(blocks.Count, fusedConvs);
        Assert.True(ops["Conv"] >= 3 * fusedConvs, $"unfused S0 has {ops["Conv"]} Conv nodes, fused {fusedConvs}");
        Assert.DoesNotContain(fused.Graph.Node, n => n.OpType == "BatchNormalization");

        // Node names follow the block structure; the block's sum feeds its Relu.
        var byName = model.Graph.Node.ToDictionary(n => n.Name);
        Assert.Equal(["input", "stem.conv_kxk.0.conv.weight"], byName["stem.conv_kxk.0.conv"].Input);
        Assert.Equal(["stem.conv_kxk.0.conv", "stem.conv_kxk.0.bn.weight", "stem.conv_kxk.0.bn.bias", "stem.conv_kxk.0.bn.running_mean", "stem.conv_kxk.0.bn.running_var"], byName["stem.conv_kxk.0.bn"].Input);
        foreach (var (prefix, block) in network.Blocks().Where(b => Branches(b.Block) > 1))
        {
            var sum = byName[prefix + "add"];
            Assert.Equal(Branches(block) > 2 ? "Sum" : "Add", sum.OpType);
            // timm's summation order: scale branch, conv branches, skip.
            var expected = new List<string>();
            if (block.ConvScale is not null)
            {
                expected.Add(prefix + "conv_scale.bn");
            }

            expected.AddRange(Enumerable.Range(0, block.ConvKxk.Count).Select(i => $"{prefix}conv_kxk.{i}.bn"));

            if (block.Identity is not null)
            {
                expected.Add(prefix + "identity");
            }

            Assert.Equal(expected, sum.Input);
            Assert.Equal([prefix + "add"], byName[prefix + "relu"].Input);
        }

        Assert.Equal("Sum", byName["stages.0.1.add"].OpType);
        Assert.Contains("stages.0.1.identity", byName["stages.0.1.add"].Input);
        Assert.Contains("stages.0.0.conv_scale.bn", byName["stages.0.0.add"].Input);
        Assert.Equal("train-time", model.MetadataProps.Single(p => p.Key == "form").Value);

        // Every float tensor of the train-time state is an initializer under its timm name with its exact bytes (the
        // BatchNorm step counters are not needed), and nothing else is.
        var initializers = model.Graph.Initializer.ToDictionary(t => t.Name);
        var state = network.State().Where(e => !e.Name.EndsWith("num_batches_tracked", StringComparison.Ordinal)).ToList();
        Assert.Equal(state.Count, initializers.Count);
        foreach (var entry in state)
        {
            var t = initializers[entry.Name];
            Assert.Equal(entry.Value.Shape.Select(d => (long)d), t.Dims);
            Assert.Equal(System.Runtime.InteropServices.MemoryMarshal.AsBytes(entry.Value.Data.AsSpan()).ToArray(), t.RawData.ToByteArray());
        }

        using var ort = OrtHarness.FromFile(path);
        Assert.Equal([-1, 3, -1, -1], ort.Inputs["input"].Dimensions);
        Assert.Equal([-1, 1000], ort.Outputs["logits"].Dimensions);
        OnnxExporterTests.AssertClose(refs["timm.logits_unfused_224"], ort.Run(refs["input_224"]), "unfused ONNX vs PyTorch at 224, batch 2");
        OnnxExporterTests.AssertClose(refs["timm.logits_unfused_64"], ort.Run(refs["input_64"]), "unfused ONNX vs PyTorch at 64");

        // The graph overload gives the same model body as the network overload with fuse: false.
        var fromGraph = OnnxExporter.Build(network.ToGraph());
        Assert.Equal(model.Graph.Initializer.Select(t => t.Name), fromGraph.Graph.Initializer.Select(t => t.Name));
        Assert.Equal(model.Graph.Node.Select(n => n.OpType), fromGraph.Graph.Node.Select(n => n.OpType));
    }

    [Fact]
    public void Fuse_false_on_a_fused_network_exports_it_as_it_is()
    {
        var fused = Reparameterizer.Fuse(OnnxExporterTests.RandomCustomNetwork(out _));
        Assert.Equal(OnnxExporter.ToBytes(fused), OnnxExporter.ToBytes(fused, fuse: false));
    }

    public static TheoryData<int> Opsets => new() { 13, 14, 17 };

    [Theory]
    [MemberData(nameof(Opsets))]
    public void Graph_with_every_node_and_activation_kind_runs_in_onnxruntime_like_a_float64_evaluation(int opset)
    {
        var graph = EveryKindGraph(seed: 5);
        Assert.Equal(Enum.GetValues<ActivationKind>(), UsedActivations(graph).Distinct().Order());
        var kinds = graph.Nodes.Select(n => n.GetType()).ToHashSet();
        Assert.True(
            kinds.SetEquals([typeof(ConvNode), typeof(BatchNormNode), typeof(ActivationNode), typeof(SqueezeExciteNode), typeof(AddNode), typeof(PoolNode), typeof(GlobalAveragePoolNode), typeof(LinearNode)]),
            string.Join(", ", kinds.Select(k => k.Name)));
        Assert.Contains(graph.Nodes, n => n is PoolNode { Kind: PoolKind.Max });
        Assert.Contains(graph.Nodes, n => n is AddNode { Inputs.Length: > 2 });

        byte[] bytes = OnnxExporter.ToBytes(graph, opset);
        var model = ModelProto.Parser.ParseFrom(bytes);
        Assert.Equal(opset, Assert.Single(model.OpsetImport).Version);
        var ops = model.Graph.Node.Select(n => n.OpType).ToHashSet();
        foreach (string op in new[] { "Conv", "BatchNormalization", "Relu", "Clip", "Erf", "Tanh", "Sigmoid", "HardSigmoid", "Mul", "Sum", "Add", "MaxPool", "AveragePool", "GlobalAveragePool", "Flatten", "Gemm", "Unsqueeze", "Identity" })
        {
            Assert.Contains(op, ops);
        }

        Assert.Equal(opset >= 14, ops.Contains("HardSwish"));
        var byName = model.Graph.Node.ToDictionary(n => n.Name);
        var grouped = byName["grouped.conv"];
        Assert.Equal([2L, 2], Attribute(grouped, "dilations").Ints);
        Assert.Equal(2, Attribute(grouped, "group").I);
        Assert.Equal([2L, 2, 2, 2], Attribute(grouped, "pads").Ints);
        Assert.Equal([2L, 2], Attribute(grouped, "strides").Ints);
        Assert.Equal(2, grouped.Input.Count);
        var rect = byName["rect.conv"];
        Assert.Equal([3L, 1], Attribute(rect, "kernel_shape").Ints);
        Assert.Equal([2L, 1], Attribute(rect, "dilations").Ints);
        Assert.Equal([2L, 0, 2, 0], Attribute(rect, "pads").Ints);
        Assert.Equal(8, Attribute(rect, "group").I);
        Assert.Equal(0, Attribute(byName["pool.avg_exclude"], "count_include_pad").I);
        Assert.Equal(1, Attribute(byName["pool.avg_include"], "count_include_pad").I);
        Assert.Equal(3, byName["grouped.relu6"].Input.Count);
        var hardSigmoid = byName["gates.hardsigmoid"];
        Assert.Equal(1f / 6f, Attribute(hardSigmoid, "alpha").F);
        Assert.Equal(0.5f, Attribute(hardSigmoid, "beta").F);
        Assert.Equal("Sum", byName["sum3"].OpType);
        Assert.Equal("Add", byName["add2"].OpType);
        Assert.Equal("Gemm", byName["head.fc1"].OpType);
        Assert.Equal(1, Attribute(byName["head.fc1"], "transB").I);
        var initializers = model.Graph.Initializer.Select(t => t.Name).ToHashSet();
        Assert.Contains("se1.fc1.weight", initializers);
        Assert.Contains("grouped.bn.running_var", initializers);
        Assert.Contains("head.fc2.weight", initializers);
        Assert.DoesNotContain("head.fc2.bias", initializers);
        Assert.Equal(["batch", "4", "1", "1"], model.Graph.Output[0].Type.TensorType.Shape.Dim.Select(Describe));

        var input = OnnxExporterTests.RandomInput(2, 3, 9, seed: 21);
        var expected = GraphReference.EvaluateAll(graph, input);
        using (var ort = OrtHarness.FromBytes(bytes))
        {
            var actual = ort.Run(input);
            Assert.Equal([2, 4, 1, 1], actual.Shape);
            AssertRelative(expected[graph.Output], actual, $"opset {opset}, graph output");
        }

        // Every node's value on its own (the same graph returning that value), so that an error in one activation
        // cannot hide behind the layers after it.
        var shapes = graph.InferShapes(9, 9);
        for (int value = 1; value < graph.Nodes.Count; value++)
        {
            graph.Output = value;
            using var ort = OrtHarness.FromBytes(OnnxExporter.ToBytes(graph, opset));
            var actual = ort.Run(input);
            int[] shape = IsFlat(graph, value)
                ? [2, shapes[value].Channels]
                : [2, shapes[value].Channels, shapes[value].Height, shapes[value].Width];
            Assert.Equal(shape, actual.Shape);
            AssertRelative(expected[value], actual, $"opset {opset}, value {value} ({graph.Nodes[value - 1].Name})");
        }
    }

    [Fact]
    public void Graph_with_a_feature_map_output_keeps_height_and_width_apart()
    {
        // A non-square input and a kernel, stride and padding that differ per axis: any swap of H and W shows.
        var rng = new Random(9);
        var graph = new LayerGraph(3);
        int x = graph.Add(new ConvNode("conv", LayerGraph.Input, 3, 6, 3, 1, 2, 1, 1, 0, 1, 1, 1, Normal(rng, 6 * 3 * 3 * 1, 0.6), Normal(rng, 6, 0.3)));
        x = graph.Add(new ActivationNode("act", x, ActivationKind.GeluTanh));
        x = graph.Add(new PoolNode("pool", x, PoolKind.Average, 3, 1, 1, CountIncludePad: false));
        byte[] bytes = OnnxExporter.ToBytes(graph);
        var model = ModelProto.Parser.ParseFrom(bytes);
        Assert.Equal(["batch", "6", "output_height", "output_width"], model.Graph.Output[0].Type.TensorType.Shape.Dim.Select(Describe));

        using var ort = OrtHarness.FromBytes(bytes);
        var input = new Tensor(2, 3, 12, 7);
        WeightInit.FillNormal(new Random(4), input.Data, 0, 1);
        var actual = ort.Run(input);
        var shape = graph.InferShapes(12, 7)[graph.Output];
        Assert.Equal([2, shape.Channels, shape.Height, shape.Width], actual.Shape);
        Assert.Equal([2, 6, 6, 7], actual.Shape);
        AssertRelative(GraphReference.EvaluateAll(graph, input)[graph.Output], actual, "12x7 input");
    }

    [Fact]
    public void Clashing_names_are_made_unique_and_a_graph_that_returns_its_input_is_an_identity()
    {
        var rng = new Random(2);
        var graph = new LayerGraph(2);
        int a = graph.Add(ConvNode.Square("logits", LayerGraph.Input, 2, 2, 1, 1, 0, 1, Normal(rng, 4, 1), Normal(rng, 2, 1)));
        int b = graph.Add(ConvNode.Square("logits", a, 2, 2, 1, 1, 0, 1, Normal(rng, 4, 1), null));
        int c = graph.Add(new ActivationNode("input", b, ActivationKind.Silu));
        graph.Add(new AddNode("logits", [c, a]));
        var model = OnnxExporter.Build(graph);
        Assert.Equal(["logits.weight", "logits.bias", "logits.weight_1"], model.Graph.Initializer.Select(t => t.Name));
        var outputs = model.Graph.Node.SelectMany(n => n.Output).ToList();
        Assert.Equal(outputs.Distinct(), outputs);
        Assert.DoesNotContain("input", outputs);
        Assert.Equal("logits", outputs[^1]);
        var input = new Tensor(1, 2, 3, 4);
        WeightInit.FillNormal(new Random(3), input.Data, 0, 1);
        using (var ort = OrtHarness.FromBytes(model.ToByteArray()))
        {
            AssertRelative(GraphReference.EvaluateAll(graph, input)[graph.Output], ort.Run(input), "clashing names");
        }

        var empty = new LayerGraph(3);
        var identity = Assert.Single(OnnxExporter.Build(empty).Graph.Node);
        Assert.Equal("Identity", identity.OpType);
        using var passThrough = OrtHarness.FromBytes(OnnxExporter.ToBytes(empty));
        var x = OnnxExporterTests.RandomInput(2, 3, 5, seed: 1);
        Assert.Equal(x.Data, passThrough.Run(x).Data);
    }

    [Theory]
    [InlineData(0.0, 0.0)]
    [InlineData(0.5, 0.5204998778130465)]
    [InlineData(-1.0, -0.8427007929497149)]
    [InlineData(2.4, 0.9993114861033550)]
    [InlineData(2.5, 0.9995930479825550)]
    [InlineData(3.0, 0.9999779095030014)]
    [InlineData(-6.0, -1.0)]
    public void Reference_erf_is_accurate_to_double_rounding(double x, double erf) =>
        Assert.Equal(erf, GraphReference.Erf(x), 1e-15);

    /// <summary>
    /// Every node kind and every activation kind, with value ranks changing and coming back: input 3x9x9 -> conv
    /// (bias) -> relu -> grouped dilated strided conv (no bias) -> BN -> relu6 -> three activated branches summed (Sum)
    /// plus a skip (Add) -> hardswish -> SE (silu, hardsigmoid) -> max pool -> average pools (with and without the
    /// padding counted) -> sigmoid + hardsigmoid + identity -> SE (relu, sigmoid) -> global pool -> linear (bias) ->
    /// gelu -> linear (no bias) -> 1x1 conv + BN on the [5, 1, 1] value, added to another linear's [4] value.
    /// </summary>
    private static LayerGraph EveryKindGraph(int seed)
    {
        var rng = new Random(seed);
        var g = new LayerGraph(3);
        int stem = g.Add(ConvNode.Square("stem.conv", LayerGraph.Input, 3, 8, 3, 1, 1, 1, Normal(rng, 8 * 3 * 9, 3 / Math.Sqrt(27)), Normal(rng, 8, 0.5)));
        stem = g.Add(new ActivationNode("stem.relu", stem, ActivationKind.Relu));
        int grouped = g.Add(ConvNode.Square("grouped.conv", stem, 8, 8, 3, 2, 2, 2, Normal(rng, 8 * 4 * 9, 2 / Math.Sqrt(36)), null, dilation: 2));
        int bn = g.Add(BatchNorm("grouped.bn", grouped, 8, rng));
        int relu6 = g.Add(new ActivationNode("grouped.relu6", bn, ActivationKind.Relu6));
        int rect = g.Add(new ConvNode("rect.conv", relu6, 8, 8, 3, 1, 1, 1, 2, 0, 2, 1, 8, Normal(rng, 8 * 3, 1.2), Normal(rng, 8, 0.5)));
        int gelu = g.Add(new ActivationNode("branch.gelu", rect, ActivationKind.Gelu));
        int geluTanh = g.Add(new ActivationNode("branch.gelu_tanh", relu6, ActivationKind.GeluTanh));
        int silu = g.Add(new ActivationNode("branch.silu", bn, ActivationKind.Silu));
        int sum = g.Add(new AddNode("sum3", [gelu, geluTanh, silu]));
        int add = g.Add(new AddNode("add2", [sum, relu6]));
        int hardSwish = g.Add(new ActivationNode("hardswish", add, ActivationKind.HardSwish));
        int se1 = g.Add(SqueezeExcite("se1", hardSwish, 8, 3, rng, ActivationKind.Silu, ActivationKind.HardSigmoid));
        int max = g.Add(new PoolNode("pool.max", se1, PoolKind.Max, 3, 2, 1));
        int avgExclude = g.Add(new PoolNode("pool.avg_exclude", max, PoolKind.Average, 3, 1, 1, CountIncludePad: false));
        int avgInclude = g.Add(new PoolNode("pool.avg_include", avgExclude, PoolKind.Average, 2, 2, 1, CountIncludePad: true));
        int sigmoid = g.Add(new ActivationNode("gates.sigmoid", avgInclude, ActivationKind.Sigmoid));
        int hardSigmoid = g.Add(new ActivationNode("gates.hardsigmoid", avgInclude, ActivationKind.HardSigmoid));
        int identity = g.Add(new ActivationNode("gates.identity", avgInclude, ActivationKind.None));
        int gates = g.Add(new AddNode("gates.sum", [sigmoid, hardSigmoid, identity]));
        int se2 = g.Add(SqueezeExcite("se2", gates, 8, 2, rng, ActivationKind.Relu, ActivationKind.Sigmoid));
        int pooled = g.Add(new GlobalAveragePoolNode("head.global_pool", se2));
        int fc1 = g.Add(new LinearNode("head.fc1", pooled, 8, 6, Normal(rng, 48, 1.5), Normal(rng, 6, 0.5)));
        int fc1Act = g.Add(new ActivationNode("head.gelu", fc1, ActivationKind.Gelu));
        int fc2 = g.Add(new LinearNode("head.fc2", fc1Act, 6, 5, Normal(rng, 30, 1), null));
        int conv = g.Add(ConvNode.Square("head.conv", fc2, 5, 4, 1, 1, 0, 1, Normal(rng, 20, 1), Normal(rng, 4, 0.5)));
        int convBn = g.Add(BatchNorm("head.bn", conv, 4, rng));
        int skip = g.Add(new LinearNode("head.skip", fc2, 5, 4, Normal(rng, 20, 1), Normal(rng, 4, 0.5)));
        g.Add(new AddNode("head.add", [convBn, skip]));
        return g;
    }

    /// <summary>Whether the exporter keeps a value as [batch, features]: a linear layer's output and point-wise nodes of such values only.</summary>
    private static bool IsFlat(LayerGraph graph, int value) => graph.Producer(value) switch
    {
        LinearNode => true,
        ActivationNode a => IsFlat(graph, a.Input),
        AddNode add => add.Inputs.All(v => IsFlat(graph, v)),
        _ => false,
    };

    private static IEnumerable<ActivationKind> UsedActivations(LayerGraph graph) => graph.Nodes.SelectMany(n => n switch
    {
        ActivationNode a => new[] { a.Activation },
        SqueezeExciteNode s => new[] { s.InnerActivation, s.GateActivation },
        _ => Array.Empty<ActivationKind>(),
    });

    private static BatchNormNode BatchNorm(string name, int input, int channels, Random rng) => new(
        name,
        input,
        channels,
        Uniform(rng, channels, 0.5, 1.5),
        Normal(rng, channels, 0.3),
        Normal(rng, channels, 0.3),
        Uniform(rng, channels, 0.5, 1.5),
        1e-5);

    private static SqueezeExciteNode SqueezeExcite(string name, int input, int channels, int reduced, Random rng, ActivationKind inner, ActivationKind gate) => new(
        name,
        input,
        channels,
        reduced,
        Normal(rng, channels * reduced, 2 / Math.Sqrt(channels)),
        Normal(rng, reduced, 0.5),
        Normal(rng, channels * reduced, 2 / Math.Sqrt(reduced)),
        Normal(rng, channels, 0.5),
        inner,
        gate);

    private static float[] Normal(Random rng, int count, double std)
    {
        var data = new float[count];
        WeightInit.FillNormal(rng, data, 0, std);
        return data;
    }

    private static float[] Uniform(Random rng, int count, double low, double high) =>
        Enumerable.Range(0, count).Select(_ => (float)(low + ((high - low) * rng.NextDouble()))).ToArray();

    /// <summary>max |actual - expected| within 1e-4 of the expected output's largest magnitude.</summary>
    private static void AssertRelative(double[] expected, Tensor actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        double scale = expected.Max(Math.Abs);
        double diff = Reference.MaxAbsDiff(actual.Data, expected);
        Assert.True(expected.Max() > expected.Min(), $"{what}: the reference output is constant");
        Assert.True(diff <= GraphTolerance * scale, $"{what}: max diff {diff:e3} > {GraphTolerance} x max |reference| {scale:g4} (relative {diff / scale:e2})");
    }

    private static string Describe(TensorShapeProto.Types.Dimension d) =>
        d.HasDimParam ? d.DimParam : d.DimValue.ToString(System.Globalization.CultureInfo.InvariantCulture);

    private static AttributeProto Attribute(NodeProto node, string name) => node.Attribute.Single(a => a.Name == name);
}
