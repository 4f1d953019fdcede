using Google.Protobuf;
using MobileOne.Inference;
using MobileOne.IO;
using MobileOne.IO.Checkpoints;
using MobileOne.IO.Onnx;
using MobileOne.Models;
using MobileOne.Reparam;
using MobileOne.Tensors;
using MobileOne.Tests.Models;
using Onnx;

namespace MobileOne.Tests.IO.Onnx;

/// <summary>
/// The exported graph, run by ONNX Runtime, must compute what the PyTorch references (fixtures) and the
/// library's reference forward compute: to 1e-4 of the reference's logit range, at two resolutions and
/// at batch sizes 1, 2 and 3 through the one symbolic batch dimension.
/// </summary>
public class OnnxExporterTests : IClassFixture<ReferenceTensors>
{
    private const double Tolerance = 1e-4;
    private const string CustomSe = "units=1/2/2/1,widths=0.5/0.5/0.5/0.5,k=2,se=0/0/1/1,classes=10,in_chans=1";

    private readonly ReferenceTensors refs;

    public OnnxExporterTests(ReferenceTensors refs)
    {
        this.refs = refs;
    }

    public static TheoryData<string, string> Checkpoints => new()
    {
        { "mobileone_s0_timm.safetensors", "timm" },
        { "mobileone_s0_apple_unfused.pth.tar", "apple" },
    };

    [Theory]
    [MemberData(nameof(Checkpoints))]
    public void S0_checkpoint_runs_in_onnxruntime_like_the_pytorch_reference_and_our_forward(string file, string prefix)
    {
        var network = ModelCheckpoint.Load(Fixtures.Path(file)).Network;
        Assert.False(network.IsFused);
        using var dir = new TempDir();
        string path = dir.File("s0.onnx");
        OnnxExporter.Export(network, path);
        var fused = Reparameterizer.Fuse(network);
        using var compiled = CompiledModel.Compile(network);
        using var ort = OrtHarness.FromFile(path);

        // 224, batch 2: the fixture's float64 PyTorch logits.
        var input224 = refs["input_224"];
        var logits224 = ort.Run(input224);
        AssertClose(refs[$"{prefix}.logits_unfused_224"], logits224, $"{prefix} ORT vs PyTorch at 224, batch 2");
        AssertClose(fused.Forward(input224), logits224, $"{prefix} ORT vs reference forward at 224, batch 2");

        // 64, batch 1: the first image of the fixture's 64x64 batch.
        var input64 = refs["input_64"];
        var first = Slice(input64, 0, 1);
        var logits64 = ort.Run(first);
        AssertClose(Slice(refs[$"{prefix}.logits_unfused_64"], 0, 1), logits64, $"{prefix} ORT vs PyTorch at 64, batch 1");
        AssertClose(compiled.Run(first), logits64, $"{prefix} ORT vs CompiledModel at 64, batch 1");

        // 64, batch 3: a batch size no fixture has, checked against both managed paths.
        var batch3 = RandomInput(3, 3, 64, seed: 7);
        var logits3 = ort.Run(batch3);
        Assert.Equal([3, 1000], logits3.Shape);
        AssertClose(fused.Forward(batch3), logits3, $"{prefix} ORT vs reference forward at 64, batch 3");
        AssertClose(compiled.Run(batch3), logits3, $"{prefix} ORT vs CompiledModel at 64, batch 3");
    }

    [Fact]
    public void Custom_config_with_squeeze_excite_and_one_input_channel_matches_the_unfused_network()
    {
        var network = RandomCustomNetwork(out var config);
        byte[] bytes = OnnxExporter.ToBytes(network);
        var fused = Reparameterizer.Fuse(network);
        using var compiled = CompiledModel.Compile(fused);
        using var ort = OrtHarness.FromBytes(bytes);
        foreach (var (batch, size) in new[] { (1, 32), (3, 32), (1, 64), (3, 64) })
        {
            var input = RandomInput(batch, config.InChans, size, seed: (batch * 100) + size);
            var logits = ort.Run(input);
            Assert.Equal([batch, 10], logits.Shape);
            AssertClose(network.Forward(input), logits, $"ORT vs unfused forward, batch {batch}, {size}x{size}");
            AssertClose(fused.Forward(input), logits, $"ORT vs fused forward, batch {batch}, {size}x{size}");
            AssertClose(compiled.Run(input), logits, $"ORT vs CompiledModel, batch {batch}, {size}x{size}");
        }
    }

