using System.Buffers.Binary;
using Google.Protobuf;
using MobileOne.Graph;
using MobileOne.Kernels;
using Onnx;

namespace MobileOne.IO.Onnx;

/// <summary>
/// Reads an ONNX classifier (opset 11..17) into a <see cref="LayerGraph"/> for the engine. Nodes are translated in
/// the file's order: Conv, BatchNormalization, Relu, Clip (ReLU6 or ReLU, bounds as attributes or constant inputs),
/// Sigmoid, HardSigmoid, HardSwish, element-wise chains on one value recognized as the activation they compute (GELU
/// in its erf and tanh forms, SiLU, ...), residual Add and Sum, MaxPool, AveragePool, GlobalAveragePool and
/// ReduceMean over H and W, Flatten, Reshape, Gemm, MatMul (+ Add), Softmax over the classes or channels, Concat of
/// feature maps along channels, zero Pad (folded into the next Conv or AveragePool where that is the same
/// computation, else a <see cref="PadNode"/>), Identity and Constant; squeeze-excite (pool, 1x1 conv, activation,
/// 1x1 conv, gate, Mul) becomes one node; the shape arithmetic PyTorch emits for flattening (Shape, Gather,
/// Unsqueeze, Concat feeding Reshape) is folded. Anything else is refused with one error naming the node, its op
/// type and what is supported.
/// </summary>
public static class OnnxImporter
{
    /// <summary>Lowest opset read.</summary>
    public const int MinOpset = 11;

    /// <summary>Highest opset read.</summary>
    public const int MaxOpset = 17;

    internal const string Supported =
        "Conv, BatchNormalization, Relu, Clip, Sigmoid, HardSigmoid, HardSwish, element-wise Add/Sub/Mul/Div/Pow/Erf/Tanh/Sigmoid forming an activation (GELU, SiLU, ...), squeeze-excite gates (Mul), residual Add and Sum, MaxPool, AveragePool, "
        + "GlobalAveragePool, ReduceMean (over H and W), Flatten, Reshape, Gemm, MatMul, Softmax (over the classes or channels), Concat (of feature maps along channels), "
        + "Pad (constant zero, on H and W), Identity, Constant, and Shape/Gather/Unsqueeze/Concat feeding Reshape";

    /// <summary>Reads <paramref name="path"/> (external data files are looked up beside it).</summary>
    public static LayerGraph Load(string path) => Read(path).Graph;

    /// <summary>
    /// Reads <paramref name="path"/> as <see cref="Load"/> does, with the input size its metadata_props record
    /// (<see cref="InputSizeRecord"/>: this project's exporter writes it for a checkpoint that has it), or null.
    /// </summary>
    public static ImportedOnnxModel Read(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!File.Exists(path))
        {
            throw new CheckpointException(path, "does not exist.");
        }

        ModelProto model;
        try
        {
            // From the bytes, not a stream: a length prefix longer than the file is then a truncation the parser
            // reports, never an allocation of what the prefix claims.
            model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(path));
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new CheckpointException(path, $"is not an ONNX model ({e.Message.TrimEnd('.')}).");
        }

        var graph = Translate(model, path, Path.GetDirectoryName(Path.GetFullPath(path)) ?? ".");
        var record = model.MetadataProps.LastOrDefault(p => p.Key == InputSizeRecord.Key);
        return new ImportedOnnxModel(graph, record is null ? null : InputSizeRecord.Parse(record.Value, path, graph.InputChannels));
    }

    /// <summary>Reads a model from its bytes (<paramref name="source"/> names it in errors; external data is not available).</summary>
    public static LayerGraph FromBytes(byte[] bytes, string source = "(ONNX bytes)")
    {
        ArgumentNullException.ThrowIfNull(bytes);
        ModelProto model;
        try
        {
            model = ModelProto.Parser.ParseFrom(bytes);
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new CheckpointException(source, $"is not an ONNX model ({e.Message.TrimEnd('.')}).");
        }

        return Translate(model, source, null);
    }

    private static LayerGraph Translate(ModelProto model, string path, string? directory)
    {
        long opset = model.OpsetImport.Where(o => o.Domain is "" or "ai.onnx").Select(o => o.Version).DefaultIfEmpty(0).Max();
        if (opset < MinOpset || opset > MaxOpset)
        {
            throw new CheckpointException(path, $"uses opset {opset}; this importer reads opsets {MinOpset} to {MaxOpset}.");
        }

        if (model.Graph is null)
        {
            throw new CheckpointException(path, "has no graph.");
        }

        return new OnnxTranslation(model.Graph, path, directory, opset).Run();
    }
}

/// <summary>One model's translation: ONNX values become graph values, constants or pending patterns.</summary>
internal sealed partial class OnnxTranslation(GraphProto graph, string path, string? directory, long opset)
{
    private readonly Dictionary<string, Symbol> values = new(StringComparer.Ordinal);

    // An element-wise value read as a tensor by several nodes becomes one activation node.
    private readonly Dictionary<Symbol, int> materialized = new(ReferenceEqualityComparer.Instance);
    private LayerGraph layers = null!;

