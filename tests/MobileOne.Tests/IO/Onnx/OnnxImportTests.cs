using MobileOne.Graph;
using MobileOne.Inference;
using MobileOne.IO;
using MobileOne.IO.Onnx;
using MobileOne.Kernels;
using MobileOne.Models;
using MobileOne.Tensors;
using MobileOne.Tests.Inference;

namespace MobileOne.Tests.IO.Onnx;

/// <summary>ONNX import: our own exports read back to the same logits on the engine, and refusals that name the node.</summary>
public class OnnxImportTests
{
    public static TheoryData<string, bool> Exports => new()
    {
        { "mobileone_s0", true },
        { "mobileone_s0", false },
        { "mobileone_s4", true },
        { "repvgg_a0", false },
        { "resnet18", false },
        { "mobilenetv2_050", false },
        { "mobilenetv1_100", false },
    };

    [Theory]
    [MemberData(nameof(Exports))]
    public void Our_export_imports_to_the_same_logits(string name, bool fuse)
    {
        var network = ModelRegistry.Get(name).Create(numClasses: 7, seed: 2);
        var bytes = OnnxExporter.ToBytes(network, fuse: fuse);
        var imported = OnnxImporter.FromBytes(bytes, name);
        var input = Input(2, 64);
        using var direct = CompiledModel.Compile(fuse && network.Reparameterizable ? MobileOne.Reparam.Reparameterizer.Fuse(network) : network);
        using var fromOnnx = CompiledModel.Compile(imported);
        var expected = direct.Run(input);
        var actual = fromOnnx.Run(input);
        Assert.Equal(expected.Shape, actual.Shape);
        EngineTestSupport.AssertClose(expected.Data, actual.Data, name);
        Assert.Equal(direct.Run(input).Data.Length, actual.Data.Length);
    }

    public static TheoryData<string> PyTorchExports => new()
    {
        "tiny_resnet_opset11", "tiny_resnet_opset13", "tiny_resnet_opset17",
        "tiny_mobilenetv2_opset11", "tiny_mobilenetv2_opset13", "tiny_mobilenetv2_opset17",
        "tiny_se_opset17",
        "tiny_gelu_opset11", "tiny_gelu_opset13", "tiny_gelu_opset17",
        "tiny_softmax_opset11", "tiny_softmax_opset13", "tiny_softmax_opset17",
        "tiny_pad_opset11", "tiny_pad_opset13", "tiny_pad_opset17",
        "tiny_concat_opset11", "tiny_concat_opset13", "tiny_concat_opset17",
    };

