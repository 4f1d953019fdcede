using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using MobileOne.IO;
using MobileOne.IO.PyTorch;

namespace MobileOne.Tests.IO;

/// <summary>
/// The bytes the torch.save writer emits: pickle opcodes (PickleWriter), the aligned zip (AlignedZipWriter, Crc32)
/// and the state-dict pickle (PyTorchCheckpointWriter), each against bytes written out by hand from the pickle
/// protocol 2 and zip (APPNOTE 6.3) layouts, or read back by System.IO.Compression.
/// </summary>
public sealed class PyTorchWriterTests
{
    // ---- PickleWriter ----------------------------------------------------------------------------

    [Fact]
    public void Pickle_StartsWithProtocolTwoAndWritesOneByteOpcodes()
    {
        var p = new PickleWriter();
        p.Mark();
        p.None();
        p.Bool(true);
        p.Bool(false);
        p.EmptyTuple();
        p.EmptyDict();
        p.TupleFromMark();
        p.Reduce();
        p.BinPersId();
        p.SetItem();
        p.SetItems();
        p.Stop();

        Assert.Equal([0x80, 0x02, (byte)'(', (byte)'N', 0x88, 0x89, (byte)')', (byte)'}', (byte)'t', (byte)'R', (byte)'Q', (byte)'s', (byte)'u', (byte)'.'], p.ToArray());
    }

    [Theory]
    [InlineData(0L, new byte[] { (byte)'K', 0x00 })]
    [InlineData(255L, new byte[] { (byte)'K', 0xFF })]
    [InlineData(256L, new byte[] { (byte)'M', 0x00, 0x01 })]
    [InlineData(65535L, new byte[] { (byte)'M', 0xFF, 0xFF })]
    [InlineData(65536L, new byte[] { (byte)'J', 0x00, 0x00, 0x01, 0x00 })]
    [InlineData(-1L, new byte[] { (byte)'J', 0xFF, 0xFF, 0xFF, 0xFF })]
    [InlineData(2147483647L, new byte[] { (byte)'J', 0xFF, 0xFF, 0xFF, 0x7F })]
    [InlineData(-2147483648L, new byte[] { (byte)'J', 0x00, 0x00, 0x00, 0x80 })]
    [InlineData(2147483648L, new byte[] { 0x8A, 0x08, 0x00, 0x00, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00 })]
    [InlineData(-2147483649L, new byte[] { 0x8A, 0x08, 0xFF, 0xFF, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF })]
    public void Pickle_IntUsesTheShortestOpcode(long value, byte[] expected)
    {
        var p = new PickleWriter();
        p.Int(value);
        Assert.Equal([0x80, 0x02, .. expected], p.ToArray());
    }

    [Fact]
    public void Pickle_IntTuplesUseTheShortOpcodesUpToThree()
    {
        var p = new PickleWriter();
        p.IntTuple([]);
        p.IntTuple([1]);
        p.IntTuple([1, 2]);
        p.IntTuple([1, 2, 3]);
        p.IntTuple([1, 2, 3, 300]);

        Assert.Equal(
            [
                0x80, 0x02,
                (byte)')',
                (byte)'K', 1, 0x85,
                (byte)'K', 1, (byte)'K', 2, 0x86,
                (byte)'K', 1, (byte)'K', 2, (byte)'K', 3, 0x87,
                (byte)'(', (byte)'K', 1, (byte)'K', 2, (byte)'K', 3, (byte)'M', 0x2C, 0x01, (byte)'t',
            ],
            p.ToArray());
    }

    [Fact]
    public void Pickle_StringsAreBinUnicodeAndMemoizedOnlyWhenAsked()
    {
        var p = new PickleWriter();
        p.String("ab");
        p.String("ab");
        p.String("\u00e9", memoize: true);
        p.String("\u00e9", memoize: true);
        p.String("\u00e9");
        p.String("");

        Assert.Equal(
            [
                0x80, 0x02,
                (byte)'X', 2, 0, 0, 0, (byte)'a', (byte)'b',
                (byte)'X', 2, 0, 0, 0, (byte)'a', (byte)'b',
                (byte)'X', 2, 0, 0, 0, 0xC3, 0xA9, (byte)'q', 0, // BINPUT 0
                (byte)'h', 0, // BINGET 0
                (byte)'X', 2, 0, 0, 0, 0xC3, 0xA9, // not memoized: written again
                (byte)'X', 0, 0, 0, 0,
            ],
            p.ToArray());
    }

