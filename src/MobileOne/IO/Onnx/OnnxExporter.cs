using System.Buffers.Binary;
using System.Globalization;
using System.Reflection;
using System.Runtime.InteropServices;
using Google.Protobuf;
using MobileOne.Models;
using MobileOne.Nn;
using MobileOne.Reparam;
using Onnx;

namespace MobileOne.IO.Onnx;

/// <summary>
/// Writes a fused MobileOne as an ONNX model: one Conv (with bias) + Relu per block, squeeze-excite as
/// GlobalAveragePool -> Conv -> Relu -> Conv -> Sigmoid -> Mul between a block's conv and its Relu, and
/// GlobalAveragePool -> Flatten -> Gemm for the head. Initializers and nodes carry timm's names
/// (stem.reparam_conv.weight, stages.0.1.conv, head.fc), so the graph reads like the PyTorch model.
/// </summary>
/// <remarks>
/// The input is float32 [batch, in_chans, height, width] with all three of batch, height and width
/// symbolic: the network is fully convolutional up to the global pooling, so one file serves every
/// resolution (the smallest useful input is 32x32, where stage 4 reaches 1x1). The output is
/// float32 [batch, num_classes] named "logits".
/// </remarks>
public static class OnnxExporter
{
    /// <summary>
    /// Gemm, Flatten and Sigmoid reached their current versions in opset 13; later revisions of the operators used
    /// here (Relu and Mul in 14) only added integer and bfloat16 types, so every opset from 13 means the same float graph.
    /// </summary>
    public const int MinOpset = 13;

    public const int MaxOpset = 17;

    /// <summary>Opset 17 loads in ONNX Runtime 1.12 and later; pass 13-16 for older runtimes (1.11 knows opset 16).</summary>
    public const int DefaultOpset = 17;

    public const string InputName = "input";
    public const string OutputName = "logits";
    public const string BatchDimension = "batch";
    public const string HeightDimension = "height";
    public const string WidthDimension = "width";
    public const string ProducerName = "mobileone-dotnet";

    /// <summary>Fuses a train-time network (a fused one is used as is) and writes it atomically to <paramref name="path"/>.</summary>
    public static void Export(MobileOneNetwork network, string path, int opset = DefaultOpset)
    {
        ArgumentNullException.ThrowIfNull(path);

        // Build everything before the file is opened: a bad opset or network never leaves a temp file behind.
        var model = Build(network, opset);
        AtomicFile.Write(path, model.WriteTo);
    }

    /// <summary>Fuses a train-time network (a fused one is used as is) and writes the serialized model to <paramref name="stream"/>.</summary>
    public static void Export(MobileOneNetwork network, Stream stream, int opset = DefaultOpset)
    {
        ArgumentNullException.ThrowIfNull(stream);
        Build(network, opset).WriteTo(stream);
    }

    /// <summary>The serialized model, for runtimes that take the model bytes directly.</summary>
    public static byte[] ToBytes(MobileOneNetwork network, int opset = DefaultOpset) => Build(network, opset).ToByteArray();

