using System.Buffers.Binary;
using System.Globalization;
using System.Runtime.InteropServices;
using Google.Protobuf;
using MobileOne.Graph;
using MobileOne.Kernels;
using Onnx;

namespace MobileOne.IO.Onnx;

/// <summary>
/// Translates a <see cref="LayerGraph"/> into ONNX nodes and initializers, node by node in the graph's order.
/// </summary>
/// <remarks>
/// <para>Names: an initializer is the graph node's name plus its timm suffix (<c>.weight</c>, <c>.bias</c>,
/// <c>.running_mean</c>, <c>.running_var</c>; <c>.fc1.weight</c> ... for squeeze-excite). A node's ONNX output value is
/// named after the node (through <c>rename</c>), the helper nodes of a decomposition after it with a suffix
/// (<c>attn.pool</c>, <c>act.erf</c>); the value the graph returns is named by the caller (<c>logits</c>). Clashes get
/// a <c>_1</c>, <c>_2</c> ... suffix.</para>
/// <para>Ranks: every value is NCHW except after a <see cref="LinearNode"/> (Flatten + Gemm give [batch, features]);
/// point-wise nodes keep that rank, and a node that needs NCHW gets it through an Unsqueeze of axes 2 and 3.</para>
/// </remarks>
internal sealed class OnnxGraphWriter
{
    private readonly GraphProto graph;
    private readonly int opset;
    private readonly Func<string, string> rename;
    private readonly HashSet<string> names = new(StringComparer.Ordinal);
    private readonly Dictionary<int, string> constants = [];
    private readonly Dictionary<string, string> nchwViews = new(StringComparer.Ordinal);
    private readonly string[] values;
    private readonly ValueForm[] forms;
    private string? unsqueezeAxes;

    private OnnxGraphWriter(GraphProto graph, LayerGraph layers, int opset, Func<string, string> rename)
    {
        this.graph = graph;
        this.opset = opset;
        this.rename = rename;
        values = new string[layers.Nodes.Count + 1];
        forms = new ValueForm[layers.Nodes.Count + 1];
    }

    /// <summary>The rank of a value in the ONNX graph (4: NCHW, 2: [batch, features]) and whether its spatial size is 1x1 for every input size.</summary>
    private readonly record struct ValueForm(int Rank, bool UnitSpatial);

    /// <summary>Appends the graph's input, nodes, initializers and output to <paramref name="graph"/>.</summary>
    public static void Write(GraphProto graph, LayerGraph layers, int opset, string inputName, string outputName, Func<string, string> rename)
    {
        var writer = new OnnxGraphWriter(graph, layers, opset, rename);
        writer.names.Add(inputName);
        writer.names.Add(outputName);
        writer.values[LayerGraph.Input] = inputName;
        writer.forms[LayerGraph.Input] = new ValueForm(4, false);
        graph.Input.Add(TensorValue(inputName, Dim(OnnxExporter.BatchDimension), Dim(layers.InputChannels), Dim(OnnxExporter.HeightDimension), Dim(OnnxExporter.WidthDimension)));

        int output = layers.Output;
        if (output == LayerGraph.Input)
        {
            writer.Node("Identity", outputName, [inputName], outputName);
            writer.values[LayerGraph.Input] = outputName;
        }

        for (int i = 0; i < layers.Nodes.Count; i++)
        {
            int value = i + 1;
            var node = layers.Nodes[i];
            string name = writer.UniqueValue(node.Name);
            (writer.values[value], writer.forms[value]) = writer.Emit(node, name, value == output ? outputName : name);
        }

        var form = writer.forms[output];
        int channels = layers.ChannelsOf(output);
        graph.Output.Add(form.Rank == 2
            ? TensorValue(outputName, Dim(OnnxExporter.BatchDimension), Dim(channels))
            : form.UnitSpatial
                ? TensorValue(outputName, Dim(OnnxExporter.BatchDimension), Dim(channels), Dim(1), Dim(1))
                : TensorValue(outputName, Dim(OnnxExporter.BatchDimension), Dim(channels), Dim(OutputHeightDimension), Dim(OutputWidthDimension)));
    }

