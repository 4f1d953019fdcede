using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using MobileOne.IO;
using MobileOne.IO.Safetensors;
using MobileOne.Tensors;

namespace MobileOne.Tests.IO;

public partial class SafetensorsTests
{
    private const string Timm = "mobileone_s0_timm.safetensors";
    private const string TimmFused = "mobileone_s0_timm_fused.safetensors";
    private const string Reference = "mobileone_s0_reference.safetensors";

    private static readonly string[] FixtureNames =
    [
        Timm,
        TimmFused,
        Reference,
        "mobileone_blocks_train.safetensors",
        "mobileone_tiny_trainstep.safetensors",
    ];

    public static TheoryData<string> AllSafetensorsFixtures => new(FixtureNames);

    // ---- reading the fixtures -------------------------------------------------------------------

    [Fact]
    public void Read_TimmCheckpoint_HasTheExpectedTensorsInFileOrder()
    {
        TensorFile file = SafetensorsReader.Read(Fixtures.Path(Timm));

        // 1323 tensors plus the __metadata__ entry: 1324 header keys.
        Assert.Equal(1323, file.Tensors.Count);
        Assert.Equal(1097, file.Tensors.Values.Count(t => t.DType == DType.F16));
        Assert.Equal(226, file.Tensors.Values.Count(t => t.DType == DType.I64));

        StoredTensor stem = file.Tensors["stem.conv_kxk.0.conv.weight"];
        Assert.Equal(DType.F16, stem.DType);
        Assert.Equal([48, 3, 3, 3], stem.Shape);
        Assert.Equal(48 * 3 * 3 * 3 * 2, stem.Data.Length);

        StoredTensor tracked = file.Tensors["stem.conv_kxk.0.bn.num_batches_tracked"];
        Assert.Equal(DType.I64, tracked.DType);
        Assert.Empty(tracked.Shape);
        Assert.Single(tracked.ToInt64());

        Assert.Equal("pt", file.Metadata["format"]);
        Assert.Equal("timm", file.Metadata["producer"]);

        // File order is data-offset order: the library put the 8-byte I64 tensors first.
        Assert.Equal("stages.0.0.conv_kxk.0.bn.num_batches_tracked", file.Tensors.GetAt(0).Key);
        Assert.Equal("stem.conv_scale.conv.weight", file.Tensors.GetAt(file.Tensors.Count - 1).Key);
    }

    [Fact]
    public void Read_TimmCheckpoint_DecodesF16Weights()
    {
        TensorFile file = SafetensorsReader.Read(Fixtures.Path(Timm));
        Tensor stem = file.Tensors["stem.conv_kxk.0.conv.weight"].ToTensor();

        // The file's first two halves are 0xAAC6 and 0xA8D2 (checked with Python's struct '<e').
        Assert.Equal(-0.05291748046875f, stem.Data[0]);
        Assert.Equal(-0.03765869140625f, stem.Data[1]);
        Assert.All(stem.Data, v => Assert.True(float.IsFinite(v)));
    }

    [Fact]
    public void Read_ReferenceFile_HasInputsLogitsAndMetadata()
    {
        TensorFile file = SafetensorsReader.Read(Fixtures.Path(Reference));

        Assert.Equal(18, file.Tensors.Count);
        Assert.All(file.Tensors.Values, t => Assert.Equal(DType.F32, t.DType));
        Assert.Equal([2, 3, 224, 224], file.Tensors["input_224"].Shape);
        Assert.Equal([2, 1000], file.Tensors["timm.logits_unfused_224"].Shape);
        Assert.Equal([2, 1024, 2, 2], file.Tensors["timm.feature_64.stages.3"].Shape);
        Assert.Equal("apple.feature_64.stage0", file.Tensors.GetAt(0).Key);

        Assert.Equal("1.0.29", file.Metadata["timm_version"]);
        using var fused = JsonDocument.Parse(file.Metadata["timm.fused_keys"]);
        Assert.Equal(4, fused.RootElement.GetProperty("stem.reparam_conv.weight").GetArrayLength());

        float[] logits = file.Tensors["timm.logits_unfused_224"].ToTensor().Data;
        Assert.All(logits, v => Assert.True(float.IsFinite(v)));
    }

    [Fact]
    public void Read_ReturnsTensorsByDataOffsetEvenWhenTheHeaderListsThemOtherwise()
    {
        using var dir = new TempDir();
        string path = WriteRaw(
            dir,
            "{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}," +
            "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
            BitConverter.GetBytes(1f).Concat(BitConverter.GetBytes(2f)).ToArray());

        TensorFile file = SafetensorsReader.Read(path);

        Assert.Equal(["a", "b"], file.Tensors.Keys);
        Assert.Equal(1f, file.Tensors["a"].ToTensor().Data[0]);
        Assert.Equal(2f, file.Tensors["b"].ToTensor().Data[0]);
    }

