using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using MobileOne.IO;
using MobileOne.IO.PyTorch;
using Pk = MobileOne.Tests.IO.PyTorchCheckpointTests.Pk;

namespace MobileOne.Tests.IO;

/// <summary>
/// The torch.save zip reader on archives built here entry by entry with hand-written pickles: the signature sniffing,
/// which entries make a checkpoint, byte order, the state dict's selection, the view checks at their exact limits,
/// the strided copy-out and the refusals, each checked by its exact message. Written against Stryker's survivors on
/// IO/PyTorch/PyTorchCheckpointReader.cs (docs/reliability.md).
/// </summary>
public sealed class PyTorchReaderEdgeTests
{
    private static CheckpointException Refused(string path) => Assert.Throws<CheckpointException>(() => PyTorchCheckpointReader.Read(path));

    private static string Zip(TempDir dir, string name, params (string Name, byte[] Data)[] entries) => PyTorchCheckpointTests.Zip(dir, name, entries);

    private static byte[] Floats(params float[] values)
    {
        var bytes = new byte[values.Length * 4];
        for (int i = 0; i < values.Length; i++)
        {
            BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * 4), values[i]);
        }

        return bytes;
    }

    private static Pk Long(Pk p, long value) => p.Op(0x8a, 8).Raw(BitConverter.GetBytes(value));

    /// <summary>_rebuild_tensor_v2 with every integer as an 8-byte LONG1, so sizes, strides and offsets can be anything.</summary>
    private static Pk TensorL(Pk p, string type, string key, long numel, long offset, long[] size, long[] stride)
    {
        p.Global("torch._utils", "_rebuild_tensor_v2").Mark()
            .Mark().Str("storage").Global("torch", type).Str(key).Str("cpu");
        Long(p, numel).Tuple().Op((byte)'Q');
        Long(p, offset).Mark();
        foreach (long s in size)
        {
            Long(p, s);
        }

        p.Tuple().Mark();
        foreach (long s in stride)
        {
            Long(p, s);
        }

        return p.Tuple().False().Global("collections", "OrderedDict").EmptyTuple().Reduce().Tuple().Reduce();
    }

    // ------------------------------------------------------------------ what the file is

    [Theory]
    [InlineData(new byte[] { 0x80 }, "is not a PyTorch checkpoint: it is not a zip archive (it starts with bytes 80).")]
    [InlineData(new byte[] { 0x80, 0x06, 0x2e }, "is not a PyTorch checkpoint: it is not a zip archive (it starts with bytes 80062E).")]
    [InlineData(new byte[] { 0x50, 0x4b, 0x03, 0x05, 1, 2, 3, 4, 5, 6 }, "is not a PyTorch checkpoint: it is not a zip archive (it starts with bytes 504B030501020304).")]
    [InlineData(new byte[] { 0x81, 0x02, 0x2e }, "is not a PyTorch checkpoint: it is not a zip archive (it starts with bytes 81022E).")]
    [InlineData(new byte[] { 0x80, 0x05, 0x2e }, "is a bare pickle stream, not a PyTorch zip checkpoint; re-save the object with torch.save (PyTorch 1.6 or later).")]
    [InlineData(new byte[] { 0x80, 0x00, 0x2e }, "is a bare pickle stream, not a PyTorch zip checkpoint; re-save the object with torch.save (PyTorch 1.6 or later).")]
    public void Files_that_are_not_zip_archives_are_told_apart(byte[] head, string problem)
    {
        using var dir = new TempDir();
        string path = dir.File("x.pt");
        File.WriteAllBytes(path, head);
        var ex = Refused(path);
        Assert.Equal(problem, ex.Problem);
        Assert.Equal(path, ex.FilePath);
        Assert.Null(ex.Key);
    }

    [Theory]
    [InlineData(2, true)] // protocol 2: right after PROTO
    [InlineData(12, true)] // protocol 4: after a 9-byte FRAME, and one byte more
    [InlineData(13, false)]
    [InlineData(1, false)] // cannot start at byte 1: byte 1 is the protocol
    public void Legacy_magic_is_looked_for_from_byte_2_to_byte_12(int at, bool legacy)
    {
        using var dir = new TempDir();
        byte[] magic = [0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
        var bytes = new byte[40];
        Array.Fill(bytes, (byte)'N');
        bytes[0] = 0x80;
        bytes[1] = 2;
        magic.CopyTo(bytes, at);
        string path = dir.File("old.pth");
        File.WriteAllBytes(path, bytes);

        string problem = Refused(path).Problem;

        if (legacy)
        {
            Assert.StartsWith("is a legacy (pre-1.6, non-zip) PyTorch checkpoint", problem);
        }
        else
        {
            Assert.DoesNotContain("legacy", problem, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Tar_is_recognised_by_ustar_at_byte_257_only()
    {
        using var dir = new TempDir();
        var tar = new byte[262];
        "ustar"u8.CopyTo(tar.AsSpan(257));
        File.WriteAllBytes(dir.File("a.tar"), tar);
        Assert.StartsWith("is a legacy (pre-1.6, non-zip) PyTorch checkpoint", Refused(dir.File("a.tar")).Problem);

        var shifted = new byte[600];
        "ustar"u8.CopyTo(shifted.AsSpan(256));
        File.WriteAllBytes(dir.File("b.tar"), shifted);
        Assert.Equal("is not a PyTorch checkpoint: it is not a zip archive (it starts with bytes 0000000000000000).", Refused(dir.File("b.tar")).Problem);
    }

    [Fact]
    public void A_zip_with_no_entries_names_none()
    {
        using var dir = new TempDir();
        string path = dir.File("empty.zip");
        using (ZipFile.Open(path, ZipArchiveMode.Create))
        {
        }

        Assert.Equal("PK\x05\x06"u8.ToArray(), File.ReadAllBytes(path)[..4]);
        Assert.Equal(
            "is a zip archive but not a PyTorch checkpoint: it has no '<folder>/data.pkl' entry (entries: none).",
            Refused(path).Problem);
    }

    [Fact]
    public void Only_a_data_pkl_one_folder_deep_is_the_pickle()
    {
        using var dir = new TempDir();
        byte[] pickle = PyTorchCheckpointTests.StateDictPickle(p => p.Str("w").Tensor("FloatStorage", "0", 1, 0, [1], [1]));
        string nested = Zip(dir, "nested.pt", ("data.pkl", pickle), ("a/b/data.pkl", pickle), ("a/xdata.pkl", pickle));
        Assert.Equal(
            "is a zip archive but not a PyTorch checkpoint: it has no '<folder>/data.pkl' entry (entries: data.pkl, a/b/data.pkl, a/xdata.pkl).",
            Refused(nested).Problem);

        // Beside the real one, the others do not count.
        string real = Zip(dir, "real.pt", ("r/data.pkl", pickle), ("r/data/0", Floats(2.5f)), ("r/sub/data.pkl", [0]), ("data.pkl", [0]));
        Assert.Equal([2.5f], PyTorchCheckpointReader.Read(real).Tensors["w"].ToTensor().Data);
    }

    [Fact]
    public void Entry_lists_stop_at_ten_names()
    {
        using var dir = new TempDir();
        var ten = Enumerable.Range(0, 10).Select(i => ($"f{i}", new byte[1])).ToArray();
        Assert.EndsWith("(entries: f0, f1, f2, f3, f4, f5, f6, f7, f8, f9).", Refused(Zip(dir, "ten.zip", ten)).Problem);
        var eleven = Enumerable.Range(0, 11).Select(i => ($"f{i}", new byte[1])).ToArray();
        Assert.EndsWith("(entries: f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, ...).", Refused(Zip(dir, "eleven.zip", eleven)).Problem);
    }

    [Fact]
    public void Either_torchscript_marker_alone_is_a_torchscript_archive()
    {
        using var dir = new TempDir();
        byte[] pickle = PyTorchCheckpointTests.StateDictPickle(_ => { });
        const string Problem = "is a TorchScript archive (torch.jit.save), not a torch.save checkpoint; in Python, load it with torch.jit.load and save its state_dict() with torch.save.";
        Assert.Equal(Problem, Refused(Zip(dir, "c.pt", ("c/data.pkl", pickle), ("c/constants.pkl", [0x80, 2, 0x29, 0x2e]))).Problem);
        Assert.Equal(Problem, Refused(Zip(dir, "d.pt", ("d/data.pkl", pickle), ("d/code/m.py", [0x20]))).Problem);

        // Another folder's constants.pkl and a record named code... without the slash are not markers.
        string plain = Zip(dir, "e.pt", ("e/data.pkl", pickle), ("other/constants.pkl", [0]), ("e/codebook", [0]), ("x/e/code/m.py", [0]));
        Assert.Empty(PyTorchCheckpointReader.Read(plain).Tensors);
    }

    [Fact]
    public void Null_path_is_named_and_two_bytes_are_enough_to_see_a_bare_pickle()
    {
        Assert.Equal("path", Assert.Throws<ArgumentNullException>(() => PyTorchCheckpointReader.Read(null!)).ParamName);

        using var dir = new TempDir();
        File.WriteAllBytes(dir.File("two.pkl"), [0x80, 0x02]);
        Assert.StartsWith("is a bare pickle stream", Refused(dir.File("two.pkl")).Problem);
    }

    // ------------------------------------------------------------------ byte order

    [Fact]
    public void Byte_order_is_little_or_big_after_trimming()
    {
        using var dir = new TempDir();
        byte[] pickle = PyTorchCheckpointTests.StateDictPickle(p => p
            .Str("h").Tensor("HalfStorage", "0", 2, 0, [2], [1])
            .Str("b").Tensor("ByteStorage", "1", 2, 0, [2], [1]));
        byte[] half = [0x3c, 0x00, 0xc0, 0x00]; // big-endian 1.0 and -2.0
        string big = Zip(dir, "big.pt", ("big/data.pkl", pickle), ("big/byteorder", "big\n"u8.ToArray()), ("big/data/0", half), ("big/data/1", [1, 2]));

        var file = PyTorchCheckpointReader.Read(big);

        Assert.Equal([0x00, 0x3c, 0x00, 0xc0], file.Tensors["h"].Data.ToArray());
        Assert.Equal([1, 2], file.Tensors["b"].Data.ToArray()); // one-byte elements are never swapped

        string little = Zip(dir, "little.pt", ("little/data.pkl", pickle), ("little/byteorder", Encoding.ASCII.GetBytes(new string(' ', 58) + "little")), ("little/data/0", half), ("little/data/1", [1, 2]));
        Assert.Equal(half, PyTorchCheckpointReader.Read(little).Tensors["h"].Data.ToArray());
    }

    [Fact]
    public void Other_byte_orders_are_refused()
    {
        using var dir = new TempDir();
        byte[] pickle = PyTorchCheckpointTests.StateDictPickle(_ => { });
        Assert.Equal("has byteorder 'middle'; expected 'little' or 'big'.", Refused(Zip(dir, "m.pt", ("m/data.pkl", pickle), ("m/byteorder", "middle"u8.ToArray()))).Problem);
        Assert.Equal(
            "has a 'n/byteorder' record of 65 bytes, more than the 64 this reader accepts for byteorder.",
            Refused(Zip(dir, "n.pt", ("n/data.pkl", pickle), ("n/byteorder", Encoding.ASCII.GetBytes(new string(' ', 59) + "little")))).Problem);
    }

    // ------------------------------------------------------------------ the state dict

    [Fact]
    public void Keys_must_be_strings_and_other_values_are_skipped()
    {
        using var dir = new TempDir();
        byte[] intKey = PyTorchCheckpointTests.StateDictPickle(p => p.Int(5).Tensor("FloatStorage", "0", 1, 0, [1], [1]));
        Assert.Equal("has a state dict key that is a int (5), not a string.", Refused(Zip(dir, "k.pt", ("k/data.pkl", intKey), ("k/data/0", Floats(1)))).Problem);

        byte[] mixed = PyTorchCheckpointTests.StateDictPickle(p => p
            .Str("n").Int(3)
            .Str("w").Tensor("FloatStorage", "0", 1, 0, [1], [1])
            .Str("s").Str("text"));
        var file = PyTorchCheckpointReader.Read(Zip(dir, "m.pt", ("m/data.pkl", mixed), ("m/data/0", Floats(4))));
        Assert.Equal(["w"], file.Tensors.Keys);
    }

    [Fact]
    public void Empty_dicts_are_empty_state_dicts()
    {
        using var dir = new TempDir();
        byte[] top = new Pk().Proto(2).EmptyDict().Stop().ToArray();
        Assert.Empty(PyTorchCheckpointReader.Read(Zip(dir, "a.pt", ("a/data.pkl", top))).Tensors);

        // An empty 'state_dict' is taken as it is, whatever else the checkpoint holds.
        byte[] wrapped = PyTorchCheckpointTests.StateDictPickle(p => p
            .Str("state_dict").EmptyDict()
            .Str("w").Tensor("FloatStorage", "0", 1, 0, [1], [1]));
        Assert.Empty(PyTorchCheckpointReader.Read(Zip(dir, "b.pt", ("b/data.pkl", wrapped), ("b/data/0", Floats(1)))).Tensors);
    }

    [Fact]
    public void A_wrapper_key_that_is_not_a_dict_is_passed_over()
    {
        using var dir = new TempDir();
        byte[] pickle = PyTorchCheckpointTests.StateDictPickle(p => p
            .Str("state_dict").Int(1)
            .Str("model").Mark().Tuple()
            .Str("w").Tensor("FloatStorage", "0", 1, 0, [1], [1]));
        var file = PyTorchCheckpointReader.Read(Zip(dir, "p.pt", ("p/data.pkl", pickle), ("p/data/0", Floats(6))));
        Assert.Equal([6f], file.Tensors["w"].ToTensor().Data);
    }

    [Fact]
    public void Entries_without_tensors_name_their_keys()
    {
        using var dir = new TempDir();
        byte[] model = PyTorchCheckpointTests.StateDictPickle(p => p
            .Str("model").EmptyDict().Int(3).Int(4).SetItem().Str("a").Int(5).SetItem()
            .Str("epoch").Int(1));
        Assert.Equal("has a 'model' entry that holds no tensors (its keys: 3, a).", Refused(Zip(dir, "m.pt", ("m/data.pkl", model))).Problem);

        byte[] top = PyTorchCheckpointTests.StateDictPickle(p => p.Str("epoch").Int(1).Str("lr").Int(2));
        Assert.Equal(
            "holds no tensors at the top level and no dict under 'state_dict', 'model', 'state_dict_ema' (top-level keys: epoch, lr).",
            Refused(Zip(dir, "t.pt", ("t/data.pkl", top))).Problem);

        byte[] list = new Pk().Proto(2).Op((byte)']').Stop().ToArray();
        Assert.Equal("holds a list at the top level, not a state dict (a dict of name to tensor).", Refused(Zip(dir, "l.pt", ("l/data.pkl", list))).Problem);
    }

    [Fact]
    public void A_state_dict_needs_one_tensor_not_only_tensors_and_None_keys_are_named()
    {
        using var dir = new TempDir();
        byte[] mixed = PyTorchCheckpointTests.StateDictPickle(p => p
            .Str("state_dict").EmptyDict().Mark()
                .Str("step").Int(9)
                .Str("w").Tensor("FloatStorage", "0", 1, 0, [1], [1])
            .SetItems());
        Assert.Equal(["w"], PyTorchCheckpointReader.Read(Zip(dir, "m.pt", ("m/data.pkl", mixed), ("m/data/0", Floats(3)))).Tensors.Keys);

        byte[] noneTop = PyTorchCheckpointTests.StateDictPickle(p => p.Op((byte)'N').Int(1).Str("a").Int(2));
        Assert.Equal(
            "holds no tensors at the top level and no dict under 'state_dict', 'model', 'state_dict_ema' (top-level keys: None, a).",
            Refused(Zip(dir, "n.pt", ("n/data.pkl", noneTop))).Problem);

        byte[] noneModel = PyTorchCheckpointTests.StateDictPickle(p => p.Str("model").EmptyDict().Op((byte)'N').Int(1).SetItem());
        Assert.Equal("has a 'model' entry that holds no tensors (its keys: None).", Refused(Zip(dir, "o.pt", ("o/data.pkl", noneModel))).Problem);
    }

    [Fact]
    public void Unpickling_errors_keep_their_message_and_name_the_file()
    {
        using var dir = new TempDir();
        string path = Zip(dir, "u.pt", ("u/data.pkl", [0x80, 2, 0xff]));
        var ex = Refused(path);
        Assert.Equal("data.pkl at byte 2: has an unsupported or invalid opcode 0xff.", ex.Problem);
        Assert.IsType<UnpicklingException>(ex.InnerException);
        Assert.Equal($"{path}: data.pkl at byte 2: has an unsupported or invalid opcode 0xff.", ex.Message);
    }

    // ------------------------------------------------------------------ views

    [Fact]
    public void A_permuted_three_dimensional_view_is_gathered_in_row_major_order()
    {
        using var dir = new TempDir();
        // Storage holds 0..23; element (i, j, k) of size [2, 3, 4], stride [1, 8, 2] is storage[i + 8j + 2k].
        byte[] pickle = PyTorchCheckpointTests.StateDictPickle(p => p.Str("v").Tensor("FloatStorage", "0", 24, 0, [2, 3, 4], [1, 8, 2]));
        string path = Zip(dir, "v.pt", ("v/data.pkl", pickle), ("v/data/0", Floats([.. Enumerable.Range(0, 24).Select(i => (float)i)])));

        var v = PyTorchCheckpointReader.Read(path).Tensors["v"];

        Assert.Equal([2, 3, 4], v.Shape);
        Assert.Equal(
            [0f, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23],
            v.ToTensor().Data);
    }

    [Fact]
    public void Views_with_unit_dimensions_and_offsets_read_the_right_elements()
    {
        using var dir = new TempDir();
        byte[] pickle = PyTorchCheckpointTests.StateDictPickle(p => p
            .Str("col").Tensor("FloatStorage", "0", 6, 1, [3, 1], [2, 5]) // 1, 3, 5 (a size-1 dimension's stride is free)
            .Str("row").Tensor("FloatStorage", "0", 6, 3, [1, 3], [9, 1]) // 3, 4, 5: contiguous from offset 3
            .Str("mid").Tensor("FloatStorage", "0", 6, 2, [2, 1], [1, 1])); // 2, 3
        string path = Zip(dir, "u.pt", ("u/data.pkl", pickle), ("u/data/0", Floats(0, 1, 2, 3, 4, 5)));

        var file = PyTorchCheckpointReader.Read(path);

        Assert.Equal([1f, 3, 5], file.Tensors["col"].ToTensor().Data);
        Assert.Equal([3f, 4, 5], file.Tensors["row"].ToTensor().Data);
        Assert.Equal([2f, 3], file.Tensors["mid"].ToTensor().Data);
    }

    [Fact]
    public void An_empty_view_is_not_checked_against_its_storage()
    {
        using var dir = new TempDir();
        byte[] pickle = new Pk().Proto(2).EmptyDict().Mark().Str("e").Apply(p => TensorL(p, "FloatStorage", "0", 0, -5, [0, 3], [-1, 1])).SetItems().Stop().ToArray();
        var e = PyTorchCheckpointReader.Read(Zip(dir, "e.pt", ("e/data.pkl", pickle))).Tensors["e"];
        Assert.Equal([0, 3], e.Shape);
        Assert.Empty(e.Data);
    }

    [Theory]
    [InlineData(new long[] { 2, -1 }, new long[] { 1, 1 }, 0L, "has dimension 1 of size -1, which is out of range.")]
    [InlineData(new long[] { 2147483648L }, new long[] { 1 }, 0L, "has dimension 0 of size 2147483648, which is out of range.")]
    [InlineData(new long[] { 2147483647L }, new long[] { 1 }, 0L, "holds 8589934588 bytes, more than one array can hold.")]
    [InlineData(new long[] { 2147483647L, 2147483647L, 2147483647L }, new long[] { 1, 1, 1 }, 0L, "has a size [2147483647, 2147483647, 2147483647] or stride [1, 1, 1] too large to address.")]
    [InlineData(new long[] { 2 }, new long[] { 1 }, -1L, "has a negative storage offset -1.")]
    [InlineData(new long[] { 2, 2 }, new long[] { 1, -1 }, 0L, "has a negative stride -1 in dimension 1.")]
    [InlineData(new long[] { 3 }, new long[] { 4611686018427387904L }, 0L, "has a size [3] or stride [4611686018427387904] too large to address.")]
    [InlineData(new long[] { 2, 2 }, new long[] { 2, 1 }, 1L, "is a view (offset 1, size [2, 2], stride [2, 1]) that reaches element 4, but its storage '0' holds only 4 elements.")]
    public void Views_outside_what_can_be_addressed_are_refused(long[] size, long[] stride, long offset, string problem)
    {
        using var dir = new TempDir();
        byte[] pickle = new Pk().Proto(2).EmptyDict().Mark().Str("w").Apply(p => TensorL(p, "FloatStorage", "0", 4, offset, size, stride)).SetItems().Stop().ToArray();
        var ex = Refused(Zip(dir, "w.pt", ("w/data.pkl", pickle), ("w/data/0", new byte[16])));
        Assert.Equal(problem, ex.Problem);
        Assert.Equal("w", ex.Key);
    }

    [Theory]
    [InlineData(new long[] { 65536, 65536, 65536, 65536 }, new long[] { 0, 0, 0, 0 }, 4L, "FloatStorage", "has a size [65536, 65536, 65536, 65536] or stride [0, 0, 0, 0] too large to address.")] // 2^64 elements: would wrap to 0
    [InlineData(new long[] { 1073741824, 1073741824, 4 }, new long[] { 0, 0, 0 }, 4L, "FloatStorage", "has a size [1073741824, 1073741824, 4] or stride [0, 0, 0] too large to address.")] // 2^62 elements, 2^64 bytes
    [InlineData(new long[] { 1 }, new long[] { 1 }, 5764607523034234880L, "FloatStorage", "has a size [1] or stride [1] too large to address.")] // a storage of 2^62 + 2^60 floats: more than 2^64 bytes
    [InlineData(new long[] { 1 }, new long[] { 1 }, 4611686018427387904L, "FloatStorage", "has a size [1] or stride [1] too large to address.")] // 2^62 floats: 4 x 2^62 wrapped to 0 in the view bound
    [InlineData(new long[] { 1 }, new long[] { 1 }, 288230376151711744L, "DoubleStorage", "has a size [1] or stride [1] too large to address.")] // 2^58 doubles = 2^61 bytes: 4 x that wrapped in the total bound
    [InlineData(new long[] { 2147483591 }, new long[] { 0 }, 1L, "ByteStorage", "is a view of 2147483591 elements (size [2147483591], stride [0]) over storage '0' of only 1; a view may read at most 4 elements per stored element (it is copied out), so the file is refused.")] // exactly Array.MaxLength bytes: not refused as too large
    public void Sizes_whose_products_overflow_are_refused_before_they_wrap(long[] size, long[] stride, long numel, string type, string problem)
    {
        Assert.Equal(2147483591, Array.MaxLength);
        using var dir = new TempDir();
        byte[] pickle = new Pk().Proto(2).EmptyDict().Mark().Str("w").Apply(p => TensorL(p, type, "0", numel, 0, size, stride)).SetItems().Stop().ToArray();
        var ex = Refused(Zip(dir, "w.pt", ("w/data.pkl", pickle), ("w/data/0", new byte[4])));
        Assert.Equal("w", ex.Key);
        Assert.Equal(problem, ex.Problem);
    }

    [Fact]
    public void A_view_may_copy_out_four_times_its_storage_and_no_more()
    {
        using var dir = new TempDir();
        byte[] four = PyTorchCheckpointTests.StateDictPickle(p => p.Str("x").Tensor("FloatStorage", "0", 1, 0, [4], [0]));
        Assert.Equal([7f, 7, 7, 7], PyTorchCheckpointReader.Read(Zip(dir, "a.pt", ("a/data.pkl", four), ("a/data/0", Floats(7)))).Tensors["x"].ToTensor().Data);

        byte[] five = PyTorchCheckpointTests.StateDictPickle(p => p.Str("x").Tensor("FloatStorage", "0", 1, 0, [5], [0]));
        Assert.Equal(
            "is a view of 5 elements (size [5], stride [0]) over storage '0' of only 1; a view may read at most 4 elements per stored element (it is copied out), so the file is refused.",
            Refused(Zip(dir, "b.pt", ("b/data.pkl", five), ("b/data/0", Floats(7)))).Problem);
    }

    [Fact]
    public void The_total_copied_out_counts_each_storage_once()
    {
        using var dir = new TempDir();
        // a, b: one float from each of two storages (8 stored bytes). c: 4 from storage 0, d: 2 from storage 1, so
        // 4 + 4 + 16 + 8 = 32 bytes = 4 x 8: accepted. e: one float more, 36 > 32: refused.
        byte[] pickle = PyTorchCheckpointTests.StateDictPickle(p => p
            .Str("a").Tensor("FloatStorage", "0", 1, 0, [1], [1])
            .Str("b").Tensor("FloatStorage", "1", 1, 0, [1], [1])
            .Str("c").Tensor("FloatStorage", "0", 1, 0, [4], [0])
            .Str("d").Tensor("FloatStorage", "1", 1, 0, [2], [0])
            .Str("e").Tensor("FloatStorage", "0", 1, 0, [1], [1]));
        var ex = Refused(Zip(dir, "t.pt", ("t/data.pkl", pickle), ("t/data/0", Floats(1)), ("t/data/1", Floats(2))));
        Assert.Equal("e", ex.Key);
        Assert.Equal(
            "would bring the tensors read so far to 36 bytes from only 8 bytes of storage records; views may copy out at most 4 times what the file stores, so the file is refused.",
            ex.Problem);

        byte[] fewer = PyTorchCheckpointTests.StateDictPickle(p => p
            .Str("a").Tensor("FloatStorage", "0", 1, 0, [1], [1])
            .Str("b").Tensor("FloatStorage", "1", 1, 0, [1], [1])
            .Str("c").Tensor("FloatStorage", "0", 1, 0, [4], [0])
            .Str("d").Tensor("FloatStorage", "1", 1, 0, [2], [0]));
        var file = PyTorchCheckpointReader.Read(Zip(dir, "f.pt", ("f/data.pkl", fewer), ("f/data/0", Floats(1)), ("f/data/1", Floats(2))));
        Assert.Equal([1f, 1, 1, 1], file.Tensors["c"].ToTensor().Data);
        Assert.Equal([2f, 2], file.Tensors["d"].ToTensor().Data);
    }

    // ------------------------------------------------------------------ records

    [Fact]
    public void Small_records_may_deflate_any_amount_larger_ones_at_most_a_hundredfold()
    {
        using var dir = new TempDir();
        // 16384 floats = 64 KiB of zeros deflate to a few hundred bytes, but are exempt; 16385 are not.
        foreach (int floats in new[] { 16384, 16385 })
        {
            byte[] pickle = PyTorchCheckpointTests.StateDictPickle(p => p.Str("z").Tensor("FloatStorage", "0", floats, 0, [floats], [1]));
            string path = dir.File($"z{floats}.pt");
            using (var zip = ZipFile.Open(path, ZipArchiveMode.Create))
            {
                using (var s = zip.CreateEntry($"z{floats}/data.pkl", CompressionLevel.NoCompression).Open())
                {
                    s.Write(pickle);
                }

                using (var s = zip.CreateEntry($"z{floats}/data/0", CompressionLevel.SmallestSize).Open())
                {
                    s.Write(new byte[floats * 4]);
                }
            }

            if (floats == 16384)
            {
                Assert.Equal(new float[floats], PyTorchCheckpointReader.Read(path).Tensors["z"].ToTensor().Data);
            }
            else
            {
                var ex = Refused(path);
                Assert.Equal("z", ex.Key);
                Assert.StartsWith($"record 'z{floats}/data/0' declares 65540 bytes compressed into ", ex.Problem);
                Assert.EndsWith(", a ratio above the 100:1 this reader accepts (torch.save stores records uncompressed); refused before inflating it.", ex.Problem);
            }
        }
    }

    [Fact]
    public void A_corrupt_pickle_fails_its_crc()
    {
        using var dir = new TempDir();
        byte[] pickle = PyTorchCheckpointTests.StateDictPickle(p => p.Str("weight_name").Tensor("FloatStorage", "0", 1, 0, [1], [1]));
        string path = Zip(dir, "c.pt", ("c/data.pkl", pickle), ("c/data/0", Floats(1)));
        byte[] bytes = File.ReadAllBytes(path);
        int at = bytes.AsSpan().IndexOf("weight_name"u8);
        bytes[at] = (byte)'W';
        File.WriteAllBytes(path, bytes);

        var ex = Refused(path);

        Assert.Null(ex.Key);
        Assert.StartsWith("record 'c/data.pkl' fails its CRC-32 check (stored ", ex.Problem);
        Assert.EndsWith("); the file is corrupt.", ex.Problem);
    }

    [Fact]
    public void Records_whose_local_header_is_corrupt_are_reported_by_name()
    {
        using var dir = new TempDir();
        byte[] pickle = PyTorchCheckpointTests.StateDictPickle(p => p.Str("w").Tensor("FloatStorage", "0", 1, 0, [1], [1]));

        // The corrupted record comes second: a file whose first bytes are not a zip signature is not opened at all.
        string first = Zip(dir, "p.pt", ("p/data/0", Floats(1)), ("p/data.pkl", pickle));
        var ex = Refused(CorruptSecondLocalHeader(first));
        Assert.Null(ex.Key);
        Assert.StartsWith("could not read 'p/data.pkl' (truncated or corrupt): ", ex.Problem); // then the runtime's own words
        Assert.IsType<InvalidDataException>(ex.InnerException);

        string second = Zip(dir, "s.pt", ("s/data.pkl", pickle), ("s/data/0", Floats(1)));
        ex = Refused(CorruptSecondLocalHeader(second));
        Assert.Equal("w", ex.Key);
        Assert.StartsWith("could not read storage record 's/data/0' (truncated or corrupt): ", ex.Problem);
        Assert.IsType<InvalidDataException>(ex.InnerException);
    }

    private static string CorruptSecondLocalHeader(string path)
    {
        byte[] bytes = File.ReadAllBytes(path);
        int second = bytes.AsSpan(4).IndexOf("PK\x03\x04"u8) + 4;
        Assert.True(second > 4);
        bytes[second] = 0; // the central directory still points at it
        File.WriteAllBytes(path, bytes);
        return path;
    }

    [Fact]
    public void Two_tensors_of_one_storage_read_the_record_once_and_alike()
    {
        using var dir = new TempDir();
        byte[] pickle = PyTorchCheckpointTests.StateDictPickle(p => p
            .Str("a").Tensor("FloatStorage", "0", 3, 0, [3], [1])
            .Str("b").Tensor("FloatStorage", "0", 3, 1, [2], [1]));
        var file = PyTorchCheckpointReader.Read(Zip(dir, "s.pt", ("s/data.pkl", pickle), ("s/data/0", Floats(1, 2, 3))));
        Assert.Equal([1f, 2, 3], file.Tensors["a"].ToTensor().Data);
        Assert.Equal([2f, 3], file.Tensors["b"].ToTensor().Data);
    }
}

internal static class PkExtensions
{
    public static Pk Apply(this Pk p, Func<Pk, Pk> build) => build(p);
}