    /// <summary>Symbolic spatial dimensions of an NCHW graph output (they may differ from the input's).</summary>
    public const string OutputHeightDimension = "output_height";

    public const string OutputWidthDimension = "output_width";

    /// <summary>Shape of the value a graph returns, as the model's doc string states it.</summary>
    public static string DescribeOutput(GraphProto graph) =>
        "[" + string.Join(", ", graph.Output[0].Type.TensorType.Shape.Dim.Select(d => d.HasDimParam ? d.DimParam : d.DimValue.ToString(CultureInfo.InvariantCulture))) + "]";

    private (string Value, ValueForm Form) Emit(GraphNode node, string name, string output) => node switch
    {
        ConvNode conv => (Conv(conv, name, output), new ValueForm(4, forms[conv.Input].UnitSpatial && StaysUnit((conv.DilationH * (conv.KernelHeight - 1)) + 1, conv.PadH, conv.StrideH) && StaysUnit((conv.DilationW * (conv.KernelWidth - 1)) + 1, conv.PadW, conv.StrideW))),
        // ONNX has no sparse convolution: the sparse part of a compressed layer is written as the dense Conv it equals
        // (zeros where nothing is stored), which the following Add sums like any branch.
        SparseConvNode sparse => Emit(sparse.ToDense(), name, output),
        BatchNormNode bn => (BatchNorm(bn, name, output), new ValueForm(4, forms[bn.Input].UnitSpatial)),
        ActivationNode act => (Activation(act.Activation, values[act.Input], name, output), forms[act.Input]),
        SqueezeExciteNode se => (SqueezeExcite(se, name, output), new ValueForm(4, forms[se.Input].UnitSpatial)),
        DyReluNode dy => (DyRelu(dy, name, output), new ValueForm(4, forms[dy.Input].UnitSpatial)),
        DynamicShiftMaxNode dsm => (ShiftMax(dsm, name, output), new ValueForm(4, forms[dsm.Input].UnitSpatial)),
        AddNode add => Add(add, name, output),
        PoolNode pool => (Pool(pool, name, output), new ValueForm(4, forms[pool.Input].UnitSpatial && StaysUnit(pool.Kernel, pool.Padding, pool.Stride))),
        GlobalAveragePoolNode gap => (Node("GlobalAveragePool", name, [Nchw(gap.Input)], output), new ValueForm(4, true)),
        LinearNode linear => (Linear(linear, name, output), new ValueForm(2, true)),
        SoftmaxNode softmax => (Node("Softmax", name, [values[softmax.Input]], output, Int("axis", 1)), forms[softmax.Input]),
        ConcatNode concat => (Node("Concat", name, [.. concat.Inputs.Select(Nchw)], output, Int("axis", 1)), new ValueForm(4, concat.Inputs.Any(v => forms[v].UnitSpatial))),
        PadNode pad => (Pad(pad, name, output), new ValueForm(4, false)),
        _ => throw new NotSupportedException($"Node {node.Name}: the ONNX exporter has no translation for {node.GetType().Name}."),
    };

    /// <summary>Whether a window of extent <paramref name="extent"/> over a 1-pixel axis padded by <paramref name="pad"/> gives 1 pixel.</summary>
    private static bool StaysUnit(int extent, int pad, int stride) => 1 + (2 * pad) - extent >= 0 && 1 + (2 * pad) - extent < stride;

    private string Conv(ConvNode conv, string name, string output)
    {
        string weight = Initializer(conv.Name + ".weight", conv.Weight, conv.OutChannels, conv.InChannels / conv.Groups, conv.KernelHeight, conv.KernelWidth);
        string[] inputs = conv.Bias is null
            ? [Nchw(conv.Input), weight]
            : [Nchw(conv.Input), weight, Initializer(conv.Name + ".bias", conv.Bias, conv.OutChannels)];
        return Node(
            "Conv",
            name,
            inputs,
            output,
            Ints("dilations", conv.DilationH, conv.DilationW),
            Int("group", conv.Groups),
            Ints("kernel_shape", conv.KernelHeight, conv.KernelWidth),
            Ints("pads", conv.PadH, conv.PadW, conv.PadH, conv.PadW),
            Ints("strides", conv.StrideH, conv.StrideW));
    }