    public LayerGraph Run()
    {
        var initializerNames = graph.Initializer.Select(t => t.Name).ToHashSet(StringComparer.Ordinal);
        foreach (var tensor in graph.Initializer)
        {
            values[tensor.Name] = ReadTensor(tensor);
        }

        var inputs = graph.Input.Where(i => !initializerNames.Contains(i.Name)).ToList();
        if (inputs.Count != 1)
        {
            throw new CheckpointException(path, $"has {inputs.Count} graph inputs besides its weights; a classifier has one image input.");
        }

        var input = inputs[0];
        var type = input.Type?.TensorType;
        if (type is null || type.ElemType != (int)TensorProto.Types.DataType.Float)
        {
            throw new CheckpointException(path, "is not a float32 tensor; the engine takes float32 NCHW images.", input.Name);
        }

        var dims = type.Shape?.Dim;
        if (dims is null || dims.Count != 4 || dims[1].ValueCase != TensorShapeProto.Types.Dimension.ValueOneofCase.DimValue || dims[1].DimValue <= 0
            || dims[1].DimValue > int.MaxValue)
        {
            throw new CheckpointException(path, "must be NCHW with a fixed channel count.", input.Name);
        }

        layers = new LayerGraph((int)dims[1].DimValue);
        values[input.Name] = new ImageValue(LayerGraph.Input);

        foreach (var node in graph.Node)
        {
            try
            {
                Translate(node);
            }
            catch (ArgumentException e)
            {
                // The layer graph checks every node it is given (channels, kernel sizes, weight lengths).
                throw new CheckpointException(path, $"node '{NodeName(node)}' ({node.OpType}) does not fit its inputs: {e.Message}");
            }
        }

        if (graph.Output.Count != 1)
        {
            throw new CheckpointException(path, $"has {graph.Output.Count} outputs; the engine runs classifiers with one output.");
        }

        string outputName = graph.Output[0].Name;
        int output;
        try
        {
            output = Materialize(Value(outputName, "graph output"), outputName);
        }
        catch (ArgumentException e)
        {
            throw new CheckpointException(path, $"produces its output with a node that does not fit its inputs: {e.Message}", outputName);
        }

        if (output != layers.Nodes.Count)
        {
            layers.Output = output;
        }

        return layers;
    }

    private void Translate(NodeProto node)
    {
        string name = string.IsNullOrEmpty(node.Name) ? node.Output.FirstOrDefault() ?? node.OpType : node.Name;
        if (node.Domain is not ("" or "ai.onnx"))
        {
            throw Unsupported(node, name, $"is in domain '{node.Domain}'");
        }

        Symbol result = node.OpType switch
        {
            "Constant" => ConstantNode(node, name),
            "Identity" => Input(node, 0),
            "Conv" => Conv(node, name),
            "BatchNormalization" => BatchNorm(node, name),
            "Relu" => Activation(node, name, ActivationKind.Relu),
            "Clip" => Clip(node, name),
            "Sigmoid" => Input(node, 0) is ImageValue or Elementwise or Padded ? Pointwise(node, name) : OnChannels(node, name, ActivationKind.Sigmoid),
            "Erf" or "Tanh" or "Div" or "Sub" or "Pow" => Pointwise(node, name),
            "HardSigmoid" => HardSigmoid(node, name),
            "HardSwish" => Activation(node, name, ActivationKind.HardSwish),
            "Mul" => Mul(node, name),
            "Add" => Add(node, name),
            "Sum" => new ImageValue(layers.Add(new AddNode(name, [.. Enumerable.Range(0, node.Input.Count).Select(i => Materialize(Input(node, i), name))]))),
            "MaxPool" or "AveragePool" => Pool(node, name),
            "GlobalAveragePool" => new Pooled(Spatial(node, 0, name)),
            "ReduceMean" => ReduceMean(node, name),
            "Flatten" => Flatten(node, name),
            "Reshape" => Reshape(node, name),
            "Gemm" => Gemm(node, name),
            "MatMul" => MatMul(node, name),
            "Shape" => new ShapeOf(Input(node, 0) is Pooled p ? p.Source : Spatial(node, 0, name)),
            "Gather" => Gather(node, name),
            "Unsqueeze" => Unsqueeze(node, name),
            "Concat" => Concat(node, name),
            "ConstantOfShape" => ConstantOfShape(node, name),
            "Slice" => SliceConstant(node, name),
            "Transpose" => TransposeConstant(node, name),
            "Cast" => CastConstant(node, name),
            "Softmax" => Softmax(node, name),
            "Pad" => Pad(node, name),
            _ => throw Unsupported(node, name, "is not supported"),
        };
        if (node.Output.Count == 0)
        {
            return;
        }

        values[node.Output[0]] = result;
    }

    private Symbol ConstantNode(NodeProto node, string name)
    {
        var attribute = node.Attribute.FirstOrDefault(a => a.Name == "value") ?? throw Unsupported(node, name, "has no 'value' tensor");
        return ReadTensor(attribute.T ?? throw Unsupported(node, name, "has no 'value' tensor"), name);
    }

    private Symbol Conv(NodeProto node, string name)
    {
        var w = Constant(node, 1, name, "weight");
        if (w.Shape.Length != 4)
        {
            throw Refused(node, name, $"has a {w.Shape.Length}-d weight; 2-D convolutions have 4-d ones");
        }

        float[]? bias = node.Input.Count > 2 && node.Input[2].Length > 0 ? Constant(node, 2, name, "bias").Data : null;
        var gateInput = Input(node, 0);
        if (gateInput is Pooled or ChannelChain)
        {
            // A 1x1 convolution of pooled features: a step of a squeeze-excite gate (timm's attn.fc1 / fc2).
            if (w.Shape[2] != 1 || w.Shape[3] != 1 || Int(node, "group", 1) != 1)
            {
                throw Refused(node, name, "convolves pooled features with something other than an ungrouped 1x1 kernel");
            }

            var step = (w.Data, bias ?? new float[w.Shape[0]], w.Shape[0]);
            return gateInput switch
            {
                Pooled p => new ChannelChain(p.Source, [step], []),
                ChannelChain c when c.Convs.Count == c.Activations.Count && c.Convs.Count < 2 => c with { Convs = [.. c.Convs, step] },
                _ => throw Refused(node, name, "continues a squeeze-excite gate past its two convolutions"),
            };
        }

        // Zero padding before the convolution adds to its own; whatever is not the same on both sides of an axis
        // stays a pad node.
        var (x, top, left, bottom, right) = PaddedInput(node, name, Pads(node, name));
        int padH = Math.Min(top, bottom), padW = Math.Min(left, right);
        if (top != bottom || left != right)
        {
            x = layers.Add(new PadNode(name + ".pad", x, top - padH, left - padW, bottom - padH, right - padW));
        }

        // Checked here: an unchecked cast would read group 2^32 + 1 as an ungrouped convolution.
        long group = Int(node, "group", 1);
        if (group < 1 || group > int.MaxValue)
        {
            throw Refused(node, name, $"has group {group}; a positive group count is expected");
        }

        int groups = (int)group;
        var strides = Pair(node, name, "strides", [1, 1]);
        var dilations = Pair(node, name, "dilations", [1, 1]);
        var kernel = Pair(node, name, "kernel_shape", [w.Shape[2], w.Shape[3]]);
        if (kernel[0] != w.Shape[2] || kernel[1] != w.Shape[3])
        {
            throw Refused(node, name, $"declares kernel_shape [{string.Join(", ", kernel)}] but its weight is {w.Shape[2]}x{w.Shape[3]}");
        }

        int inChannels = layers.ChannelsOf(x);
        return new ImageValue(layers.Add(new ConvNode(
            name, x, inChannels, w.Shape[0], w.Shape[2], w.Shape[3], (int)strides[0], (int)strides[1], padH, padW,
            (int)dilations[0], (int)dilations[1], groups, w.Data, bias)));
    }

