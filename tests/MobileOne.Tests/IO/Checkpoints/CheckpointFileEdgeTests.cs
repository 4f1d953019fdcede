using MobileOne.IO;
using MobileOne.IO.Checkpoints;
using MobileOne.IO.PyTorch;
using MobileOne.IO.Safetensors;
using MobileOne.Tensors;

namespace MobileOne.Tests.IO.Checkpoints;

/// <summary>
/// How a checkpoint's container is chosen: by content first (each byte of the zip signature, the pickle protocol byte,
/// the tar magic at its exact offset and length), then by extension, and which reader a file goes to when it is
/// neither, checked against the message that reader gives for the same file. Also the format names, the output
/// extensions and the key schemes' names. Aimed, from the code, at what the model-level tests cannot detect, for the
/// Stryker runs of IO/Checkpoints/ (docs/reliability.md).
/// </summary>
public sealed class CheckpointFileEdgeTests
{
    private const string NotRecognised = "is not a recognised checkpoint: expected safetensors, a sharded safetensors index (.index.json) or a torch.save zip (.pth, .pth.tar, .pt).";

    private static string WriteBytes(TempDir dir, string name, byte[] bytes)
    {
        string path = dir.File(name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    private static TensorFile OneTensor() => new([KeyValuePair.Create("w", StoredTensor.FromTensor(new Tensor([2], [1.5f, -2f])))]);

    /// <summary>The message <paramref name="read"/> refuses the file with: what CheckpointFile must pass on when it picks that reader.</summary>
    private static string RefusalOf(Func<string, TensorFile> read, string path) => Assert.Throws<CheckpointException>(() => read(path)).Message;

    private static string CheckpointFileRefusal(string path) => Assert.Throws<CheckpointException>(() => CheckpointFile.Read(path)).Message;

    [Fact]
    public void A_null_path_is_an_argument_error()
    {
        Assert.Throws<ArgumentNullException>(() => CheckpointFile.Read(null!));
    }

    [Fact]
    public void A_directory_a_missing_file_and_an_empty_file_are_refused_with_their_own_messages()
    {
        using var dir = new TempDir();
        var directory = Assert.Throws<CheckpointException>(() => CheckpointFile.Read(dir.Path));
        Assert.Equal("is a directory; expected a checkpoint file (.safetensors, .safetensors.index.json, .pth, .pth.tar or .pt).", directory.Problem);
        Assert.Equal(dir.Path, directory.FilePath);

        Assert.Equal("does not exist.", Assert.Throws<CheckpointException>(() => CheckpointFile.Read(dir.File("nope.safetensors"))).Problem);

        string empty = WriteBytes(dir, "empty.pth", []);
        Assert.Equal("is empty (0 bytes); expected a checkpoint.", Assert.Throws<CheckpointException>(() => CheckpointFile.Read(empty)).Problem);
    }

    [Fact]
    public void Checkpoints_under_an_unknown_extension_are_recognised_by_their_content()
    {
        using var dir = new TempDir();
        string zip = dir.File("model.ckpt");
        PyTorchCheckpointWriter.Write(zip, OneTensor());
        var (file, format) = CheckpointFile.Read(zip);
        Assert.Equal(CheckpointFormat.PyTorch, format);
        Assert.Equal([1.5f, -2f], file.Tensors["w"].ToTensor().Data);

        string safetensors = dir.File("model.weights");
        SafetensorsWriter.Write(safetensors, OneTensor());
        (file, format) = CheckpointFile.Read(safetensors);
        Assert.Equal(CheckpointFormat.Safetensors, format);
        Assert.Equal([1.5f, -2f], file.Tensors["w"].ToTensor().Data);
    }

    [Fact]
    public void A_sharded_index_is_read_as_one_checkpoint()
    {
        using var dir = new TempDir();
        string index = dir.File("model.safetensors.index.json");
        SafetensorsWriter.WriteSharded(index, OneTensor(), maxShardBytes: 1 << 20);
        var (file, format) = CheckpointFile.Read(index);
        Assert.Equal(CheckpointFormat.SafetensorsSharded, format);
        Assert.Equal([1.5f, -2f], file.Tensors["w"].ToTensor().Data);
    }

    /// <summary>Files whose first bytes say zip, pickle or tar go to the torch.save reader whatever their name: its refusal is the one reported.</summary>
    [Theory]
    [InlineData(new byte[] { 0x50, 0x4b, 0x03, 0x04 })] // the zip signature and nothing else: exactly 4 bytes
    [InlineData(new byte[] { 0x50, 0x4b, 0x03, 0x04, 0, 0, 0, 0, 0, 0 })]
    [InlineData(new byte[] { 0x80 })] // a pickle's PROTO opcode, one byte
    [InlineData(new byte[] { 0x80, 0x02, 0x7d, 0x2e })]
    public void Zip_and_pickle_signatures_go_to_the_torch_save_reader(byte[] head)
    {
        using var dir = new TempDir();
        string path = WriteBytes(dir, "signed.ckpt", head);
        Assert.Equal(RefusalOf(PyTorchCheckpointReader.Read, path), CheckpointFileRefusal(path));
    }

    /// <summary>
    /// A safetensors file starts with its header's length, little-endian: for one length in 256 the first byte is 0x80,
    /// a pickle's PROTO opcode. Such files are safetensors whatever their name (a checkpoint saved with an input_size
    /// record was the first seen to hit it).
    /// </summary>
    [Theory]
    [InlineData("padded.safetensors")]
    [InlineData("padded.ckpt")]
    public void A_safetensors_header_whose_length_starts_with_0x80_is_not_taken_for_a_pickle(string name)
    {
        using var dir = new TempDir();
        string path = dir.File(name);
        var file = OneTensor();
        for (int pad = 0; ; pad++)
        {
            file.Metadata["pad"] = new string('x', pad);
            CheckpointFile.Write(path, file, CheckpointFormat.Safetensors);
            if (File.ReadAllBytes(path)[0] == 0x80)
            {
                break;
            }
        }

        var (read, format) = CheckpointFile.Read(path);
        Assert.Equal(CheckpointFormat.Safetensors, format);
        Assert.Equal([1.5f, -2f], read.Tensors["w"].ToTensor().Data);
        Assert.Equal(file.Metadata["pad"], read.Metadata["pad"]);
    }

    /// <summary>One byte off the zip signature, or a first byte that is not PROTO, is no signature: such a file with an unknown extension is not recognised.</summary>
    [Theory]
    [InlineData(new byte[] { 0x50, 0x4b, 0x03 })]
    [InlineData(new byte[] { 0x51, 0x4b, 0x03, 0x04, 0 })]
    [InlineData(new byte[] { 0x50, 0x4c, 0x03, 0x04, 0 })]
    [InlineData(new byte[] { 0x50, 0x4b, 0x02, 0x04, 0 })]
    [InlineData(new byte[] { 0x50, 0x4b, 0x03, 0x05, 0 })]
    [InlineData(new byte[] { 0x7f, 0x02, 0x7d, 0x2e })]
    [InlineData(new byte[] { 0x81, 0x02, 0x7d, 0x2e })]
    public void Near_signatures_under_an_unknown_extension_are_not_recognised(byte[] head)
    {
        using var dir = new TempDir();
        string path = WriteBytes(dir, "near.ckpt", head);
        var ex = Assert.Throws<CheckpointException>(() => CheckpointFile.Read(path));
        Assert.Equal(NotRecognised, ex.Problem);
        Assert.Equal(path, ex.FilePath);
    }

    /// <summary>A tar header's magic "ustar" sits at bytes 257-261: 262 bytes are the least that can hold it.</summary>
    [Fact]
    public void The_tar_magic_is_read_at_offset_257_in_a_file_of_at_least_262_bytes()
    {
        using var dir = new TempDir();
        var tar = new byte[262];
        "ustar"u8.CopyTo(tar.AsSpan(257));
        string path = WriteBytes(dir, "archive.ckpt", tar);
        Assert.Equal(RefusalOf(PyTorchCheckpointReader.Read, path), CheckpointFileRefusal(path));

        var shifted = new byte[263];
        "ustar"u8.CopyTo(shifted.AsSpan(258));
        Assert.Equal(NotRecognised, Assert.Throws<CheckpointException>(() => CheckpointFile.Read(WriteBytes(dir, "shifted.ckpt", shifted))).Problem);

        var wrong = (byte[])tar.Clone();
        wrong[261] = (byte)'R';
        Assert.Equal(NotRecognised, Assert.Throws<CheckpointException>(() => CheckpointFile.Read(WriteBytes(dir, "wrong.ckpt", wrong))).Problem);
    }

    /// <summary>Content that says nothing: the extension picks the reader (any case), and the reader's own refusal is reported.</summary>
    [Theory]
    [InlineData("model.pth")]
    [InlineData("model.pt")]
    [InlineData("model.pth.tar")]
    [InlineData("pytorch_model.bin")]
    [InlineData("MODEL.PTH")]
    public void Unrecognised_content_under_a_torch_save_extension_goes_to_the_torch_save_reader(string name)
    {
        using var dir = new TempDir();
        string path = WriteBytes(dir, name, "hello, this is not a model"u8.ToArray());
        string message = CheckpointFileRefusal(path);
        Assert.Equal(RefusalOf(PyTorchCheckpointReader.Read, path), message);
        Assert.DoesNotContain("not a recognised checkpoint", message);
    }

    [Theory]
    [InlineData("model.safetensors")]
    [InlineData("MODEL.SAFETENSORS")]
    public void Unrecognised_content_under_the_safetensors_extension_goes_to_the_safetensors_reader(string name)
    {
        using var dir = new TempDir();
        string path = WriteBytes(dir, name, "hello, this is not a model"u8.ToArray());
        string message = CheckpointFileRefusal(path);
        Assert.Equal(RefusalOf(SafetensorsReader.Read, path), message);
        Assert.DoesNotContain("not a recognised checkpoint", message);
    }

    [Theory]
    [InlineData("notes.txt")]
    [InlineData("model.pthx")]
    [InlineData("model.ckpt")]
    public void Unrecognised_content_under_another_extension_is_not_recognised(string name)
    {
        using var dir = new TempDir();
        string path = WriteBytes(dir, name, "hello, this is not a model"u8.ToArray());
        Assert.Equal(NotRecognised, Assert.Throws<CheckpointException>(() => CheckpointFile.Read(path)).Problem);
    }

    [Fact]
    public void Writing_a_sharded_checkpoint_is_refused_by_format_name()
    {
        using var dir = new TempDir();
        string path = dir.File("model.safetensors.index.json");
        var ex = Assert.Throws<CheckpointException>(() => CheckpointFile.Write(path, OneTensor(), CheckpointFormat.SafetensorsSharded));
        Assert.Equal("writing safetensors-sharded checkpoints is not supported; use .safetensors or .pth.", ex.Problem);
        Assert.False(File.Exists(path));
    }

    [Fact]
    public void Writing_picks_the_container_the_format_names()
    {
        using var dir = new TempDir();
        // Names that do not give the format away: the bytes must.
        CheckpointFile.Write(dir.File("a.out"), OneTensor(), CheckpointFormat.PyTorch);
        CheckpointFile.Write(dir.File("b.out"), OneTensor(), CheckpointFormat.Safetensors);
        Assert.Equal("PK"u8.ToArray(), File.ReadAllBytes(dir.File("a.out"))[..2]);
        Assert.Equal([1.5f, -2f], SafetensorsReader.Read(dir.File("b.out")).Tensors["w"].ToTensor().Data);
    }

    [Fact]
    public void Formats_have_short_names_for_messages()
    {
        Assert.Equal("safetensors", CheckpointFormats.Name(CheckpointFormat.Safetensors));
        Assert.Equal("safetensors-sharded", CheckpointFormats.Name(CheckpointFormat.SafetensorsSharded));
        Assert.Equal("pytorch", CheckpointFormats.Name(CheckpointFormat.PyTorch));
        Assert.Equal("7", CheckpointFormats.Name((CheckpointFormat)7));
    }

    [Theory]
    [InlineData("model.safetensors", CheckpointFormat.Safetensors)]
    [InlineData("MODEL.SafeTensors", CheckpointFormat.Safetensors)]
    [InlineData("model.pth", CheckpointFormat.PyTorch)]
    [InlineData("model.PT", CheckpointFormat.PyTorch)]
    [InlineData("model.pth.tar", CheckpointFormat.PyTorch)]
    [InlineData("pytorch_model.bin", CheckpointFormat.PyTorch)]
    public void The_output_extension_picks_the_format(string path, CheckpointFormat expected)
    {
        Assert.Equal(expected, CheckpointFormats.ForOutputPath(path));
    }

    [Theory]
    [InlineData("model.tar")] // only .pth.tar is torch.save's
    [InlineData("model.safetensors.index.json")]
    [InlineData("model")]
    public void Other_output_extensions_are_refused(string path)
    {
        var ex = Assert.Throws<CheckpointException>(() => CheckpointFormats.ForOutputPath(path));
        Assert.Equal("has an unknown extension; write to .safetensors, .pth, .pth.tar or .pt.", ex.Problem);
        Assert.Equal(path, ex.FilePath);
    }

    [Theory]
    [InlineData(KeyLayout.Timm, false, "timm")]
    [InlineData(KeyLayout.Timm, true, "timm-fused")]
    [InlineData(KeyLayout.Apple, false, "apple")]
    [InlineData(KeyLayout.Apple, true, "apple-fused")]
    [InlineData(KeyLayout.RepVggOfficial, false, "official")]
    [InlineData(KeyLayout.RepVggOfficial, true, "official-fused")]
    public void Key_schemes_are_named_by_layout_and_fusion(KeyLayout layout, bool fused, string name)
    {
        var scheme = new KeyScheme(layout, fused);
        Assert.Equal(name, scheme.Name);
        Assert.Equal(name, scheme.ToString());
    }
}
