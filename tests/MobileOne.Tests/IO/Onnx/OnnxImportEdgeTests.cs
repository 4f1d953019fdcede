using MobileOne.Graph;
using MobileOne.Inference;
using MobileOne.IO;
using MobileOne.IO.Onnx;
using MobileOne.Kernels;
using MobileOne.Tests.Inference;
using Onnx;
using static MobileOne.Tests.IO.Onnx.OnnxModelBuilder;

namespace MobileOne.Tests.IO.Onnx;

/// <summary>
/// The importer's edges, one small hand-written model per case: every refusal with its whole message at the value
/// where it starts (the last accepted value beside it), the attributes and defaults the ONNX specification gives each
/// operator, the patterns that become one node, and the tensors it reads (raw, typed fields, external data). Where a
/// case computes something, ONNX Runtime runs the same bytes as the reference.
/// </summary>
public class OnnxImportEdgeTests
{
    /// <summary>input [N, 3, H, W] -> Conv "conv" with the 4x3x3x3 ramp weight "w".</summary>
    private static OnnxModelBuilder ConvModel(params AttributeProto[] attributes) =>
        new OnnxModelBuilder().Floats("w", Ramp(108, 0.01f), 4, 3, 3, 3).Node("Conv", ["input", "w"], "conv", attributes).Output("conv");

    /// <summary>input [N, 3, H, W] -> GlobalAveragePool -> Flatten -> Gemm (W [2, 3], transB) "fc".</summary>
    private static OnnxModelBuilder Classifier() => new OnnxModelBuilder()
        .Floats("W", [1, 2, 3, 4, 5, 6], 2, 3).Floats("b", [0.5f, -0.5f], 2)
        .Node("GlobalAveragePool", ["input"], "pool").Node("Flatten", ["pool"], "flat")
        .Node("Gemm", ["flat", "W", "b"], "fc", Int("transB", 1)).Output("fc");

    private static void AssertRefused(OnnxModelBuilder model, string problem, string? key = null)
    {
        var e = model.Refuse();
        Assert.Equal(problem, e.Problem);
        Assert.Equal(key, e.Key);
    }

    [Fact]
    public void Null_arguments_are_refused_before_anything_is_read()
    {
        Assert.Throws<ArgumentNullException>(() => OnnxImporter.Load(null!));
        Assert.Throws<ArgumentNullException>(() => OnnxImporter.FromBytes(null!));
    }

    [Fact]
    public void A_missing_file_and_a_file_of_garbage_are_named()
    {
        using var dir = new TempDir();
        string missing = dir.File("missing.onnx");
        var e = Assert.Throws<CheckpointException>(() => OnnxImporter.Load(missing));
        Assert.Equal((missing, "does not exist."), (e.FilePath, e.Problem));

        string junk = dir.File("junk.onnx");
        File.WriteAllBytes(junk, [1, 2, 3, 4, 5, 6, 7]);
        e = Assert.Throws<CheckpointException>(() => OnnxImporter.Load(junk));
        Assert.Equal(junk, e.FilePath);
        // The parser's own sentence inside the parentheses, without its full stop.
        Assert.StartsWith("is not an ONNX model (", e.Problem);
        Assert.EndsWith(").", e.Problem);
        Assert.DoesNotContain(".)", e.Problem);

        e = Assert.Throws<CheckpointException>(() => OnnxImporter.FromBytes([1, 2, 3, 4, 5, 6, 7]));
        Assert.Equal("(ONNX bytes)", e.FilePath);
        Assert.DoesNotContain(".)", e.Problem);
    }

    [Fact]
    public void A_file_loads_like_its_bytes()
    {
        using var dir = new TempDir();
        string path = dir.File("conv.onnx");
        File.WriteAllBytes(path, ConvModel().Bytes());
        var conv = Assert.IsType<ConvNode>(Assert.Single(OnnxImporter.Load(path).Nodes));
        Assert.Equal(Ramp(108, 0.01f), conv.Weight);
    }

    [Theory]
    [InlineData(10, false)]
    [InlineData(11, true)]
    [InlineData(17, true)]
    [InlineData(18, false)]
    public void Opsets_11_to_17_are_read(int opset, bool accepted)
    {
        var model = ConvModel();
        model.Model.OpsetImport[0].Version = opset;
        if (accepted)
        {
            Assert.IsType<ConvNode>(Assert.Single(model.Import().Nodes));
        }
        else
        {
            AssertRefused(model, $"uses opset {opset}; this importer reads opsets 11 to 17.");
        }
    }

    [Fact]
    public void The_opset_is_the_highest_of_the_default_domain_and_ai_onnx_only()
    {
        var model = ConvModel();
        model.Model.OpsetImport.Add(new OperatorSetIdProto { Domain = "com.microsoft", Version = 99 });
        Assert.Single(model.Import().Nodes);

        model.Model.OpsetImport.Add(new OperatorSetIdProto { Domain = "ai.onnx", Version = 18 });
        AssertRefused(model, "uses opset 18; this importer reads opsets 11 to 17.");

        model.Model.OpsetImport.Clear();
        AssertRefused(model, "uses opset 0; this importer reads opsets 11 to 17.");
    }

    [Fact]
    public void A_model_without_a_graph_is_refused()
    {
        var model = ConvModel();
        model.Model.Graph = null;
        AssertRefused(model, "has no graph.");
    }

    [Fact]
    public void The_graph_has_one_image_input_besides_weights_listed_as_inputs()
    {
        // Older exporters list every initializer among the inputs too: those are weights, not inputs.
        var model = ConvModel();
        model.Graph.Input.Add(Value("w", Fixed(4), Fixed(3), Fixed(3), Fixed(3)));
        Assert.Single(model.Import().Nodes);

        model.Graph.Input.Add(Value("mask", Symbolic("batch"), Fixed(1), Symbolic("height"), Symbolic("width")));
        AssertRefused(model, "has 2 graph inputs besides its weights; a classifier has one image input.");

        model.Graph.Input.Clear();
        AssertRefused(model, "has 0 graph inputs besides its weights; a classifier has one image input.");
    }

    [Fact]
    public void The_input_must_be_float32_nchw_with_a_fixed_channel_count()
    {
        var model = ConvModel();
        var input = model.Graph.Input[0];
        input.Type.TensorType.ElemType = (int)TensorProto.Types.DataType.Double;
        AssertRefused(model, "is not a float32 tensor; the engine takes float32 NCHW images.", "input");
        input.Type = null;
        AssertRefused(model, "is not a float32 tensor; the engine takes float32 NCHW images.", "input");

        const string Nchw = "must be NCHW with a fixed channel count.";
        model.Graph.Input[0] = Value("input");
        AssertRefused(model, Nchw, "input");
        model.Graph.Input[0] = Value("input", Symbolic("batch"), Fixed(3), Symbolic("height"));
        AssertRefused(model, Nchw, "input");
        model.Graph.Input[0] = Value("input", Symbolic("batch"), Symbolic("channels"), Symbolic("height"), Symbolic("width"));
        AssertRefused(model, Nchw, "input");
        model.Graph.Input[0] = Value("input", Symbolic("batch"), Fixed(0), Symbolic("height"), Symbolic("width"));
        AssertRefused(model, Nchw, "input");

        // One channel is the smallest image.
        var gray = new OnnxModelBuilder(channels: 1).Node("Relu", ["input"], "relu").Output("relu").Import();
        Assert.Equal(1, gray.InputChannels);
    }

    [Fact]
    public void A_node_the_layer_graph_refuses_is_named_with_the_graphs_reason()
    {
        // A 2-channel weight for a 3-channel input: the layer graph's own check, wrapped with the node's name.
        var model = new OnnxModelBuilder().Floats("w", Ramp(8 * 9), 4, 2, 3, 3).Node("Conv", ["input", "w"], "conv").Output("conv");
        var e = model.Refuse();
        Assert.StartsWith("node 'conv' (Conv) does not fit its inputs: Node conv: ", e.Problem);
    }

    [Fact]
    public void The_graph_has_one_output_and_every_value_read_is_produced_earlier()
    {
        var model = ConvModel().Output("conv");
        AssertRefused(model, "has 2 outputs; the engine runs classifiers with one output.");
        model.Graph.Output.Clear();
        AssertRefused(model, "has 0 outputs; the engine runs classifiers with one output.");

        model.Output("nowhere");
        AssertRefused(model, "reads 'nowhere', which no earlier node or initializer produces.", "graph output");

        var late = new OnnxModelBuilder().Node("Relu", ["later"], "relu").Node("Sigmoid", ["input"], "later").Output("relu");
        AssertRefused(late, "reads 'later', which no earlier node or initializer produces.", "relu");
    }

    [Fact]
    public void An_output_that_is_not_the_last_node_becomes_the_graphs_output()
    {
        var graph = ConvModel().Node("Relu", ["conv"], "relu").Import();
        Assert.Equal(2, graph.Nodes.Count);
        Assert.Equal(1, graph.Output);
    }

    [Fact]
    public void A_classifier_whose_output_node_does_not_fit_is_named_by_its_output()
    {
        // Gemm's bias is read as given; a 5-element bias for 2 classes fails when the linear layer is added.
        var model = Classifier();
        model.Graph.Initializer[1] = FloatTensor("b", [1, 2, 3, 4, 5], 5);
        var e = model.Refuse();
        Assert.StartsWith("produces its output with a node that does not fit its inputs: ", e.Problem);
        Assert.Equal("fc", e.Key);
    }