    private Symbol BatchNorm(NodeProto node, string name)
    {
        int x = Spatial(node, 0, name);
        if (Int(node, "training_mode", 0) != 0 || node.Output.Count > 1)
        {
            throw Refused(node, name, "is in training mode; the engine runs inference (running statistics)");
        }

        double eps = Float(node, "epsilon", 1e-5f);
        var (gamma, beta, mean, var) = (Constant(node, 1, name, "scale"), Constant(node, 2, name, "B"), Constant(node, 3, name, "mean"), Constant(node, 4, name, "var"));
        return new ImageValue(layers.Add(new BatchNormNode(name, x, layers.ChannelsOf(x), gamma.Data, beta.Data, mean.Data, var.Data, eps)));
    }

    private Symbol Activation(NodeProto node, string name, ActivationKind kind) =>
        Input(node, 0) is ImageValue or Elementwise or Padded ? new ImageValue(layers.Add(new ActivationNode(name, Spatial(node, 0, name), kind))) : OnChannels(node, name, kind);

    /// <summary>Clip(0, 6) is ReLU6 and Clip(0, none) ReLU; bounds come as attributes (before opset 11) or constant inputs.</summary>
    private Symbol Clip(NodeProto node, string name)
    {
        float? min = node.Attribute.Any(a => a.Name == "min") ? Float(node, "min", 0) : null;
        float? max = node.Attribute.Any(a => a.Name == "max") ? Float(node, "max", 0) : null;
        if (node.Input.Count > 1 && node.Input[1].Length > 0)
        {
            min = Scalar(node, 1, name, "min");
        }

        if (node.Input.Count > 2 && node.Input[2].Length > 0)
        {
            max = Scalar(node, 2, name, "max");
        }

        var kind = (min, max) switch
        {
            (0f, 6f) => ActivationKind.Relu6,
            (0f, null) => ActivationKind.Relu,
            _ => throw Refused(node, name, $"clips to [{min?.ToString() ?? "-inf"}, {max?.ToString() ?? "inf"}]; only [0, 6] (ReLU6) and [0, inf) (ReLU) are supported"),
        };
        return Activation(node, name, kind);
    }

    private Symbol HardSigmoid(NodeProto node, string name)
    {
        float alpha = Float(node, "alpha", 0.2f), beta = Float(node, "beta", 0.5f);
        if (Math.Abs(alpha - (1 / 6.0)) > 1e-6 || beta != 0.5f)
        {
            throw Refused(node, name, $"has alpha {alpha} and beta {beta}; PyTorch's hardsigmoid (alpha 1/6, beta 0.5) is supported");
        }

        return Activation(node, name, ActivationKind.HardSigmoid);
    }

    /// <summary>x * Sigmoid(x) is SiLU; x * gate(pooled x) is squeeze-excite.</summary>
    private Symbol Mul(NodeProto node, string name)
    {
        var (a, b) = (Input(node, 0), Input(node, 1));
        if (a is ChannelChain)
        {
            (a, b) = (b, a);
        }

        // The gate's pool read the value as a tensor, so an element-wise value (x * sigmoid(x) before an SE) is a node
        // by now: the same node (materializing is memoized).
        int? gated = a switch
        {
            ImageValue v => v.Id,
            Elementwise e when b is ChannelChain => Materialize(e, name),
            _ => null,
        };
        if (gated is int y && b is ChannelChain chain && chain.Source == y && chain.IsSqueezeExcite)
        {
            var (reduce, expand) = (chain.Convs[0], chain.Convs[1]);
            return new ImageValue(layers.Add(new SqueezeExciteNode(
                name, y, layers.ChannelsOf(y), reduce.Out, reduce.Weight, reduce.Bias, expand.Weight, expand.Bias, chain.Activations[0], chain.Activations[1])));
        }

        return Pointwise(node, name);
    }

    private Symbol Add(NodeProto node, string name)
    {
        var (a, b) = (Input(node, 0), Input(node, 1));
        if (a is PendingLinear linear && b is ConstantValue bias && linear.Bias is null && bias.Data.Length == linear.Out)
        {
            return linear with { Bias = bias.Data, Name = name };
        }

        // A constant or the same image value on both sides is element-wise arithmetic (1 + erf(...), x + x^3 ...);
        // two different values are a residual sum.
        bool sameSource = Source(a) is int sa && Source(b) is int sb && sa == sb;
        if (a is ConstantValue || b is ConstantValue || sameSource)
        {
            return Pointwise(node, name);
        }

        return new ImageValue(layers.Add(new AddNode(name, [Materialize(a, name), Materialize(b, name)])));
    }