    /// <summary>The ONNX model in memory.</summary>
    public static ModelProto Build(MobileOneNetwork network, int opset = DefaultOpset)
    {
        ArgumentNullException.ThrowIfNull(network);
        if (opset < MinOpset || opset > MaxOpset)
        {
            throw new ArgumentException($"ONNX opset must be between {MinOpset} and {MaxOpset}; got {opset}.");
        }

        var fused = network.IsFused ? network : Reparameterizer.Fuse(network);
        var config = fused.Config;
        var graph = new GraphProto
        {
            Name = $"mobileone_{config.Name}",
            DocString = $"MobileOne {config}, reparameterized (fused) for inference.",
        };
        graph.Input.Add(TensorValue(InputName, Dim(BatchDimension), Dim(config.InChans), Dim(HeightDimension), Dim(WidthDimension)));
        graph.Output.Add(TensorValue(OutputName, Dim(BatchDimension), Dim(config.NumClasses)));

        var builder = new GraphBuilder(graph);
        string x = InputName;
        foreach (var (prefix, block) in fused.Blocks())
        {
            x = builder.Block(prefix, block, x);
        }

        string pooled = builder.Node("GlobalAveragePool", "head.global_pool", [x]);
        string flat = builder.Node("Flatten", "head.flatten", [pooled], Int("axis", 1));
        builder.Node(
            "Gemm",
            "head.fc",
            [flat, builder.Initializer("head.fc.weight", fused.Head.Weight), builder.Initializer("head.fc.bias", fused.Head.Bias)],
            output: OutputName,
            attributes: [Float("alpha", 1f), Float("beta", 1f), Int("transB", 1)]);

        var model = new ModelProto
        {
            // IR 7 is the lowest that carries opset 13-14, IR 8 the lowest for 15-17: older runtimes accept the file.
            IrVersion = opset <= 14 ? 7 : 8,
            ProducerName = ProducerName,
            ProducerVersion = typeof(OnnxExporter).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "0",
            DocString = $"MobileOne-{config.Name} exported by {ProducerName}: input '{InputName}' float32 [batch, {config.InChans}, height, width], output '{OutputName}' float32 [batch, {config.NumClasses}].",
            Graph = graph,
        };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = string.Empty, Version = opset });
        model.MetadataProps.Add(new StringStringEntryProto { Key = "architecture", Value = config.ToString() });
        model.MetadataProps.Add(new StringStringEntryProto { Key = "variant", Value = config.Name });
        model.MetadataProps.Add(new StringStringEntryProto { Key = "num_classes", Value = config.NumClasses.ToString(CultureInfo.InvariantCulture) });
        return model;
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

    /// <summary>Appends nodes and initializers in execution order; every node's output value is named after the node.</summary>
    private sealed class GraphBuilder(GraphProto graph)
    {
        public string Block(string prefix, MobileOneBlock block, string input)
        {
            var conv = block.ReparamConv ?? throw new InvalidOperationException($"Block '{prefix}' is not fused.");
            string x = Conv(prefix + "conv", prefix + "reparam_conv.", conv, input);
            if (block.Attn is { } se)
            {
                string attn = prefix + "attn.";
                string pooled = Node("GlobalAveragePool", attn + "pool", [x]);
                string hidden = Conv(attn + "fc1", attn + "fc1.", se.Reduce, pooled);
                hidden = Node("Relu", attn + "relu", [hidden]);
                string gate = Conv(attn + "fc2", attn + "fc2.", se.Expand, hidden);
                gate = Node("Sigmoid", attn + "sigmoid", [gate]);
                x = Node("Mul", attn + "scale", [x, gate]);
            }

            return Node("Relu", prefix + "relu", [x]);
        }

        public string Node(string opType, string name, string[] inputs, string? output = null, params AttributeProto[] attributes)
        {
            var node = new NodeProto { OpType = opType, Name = name };
            node.Input.AddRange(inputs);
            node.Output.Add(output ?? name);
            node.Attribute.AddRange(attributes);
            graph.Node.Add(node);
            return output ?? name;
        }

        public string Node(string opType, string name, string[] inputs, params AttributeProto[] attributes) =>
            Node(opType, name, inputs, null, attributes);

        public string Initializer(string name, Parameter parameter)
        {
            var value = parameter.Value;
            var tensor = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Float };
            tensor.Dims.AddRange(value.Shape.Select(d => (long)d));
            tensor.RawData = LittleEndianBytes(value.Data);
            graph.Initializer.Add(tensor);
            return name;
        }

        private string Conv(string nodeName, string parameterPrefix, Conv2d conv, string input)
        {
            string weight = Initializer(parameterPrefix + "weight", conv.Weight);
            string bias = Initializer(parameterPrefix + "bias", conv.Bias ?? throw new InvalidOperationException($"Convolution '{nodeName}' has no bias; a fused block always has one."));
            return Node(
                "Conv",
                nodeName,
                [input, weight, bias],
                Ints("dilations", 1, 1),
                Int("group", conv.Groups),
                Ints("kernel_shape", conv.KernelSize, conv.KernelSize),
                Ints("pads", conv.Padding, conv.Padding, conv.Padding, conv.Padding),
                Ints("strides", conv.Stride, conv.Stride));
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
    }
}