    [Fact]
    public void Pickle_GlobalsAreMemoizedAndKeptApartFromStrings()
    {
        var p = new PickleWriter();
        p.Global("torch", "FloatStorage");
        p.String("torch\nFloatStorage", memoize: true); // same text as the global's key part, but a string
        p.Global("torch", "FloatStorage");
        p.Global("torch", "HalfStorage");

        byte[] expected =
        [
            0x80, 0x02,
            (byte)'c', .. "torch\nFloatStorage\n"u8, (byte)'q', 0,
            (byte)'X', 18, 0, 0, 0, .. "torch\nFloatStorage"u8, (byte)'q', 1,
            (byte)'h', 0,
            (byte)'c', .. "torch\nHalfStorage\n"u8, (byte)'q', 2,
        ];
        Assert.Equal(expected, p.ToArray());
    }

    [Fact]
    public void Pickle_MemoIndicesPast255_UseTheLongOpcodes()
    {
        var p = new PickleWriter();
        for (int i = 0; i <= 256; i++)
        {
            p.String("s" + i, memoize: true);
        }

        int before = p.ToArray().Length;
        p.String("s255", memoize: true);
        p.String("s256", memoize: true);
        byte[] all = p.ToArray();

        // The 256th string (index 255) still gets BINPUT 255; the 257th LONG_BINPUT 256 (4 bytes little-endian).
        byte[] s255 = [(byte)'X', 4, 0, 0, 0, .. "s255"u8, (byte)'q', 0xFF];
        byte[] s256 = [(byte)'X', 4, 0, 0, 0, .. "s256"u8, (byte)'r', 0x00, 0x01, 0x00, 0x00];
        Assert.Equal([.. s255, .. s256], all[(before - s255.Length - s256.Length)..before]);
        Assert.Equal([(byte)'h', 0xFF, (byte)'j', 0x00, 0x01, 0x00, 0x00], all[before..]);
    }

    // ---- Crc32 and AlignedZipWriter --------------------------------------------------------------

    [Theory]
    [InlineData("", 0x00000000u)]
    [InlineData("a", 0xE8B7BE43u)]
    [InlineData("123456789", 0xCBF43926u)] // the CRC-32 check value
    [InlineData("The quick brown fox jumps over the lazy dog", 0x414FA339u)]
    public void Crc32_MatchesKnownValues(string text, uint expected)
    {
        Assert.Equal(expected, Crc32.Compute(Encoding.ASCII.GetBytes(text)));
    }

    [Fact]
    public void Crc32_SlicedLoopAgreesWithTheBitwiseDefinitionAtEveryLength()
    {
        var rng = new Random(11);
        for (int n = 0; n <= 40; n++)
        {
            var data = new byte[n];
            rng.NextBytes(data);
            Assert.Equal(BitwiseCrc32(data), Crc32.Compute(data));
        }

        static uint BitwiseCrc32(byte[] data)
        {
            uint crc = 0xFFFFFFFF;
            foreach (byte b in data)
            {
                crc ^= b;
                for (int k = 0; k < 8; k++)
                {
                    crc = (crc >> 1) ^ (0xEDB88320u & (uint)-(int)(crc & 1));
                }
            }

            return ~crc;
        }
    }