    [Fact]
    public void LooksLikeSafetensors_AcceptsFixturesAndRejectsOtherBytes()
    {
        foreach (string name in FixtureNames)
        {
            Assert.True(SafetensorsReader.LooksLikeSafetensors(FirstBytes(Fixtures.Path(name), 16)), name);
        }

        // A PyTorch zip checkpoint starts with "PK\x03\x04".
        Assert.False(SafetensorsReader.LooksLikeSafetensors(FirstBytes(Fixtures.Path("mobileone_s0_apple_unfused.pth.tar"), 16)));
        Assert.False(SafetensorsReader.LooksLikeSafetensors([]));
        Assert.False(SafetensorsReader.LooksLikeSafetensors([8, 0, 0, 0, 0, 0, 0, 0]));
        Assert.False(SafetensorsReader.LooksLikeSafetensors(Prefixed(ulong.MaxValue, "{\"a\":")));
        Assert.False(SafetensorsReader.LooksLikeSafetensors(Prefixed(16, "[1,2,3]")));
        Assert.True(SafetensorsReader.LooksLikeSafetensors(Prefixed(8, "{}      ")));

        static byte[] Prefixed(ulong n, string text)
        {
            var b = new byte[8 + text.Length];
            BinaryPrimitives.WriteUInt64LittleEndian(b, n);
            Encoding.ASCII.GetBytes(text, b.AsSpan(8));
            return b;
        }
    }

    // ---- round trips ----------------------------------------------------------------------------

    [Theory]
    [MemberData(nameof(AllSafetensorsFixtures))]
    public void RoundTrip_Fixture_ReproducesTheFileByteForByte(string name)
    {
        // Every fixture was written by the safetensors library with its header keys in data-offset order,
        // __metadata__ first, compact serde_json spelling and space padding; the reader returns tensors in
        // offset order and the writer lays them out in that order, so the bytes come back identical.
        using var dir = new TempDir();
        string original = Fixtures.Path(name);
        TensorFile file = SafetensorsReader.Read(original);
        string copy = dir.File(name);

        SafetensorsWriter.Write(copy, file);

        Assert.Equal(File.ReadAllBytes(original), File.ReadAllBytes(copy));
        AssertSameContent(file, SafetensorsReader.Read(copy));
    }

    [Fact]
    public void RoundTrip_Sharded_SplitsByShardSizeAndReadsBackTheSameContent()
    {
        using var dir = new TempDir();
        TensorFile file = SafetensorsReader.Read(Fixtures.Path(TimmFused));
        string index = dir.File("model.safetensors.index.json");

        SafetensorsWriter.WriteSharded(index, file, maxShardBytes: 1_000_000);

        string[] shards = Directory.GetFiles(dir.Path, "model-*.safetensors").Select(f => Path.GetFileName(f)).Order(StringComparer.Ordinal).ToArray();
        int n = shards.Length;
        Assert.True(n > 3, $"expected several shards, got {n}");
        Assert.Equal(Enumerable.Range(1, n).Select(i => $"model-{i:D5}-of-{n:D5}.safetensors"), shards);
        Assert.Equal(n + 1, Directory.GetFiles(dir.Path).Length);

        long total = file.Tensors.Values.Sum(t => (long)t.Data.Length);
        foreach (string shard in shards)
        {
            TensorFile part = SafetensorsReader.Read(dir.File(shard));
            long bytes = part.Tensors.Values.Sum(t => (long)t.Data.Length);
            Assert.True(bytes <= 1_000_000 || part.Tensors.Count == 1, $"{shard} holds {bytes} bytes in {part.Tensors.Count} tensors");
            Assert.Equal("pt", part.Metadata["format"]);
        }

        using (var doc = JsonDocument.Parse(File.ReadAllBytes(index)))
        {
            Assert.Equal(total, doc.RootElement.GetProperty("metadata").GetProperty("total_size").GetInt64());
            JsonElement map = doc.RootElement.GetProperty("weight_map");
            Assert.Equal(file.Tensors.Count, map.EnumerateObject().Count());
            string[] keys = map.EnumerateObject().Select(p => p.Name).ToArray();
            Assert.Equal(keys.Order(StringComparer.Ordinal), keys);

            // head.fc.weight (4 MB) is over the limit, so it has a shard to itself.
            string own = map.GetProperty("head.fc.weight").GetString()!;
            Assert.Single(map.EnumerateObject(), p => p.Value.GetString() == own);
        }

        AssertSameContent(file, SafetensorsReader.Read(index));
    }

    [Fact]
    public void RoundTrip_Sharded_OneShardWhenEverythingFits()
    {
        using var dir = new TempDir();
        TensorFile file = SmallFile();
        string index = dir.File("tiny.safetensors.index.json");

        SafetensorsWriter.WriteSharded(index, file, maxShardBytes: long.MaxValue);

        Assert.True(File.Exists(dir.File("tiny-00001-of-00001.safetensors")));
        AssertSameContent(file, SafetensorsReader.Read(index));
    }