    [Fact]
    public void Nodes_are_named_by_name_else_by_first_output_else_by_op_type()
    {
        var model = new OnnxModelBuilder().Node("ArgMax", ["input"], "am").Output("am");
        model.Last.Name = "";
        AssertRefused(model, $"node 'am' (ArgMax) is not supported; supported: {OnnxImporter.Supported}.");
        model.Last.Output.Clear();
        AssertRefused(model, $"node 'ArgMax' (ArgMax) is not supported; supported: {OnnxImporter.Supported}.");
        model.Last.Name = "argmax";
        AssertRefused(model, $"node 'argmax' (ArgMax) is not supported; supported: {OnnxImporter.Supported}.");
    }

    [Fact]
    public void Operators_of_other_domains_are_refused_and_ai_onnx_is_the_default_domain()
    {
        var model = new OnnxModelBuilder().Node("Relu", ["input"], "relu").Output("relu");
        model.Last.Domain = "ai.onnx";
        Assert.IsType<ActivationNode>(Assert.Single(model.Import().Nodes));
        model.Last.Domain = "com.microsoft";
        AssertRefused(model, $"node 'relu' (Relu) is in domain 'com.microsoft'; supported: {OnnxImporter.Supported}.");
    }

    [Fact]
    public void A_node_without_outputs_is_translated_and_its_result_dropped()
    {
        var model = ConvModel();
        model.Graph.Node.Insert(0, new NodeProto { OpType = "Identity", Name = "probe", Input = { "input" } });
        Assert.IsType<ConvNode>(Assert.Single(model.Import().Nodes));
    }

    [Fact]
    public void A_constant_node_needs_its_value_tensor()
    {
        var model = new OnnxModelBuilder().Node("Constant", [], "w").Node("Conv", ["input", "w"], "conv").Output("conv");
        AssertRefused(model, $"node 'w' (Constant) has no 'value' tensor; supported: {OnnxImporter.Supported}.");
        model.Graph.Node[0].Attribute.Add(new AttributeProto { Name = "value", Type = AttributeProto.Types.AttributeType.Tensor });
        AssertRefused(model, $"node 'w' (Constant) has no 'value' tensor; supported: {OnnxImporter.Supported}.");
        model.Graph.Node[0].Attribute[0].T = FloatTensor("", Ramp(108), 4, 3, 3, 3);
        Assert.Equal(Ramp(108), Assert.IsType<ConvNode>(Assert.Single(model.Import().Nodes)).Weight);
    }

    [Fact]
    public void Conv_reads_its_attributes_and_defaults()
    {
        var plain = Assert.IsType<ConvNode>(Assert.Single(ConvModel().Import().Nodes));
        Assert.Equal((4, 3, 3, 3), (plain.OutChannels, plain.InChannels, plain.KernelHeight, plain.KernelWidth));
        Assert.Equal((1, 1, 0, 0, 1, 1, 1), (plain.StrideH, plain.StrideW, plain.PadH, plain.PadW, plain.DilationH, plain.DilationW, plain.Groups));
        Assert.Null(plain.Bias);

        var conv = Assert.IsType<ConvNode>(Assert.Single(ConvModel(
            Ints("strides", 2, 1), Ints("dilations", 1, 3), Ints("pads", 1, 2, 1, 2), Ints("kernel_shape", 3, 3), Text("auto_pad", "NOTSET")).Import().Nodes));
        Assert.Equal((2, 1, 1, 2, 1, 3), (conv.StrideH, conv.StrideW, conv.PadH, conv.PadW, conv.DilationH, conv.DilationW));

        var depthwise = new OnnxModelBuilder().Floats("w", Ramp(27), 3, 1, 3, 3).Floats("b", [1, 2, 3], 3)
            .Node("Conv", ["input", "w", "b"], "dw", Int("group", 3), Text("auto_pad", "VALID")).Output("dw").Import();
        var dw = Assert.IsType<ConvNode>(Assert.Single(depthwise.Nodes));
        Assert.Equal(3, dw.Groups);
        Assert.Equal([1f, 2, 3], dw.Bias!);

        // An empty name in the bias slot is an omitted optional input.
        var model = ConvModel();
        model.Last.Input.Add("");
        Assert.Null(Assert.IsType<ConvNode>(Assert.Single(model.Import().Nodes)).Bias);

        // The largest stride an int holds is still a stride.
        var far = Assert.IsType<ConvNode>(Assert.Single(ConvModel(Ints("strides", 1, int.MaxValue)).Import().Nodes));
        Assert.Equal(int.MaxValue, far.StrideW);
    }

    [Fact]
    public void Conv_refuses_weights_it_cannot_run()
    {
        AssertRefused(
            new OnnxModelBuilder().Floats("w", Ramp(36), 4, 3, 3).Node("Conv", ["input", "w"], "conv").Output("conv"),
            "node 'conv' (Conv) has a 3-d weight; 2-D convolutions have 4-d ones.");
        AssertRefused(
            new OnnxModelBuilder().Node("Conv", ["input", "input"], "conv").Output("conv"),
            "node 'conv' (Conv) has a weight that is not a constant (initializer or Constant).");
        AssertRefused(new OnnxModelBuilder().Node("Conv", ["input"], "conv").Output("conv"), "node 'conv' (Conv) lacks input 1.");
        AssertRefused(new OnnxModelBuilder().Node("Conv", ["input", ""], "conv").Output("conv"), "node 'conv' (Conv) lacks input 1.");
        AssertRefused(ConvModel(Ints("kernel_shape", 3, 1)), "node 'conv' (Conv) declares kernel_shape [3, 1] but its weight is 3x3.");
        AssertRefused(ConvModel(Ints("kernel_shape", 1, 3)), "node 'conv' (Conv) declares kernel_shape [1, 3] but its weight is 3x3.");
    }

    [Theory]
    [InlineData("strides", new long[] { 1 }, "has strides [1]; two positive values (height, width) are expected")]
    [InlineData("strides", new long[] { 1, 1, 1 }, "has strides [1, 1, 1]; two positive values (height, width) are expected")]
    [InlineData("strides", new long[] { 0, 1 }, "has strides [0, 1]; two positive values (height, width) are expected")]
    [InlineData("strides", new long[] { 1, 0 }, "has strides [1, 0]; two positive values (height, width) are expected")]
    [InlineData("dilations", new long[] { 2147483648, 1 }, "has dilations [2147483648, 1]; two positive values (height, width) are expected")]
    [InlineData("dilations", new long[] { 1, 2147483648 }, "has dilations [1, 2147483648]; two positive values (height, width) are expected")]
    [InlineData("pads", new long[] { 1, 1 }, "has pads [1, 1]; four non-negative pads (top, left, bottom, right) are expected")]
    [InlineData("pads", new long[] { 0, 0, -1, 0 }, "has pads [0, 0, -1, 0]; four non-negative pads (top, left, bottom, right) are expected")]
    [InlineData("pads", new long[] { 0, 2147483648, 0, 0 }, "has pads [0, 2147483648, 0, 0]; four non-negative pads (top, left, bottom, right) are expected")]
    public void Conv_refuses_attributes_outside_their_range(string attribute, long[] values, string problem) =>
        AssertRefused(ConvModel(Ints(attribute, values)), $"node 'conv' (Conv) {problem}.");

    /// <summary>
    /// Regression: a group count beyond an int was cast unchecked, so group 2^32 + 1 imported as an ungrouped
    /// convolution (a file ONNX Runtime refuses, since its weight cannot have C / group input channels).
    /// </summary>
    [Theory]
    [InlineData(4294967297L)]
    [InlineData(0L)]
    public void A_group_count_that_is_no_positive_int_is_refused_by_name(long group) =>
        AssertRefused(ConvModel(Int("group", group)), $"node 'conv' (Conv) has group {group}; a positive group count is expected.");

    /// <summary>Regression: a channel count beyond an int threw an OverflowException instead of naming the input.</summary>
    [Fact]
    public void A_channel_count_beyond_an_int_is_refused_by_name()
    {
        var model = ConvModel();
        model.Graph.Input[0] = Value("input", Symbolic("batch"), Fixed(2147483648L), Symbolic("height"), Symbolic("width"));
        AssertRefused(model, "must be NCHW with a fixed channel count.", "input");
    }

    [Theory]
    [InlineData("SAME_UPPER")]
    [InlineData("SAME_LOWER")]
    public void Conv_refuses_automatic_padding(string autoPad) =>
        AssertRefused(ConvModel(Text("auto_pad", autoPad)), $"node 'conv' (Conv) uses auto_pad {autoPad}; explicit pads are supported.");

    /// <summary>input [N, 4, H, W]: GlobalAveragePool, Conv fc1 (2x4), activation, Conv fc2 (4x2), gate, Mul with the input.</summary>
    private static OnnxModelBuilder SqueezeExcite(string gate = "Sigmoid", bool gateFirst = false) => new OnnxModelBuilder(channels: 4)
        .Floats("w1", Ramp(8, 0.1f), 2, 4, 1, 1).Floats("b1", [0.25f, -0.25f], 2)
        .Floats("w2", Ramp(8, -0.1f), 4, 2, 1, 1).Floats("b2", [1, 2, 3, 4], 4)
        .Node("GlobalAveragePool", ["input"], "pool")
        .Node("Conv", ["pool", "w1", "b1"], "fc1").Node("Relu", ["fc1"], "act")
        .Node("Conv", ["act", "w2", "b2"], "fc2")
        .Node(gate, ["fc2"], "gate", gate == "HardSigmoid" ? [Float("alpha", 1f / 6), Float("beta", 0.5f)] : [])
        .Node("Mul", gateFirst ? ["gate", "input"] : ["input", "gate"], "se").Output("se");