    [Fact]
    public void Zip_OneEntry_IsLaidOutByteForByte()
    {
        using var ms = new MemoryStream();
        var zip = new AlignedZipWriter(ms);
        zip.Add("a", "xyz"u8);
        zip.Finish();
        byte[] z = ms.ToArray();

        // Local header: 30 bytes + name (1) + "FB" extra (4 + 29 padding) = 64, so the data starts at 64.
        uint crc = 0xEB8EBA67u; // crc32("xyz"), as zlib.crc32 gives it
        Assert.Equal(Crc32.Compute("xyz"u8), crc);
        byte[] local =
        [
            0x50, 0x4B, 0x03, 0x04, 20, 0, 0, 0, 0, 0, 0, 0, 0x21, 0x00,
            .. Le32(crc), 3, 0, 0, 0, 3, 0, 0, 0, 1, 0, 33, 0, (byte)'a', 0x46, 0x42, 29, 0,
            .. Enumerable.Repeat((byte)'Z', 29),
        ];
        byte[] central =
        [
            0x50, 0x4B, 0x01, 0x02, 20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0x21, 0x00,
            .. Le32(crc), 3, 0, 0, 0, 3, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, (byte)'a',
        ];
        byte[] end = [0x50, 0x4B, 0x05, 0x06, 0, 0, 0, 0, 1, 0, 1, 0, 47, 0, 0, 0, 67, 0, 0, 0, 0, 0];
        Assert.Equal([.. local, .. "xyz"u8, .. central, .. end], z);

        using var archive = new ZipArchive(new MemoryStream(z));
        ZipArchiveEntry entry = Assert.Single(archive.Entries);
        Assert.Equal("a", entry.FullName);
        Assert.Equal(crc, entry.Crc32);
        Assert.Equal(new DateTime(1980, 1, 1), entry.LastWriteTime.DateTime);
    }

    [Fact]
    public void Zip_DataStartsOn64ByteBoundariesWhateverTheNameLength()
    {
        using var ms = new MemoryStream();
        var zip = new AlignedZipWriter(ms);
        var names = new List<string>();
        for (int n = 1; n <= 70; n++)
        {
            names.Add(new string('n', n));
            zip.Add(names[^1], new byte[n % 5]);
        }

        zip.Finish();
        byte[] z = ms.ToArray();

        int pos = 0;
        foreach (string name in names)
        {
            Assert.Equal(0x04034b50u, BinaryPrimitives.ReadUInt32LittleEndian(z.AsSpan(pos)));
            int nameLength = BinaryPrimitives.ReadUInt16LittleEndian(z.AsSpan(pos + 26));
            int extraLength = BinaryPrimitives.ReadUInt16LittleEndian(z.AsSpan(pos + 28));
            int data = pos + 30 + nameLength + extraLength;
            Assert.Equal(name.Length, nameLength);
            Assert.Equal(0, data % 64);
            Assert.Equal(0x4246, BinaryPrimitives.ReadUInt16LittleEndian(z.AsSpan(pos + 30 + nameLength)));
            Assert.Equal(extraLength - 4, BinaryPrimitives.ReadUInt16LittleEndian(z.AsSpan(pos + 32 + nameLength)));
            Assert.True(extraLength is >= 4 and < 68, $"{name.Length}: extra {extraLength}");
            pos = data + (name.Length % 5);
        }

        using var archive = new ZipArchive(new MemoryStream(z));
        Assert.Equal(names, archive.Entries.Select(e => e.FullName));
        Assert.All(archive.Entries, e => Assert.Equal(e.FullName.Length % 5, e.Length));
    }

    [Fact]
    public void Zip_NonAsciiNamesSetTheUtf8Flag()
    {
        using var ms = new MemoryStream();
        var zip = new AlignedZipWriter(ms);
        zip.Add("plain", [1]);
        zip.Add("caf\u00e9", [2]);
        zip.Finish();
        byte[] z = ms.ToArray();

        Assert.Equal(0, BinaryPrimitives.ReadUInt16LittleEndian(z.AsSpan(6)));
        int second = 64 + 1; // "plain": a 64-byte local header and 1 byte of data
        Assert.Equal(0x04034b50u, BinaryPrimitives.ReadUInt32LittleEndian(z.AsSpan(second)));
        Assert.Equal(0x0800, BinaryPrimitives.ReadUInt16LittleEndian(z.AsSpan(second + 6)));
        Assert.Equal(5, BinaryPrimitives.ReadUInt16LittleEndian(z.AsSpan(second + 26))); // "café" is 5 bytes

        using var archive = new ZipArchive(new MemoryStream(z));
        Assert.Equal(["plain", "caf\u00e9"], archive.Entries.Select(e => e.FullName));
    }