    private string BatchNorm(BatchNormNode bn, string name, string output) => Node(
        "BatchNormalization",
        name,
        [
            Nchw(bn.Input),
            Initializer(bn.Name + ".weight", bn.Gamma, bn.Channels),
            Initializer(bn.Name + ".bias", bn.Beta, bn.Channels),
            Initializer(bn.Name + ".running_mean", bn.Mean, bn.Channels),
            Initializer(bn.Name + ".running_var", bn.Var, bn.Channels),
        ],
        output,
        Float("epsilon", (float)bn.Eps));

    /// <summary>GlobalAveragePool -> Conv (fc1) -> inner activation -> Conv (fc2) -> gate activation -> Mul, as timm's SqueezeExcite.</summary>
    private string SqueezeExcite(SqueezeExciteNode se, string name, string output)
    {
        string x = Nchw(se.Input);
        string pooled = Node("GlobalAveragePool", UniqueValue(name + ".pool"), [x]);
        string hidden = Node(
            "Conv",
            UniqueValue(name + ".fc1"),
            [pooled, Initializer(se.Name + ".fc1.weight", se.ReduceWeight, se.Reduced, se.Channels, 1, 1), Initializer(se.Name + ".fc1.bias", se.ReduceBias, se.Reduced)],
            null,
            PointwiseConvAttributes());
        hidden = Activation(se.InnerActivation, hidden, UniqueValue($"{name}.{ActivationSuffix(se.InnerActivation)}"));
        string gate = Node(
            "Conv",
            UniqueValue(name + ".fc2"),
            [hidden, Initializer(se.Name + ".fc2.weight", se.ExpandWeight, se.Channels, se.Reduced, 1, 1), Initializer(se.Name + ".fc2.bias", se.ExpandBias, se.Channels)],
            null,
            PointwiseConvAttributes());
        gate = Activation(se.GateActivation, gate, UniqueValue($"{name}.{ActivationSuffix(se.GateActivation)}"));
        return Node("Mul", UniqueValue(name + ".scale"), [x, gate], output == name ? null : output);
    }

    /// <summary>
    /// GlobalAveragePool -> Conv (fc1) -> Relu -> Conv (fc2): the hyper function of a dynamic activation; fc2's rows
    /// are given in slot-major order (row s * width + c), so that each coefficient slot is one channel range.
    /// </summary>
    private string Hyper(string x, string name, string prefix, int channels, int reduced, float[] w1, float[] b1, float[] w2, float[] b2, int outputs)
    {
        string pooled = Node("GlobalAveragePool", UniqueValue(name + ".pool"), [x]);
        string hidden = Node(
            "Conv",
            UniqueValue(name + ".fc1"),
            [pooled, Initializer(prefix + ".fc1.weight", w1, reduced, channels, 1, 1), Initializer(prefix + ".fc1.bias", b1, reduced)],
            null,
            PointwiseConvAttributes());
        hidden = Node("Relu", UniqueValue(name + ".relu"), [hidden]);
        return Node(
            "Conv",
            UniqueValue(name + ".fc2"),
            [hidden, Initializer(prefix + ".fc2.weight", w2, outputs, reduced, 1, 1), Initializer(prefix + ".fc2.bias", b2, outputs)],
            null,
            PointwiseConvAttributes());
    }

    /// <summary>Channels [slot * width, (slot + 1) * width) of an NCHW value.</summary>
    private string SliceChannels(string x, string name, int slot, int width) => Node(
        "Slice",
        UniqueValue($"{name}.{slot}"),
        [x, Int64Initializer(Unique($"{name}.{slot}.starts"), (long)slot * width), Int64Initializer(Unique($"{name}.{slot}.ends"), (long)(slot + 1) * width), Int64Initializer(Unique($"{name}.{slot}.axes"), 1)]);