    [Theory]
    [InlineData("Sigmoid", false, ActivationKind.Sigmoid)]
    [InlineData("HardSigmoid", true, ActivationKind.HardSigmoid)]
    public void A_squeeze_excite_gate_becomes_one_node_whichever_side_of_the_mul_it_is(string gate, bool gateFirst, ActivationKind kind)
    {
        var model = SqueezeExcite(gate, gateFirst);
        var se = Assert.IsType<SqueezeExciteNode>(Assert.Single(model.Import().Nodes));
        Assert.Equal((0, 4, 2), (se.Input, se.Channels, se.Reduced));
        Assert.Equal(Ramp(8, 0.1f), se.ReduceWeight);
        Assert.Equal([0.25f, -0.25f], se.ReduceBias);
        Assert.Equal(Ramp(8, -0.1f), se.ExpandWeight);
        Assert.Equal([1f, 2, 3, 4], se.ExpandBias);
        Assert.Equal((ActivationKind.Relu, kind), (se.InnerActivation, se.GateActivation));

        var input = EngineTestSupport.RandomInput(new Random(3), 2, 4, 5, 6);
        using var ort = OrtHarness.FromBytes(Renamed(model, "se").Bytes());
        using var engine = CompiledModel.Compile(model.Import());
        EngineTestSupport.AssertClose(ort.Run(input).Data, engine.Run(input).Data, gate);
    }

    [Fact]
    public void A_squeeze_excite_convolution_without_a_bias_has_a_zero_bias()
    {
        var model = SqueezeExcite();
        model.Graph.Node.Single(n => n.Name == "fc1").Input.RemoveAt(2);
        model.Graph.Node.Single(n => n.Name == "fc2").Input[2] = "";
        var se = Assert.IsType<SqueezeExciteNode>(Assert.Single(model.Import().Nodes));
        Assert.Equal(new float[2], se.ReduceBias);
        Assert.Equal(new float[4], se.ExpandBias);
    }

    [Fact]
    public void A_squeeze_excite_gate_refuses_what_is_not_two_ungrouped_1x1_convolutions_with_activations()
    {
        const string Kernel = "node 'fc1' (Conv) convolves pooled features with something other than an ungrouped 1x1 kernel.";
        var wide = SqueezeExcite();
        wide.Graph.Initializer[0] = FloatTensor("w1", Ramp(24), 2, 4, 3, 1);
        AssertRefused(wide, Kernel);
        wide.Graph.Initializer[0] = FloatTensor("w1", Ramp(24), 2, 4, 1, 3);
        AssertRefused(wide, Kernel);
        var grouped = SqueezeExcite();
        grouped.Graph.Initializer[0] = FloatTensor("w1", Ramp(4), 2, 2, 1, 1);
        grouped.Graph.Node.Single(n => n.Name == "fc1").Attribute.Add(Int("group", 2));
        AssertRefused(grouped, Kernel);

        // A third convolution, or a second one straight after the first.
        var third = SqueezeExcite();
        third.Graph.Initializer.Add(FloatTensor("w3", Ramp(16), 4, 4, 1, 1));
        third.Graph.Node.Insert(5, new NodeProto { OpType = "Conv", Name = "fc3", Input = { "gate", "w3", "b2" }, Output = { "fc3" } });
        AssertRefused(third, "node 'fc3' (Conv) continues a squeeze-excite gate past its two convolutions.");
        var back = SqueezeExcite();
        back.Graph.Node.Single(n => n.Name == "fc2").Input[0] = "fc1";
        AssertRefused(back, "node 'fc2' (Conv) continues a squeeze-excite gate past its two convolutions.");

        // Two activations in a row.
        var twice = SqueezeExcite();
        twice.Graph.Node.Insert(3, new NodeProto { OpType = "Relu", Name = "again", Input = { "act" }, Output = { "again" } });
        twice.Graph.Node.Single(n => n.Name == "fc2").Input[0] = "again";
        AssertRefused(twice, "node 'again' (Relu) applies an activation to a value the engine cannot hold on its own.");
    }

    [Fact]
    public void A_gate_that_is_not_complete_or_not_of_the_value_it_multiplies_is_refused()
    {
        const string Combines = "combines values the engine has no element-wise operation for (one image value with scalar constants, a residual sum of two values, or a squeeze-excite gate)";
        var half = SqueezeExcite();
        half.Graph.Node.Single(n => n.Name == "se").Input[1] = "act";
        AssertRefused(half, $"node 'se' (Mul) {Combines}.");

        // The gate of the input multiplies the input's ReLU.
        var other = SqueezeExcite().Node("Relu", ["input"], "relu");
        other.Graph.Output.Clear();
        var mul = other.Graph.Node.Single(n => n.Name == "se");
        other.Graph.Node.Remove(mul);
        other.Node("Mul", ["relu", "gate"], "se").Output("se");
        AssertRefused(other, $"node 'se' (Mul) {Combines}.");
    }

    [Fact]
    public void BatchNormalization_reads_its_epsilon_and_refuses_training_mode()
    {
        static OnnxModelBuilder Model(params AttributeProto[] attributes) => new OnnxModelBuilder()
            .Floats("g", [1, 2, 3], 3).Floats("beta", [4, 5, 6], 3).Floats("m", [7, 8, 9], 3).Floats("v", [1, 1, 2], 3)
            .Node("BatchNormalization", ["input", "g", "beta", "m", "v"], "bn", attributes).Output("bn");
        var bn = Assert.IsType<BatchNormNode>(Assert.Single(Model().Import().Nodes));
        Assert.Equal((double)1e-5f, bn.Eps);
        Assert.Equal([1f, 2, 3], bn.Gamma);
        Assert.Equal([4f, 5, 6], bn.Beta);
        Assert.Equal([7f, 8, 9], bn.Mean);
        Assert.Equal([1f, 1, 2], bn.Var);
        Assert.Equal((double)1e-3f, Assert.IsType<BatchNormNode>(Assert.Single(Model(Float("epsilon", 1e-3f)).Import().Nodes)).Eps);
        Assert.Single(Model(Int("training_mode", 0)).Import().Nodes);

        const string Training = "node 'bn' (BatchNormalization) is in training mode; the engine runs inference (running statistics).";
        AssertRefused(Model(Int("training_mode", 1)), Training);
        var statistics = Model();
        statistics.Last.Output.Add("running_mean");
        AssertRefused(statistics, Training);
    }

    [Theory]
    [InlineData(new[] { "0", "6" }, ActivationKind.Relu6)]
    [InlineData(new[] { "0" }, ActivationKind.Relu)]
    [InlineData(new[] { "0", "" }, ActivationKind.Relu)]
    [InlineData(new[] { "attr:0", "attr:6" }, ActivationKind.Relu6)]
    [InlineData(new[] { "attr:0" }, ActivationKind.Relu)]
    public void Clip_from_0_to_6_is_relu6_and_from_0_up_is_relu(string[] bounds, ActivationKind kind) =>
        Assert.Equal(kind, Assert.IsType<ActivationNode>(Assert.Single(Clip(bounds).Import().Nodes)).Activation);

    [Theory]
    [InlineData(new[] { "", "6" }, "clips to [-inf, 6]")]
    [InlineData(new[] { "-1" }, "clips to [-1, inf]")]
    [InlineData(new[] { "0", "5" }, "clips to [0, 5]")]
    [InlineData(new[] { "attr:0", "attr:5" }, "clips to [0, 5]")]
    [InlineData(new[] { "attr:1" }, "clips to [1, inf]")]
    public void Other_clips_are_refused_with_their_bounds(string[] bounds, string problem) =>
        AssertRefused(Clip(bounds), $"node 'clip' (Clip) {problem}; only [0, 6] (ReLU6) and [0, inf) (ReLU) are supported.");

    [Fact]
    public void Clip_bounds_are_scalars()
    {
        var model = Clip(["0", "6"]);
        model.Graph.Initializer[0] = FloatTensor("min", [0, 0], 2);
        AssertRefused(model, "node 'clip' (Clip) has a min that is not a scalar.");
        model = Clip(["0", "6"]);
        model.Graph.Initializer[1] = FloatTensor("max", [6, 6], 2);
        AssertRefused(model, "node 'clip' (Clip) has a max that is not a scalar.");
    }

    /// <summary>Clip of the input with bounds as scalar initializers ("0"), attributes ("attr:0") or omitted ("").</summary>
    private static OnnxModelBuilder Clip(string[] bounds)
    {
        var model = new OnnxModelBuilder();
        string[] names = ["min", "max"];
        var inputs = new List<string> { "input" };
        var attributes = new List<AttributeProto>();
        for (int i = 0; i < bounds.Length; i++)
        {
            if (bounds[i].StartsWith("attr:", StringComparison.Ordinal))
            {
                attributes.Add(Float(names[i], float.Parse(bounds[i][5..], System.Globalization.CultureInfo.InvariantCulture)));
            }
            else if (bounds[i].Length == 0)
            {
                inputs.Add("");
            }
            else
            {
                model.Floats(names[i], [float.Parse(bounds[i], System.Globalization.CultureInfo.InvariantCulture)]);
                inputs.Add(names[i]);
            }
        }

        return model.Node("Clip", [.. inputs], "clip", [.. attributes]).Output("clip");
    }