    [Fact]
    public void RoundTrip_ZeroDimensionalTensors_HaveAnEmptyShape()
    {
        using var dir = new TempDir();
        var file = new TensorFile();
        file.Tensors.Add("count", StoredTensor.FromInt64(42));
        file.Tensors.Add("scale", StoredTensor.FromTensor(new Tensor([], [2.5f])));
        string path = dir.File("scalars.safetensors");

        SafetensorsWriter.Write(path, file);

        string header = HeaderText(path);
        Assert.Contains("\"count\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[0,8]}", header);
        Assert.Contains("\"scale\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[8,12]}", header);
        TensorFile back = SafetensorsReader.Read(path);
        AssertSameContent(file, back);
        Assert.Equal([42L], back.Tensors["count"].ToInt64());
        Assert.Equal(2.5f, back.Tensors["scale"].ToTensor().Data[0]);
    }

    [Fact]
    public void RoundTrip_EveryDType()
    {
        using var dir = new TempDir();
        var file = new TensorFile();
        var random = new Random(7);
        foreach (DType dtype in Enum.GetValues<DType>())
        {
            var bytes = new byte[2 * 3 * DTypeInfo.SizeOf(dtype)];
            random.NextBytes(bytes);
            if (dtype == DType.Bool)
            {
                for (int i = 0; i < bytes.Length; i++)
                {
                    bytes[i] &= 1;
                }
            }

            file.Tensors.Add($"t.{dtype}", new StoredTensor(dtype, [2, 3], bytes));
            file.Tensors.Add($"empty.{dtype}", new StoredTensor(dtype, [0, 4], []));
        }

        string path = dir.File("dtypes.safetensors");
        SafetensorsWriter.Write(path, file);

        string header = HeaderText(path);
        foreach (DType dtype in Enum.GetValues<DType>())
        {
            Assert.Contains($"\"t.{dtype}\":{{\"dtype\":\"{DTypeInfo.ToSafetensorsName(dtype)}\",\"shape\":[2,3]", header);
        }

        AssertSameContent(file, SafetensorsReader.Read(path));
    }

    [Fact]
    public void Write_LaysOutTheHeaderAsTheSafetensorsLibraryDoes()
    {
        using var dir = new TempDir();
        var file = new TensorFile();
        file.Metadata.Add("format", "pt");
        file.Tensors.Add("w", new StoredTensor(DType.F32, [2], new byte[8]));
        file.Tensors.Add("b", new StoredTensor(DType.F16, [3], new byte[6]));
        string path = dir.File("layout.safetensors");

        SafetensorsWriter.Write(path, file);

        byte[] bytes = File.ReadAllBytes(path);
        string json = "{\"__metadata__\":{\"format\":\"pt\"}," +
            "\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}," +
            "\"b\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[8,14]}}";
        int n = (json.Length + 7) / 8 * 8;
        Assert.Equal((ulong)n, BinaryPrimitives.ReadUInt64LittleEndian(bytes));
        Assert.Equal(json + new string(' ', n - json.Length), Encoding.UTF8.GetString(bytes, 8, n));
        Assert.Equal(8 + n + 14, bytes.Length);
        Assert.Equal(0, (8 + n) % 8);
    }

    [Fact]
    public void Write_WithoutMetadata_OmitsTheMetadataBlock()
    {
        using var dir = new TempDir();
        string path = dir.File("plain.safetensors");
        var file = new TensorFile();
        file.Tensors.Add("x", new StoredTensor(DType.U8, [1], [7]));

        SafetensorsWriter.Write(path, file);

        Assert.Equal("{\"x\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", HeaderText(path).TrimEnd(' '));
        Assert.Empty(SafetensorsReader.Read(path).Metadata);
    }

    [Fact]
    public void Write_EscapesNamesAndMetadataLikeSerdeJson()
    {
        using var dir = new TempDir();
        string path = dir.File("escapes.safetensors");
        var file = new TensorFile();
        file.Metadata.Add("note", "quote \" backslash \\ newline \n tab \t bell \u0007 é ✓ <&+>");
        file.Tensors.Add("layer\"1\".weight/é", new StoredTensor(DType.U8, [1], [1]));

        SafetensorsWriter.Write(path, file);

        string header = HeaderText(path);
        Assert.Contains("\"note\":\"quote \\\" backslash \\\\ newline \\n tab \\t bell \\u0007 é ✓ <&+>\"", header);
        Assert.Contains("\"layer\\\"1\\\".weight/é\":{", header);
        AssertSameContent(file, SafetensorsReader.Read(path));
    }

