using System.Buffers.Binary;
using System.Reflection;
using Google.Protobuf;
using MobileOne.Graph;
using MobileOne.IO.Onnx;
using MobileOne.Kernels;
using MobileOne.Models;
using MobileOne.Tests.Inference;
using Onnx;

namespace MobileOne.Tests.IO.Onnx;

/// <summary>
/// What the exporter writes, read back field by field with the ONNX message types: the model's header and metadata
/// for each kind of network and opset, each node's attributes in ONNX's order (pads as begins then ends, H before
/// W), the initializers' names, shapes and bytes, the names made unique, the rank of each value and the output
/// shape it declares. The expected values come from the ONNX specification and the output-size formula, not from
/// the exporter; ONNX Runtime runs the graphs whose structure alone would not show they compute the right thing.
/// </summary>
public class OnnxExportEdgeTests
{
    private static float[] Random(int n, int seed)
    {
        var v = new float[n];
        WeightInit.FillNormal(new Random(seed), v, 0, 0.3);
        return v;
    }

    private static AttributeProto Attribute(NodeProto node, string name) => node.Attribute.Single(a => a.Name == name);

    private static string Dim(TensorShapeProto.Types.Dimension d) => d.HasDimParam ? d.DimParam : d.DimValue.ToString(System.Globalization.CultureInfo.InvariantCulture);

    private static string[] OutputDims(ModelProto model) => [.. Assert.Single(model.Graph.Output).Type.TensorType.Shape.Dim.Select(Dim)];