    /// <summary>
    /// DyReLU: the hyper function (fc2 rows reordered slot-major: slot s &lt; K is a^s, K + s is b^s; width 1 for
    /// DyReLU-A, C for DyReLU-B), 2 Sigmoid - 1, times the lambdas plus the initial values, Slice per slot,
    /// x a^k + b^k per k, Max.
    /// </summary>
    private string DyRelu(DyReluNode d, string name, string output)
    {
        string x = Nchw(d.Input);
        int slots = 2 * d.K, width = d.Kind == DyReluKind.A ? 1 : d.Channels, outputs = slots * width;
        var w2 = new float[outputs * d.Reduced];
        var b2 = new float[outputs];
        var lambdas = new float[outputs];
        var init = new float[outputs];
        for (int slot = 0; slot < slots; slot++)
        {
            for (int c = 0; c < width; c++)
            {
                int to = (slot * width) + c, from = d.Kind == DyReluKind.A ? slot : (c * slots) + slot;
                Array.Copy(d.ExpandWeight, from * d.Reduced, w2, to * d.Reduced, d.Reduced);
                b2[to] = d.ExpandBias[from];
                lambdas[to] = (float)(slot < d.K ? d.LambdaA : d.LambdaB);
                init[to] = slot == 0 ? 1f : 0f;
            }
        }

        string z = Hyper(x, name, d.Name, d.Channels, d.Reduced, d.ReduceWeight, d.ReduceBias, w2, b2, outputs);
        string sigmoid = Node("Sigmoid", UniqueValue(name + ".sigmoid"), [z]);
        string theta = Node("Sub", UniqueValue(name + ".theta"), [Node("Mul", UniqueValue(name + ".twice"), [sigmoid, Constant(2f)]), Constant(1f)]);
        string scaled = Node("Mul", UniqueValue(name + ".scaled"), [theta, Initializer(d.Name + ".lambdas", lambdas, 1, outputs, 1, 1)]);
        string coefficients = Node("Add", UniqueValue(name + ".coefficients"), [scaled, Initializer(d.Name + ".init", init, 1, outputs, 1, 1)]);
        var pieces = new string[d.K];
        for (int k = 0; k < d.K; k++)
        {
            string a = SliceChannels(coefficients, name + ".a", k, width);
            string b = SliceChannels(coefficients, name + ".b", d.K + k, width);
            pieces[k] = Node("Add", UniqueValue($"{name}.piece{k}"), [Node("Mul", UniqueValue($"{name}.ax{k}"), [x, a]), b]);
        }

        return Node("Max", UniqueValue(name + ".max"), pieces, output == name ? null : output);
    }

    /// <summary>
    /// Dynamic shift-max: the hyper function (its fc2 order (k J + j) C + i is already slot-major), HardSigmoid times
    /// 2 Lambda plus (init - Lambda), Slice per (k, j); x shifted by j C/G channels is a Gather along the channels;
    /// per k the sum over j of coefficient times shifted x, then Max over k.
    /// </summary>
    private string ShiftMax(DynamicShiftMaxNode m, string name, string output)
    {
        string x = Nchw(m.Input);
        int c = m.Channels, outputs = m.Coefficients;
        var offset = new float[outputs];
        for (int o = 0; o < outputs; o++)
        {
            int kj = o / c;
            offset[o] = (float)(DynamicShiftMaxNode.Init(kj / m.J, kj % m.J) - m.Lambda);
        }

        string z = Hyper(x, name, m.Name, c, m.Reduced, m.ReduceWeight, m.ReduceBias, m.ExpandWeight, m.ExpandBias, outputs);
        string hsig = HardSigmoid(z, UniqueValue(name + ".hardsigmoid"), null);
        string scaled = Node("Mul", UniqueValue(name + ".scaled"), [hsig, Constant((float)(2 * m.Lambda))]);
        string coefficients = Node("Add", UniqueValue(name + ".coefficients"), [scaled, Initializer(m.Name + ".offset", offset, 1, outputs, 1, 1)]);
        var shifted = new string[m.J];
        for (int j = 0; j < m.J; j++)
        {
            long[] indices = Enumerable.Range(0, c).Select(i => (long)((i + (j * m.GroupChannels)) % c)).ToArray();
            shifted[j] = j == 0 ? x : Node("Gather", UniqueValue($"{name}.shift{j}"), [x, Int64Initializer(Unique($"{name}.shift{j}.indices"), indices)], null, Int("axis", 1));
        }

        var pieces = new string[m.K];
        for (int k = 0; k < m.K; k++)
        {
            string total = "";
            for (int j = 0; j < m.J; j++)
            {
                string a = SliceChannels(coefficients, name + ".a", (k * m.J) + j, c);
                string term = Node("Mul", UniqueValue($"{name}.term{k}.{j}"), [shifted[j], a]);
                total = j == 0 ? term : Node("Add", UniqueValue($"{name}.sum{k}.{j}"), [total, term]);
            }

            pieces[k] = total;
        }

        return Node("Max", UniqueValue(name + ".max"), pieces, output == name ? null : output);
    }

