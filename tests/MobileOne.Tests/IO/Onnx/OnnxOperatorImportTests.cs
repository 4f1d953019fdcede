using Google.Protobuf;
using MobileOne.Graph;
using MobileOne.Inference;
using MobileOne.IO;
using MobileOne.IO.Onnx;
using MobileOne.Models;
using MobileOne.Tensors;
using MobileOne.Tests.Inference;
using Onnx;

namespace MobileOne.Tests.IO.Onnx;

/// <summary>
/// Softmax, Pad and Concat in imported models: PyTorch's own exports (tools/onnx/make-onnx-fixtures.py) run on the
/// engine to ONNX Runtime's output on the same file, come back through our exporter to the same output, and the
/// variants the engine has no operation for are refused with one error naming the node.
/// </summary>
public class OnnxOperatorImportTests
{
    public static TheoryData<string> Fixtures => new()
    {
        "tiny_softmax_opset11", "tiny_softmax_opset13", "tiny_softmax_opset17",
        "tiny_pad_opset11", "tiny_pad_opset13", "tiny_pad_opset17",
        "tiny_concat_opset11", "tiny_concat_opset13", "tiny_concat_opset17",
    };

    private static string Folder => Path.Combine(AppContext.BaseDirectory, "IO", "Onnx", "PyTorch");

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void PyTorch_exports_run_to_onnxruntimes_output(string name)
    {
        string path = Path.Combine(Folder, name + ".onnx");
        var input = ReferenceInput();
        using var ort = OrtHarness.FromFile(path);
        var expected = ort.Run(input);
        using var engine = CompiledModel.Compile(OnnxImporter.Load(path));
        var actual = engine.Run(input);
        Assert.Equal(expected.Data.Length, actual.Data.Length);
        EngineTestSupport.AssertClose(expected.Data, actual.Data, name);
    }

    /// <summary>What each fixture becomes: the softmax a node, the symmetric pads folded into the conv and the average pool, the others pad nodes.</summary>
    [Theory]
    [InlineData("tiny_softmax_opset11")]
    [InlineData("tiny_softmax_opset17")]
    public void A_classifier_softmax_becomes_a_softmax_node_on_the_logits(string name)
    {
        var graph = OnnxImporter.Load(Path.Combine(Folder, name + ".onnx"));
        var softmax = Assert.IsType<SoftmaxNode>(graph.Nodes[graph.Output - 1]);
        Assert.IsType<LinearNode>(graph.Producer(softmax.Input));
    }

    [Theory]
    [InlineData("tiny_pad_opset11")]
    [InlineData("tiny_pad_opset17")]
    public void Zero_pads_fold_where_exact_and_stay_pad_nodes_elsewhere(string name)
    {
        var graph = OnnxImporter.Load(Path.Combine(Folder, name + ".onnx"));
        var convs = graph.Nodes.OfType<ConvNode>().ToList();
        Assert.Equal((1, 1), (convs[0].PadH, convs[0].PadW));
        Assert.Equal((0, 0), (convs[1].PadH, convs[1].PadW));
        var asymmetric = Assert.IsType<PadNode>(graph.Producer(convs[1].Input));
        Assert.Equal((0, 0, 1, 1), (asymmetric.Top, asymmetric.Left, asymmetric.Bottom, asymmetric.Right));
        var average = graph.Nodes.OfType<PoolNode>().Single(p => p.Kind == PoolKind.Average);
        Assert.Equal((1, true), (average.Padding, average.CountIncludePad));
        var max = graph.Nodes.OfType<PoolNode>().Single(p => p.Kind == PoolKind.Max);
        Assert.Equal(0, max.Padding);
        Assert.IsType<PadNode>(graph.Producer(max.Input));
        Assert.Equal(2, graph.Nodes.OfType<PadNode>().Count());
    }

    [Theory]
    [InlineData("tiny_concat_opset11")]
    [InlineData("tiny_concat_opset17")]
    public void Channel_concats_become_concat_nodes_beside_the_folded_shape_arithmetic(string name)
    {
        var graph = OnnxImporter.Load(Path.Combine(Folder, name + ".onnx"));
        var concats = graph.Nodes.OfType<ConcatNode>().ToList();
        Assert.Equal([3, 2], concats.Select(c => c.Inputs.Length));
        Assert.Equal(12, graph.ChannelsOf(graph.Nodes.ToList().IndexOf(concats[0]) + 1));
        Assert.Equal(16, graph.ChannelsOf(graph.Nodes.ToList().IndexOf(concats[1]) + 1));
    }