    /// <summary>
    /// An element-wise step on one image value: its inputs are that value, expressions of it, or scalar constants. The
    /// expression is recognized as an activation when something reads it as a tensor (<see cref="Recognize"/>).
    /// </summary>
    private Symbol Pointwise(NodeProto node, string name)
    {
        int? source = null;
        var operands = new List<Expr>();
        for (int i = 0; i < node.Input.Count; i++)
        {
            var operand = Input(node, i) is Padded padded ? new ImageValue(Materialize(padded, name)) : Input(node, i);
            switch (operand)
            {
                case ImageValue v when source is null || source == v.Id:
                    source = v.Id;
                    operands.Add(new VariableExpr());
                    break;
                case Elementwise e when source is null || source == e.Source:
                    source = e.Source;
                    operands.Add(e.Body);
                    break;
                case ConstantValue c when c.Data.Length == 1:
                    operands.Add(new ConstantExpr(c.Data[0]));
                    break;
                default:
                    throw Refused(node, name, "combines values the engine has no element-wise operation for (one image value with scalar constants, a residual sum of two values, or a squeeze-excite gate)");
            }
        }

        if (source is null)
        {
            throw Refused(node, name, "computes on constants only");
        }

        Expr body = (node.OpType, operands.Count) switch
        {
            ("Sigmoid" or "Erf" or "Tanh", 1) => new UnaryExpr(node.OpType, operands[0]),
            ("Add" or "Sub" or "Mul" or "Div" or "Pow", 2) => new BinaryExpr(node.OpType, operands[0], operands[1]),
            _ => throw Refused(node, name, $"has {operands.Count} inputs"),
        };
        return new Elementwise(source.Value, body, name);
    }

    /// <summary>The image value an operand is computed from, or null.</summary>
    private static int? Source(Symbol symbol) => symbol switch
    {
        ImageValue v => v.Id,
        Elementwise e => e.Source,
        _ => null,
    };

    /// <summary>
    /// The activation an element-wise expression computes: it is evaluated in double precision at points across
    /// [-8, 8] and compared with each activation's definition, so any arrangement of the operators (PyTorch's or ours,
    /// x / sqrt 2 or x * 0.7071, Pow(x, 3) or x * x * x) is recognized by what it computes, not by its shape.
    /// </summary>
    private ActivationKind Recognize(Elementwise e)
    {
        ActivationKind[] kinds =
        [
            ActivationKind.None, ActivationKind.Relu, ActivationKind.Relu6, ActivationKind.Gelu, ActivationKind.GeluTanh,
            ActivationKind.Silu, ActivationKind.HardSwish, ActivationKind.Sigmoid, ActivationKind.HardSigmoid,
        ];
        foreach (var kind in kinds)
        {
            bool same = true;
            for (int i = 0; i <= 160 && same; i++)
            {
                double x = -8 + (i * 0.1), expected = Activations.Apply(kind, (float)x), actual = e.Body.Evaluate(x);
                same = Math.Abs(actual - expected) <= 1e-5 * Math.Max(1, Math.Abs(expected));
            }

            if (same)
            {
                return kind;
            }
        }

        throw new CheckpointException(path, $"computes an element-wise function at node '{e.Name}' that is none of the engine's activations (ReLU, ReLU6, GELU (erf or tanh), SiLU, HardSwish, Sigmoid, HardSigmoid).", e.Name);
    }

    private Symbol Pool(NodeProto node, string name)
    {
        var kernel = Pair(node, name, "kernel_shape", null);
        var strides = Pair(node, name, "strides", [1, 1]);
        var pads = Padding(node, name);
        if (kernel[0] != kernel[1] || strides[0] != strides[1] || pads[0] != pads[1])
        {
            throw Refused(node, name, "is not square (one kernel size, stride and padding for both axes)");
        }

        if (Int(node, "ceil_mode", 0) != 0 || (node.OpType == "MaxPool" && Ints(node, "dilations", [1, 1]).Any(d => d != 1)))
        {
            throw Refused(node, name, "uses ceil_mode or dilation, which the engine's pooling does not");
        }

        var kind = node.OpType == "MaxPool" ? PoolKind.Max : PoolKind.Average;
        bool includePad = Int(node, "count_include_pad", 0) != 0;
        int padding = pads[0];

        // Average pooling after a zero Pad counts the padded zeros as data: the same as padding counted in the divisor
        // (count_include_pad), provided the pooling has no padding of its own or counts it too, the pads are the same
        // on all four sides and the total stays within half the kernel (a PoolNode's limit). Max pooling pads with
        // -inf, so a zero Pad before it (and every other case) stays a pad node.
        int x;
        if (kind == PoolKind.Average && Input(node, 0) is Padded p && p.Top == p.Bottom && p.Left == p.Right && p.Top == p.Left
            && (includePad || padding == 0) && 2L * (padding + (long)p.Top) <= kernel[0])
        {
            x = p.Source;
            padding += p.Top;
            includePad = true;
        }
        else
        {
            x = Spatial(node, 0, name);
        }

        return new ImageValue(layers.Add(new PoolNode(name, x, kind, (int)kernel[0], (int)strides[0], padding, includePad)));
    }

    private Symbol ReduceMean(NodeProto node, string name)
    {
        int x = Spatial(node, 0, name);
        var axes = Ints(node, "axes", []).Select(a => a < 0 ? a + 4 : a).Order().ToArray();
        if (!axes.SequenceEqual([2L, 3L]))
        {
            throw Refused(node, name, $"averages over axes [{string.Join(", ", axes)}]; only the spatial mean (axes 2 and 3) is supported");
        }

        return Int(node, "keepdims", 1) != 0 ? new Pooled(x) : new Flat(x);
    }

    private Symbol Flatten(NodeProto node, string name) => Input(node, 0) switch
    {
        Pooled p when Int(node, "axis", 1) == 1 => new Flat(p.Source),
        Flat f => f,
        _ => throw Refused(node, name, "flattens a value that is not a pooled [N, C, 1, 1] feature"),
    };

    private Symbol Reshape(NodeProto node, string name)
    {
        var data = Input(node, 0);
        var shape = Input(node, 1);
        if (data is ConstantValue constant && shape is ConstantValue target)
        {
            return ReshapeConstant(node, name, constant, target);
        }

        bool toBatchByFeatures = shape switch
        {
            ConstantValue c => c.Data.Length == 2 && (c.Data[1] == -1 || c.Data[0] is 1 or -1 or 0),
            DimList d => d.Dims.Count == 2 && d.Dims[0] is null && (d.Dims[1] is -1),
            _ => false,
        };
        if (toBatchByFeatures && data is Pooled or Flat)
        {
            return new Flat(data is Pooled p ? p.Source : ((Flat)data).Source);
        }

        throw Refused(node, name, "reshapes to something other than [batch, features] of a pooled feature");
    }