    [Fact]
    public void HardSigmoid_is_pytorchs_and_hardswish_is_an_activation()
    {
        var model = new OnnxModelBuilder().Node("HardSigmoid", ["input"], "hs", Float("alpha", 1f / 6), Float("beta", 0.5f)).Output("hs");
        Assert.Equal(ActivationKind.HardSigmoid, Assert.IsType<ActivationNode>(Assert.Single(model.Import().Nodes)).Activation);
        model.Last.Attribute.RemoveAt(1);
        Assert.Equal(ActivationKind.HardSigmoid, Assert.IsType<ActivationNode>(Assert.Single(model.Import().Nodes)).Activation);

        AssertRefused(
            new OnnxModelBuilder().Node("HardSigmoid", ["input"], "hs").Output("hs"),
            "node 'hs' (HardSigmoid) has alpha 0.2 and beta 0.5; PyTorch's hardsigmoid (alpha 1/6, beta 0.5) is supported.");
        AssertRefused(
            new OnnxModelBuilder().Node("HardSigmoid", ["input"], "hs", Float("alpha", 1f / 6), Float("beta", 0.25f)).Output("hs"),
            $"node 'hs' (HardSigmoid) has alpha {1f / 6} and beta 0.25; PyTorch's hardsigmoid (alpha 1/6, beta 0.5) is supported.");

        var swish = new OnnxModelBuilder().Node("HardSwish", ["input"], "hswish").Output("hswish").Import();
        Assert.Equal(ActivationKind.HardSwish, Assert.IsType<ActivationNode>(Assert.Single(swish.Nodes)).Activation);
    }

    [Fact]
    public void An_activation_of_something_that_is_no_image_is_refused()
    {
        AssertRefused(
            new OnnxModelBuilder().Floats("c", [1, 2], 2).Node("Relu", ["c"], "relu").Output("relu"),
            "node 'relu' (Relu) applies an activation to a value the engine cannot hold on its own.");
        AssertRefused(
            new OnnxModelBuilder().Node("GlobalAveragePool", ["input"], "pool").Node("Sigmoid", ["pool"], "sig").Output("sig"),
            "node 'sig' (Sigmoid) applies an activation to a value the engine cannot hold on its own.");
    }

    [Fact]
    public void Element_wise_steps_on_a_padded_value_pad_first()
    {
        var graph = new OnnxModelBuilder().Longs("pads", 0, 0, 1, 1, 0, 0, 1, 1)
            .Node("Pad", ["input", "pads"], "pad").Node("Sigmoid", ["pad"], "sig").Node("Relu", ["pad"], "relu")
            .Node("Add", ["sig", "relu"], "sum").Output("sum").Import();
        Assert.Equal([typeof(PadNode), typeof(ActivationNode), typeof(ActivationNode), typeof(AddNode)], graph.Nodes.Select(n => n.GetType()));
        // The sigmoid stays pending until the sum reads it, so the ReLU's node comes first.
        Assert.Equal((ActivationKind.Relu, 1), (((ActivationNode)graph.Nodes[1]).Activation, graph.Nodes[1].Inputs[0]));
        Assert.Equal((ActivationKind.Sigmoid, 1), (((ActivationNode)graph.Nodes[2]).Activation, graph.Nodes[2].Inputs[0]));
        Assert.Equal([3, 2], graph.Nodes[3].Inputs);
    }

    [Fact]
    public void An_element_wise_identity_adds_no_node()
    {
        var graph = new OnnxModelBuilder().Floats("one", [1f]).Node("Mul", ["input", "one"], "same").Node("Relu", ["same"], "relu").Output("relu").Import();
        var relu = Assert.IsType<ActivationNode>(Assert.Single(graph.Nodes));
        Assert.Equal(LayerGraph.Input, relu.Input);
    }

    [Fact]
    public void Element_wise_arithmetic_that_the_engine_cannot_hold_is_refused_by_name()
    {
        AssertRefused(
            new OnnxModelBuilder().Node("Add", ["input", "input"], "twice").Output("twice"),
            "computes an element-wise function at node 'twice' that is none of the engine's activations (ReLU, ReLU6, GELU (erf or tanh), SiLU, HardSwish, Sigmoid, HardSigmoid).",
            "twice");
        AssertRefused(
            new OnnxModelBuilder().Floats("a", [1f]).Floats("b", [2f]).Node("Add", ["a", "b"], "sum").Node("Relu", ["sum"], "relu").Output("relu"),
            "node 'sum' (Add) computes on constants only.");
        AssertRefused(
            new OnnxModelBuilder().Node("Sigmoid", ["input", "input"], "sig").Output("sig"),
            "node 'sig' (Sigmoid) has 2 inputs.");
        AssertRefused(
            new OnnxModelBuilder().Node("Pow", ["input"], "pow").Output("pow"),
            "node 'pow' (Pow) has 1 inputs.");
        const string Combines = "combines values the engine has no element-wise operation for (one image value with scalar constants, a residual sum of two values, or a squeeze-excite gate)";
        AssertRefused(
            new OnnxModelBuilder().Floats("c", [1, 2], 2).Node("Mul", ["input", "c"], "mul").Output("mul"),
            $"node 'mul' (Mul) {Combines}.");
        AssertRefused(
            new OnnxModelBuilder().Node("Relu", ["input"], "relu").Node("Mul", ["input", "relu"], "mul").Output("mul"),
            $"node 'mul' (Mul) {Combines}.");
        AssertRefused(
            new OnnxModelBuilder().Node("Sigmoid", ["input"], "sig").Node("Relu", ["input"], "relu").Node("Div", ["sig", "relu"], "div").Output("div"),
            $"node 'div' (Div) {Combines}.");
    }

    [Fact]
    public void Residual_sums_of_different_values_are_add_nodes_and_sum_takes_any_count()
    {
        var graph = new OnnxModelBuilder().Node("Relu", ["input"], "relu").Node("Sigmoid", ["input"], "sig")
            .Node("Add", ["relu", "input"], "add").Node("Sum", ["add", "relu", "input"], "sum").Output("sum").Import();
        var add = Assert.IsType<AddNode>(graph.Nodes[1]);
        Assert.Equal([1, 0], add.Inputs);
        var sum = Assert.IsType<AddNode>(graph.Nodes[2]);
        Assert.Equal([2, 1, 0], sum.Inputs);
        Assert.Equal(3, graph.Nodes.Count);
    }

    [Fact]
    public void Pooling_reads_its_attributes()
    {
        var max = Assert.IsType<PoolNode>(Assert.Single(new OnnxModelBuilder()
            .Node("MaxPool", ["input"], "mp", Ints("kernel_shape", 3, 3), Ints("strides", 2, 2), Ints("pads", 1, 1, 1, 1), Ints("dilations", 1, 1)).Output("mp").Import().Nodes));
        Assert.Equal((PoolKind.Max, 3, 2, 1), (max.Kind, max.Kernel, max.Stride, max.Padding));

        var average = Assert.IsType<PoolNode>(Assert.Single(new OnnxModelBuilder()
            .Node("AveragePool", ["input"], "ap", Ints("kernel_shape", 2, 2), Ints("pads", 1, 1, 1, 1)).Output("ap").Import().Nodes));
        Assert.Equal((PoolKind.Average, 2, 1, 1, false), (average.Kind, average.Kernel, average.Stride, average.Padding, average.CountIncludePad));
        var counted = Assert.IsType<PoolNode>(Assert.Single(new OnnxModelBuilder()
            .Node("AveragePool", ["input"], "ap", Ints("kernel_shape", 2, 2), Ints("pads", 1, 1, 1, 1), Int("count_include_pad", 1)).Output("ap").Import().Nodes));
        Assert.True(counted.CountIncludePad);

        // Dilation is MaxPool's attribute; AveragePool (before opset 19) has none to refuse.
        Assert.Single(new OnnxModelBuilder().Node("AveragePool", ["input"], "ap", Ints("kernel_shape", 2, 2), Ints("dilations", 2, 2)).Output("ap").Import().Nodes);
    }