    private static AttributeProto[] PointwiseConvAttributes() =>
        [Ints("dilations", 1, 1), Int("group", 1), Ints("kernel_shape", 1, 1), Ints("pads", 0, 0, 0, 0), Ints("strides", 1, 1)];

    /// <summary>Add for two inputs, Sum for more; inputs of mixed rank are all brought to NCHW first.</summary>
    private (string Value, ValueForm Form) Add(AddNode add, string name, string output)
    {
        bool allFlat = add.Inputs.All(v => forms[v].Rank == 2);
        string[] inputs = add.Inputs.Select(v => allFlat ? values[v] : Nchw(v)).ToArray();
        string value = Node(inputs.Length == 2 ? "Add" : "Sum", name, inputs, output);
        return (value, new ValueForm(allFlat ? 2 : 4, add.Inputs.Any(v => forms[v].UnitSpatial)));
    }

    private string Pool(PoolNode pool, string name, string output)
    {
        var attributes = new List<AttributeProto>
        {
            Ints("kernel_shape", pool.Kernel, pool.Kernel),
            Ints("pads", pool.Padding, pool.Padding, pool.Padding, pool.Padding),
            Ints("strides", pool.Stride, pool.Stride),
        };
        if (pool.Kind == PoolKind.Average)
        {
            attributes.Insert(0, Int("count_include_pad", pool.CountIncludePad ? 1 : 0));
        }

        return Node(pool.Kind == PoolKind.Max ? "MaxPool" : "AveragePool", name, [Nchw(pool.Input)], output, [.. attributes]);
    }

    /// <summary>Pad in constant mode (value 0) with the pads as an int64 input [N, C, H, W begins, then ends].</summary>
    private string Pad(PadNode pad, string name, string output)
    {
        string pads = Int64Initializer(Unique(pad.Name + ".pads"), 0, 0, pad.Top, pad.Left, 0, 0, pad.Bottom, pad.Right);
        return Node("Pad", name, [Nchw(pad.Input), pads], output);
    }

    /// <summary>Flatten (from NCHW) + Gemm with the [out, in] weight transposed (transB = 1), as PyTorch's Linear.</summary>
    private string Linear(LinearNode linear, string name, string output)
    {
        string x = forms[linear.Input].Rank == 2
            ? values[linear.Input]
            : Node("Flatten", UniqueValue(name + ".flatten"), [values[linear.Input]], null, Int("axis", 1));
        string weight = Initializer(linear.Name + ".weight", linear.Weight, linear.OutFeatures, linear.InFeatures);
        string[] inputs = linear.Bias is null ? [x, weight] : [x, weight, Initializer(linear.Name + ".bias", linear.Bias, linear.OutFeatures)];
        return Node("Gemm", name, inputs, output, Float("alpha", 1f), Float("beta", 1f), Int("transB", 1));
    }