    [Fact]
    public void Zip_RefusesEmptyDuplicateAndOverlongNames()
    {
        var zip = new AlignedZipWriter(Stream.Null);
        zip.Add("a", []);
        Assert.Throws<ArgumentException>(() => zip.Add("", []));
        Assert.Throws<ArgumentNullException>(() => zip.Add(null!, []));
        var dup = Assert.Throws<ArgumentException>(() => zip.Add("a", []));
        Assert.StartsWith("The zip already has an entry 'a'.", dup.Message);
        Assert.Equal("name", dup.ParamName);

        zip.Add(new string('x', 65535), []);
        var longName = Assert.Throws<ArgumentException>(() => zip.Add(new string('\u00e9', 32768), []));
        Assert.StartsWith("Zip entry names are limited to 65535 bytes.", longName.Message);
        Assert.Equal("name", longName.ParamName);
    }

    [Fact]
    public void Zip_ForcedZip64_WritesTheZip64EndRecordsAndSentinels()
    {
        using var ms = new MemoryStream();
        var zip = new AlignedZipWriter(ms, forceZip64: true);
        zip.Add("a", "xyz"u8);
        zip.Finish();
        byte[] z = ms.ToArray();

        // Entry as in Zip_OneEntry_IsLaidOutByteForByte: directory at 67, 47 bytes; zip64 record at 114.
        byte[] tail =
        [
            0x50, 0x4B, 0x06, 0x06, 44, 0, 0, 0, 0, 0, 0, 0, 45, 0, 45, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 47, 0, 0, 0, 0, 0, 0, 0, 67, 0, 0, 0, 0, 0, 0, 0,
            0x50, 0x4B, 0x06, 0x07, 0, 0, 0, 0, 114, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
            0x50, 0x4B, 0x05, 0x06, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0,
        ];
        Assert.Equal(114 + tail.Length, z.Length);
        Assert.Equal(tail, z[114..]);

        // The central header keeps the classic offset: no zip64 extra field for a small file.
        Assert.Equal(20, BinaryPrimitives.ReadUInt16LittleEndian(z.AsSpan(67 + 4)));
        Assert.Equal(0, BinaryPrimitives.ReadUInt16LittleEndian(z.AsSpan(67 + 30)));

        using var archive = new ZipArchive(new MemoryStream(z));
        Assert.Equal("a", Assert.Single(archive.Entries).FullName);
    }

    [Theory]
    [InlineData(65534, false)]
    [InlineData(65535, true)] // the classic count field cannot say 65535 entries: 0xFFFF means "see zip64"
    public void Zip_EntryCountDecidesZip64(int count, bool zip64)
    {
        using var ms = new MemoryStream();
        var zip = new AlignedZipWriter(ms);
        for (int i = 0; i < count; i++)
        {
            zip.Add(i.ToString("x4", System.Globalization.CultureInfo.InvariantCulture), []);
        }

        zip.Finish();
        byte[] z = ms.ToArray();

        // Every entry: a 64-byte local header and a 50-byte central header (46 + 4-character name).
        long directoryStart = 64L * count, directorySize = 50L * count;
        ReadOnlySpan<byte> end = z.AsSpan(z.Length - 22);
        Assert.Equal(0x06054b50u, BinaryPrimitives.ReadUInt32LittleEndian(end));
        if (zip64)
        {
            Assert.Equal(directoryStart + directorySize + 76 + 22, z.Length);
            ReadOnlySpan<byte> record = z.AsSpan((int)(directoryStart + directorySize));
            Assert.Equal(0x06064b50u, BinaryPrimitives.ReadUInt32LittleEndian(record));
            Assert.Equal(count, BinaryPrimitives.ReadInt64LittleEndian(record[24..]));
            Assert.Equal(count, BinaryPrimitives.ReadInt64LittleEndian(record[32..]));
            Assert.Equal(directorySize, BinaryPrimitives.ReadInt64LittleEndian(record[40..]));
            Assert.Equal(directoryStart, BinaryPrimitives.ReadInt64LittleEndian(record[48..]));
            Assert.Equal(0xFFFF, BinaryPrimitives.ReadUInt16LittleEndian(end[8..]));
            Assert.Equal(uint.MaxValue, BinaryPrimitives.ReadUInt32LittleEndian(end[12..]));
        }
        else
        {
            Assert.Equal(directoryStart + directorySize + 22, z.Length);
            Assert.Equal(count, BinaryPrimitives.ReadUInt16LittleEndian(end[8..]));
            Assert.Equal(count, BinaryPrimitives.ReadUInt16LittleEndian(end[10..]));
            Assert.Equal(directorySize, BinaryPrimitives.ReadUInt32LittleEndian(end[12..]));
            Assert.Equal(directoryStart, BinaryPrimitives.ReadUInt32LittleEndian(end[16..]));
        }
    }