    private static long[] Int64s(TensorProto t)
    {
        Assert.Equal((int)TensorProto.Types.DataType.Int64, t.DataType);
        byte[] bytes = t.RawData.ToByteArray();
        return [.. Enumerable.Range(0, bytes.Length / 8).Select(i => BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan(i * 8, 8)))];
    }

    private static float[] Floats(TensorProto t)
    {
        Assert.Equal((int)TensorProto.Types.DataType.Float, t.DataType);
        byte[] bytes = t.RawData.ToByteArray();
        return [.. Enumerable.Range(0, bytes.Length / 4).Select(i => BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(i * 4, 4)))];
    }

    /// <summary>input [N, 3, H, W] -> global pool -> linear 3 -> 2.</summary>
    private static LayerGraph Classifier()
    {
        var g = new LayerGraph(3);
        int x = g.Add(new GlobalAveragePoolNode("pool", LayerGraph.Input));
        g.Add(new LinearNode("fc", x, 3, 2, Random(6, 1), Random(2, 2)));
        return g;
    }

    [Fact]
    public void Null_arguments_are_refused_by_name_before_anything_is_written()
    {
        var network = OnnxExporterTests.RandomCustomNetwork(out _);
        var graph = Classifier();
        using var stream = new MemoryStream();
        Assert.Equal("path", Assert.Throws<ArgumentNullException>(() => OnnxExporter.Export((ClassifierNetwork)null!, (string)null!)).ParamName);
        Assert.Equal("stream", Assert.Throws<ArgumentNullException>(() => OnnxExporter.Export(network, (Stream)null!)).ParamName);
        Assert.Equal("network", Assert.Throws<ArgumentNullException>(() => OnnxExporter.Export((ClassifierNetwork)null!, stream)).ParamName);
        Assert.Equal("network", Assert.Throws<ArgumentNullException>(() => OnnxExporter.Build((ClassifierNetwork)null!)).ParamName);
        Assert.Equal("path", Assert.Throws<ArgumentNullException>(() => OnnxExporter.Export((LayerGraph)null!, (string)null!)).ParamName);
        Assert.Equal("stream", Assert.Throws<ArgumentNullException>(() => OnnxExporter.Export(graph, (Stream)null!)).ParamName);
        Assert.Equal("graph", Assert.Throws<ArgumentNullException>(() => OnnxExporter.Export((LayerGraph)null!, stream)).ParamName);
        Assert.Equal("graph", Assert.Throws<ArgumentNullException>(() => OnnxExporter.Build((LayerGraph)null!)).ParamName);
        Assert.Equal(0, stream.Length);
    }

    [Theory]
    [InlineData(12)]
    [InlineData(18)]
    public void A_layer_graph_is_written_at_opsets_13_to_17_only(int opset)
    {
        var e = Assert.Throws<ArgumentException>(() => OnnxExporter.Build(Classifier(), opset));
        Assert.Equal($"ONNX opset must be between 13 and 17; got {opset}.", e.Message);
        using var dir = new TempDir();
        Assert.Throws<ArgumentException>(() => OnnxExporter.Export(Classifier(), dir.File("g.onnx"), opset));
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));
    }

    [Theory]
    [InlineData(13, 7)]
    [InlineData(14, 7)]
    [InlineData(15, 8)]
    [InlineData(17, 8)]
    public void A_layer_graphs_model_names_its_producer_opset_and_shapes(int opset, long irVersion)
    {
        var model = OnnxExporter.Build(Classifier(), opset);
        Assert.Equal(irVersion, model.IrVersion);
        var import = Assert.Single(model.OpsetImport);
        Assert.Equal((string.Empty, (long)opset), (import.Domain, import.Version));
        Assert.Equal("mobileone-dotnet", model.ProducerName);
        string version = typeof(OnnxExporter).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()!.InformationalVersion;
        Assert.Equal(version, model.ProducerVersion);
        Assert.Equal("layer_graph", model.Graph.Name);
        Assert.Equal("A layer graph of 2 nodes.", model.Graph.DocString);
        Assert.Equal("A layer graph of 2 nodes. Exported by mobileone-dotnet: input 'input' float32 [batch, 3, height, width], output 'logits' float32 [batch, 2].", model.DocString);
        Assert.Empty(model.MetadataProps);
    }

    [Fact]
    public void A_layer_graph_writes_the_same_bytes_to_a_file_a_stream_and_an_array()
    {
        var graph = Classifier();
        using var dir = new TempDir();
        OnnxExporter.Export(graph, dir.File("g.onnx"), 14);
        using var stream = new MemoryStream();
        OnnxExporter.Export(graph, stream, 14);
        byte[] bytes = OnnxExporter.ToBytes(graph, 14);
        Assert.Equal(bytes, File.ReadAllBytes(dir.File("g.onnx")));
        Assert.Equal(bytes, stream.ToArray());
        Assert.Equal(14, ModelProto.Parser.ParseFrom(bytes).OpsetImport[0].Version);
        Assert.Equal(17, ModelProto.Parser.ParseFrom(OnnxExporter.ToBytes(graph)).OpsetImport[0].Version);
    }

    [Fact]
    public void A_mobileone_is_described_by_its_config_and_form()
    {
        var network = OnnxExporterTests.RandomCustomNetwork(out var config);
        var fused = OnnxExporter.Build(network);
        Assert.Equal($"mobileone_{config.Name}", fused.Graph.Name);
        Assert.Equal($"MobileOne {config}, reparameterized (fused) for inference.", fused.Graph.DocString);
        Assert.Equal(
            $"MobileOne-{config.Name} exported by mobileone-dotnet: input 'input' float32 [batch, {config.InChans}, height, width], output 'logits' float32 [batch, {config.NumClasses}].",
            fused.DocString);
        Assert.Equal(
            [("architecture", config.ToString()), ("variant", config.Name), ("num_classes", config.NumClasses.ToString(System.Globalization.CultureInfo.InvariantCulture)), ("form", "fused")],
            fused.MetadataProps.Select(p => (p.Key, p.Value)));

        var unfused = OnnxExporter.Build(network, fuse: false);
        Assert.Equal($"MobileOne {config}, train-time form: every branch as Conv + BatchNormalization (running statistics) and their sum.", unfused.Graph.DocString);
        Assert.Equal("train-time", unfused.MetadataProps.Single(p => p.Key == "form").Value);
        Assert.Contains(unfused.Graph.Node, n => n.OpType == "BatchNormalization");

        // MobileOne's node names as the exporter has always written them.
        var names = fused.Graph.Node.Select(n => n.Name).ToHashSet();
        Assert.Contains("stem.conv", names);
        Assert.Contains("stem.relu", names);
        Assert.Contains("head.flatten", names);
        Assert.Contains("head.fc", names);
        Assert.DoesNotContain(names, n => n.EndsWith(".reparam_conv", StringComparison.Ordinal) || n.EndsWith(".act", StringComparison.Ordinal) || n == "head.fc.flatten");
        Assert.Contains(fused.Graph.Initializer, t => t.Name == "stem.reparam_conv.weight");
    }

    [Fact]
    public void A_plain_zoo_network_is_described_by_its_architecture_and_keeps_timms_names()
    {
        var plain = ModelRegistry.Get("mobilenetv2_050").Create(numClasses: 7, seed: 1);
        var model = OnnxExporter.Build(plain);
        Assert.Equal(plain.Architecture, model.Graph.Name);
        Assert.Equal($"{plain.Description}, plain form.", model.Graph.DocString);
        Assert.Equal(
            [("architecture", plain.Architecture), ("variant", plain.Architecture), ("num_classes", "7"), ("form", "plain")],
            model.MetadataProps.Select(p => (p.Key, p.Value)));
        Assert.EndsWith("output 'logits' float32 [batch, 7].", model.DocString);
        Assert.Equal(plain.ToGraph().Nodes.Count(n => n is LinearNode), model.Graph.Node.Count(n => n.OpType == "Gemm"));
        Assert.Contains(model.Graph.Initializer, t => t.Name == "conv_stem.weight");
        Assert.Equal(7, OnnxExporter.Build(plain, 13).IrVersion);

        // The reparameterizable zoo family (RepVGG, 8M parameters even at its smallest) is left to
        // ZooFixtureParityTests, which exports it fused and unfused: building one here would set the pace of every
        // mutation run of the writer.
    }

    /// <summary>
    /// A convolution of the pooled 1x1 value: its output is 1x1 for every input size exactly when
    /// 0 &lt;= 1 + 2 pad - (dilation (kernel - 1) + 1) &lt; stride on both axes (the output size is
    /// floor((1 + 2 pad - extent) / stride) + 1), and the output is then declared [batch, C, 1, 1].
    /// </summary>
    [Theory]
    [InlineData(1, 1, 0, 0, 1, 1, 1, 1, true)]
    [InlineData(3, 3, 1, 1, 1, 1, 1, 1, true)]
    [InlineData(3, 3, 0, 0, 1, 1, 1, 1, false)]
    [InlineData(1, 1, 1, 1, 2, 2, 1, 1, false)]
    [InlineData(1, 1, 1, 1, 3, 3, 1, 1, true)]
    [InlineData(3, 3, 2, 2, 1, 1, 2, 2, true)]
    [InlineData(3, 3, 1, 1, 1, 1, 2, 2, false)]
    [InlineData(1, 3, 0, 1, 1, 1, 1, 1, true)]
    [InlineData(3, 1, 1, 0, 1, 1, 1, 1, true)]
    [InlineData(1, 3, 0, 0, 1, 1, 1, 1, false)]
    [InlineData(3, 1, 0, 0, 1, 1, 1, 1, false)]
    [InlineData(1, 1, 0, 1, 1, 2, 1, 1, false)]
    [InlineData(1, 1, 1, 0, 2, 1, 1, 1, false)]
    [InlineData(1, 3, 0, 2, 1, 3, 1, 2, true)]
    [InlineData(3, 1, 1, 0, 1, 1, 2, 1, false)]
    [InlineData(1, 3, 0, 1, 1, 1, 1, 2, false)]
    public void A_convolution_of_a_pooled_value_is_declared_1x1_exactly_when_its_output_is(
        int kh, int kw, int ph, int pw, int sh, int sw, int dh, int dw, bool unit)
    {
        var g = new LayerGraph(3);
        int x = g.Add(new GlobalAveragePoolNode("pool", LayerGraph.Input));
        g.Add(new ConvNode("conv", x, 3, 4, kh, kw, sh, sw, ph, pw, dh, dw, 1, Random(12 * kh * kw, 3), null));
        var model = OnnxExporter.Build(g);
        string[] expected = unit ? ["batch", "4", "1", "1"] : ["batch", "4", "output_height", "output_width"];
        Assert.Equal(expected, OutputDims(model));
        Assert.EndsWith($"output 'logits' float32 [{string.Join(", ", expected)}].", model.DocString);
    }

    [Theory]
    [InlineData(1, 1, 0, true)]
    [InlineData(3, 1, 1, true)]
    [InlineData(2, 1, 0, false)]
    [InlineData(2, 2, 1, true)]
    [InlineData(2, 1, 1, false)]
    public void A_pooling_of_a_pooled_value_is_declared_1x1_exactly_when_its_output_is(int kernel, int stride, int pad, bool unit)
    {
        var g = new LayerGraph(3);
        int x = g.Add(new GlobalAveragePoolNode("pool", LayerGraph.Input));
        g.Add(new PoolNode("max", x, PoolKind.Max, kernel, stride, pad));
        Assert.Equal(unit ? ["batch", "3", "1", "1"] : ["batch", "3", "output_height", "output_width"], OutputDims(OnnxExporter.Build(g)));
    }

    [Fact]
    public void Each_node_keeps_or_sets_the_rank_and_unit_size_of_its_value()
    {
        static string[] Dims(Func<LayerGraph, int, int> add)
        {
            var g = new LayerGraph(4);
            int pooled = g.Add(new GlobalAveragePoolNode("pool", LayerGraph.Input));
            add(g, pooled);
            return OutputDims(OnnxExporter.Build(g));
        }

        string[] unit = ["batch", "4", "1", "1"];
        string[] spatial = ["batch", "4", "output_height", "output_width"];
        Assert.Equal(unit, Dims((g, x) => g.Add(new BatchNormNode("bn", x, 4, [1, 1, 1, 1], [0, 0, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1], 1e-5))));
        Assert.Equal(unit, Dims((g, x) => g.Add(new ActivationNode("act", x, ActivationKind.Gelu))));
        Assert.Equal(unit, Dims((g, x) => g.Add(new SoftmaxNode("sm", x))));
        Assert.Equal(unit, Dims((g, x) => g.Add(new SqueezeExciteNode("se", x, 4, 2, Random(8, 1), Random(2, 2), Random(8, 3), Random(4, 4)))));
        Assert.Equal(unit, Dims((g, x) => g.Add(new AddNode("add", [x, g.Add(new ActivationNode("relu", x, ActivationKind.Relu))]))));
        Assert.Equal(["batch", "8", "1", "1"], Dims((g, x) => g.Add(new ConcatNode("cat", [x, x]))));
        Assert.Equal(spatial, Dims((g, x) => g.Add(new PadNode("pad", x, 0, 0, 0, 0))));
        Assert.Equal(spatial, Dims((g, x) => g.Add(new AddNode("add", [g.Add(new ActivationNode("relu", LayerGraph.Input, ActivationKind.Relu)), LayerGraph.Input]))));
        Assert.Equal(["batch", "8", "output_height", "output_width"], Dims((g, x) => g.Add(new ConcatNode("cat", [LayerGraph.Input, LayerGraph.Input]))));
        Assert.Equal(spatial, Dims((g, x) => g.Add(new ActivationNode("act", LayerGraph.Input, ActivationKind.Relu))));

        // After a linear layer values are [batch, features]; element-wise nodes and sums of such values keep that rank.
        Assert.Equal(["batch", "2"], Dims((g, x) => g.Add(new ActivationNode("act", g.Add(new LinearNode("fc", x, 4, 2, Random(8, 1), null)), ActivationKind.Sigmoid))));
        Assert.Equal(["batch", "2"], Dims((g, x) =>
        {
            int a = g.Add(new LinearNode("fc1", x, 4, 2, Random(8, 1), null));
            int b = g.Add(new LinearNode("fc2", x, 4, 2, Random(8, 2), null));
            return g.Add(new AddNode("add", [a, b]));
        }));
        Assert.Equal(["batch", "4", "1", "1"], Dims((g, x) => g.Add(new AddNode("add", [g.Add(new LinearNode("fc", x, 4, 4, Random(16, 1), null)), x]))));
    }

    /// <summary>
    /// A value of rank 2 read by a node that needs NCHW goes through one Unsqueeze (axes 2 and 3, one shared
    /// initializer); flat values are summed flat. ONNX Runtime runs it to the float64 reference.
    /// </summary>
    [Fact]
    public void A_flat_value_is_unsqueezed_once_where_a_node_needs_nchw()
    {
        var g = new LayerGraph(3);
        int pooled = g.Add(new GlobalAveragePoolNode("pool", LayerGraph.Input));
        int fc1 = g.Add(new LinearNode("fc1", pooled, 3, 4, Random(12, 1), Random(4, 2)));
        int fc2 = g.Add(new LinearNode("fc2", pooled, 3, 4, Random(12, 3), null));
        int flatSum = g.Add(new AddNode("flat_sum", [fc1, fc2]));
        int bn = g.Add(new BatchNormNode("bn", fc1, 4, [1, 2, 3, 4], [0.1f, 0.2f, 0.3f, 0.4f], [0, 1, 0, 1], [1, 2, 3, 4], 1e-3));
        int conv = g.Add(ConvNode.Square("conv", fc1, 4, 4, 1, 1, 0, 1, Random(16, 4), null));
        int conv2 = g.Add(ConvNode.Square("conv2", fc2, 4, 4, 1, 1, 0, 1, Random(16, 5), null));
        int mixed = g.Add(new AddNode("mixed", [bn, conv, conv2, flatSum]));
        g.Add(new LinearNode("head", mixed, 4, 2, Random(8, 6), null));
        var model = OnnxExporter.Build(g);
        var nodes = model.Graph.Node.ToDictionary(n => n.Name);

        Assert.Equal("Add", nodes["flat_sum"].OpType);
        Assert.Equal(["fc1", "fc2"], nodes["flat_sum"].Input);
        var unsqueezes = model.Graph.Node.Where(n => n.OpType == "Unsqueeze").ToList();
        Assert.Equal(["fc1.nchw", "fc2.nchw", "flat_sum.nchw"], unsqueezes.Select(n => n.Name));
        Assert.All(unsqueezes, u => Assert.Equal("const.unsqueeze_axes", u.Input[1]));
        Assert.Equal([2L, 3], Int64s(Assert.Single(model.Graph.Initializer, t => t.Name == "const.unsqueeze_axes")));
        Assert.Equal("fc1.nchw", nodes["bn"].Input[0]);
        Assert.Equal("fc1.nchw", nodes["conv"].Input[0]);
        Assert.Equal("Sum", nodes["mixed"].OpType);
        Assert.Equal(["bn", "conv", "conv2", "flat_sum.nchw"], nodes["mixed"].Input);
        // The head's input is NCHW again, so it flattens; a linear layer on a flat value does not.
        Assert.Equal("Flatten", nodes["head.flatten"].OpType);
        Assert.Equal(1, Attribute(nodes["head.flatten"], "axis").I);
        Assert.Equal("fc1", nodes["fc1"].Output[0]);
        Assert.Equal(["fc2.flatten", "fc2.weight"], nodes["fc2"].Input);

        var input = EngineTestSupport.RandomInput(new Random(9), 2, 3, 5, 4);
        var expected = Graph.GraphReference.Evaluate(g, input);
        using var ort = OrtHarness.Unoptimized(model.ToByteArray());
        EngineTestSupport.AssertClose(expected.Select(v => (float)v).ToArray(), ort.Run(input).Data, "unsqueezed graph");
    }

    [Fact]
    public void A_linear_layer_on_a_flat_value_is_a_gemm_without_flatten_and_without_a_bias_input()
    {
        var g = Classifier();
        g.Add(new LinearNode("fc2", 2, 2, 3, Random(6, 7), null));
        var model = OnnxExporter.Build(g);
        var gemms = model.Graph.Node.Where(n => n.OpType == "Gemm").ToList();
        Assert.Equal(2, gemms.Count);
        Assert.Equal(["fc.flatten", "fc.weight", "fc.bias"], gemms[0].Input);
        Assert.Equal(["fc", "fc2.weight"], gemms[1].Input);
        Assert.Single(model.Graph.Node, n => n.OpType == "Flatten");
        foreach (var gemm in gemms)
        {
            Assert.Equal((1f, 1f, 1L), (Attribute(gemm, "alpha").F, Attribute(gemm, "beta").F, Attribute(gemm, "transB").I));
        }

        var weight = model.Graph.Initializer.Single(t => t.Name == "fc2.weight");
        Assert.Equal([3L, 2], weight.Dims);
        Assert.Equal(Random(6, 7), Floats(weight));
    }

    [Fact]
    public void Convolution_and_batch_norm_attributes_and_initializers_follow_the_onnx_layout()
    {
        var g = new LayerGraph(3);
        int conv = g.Add(new ConvNode("conv", LayerGraph.Input, 3, 4, 1, 3, 2, 1, 0, 1, 1, 2, 1, Random(36, 1), Random(4, 2)));
        int grouped = g.Add(ConvNode.Square("grouped", conv, 4, 6, 3, 1, 1, 2, Random(6 * 2 * 9, 3), null));
        g.Add(new BatchNormNode("bn", grouped, 6, Random(6, 4), Random(6, 5), Random(6, 6), [1, 2, 3, 4, 5, 6], 1e-3));
        var model = OnnxExporter.Build(g);
        var nodes = model.Graph.Node.ToDictionary(n => n.Name);
        var initializers = model.Graph.Initializer.ToDictionary(t => t.Name);

        var c = nodes["conv"];
        Assert.Equal(["dilations", "group", "kernel_shape", "pads", "strides"], c.Attribute.Select(a => a.Name));
        Assert.Equal([1L, 2], Attribute(c, "dilations").Ints);
        Assert.Equal(1, Attribute(c, "group").I);
        Assert.Equal([1L, 3], Attribute(c, "kernel_shape").Ints);
        Assert.Equal([0L, 1, 0, 1], Attribute(c, "pads").Ints);
        Assert.Equal([2L, 1], Attribute(c, "strides").Ints);
        Assert.Equal(["input", "conv.weight", "conv.bias"], c.Input);
        Assert.Equal([4L, 3, 1, 3], initializers["conv.weight"].Dims);
        Assert.Equal(Random(36, 1), Floats(initializers["conv.weight"]));
        Assert.Equal([4L], initializers["conv.bias"].Dims);
        Assert.Equal(Random(4, 2), Floats(initializers["conv.bias"]));

        Assert.Equal(2, Attribute(nodes["grouped"], "group").I);
        Assert.Equal(["conv", "grouped.weight"], nodes["grouped"].Input);
        Assert.Equal([6L, 2, 3, 3], initializers["grouped.weight"].Dims);

        var bn = nodes["bn"];
        Assert.Equal(["grouped", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"], bn.Input);
        Assert.Equal(1e-3f, Attribute(bn, "epsilon").F);
        Assert.Equal(AttributeProto.Types.AttributeType.Float, Attribute(bn, "epsilon").Type);
        Assert.Equal([1f, 2, 3, 4, 5, 6], Floats(initializers["bn.running_var"]));
        Assert.All(bn.Input.Skip(1), name => Assert.Equal([6L], initializers[name].Dims));
        Assert.Equal(["logits"], bn.Output);
    }

    [Fact]
    public void Pooling_pad_softmax_and_concat_carry_their_onnx_attributes()
    {
        var g = new LayerGraph(3);
        int avg = g.Add(new PoolNode("avg", LayerGraph.Input, PoolKind.Average, 3, 2, 1, CountIncludePad: false));
        int counted = g.Add(new PoolNode("counted", avg, PoolKind.Average, 2, 1, 1));
        int max = g.Add(new PoolNode("max", counted, PoolKind.Max, 3, 1, 1));
        int pad = g.Add(new PadNode("pad", max, 1, 2, 3, 4));
        int cat = g.Add(new ConcatNode("cat", [pad, pad]));
        g.Add(new SoftmaxNode("sm", cat));
        var model = OnnxExporter.Build(g);
        var nodes = model.Graph.Node.ToDictionary(n => n.Name);

        Assert.Equal("AveragePool", nodes["avg"].OpType);
        Assert.Equal(["count_include_pad", "kernel_shape", "pads", "strides"], nodes["avg"].Attribute.Select(a => a.Name));
        Assert.Equal(0, Attribute(nodes["avg"], "count_include_pad").I);
        Assert.Equal([3L, 3], Attribute(nodes["avg"], "kernel_shape").Ints);
        Assert.Equal([1L, 1, 1, 1], Attribute(nodes["avg"], "pads").Ints);
        Assert.Equal([2L, 2], Attribute(nodes["avg"], "strides").Ints);
        Assert.Equal(1, Attribute(nodes["counted"], "count_include_pad").I);
        Assert.Equal("MaxPool", nodes["max"].OpType);
        Assert.Equal(["kernel_shape", "pads", "strides"], nodes["max"].Attribute.Select(a => a.Name));

        Assert.Equal("Pad", nodes["pad"].OpType);
        Assert.Empty(nodes["pad"].Attribute);
        Assert.Equal(["max", "pad.pads"], nodes["pad"].Input);
        Assert.Equal([0L, 0, 1, 2, 0, 0, 3, 4], Int64s(model.Graph.Initializer.Single(t => t.Name == "pad.pads")));
        Assert.Equal([8L], model.Graph.Initializer.Single(t => t.Name == "pad.pads").Dims);

        Assert.Equal(["pad", "pad"], nodes["cat"].Input);
        Assert.Equal(1, Attribute(nodes["cat"], "axis").I);
        Assert.Equal(1, Attribute(nodes["sm"], "axis").I);
        Assert.Equal(["cat"], nodes["sm"].Input);
    }

    [Theory]
    [InlineData(13)]
    [InlineData(14)]
    public void HardSwish_is_an_operator_from_opset_14_and_x_times_hardsigmoid_before(int opset)
    {
        var g = new LayerGraph(3);
        g.Add(new ActivationNode("hs", LayerGraph.Input, ActivationKind.HardSwish));
        var model = OnnxExporter.Build(g, opset);
        if (opset >= 14)
        {
            var node = Assert.Single(model.Graph.Node);
            Assert.Equal(("HardSwish", "hs", "input"), (node.OpType, node.Name, node.Input[0]));
        }
        else
        {
            Assert.Equal(["HardSigmoid", "Mul"], model.Graph.Node.Select(n => n.OpType));
            var hardSigmoid = model.Graph.Node[0];
            Assert.Equal("hs.hardsigmoid", hardSigmoid.Name);
            Assert.Equal((1f / 6, 0.5f), (Attribute(hardSigmoid, "alpha").F, Attribute(hardSigmoid, "beta").F));
            Assert.Equal(["input", "hs.hardsigmoid"], model.Graph.Node[1].Input);
        }
    }

    [Fact]
    public void Scalar_constants_are_one_float_initializer_per_value_named_by_it()
    {
        var g = new LayerGraph(3);
        int a = g.Add(new ActivationNode("a", LayerGraph.Input, ActivationKind.Relu6));
        int b = g.Add(new ActivationNode("b", a, ActivationKind.Relu6));
        g.Add(new ActivationNode("c", b, ActivationKind.Gelu));
        var model = OnnxExporter.Build(g);
        var constants = model.Graph.Initializer.Where(t => t.Name.StartsWith("const.", StringComparison.Ordinal)).ToList();
        Assert.Equal(["const.0", "const.6", "const.1.4142135", "const.1", "const.0.5"], constants.Select(t => t.Name));
        Assert.All(constants, t => Assert.Empty(t.Dims));
        Assert.Equal([0f, 6f, MathF.Sqrt(2), 1f, 0.5f], constants.Select(t => Assert.Single(Floats(t))));
        Assert.Equal(["a", "const.0", "const.6"], model.Graph.Node.Single(n => n.Name == "b").Input);
    }

    [Theory]
    [InlineData(ActivationKind.None, "identity", "Identity")]
    [InlineData(ActivationKind.Relu, "relu", "Relu")]
    [InlineData(ActivationKind.HardSwish, "hardswish", "HardSwish")]
    [InlineData(ActivationKind.GeluTanh, "gelu_tanh", "Mul")]
    [InlineData(ActivationKind.Sigmoid, "sigmoid", "Sigmoid")]
    public void Squeeze_excite_nodes_are_named_after_the_block_and_each_activation(ActivationKind inner, string suffix, string op)
    {
        var g = new LayerGraph(4);
        int x = g.Add(new ActivationNode("x", LayerGraph.Input, ActivationKind.Relu));
        g.Add(new SqueezeExciteNode("attn", x, 4, 2, Random(8, 1), Random(2, 2), Random(8, 3), Random(4, 4), inner, ActivationKind.HardSigmoid));
        g.Add(new ActivationNode("out", g.Nodes.Count, ActivationKind.Relu));
        var model = OnnxExporter.Build(g, 14);
        var nodes = model.Graph.Node.ToDictionary(n => n.Name);
        Assert.Equal(op, nodes[$"attn.{suffix}"].OpType);
        Assert.Equal(["attn.pool", "attn.fc1.weight", "attn.fc1.bias"], nodes["attn.fc1"].Input);
        Assert.Equal($"attn.{suffix}", nodes["attn.fc2"].Input[0]);
        Assert.Equal("HardSigmoid", nodes["attn.hardsigmoid"].OpType);
        Assert.Equal(["x", "attn.hardsigmoid"], nodes["attn.scale"].Input);
        Assert.Equal(["attn.scale"], nodes["attn.scale"].Output);
        Assert.Equal(["attn.scale"], nodes["out"].Input);
        foreach (var conv in new[] { nodes["attn.fc1"], nodes["attn.fc2"] })
        {
            Assert.Equal([1L, 1], Attribute(conv, "kernel_shape").Ints);
            Assert.Equal([0L, 0, 0, 0], Attribute(conv, "pads").Ints);
            Assert.Equal((1L, 1L), (Attribute(conv, "strides").Ints[0], Attribute(conv, "dilations").Ints[1]));
            Assert.Equal(1, Attribute(conv, "group").I);
        }

        Assert.Equal([2L, 4, 1, 1], model.Graph.Initializer.Single(t => t.Name == "attn.fc1.weight").Dims);
        Assert.Equal([4L, 2, 1, 1], model.Graph.Initializer.Single(t => t.Name == "attn.fc2.weight").Dims);

        var input = EngineTestSupport.RandomInput(new Random(2), 1, 4, 3, 5);
        var expected = Graph.GraphReference.Evaluate(g, input);
        using var ort = OrtHarness.Unoptimized(model.ToByteArray());
        EngineTestSupport.AssertClose(expected.Select(v => (float)v).ToArray(), ort.Run(input).Data, inner.ToString());
    }

    [Fact]
    public void A_squeeze_excite_that_is_the_output_writes_the_output_from_its_mul()
    {
        var g = new LayerGraph(4);
        g.Add(new SqueezeExciteNode("attn", LayerGraph.Input, 4, 2, Random(8, 1), Random(2, 2), Random(8, 3), Random(4, 4)));
        var model = OnnxExporter.Build(g);
        var scale = model.Graph.Node.Single(n => n.Name == "attn.scale");
        Assert.Equal(("Mul", "logits"), (scale.OpType, scale.Output[0]));
        Assert.Equal(["input", "attn.sigmoid"], scale.Input);
    }

    [Fact]
    public void Clashing_names_take_the_first_free_numbered_suffix()
    {
        var g = new LayerGraph(3);
        int x = g.Add(new ActivationNode("x", LayerGraph.Input, ActivationKind.Relu));
        x = g.Add(new ActivationNode("x", x, ActivationKind.Relu));
        x = g.Add(new ActivationNode("x", x, ActivationKind.Relu));
        x = g.Add(new ActivationNode("input", x, ActivationKind.Relu));
        x = g.Add(ConvNode.Square("c", x, 3, 3, 1, 1, 0, 1, Random(9, 1), null));
        x = g.Add(ConvNode.Square("c", x, 3, 3, 1, 1, 0, 1, Random(9, 2), null));
        g.Add(new ActivationNode("end", x, ActivationKind.Relu));
        var model = OnnxExporter.Build(g);
        Assert.Equal(["x", "x_1", "x_2", "input_1", "c", "c_1", "end"], model.Graph.Node.Select(n => n.Name));
        Assert.Equal(["x", "x_1", "x_2", "input_1", "c", "c_1", "logits"], model.Graph.Node.Select(n => n.Output[0]));
        Assert.Equal(["c.weight", "c.weight_1"], model.Graph.Initializer.Select(t => t.Name));
    }

    [Fact]
    public void A_sparse_convolution_is_written_as_the_dense_convolution_it_equals()
    {
        // Output channel 0 stores column 2, channel 1 columns 0 and 1 of the [2, 3] matrix of a 1x1 convolution.
        var g = new LayerGraph(3);
        g.Add(new SparseConvNode("conv", LayerGraph.Input, 3, 2, 1, 1, 1, 1, 0, 0, [0, 1, 3], [2, 0, 1], [5, 6, 7]));
        var dense = new ConvNode("conv", LayerGraph.Input, 3, 2, 1, 1, 1, 1, 0, 0, 1, 1, 1, [0, 0, 5, 6, 7, 0], null);
        var reference = new LayerGraph(3);
        reference.Add(dense);
        Assert.Equal(OnnxExporter.ToBytes(reference), OnnxExporter.ToBytes(g));
    }
}