    /// <summary>
    /// Imported, exported by our exporter, and run by ONNX Runtime: the same output as the engine on the imported
    /// graph. ONNX Runtime runs without its graph rewrites (see <see cref="OrtHarness.Unoptimized"/>): with them it folds
    /// tiny_pad's zero Pad into the MaxPool after it and no longer computes the file's function.
    /// </summary>
    [Theory]
    [MemberData(nameof(Fixtures))]
    public void Imported_graphs_export_back_to_the_same_output(string name)
    {
        var graph = OnnxImporter.Load(Path.Combine(Folder, name + ".onnx"));
        var bytes = OnnxExporter.ToBytes(graph);
        var model = ModelProto.Parser.ParseFrom(bytes);
        var ops = model.Graph.Node.Select(n => n.OpType).ToHashSet();
        Assert.Equal(graph.Nodes.Any(n => n is SoftmaxNode), ops.Contains("Softmax"));
        Assert.Equal(graph.Nodes.Any(n => n is ConcatNode), ops.Contains("Concat"));
        Assert.Equal(graph.Nodes.Any(n => n is PadNode), ops.Contains("Pad"));

        var input = ReferenceInput();
        using var engine = CompiledModel.Compile(graph);
        using var ort = OrtHarness.Unoptimized(bytes);
        EngineTestSupport.AssertClose(engine.Run(input).Data, ort.Run(input).Data, name);

        // And read back once more: the same nodes.
        var again = OnnxImporter.FromBytes(bytes, name);
        Assert.Equal(graph.Nodes.Select(n => n.GetType()), again.Nodes.Select(n => n.GetType()));
    }

    /// <summary>
    /// A softmax over the channels of a pooled [N, C, 1, 1] feature, with opset 11's coercion to [N, C] (axis 1 and
    /// its default) and opset 13's per-axis form (axis 1 and -3): the same function, run as pool + softmax.
    /// </summary>
    [Theory]
    [InlineData(11, null)]
    [InlineData(11, 1L)]
    [InlineData(13, 1L)]
    [InlineData(17, -3L)]
    public void Softmax_over_pooled_channels_imports_at_every_opset(int opset, long? axis)
    {
        var g = new LayerGraph(3);
        int x = g.Add(ConvNode.Square("conv", LayerGraph.Input, 3, 6, 3, 2, 1, 1, Random(6 * 3 * 9, 1), Random(6, 2)));
        x = g.Add(new GlobalAveragePoolNode("pool", x));
        g.Add(new SoftmaxNode("probs", x));
        var model = OnnxExporter.Build(g);
        model.OpsetImport.Single(o => o.Domain is "" or "ai.onnx").Version = opset;
        var softmax = model.Graph.Node.Single(n => n.OpType == "Softmax");
        softmax.Attribute.Clear();
        if (axis is long a)
        {
            softmax.Attribute.Add(new AttributeProto { Name = "axis", Type = AttributeProto.Types.AttributeType.Int, I = a });
        }

        var bytes = model.ToByteArray();
        var imported = OnnxImporter.FromBytes(bytes, "pooled.onnx");
        Assert.Equal([typeof(ConvNode), typeof(GlobalAveragePoolNode), typeof(SoftmaxNode)], imported.Nodes.Select(n => n.GetType()));
        var input = EngineTestSupport.RandomInput(new Random(4), 2, 3, 10, 10);
        using var ort = OrtHarness.FromBytes(bytes);
        using var engine = CompiledModel.Compile(imported);
        // ONNX Runtime returns [N, C, 1, 1]; the engine returns a 1x1 output as [N, C] rows.
        var expected = ort.Run(input);
        Assert.Equal([2, 6, 1, 1], expected.Shape);
        EngineTestSupport.AssertClose(expected.Data, engine.Run(input).Data, $"opset {opset} axis {axis}");
    }