    [Theory]
    [InlineData("MaxPool", new[] { "kernel" }, "has no kernel_shape")]
    [InlineData("MaxPool", new[] { "kernel:3,2" }, "is not square (one kernel size, stride and padding for both axes)")]
    [InlineData("MaxPool", new[] { "kernel:3,3", "strides:1,2" }, "is not square (one kernel size, stride and padding for both axes)")]
    [InlineData("AveragePool", new[] { "kernel:3,3", "pads:1,0,1,0" }, "is not square (one kernel size, stride and padding for both axes)")]
    [InlineData("AveragePool", new[] { "kernel:3,3", "pads:1,1,0,1" }, "pads [1, 1, 0, 1] asymmetrically; the engine pads both sides of an axis alike")]
    [InlineData("AveragePool", new[] { "kernel:3,3", "pads:1,1,1,0" }, "pads [1, 1, 1, 0] asymmetrically; the engine pads both sides of an axis alike")]
    [InlineData("MaxPool", new[] { "kernel:3,3", "ceil_mode:1" }, "uses ceil_mode or dilation, which the engine's pooling does not")]
    [InlineData("AveragePool", new[] { "kernel:3,3", "ceil_mode:1" }, "uses ceil_mode or dilation, which the engine's pooling does not")]
    [InlineData("MaxPool", new[] { "kernel:3,3", "dilations:1,2" }, "uses ceil_mode or dilation, which the engine's pooling does not")]
    [InlineData("MaxPool", new[] { "kernel:3,3", "dilations:2,1" }, "uses ceil_mode or dilation, which the engine's pooling does not")]
    public void Pooling_refuses_what_the_engine_does_not_pool(string op, string[] attributes, string problem)
    {
        var list = new List<AttributeProto>();
        foreach (string a in attributes)
        {
            string[] parts = a.Split(':');
            if (parts[0] == "kernel")
            {
                if (parts.Length > 1)
                {
                    list.Add(Ints("kernel_shape", [.. parts[1].Split(',').Select(long.Parse)]));
                }
            }
            else if (parts[0] == "ceil_mode")
            {
                list.Add(Int("ceil_mode", long.Parse(parts[1])));
            }
            else
            {
                list.Add(Ints(parts[0], [.. parts[1].Split(',').Select(long.Parse)]));
            }
        }

        AssertRefused(new OnnxModelBuilder().Node(op, ["input"], "pool", [.. list]).Output("pool"), $"node 'pool' ({op}) {problem}.");
    }

    /// <summary>
    /// A zero Pad before an AveragePool becomes the pooling's own padding, counted in the divisor, exactly when that
    /// is the same computation: the same pad on all four sides, a pooling that pads nothing itself or counts its own
    /// padding too, and a total within half the kernel. ONNX Runtime runs each file as it is.
    /// </summary>
    [Theory]
    [InlineData(1, 1, 1, 1, 0, false, 3, true)]
    [InlineData(1, 1, 1, 1, 1, true, 4, true)]
    [InlineData(1, 1, 1, 1, 1, true, 3, false)]
    [InlineData(1, 1, 1, 1, 1, false, 4, false)]
    [InlineData(1, 1, 0, 1, 0, false, 3, false)]
    [InlineData(1, 1, 1, 0, 0, false, 3, false)]
    [InlineData(1, 2, 1, 2, 0, false, 5, false)]
    [InlineData(2, 2, 2, 2, 0, false, 3, false)]
    public void A_zero_pad_folds_into_an_average_pool_only_where_that_is_the_same_computation(int top, int left, int bottom, int right, int poolPad, bool countIncludePad, int kernel, bool folds)
    {
        var model = new OnnxModelBuilder().Longs("pads", 0, 0, top, left, 0, 0, bottom, right).Node("Pad", ["input", "pads"], "pad")
            .Node("AveragePool", ["pad"], "logits", Ints("kernel_shape", kernel, kernel), Ints("pads", poolPad, poolPad, poolPad, poolPad), Int("count_include_pad", countIncludePad ? 1 : 0))
            .Output("logits");
        var graph = model.Import();
        var pool = Assert.IsType<PoolNode>(graph.Nodes[^1]);
        if (folds)
        {
            Assert.Single(graph.Nodes);
            Assert.Equal((LayerGraph.Input, poolPad + top, true), (pool.Input, pool.Padding, pool.CountIncludePad));
        }
        else
        {
            Assert.Equal(2, graph.Nodes.Count);
            var pad = Assert.IsType<PadNode>(graph.Nodes[0]);
            Assert.Equal((top, left, bottom, right), (pad.Top, pad.Left, pad.Bottom, pad.Right));
            Assert.Equal((1, poolPad, countIncludePad), (pool.Input, pool.Padding, pool.CountIncludePad));
        }

        var input = EngineTestSupport.RandomInput(new Random(6), 1, 3, 9, 8);
        using var ort = OrtHarness.Unoptimized(model.Bytes());
        using var engine = CompiledModel.Compile(graph);
        EngineTestSupport.AssertClose(ort.Run(input).Data, engine.Run(input).Data, "pool");
    }

    [Fact]
    public void A_zero_pad_before_a_max_pool_stays_a_pad_node()
    {
        var graph = new OnnxModelBuilder().Longs("pads", 0, 0, 1, 1, 0, 0, 1, 1).Node("Pad", ["input", "pads"], "pad")
            .Node("MaxPool", ["pad"], "mp", Ints("kernel_shape", 3, 3)).Output("mp").Import();
        Assert.Equal([typeof(PadNode), typeof(PoolNode)], graph.Nodes.Select(n => n.GetType()));
    }

    [Theory]
    [InlineData(new long[] { 2, 3 }, 1, "pool")]
    [InlineData(new long[] { 3, 2 }, 1, "pool")]
    [InlineData(new long[] { -1, -2 }, 1, "pool")]
    [InlineData(new long[] { 2, 3 }, 0, "flat")]
    public void ReduceMean_over_height_and_width_is_the_global_pool(long[] axes, long keepdims, string kind)
    {
        var model = new OnnxModelBuilder().Floats("W", [1, 2, 3, 4, 5, 6], 2, 3)
            .Node("ReduceMean", ["input"], "mean", Ints("axes", axes), Int("keepdims", keepdims));
        if (kind == "pool")
        {
            model.Node("Flatten", ["mean"], "flat");
        }

        var graph = model.Node("Gemm", [kind == "pool" ? "flat" : "mean", "W"], "fc", Int("transB", 1)).Output("fc").Import();
        Assert.Equal([typeof(GlobalAveragePoolNode), typeof(LinearNode)], graph.Nodes.Select(n => n.GetType()));
    }

    [Fact]
    public void ReduceMean_keeps_its_dimensions_by_default_and_refuses_other_axes()
    {
        AssertRefused(
            new OnnxModelBuilder().Floats("W", Ramp(6), 2, 3).Node("ReduceMean", ["input"], "mean", Ints("axes", 2, 3))
                .Node("Gemm", ["mean", "W"], "fc", Int("transB", 1)).Output("fc"),
            "node 'fc' (Gemm) multiplies a value that is not the pooled, flattened feature.");
        AssertRefused(
            new OnnxModelBuilder().Node("ReduceMean", ["input"], "mean", Ints("axes", 1, 2)).Output("mean"),
            "node 'mean' (ReduceMean) averages over axes [1, 2]; only the spatial mean (axes 2 and 3) is supported.");
        AssertRefused(
            new OnnxModelBuilder().Node("ReduceMean", ["input"], "mean", Ints("axes", -1)).Output("mean"),
            "node 'mean' (ReduceMean) averages over axes [3]; only the spatial mean (axes 2 and 3) is supported.");
        AssertRefused(
            new OnnxModelBuilder().Node("ReduceMean", ["input"], "mean").Output("mean"),
            "node 'mean' (ReduceMean) averages over axes []; only the spatial mean (axes 2 and 3) is supported.");
    }

    [Fact]
    public void Flatten_takes_a_pooled_feature_at_axis_1_or_a_flat_one()
    {
        var graph = new OnnxModelBuilder().Floats("W", Ramp(6), 2, 3)
            .Node("GlobalAveragePool", ["input"], "pool").Node("Flatten", ["pool"], "flat", Int("axis", 1)).Node("Flatten", ["flat"], "again")
            .Node("Gemm", ["again", "W"], "fc", Int("transB", 1)).Output("fc").Import();
        Assert.Equal(2, graph.Nodes.Count);

        const string Refusal = "node 'flat' (Flatten) flattens a value that is not a pooled [N, C, 1, 1] feature.";
        AssertRefused(new OnnxModelBuilder().Node("GlobalAveragePool", ["input"], "pool").Node("Flatten", ["pool"], "flat", Int("axis", 2)).Output("flat"), Refusal);
        AssertRefused(new OnnxModelBuilder().Node("Flatten", ["input"], "flat").Output("flat"), Refusal);
    }

    [Theory]
    [InlineData(new long[] { 1, 3 }, true)]
    [InlineData(new long[] { -1, 3 }, true)]
    [InlineData(new long[] { 0, 3 }, true)]
    [InlineData(new long[] { 2, -1 }, true)]
    [InlineData(new long[] { 2, 3 }, false)]
    [InlineData(new long[] { 3 }, false)]
    [InlineData(new long[] { 1, -1, 1 }, false)]
    public void Reshape_of_a_pooled_feature_is_to_batch_by_features(long[] shape, bool accepted)
    {
        var model = new OnnxModelBuilder().Floats("W", Ramp(6), 2, 3).Longs("shape", shape)
            .Node("GlobalAveragePool", ["input"], "pool").Node("Reshape", ["pool", "shape"], "flat")
            .Node("Gemm", ["flat", "W"], "fc", Int("transB", 1)).Output("fc");
        if (accepted)
        {
            Assert.Equal(2, model.Import().Nodes.Count);
        }
        else
        {
            AssertRefused(model, "node 'flat' (Reshape) reshapes to something other than [batch, features] of a pooled feature.");
        }
    }