    [Fact]
    public void Graph_has_the_documented_interface_names_and_node_structure()
    {
        var network = RandomCustomNetwork(out var config);
        using var dir = new TempDir();
        string path = dir.File("custom.onnx");
        OnnxExporter.Export(network, path);
        var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(path));

        Assert.Equal(8, model.IrVersion);
        Assert.Equal("mobileone-dotnet", model.ProducerName);
        Assert.Contains("mobileone-dotnet", model.DocString);
        var opset = Assert.Single(model.OpsetImport);
        Assert.Equal(string.Empty, opset.Domain);
        Assert.Equal(17, opset.Version);

        var graph = model.Graph;
        var input = Assert.Single(graph.Input);
        Assert.Equal("input", input.Name);
        Assert.Equal((int)TensorProto.Types.DataType.Float, input.Type.TensorType.ElemType);
        Assert.Equal(["batch", "1", "height", "width"], input.Type.TensorType.Shape.Dim.Select(Describe));
        var output = Assert.Single(graph.Output);
        Assert.Equal("logits", output.Name);
        Assert.Equal(["batch", "10"], output.Type.TensorType.Shape.Dim.Select(Describe));

        // Counted from the architecture, not from the exporter: Conv + Relu per block, six nodes per SE,
        // pool + flatten + gemm for the head. 1 stem + 2 x (1 + 2 + 2 + 1) blocks; SE on stage 3's last unit and stage 4.
        int blocks = 1 + (2 * (1 + 2 + 2 + 1));
        int seBlocks = 2 * (1 + 1);
        Assert.Equal((2 * blocks) + (6 * seBlocks) + 3, graph.Node.Count);
        var ops = graph.Node.GroupBy(n => n.OpType).ToDictionary(g => g.Key, g => g.Count());
        Assert.Equal(blocks + (2 * seBlocks), ops["Conv"]);
        Assert.Equal(blocks + seBlocks, ops["Relu"]);
        Assert.Equal(seBlocks + 1, ops["GlobalAveragePool"]);
        Assert.Equal(seBlocks, ops["Sigmoid"]);
        Assert.Equal(seBlocks, ops["Mul"]);
        Assert.Equal(1, ops["Flatten"]);
        Assert.Equal(1, ops["Gemm"]);

        var byName = graph.Node.ToDictionary(n => n.Name);
        Assert.Equal("Conv", byName["stem.conv"].OpType);
        Assert.Equal(["input", "stem.reparam_conv.weight", "stem.reparam_conv.bias"], byName["stem.conv"].Input);
        Assert.Equal("Relu", byName["stages.0.1.relu"].OpType);
        var depthwise = byName["stages.1.0.conv"];
        Assert.Equal(2, Attribute(depthwise, "strides").Ints[0]);
        Assert.Equal([1L, 1, 1, 1], Attribute(depthwise, "pads").Ints);
        Assert.Equal([3L, 3], Attribute(depthwise, "kernel_shape").Ints);
        Assert.Equal(config.StageChannels[0], Attribute(depthwise, "group").I);
        Assert.Equal("Mul", byName["stages.3.1.attn.scale"].OpType);
        Assert.Equal(["stages.3.1.conv", "stages.3.1.attn.sigmoid"], byName["stages.3.1.attn.scale"].Input);
        Assert.Equal(["stages.3.1.attn.scale"], byName["stages.3.1.relu"].Input);
        var fc = byName["head.fc"];
        Assert.Equal("Gemm", fc.OpType);
        Assert.Equal(1, Attribute(fc, "transB").I);
        Assert.Equal(["logits"], fc.Output);