    // ---- PyTorchCheckpointWriter -----------------------------------------------------------------

    [Fact]
    public void Checkpoint_PickleOfOneTensor_IsWhatTorchSaveWrites()
    {
        using var dir = new TempDir();
        string path = dir.File("w.pt");
        var file = new TensorFile([new("w", new StoredTensor(DType.U8, [2], [7, 9]))]);

        PyTorchCheckpointWriter.Write(path, file);

        // OrderedDict() then, under a MARK, "w": _rebuild_tensor_v2(PERSID(('storage', ByteStorage, '0', 'cpu', 2)),
        // 0, (2,), (1,), False, OrderedDict()), closed by SETITEMS and STOP.
        byte[] expected =
        [
            0x80, 0x02,
            (byte)'c', .. "collections\nOrderedDict\n"u8, (byte)'q', 0,
            (byte)')', (byte)'R',
            (byte)'(',
            (byte)'X', 1, 0, 0, 0, (byte)'w',
            (byte)'c', .. "torch._utils\n_rebuild_tensor_v2\n"u8, (byte)'q', 1,
            (byte)'(',
            (byte)'(',
            (byte)'X', 7, 0, 0, 0, .. "storage"u8, (byte)'q', 2,
            (byte)'c', .. "torch\nByteStorage\n"u8, (byte)'q', 3,
            (byte)'X', 1, 0, 0, 0, (byte)'0',
            (byte)'X', 3, 0, 0, 0, .. "cpu"u8, (byte)'q', 4,
            (byte)'K', 2,
            (byte)'t', (byte)'Q',
            (byte)'K', 0,
            (byte)'K', 2, 0x85,
            (byte)'K', 1, 0x85,
            0x89,
            (byte)'h', 0, (byte)')', (byte)'R',
            (byte)'t', (byte)'R',
            (byte)'u',
            (byte)'.',
        ];
        using var zip = ZipFile.OpenRead(path);
        Assert.Equal(["w/data.pkl", "w/byteorder", "w/data/0", "w/version"], zip.Entries.Select(e => e.FullName));
        Assert.Equal(expected, Read(zip, "w/data.pkl"));
        Assert.Equal([7, 9], Read(zip, "w/data/0"));
        Assert.Equal("little"u8.ToArray(), Read(zip, "w/byteorder"));
        Assert.Equal("3\n"u8.ToArray(), Read(zip, "w/version"));
    }