    private Symbol Gemm(NodeProto node, string name)
    {
        var flat = Input(node, 0) as Flat ?? throw Refused(node, name, "multiplies a value that is not the pooled, flattened feature");
        var w = Constant(node, 1, name, "B");
        if (Float(node, "alpha", 1) != 1 || Float(node, "beta", 1) != 1 || Int(node, "transA", 0) != 0 || w.Shape.Length != 2)
        {
            throw Refused(node, name, "uses alpha, beta or transA; the classifier form Gemm(x, W^T) + b is supported");
        }

        bool transB = Int(node, "transB", 0) != 0;
        var weight = transB ? w.Data : Transpose(w.Data, w.Shape[0], w.Shape[1]);
        int outputs = transB ? w.Shape[0] : w.Shape[1];
        if ((transB ? w.Shape[1] : w.Shape[0]) != layers.ChannelsOf(flat.Source))
        {
            throw Refused(node, name, $"has a [{string.Join(", ", w.Shape)}] weight for {layers.ChannelsOf(flat.Source)} features");
        }

        float[]? bias = node.Input.Count > 2 && node.Input[2].Length > 0 ? Constant(node, 2, name, "C").Data : null;
        return new PendingLinear(name, flat.Source, weight, outputs, bias);
    }

    private Symbol MatMul(NodeProto node, string name)
    {
        var flat = Input(node, 0) as Flat ?? throw Refused(node, name, "multiplies a value that is not the pooled, flattened feature");
        var w = Constant(node, 1, name, "B");
        if (w.Shape.Length != 2)
        {
            throw Refused(node, name, "has a weight that is not a matrix");
        }

        if (w.Shape[0] != layers.ChannelsOf(flat.Source))
        {
            throw Refused(node, name, $"has a [{string.Join(", ", w.Shape)}] weight for {layers.ChannelsOf(flat.Source)} features");
        }

        return new PendingLinear(name, flat.Source, Transpose(w.Data, w.Shape[0], w.Shape[1]), w.Shape[1], null);
    }

    private Symbol Gather(NodeProto node, string name)
    {
        if (Input(node, 0) is ShapeOf shape && Input(node, 1) is ConstantValue index && index.Data.Length == 1 && Int(node, "axis", 0) == 0)
        {
            int i = (int)index.Data[0];
            return new DimList([i == 0 ? null : i == 1 ? layers.ChannelsOf(shape.Source) : throw Refused(node, name, "reads a spatial size, which depends on the input")]);
        }

        throw Refused(node, name, "gathers from something other than a value's shape");
    }

    private Symbol Unsqueeze(NodeProto node, string name) => Input(node, 0) switch
    {
        DimList d => d,
        ConstantValue c => c,
        _ => throw Refused(node, name, "unsqueezes something other than shape arithmetic"),
    };

    private Symbol Concat(NodeProto node, string name)
    {
        if (Enumerable.Range(0, node.Input.Count).Any(i => IsImage(Input(node, i))))
        {
            return ConcatChannels(node, name);
        }

        if (Enumerable.Range(0, node.Input.Count).All(i => Input(node, i) is ConstantValue { Shape.Length: <= 1 }))
        {
            return new ConstantValue([.. Enumerable.Range(0, node.Input.Count).SelectMany(i => ((ConstantValue)Input(node, i)).Data)], [Enumerable.Range(0, node.Input.Count).Sum(i => ((ConstantValue)Input(node, i)).Data.Length)]);
        }

        var dims = new List<long?>();
        for (int i = 0; i < node.Input.Count; i++)
        {
            switch (Input(node, i))
            {
                case DimList d:
                    dims.AddRange(d.Dims);
                    break;
                case ConstantValue c:
                    dims.AddRange(c.Data.Select(v => (long?)(long)v));
                    break;
                default:
                    throw Refused(node, name, "joins tensors; only shape arithmetic (Shape, Gather, Unsqueeze, Concat feeding Reshape) is supported");
            }
        }

        return new DimList(dims);
    }

    /// <summary>Feature maps joined along channels (axis 1); one input is the input itself.</summary>
    private Symbol ConcatChannels(NodeProto node, string name)
    {
        long axis = Int(node, "axis", 1);
        if (axis is not (1 or -3))
        {
            throw Refused(node, name, $"joins feature maps along axis {axis}; only the channel axis (1) of NCHW feature maps is supported");
        }

        var inputs = new int[node.Input.Count];
        for (int i = 0; i < inputs.Length; i++)
        {
            var symbol = Input(node, i);
            inputs[i] = IsImage(symbol)
                ? Materialize(symbol, name)
                : throw Refused(node, name, $"joins a feature map with {Describe(symbol)}; only feature maps of one height and width are joined");
        }

        return new ImageValue(inputs.Length == 1 ? inputs[0] : layers.Add(new ConcatNode(name, inputs)));
    }

    /// <summary>
    /// Softmax over the class axis of the classifier's [N, C] output or of a pooled [N, C, 1, 1] feature, and from
    /// opset 13 over the channels of a feature map. Before opset 13 Softmax flattens everything from its axis on, so
    /// on a feature map axis 1 normalizes C x H x W together, which is no per-pixel operation; any other axis
    /// (batch, height, width) is refused too.
    /// </summary>
    private Symbol Softmax(NodeProto node, string name)
    {
        bool perAxis = opset >= 13;
        long axis = Int(node, "axis", perAxis ? -1 : 1);
        var input = Input(node, 0);
        const string Supported = "supported: the class axis of [N, C] and the channel axis of [N, C, 1, 1] (axis 1, or -1 and -3 respectively), and from opset 13 the channel axis (1) of a feature map";
        switch (input)
        {
            case PendingLinear or Flat or Classes when axis is 1 or -1:
                int classes = input is Flat f ? layers.Add(new GlobalAveragePoolNode(name + ".pool", f.Source)) : Materialize(input, name);
                return new Classes(layers.Add(new SoftmaxNode(name, classes)));
            case Pooled p when axis is 1 or -3:
                return new ImageValue(layers.Add(new SoftmaxNode(name, layers.Add(new GlobalAveragePoolNode(name + ".pool", p.Source)))));
            case var image when IsImage(image) && perAxis && axis is 1 or -3:
                return new ImageValue(layers.Add(new SoftmaxNode(name, Materialize(image, name))));
            case var image when IsImage(image) && axis is 1 or -3:
                throw Refused(node, name, $"normalizes a feature map over C x H x W together (opset {opset} flattens from its axis on); {Supported}");
            default:
                throw Refused(node, name, $"normalizes {Describe(input)} over axis {axis}; {Supported}");
        }
    }