    [Fact]
    public void ToTensor_ConvertsF16AndBF16ReadFromAFile()
    {
        using var dir = new TempDir();
        ushort[] halfBits = [0x3C00, 0xC000, 0x7BFF, 0x0001, 0x3555, 0x7C00, 0x8000];
        float[] halfValues = [1f, -2f, 65504f, 5.9604645e-8f, 0.333251953125f, float.PositiveInfinity, -0f];
        ushort[] bf16Bits = [0x3F80, 0x4049, 0xC2F7, 0x7F80, 0x0000, 0xBF00];
        float[] bf16Values = [1f, 3.140625f, -123.5f, float.PositiveInfinity, 0f, -0.5f];
        var file = new TensorFile();
        file.Tensors.Add("half", new StoredTensor(DType.F16, [halfBits.Length], Bits(halfBits)));
        file.Tensors.Add("bf16", new StoredTensor(DType.BF16, [bf16Bits.Length], Bits(bf16Bits)));
        string path = dir.File("halves.safetensors");
        SafetensorsWriter.Write(path, file);

        TensorFile back = SafetensorsReader.Read(path);

        Assert.Equal(halfValues, back.Tensors["half"].ToTensor().Data);
        Assert.Equal(bf16Values, back.Tensors["bf16"].ToTensor().Data);
        Assert.True(float.IsNegative(back.Tensors["half"].ToTensor().Data[6]));

        static byte[] Bits(ushort[] values)
        {
            var b = new byte[values.Length * 2];
            for (int i = 0; i < values.Length; i++)
            {
                BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(i * 2), values[i]);
            }

            return b;
        }
    }

    // ---- malformed files ------------------------------------------------------------------------

    [Fact]
    public void Read_EmptyFile_SaysItIsEmpty()
    {
        using var dir = new TempDir();
        string path = dir.File("empty.safetensors");
        File.WriteAllBytes(path, []);

        var e = ReadFails(path);

        Assert.Contains("empty (0 bytes)", e.Message);
    }

    [Fact]
    public void Read_FileShorterThanTheLengthPrefix_SaysItIsTruncated()
    {
        using var dir = new TempDir();
        string path = dir.File("short.safetensors");
        File.WriteAllBytes(path, [1, 2, 3, 4, 5]);

        var e = ReadFails(path);

        Assert.Contains("truncated", e.Message);
        Assert.Contains("5 bytes", e.Message);
        Assert.Contains("8-byte header length", e.Message);
    }

    [Fact]
    public void Read_HeaderLengthBeyondTheFile_GivesBothSizes()
    {
        using var dir = new TempDir();
        string path = dir.File("long-header.safetensors");
        var bytes = new byte[8 + 10];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, 1000);
        File.WriteAllBytes(path, bytes);

        var e = ReadFails(path);

        Assert.Contains("header length field says 1000 bytes", e.Message);
        Assert.Contains("only 10 bytes follow", e.Message);
    }

    [Fact]
    public void Read_HeaderLengthOverTheFormatLimit_IsRejected()
    {
        using var dir = new TempDir();
        string path = dir.File("huge-header.safetensors");
        using (var fs = File.Create(path))
        {
            var prefix = new byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(prefix, 100_000_001);
            fs.Write(prefix);
            fs.SetLength(8 + 100_000_001);
        }

        var e = ReadFails(path);

        Assert.Contains("exceeds the safetensors limit of 100000000 bytes", e.Message);
    }

    [Fact]
    public void Read_HeaderNotUtf8_SaysSoAndWhere()
    {
        using var dir = new TempDir();
        byte[] header = Encoding.UTF8.GetBytes("{\"a\":1}");
        header[2] = 0xFF;
        string path = WriteRawHeader(dir, header, []);

        var e = ReadFails(path);

        Assert.Contains("not valid UTF-8", e.Message);
        Assert.Contains("offset 2", e.Message);
    }

    [Fact]
    public void Read_HeaderNotJson_SaysSo()
    {
        using var dir = new TempDir();
        string path = WriteRaw(dir, "{\"a\": {\"dtype\": \"F32\",", []);

        var e = ReadFails(path);

        Assert.Contains("header is not valid JSON", e.Message);
    }

    [Theory]
    [InlineData("[1,2,3]", "an array")]
    [InlineData("\"text\"", "a string")]
    [InlineData("42", "a number")]
    public void Read_HeaderNotAnObject_NamesWhatItIs(string json, string kind)
    {
        using var dir = new TempDir();
        string path = WriteRaw(dir, json, []);

        var e = ReadFails(path);

        Assert.Contains($"the header is {kind}, expected a JSON object", e.Message);
    }

    [Fact]
    public void Read_EntryNotAnObject_NamesTheKey()
    {
        using var dir = new TempDir();
        string path = WriteRaw(dir, "{\"layer.weight\":[1,2]}", []);

        var e = ReadFails(path, key: "layer.weight");

        Assert.Contains("the entry is an array", e.Message);
        Assert.Contains("dtype, shape and data_offsets", e.Message);
    }

    [Theory]
    [InlineData("{\"shape\":[1],\"data_offsets\":[0,4]}", "dtype")]
    [InlineData("{\"dtype\":\"F32\",\"data_offsets\":[0,4]}", "shape")]
    [InlineData("{\"dtype\":\"F32\",\"shape\":[1]}", "data_offsets")]
    [InlineData("{}", "dtype and shape and data_offsets")]
    public void Read_EntryLackingAField_NamesTheKeyAndTheField(string entry, string missing)
    {
        using var dir = new TempDir();
        string path = WriteRaw(dir, "{\"w\":" + entry + "}", new byte[4]);

        var e = ReadFails(path, key: "w");

        Assert.Contains($"the entry lacks {missing};", e.Message);
    }

    [Fact]
    public void Read_UnknownDType_NamesTheKeyAndTheDType()
    {
        using var dir = new TempDir();
        string path = WriteRaw(dir, "{\"fp8.weight\":{\"dtype\":\"F8_E4M3\",\"shape\":[4],\"data_offsets\":[0,4]}}", new byte[4]);

        var e = ReadFails(path, key: "fp8.weight");

        Assert.Contains("unknown dtype 'F8_E4M3'", e.Message);
        Assert.Contains("F32", e.Message);
    }

    [Fact]
    public void Read_DTypeNotAString_SaysSo()
    {
        using var dir = new TempDir();
        string path = WriteRaw(dir, "{\"w\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", new byte[4]);

        var e = ReadFails(path, key: "w");

        Assert.Contains("dtype is a number (4)", e.Message);
    }

    [Theory]
    [InlineData("[2,-3]", "dimension 1 is -3, negative")]
    [InlineData("[1.5]", "dimension 0 is 1.5, not an integer")]
    [InlineData("[2.0,2]", "dimension 0 is 2.0, not an integer")]
    [InlineData("[\"2\"]", "dimension 0 is a string (\"2\"), not an integer")]
    [InlineData("[3000000000]", "dimension 0 is larger than 2147483647")]
    [InlineData("[99999999999999999999]", "dimension 0 is 99999999999999999999, too large")]
    public void Read_BadShapeDimension_NamesTheKeyShapeAndDimension(string shape, string problem)
    {
        using var dir = new TempDir();
        string path = WriteRaw(dir, "{\"w\":{\"dtype\":\"F32\",\"shape\":" + shape + ",\"data_offsets\":[0,4]}}", new byte[4]);

        var e = ReadFails(path, key: "w");

        Assert.Contains($"shape {shape}: {problem}", e.Message);
    }

    [Fact]
    public void Read_DataOffsetsPastTheEnd_NamesTheKeyAndTheDataSize()
    {
        using var dir = new TempDir();
        string path = WriteRaw(
            dir,
            "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
            new byte[12]);

        var e = ReadFails(path, key: "b");

        Assert.Contains("data_offsets [8, 16] run past the end of the data section, which holds 12 bytes", e.Message);
    }

    [Fact]
    public void Read_OverlappingDataOffsets_NamesBothTensors()
    {
        using var dir = new TempDir();
        string path = WriteRaw(
            dir,
            "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
            new byte[12]);

        var e = ReadFails(path, key: "b");

        Assert.Contains("data_offsets [4, 12] overlap those of 'a' [0, 8]", e.Message);
    }

    [Fact]
    public void Read_BeginAfterEnd_SaysTheOffsetsAreReversed()
    {
        using var dir = new TempDir();
        string path = WriteRaw(dir, "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", new byte[8]);

        var e = ReadFails(path, key: "w");

        Assert.Contains("data_offsets [8, 4] are reversed: begin 8 is after end 4", e.Message);
    }

    [Theory]
    [InlineData("[0]", "data_offsets is [0], expected [begin, end].")]
    [InlineData("[0,4,8]", "data_offsets is [0,4,8], expected [begin, end].")]
    [InlineData("{\"begin\":0}", "data_offsets is {\"begin\":0}, expected [begin, end].")]
    [InlineData("[-4,0]", "data_offsets [-4,0]: an offset is -4, negative.")]
    [InlineData("[0,4.0]", "data_offsets [0,4.0]: an offset is 4.0, not an integer.")]
    public void Read_MalformedDataOffsets_NamesTheKeyAndTheProblem(string offsets, string problem)
    {
        using var dir = new TempDir();
        string path = WriteRaw(dir, "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":" + offsets + "}}", new byte[4]);

        var e = ReadFails(path, key: "w");

        Assert.EndsWith(problem, e.Message);
    }

    [Fact]
    public void Read_ShapeDisagreesWithByteCount_NamesKeyShapeDTypeAndBothCounts()
    {
        using var dir = new TempDir();
        string path = WriteRaw(dir, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}", new byte[20]);

        var e = ReadFails(path, key: "w");

        Assert.Contains("shape [2, 3] with dtype F32 needs 24 bytes", e.Message);
        Assert.Contains("span 20 bytes", e.Message);
    }

    [Fact]
    public void Read_HoleBetweenTensors_IsRejected()
    {
        using var dir = new TempDir();
        string path = WriteRaw(
            dir,
            "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
            new byte[12]);

        var e = ReadFails(path, key: "b");

        Assert.Contains("leave bytes [4, 8) of the data section unused", e.Message);
    }

    [Fact]
    public void Read_TrailingBytesAfterTheLastTensor_AreRejected()
    {
        using var dir = new TempDir();
        string path = WriteRaw(dir, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", new byte[7]);

        var e = ReadFails(path);

        Assert.Contains("the data section holds 7 bytes but the tensors cover only the first 4", e.Message);
    }

    [Fact]
    public void Read_DuplicateKey_IsRejected()
    {
        using var dir = new TempDir();
        string path = WriteRaw(
            dir,
            "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}",
            new byte[2]);

        var e = ReadFails(path, key: "a");

        Assert.Contains("lists this key twice", e.Message);
    }

    [Fact]
    public void Read_MetadataValueNotAString_NamesTheEntry()
    {
        using var dir = new TempDir();
        string path = WriteRaw(dir, "{\"__metadata__\":{\"format\":\"pt\",\"epoch\":3}}", []);

        var e = ReadFails(path, key: "__metadata__");

        Assert.Contains("metadata entry 'epoch' is a number; metadata values must be strings", e.Message);
    }

    [Fact]
    public void Read_MetadataOnlyFile_HasNoTensors()
    {
        using var dir = new TempDir();
        string path = WriteRaw(dir, "{\"__metadata__\":{\"format\":\"pt\"}}", []);

        TensorFile file = SafetensorsReader.Read(path);

        Assert.Empty(file.Tensors);
        Assert.Equal("pt", file.Metadata["format"]);
    }

    [Fact]
    public void Read_Directory_SaysItIsADirectory()
    {
        using var dir = new TempDir();

        var e = ReadFails(dir.Path);

        Assert.Contains("is a directory", e.Message);
    }

    [Fact]
    public void Read_MissingFile_SaysItDoesNotExist()
    {
        using var dir = new TempDir();

        var e = ReadFails(dir.File("nope.safetensors"));

        Assert.Contains("does not exist", e.Message);
    }

    [Fact]
    public void Read_TruncatedFixtureHeader_SaysTheFileIsTruncated()
    {
        using var dir = new TempDir();
        string path = dir.File("truncated.safetensors");
        File.WriteAllBytes(path, FirstBytes(Fixtures.Path(TimmFused), 1000));

        var e = ReadFails(path);

        Assert.Contains("header length field says 8664 bytes, but only 992 bytes follow it", e.Message);
        Assert.Contains("truncated", e.Message);
    }

    [Fact]
    public void Read_FixtureTruncatedInItsData_NamesTheFirstTensorThatNoLongerFits()
    {
        using var dir = new TempDir();
        string path = dir.File("truncated-data.safetensors");

        // Header (8 + 8664 bytes) intact, then 5000 data bytes: head.fc.bias [0, 4000] fits, head.fc.weight does not.
        File.WriteAllBytes(path, FirstBytes(Fixtures.Path(TimmFused), 8 + 8664 + 5000));

        var e = ReadFails(path, key: "head.fc.weight");

        Assert.Contains("data_offsets [4000, 4100000] run past the end of the data section, which holds 5000 bytes", e.Message);
        Assert.Contains("truncated", e.Message);
    }

    // ---- sharded index errors -------------------------------------------------------------------

    [Fact]
    public void ReadIndex_WithoutWeightMap_SaysSo()
    {
        using var dir = new TempDir();
        string index = dir.File("model.safetensors.index.json");
        File.WriteAllText(index, "{\"metadata\":{\"total_size\":4}}");

        var e = ReadFails(index);

        Assert.Contains("has no \"weight_map\"", e.Message);
    }

    [Fact]
    public void ReadIndex_NotJson_SaysSo()
    {
        using var dir = new TempDir();
        string index = dir.File("model.safetensors.index.json");
        File.WriteAllText(index, "{\"weight_map\":");

        var e = ReadFails(index);

        Assert.Contains("the index is not valid JSON", e.Message);
    }

    [Fact]
    public void ReadIndex_MissingShard_NamesTheShardAndATensor()
    {
        using var dir = new TempDir();
        string index = WriteShardedSmallFile(dir);
        File.Delete(dir.File("model-00002-of-00002.safetensors"));

        var e = ReadFails(index, key: "c");

        Assert.Contains("to shard 'model-00002-of-00002.safetensors'", e.Message);
        Assert.Contains("does not exist", e.Message);
    }

    [Fact]
    public void ReadIndex_ShardLackingAnAssignedTensor_NamesTheTensorAndTheShard()
    {
        using var dir = new TempDir();
        string index = WriteShardedSmallFile(dir);
        var first = new TensorFile();
        first.Tensors.Add("a", SmallFile().Tensors["a"]);
        SafetensorsWriter.Write(dir.File("model-00001-of-00002.safetensors"), first);

        var e = ReadFails(index, key: "b");

        Assert.Contains("assigns this tensor to shard 'model-00001-of-00002.safetensors'", e.Message);
        Assert.Contains("does not hold it", e.Message);
    }

    [Fact]
    public void ReadIndex_TensorInTwoShards_IsRejected()
    {
        using var dir = new TempDir();
        string index = WriteShardedSmallFile(dir);
        var second = new TensorFile();
        second.Tensors.Add("c", SmallFile().Tensors["c"]);
        second.Tensors.Add("a", SmallFile().Tensors["a"]);
        SafetensorsWriter.Write(dir.File("model-00002-of-00002.safetensors"), second);

        var e = ReadFails(dir.File("model-00002-of-00002.safetensors"), key: "a", read: index);

        Assert.Contains("appears in two shards, 'model-00001-of-00002.safetensors' and 'model-00002-of-00002.safetensors'", e.Message);
    }

    [Fact]
    public void ReadIndex_ShardHoldingAnUnlistedTensor_IsRejected()
    {
        using var dir = new TempDir();
        string index = WriteShardedSmallFile(dir);
        var second = new TensorFile();
        second.Tensors.Add("c", SmallFile().Tensors["c"]);
        second.Tensors.Add("stray", StoredTensor.FromInt64(1));
        SafetensorsWriter.Write(dir.File("model-00002-of-00002.safetensors"), second);

        var e = ReadFails(dir.File("model-00002-of-00002.safetensors"), key: "stray", read: index);

        Assert.Contains("does not list it", e.Message);
    }

    [Fact]
    public void ReadIndex_ShardOutsideTheIndexFolder_IsRejected()
    {
        using var dir = new TempDir();
        string index = dir.File("model.safetensors.index.json");
        File.WriteAllText(index, "{\"weight_map\":{\"w\":\"../elsewhere.safetensors\"}}");

        var e = ReadFails(index, key: "w");

        Assert.Contains("not a file inside the index's folder", e.Message);
    }

    // ---- writing --------------------------------------------------------------------------------

    [Fact]
    public void Write_FailingMidway_LeavesTheExistingFileAndNoTempFile()
    {
        using var dir = new TempDir();
        string path = dir.File("model.safetensors");
        byte[] old = Encoding.ASCII.GetBytes("the previous checkpoint");
        File.WriteAllBytes(path, old);
        TensorFile file = SafetensorsReader.Read(Fixtures.Path(TimmFused));

        // The stream fails after 100 kB, well into the tensor data.
        var e = Assert.Throws<CheckpointException>(
            () => SafetensorsWriter.Write(path, file, s => new FailingStream(s, failAfter: 100_000)));

        Assert.Contains(path, e.Message);
        Assert.Contains("simulated disk full", e.Message);
        Assert.Equal(old, File.ReadAllBytes(path));
        Assert.Equal([path], Directory.GetFiles(dir.Path));
    }

    [Fact]
    public void Write_InvalidTensor_NamesItAndLeavesTheExistingFile()
    {
        using var dir = new TempDir();
        string path = dir.File("model.safetensors");
        byte[] old = Encoding.ASCII.GetBytes("the previous checkpoint");
        File.WriteAllBytes(path, old);
        TensorFile file = SmallFile();
        file.Tensors["b"].Shape[0] = 5; // StoredTensor hands out its shape array; break the invariant.

        var e = Assert.Throws<CheckpointException>(() => SafetensorsWriter.Write(path, file));

        Assert.Contains(path, e.Message);
        Assert.Contains("key 'b'", e.Message);
        Assert.Contains("shape [5] with dtype F32 needs 20 bytes, but the tensor holds 8 bytes", e.Message);
        Assert.Equal(old, File.ReadAllBytes(path));
        Assert.Equal([path], Directory.GetFiles(dir.Path));
    }

    [Fact]
    public void Write_ReservedMetadataName_IsRejected()
    {
        using var dir = new TempDir();
        var file = new TensorFile();
        file.Tensors.Add("__metadata__", StoredTensor.FromInt64(1));

        var e = Assert.Throws<CheckpointException>(() => SafetensorsWriter.Write(dir.File("x.safetensors"), file));

        Assert.Contains("key '__metadata__'", e.Message);
        Assert.Contains("reserved", e.Message);
        Assert.Empty(Directory.GetFiles(dir.Path));
    }

    [Fact]
    public void Write_OverwritesAnExistingFile()
    {
        using var dir = new TempDir();
        string path = dir.File("model.safetensors");
        File.WriteAllText(path, "old");

        SafetensorsWriter.Write(path, SmallFile());

        AssertSameContent(SmallFile(), SafetensorsReader.Read(path));
        Assert.Single(Directory.GetFiles(dir.Path));
    }

    [Fact]
    public void WriteSharded_RejectsABadIndexNameAndEmptyFiles()
    {
        using var dir = new TempDir();

        Assert.Throws<ArgumentException>(() => SafetensorsWriter.WriteSharded(dir.File("model.json"), SmallFile(), 100));
        Assert.Throws<ArgumentException>(() => SafetensorsWriter.WriteSharded(dir.File("model.safetensors.index.json"), new TensorFile(), 100));
        Assert.Throws<ArgumentOutOfRangeException>(() => SafetensorsWriter.WriteSharded(dir.File("model.safetensors.index.json"), SmallFile(), 0));
        Assert.Empty(Directory.GetFiles(dir.Path));
    }

    // ---- helpers --------------------------------------------------------------------------------

    /// <summary>a: F32 [2], b: F32 [2], c: F32 [2], with metadata; 8 bytes each.</summary>
    private static TensorFile SmallFile()
    {
        var file = new TensorFile();
        file.Metadata.Add("format", "pt");
        file.Tensors.Add("a", StoredTensor.FromTensor(new Tensor([2], [1f, 2f])));
        file.Tensors.Add("b", StoredTensor.FromTensor(new Tensor([2], [3f, 4f])));
        file.Tensors.Add("c", StoredTensor.FromTensor(new Tensor([2], [5f, 6f])));
        return file;
    }

    /// <summary>Shards SmallFile() as model-00001-of-00002 (a, b) and model-00002-of-00002 (c).</summary>
    private static string WriteShardedSmallFile(TempDir dir)
    {
        string index = dir.File("model.safetensors.index.json");
        SafetensorsWriter.WriteSharded(index, SmallFile(), maxShardBytes: 16);
        Assert.Equal(["a", "b"], SafetensorsReader.Read(dir.File("model-00001-of-00002.safetensors")).Tensors.Keys);
        Assert.Equal(["c"], SafetensorsReader.Read(dir.File("model-00002-of-00002.safetensors")).Tensors.Keys);
        return index;
    }

    private static CheckpointException ReadFails(string path, string? key = null, string? read = null)
    {
        var e = Assert.Throws<CheckpointException>(() => SafetensorsReader.Read(read ?? path));
        Assert.StartsWith(path + ": ", e.Message);
        Assert.Equal(path, e.FilePath);
        if (key is not null)
        {
            Assert.Equal(key, e.Key);
            Assert.Contains($"key '{key}'", e.Message);
        }

        return e;
    }

    private static string WriteRaw(TempDir dir, string headerJson, byte[] data) =>
        WriteRawHeader(dir, Encoding.UTF8.GetBytes(headerJson), data);

    private static string WriteRawHeader(TempDir dir, byte[] header, byte[] data)
    {
        string path = dir.File("raw.safetensors");
        var bytes = new byte[8 + header.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)header.Length);
        header.CopyTo(bytes, 8);
        data.CopyTo(bytes, 8 + header.Length);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    private static string HeaderText(string path)
    {
        byte[] bytes = File.ReadAllBytes(path);
        int n = checked((int)BinaryPrimitives.ReadUInt64LittleEndian(bytes));
        return Encoding.UTF8.GetString(bytes, 8, n);
    }

    private static byte[] FirstBytes(string path, int count)
    {
        using var fs = File.OpenRead(path);
        var buffer = new byte[count];
        fs.ReadExactly(buffer);
        return buffer;
    }

    private static void AssertSameContent(TensorFile expected, TensorFile actual)
    {
        Assert.Equal(expected.Tensors.Keys, actual.Tensors.Keys);
        foreach (var (name, e) in expected.Tensors)
        {
            StoredTensor a = actual.Tensors[name];
            Assert.True(e.DType == a.DType, $"{name}: dtype {a.DType}, expected {e.DType}");
            Assert.True(e.Shape.AsSpan().SequenceEqual(a.Shape), $"{name}: shape {Tensor.FormatShape(a.Shape)}, expected {Tensor.FormatShape(e.Shape)}");
            Assert.True(e.Data.AsSpan().SequenceEqual(a.Data), $"{name}: bytes differ");
        }

        Assert.Equal(expected.Metadata, actual.Metadata);
    }

    /// <summary>Passes writes through until <c>failAfter</c> bytes, then throws as a full disk would.</summary>
    private sealed class FailingStream(Stream inner, long failAfter) : Stream
    {
        private long _written;

        public override bool CanRead => false;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => _written; set => throw new NotSupportedException(); }

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            long room = failAfter - _written;
            if (buffer.Length > room)
            {
                inner.Write(buffer[..(int)Math.Max(room, 0)]);
                _written = failAfter;
                inner.Flush();
                throw new IOException("simulated disk full");
            }

            inner.Write(buffer);
            _written += buffer.Length;
        }

        public override void Flush() => inner.Flush();

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();
    }
}
