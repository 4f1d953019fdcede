using System.Globalization;
using System.Reflection;
using Google.Protobuf;
using MobileOne.Graph;
using MobileOne.Models;
using MobileOne.Reparam;
using Onnx;

namespace MobileOne.IO.Onnx;

/// <summary>
/// Writes a <see cref="LayerGraph"/> as an ONNX model, and a MobileOne network through its graph: fused (the default)
/// as one Conv (with bias) + Relu per block, or in its train-time form as every branch (Conv + BatchNormalization per
/// branch, the BatchNormalization skip, Add or Sum) + Relu. Squeeze-excite is GlobalAveragePool -> Conv -> Relu -> Conv
/// -> Sigmoid -> Mul and the head GlobalAveragePool -> Flatten -> Gemm. Initializers carry timm's state names
/// (stem.reparam_conv.weight, stages.1.0.conv_kxk.0.bn.running_var, head.fc.weight), so the graph reads like the
/// PyTorch model.
/// </summary>
/// <remarks>
/// <para>The input is float32 [batch, in_chans, height, width] named "input", with all three of batch, height and width
/// symbolic: the network is fully convolutional up to the global pooling, so one file serves every resolution (the
/// smallest useful MobileOne input is 32x32, where stage 4 reaches 1x1). A MobileOne's output is float32
/// [batch, num_classes] named "logits".</para>
/// <para>Any graph: the value the graph returns is named "logits" too; it is [batch, features] after a
/// <see cref="LinearNode"/>, otherwise NCHW ([batch, channels, 1, 1] after global pooling, else with symbolic
/// output_height and output_width). Activations map to operators that exist from opset 13: Relu; Relu6 as Clip with
/// min and max inputs; Sigmoid; HardSigmoid (alpha 1/6, beta 0.5); HardSwish (from opset 14, else x * HardSigmoid(x));
/// Silu as x * Sigmoid(x); Gelu as 0.5 x (1 + Erf(x / sqrt 2)); GeluTanh as 0.5 x (1 + Tanh(sqrt(2/pi) (x + 0.044715 x^3)))
/// (ONNX's Gelu operator needs opset 20); None as Identity. Pooling is MaxPool or AveragePool (pads, count_include_pad),
/// a linear layer Flatten + Gemm (transB = 1), a convolution Conv with its dilations and group, a softmax Softmax over
/// axis 1 (the classes of [batch, features] or the channels of NCHW), a concatenation Concat on axis 1 and a zero pad
/// Pad in constant mode with its pads as an int64 initializer.</para>
/// </remarks>
public static class OnnxExporter
{
    /// <summary>
    /// Gemm, Flatten, Sigmoid, Erf, Clip, Sum and Unsqueeze (axes as an input) reached their current versions in opset 13;
    /// later revisions of the operators used here (Relu, Mul, Add, Div, Identity, BatchNormalization in 14-16) only added
    /// types or training mode, so every opset from 13 means the same float graph. HardSwish is an operator from opset 14
    /// and x * HardSigmoid(x) before.
    /// </summary>
    public const int MinOpset = 13;

    /// <summary>The highest ONNX opset the exporter writes.</summary>
    public const int MaxOpset = 17;

    /// <summary>Opset 17 loads in ONNX Runtime 1.12 and later; pass 13-16 for older runtimes (1.11 knows opset 16).</summary>
    public const int DefaultOpset = 17;

    /// <summary>Name of the graph's input (NCHW images).</summary>
    public const string InputName = "input";
    /// <summary>Name of the graph's output.</summary>
    public const string OutputName = "logits";
    /// <summary>Name of the symbolic batch dimension.</summary>
    public const string BatchDimension = "batch";
    /// <summary>Name of the symbolic height dimension.</summary>
    public const string HeightDimension = "height";
    /// <summary>Name of the symbolic width dimension.</summary>
    public const string WidthDimension = "width";
    /// <summary>The producer name written into the model.</summary>
    public const string ProducerName = "mobileone-dotnet";