    /// <summary>PyTorch's flatten: Shape, Gather(0), Unsqueeze, Concat with [-1], Reshape; Gather(1) is the channel count.</summary>
    [Theory]
    [InlineData(0, new long[] { -1 }, true)]
    [InlineData(0, new long[] { 3 }, false)]
    [InlineData(1, new long[] { -1 }, false)]
    public void Shape_arithmetic_feeding_reshape_is_folded(long index, long[] rest, bool accepted)
    {
        var model = new OnnxModelBuilder().Floats("W", Ramp(6), 2, 3).Longs("index", index).Longs("rest", rest).Longs("axes", 0)
            .Node("GlobalAveragePool", ["input"], "pool").Node("Shape", ["pool"], "shape").Node("Gather", ["shape", "index"], "n", Int("axis", 0))
            .Node("Unsqueeze", ["n", "axes"], "n1").Node("Concat", ["n1", "rest"], "target", Int("axis", 0))
            .Node("Reshape", ["pool", "target"], "flat").Node("Gemm", ["flat", "W"], "fc", Int("transB", 1)).Output("fc");
        // Gather's index as a scalar, as PyTorch writes it.
        model.Graph.Initializer.Single(t => t.Name == "index").Dims.Clear();
        if (accepted)
        {
            Assert.Equal(2, model.Import().Nodes.Count);
        }
        else
        {
            AssertRefused(model, "node 'flat' (Reshape) reshapes to something other than [batch, features] of a pooled feature.");
        }
    }

    [Fact]
    public void Shape_arithmetic_refuses_what_depends_on_the_input_size()
    {
        static OnnxModelBuilder Gather(long index, long axis, int count = 1) => new OnnxModelBuilder().Longs("index", [.. Enumerable.Repeat(index, count)])
            .Node("Shape", ["input"], "shape").Node("Gather", ["shape", "index"], "g", Int("axis", axis)).Output("g");
        AssertRefused(Gather(2, 0), "node 'g' (Gather) reads a spatial size, which depends on the input.");
        AssertRefused(Gather(0, 1), "node 'g' (Gather) gathers from something other than a value's shape.");
        AssertRefused(Gather(0, 0, count: 2), "node 'g' (Gather) gathers from something other than a value's shape.");
        AssertRefused(
            new OnnxModelBuilder().Longs("index", 0).Node("Gather", ["input", "index"], "g").Output("g"),
            "node 'g' (Gather) gathers from something other than a value's shape.");
        AssertRefused(
            new OnnxModelBuilder().Longs("axes", 0).Node("Unsqueeze", ["input", "axes"], "u").Output("u"),
            "node 'u' (Unsqueeze) unsqueezes something other than shape arithmetic.");
        AssertRefused(
            new OnnxModelBuilder().Longs("rest", -1).Node("GlobalAveragePool", ["input"], "pool").Node("Concat", ["pool", "rest"], "cat", Int("axis", 0)).Output("cat"),
            "node 'cat' (Concat) joins tensors; only shape arithmetic (Shape, Gather, Unsqueeze, Concat feeding Reshape) is supported.");
        AssertRefused(
            new OnnxModelBuilder().Longs("rest", -1).Node("Shape", ["input"], "shape").Node("Concat", ["input", "shape"], "cat", Int("axis", 1)).Output("cat"),
            "node 'cat' (Concat) joins a feature map with shape arithmetic; only feature maps of one height and width are joined.");
    }

    [Fact]
    public void Concat_joins_feature_maps_along_channels_and_one_input_is_itself()
    {
        var graph = new OnnxModelBuilder().Node("Relu", ["input"], "relu").Node("Concat", ["relu", "input"], "cat", Int("axis", -3)).Output("cat").Import();
        var cat = Assert.IsType<ConcatNode>(graph.Nodes[1]);
        Assert.Equal([1, 0], cat.Inputs);

        var single = new OnnxModelBuilder().Node("Relu", ["input"], "relu").Node("Concat", ["relu"], "cat", Int("axis", 1)).Node("Sigmoid", ["cat"], "sig").Output("sig").Import();
        Assert.Equal([typeof(ActivationNode), typeof(ActivationNode)], single.Nodes.Select(n => n.GetType()));
        Assert.Equal(1, single.Nodes[1].Inputs[0]);

        AssertRefused(
            new OnnxModelBuilder().Node("Concat", ["input", "input"], "cat", Int("axis", 0)).Output("cat"),
            "node 'cat' (Concat) joins feature maps along axis 0; only the channel axis (1) of NCHW feature maps is supported.");
    }

    [Fact]
    public void Gemm_reads_the_classifier_form_and_transposes_a_weight_given_as_in_by_out()
    {
        var fc = Assert.IsType<LinearNode>(Classifier().Import().Nodes[^1]);
        Assert.Equal((3, 2), (fc.InFeatures, fc.OutFeatures));
        Assert.Equal([1f, 2, 3, 4, 5, 6], fc.Weight);
        Assert.Equal([0.5f, -0.5f], fc.Bias!);

        // W as [in 3, out 2] without transB: the layer's [out, in] weight is its transpose.
        var model = Classifier();
        model.Graph.Initializer[0] = FloatTensor("W", [1, 2, 3, 4, 5, 6], 3, 2);
        model.Last.Attribute.Clear();
        model.Last.Attribute.Add(Float("alpha", 1));
        model.Last.Attribute.Add(Float("beta", 1));
        model.Last.Attribute.Add(Int("transA", 0));
        var transposed = Assert.IsType<LinearNode>(model.Import().Nodes[^1]);
        Assert.Equal([1f, 3, 5, 2, 4, 6], transposed.Weight);
        Assert.Equal(2, transposed.OutFeatures);

        var input = EngineTestSupport.RandomInput(new Random(2), 2, 3, 4, 4);
        using var ort = OrtHarness.FromBytes(Renamed(model, "fc").Bytes());
        using var engine = CompiledModel.Compile(model.Import());
        EngineTestSupport.AssertClose(ort.Run(input).Data, engine.Run(input).Data, "Gemm without transB");

        // Without C the bias is zero.
        model.Last.Input.RemoveAt(2);
        Assert.Equal(new float[2], Assert.IsType<LinearNode>(model.Import().Nodes[^1]).Bias);
    }

    [Theory]
    [InlineData("alpha", 2f)]
    [InlineData("beta", 0.5f)]
    [InlineData("transA", 1f)]
    public void Gemm_refuses_scaling_and_a_transposed_input(string attribute, float value)
    {
        var model = Classifier();
        model.Last.Attribute.Add(attribute == "transA" ? Int(attribute, (long)value) : Float(attribute, value));
        AssertRefused(model, "node 'fc' (Gemm) uses alpha, beta or transA; the classifier form Gemm(x, W^T) + b is supported.");
    }

    [Fact]
    public void Gemm_and_matmul_refuse_weights_that_do_not_match_the_features()
    {
        var cube = Classifier();
        cube.Graph.Initializer[0] = FloatTensor("W", Ramp(6), 1, 2, 3);
        AssertRefused(cube, "node 'fc' (Gemm) uses alpha, beta or transA; the classifier form Gemm(x, W^T) + b is supported.");
        var wide = Classifier();
        wide.Graph.Initializer[0] = FloatTensor("W", Ramp(8), 2, 4);
        AssertRefused(wide, "node 'fc' (Gemm) has a [2, 4] weight for 3 features.");
        wide.Last.Attribute.Clear();
        wide.Graph.Initializer[0] = FloatTensor("W", Ramp(8), 4, 2);
        AssertRefused(wide, "node 'fc' (Gemm) has a [4, 2] weight for 3 features.");
        AssertRefused(
            new OnnxModelBuilder().Floats("W", Ramp(6), 2, 3).Node("Gemm", ["input", "W"], "fc").Output("fc"),
            "node 'fc' (Gemm) multiplies a value that is not the pooled, flattened feature.");

        static OnnxModelBuilder MatMul(float[] w, params long[] dims) => new OnnxModelBuilder().Floats("W", w, dims)
            .Node("GlobalAveragePool", ["input"], "pool").Node("Flatten", ["pool"], "flat").Node("MatMul", ["flat", "W"], "fc").Output("fc");
        AssertRefused(MatMul(Ramp(6), 1, 3, 2), "node 'fc' (MatMul) has a weight that is not a matrix.");
        AssertRefused(MatMul(Ramp(8), 4, 2), "node 'fc' (MatMul) has a [4, 2] weight for 3 features.");
        AssertRefused(
            new OnnxModelBuilder().Floats("W", Ramp(6), 3, 2).Node("MatMul", ["input", "W"], "fc").Output("fc"),
            "node 'fc' (MatMul) multiplies a value that is not the pooled, flattened feature.");
    }

    [Fact]
    public void MatMul_then_add_is_one_linear_layer_named_after_the_add()
    {
        var model = new OnnxModelBuilder().Floats("W", [1, 2, 3, 4, 5, 6], 3, 2).Floats("bias", [0.5f, 0.25f], 2)
            .Node("GlobalAveragePool", ["input"], "pool").Node("Flatten", ["pool"], "flat").Node("MatMul", ["flat", "W"], "mm")
            .Node("Add", ["mm", "bias"], "logits").Output("logits");
        var graph = model.Import();
        Assert.Equal(2, graph.Nodes.Count);
        Assert.Equal("logits.pool", graph.Nodes[0].Name);
        var fc = Assert.IsType<LinearNode>(graph.Nodes[1]);
        Assert.Equal("logits", fc.Name);
        Assert.Equal([1f, 3, 5, 2, 4, 6], fc.Weight);
        Assert.Equal([0.5f, 0.25f], fc.Bias!);

        var input = EngineTestSupport.RandomInput(new Random(7), 2, 3, 3, 5);
        using var ort = OrtHarness.FromBytes(model.Bytes());
        using var engine = CompiledModel.Compile(graph);
        EngineTestSupport.AssertClose(ort.Run(input).Data, engine.Run(input).Data, "MatMul + Add");

        // A bias of the wrong length, or a second one, is arithmetic on the classifier's output.
        const string Combines = "node 'logits' (Add) combines values the engine has no element-wise operation for (one image value with scalar constants, a residual sum of two values, or a squeeze-excite gate).";
        model.Graph.Initializer[1] = FloatTensor("bias", [1, 2, 3], 3);
        AssertRefused(model, Combines);
        var twice = Classifier().Floats("more", [1, 2], 2).Node("Add", ["fc", "more"], "logits");
        twice.Graph.Output[0].Name = "logits";
        AssertRefused(twice, Combines);
    }