    [Fact]
    public void Softmax_over_a_spatial_axis_is_refused_by_name()
    {
        var model = OnnxExporter.Build(FeatureGraph());
        model.Graph.Node.Single(n => n.Name == "probs").Attribute.Single(a => a.Name == "axis").I = 2;
        var e = Refuse(model, "softmax.onnx");
        Assert.Contains("node 'probs' (Softmax) normalizes an image-shaped tensor over axis 2", e.Message);
        Assert.Contains("supported: the class axis", e.Message);
    }

    [Fact]
    public void Opset_11_softmax_over_a_feature_map_is_refused_since_it_spans_c_h_and_w()
    {
        var model = OnnxExporter.Build(FeatureGraph());
        model.OpsetImport.Single(o => o.Domain is "" or "ai.onnx").Version = 11;
        var e = Refuse(model, "softmax11.onnx");
        Assert.Contains("node 'probs' (Softmax) normalizes a feature map over C x H x W together (opset 11", e.Message);
    }

    [Theory]
    [InlineData("reflect", "pads in mode 'reflect'; only constant zero padding of H and W is supported")]
    [InlineData("edge", "pads in mode 'edge'")]
    public void Pad_modes_other_than_constant_are_refused_by_name(string mode, string message)
    {
        var model = OnnxExporter.Build(FeatureGraph());
        model.Graph.Node.Single(n => n.OpType == "Pad").Attribute.Add(new AttributeProto { Name = "mode", Type = AttributeProto.Types.AttributeType.String, S = ByteString.CopyFromUtf8(mode) });
        var e = Refuse(model, "pad.onnx");
        Assert.Contains($"node 'pad' (Pad) {message}", e.Message);
    }

    [Fact]
    public void A_non_zero_pad_value_is_refused_by_name()
    {
        var model = OnnxExporter.Build(FeatureGraph());
        var value = new TensorProto { Name = "pad_value", DataType = (int)TensorProto.Types.DataType.Float, RawData = ByteString.CopyFrom(BitConverter.GetBytes(1f)) };
        model.Graph.Initializer.Add(value);
        model.Graph.Node.Single(n => n.OpType == "Pad").Input.Add("pad_value");
        var e = Refuse(model, "pad1.onnx");
        Assert.Contains("node 'pad' (Pad) pads with the constant 1", e.Message);
    }

    [Fact]
    public void Concat_along_height_is_refused_by_name()
    {
        var model = OnnxExporter.Build(FeatureGraph());
        model.Graph.Node.Single(n => n.OpType == "Concat").Attribute.Single(a => a.Name == "axis").I = 2;
        var e = Refuse(model, "cat.onnx");
        Assert.Contains("node 'cat' (Concat) joins feature maps along axis 2; only the channel axis (1) of NCHW feature maps is supported", e.Message);
    }

    /// <summary>
    /// conv -> asymmetric pad -> conv, concat of the two convs' outputs, softmax over channels ("probs"), then global
    /// pool, fc and softmax over the classes ("classes"): the graph the refusal tests edit.
    /// </summary>
    private static LayerGraph FeatureGraph()
    {
        var g = new LayerGraph(3);
        int a = g.Add(ConvNode.Square("conv", LayerGraph.Input, 3, 4, 3, 1, 1, 1, Random(4 * 3 * 9, 1), Random(4, 2)));
        int p = g.Add(new PadNode("pad", a, 0, 0, 2, 2));
        int b = g.Add(ConvNode.Square("conv2", p, 4, 4, 3, 1, 0, 1, Random(4 * 4 * 9, 3), Random(4, 4)));
        int c = g.Add(new ConcatNode("cat", [a, b]));
        int probs = g.Add(new SoftmaxNode("probs", c));
        int pooled = g.Add(new GlobalAveragePoolNode("pool", probs));
        int logits = g.Add(new LinearNode("fc", pooled, 8, 5, Random(40, 5).Select(v => v * 10).ToArray(), Random(5, 6)));
        g.Add(new SoftmaxNode("classes", logits));
        return g;
    }