    /// <summary>
    /// One activation as ONNX operators valid from opset 13: the last node is named <paramref name="name"/> and writes
    /// <paramref name="output"/> (default: <paramref name="name"/>); helper nodes are named <c>name.op</c>.
    /// </summary>
    private string Activation(ActivationKind kind, string x, string name, string? output = null)
    {
        switch (kind)
        {
            case ActivationKind.None:
                return Node("Identity", name, [x], output);
            case ActivationKind.Relu:
                return Node("Relu", name, [x], output);
            case ActivationKind.Relu6:
                // Clip takes min and max as inputs since opset 11.
                return Node("Clip", name, [x, Constant(0f), Constant(6f)], output);
            case ActivationKind.Sigmoid:
                return Node("Sigmoid", name, [x], output);
            case ActivationKind.HardSigmoid:
                return HardSigmoid(x, name, output);
            case ActivationKind.HardSwish:
                if (opset >= 14)
                {
                    return Node("HardSwish", name, [x], output);
                }

                return Node("Mul", name, [x, HardSigmoid(x, UniqueValue(name + ".hardsigmoid"), null)], output);
            case ActivationKind.Silu:
                return Node("Mul", name, [x, Node("Sigmoid", UniqueValue(name + ".sigmoid"), [x])], output);
            case ActivationKind.Gelu:
                return Gelu(x, name, output);
            case ActivationKind.GeluTanh:
                return GeluTanh(x, name, output);
            default:
                throw new NotSupportedException($"Activation {kind} has no ONNX translation.");
        }
    }

    /// <summary>0.5 x (1 + erf(x / sqrt 2)); ONNX's Gelu operator only exists from opset 20.</summary>
    private string Gelu(string x, string name, string? output)
    {
        string scaled = Node("Div", UniqueValue(name + ".div"), [x, Constant(MathF.Sqrt(2f))]);
        string erf = Node("Erf", UniqueValue(name + ".erf"), [scaled]);
        string onePlus = Node("Add", UniqueValue(name + ".add"), [erf, Constant(1f)]);
        string times = Node("Mul", UniqueValue(name + ".mul"), [x, onePlus]);
        return Node("Mul", name, [times, Constant(0.5f)], output);
    }

    /// <summary>0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))).</summary>
    private string GeluTanh(string x, string name, string? output)
    {
        string square = Node("Mul", UniqueValue(name + ".square"), [x, x]);
        string cube = Node("Mul", UniqueValue(name + ".cube"), [square, x]);
        string cubic = Node("Mul", UniqueValue(name + ".cubic"), [cube, Constant(0.044715f)]);
        string inner = Node("Add", UniqueValue(name + ".inner"), [x, cubic]);
        string z = Node("Mul", UniqueValue(name + ".z"), [inner, Constant((float)Math.Sqrt(2 / Math.PI))]);
        string tanh = Node("Tanh", UniqueValue(name + ".tanh"), [z]);
        string onePlus = Node("Add", UniqueValue(name + ".add"), [tanh, Constant(1f)]);
        string times = Node("Mul", UniqueValue(name + ".mul"), [x, onePlus]);
        return Node("Mul", name, [times, Constant(0.5f)], output);
    }

    /// <summary>min(max(x + 3, 0), 6) / 6 = max(0, min(1, x / 6 + 0.5)).</summary>
    private string HardSigmoid(string x, string name, string? output) =>
        Node("HardSigmoid", name, [x], output, Float("alpha", 1f / 6f), Float("beta", 0.5f));

    /// <summary>The name part of an activation's node inside a squeeze-excite (<c>attn.relu</c>, <c>attn.sigmoid</c>).</summary>
    private static string ActivationSuffix(ActivationKind kind) => kind switch
    {
        ActivationKind.None => "identity",
        ActivationKind.GeluTanh => "gelu_tanh",
        _ => kind.ToString().ToLowerInvariant(),
    };