    /// <summary>
    /// Writes the network atomically to <paramref name="path"/>: fused (a train-time network is fused first) unless
    /// <paramref name="fuse"/> is false, which exports the network in the form it is in (a train-time network as its
    /// multi-branch graph, BatchNorm with the running statistics). <paramref name="inputSize"/>, the side the network
    /// was trained at, goes into metadata_props (<see cref="InputSizeRecord"/>) when given.
    /// </summary>
    public static void Export(ClassifierNetwork network, string path, int opset = DefaultOpset, bool fuse = true, int? inputSize = null)
    {
        ArgumentNullException.ThrowIfNull(path);

        // Build everything before the file is opened: a bad opset or network never leaves a temp file behind.
        var model = Build(network, opset, fuse, inputSize);
        AtomicFile.Write(path, model.WriteTo);
    }

    /// <summary>As <see cref="Export(ClassifierNetwork, string, int, bool, int?)"/>, writing the serialized model to <paramref name="stream"/>.</summary>
    public static void Export(ClassifierNetwork network, Stream stream, int opset = DefaultOpset, bool fuse = true)
    {
        ArgumentNullException.ThrowIfNull(stream);
        Build(network, opset, fuse).WriteTo(stream);
    }

    /// <summary>The serialized model, for runtimes that take the model bytes directly.</summary>
    public static byte[] ToBytes(ClassifierNetwork network, int opset = DefaultOpset, bool fuse = true) => Build(network, opset, fuse).ToByteArray();

    /// <summary>
    /// The ONNX model in memory: the network's graph, fused first (where its family has a fused form) unless
    /// <paramref name="fuse"/> is false. A zoo network's nodes and initializers keep timm's module names.
    /// <paramref name="inputSize"/>, when given, is recorded in metadata_props (<see cref="InputSizeRecord"/>).
    /// </summary>
    public static ModelProto Build(ClassifierNetwork network, int opset = DefaultOpset, bool fuse = true, int? inputSize = null)
    {
        ArgumentNullException.ThrowIfNull(network);
        var model = BuildNetwork(network, opset, fuse);
        if (inputSize is int size)
        {
            model.MetadataProps.Add(new StringStringEntryProto { Key = InputSizeRecord.Key, Value = InputSizeRecord.Format(network.InChans, size) });
        }

        return model;
    }

    private static ModelProto BuildNetwork(ClassifierNetwork network, int opset, bool fuse)
    {
        RequireOpset(opset);
        var chosen = fuse && network.Reparameterizable && !network.IsFused ? Reparameterizer.Fuse(network) : network;
        if (chosen is not MobileOneNetwork exported)
        {
            string zooForm = !chosen.Reparameterizable ? "plain" : chosen.IsFused ? "fused" : "train-time";
            var zoo = BuildModel(chosen.ToGraph(), opset, chosen.Architecture, $"{chosen.Description}, {zooForm} form.", name => name);
            zoo.MetadataProps.Add(new StringStringEntryProto { Key = "architecture", Value = chosen.Architecture });
            zoo.MetadataProps.Add(new StringStringEntryProto { Key = "variant", Value = chosen.Architecture });
            zoo.MetadataProps.Add(new StringStringEntryProto { Key = "num_classes", Value = chosen.NumClasses.ToString(CultureInfo.InvariantCulture) });
            zoo.MetadataProps.Add(new StringStringEntryProto { Key = "form", Value = zooForm });
            return zoo;
        }

        var config = exported.Config;
        string form = exported.IsFused
            ? "reparameterized (fused) for inference"
            : "train-time form: every branch as Conv + BatchNormalization (running statistics) and their sum";
        var model = BuildModel(exported.ToGraph(), opset, $"mobileone_{config.Name}", $"MobileOne {config}, {form}.", MobileOneNodeName);
        model.DocString = $"MobileOne-{config.Name} exported by {ProducerName}: input '{InputName}' float32 [batch, {config.InChans}, height, width], output '{OutputName}' float32 [batch, {config.NumClasses}].";
        model.MetadataProps.Add(new StringStringEntryProto { Key = "architecture", Value = config.ToString() });
        model.MetadataProps.Add(new StringStringEntryProto { Key = "variant", Value = config.Name });
        model.MetadataProps.Add(new StringStringEntryProto { Key = "num_classes", Value = config.NumClasses.ToString(CultureInfo.InvariantCulture) });
        model.MetadataProps.Add(new StringStringEntryProto { Key = "form", Value = exported.IsFused ? "fused" : "train-time" });
        return model;
    }