    /// <summary>Our export of every value of the feature graph, run by ONNX Runtime, against the float64 <see cref="Graph.GraphReference"/>.</summary>
    [Fact]
    public void The_exported_nodes_compute_their_definitions_in_onnxruntime()
    {
        var g = FeatureGraph();
        var input = EngineTestSupport.RandomInput(new Random(5), 2, 3, 9, 11);
        var expected = Graph.GraphReference.EvaluateAll(g, input);
        for (int value = 1; value <= g.Nodes.Count; value++)
        {
            g.Output = value;
            using var ort = OrtHarness.Unoptimized(OnnxExporter.ToBytes(g));
            var actual = ort.Run(input);
            Assert.Equal(expected[value].Length, actual.Data.Length);
            EngineTestSupport.AssertClose(expected[value].Select(v => (float)v).ToArray(), actual.Data, $"value {value} ({g.Nodes[value - 1].Name})");
        }

        // The classes' softmax is [batch, classes], as the engine returns it.
        using var final = OrtHarness.Unoptimized(OnnxExporter.ToBytes(g));
        using var engine = CompiledModel.Compile(g);
        var output = final.Run(input);
        Assert.Equal([2, 5], output.Shape);
        EngineTestSupport.AssertClose(output.Data, engine.Run(input).Data, "engine");
    }

    /// <summary>
    /// Pads a pooling or convolution cannot take exactly stay pad nodes: before an average pool that does not count
    /// its own padding, and the one-sided rest of a Conv's own asymmetric pads (TF's SAME), which were refused before
    /// the engine had a pad node.
    /// </summary>
    [Fact]
    public void Pads_that_do_not_fold_exactly_run_as_pad_nodes()
    {
        var g = new LayerGraph(3);
        int a = g.Add(ConvNode.Square("conv", LayerGraph.Input, 3, 4, 3, 2, 0, 1, Random(4 * 3 * 9, 1), Random(4, 2)));
        int p = g.Add(new PadNode("pad", a, 1, 1, 1, 1));
        g.Add(new PoolNode("avg", p, PoolKind.Average, 3, 1, 1, CountIncludePad: false));
        var model = OnnxExporter.Build(g);
        var conv = model.Graph.Node.Single(n => n.Name == "conv");
        conv.Attribute.Remove(conv.Attribute.Single(x => x.Name == "pads"));
        conv.Attribute.Add(new AttributeProto { Name = "pads", Type = AttributeProto.Types.AttributeType.Ints, Ints = { 0, 1, 1, 2 } });
        var bytes = model.ToByteArray();

        var imported = OnnxImporter.FromBytes(bytes, "pads.onnx");
        var convPad = Assert.IsType<PadNode>(imported.Nodes[0]);
        Assert.Equal((0, 0, 1, 1), (convPad.Top, convPad.Left, convPad.Bottom, convPad.Right));
        Assert.Equal((0, 1), (((ConvNode)imported.Nodes[1]).PadH, ((ConvNode)imported.Nodes[1]).PadW));
        Assert.IsType<PadNode>(imported.Nodes[2]);
        var pool = Assert.IsType<PoolNode>(imported.Nodes[3]);
        Assert.Equal((3, 1, false), (pool.Input, pool.Padding, pool.CountIncludePad));

        var input = EngineTestSupport.RandomInput(new Random(8), 2, 3, 12, 11);
        using var ort = OrtHarness.FromBytes(bytes);
        using var engine = CompiledModel.Compile(imported);
        EngineTestSupport.AssertClose(ort.Run(input).Data, engine.Run(input).Data, "pads");
    }

    private static CheckpointException Refuse(ModelProto model, string source) =>
        Assert.Throws<CheckpointException>(() => OnnxImporter.FromBytes(model.ToByteArray(), source));

    private static Tensor ReferenceInput()
    {
        using var doc = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(Folder, "reference.json")));
        var root = doc.RootElement;
        return new Tensor([.. root.GetProperty("input_shape").EnumerateArray().Select(d => d.GetInt32())], [.. root.GetProperty("input").EnumerateArray().Select(v => v.GetSingle())]);
    }

    private static float[] Random(int n, int seed)
    {
        var v = new float[n];
        WeightInit.FillNormal(new Random(seed), v, 0, 0.3);
        return v;
    }
}