    [Fact]
    public void Checkpoint_StridesAreContiguousWithEmptyDimensionsCountedAsOne()
    {
        using var dir = new TempDir();
        string path = dir.File("s.pt");
        var file = new TensorFile(
        [
            new("e", new StoredTensor(DType.F32, [2, 0, 3], [])),
            new("r", new StoredTensor(DType.I16, [2, 3, 1, 2], new byte[24])),
            new("s", StoredTensor.FromInt64(5)),
        ]);

        PyTorchCheckpointWriter.Write(path, file);

        using var zip = ZipFile.OpenRead(path);
        byte[] pickle = Read(zip, "s/data.pkl");
        // e: size (2, 0, 3), stride (3, 3, 1); r: size (2, 3, 1, 2), stride (6, 2, 2, 1); s: size (), stride ().
        byte[] e = [(byte)'K', 0, (byte)'K', 2, (byte)'K', 0, (byte)'K', 3, 0x87, (byte)'K', 3, (byte)'K', 3, (byte)'K', 1, 0x87, 0x89];
        byte[] r = [(byte)'K', 0, (byte)'(', (byte)'K', 2, (byte)'K', 3, (byte)'K', 1, (byte)'K', 2, (byte)'t', (byte)'(', (byte)'K', 6, (byte)'K', 2, (byte)'K', 2, (byte)'K', 1, (byte)'t', 0x89];
        byte[] s = [(byte)'K', 0, (byte)')', (byte)')', 0x89];
        Assert.True(pickle.AsSpan().IndexOf(e) > 0, "e's size and stride");
        Assert.True(pickle.AsSpan().IndexOf(r) > 0, "r's size and stride");
        Assert.True(pickle.AsSpan().IndexOf(s) > 0, "s's size and stride");
        Assert.Contains("torch\nFloatStorage\n", Encoding.ASCII.GetString(pickle));
        Assert.Contains("torch\nShortStorage\n", Encoding.ASCII.GetString(pickle));
        Assert.Contains("torch\nLongStorage\n", Encoding.ASCII.GetString(pickle));

        TensorFile back = PyTorchCheckpointReader.Read(path);
        Assert.Equal([2, 0, 3], back.Tensors["e"].Shape);
        Assert.Equal([2, 3, 1, 2], back.Tensors["r"].Shape);
        Assert.Equal([5L], back.Tensors["s"].ToInt64());
    }

    [Theory]
    [InlineData(999)]
    [InlineData(1000)]
    [InlineData(1001)]
    public void Checkpoint_SetItemsComeInBatchesOfAThousand(int count)
    {
        using var dir = new TempDir();
        string path = dir.File("many.pt");
        var file = new TensorFile(Enumerable.Range(0, count).Select(i => KeyValuePair.Create($"t{i}", StoredTensor.FromInt64(i))));

        PyTorchCheckpointWriter.Write(path, file);

        using (var zip = ZipFile.OpenRead(path))
        {
            byte[] pickle = Read(zip, "many/data.pkl");
            int batches = (count + 999) / 1000;
            Assert.Equal((byte)'.', pickle[^1]);
            Assert.Equal((byte)'u', pickle[^2]);
            // Each batch opens with a MARK right after the previous SETITEMS (or the OrderedDict's REDUCE).
            Assert.Equal(batches, CountPairs(pickle, (byte)'u', (byte)'(') + 1);
            Assert.Equal((byte)'(', pickle[pickle.AsSpan().IndexOf("\x00)R"u8) + 3]);
        }

        TensorFile back = PyTorchCheckpointReader.Read(path);
        Assert.Equal(file.Tensors.Keys, back.Tensors.Keys);
        Assert.Equal([(long)count - 1], back.Tensors[$"t{count - 1}"].ToInt64());

        static int CountPairs(byte[] bytes, byte a, byte b)
        {
            // "u(" only occurs between batches: SETITEMS then the next MARK.
            int n = 0;
            for (int i = 0; i + 1 < bytes.Length; i++)
            {
                if (bytes[i] == a && bytes[i + 1] == b)
                {
                    n++;
                }
            }

            return n;
        }
    }

    [Fact]
    public void Checkpoint_ShapeChangedAfterConstruction_IsRefusedByName()
    {
        using var dir = new TempDir();
        string path = dir.File("bad.pt");

        var negative = new TensorFile([new("w", new StoredTensor(DType.U8, [2, 1], [1, 2]))]);
        negative.Tensors["w"].Shape[1] = -1;
        var e = Assert.Throws<CheckpointException>(() => PyTorchCheckpointWriter.Write(path, negative));
        Assert.Equal("w", e.Key);
        Assert.Equal("has a negative dimension in shape [2, -1].", e.Problem);

        var grown = new TensorFile([new("w", new StoredTensor(DType.F32, [2], new byte[8]))]);
        grown.Tensors["w"].Shape[0] = 3;
        e = Assert.Throws<CheckpointException>(() => PyTorchCheckpointWriter.Write(path, grown));
        Assert.Equal("has shape [3] of F32, which needs 12 bytes, but holds 8.", e.Problem);
        Assert.Empty(Directory.GetFiles(dir.Path));
    }