    /// <summary>
    /// Zero padding of H and W (mode constant, value 0; pads as an attribute in Pad's earlier form or as an input
    /// from opset 11, with an optional constant_value input). It stays pending so that the convolution or pooling
    /// reading it can take it as its own padding; consecutive pads add up.
    /// </summary>
    private Symbol Pad(NodeProto node, string name)
    {
        string mode = node.Attribute.FirstOrDefault(a => a.Name == "mode")?.S.ToStringUtf8() ?? "constant";
        if (mode != "constant")
        {
            throw Refused(node, name, $"pads in mode '{mode}'; only constant zero padding of H and W is supported");
        }

        bool asAttribute = node.Attribute.Any(a => a.Name == "pads");
        long[] pads = asAttribute ? Ints(node, "pads", []) : [.. Constant(node, 1, name, "pads").Data.Select(v => (long)v)];
        float value = asAttribute ? Float(node, "value", 0f) : node.Input.Count > 2 && node.Input[2].Length > 0 ? Scalar(node, 2, name, "constant_value") : 0f;
        if (value != 0f)
        {
            throw Refused(node, name, $"pads with the constant {value}; only constant zero padding of H and W is supported");
        }

        // [N, C, H, W begins, then N, C, H, W ends].
        if (pads.Length != 8 || pads[0] != 0 || pads[1] != 0 || pads[4] != 0 || pads[5] != 0 || pads.Any(v => v < 0 || v > int.MaxValue))
        {
            throw Refused(node, name, $"has pads [{string.Join(", ", pads)}]; only non-negative pads of H and W of an NCHW tensor are supported");
        }

        var (source, top, left, bottom, right) = PaddedInput(node, name, [(int)pads[2], (int)pads[3], (int)pads[6], (int)pads[7]]);
        return top + left + bottom + right == 0 ? new ImageValue(source) : new Padded(source, top, left, bottom, right, name);
    }

    /// <summary>Input 0 as an image value with its pending zero padding taken off and added to <paramref name="pads"/> (top, left, bottom, right).</summary>
    private (int Source, int Top, int Left, int Bottom, int Right) PaddedInput(NodeProto node, string name, int[] pads)
    {
        if (Input(node, 0) is not Padded p)
        {
            return (Spatial(node, 0, name), pads[0], pads[1], pads[2], pads[3]);
        }

        long[] total = [(long)p.Top + pads[0], (long)p.Left + pads[1], (long)p.Bottom + pads[2], (long)p.Right + pads[3]];
        return total.All(v => v <= int.MaxValue / 4)
            ? (p.Source, (int)total[0], (int)total[1], (int)total[2], (int)total[3])
            : throw Refused(node, name, $"pads by [{string.Join(", ", total)}] in all; that is no image size");
    }

    private static bool IsImage(Symbol symbol) => symbol is ImageValue or Elementwise or Padded;

    /// <summary>A step applied to a pooled [N, C, 1, 1] value: a 1x1 convolution or an activation of a squeeze-excite gate.</summary>
    private Symbol OnChannels(NodeProto node, string name, ActivationKind kind)
    {
        if (Input(node, 0) is ChannelChain chain && chain.Convs.Count == chain.Activations.Count + 1)
        {
            return chain with { Activations = [.. chain.Activations, kind] };
        }

        throw Refused(node, name, "applies an activation to a value the engine cannot hold on its own");
    }

    /// <summary>The graph value of <paramref name="symbol"/>, adding the nodes a pending pattern stands for.</summary>
    private int Materialize(Symbol symbol, string name) => symbol switch
    {
        ImageValue s => s.Id,
        Elementwise e => materialized.TryGetValue(e, out int id) ? id : materialized[e] = Recognize(e) is var kind && kind == ActivationKind.None
            ? e.Source
            : layers.Add(new ActivationNode(e.Name, e.Source, kind)),
        PendingLinear l => layers.Add(new LinearNode(
            l.Name, layers.Add(new GlobalAveragePoolNode(l.Name + ".pool", l.Source)), layers.ChannelsOf(l.Source), l.Out, l.Weight, l.Bias ?? new float[l.Out])),
        Padded p => materialized.TryGetValue(p, out int id) ? id : materialized[p] = layers.Add(new PadNode(p.Name, p.Source, p.Top, p.Left, p.Bottom, p.Right)),
        Classes c => c.Id,
        _ => throw new CheckpointException(path, $"node '{name}' uses {Describe(symbol)} as a tensor; the engine has no operation for it."),
    };

    private Symbol Input(NodeProto node, int index)
    {
        if (index >= node.Input.Count || node.Input[index].Length == 0)
        {
            throw Refused(node, NodeName(node), $"lacks input {index}");
        }

        return Value(node.Input[index], NodeName(node));
    }

    private Symbol Value(string valueName, string user) =>
        values.TryGetValue(valueName, out var symbol) ? symbol : throw new CheckpointException(path, $"reads '{valueName}', which no earlier node or initializer produces.", user);

    private int Spatial(NodeProto node, int index, string name) => Input(node, index) switch
    {
        ImageValue s => s.Id,
        Elementwise or Padded => Materialize(Input(node, index), name),
        var other => throw Refused(node, name, $"takes {Describe(other)} where an image-shaped tensor is expected"),
    };

