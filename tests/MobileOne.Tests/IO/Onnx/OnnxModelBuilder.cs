using System.Buffers.Binary;
using Google.Protobuf;
using MobileOne.Graph;
using MobileOne.IO;
using MobileOne.IO.Onnx;
using Onnx;

namespace MobileOne.Tests.IO.Onnx;

/// <summary>
/// A small ONNX model written by hand, the way another exporter would write it: one float32 NCHW input named "input"
/// (batch, height and width symbolic), initializers and nodes in the order they are added, outputs by name. The edge
/// tests build each case from a few nodes instead of reading a fixture, so that a refusal or a fold is the only thing
/// the model exercises.
/// </summary>
internal sealed class OnnxModelBuilder
{
    public OnnxModelBuilder(int channels = 3, int opset = 13)
    {
        Model = new ModelProto { IrVersion = 7, Graph = new GraphProto { Name = "hand_written" } };
        Model.OpsetImport.Add(new OperatorSetIdProto { Domain = string.Empty, Version = opset });
        Graph.Input.Add(Value("input", Symbolic("batch"), Fixed(channels), Symbolic("height"), Symbolic("width")));
    }

    public ModelProto Model { get; }

    public GraphProto Graph => Model.Graph;

    /// <summary>The node added last.</summary>
    public NodeProto Last => Graph.Node[^1];

    public static TensorShapeProto.Types.Dimension Symbolic(string name) => new() { DimParam = name };

    public static TensorShapeProto.Types.Dimension Fixed(long value) => new() { DimValue = value };

    /// <summary>A float32 value of the given shape (no shape at all without dimensions).</summary>
    public static ValueInfoProto Value(string name, params TensorShapeProto.Types.Dimension[] dims)
    {
        var tensor = new TypeProto.Types.Tensor { ElemType = (int)TensorProto.Types.DataType.Float };
        if (dims.Length > 0)
        {
            tensor.Shape = new TensorShapeProto();
            tensor.Shape.Dim.AddRange(dims);
        }

        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = tensor } };
    }

    /// <summary>A float32 tensor with its elements as little-endian raw data.</summary>
    public static TensorProto FloatTensor(string name, float[] data, params long[] dims)
    {
        var bytes = new byte[data.Length * 4];
        for (int i = 0; i < data.Length; i++)
        {
            BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * 4), data[i]);
        }

        var tensor = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Float, RawData = ByteString.CopyFrom(bytes) };
        tensor.Dims.AddRange(dims);
        return tensor;
    }

    /// <summary>A one-dimensional int64 tensor with its elements as little-endian raw data.</summary>
    public static TensorProto LongTensor(string name, params long[] data)
    {
        var bytes = new byte[data.Length * 8];
        for (int i = 0; i < data.Length; i++)
        {
            BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(i * 8), data[i]);
        }

        var tensor = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Int64, RawData = ByteString.CopyFrom(bytes) };
        tensor.Dims.Add(data.Length);
        return tensor;
    }

    public OnnxModelBuilder Floats(string name, float[] data, params long[] dims)
    {
        Graph.Initializer.Add(FloatTensor(name, data, dims));
        return this;
    }

    public OnnxModelBuilder Longs(string name, params long[] data)
    {
        Graph.Initializer.Add(LongTensor(name, data));
        return this;
    }

    /// <summary>A node named after its one output.</summary>
    public OnnxModelBuilder Node(string opType, string[] inputs, string output, params AttributeProto[] attributes)
    {
        var node = new NodeProto { OpType = opType, Name = output };
        node.Input.AddRange(inputs);
        node.Output.Add(output);
        node.Attribute.AddRange(attributes);
        Graph.Node.Add(node);
        return this;
    }

    public OnnxModelBuilder Output(string name)
    {
        Graph.Output.Add(Value(name));
        return this;
    }

    public byte[] Bytes() => Model.ToByteArray();

    public LayerGraph Import() => OnnxImporter.FromBytes(Bytes(), "hand.onnx");

    /// <summary>The import's refusal, whose message must name the file.</summary>
    public CheckpointException Refuse()
    {
        var e = Assert.Throws<CheckpointException>(Import);
        Assert.Equal("hand.onnx", e.FilePath);
        return e;
    }

    public static AttributeProto Int(string name, long value) => new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value };

    public static AttributeProto Float(string name, float value) => new() { Name = name, Type = AttributeProto.Types.AttributeType.Float, F = value };

    public static AttributeProto Text(string name, string value) => new() { Name = name, Type = AttributeProto.Types.AttributeType.String, S = ByteString.CopyFromUtf8(value) };

    public static AttributeProto Tensor(string name, TensorProto value) => new() { Name = name, Type = AttributeProto.Types.AttributeType.Tensor, T = value };

    public static AttributeProto Ints(string name, params long[] values)
    {
        var a = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        a.Ints.AddRange(values);
        return a;
    }

    /// <summary>0, 1, 2, ...: weights whose every element is distinguishable.</summary>
    public static float[] Ramp(int n, float scale = 1) => [.. Enumerable.Range(0, n).Select(i => i * scale)];
}