    /// <summary>Writes any layer graph atomically to <paramref name="path"/> (input "input", output "logits"; see the class remarks).</summary>
    public static void Export(LayerGraph graph, string path, int opset = DefaultOpset)
    {
        ArgumentNullException.ThrowIfNull(path);
        var model = Build(graph, opset);
        AtomicFile.Write(path, model.WriteTo);
    }

    /// <summary>Writes any layer graph to <paramref name="stream"/>.</summary>
    public static void Export(LayerGraph graph, Stream stream, int opset = DefaultOpset)
    {
        ArgumentNullException.ThrowIfNull(stream);
        Build(graph, opset).WriteTo(stream);
    }

    /// <summary>The serialized model of any layer graph.</summary>
    public static byte[] ToBytes(LayerGraph graph, int opset = DefaultOpset) => Build(graph, opset).ToByteArray();

    /// <summary>
    /// The ONNX model of any layer graph, node by node: ONNX nodes and values are named after the graph's nodes,
    /// initializers after the graph's nodes plus timm's parameter suffixes (see the class remarks for the operators).
    /// </summary>
    public static ModelProto Build(LayerGraph graph, int opset = DefaultOpset)
    {
        ArgumentNullException.ThrowIfNull(graph);
        RequireOpset(opset);
        return BuildModel(graph, opset, "layer_graph", $"A layer graph of {graph.Nodes.Count} nodes.", name => name);
    }

    private static void RequireOpset(int opset)
    {
        if (opset < MinOpset || opset > MaxOpset)
        {
            throw new ArgumentException($"ONNX opset must be between {MinOpset} and {MaxOpset}; got {opset}.");
        }
    }

    /// <summary>
    /// ONNX node names of a MobileOne, as the exporter has always written them: <c>X.conv</c> for the fused
    /// <c>X.reparam_conv</c>, <c>X.relu</c> for the block's <c>X.act</c>, <c>head.flatten</c> before <c>head.fc</c>.
    /// </summary>
    private static string MobileOneNodeName(string name) => name switch
    {
        "head.fc.flatten" => "head.flatten",
        _ when name.EndsWith(".reparam_conv", StringComparison.Ordinal) => name[..^"reparam_conv".Length] + "conv",
        _ when name.EndsWith(".act", StringComparison.Ordinal) => name[..^"act".Length] + "relu",
        _ => name,
    };

    private static ModelProto BuildModel(LayerGraph layers, int opset, string name, string docString, Func<string, string> rename)
    {
        var graph = new GraphProto { Name = name, DocString = docString };
        OnnxGraphWriter.Write(graph, layers, opset, InputName, OutputName, rename);
        var model = new ModelProto
        {
            // IR 7 is the lowest that carries opset 13-14, IR 8 the lowest for 15-17: older runtimes accept the file.
            IrVersion = opset <= 14 ? 7 : 8,
            ProducerName = ProducerName,
            ProducerVersion = typeof(OnnxExporter).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "0",
            DocString = $"{docString} Exported by {ProducerName}: input '{InputName}' float32 [batch, {layers.InputChannels}, height, width], output '{OutputName}' float32 {OnnxGraphWriter.DescribeOutput(graph)}.",
            Graph = graph,
        };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = string.Empty, Version = opset });
        return model;
    }
}