    private ConstantValue Constant(NodeProto node, int index, string name, string what) =>
        Input(node, index) as ConstantValue ?? throw Refused(node, name, $"has a {what} that is not a constant (initializer or Constant)");

    private float Scalar(NodeProto node, int index, string name, string what)
    {
        var c = Constant(node, index, name, what);
        return c.Data.Length == 1 ? (float)c.Data[0] : throw Refused(node, name, $"has a {what} that is not a scalar");
    }

    /// <summary>A pooling's pads (height, width), the same on both sides of each axis.</summary>
    private int[] Padding(NodeProto node, string name)
    {
        var pads = Pads(node, name);
        if (pads[0] != pads[2] || pads[1] != pads[3])
        {
            throw Refused(node, name, $"pads [{string.Join(", ", pads)}] asymmetrically; the engine pads both sides of an axis alike");
        }

        return [pads[0], pads[1]];
    }

    /// <summary>A 2-D convolution's or pooling's explicit pads: top, left, bottom, right.</summary>
    private int[] Pads(NodeProto node, string name)
    {
        string autoPad = node.Attribute.FirstOrDefault(a => a.Name == "auto_pad")?.S.ToStringUtf8() ?? "NOTSET";
        if (autoPad is not ("NOTSET" or "VALID"))
        {
            throw Refused(node, name, $"uses auto_pad {autoPad}; explicit pads are supported");
        }

        var pads = Ints(node, "pads", new long[4]);
        if (pads.Length != 4 || pads.Any(p => p < 0 || p > int.MaxValue))
        {
            throw Refused(node, name, $"has pads [{string.Join(", ", pads)}]; four non-negative pads (top, left, bottom, right) are expected");
        }

        return [.. pads.Select(p => (int)p)];
    }

    /// <summary>A two-value attribute (height, width), each positive; <paramref name="fallback"/> when absent (null: required).</summary>
    private long[] Pair(NodeProto node, string name, string attribute, long[]? fallback)
    {
        var values = node.Attribute.FirstOrDefault(a => a.Name == attribute) is { } a ? [.. a.Ints] : fallback
            ?? throw Refused(node, name, $"has no {attribute}");
        return values.Length == 2 && values[0] > 0 && values[1] > 0 && values[0] <= int.MaxValue && values[1] <= int.MaxValue
            ? values
            : throw Refused(node, name, $"has {attribute} [{string.Join(", ", values)}]; two positive values (height, width) are expected");
    }

    private static long Int(NodeProto node, string attribute, long fallback) =>
        node.Attribute.FirstOrDefault(a => a.Name == attribute) is { } a ? a.I : fallback;

    private static float Float(NodeProto node, string attribute, float fallback) =>
        node.Attribute.FirstOrDefault(a => a.Name == attribute) is { } a ? a.F : fallback;

    private static long[] Ints(NodeProto node, string attribute, long[] fallback) =>
        node.Attribute.FirstOrDefault(a => a.Name == attribute) is { } a ? [.. a.Ints] : fallback;

    private static float[] Transpose(float[] m, int rows, int cols)
    {
        var t = new float[m.Length];
        for (int r = 0; r < rows; r++)
        {
            for (int c = 0; c < cols; c++)
            {
                t[(c * rows) + r] = m[(r * cols) + c];
            }
        }

        return t;
    }

    private ConstantValue ReadTensor(TensorProto tensor, string? name = null)
    {
        name ??= tensor.Name;
        int[] shape = [.. tensor.Dims.Select(d => d >= 0 && d <= int.MaxValue ? (int)d : throw new CheckpointException(path, $"has dimension {d}.", name))];
        long count;
        try
        {
            count = shape.Aggregate(1L, (a, d) => checked(a * d));
        }
        catch (OverflowException)
        {
            throw new CheckpointException(path, $"declares the shape [{string.Join(", ", shape)}], more elements than any file holds.", name);
        }

        var type = (TensorProto.Types.DataType)tensor.DataType;
        int width = type switch
        {
            TensorProto.Types.DataType.Float => 4,
            TensorProto.Types.DataType.Int64 => 8,
            _ => throw new CheckpointException(path, $"is a {type} tensor; the importer reads float32 weights and int64 shapes.", name),
        };
        if (count > Array.MaxLength)
        {
            throw new CheckpointException(path, $"declares {count} elements, more than one array holds.", name);
        }

        ReadOnlySpan<byte> raw = tensor.RawData.Span;
        byte[]? external = null;
        if (tensor.DataLocation == TensorProto.Types.DataLocation.External)
        {
            external = ReadExternal(tensor, name, count * width);
            raw = external;
        }

        if (raw.Length == 0 && (type == TensorProto.Types.DataType.Float ? tensor.FloatData.Count : tensor.Int64Data.Count) == count)
        {
            return type == TensorProto.Types.DataType.Float
                ? new ConstantValue([.. tensor.FloatData], shape)
                : new ConstantValue([.. tensor.Int64Data.Select(v => (float)v)], shape);
        }

        if (raw.Length != count * width)
        {
            throw new CheckpointException(path, $"holds {raw.Length} bytes; its shape [{string.Join(", ", shape)}] of {type} needs {count * width}.", name);
        }

        var floats = new float[count];
        for (int i = 0; i < count; i++)
        {
            floats[i] = type == TensorProto.Types.DataType.Float
                ? BinaryPrimitives.ReadSingleLittleEndian(raw.Slice(i * 4, 4))
                : BinaryPrimitives.ReadInt64LittleEndian(raw.Slice(i * 8, 8));
        }

        return new ConstantValue(floats, shape);
    }