    [Theory]
    [InlineData(12, false)]
    [InlineData(13, true)]
    public void Softmax_over_the_channels_of_a_feature_map_needs_opset_13(int opset, bool accepted)
    {
        var model = new OnnxModelBuilder(opset: opset).Node("Relu", ["input"], "relu").Node("Softmax", ["relu"], "sm", Int("axis", 1)).Output("sm");
        if (accepted)
        {
            Assert.Equal([typeof(ActivationNode), typeof(SoftmaxNode)], model.Import().Nodes.Select(n => n.GetType()));
        }
        else
        {
            var e = model.Refuse();
            Assert.StartsWith($"node 'sm' (Softmax) normalizes a feature map over C x H x W together (opset {opset} flattens from its axis on); supported:", e.Problem);
        }
    }

    [Fact]
    public void Softmax_of_a_flat_feature_pools_first_and_other_axes_are_refused()
    {
        var graph = new OnnxModelBuilder().Node("GlobalAveragePool", ["input"], "pool").Node("Flatten", ["pool"], "flat").Node("Softmax", ["flat"], "sm").Output("sm").Import();
        Assert.Equal(["sm.pool", "sm"], graph.Nodes.Select(n => n.Name));
        Assert.IsType<SoftmaxNode>(graph.Nodes[1]);

        const string Supported = "supported: the class axis of [N, C] and the channel axis of [N, C, 1, 1] (axis 1, or -1 and -3 respectively), and from opset 13 the channel axis (1) of a feature map";
        AssertRefused(
            Classifier().Node("Softmax", ["fc"], "sm", Int("axis", 0)),
            $"node 'sm' (Softmax) normalizes the classifier's output over axis 0; {Supported}.");
        AssertRefused(
            new OnnxModelBuilder().Node("GlobalAveragePool", ["input"], "pool").Node("Softmax", ["pool"], "sm").Output("sm"),
            $"node 'sm' (Softmax) normalizes a pooled [N, C, 1, 1] feature over axis -1; {Supported}.");
        AssertRefused(
            new OnnxModelBuilder(opset: 11).Node("GlobalAveragePool", ["input"], "pool").Node("Softmax", ["pool"], "sm", Int("axis", 0)).Output("sm"),
            $"node 'sm' (Softmax) normalizes a pooled [N, C, 1, 1] feature over axis 0; {Supported}.");
    }

    [Theory]
    [InlineData(new long[] { 0, 0, 1, 1 }, "has pads [0, 0, 1, 1]")]
    [InlineData(new long[] { 1, 0, 0, 0, 0, 0, 0, 0 }, "has pads [1, 0, 0, 0, 0, 0, 0, 0]")]
    [InlineData(new long[] { 0, 1, 0, 0, 0, 0, 0, 0 }, "has pads [0, 1, 0, 0, 0, 0, 0, 0]")]
    [InlineData(new long[] { 0, 0, 0, 0, 1, 0, 0, 0 }, "has pads [0, 0, 0, 0, 1, 0, 0, 0]")]
    [InlineData(new long[] { 0, 0, 0, 0, 0, 1, 0, 0 }, "has pads [0, 0, 0, 0, 0, 1, 0, 0]")]
    [InlineData(new long[] { 0, 0, 1, -1, 0, 0, 1, 1 }, "has pads [0, 0, 1, -1, 0, 0, 1, 1]")]
    [InlineData(new long[] { 0, 0, 0, 0, 0, 0, 0, 2147483648 }, "has pads [0, 0, 0, 0, 0, 0, 0, 2147483648]")]
    public void Pad_refuses_pads_other_than_non_negative_ones_of_height_and_width(long[] pads, string problem) =>
        AssertRefused(
            new OnnxModelBuilder().Longs("pads", pads).Node("Pad", ["input", "pads"], "pad").Output("pad"),
            $"node 'pad' (Pad) {problem}; only non-negative pads of H and W of an NCHW tensor are supported.");

    [Fact]
    public void Pad_reads_pads_and_value_as_attributes_or_inputs()
    {
        // Pad's attribute form (opset 2-10), as some converters still write it.
        var graph = new OnnxModelBuilder().Node("Pad", ["input"], "pad", Text("mode", "constant"), Ints("pads", 0, 0, 1, 2, 0, 0, 3, 4), Float("value", 0)).Output("pad").Import();
        var pad = Assert.IsType<PadNode>(Assert.Single(graph.Nodes));
        Assert.Equal((1, 2, 3, 4), (pad.Top, pad.Left, pad.Bottom, pad.Right));
        AssertRefused(
            new OnnxModelBuilder().Node("Pad", ["input"], "pad", Ints("pads", 0, 0, 1, 1, 0, 0, 1, 1), Float("value", 2)).Output("pad"),
            "node 'pad' (Pad) pads with the constant 2; only constant zero padding of H and W is supported.");

        // The optional constant_value input omitted by an empty name, given as 0, or not a scalar.
        var omitted = new OnnxModelBuilder().Longs("pads", 0, 0, 1, 1, 0, 0, 1, 1).Node("Pad", ["input", "pads", ""], "pad").Output("pad");
        Assert.IsType<PadNode>(Assert.Single(omitted.Import().Nodes));
        var zero = new OnnxModelBuilder().Longs("pads", 0, 0, 1, 1, 0, 0, 1, 1).Floats("value", [0f]).Node("Pad", ["input", "pads", "value"], "pad").Output("pad");
        Assert.IsType<PadNode>(Assert.Single(zero.Import().Nodes));
        AssertRefused(
            new OnnxModelBuilder().Longs("pads", 0, 0, 1, 1, 0, 0, 1, 1).Floats("value", [0, 0], 2).Node("Pad", ["input", "pads", "value"], "pad").Output("pad"),
            "node 'pad' (Pad) has a constant_value that is not a scalar.");

        // No padding at all is the value itself.
        var none = new OnnxModelBuilder().Longs("pads", 0, 0, 0, 0, 0, 0, 0, 0).Node("Pad", ["input", "pads"], "pad").Node("Relu", ["pad"], "relu").Output("relu").Import();
        Assert.Equal(LayerGraph.Input, Assert.IsType<ActivationNode>(Assert.Single(none.Nodes)).Input);
    }

    [Fact]
    public void Consecutive_pads_add_up_and_a_total_beyond_any_image_is_refused()
    {
        var graph = new OnnxModelBuilder().Floats("w", Ramp(108, 0.01f), 4, 3, 3, 3).Longs("p1", 0, 0, 1, 0, 0, 0, 0, 2).Longs("p2", 0, 0, 0, 2, 0, 0, 1, 0)
            .Node("Pad", ["input", "p1"], "pad1").Node("Pad", ["pad1", "p2"], "pad2").Node("Conv", ["pad2", "w"], "conv").Output("conv").Import();
        var conv = Assert.IsType<ConvNode>(Assert.Single(graph.Nodes));
        Assert.Equal((1, 2), (conv.PadH, conv.PadW));

        // Pads as attributes (int64): an input is read as floats, which hold no odd value near 2^29.
        static OnnxModelBuilder Twice(long first, long second) => new OnnxModelBuilder()
            .Node("Pad", ["input"], "pad1", Ints("pads", 0, 0, first, 0, 0, 0, 0, 0)).Node("Pad", ["pad1"], "pad2", Ints("pads", 0, 0, second, 0, 0, 0, 0, 0)).Output("pad2");
        const int Limit = int.MaxValue / 4;
        Assert.Equal(Limit, Assert.IsType<PadNode>(Assert.Single(Twice(Limit - 1, 1).Import().Nodes)).Top);
        AssertRefused(Twice(Limit, 1), $"node 'pad2' (Pad) pads by [{Limit + 1L}, 0, 0, 0] in all; that is no image size.");
    }

    [Fact]
    public void A_value_an_operation_needs_as_an_image_is_described_in_the_refusal()
    {
        static void Check(OnnxModelBuilder model, string value, string described)
        {
            model.Graph.Output.Clear();
            model.Node("MaxPool", [value], "mp", Ints("kernel_shape", 1, 1)).Output("mp");
            AssertRefused(model, $"node 'mp' (MaxPool) takes {described} where an image-shaped tensor is expected.");
        }

        Check(new OnnxModelBuilder().Floats("c", [1, 2], 2, 1), "c", "a constant [2, 1]");
        Check(new OnnxModelBuilder().Node("GlobalAveragePool", ["input"], "pool"), "pool", "a pooled [N, C, 1, 1] feature");
        Check(new OnnxModelBuilder().Node("GlobalAveragePool", ["input"], "pool").Node("Flatten", ["pool"], "flat"), "flat", "a flattened [N, C] feature");
        Check(Classifier(), "fc", "the classifier's output");
        Check(Classifier().Node("Softmax", ["fc"], "sm"), "sm", "the classifier's probabilities");
        Check(new OnnxModelBuilder().Node("Shape", ["input"], "shape"), "shape", "shape arithmetic");
        Check(SqueezeExcite(), "gate", "a squeeze-excite gate");
    }