    /// <summary>
    /// PyTorch's own exports (tools/onnx/make-onnx-fixtures.py: torch.onnx.export of small random networks with BN on
    /// the input, 7x7 stems, max and average pooling, strided shortcuts, ReLU6 as Clip with constant bounds, depthwise
    /// convolutions, x.view(N, -1) shape arithmetic, SiLU, squeeze-excite, HardSwish, MatMul + Add, a softmax after the
    /// classifier, explicit zero pads, channel concatenations) run on the engine to PyTorch's float64 outputs.
    /// </summary>
    [Theory]
    [MemberData(nameof(PyTorchExports))]
    public void PyTorch_exports_run_to_pytorchs_logits(string name)
    {
        string folder = Path.Combine(AppContext.BaseDirectory, "IO", "Onnx", "PyTorch");
        using var doc = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, "reference.json")));
        var root = doc.RootElement;
        var input = new Tensor([.. root.GetProperty("input_shape").EnumerateArray().Select(d => d.GetInt32())], [.. root.GetProperty("input").EnumerateArray().Select(v => v.GetSingle())]);
        var expected = root.GetProperty("models").GetProperty(name).EnumerateArray().Select(v => (float)v.GetDouble()).ToArray();
        var graph = OnnxImporter.Load(Path.Combine(folder, name + ".onnx"));
        using var engine = CompiledModel.Compile(graph);
        EngineTestSupport.AssertClose(expected, engine.Run(input).Data, name);
    }

    [Fact]
    public void Squeeze_excite_and_silu_patterns_become_their_nodes()
    {
        var g = new LayerGraph(3);
        int x = g.Add(ConvNode.Square("conv", LayerGraph.Input, 3, 8, 3, 1, 1, 1, Random(8 * 3 * 9, 1), Random(8, 2)));
        x = g.Add(new ActivationNode("silu", x, ActivationKind.Silu));
        x = g.Add(new SqueezeExciteNode("se", x, 8, 2, Random(16, 3), Random(2, 4), Random(16, 5), Random(8, 6)));
        x = g.Add(new ActivationNode("hswish", x, ActivationKind.HardSwish));
        x = g.Add(new GlobalAveragePoolNode("pool", x));
        g.Add(new LinearNode("fc", x, 8, 4, Random(32, 7), Random(4, 8)));
        var imported = OnnxImporter.FromBytes(OnnxExporter.ToBytes(g));
        Assert.Contains(imported.Nodes, n => n is SqueezeExciteNode);
        Assert.Contains(imported.Nodes, n => n is ActivationNode { Activation: ActivationKind.Silu });
        using var a = CompiledModel.Compile(g);
        using var b = CompiledModel.Compile(imported);
        var input = Input(1, 16);
        EngineTestSupport.AssertClose(a.Run(input).Data, b.Run(input).Data, "patterns");
    }

    /// <summary>Element-wise chains are recognized by what they compute: both GELU forms, SiLU, and nothing else.</summary>
    [Theory]
    [InlineData(ActivationKind.Gelu)]
    [InlineData(ActivationKind.GeluTanh)]
    [InlineData(ActivationKind.Silu)]
    [InlineData(ActivationKind.HardSwish)]
    public void Element_wise_chains_become_the_activation_they_compute(ActivationKind kind)
    {
        var g = new LayerGraph(3);
        int x = g.Add(ConvNode.Square("conv", LayerGraph.Input, 3, 4, 3, 1, 1, 1, Random(4 * 3 * 9, 1), Random(4, 2)));
        x = g.Add(new ActivationNode("act", x, kind));
        x = g.Add(new GlobalAveragePoolNode("pool", x));
        g.Add(new LinearNode("fc", x, 4, 3, Random(12, 3), Random(3, 4)));
        var imported = OnnxImporter.FromBytes(OnnxExporter.ToBytes(g));
        Assert.Contains(imported.Nodes, n => n is ActivationNode a && a.Activation == kind);
        using var a = CompiledModel.Compile(g);
        using var b = CompiledModel.Compile(imported);
        var input = Input(1, 16);
        EngineTestSupport.AssertClose(a.Run(input).Data, b.Run(input).Data, kind.ToString());
    }

    [Fact]
    public void An_unsupported_operator_names_the_node_and_what_is_supported()
    {
        var g = new LayerGraph(3);
        int x = g.Add(new GlobalAveragePoolNode("pool", LayerGraph.Input));
        g.Add(new LinearNode("fc", x, 3, 2, Random(6, 1), Random(2, 2)));
        var model = OnnxExporter.Build(g);
        model.Graph.Node.Add(new global::Onnx.NodeProto { Name = "prediction", OpType = "ArgMax", Input = { "logits" }, Output = { "class" } });
        model.Graph.Output[0].Name = "class";
        var e = Assert.Throws<CheckpointException>(() => OnnxImporter.FromBytes(Google.Protobuf.MessageExtensions.ToByteArray(model), "argmax.onnx"));
        Assert.Contains("argmax.onnx", e.Message);
        Assert.Contains("node 'prediction' (ArgMax) is not supported; supported: Conv, BatchNormalization", e.Message);
    }

    [Fact]
    public void An_element_wise_function_that_is_no_activation_is_refused_by_name()
    {
        var g = new LayerGraph(3);
        int x = g.Add(new ActivationNode("gelu", LayerGraph.Input, ActivationKind.Gelu));
        x = g.Add(new GlobalAveragePoolNode("pool", x));
        g.Add(new LinearNode("fc", x, 3, 2, Random(6, 1), Random(2, 2)));
        var model = OnnxExporter.Build(g);
        // Turn GELU's final 0.5 into 0.25: a function the engine has no activation for.
        var half = model.Graph.Node.Single(n => n.OpType == "Mul" && n.Name == "gelu");
        var constant = half.Input.Select(i => model.Graph.Initializer.FirstOrDefault(t => t.Name == i)).OfType<global::Onnx.TensorProto>().FirstOrDefault();
        var constantNode = model.Graph.Node.FirstOrDefault(n => n.OpType == "Constant" && half.Input.Contains(n.Output[0]));
        if (constant is not null)
        {
            constant.RawData = Google.Protobuf.ByteString.CopyFrom(BitConverter.GetBytes(0.25f));
        }
        else
        {
            constantNode!.Attribute.Single(a => a.Name == "value").T.RawData = Google.Protobuf.ByteString.CopyFrom(BitConverter.GetBytes(0.25f));
        }

        var e = Assert.Throws<CheckpointException>(() => OnnxImporter.FromBytes(Google.Protobuf.MessageExtensions.ToByteArray(model), "odd.onnx"));
        Assert.Contains("none of the engine's activations", e.Message);
        Assert.Contains("'gelu'", e.Message);
    }

    [Fact]
    public void Garbage_is_not_an_onnx_model()
    {
        var e = Assert.Throws<CheckpointException>(() => OnnxImporter.FromBytes([1, 2, 3, 4, 5, 6, 7], "junk.onnx"));
        Assert.Contains("junk.onnx", e.Message);
        Assert.Contains("is not an ONNX model", e.Message);
    }

    private static Tensor Input(int n, int size)
    {
        var t = new Tensor(n, 3, size, size);
        WeightInit.FillNormal(new Random(9), t.Data, 0, 1);
        return t;
    }

    private static float[] Random(int n, int seed)
    {
        var v = new float[n];
        WeightInit.FillNormal(new Random(seed), v, 0, 0.3);
        return v;
    }
}