        // Every fused weight is an initializer under its timm name, holding exactly its little-endian float32 bytes.
        var fused = Reparameterizer.Fuse(network);
        var initializers = graph.Initializer.ToDictionary(t => t.Name);
        Assert.Equal(fused.State().Count(), initializers.Count);
        foreach (var entry in fused.State())
        {
            var t = initializers[entry.Name];
            Assert.Equal((int)TensorProto.Types.DataType.Float, t.DataType);
            Assert.Equal(entry.Value.Shape.Select(d => (long)d), t.Dims);
            Assert.Empty(t.FloatData);
            Assert.Equal(LittleEndian(entry.Value.Data), t.RawData.ToByteArray());
        }

        Assert.Contains("head.fc.weight", initializers.Keys);
        Assert.Contains("stages.3.1.attn.fc1.weight", initializers.Keys);
    }

    [Fact]
    public void S0_graph_has_a_conv_and_relu_per_block_and_onnxruntime_sees_a_symbolic_batch()
    {
        var fused = ModelCheckpoint.Load(Fixtures.Path("mobileone_s0_timm_fused.safetensors")).Network;
        Assert.True(fused.IsFused);
        byte[] bytes = OnnxExporter.ToBytes(fused);
        var model = ModelProto.Parser.ParseFrom(bytes);
        int blocks = 1 + (2 * (2 + 8 + 10 + 1));
        Assert.Equal((2 * blocks) + 3, model.Graph.Node.Count);
        Assert.Equal(blocks, model.Graph.Node.Count(n => n.OpType == "Conv"));

        using var ort = OrtHarness.FromBytes(bytes);
        var input = Assert.Single(ort.Inputs);
        Assert.Equal("input", input.Key);
        Assert.Equal([-1, 3, -1, -1], input.Value.Dimensions);
        Assert.Equal(["batch", string.Empty, "height", "width"], input.Value.SymbolicDimensions);
        var output = Assert.Single(ort.Outputs);
        Assert.Equal("logits", output.Key);
        Assert.Equal([-1, 1000], output.Value.Dimensions);
    }

    [Theory]
    [InlineData(13, 7)]
    [InlineData(15, 8)]
    public void Older_opsets_use_the_lowest_ir_version_that_carries_them_and_still_run(int opset, long irVersion)
    {
        var network = RandomCustomNetwork(out _);
        byte[] bytes = OnnxExporter.ToBytes(network, opset);
        var model = ModelProto.Parser.ParseFrom(bytes);
        Assert.Equal(irVersion, model.IrVersion);
        Assert.Equal(opset, Assert.Single(model.OpsetImport).Version);
        using var ort = OrtHarness.FromBytes(bytes);
        var input = RandomInput(2, 1, 32, seed: 3);
        AssertClose(network.Forward(input), ort.Run(input), $"opset {opset}");
    }

    [Fact]
    public void Stream_overload_writes_the_same_bytes_as_the_file_overload()
    {
        var network = RandomCustomNetwork(out _);
        using var dir = new TempDir();
        OnnxExporter.Export(network, dir.File("a.onnx"), 14);
        using var stream = new MemoryStream();
        OnnxExporter.Export(network, stream, 14);
        Assert.Equal(File.ReadAllBytes(dir.File("a.onnx")), stream.ToArray());
    }

    [Theory]
    [InlineData(12)]
    [InlineData(18)]
    public void Opset_out_of_range_is_refused_and_an_existing_file_is_left_alone(int opset)
    {
        var network = RandomCustomNetwork(out _);
        using var dir = new TempDir();
        string path = dir.File("model.onnx");
        File.WriteAllText(path, "previous");
        var e = Assert.Throws<ArgumentException>(() => OnnxExporter.Export(network, path, opset));
        Assert.Equal($"ONNX opset must be between 13 and 17; got {opset}.", e.Message);
        Assert.Equal("previous", File.ReadAllText(path));
        Assert.Equal([path], Directory.GetFiles(dir.Path));
        Assert.Throws<ArgumentException>(() => OnnxExporter.Export(network, new MemoryStream(), opset));
    }

    [Fact]
    public void Missing_folder_names_the_path_and_creates_nothing()
    {
        var network = RandomCustomNetwork(out _);
        using var dir = new TempDir();
        string path = Path.Combine(dir.Path, "missing", "model.onnx");
        var e = Assert.Throws<CheckpointException>(() => OnnxExporter.Export(network, path));
        Assert.Contains(path, e.Message);
        Assert.Contains("does not exist", e.Message);
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));
    }

    [Fact]
    public void Directory_as_destination_is_refused_and_no_temporary_file_is_left()
    {
        var network = RandomCustomNetwork(out _);
        using var dir = new TempDir();
        string target = dir.File("model.onnx");
        Directory.CreateDirectory(target);
        var e = Assert.Throws<CheckpointException>(() => OnnxExporter.Export(network, target));
        Assert.Contains("is a directory", e.Message);
        Assert.Equal([target], Directory.GetFileSystemEntries(dir.Path));
        Assert.Empty(Directory.GetFileSystemEntries(target));
    }

    [Fact]
    public void A_write_that_fails_part_way_leaves_the_previous_file_and_no_temporary()
    {
        // Fill the destination's folder limit is not portable; fail inside the stream instead, through the same
        // atomic writer the exporter uses, to show a half-written model never replaces the old file.
        var network = RandomCustomNetwork(out _);
        using var dir = new TempDir();
        string path = dir.File("model.onnx");
        File.WriteAllText(path, "previous");
        Assert.Throws<IOException>(() => AtomicFile.Write(path, s =>
        {
            OnnxExporter.Export(network, new FailingStream(s, failAfter: 1000));
        }));
        Assert.Equal("previous", File.ReadAllText(path));
        Assert.Equal([path], Directory.GetFiles(dir.Path));
    }

    internal static MobileOneNetwork RandomCustomNetwork(out MobileOneConfig config)
    {
        config = MobileOneConfig.Parse(CustomSe);
        var network = MobileOneNetwork.Create(config);
        WeightInit.Initialize(network, seed: 11);
        WeightInit.RandomizeBatchNorm(network, seed: 12);
        return network;
    }

    internal static Tensor RandomInput(int batch, int channels, int size, int seed)
    {
        var t = new Tensor(batch, channels, size, size);
        WeightInit.FillNormal(new Random(seed), t.Data, 0, 1);
        return t;
    }

    /// <summary>|actual - expected| within 1e-4 of the expected logits' range (max - min).</summary>
    internal static void AssertClose(Tensor expected, Tensor actual, string what)
    {
        Assert.Equal(expected.Shape, actual.Shape);
        double range = expected.Data.Max() - (double)expected.Data.Min();
        double diff = Reference.MaxAbsDiff(actual.Data, expected.Data);
        Assert.True(range > 0, $"{what}: the reference logits are constant");
        Assert.True(diff <= Tolerance * range, $"{what}: max diff {diff:e3} > {Tolerance} x range {range:g4}");
    }

    private static Tensor Slice(Tensor t, int start, int count)
    {
        int per = t.Length / t.Dim(0);
        int[] shape = (int[])t.Shape.Clone();
        shape[0] = count;
        return new Tensor(shape, t.Data.AsSpan(start * per, count * per).ToArray());
    }

    private static string Describe(TensorShapeProto.Types.Dimension d) =>
        d.HasDimParam ? d.DimParam : d.DimValue.ToString(System.Globalization.CultureInfo.InvariantCulture);

    private static AttributeProto Attribute(NodeProto node, string name) => node.Attribute.Single(a => a.Name == name);

    private static byte[] LittleEndian(float[] data)
    {
        var bytes = new byte[data.Length * 4];
        for (int i = 0; i < data.Length; i++)
        {
            System.Buffers.Binary.BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * 4), data[i]);
        }

        return bytes;
    }

    private sealed class FailingStream(Stream inner, long failAfter) : Stream
    {
        private long written;

        public override bool CanRead => false;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => written; set => throw new NotSupportedException(); }

        public override void Flush() => inner.Flush();

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count)
        {
            if (written + count > failAfter)
            {
                throw new IOException("disk full (simulated)");
            }

            inner.Write(buffer, offset, count);
            written += count;
        }
    }
}