    [Fact]
    public void A_graph_output_the_engine_cannot_hold_is_refused_by_what_it_is()
    {
        AssertRefused(
            new OnnxModelBuilder().Node("GlobalAveragePool", ["input"], "pool").Node("Flatten", ["pool"], "flat").Output("flat"),
            "node 'flat' uses a flattened [N, C] feature as a tensor; the engine has no operation for it.");
        AssertRefused(
            new OnnxModelBuilder().Node("Shape", ["input"], "shape").Output("shape"),
            "node 'shape' uses shape arithmetic as a tensor; the engine has no operation for it.");
    }

    [Fact]
    public void Tensors_are_read_from_raw_data_or_the_typed_fields()
    {
        // The float_data field, and int64 pads in the int64_data field.
        var model = new OnnxModelBuilder();
        var weight = new TensorProto { Name = "w", DataType = (int)TensorProto.Types.DataType.Float, Dims = { 4, 3, 1, 1 } };
        weight.FloatData.AddRange(Ramp(12, -0.5f));
        var pads = new TensorProto { Name = "pads", DataType = (int)TensorProto.Types.DataType.Int64, Dims = { 8 } };
        pads.Int64Data.AddRange([0, 0, 0, 1, 0, 0, 2, 0]);
        model.Graph.Initializer.Add(weight);
        model.Graph.Initializer.Add(pads);
        var graph = model.Node("Pad", ["input", "pads"], "pad").Node("Conv", ["pad", "w"], "conv").Output("conv").Import();
        var pad = Assert.IsType<PadNode>(graph.Nodes[0]);
        Assert.Equal((0, 1, 2, 0), (pad.Top, pad.Left, pad.Bottom, pad.Right));
        Assert.Equal(Ramp(12, -0.5f), Assert.IsType<ConvNode>(graph.Nodes[1]).Weight);

        // Raw int64 little-endian, negative values included (-1 is "the rest").
        var raw = new OnnxModelBuilder().Floats("W", Ramp(6), 2, 3).Longs("shape", -1, 3)
            .Node("GlobalAveragePool", ["input"], "pool").Node("Reshape", ["pool", "shape"], "flat").Node("Gemm", ["flat", "W"], "fc", Int("transB", 1)).Output("fc");
        Assert.Equal(2, raw.Import().Nodes.Count);
    }

    [Fact]
    public void Tensors_whose_shape_type_or_length_is_wrong_are_named()
    {
        static void Check(TensorProto tensor, string problem)
        {
            var model = ConvModel();
            model.Graph.Initializer[0] = tensor;
            AssertRefused(model, problem, "w");
        }

        Check(new TensorProto { Name = "w", DataType = 1, Dims = { 4, -1, 3, 3 } }, "has dimension -1.");
        Check(new TensorProto { Name = "w", DataType = 1, Dims = { 4, 2147483648L, 3, 3 } }, "has dimension 2147483648.");
        Check(new TensorProto { Name = "w", DataType = 1, Dims = { int.MaxValue, int.MaxValue, 4 } }, $"declares the shape [{int.MaxValue}, {int.MaxValue}, 4], more elements than any file holds.");
        Check(new TensorProto { Name = "w", DataType = 1, Dims = { int.MaxValue } }, $"declares {int.MaxValue} elements, more than one array holds.");
        Check(new TensorProto { Name = "w", DataType = 1, Dims = { Array.MaxLength + 1L } }, $"declares {Array.MaxLength + 1L} elements, more than one array holds.");
        // Exactly Array.MaxLength elements is an array's size: what is missing then is the data.
        Check(new TensorProto { Name = "w", DataType = 1, Dims = { Array.MaxLength } }, $"holds 0 bytes; its shape [{Array.MaxLength}] of Float needs {Array.MaxLength * 4L}.");
        Check(new TensorProto { Name = "w", DataType = (int)TensorProto.Types.DataType.Double, Dims = { 1 } }, "is a Double tensor; the importer reads float32 weights and int64 shapes.");
        Check(FloatTensor("w", Ramp(107), 4, 3, 3, 3), "holds 428 bytes; its shape [4, 3, 3, 3] of Float needs 432.");
        var typed = new TensorProto { Name = "w", DataType = 1, Dims = { 4, 3, 3, 3 } };
        typed.FloatData.AddRange(Ramp(107));
        Check(typed, "holds 0 bytes; its shape [4, 3, 3, 3] of Float needs 432.");
        var longs = new TensorProto { Name = "w", DataType = (int)TensorProto.Types.DataType.Int64, Dims = { 2 } };
        longs.Int64Data.Add(1);
        Check(longs, "holds 0 bytes; its shape [2] of Int64 needs 16.");
    }

    [Fact]
    public void A_constant_nodes_tensor_is_named_by_the_node()
    {
        var model = new OnnxModelBuilder()
            .Node("Constant", [], "wc", Tensor("value", new TensorProto { Name = "", DataType = (int)TensorProto.Types.DataType.Double, Dims = { 1 } }))
            .Node("Conv", ["input", "wc"], "conv").Output("conv");
        AssertRefused(model, "is a Double tensor; the importer reads float32 weights and int64 shapes.", "wc");
    }

    [Fact]
    public void External_data_is_read_beside_the_model_at_its_offset()
    {
        using var dir = new TempDir();
        var weight = Ramp(108, 0.25f);
        var bytes = new byte[8 + (108 * 4)];
        for (int i = 0; i < weight.Length; i++)
        {
            System.Buffers.Binary.BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(8 + (i * 4)), weight[i]);
        }

        File.WriteAllBytes(dir.File("w.bin"), bytes);
        string path = dir.File("model.onnx");

        void Write(params (string Key, string Value)[] entries)
        {
            var model = ConvModel();
            var tensor = new TensorProto { Name = "w", DataType = 1, Dims = { 4, 3, 3, 3 }, DataLocation = TensorProto.Types.DataLocation.External };
            foreach (var (key, value) in entries)
            {
                tensor.ExternalData.Add(new StringStringEntryProto { Key = key, Value = value });
            }

            model.Graph.Initializer[0] = tensor;
            File.WriteAllBytes(path, model.Bytes());
        }

        void Refused(string problem)
        {
            var e = Assert.Throws<CheckpointException>(() => OnnxImporter.Load(path));
            Assert.Equal((path, problem, "w"), (e.FilePath, e.Problem, e.Key));
        }

        // The last 432 bytes exactly: offset 8 of a 440-byte file.
        Write(("location", "w.bin"), ("offset", "8"));
        Assert.Equal(weight, Assert.IsType<ConvNode>(Assert.Single(OnnxImporter.Load(path).Nodes)).Weight);
        var e = Assert.Throws<CheckpointException>(() => OnnxImporter.FromBytes(File.ReadAllBytes(path), "bytes.onnx"));
        Assert.Equal("keeps its data in an external file, which cannot be read here (no location, or the model was given as bytes).", e.Problem);

        Write(("location", "w.bin"), ("offset", "9"));
        Refused("reads 432 bytes at offset 9 of 'w.bin', which holds 440.");
        Write(("location", "w.bin"), ("offset", "-1"));
        Refused("reads 432 bytes at offset -1 of 'w.bin', which holds 440.");
        // Without an offset the data starts at 0: the first 432 bytes, shifted by the 8-byte gap.
        Write(("location", "w.bin"));
        Assert.Equal(0f, Assert.IsType<ConvNode>(Assert.Single(OnnxImporter.Load(path).Nodes)).Weight[0]);
        Assert.Equal(weight[^3], Assert.IsType<ConvNode>(Assert.Single(OnnxImporter.Load(path).Nodes)).Weight[^1]);
        // Regression: an offset that is no number, or so large that offset + length wrapped past the range check,
        // escaped as a FormatException or an EndOfStreamException instead of naming the tensor.
        Write(("location", "w.bin"), ("offset", "eight"));
        Refused("has the external data offset 'eight', which is not a number of bytes.");
        Write(("location", "w.bin"), ("offset", long.MaxValue.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        Refused($"reads 432 bytes at offset {long.MaxValue} of 'w.bin', which holds 440.");
        Write(("offset", "8"));
        Refused("keeps its data in an external file, which cannot be read here (no location, or the model was given as bytes).");
        Write(("location", "missing.bin"));
        Refused("keeps its data in 'missing.bin', which does not exist beside the model.");
        Write(("location", "../w.bin"));
        Refused("names the external data file '../w.bin' outside the model's folder.");
    }

    /// <summary>The same model with its input and output named as <see cref="OrtHarness"/> runs them ("input", "logits").</summary>
    private static OnnxModelBuilder Renamed(OnnxModelBuilder model, string output)
    {
        foreach (var node in model.Graph.Node)
        {
            for (int i = 0; i < node.Input.Count; i++)
            {
                node.Input[i] = node.Input[i] == output ? "logits" : node.Input[i];
            }

            for (int i = 0; i < node.Output.Count; i++)
            {
                node.Output[i] = node.Output[i] == output ? "logits" : node.Output[i];
            }
        }

        model.Graph.Output[0].Name = model.Graph.Output[0].Name == output ? "logits" : model.Graph.Output[0].Name;
        return model;
    }
}