    /// <summary>The value in NCHW: itself, or (once per value) an Unsqueeze of a [batch, features] value to [batch, features, 1, 1].</summary>
    private string Nchw(int value)
    {
        string name = values[value];
        if (forms[value].Rank == 4)
        {
            return name;
        }

        if (!nchwViews.TryGetValue(name, out string? view))
        {
            unsqueezeAxes ??= Int64Initializer(Unique("const.unsqueeze_axes"), 2, 3);
            view = Node("Unsqueeze", UniqueValue(name + ".nchw"), [name, unsqueezeAxes]);
            nchwViews[name] = view;
        }

        return view;
    }

    private string Node(string opType, string name, string[] inputs, string? output = null, params AttributeProto[] attributes)
    {
        var node = new NodeProto { OpType = opType, Name = name };
        node.Input.AddRange(inputs);
        node.Output.Add(output ?? name);
        node.Attribute.AddRange(attributes);
        graph.Node.Add(node);
        return output ?? name;
    }

    /// <summary>The name of a node and its output value: <paramref name="name"/> through the caller's renaming, made unique.</summary>
    private string UniqueValue(string name) => Unique(rename(name));

    /// <summary><paramref name="name"/>, or with the first free <c>_n</c> suffix; reserves it.</summary>
    private string Unique(string name)
    {
        if (names.Add(name))
        {
            return name;
        }

        for (int i = 1; ; i++)
        {
            string candidate = string.Create(CultureInfo.InvariantCulture, $"{name}_{i}");
            if (names.Add(candidate))
            {
                return candidate;
            }
        }
    }

    private string Initializer(string name, float[] data, params long[] dims)
    {
        name = Unique(name);
        var tensor = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Float };
        tensor.Dims.AddRange(dims);
        tensor.RawData = LittleEndianBytes(data);
        graph.Initializer.Add(tensor);
        return name;
    }

    /// <summary>A float32 scalar (rank 0), one initializer per distinct value.</summary>
    private string Constant(float value)
    {
        int bits = BitConverter.SingleToInt32Bits(value);
        if (!constants.TryGetValue(bits, out string? name))
        {
            name = Unique("const." + value.ToString("R", CultureInfo.InvariantCulture));
            var tensor = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Float };
            tensor.RawData = LittleEndianBytes([value]);
            graph.Initializer.Add(tensor);
            constants[bits] = name;
        }

        return name;
    }

    private string Int64Initializer(string name, params long[] data)
    {
        var tensor = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Int64 };
        tensor.Dims.Add(data.Length);
        var bytes = new byte[data.Length * sizeof(long)];
        for (int i = 0; i < data.Length; i++)
        {
            BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(i * sizeof(long)), data[i]);
        }

        tensor.RawData = UnsafeByteOperations.UnsafeWrap(bytes);
        graph.Initializer.Add(tensor);
        return name;
    }

    private static ByteString LittleEndianBytes(float[] data)
    {
        if (BitConverter.IsLittleEndian)
        {
            return ByteString.CopyFrom(MemoryMarshal.AsBytes(data.AsSpan()));
        }

        var bytes = new byte[data.Length * sizeof(float)];
        for (int i = 0; i < data.Length; i++)
        {
            BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * sizeof(float)), data[i]);
        }

        return UnsafeByteOperations.UnsafeWrap(bytes);
    }

    private static TensorShapeProto.Types.Dimension Dim(string name) => new() { DimParam = name };

    private static TensorShapeProto.Types.Dimension Dim(long value) => new() { DimValue = value };

    private static ValueInfoProto TensorValue(string name, params TensorShapeProto.Types.Dimension[] dims)
    {
        var shape = new TensorShapeProto();
        shape.Dim.AddRange(dims);
        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)TensorProto.Types.DataType.Float, Shape = shape } },
        };
    }

    private static AttributeProto Int(string name, long value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value };

    private static AttributeProto Float(string name, float value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Float, F = value };

    private static AttributeProto Ints(string name, params long[] values)
    {
        var a = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        a.Ints.AddRange(values);
        return a;
    }
}