    private byte[] ReadExternal(TensorProto tensor, string name, long bytes)
    {
        var entries = tensor.ExternalData.ToDictionary(e => e.Key, e => e.Value, StringComparer.Ordinal);
        if (directory is null || !entries.TryGetValue("location", out string? location))
        {
            throw new CheckpointException(path, "keeps its data in an external file, which cannot be read here (no location, or the model was given as bytes).", name);
        }

        string file = Path.GetFullPath(Path.Combine(directory, location));
        if (!file.StartsWith(directory + Path.DirectorySeparatorChar, StringComparison.Ordinal))
        {
            throw new CheckpointException(path, $"names the external data file '{location}' outside the model's folder.", name);
        }

        if (!File.Exists(file))
        {
            throw new CheckpointException(path, $"keeps its data in '{location}', which does not exist beside the model.", name);
        }

        long offset = 0;
        if (entries.TryGetValue("offset", out string? o) && !long.TryParse(o, System.Globalization.NumberStyles.AllowLeadingSign, System.Globalization.CultureInfo.InvariantCulture, out offset))
        {
            throw new CheckpointException(path, $"has the external data offset '{o}', which is not a number of bytes.", name);
        }

        using var stream = File.OpenRead(file);
        // Compared without adding: offset + bytes wraps for an offset near long.MaxValue.
        if (offset < 0 || bytes > stream.Length - offset)
        {
            throw new CheckpointException(path, $"reads {bytes} bytes at offset {offset} of '{location}', which holds {stream.Length}.", name);
        }

        var data = new byte[bytes];
        stream.Position = offset;
        stream.ReadExactly(data);
        return data;
    }

    /// <summary>What a symbol is, in the words of an error message.</summary>
    private static string Describe(Symbol symbol) => symbol switch
    {
        ImageValue => "an image-shaped tensor",
        Padded => "a zero-padded image-shaped tensor",
        Classes => "the classifier's probabilities",
        ConstantValue c => $"a constant [{string.Join(", ", c.Shape)}]",
        Pooled => "a pooled [N, C, 1, 1] feature",
        Flat => "a flattened [N, C] feature",
        PendingLinear => "the classifier's output",
        ShapeOf or DimList => "shape arithmetic",
        ChannelChain => "a squeeze-excite gate",
        Elementwise => "an element-wise expression",
        _ => "a value",
    };

    private static string NodeName(NodeProto node) => string.IsNullOrEmpty(node.Name) ? node.Output.FirstOrDefault() ?? node.OpType : node.Name;

    // The node is named in the message, so the key is left out (it would repeat the name).
    private CheckpointException Unsupported(NodeProto node, string name, string problem) =>
        new(path, $"node '{name}' ({node.OpType}) {problem}; supported: {OnnxImporter.Supported}.");

    private CheckpointException Refused(NodeProto node, string name, string problem) =>
        new(path, $"node '{name}' ({node.OpType}) {problem}.");

    /// <summary>What an ONNX value stands for during translation.</summary>
    private abstract record Symbol;

    /// <summary>An NCHW value of the layer graph.</summary>
    private sealed record ImageValue(int Id) : Symbol;

    /// <summary>A constant (initializer or Constant node) as floats: weights, and the small int64 values of shape arithmetic.</summary>
    private sealed record ConstantValue(float[] Data, int[] Shape) : Symbol;

    /// <summary>An element-wise expression of one image value, not yet read as a tensor; named after its last node.</summary>
    private sealed record Elementwise(int Source, Expr Body, string Name) : Symbol;

    /// <summary>An element-wise expression of one variable, evaluated in double precision to recognize it.</summary>
    private abstract record Expr
    {
        public abstract double Evaluate(double x);
    }

    private sealed record VariableExpr : Expr
    {
        public override double Evaluate(double x) => x;
    }

    private sealed record ConstantExpr(double Value) : Expr
    {
        public override double Evaluate(double x) => Value;
    }

    private sealed record UnaryExpr(string Op, Expr A) : Expr
    {
        public override double Evaluate(double x)
        {
            double a = A.Evaluate(x);
            return Op switch
            {
                "Erf" => MathNet.Numerics.SpecialFunctions.Erf(a),
                "Tanh" => Math.Tanh(a),
                _ => 1 / (1 + Math.Exp(-a)),
            };
        }
    }

    private sealed record BinaryExpr(string Op, Expr A, Expr B) : Expr
    {
        public override double Evaluate(double x)
        {
            double a = A.Evaluate(x), b = B.Evaluate(x);
            return Op switch
            {
                "Add" => a + b,
                "Sub" => a - b,
                "Mul" => a * b,
                "Div" => a / b,
                _ => Math.Pow(a, b),
            };
        }
    }

    /// <summary>The spatial mean of a value, [N, C, 1, 1]: a squeeze-excite gate's start or the classifier's input.</summary>
    private sealed record Pooled(int Source) : Symbol;

    /// <summary>An image value with zero padding (top, left, bottom, right) not yet applied; named after its Pad node.</summary>
    private sealed record Padded(int Source, int Top, int Left, int Bottom, int Right, string Name) : Symbol;

    /// <summary>An [N, C] tensor (the classifier's softmax) held by graph value <paramref name="Id"/> as [C, 1, 1].</summary>
    private sealed record Classes(int Id) : Symbol;

    /// <summary>The pooled value flattened to [N, C].</summary>
    private sealed record Flat(int Source) : Symbol;

    /// <summary>The classifier over the pooled <paramref name="Source"/>: weight [Out, C] and an optional bias.</summary>
    private sealed record PendingLinear(string Name, int Source, float[] Weight, int Out, float[]? Bias) : Symbol;

    /// <summary>Shape(x) of a graph value.</summary>
    private sealed record ShapeOf(int Source) : Symbol;

    /// <summary>Shape arithmetic: dimensions, null for the batch.</summary>
    private sealed record DimList(IReadOnlyList<long?> Dims) : Symbol;

    /// <summary>1x1 convolutions and activations applied to a pooled value (a squeeze-excite gate being built).</summary>
    private sealed record ChannelChain(int Source, IReadOnlyList<(float[] Weight, float[] Bias, int Out)> Convs, IReadOnlyList<ActivationKind> Activations) : Symbol
    {
        public bool IsSqueezeExcite => Convs.Count == 2 && Activations.Count == 2;
    }
}

/// <summary>An ONNX model read by <see cref="OnnxImporter.Read"/>.</summary>
/// <param name="Graph">The layer graph.</param>
/// <param name="InputSize">The side of the square input the file records it was trained at, or null.</param>
public sealed record ImportedOnnxModel(LayerGraph Graph, int? InputSize);