    [Fact]
    public void Checkpoint_NullArguments_Throw()
    {
        Assert.Equal("path", Assert.Throws<ArgumentNullException>(() => PyTorchCheckpointWriter.Write(null!, new TensorFile())).ParamName);
        Assert.Equal("file", Assert.Throws<ArgumentNullException>(() => PyTorchCheckpointWriter.Write("x.pt", null!)).ParamName);
    }

    [Theory]
    [InlineData("a_b-C.9.pt", "a_b-C.9")]
    [InlineData("noext", "noext")]
    [InlineData("caf\u00e9.pt", "archive")] // a letter, but not ASCII
    [InlineData("a+b.pt", "archive")]
    [InlineData("", "archive")]
    public void Checkpoint_ArchiveStemKeepsOnlyPlainAsciiNames(string name, string stem)
    {
        Assert.Equal(stem, PyTorchCheckpointWriter.ArchiveStem(name));
    }

    // ---- TorchTypes ------------------------------------------------------------------------------

    [Theory]
    [InlineData("DoubleStorage", DType.F64)]
    [InlineData("FloatStorage", DType.F32)]
    [InlineData("HalfStorage", DType.F16)]
    [InlineData("BFloat16Storage", DType.BF16)]
    [InlineData("LongStorage", DType.I64)]
    [InlineData("IntStorage", DType.I32)]
    [InlineData("ShortStorage", DType.I16)]
    [InlineData("CharStorage", DType.I8)]
    [InlineData("ByteStorage", DType.U8)]
    [InlineData("BoolStorage", DType.Bool)]
    public void TorchTypes_StorageNamesMapBothWays(string storage, DType dtype)
    {
        Assert.True(TorchTypes.TryGetStorageDType(storage, out DType parsed));
        Assert.Equal(dtype, parsed);
        Assert.Equal(storage, TorchTypes.StorageName(dtype));
    }

    [Fact]
    public void TorchTypes_UnknownNamesAreRefused()
    {
        Assert.False(TorchTypes.TryGetStorageDType("ComplexFloatStorage", out DType d));
        Assert.Equal(default, d);
        Assert.False(TorchTypes.TryGetStorageDType("floatstorage", out _));
        Assert.Throws<ArgumentOutOfRangeException>(() => TorchTypes.StorageName((DType)99));
        Assert.False(TorchTypes.TryGetDType("complex64", out _));
        Assert.False(TorchTypes.TryGetDType("Float", out _));
        Assert.Equal(
            "torch.DoubleStorage, torch.FloatStorage, torch.HalfStorage, torch.BFloat16Storage, torch.LongStorage, torch.IntStorage, " +
            "torch.ShortStorage, torch.CharStorage, torch.ByteStorage, torch.BoolStorage",
            TorchTypes.SupportedStorageNames);
    }

    [Theory]
    [InlineData("float64", DType.F64)]
    [InlineData("double", DType.F64)]
    [InlineData("float32", DType.F32)]
    [InlineData("float", DType.F32)]
    [InlineData("float16", DType.F16)]
    [InlineData("half", DType.F16)]
    [InlineData("bfloat16", DType.BF16)]
    [InlineData("int64", DType.I64)]
    [InlineData("long", DType.I64)]
    [InlineData("int32", DType.I32)]
    [InlineData("int", DType.I32)]
    [InlineData("int16", DType.I16)]
    [InlineData("short", DType.I16)]
    [InlineData("int8", DType.I8)]
    [InlineData("uint8", DType.U8)]
    [InlineData("bool", DType.Bool)]
    public void TorchTypes_DTypeNames(string name, DType dtype)
    {
        Assert.True(TorchTypes.TryGetDType(name, out DType parsed));
        Assert.Equal(dtype, parsed);
    }

    private static byte[] Read(ZipArchive zip, string name)
    {
        using var s = zip.GetEntry(name)!.Open();
        using var ms = new MemoryStream();
        s.CopyTo(ms);
        return ms.ToArray();
    }

    private static byte[] Le32(uint v)
    {
        var b = new byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(b, v);
        return b;
    }
}
