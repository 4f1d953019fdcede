using System.Buffers.Binary;
using System.Text;
using MobileOne.IO;
using MobileOne.IO.Safetensors;
using MobileOne.Tensors;

namespace MobileOne.Tests.IO;

/// <summary>
/// Boundaries and error paths of the safetensors reader and writer that mutation testing (docs/reliability.md)
/// found untested: each file is built byte by byte here and each expected message or value is written out by hand.
/// </summary>
public partial class SafetensorsTests
{
    // ---- sniffing -------------------------------------------------------------------------------

    [Theory]
    [InlineData(2UL, "{", true)] // nine bytes are enough to see the brace
    [InlineData(2UL, "{}", true)]
    [InlineData(1UL, "{}", false)] // a header shorter than "{}"
    [InlineData(100_000_000UL, "{\"", true)] // the largest header the format allows
    [InlineData(100_000_001UL, "{\"", false)]
    [InlineData(8UL, " \t\r\n{ \"a", true)] // every JSON whitespace byte, before and after the brace
    [InlineData(8UL, "{\t\r\n  }", true)]
    [InlineData(8UL, "{       ", true)] // only whitespace after the brace: cannot tell yet
    [InlineData(8UL, "{ a", false)] // a key must be a string
    [InlineData(8UL, "{ 1", false)]
    [InlineData(8UL, "        ", false)] // no brace within the first 16 bytes
    [InlineData(8UL, "\f{", false)] // form feed is not JSON whitespace
    [InlineData(8UL, "x{", false)]
    public void LooksLikeSafetensors_ChecksTheLengthAndTheStartOfTheObject(ulong headerLength, string start, bool expected)
    {
        var bytes = new byte[8 + start.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, headerLength);
        Encoding.ASCII.GetBytes(start, bytes.AsSpan(8));

        Assert.Equal(expected, SafetensorsReader.LooksLikeSafetensors(bytes));
    }

    [Fact]
    public void LooksLikeSafetensors_LooksAtNoMoreThanSixteenBytes()
    {
        // The 17th byte would make the header look wrong; only the first 16 count.
        byte[] bytes = [16, 0, 0, 0, 0, 0, 0, 0, (byte)'{', .. "       x"u8];
        Assert.True(SafetensorsReader.LooksLikeSafetensors(bytes[..16]));
        Assert.True(SafetensorsReader.LooksLikeSafetensors(bytes));
    }

    // ---- the length prefix ----------------------------------------------------------------------

    [Fact]
    public void Read_NullOrEmptyPath_Throws()
    {
        Assert.Throws<ArgumentNullException>(() => SafetensorsReader.Read(null!));
        Assert.Throws<ArgumentException>(() => SafetensorsReader.Read(""));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    public void Read_HeaderLengthBelowTwo_IsTooShortForAnObject(int declared)
    {
        using var dir = new TempDir();
        string path = dir.File("tiny.safetensors");
        var bytes = new byte[8 + declared];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)declared);
        if (declared == 1)
        {
            bytes[8] = (byte)'{';
        }

        File.WriteAllBytes(path, bytes);

        var e = ReadFails(path);

        Assert.Equal($"{path}: the header length is {declared} bytes, too short for a JSON object.", e.Message);
    }

    [Fact]
    public void Read_SevenBytes_IsTruncated()
    {
        using var dir = new TempDir();
        string path = dir.File("seven.safetensors");
        File.WriteAllBytes(path, new byte[7]);

        var e = ReadFails(path);

        Assert.Equal(
            $"{path}: the file is truncated: it has 7 bytes, fewer than the 8-byte header length a safetensors file starts with.",
            e.Message);
    }

    [Fact]
    public void Read_EmptyObjectHeaderFillingTheFile_IsAnEmptyFile()
    {
        using var dir = new TempDir();
        string path = WriteRaw(dir, "{}", []);

        TensorFile file = SafetensorsReader.Read(path);

        Assert.Empty(file.Tensors);
        Assert.Empty(file.Metadata);
    }

    // ---- the header -----------------------------------------------------------------------------

    [Fact]
    public void Read_HeaderNotUtf8AfterAMultiByteCharacter_GivesTheByteOffset()
    {
        using var dir = new TempDir();
        // "{"é" then an invalid byte: '{' '"' 0xC3 0xA9 0xFF -> the bad byte is at offset 4.
        byte[] header = [(byte)'{', (byte)'"', 0xC3, 0xA9, 0xFF, (byte)'"', (byte)':', (byte)'1', (byte)'}'];
        string path = WriteRawHeader(dir, header, []);

        var e = ReadFails(path);

        Assert.Equal($"{path}: the header is not valid UTF-8 (first bad byte at header offset 4).", e.Message);
    }

    [Theory]
    [InlineData("true", "a boolean")]
    [InlineData("null", "null")]
    public void Read_HeaderOfOtherKinds_NamesWhatItIs(string json, string kind)
    {
        using var dir = new TempDir();
        string path = WriteRaw(dir, json, []);

        var e = ReadFails(path);

        Assert.StartsWith($"{path}: the header is {kind}, expected a JSON object mapping tensor names to ", e.Message);
    }

    [Fact]
    public void Read_KeyEscapingALoneSurrogate_IsNotValidText()
    {
        using var dir = new TempDir();
        string path = WriteRaw(dir, "{\"\\ud800\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}}", []);

        var e = ReadFails(path);

        Assert.StartsWith($"{path}: the header holds a string that is not valid text: ", e.Message);
        Assert.IsType<InvalidOperationException>(e.InnerException);
    }

    [Fact]
    public void Read_NullMetadata_IsNoMetadata()
    {
        using var dir = new TempDir();
        string path = WriteRaw(dir, "{\"__metadata__\":null,\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", [5]);

        TensorFile file = SafetensorsReader.Read(path);

        Assert.Empty(file.Metadata);
        Assert.Equal([5L], file.Tensors["a"].ToInt64());
    }

    [Theory]
    [InlineData("[\"pt\"]", "an array")]
    [InlineData("\"pt\"", "a string")]
    public void Read_MetadataNotAnObject_NamesWhatItIs(string metadata, string kind)
    {
        using var dir = new TempDir();
        string path = WriteRaw(dir, "{\"__metadata__\":" + metadata + "}", []);

        var e = ReadFails(path, key: "__metadata__");

        Assert.EndsWith($": the metadata block is {kind}, expected an object of strings.", e.Message);
    }

    [Fact]
    public void Read_MetadataEntryTwice_IsRejected()
    {
        using var dir = new TempDir();
        string path = WriteRaw(dir, "{\"__metadata__\":{\"format\":\"pt\",\"format\":\"np\"}}", []);

        var e = ReadFails(path, key: "__metadata__");

        Assert.EndsWith(": metadata entry 'format' appears twice.", e.Message);
    }

    [Fact]
    public void Read_MetadataKeepsItsOrder()
    {
        using var dir = new TempDir();
        string path = WriteRaw(dir, "{\"__metadata__\":{\"z\":\"1\",\"a\":\"2\",\"m\":\"\"}}", []);

        TensorFile file = SafetensorsReader.Read(path);

        Assert.Equal(["z", "a", "m"], file.Metadata.Keys);
        Assert.Equal(["1", "2", ""], file.Metadata.Values);
    }

    [Theory]
    [InlineData("dtype", "\"F32\"")]
    [InlineData("shape", "[1]")]
    [InlineData("data_offsets", "[0,4]")]
    public void Read_EntryListingAFieldTwice_NamesTheField(string field, string value)
    {
        using var dir = new TempDir();
        string path = WriteRaw(
            dir, "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"" + field + "\":" + value + "}}", new byte[4]);

        var e = ReadFails(path, key: "w");

        Assert.EndsWith($": the entry lists {field} twice.", e.Message);
    }

    [Fact]
    public void Read_EntryWithUnknownFields_IgnoresThem()
    {
        using var dir = new TempDir();
        string path = WriteRaw(
            dir, "{\"w\":{\"note\":{\"x\":[1]},\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2],\"dtypes\":7}}", [3, 4]);

        Assert.Equal([3L, 4L], SafetensorsReader.Read(path).Tensors["w"].ToInt64());
    }

    [Fact]
    public void Read_EntryLackingTwoFields_NamesBoth()
    {
        using var dir = new TempDir();
        string path = WriteRaw(dir, "{\"w\":{\"shape\":[1]}}", []);

        var e = ReadFails(path, key: "w");

        Assert.EndsWith(": the entry lacks dtype and data_offsets; every tensor entry needs dtype, shape and data_offsets.", e.Message);
    }

    [Fact]
    public void Read_EntryNotAnObject_QuotesItsText()
    {
        using var dir = new TempDir();
        string path = WriteRaw(dir, "{\"w\":\"F32\"}", []);

        var e = ReadFails(path, key: "w");

        Assert.EndsWith(": the entry is a string (\"F32\"), expected an object with dtype, shape and data_offsets.", e.Message);
    }

    [Fact]
    public void Read_UnknownDType_ListsTheSupportedOnes()
    {
        using var dir = new TempDir();
        string path = WriteRaw(dir, "{\"w\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", new byte[4]);

        var e = ReadFails(path, key: "w");

        Assert.EndsWith(": unknown dtype 'f32'; supported dtypes are F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL.", e.Message);
    }

    [Theory]
    [InlineData("\"[1]\"", "a string (\"[1]\")")]
    [InlineData("{\"0\":1}", "an object ({\"0\":1})")]
    [InlineData("null", "null (null)")]
    public void Read_ShapeNotAnArray_NamesWhatItIs(string shape, string described)
    {
        using var dir = new TempDir();
        string path = WriteRaw(dir, "{\"w\":{\"dtype\":\"F32\",\"shape\":" + shape + ",\"data_offsets\":[0,4]}}", new byte[4]);

        var e = ReadFails(path, key: "w");

        Assert.EndsWith($": shape is {described}, expected an array of dimensions.", e.Message);
    }

    [Fact]
    public void Read_ShapeDimensionOfIntMax_IsAccepted()
    {
        // 2147483647 is the largest dimension the reader supports (one more is refused); the shape then fails
        // only because its bytes are not there.
        using var dir = new TempDir();
        string path = WriteRaw(dir, "{\"w\":{\"dtype\":\"U8\",\"shape\":[2147483647,0],\"data_offsets\":[0,0]}}", []);

        TensorFile file = SafetensorsReader.Read(path);

        Assert.Equal([2147483647, 0], file.Tensors["w"].Shape);
        Assert.Empty(file.Tensors["w"].Data);
    }

    [Fact]
    public void Read_LongJsonInAMessage_IsClippedToEightyCharacters()
    {
        using var dir = new TempDir();
        string dims = string.Join(",", Enumerable.Repeat("1", 40)) + ",-1"; // 82 characters plus brackets
        string path = WriteRaw(dir, "{\"w\":{\"dtype\":\"F32\",\"shape\":[" + dims + "],\"data_offsets\":[0,4]}}", new byte[4]);

        var e = ReadFails(path, key: "w");

        string clipped = ("[" + dims + "]")[..80] + "...";
        Assert.EndsWith($": shape {clipped}: dimension 40 is -1, negative.", e.Message);
    }

    [Fact]
    public void Read_JsonOfExactlyEightyCharactersInAMessage_IsNotClipped()
    {
        using var dir = new TempDir();
        string shape = "[" + string.Join(",", Enumerable.Repeat("1", 38)) + ",-1]";
        Assert.Equal(80, shape.Length);
        string path = WriteRaw(dir, "{\"w\":{\"dtype\":\"F32\",\"shape\":" + shape + ",\"data_offsets\":[0,4]}}", new byte[4]);

        var e = ReadFails(path, key: "w");

        Assert.EndsWith($": shape {shape}: dimension 38 is -1, negative.", e.Message);
    }

    [Theory]
    [InlineData("[0,99999999999999999999]", "data_offsets [0,99999999999999999999]: an offset is 99999999999999999999, too large.")]
    [InlineData("[\"0\",4]", "data_offsets [\"0\",4]: an offset is a string (\"0\"), not an integer.")]
    [InlineData("[0,4e0]", "data_offsets [0,4e0]: an offset is 4e0, not an integer.")]
    [InlineData("[0,4E0]", "data_offsets [0,4E0]: an offset is 4E0, not an integer.")]
    [InlineData("[0,-4]", "data_offsets [0,-4]: an offset is -4, negative.")]
    [InlineData("[null,4]", "data_offsets [null,4]: an offset is null (null), not an integer.")]
    [InlineData("\"0,4\"", "data_offsets is \"0,4\", expected [begin, end].")]
    [InlineData("[-1,1.5]", "data_offsets [-1,1.5]: an offset is -1, negative.")] // both bad: the first is named
    public void Read_MoreMalformedDataOffsets_NameTheProblem(string offsets, string problem)
    {
        using var dir = new TempDir();
        string path = WriteRaw(dir, "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":" + offsets + "}}", new byte[4]);

        var e = ReadFails(path, key: "w");

        Assert.EndsWith(": " + problem, e.Message);
    }

    [Fact]
    public void Read_EndExactlyAtTheEndOfTheData_IsAccepted()
    {
        using var dir = new TempDir();
        string path = WriteRaw(dir, "{\"w\":{\"dtype\":\"I16\",\"shape\":[2],\"data_offsets\":[0,4]}}", [1, 0, 0xFF, 0xFF]);

        Assert.Equal([1L, -1L], SafetensorsReader.Read(path).Tensors["w"].ToInt64());
    }

    [Fact]
    public void Read_ShapeAtTheEdgeOf64Bits_IsCheckedWithoutOverflow()
    {
        // 6 * 715827883 * 2147483647 = 9223372036854775806, one below long.MaxValue: it fits, so the entry is
        // refused only because the data offsets span 0 bytes.
        using var dir = new TempDir();
        string path = WriteRaw(dir, "{\"w\":{\"dtype\":\"U8\",\"shape\":[6,715827883,2147483647],\"data_offsets\":[0,0]}}", []);

        var e = ReadFails(path, key: "w");

        Assert.EndsWith(
            ": shape [6, 715827883, 2147483647] with dtype U8 needs 9223372036854775806 bytes (1 per element), " +
            "but data_offsets [0, 0] span 0 bytes.",
            e.Message);
    }

    [Fact]
    public void Read_ShapeBeyond64Bits_IsRefused()
    {
        // Two bytes per element: 2 * 6 * 715827883 * 2147483647 does not fit a long.
        using var dir = new TempDir();
        string path = WriteRaw(dir, "{\"w\":{\"dtype\":\"I16\",\"shape\":[6,715827883,2147483647],\"data_offsets\":[0,0]}}", []);

        var e = ReadFails(path, key: "w");

        Assert.EndsWith(": shape [6, 715827883, 2147483647] has more elements than fit in 64 bits.", e.Message);
    }

    [Fact]
    public void Read_ShapeWithAZeroBeforeHugeDimensions_HasNoBytes()
    {
        using var dir = new TempDir();
        string path = WriteRaw(dir, "{\"w\":{\"dtype\":\"F64\",\"shape\":[0,2147483647,2147483647],\"data_offsets\":[0,0]}}", []);

        Assert.Empty(SafetensorsReader.Read(path).Tensors["w"].Data);
    }

    [Fact]
    public void Read_TensorLargerThanAnArray_IsRefusedBeforeReading()
    {
        // 2147483600 bytes: more than Array.MaxLength (2147483591). The data section is a sparse hole.
        using var dir = new TempDir();
        string path = dir.File("big.safetensors");
        byte[] header = Encoding.UTF8.GetBytes("{\"w\":{\"dtype\":\"U8\",\"shape\":[2147483600],\"data_offsets\":[0,2147483600]}}");
        using (var fs = File.Create(path))
        {
            var prefix = new byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(prefix, (ulong)header.Length);
            fs.Write(prefix);
            fs.Write(header);
            fs.SetLength(8 + header.Length + 2147483600L);
        }

        var e = ReadFails(path, key: "w");

        Assert.EndsWith(": the tensor holds 2147483600 bytes, more than the 2147483591 bytes one tensor can have in this reader.", e.Message);
    }

    [Fact]
    public void Read_TensorsSharingAnOffset_AreOrderedByEndThenByHeaderOrder()
    {
        // Empty tensors at the same offset as a non-empty one come first; among themselves they keep header order.
        using var dir = new TempDir();
        string path = WriteRaw(
            dir,
            "{\"z\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[2,2]}," +
            "\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}," +
            "\"e2\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}," +
            "\"e1\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}}",
            [8, 9]);

        TensorFile file = SafetensorsReader.Read(path);

        Assert.Equal(["e2", "e1", "b", "z"], file.Tensors.Keys);
        Assert.Equal([8L, 9L], file.Tensors["b"].ToInt64());
    }

    [Fact]
    public void Read_OverlapAndHoleMessages_GiveEveryOffset()
    {
        using var dir = new TempDir();
        string overlap = WriteRaw(
            dir,
            "{\"a\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[0,3]},\"b\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[2,5]}}",
            new byte[5]);
        Assert.EndsWith(": data_offsets [2, 5] overlap those of 'a' [0, 3].", ReadFails(overlap, key: "b").Message);

        string hole = WriteRaw(dir, "{\"a\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[1,4]}}", new byte[4]);
        Assert.EndsWith(
            ": data_offsets [1, 4] leave bytes [0, 1) of the data section unused; a safetensors data section must not have holes.",
            ReadFails(hole, key: "a").Message);

        string trailing = WriteRaw(dir, "{\"a\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[0,3]}}", new byte[5]);
        Assert.Equal(
            $"{trailing}: the data section holds 5 bytes but the tensors cover only the first 3; 2 bytes at the end belong to no tensor.",
            ReadFails(trailing).Message);
    }

    // ---- header size limits, checked before the header is parsed ----------------------------------

    [Theory]
    [InlineData(131072)]
    [InlineData(131073)]
    public void Read_HeaderListingMoreThanTheMostTensors_IsRefusedBeforeParsing(int entries)
    {
        // Each entry {} is two JSON values at depth 1 besides its key; only keys at depth 1 count as tensors.
        using var dir = new TempDir();
        var json = new StringBuilder("{");
        for (int i = 0; i < entries; i++)
        {
            json.Append(i == 0 ? "" : ",").Append("\"k").Append(i).Append("\":{}");
        }

        string path = WriteRaw(dir, json.Append('}').ToString(), []);

        if (entries > 131072)
        {
            var e = ReadFails(path, key: "k131072");
            Assert.EndsWith(
                ": the header lists more than 131072 tensors, the most this reader accepts (checkpoints hold a few thousand); refused before being parsed.",
                e.Message);
        }
        else
        {
            // 131072 entries pass the count and are parsed: the first entry is then refused for its content.
            var e = ReadFails(path, key: "k0");
            Assert.EndsWith(": the entry lacks dtype and shape and data_offsets; every tensor entry needs dtype, shape and data_offsets.", e.Message);
        }
    }

    [Fact]
    public void Read_HeaderOfMoreJsonValuesThanTheBudget_IsRefusedBeforeParsing()
    {
        // [0,0,...] with 4194303 zeros: 4194305 JSON tokens with the brackets, one over 32 x 131072.
        using var dir = new TempDir();
        var json = new StringBuilder(2 * 4194303 + 2).Append('[');
        for (int i = 0; i < 4194303; i++)
        {
            json.Append(i == 0 ? "0" : ",0");
        }

        string path = WriteRaw(dir, json.Append(']').ToString(), []);

        var e = ReadFails(path);

        Assert.Equal(
            $"{path}: the header holds more than 4194304 JSON values; a header of 131072 entries needs far fewer, so it is refused before being parsed.",
            e.Message);
    }

    // ---- sharded index --------------------------------------------------------------------------

    [Fact]
    public void ReadIndex_UpperCaseJsonExtensionAndByteOrderMark_AreAccepted()
    {
        using var dir = new TempDir();
        SafetensorsWriter.Write(dir.File("s.safetensors"), SmallFile());
        string index = dir.File("s.safetensors.index.JSON");
        File.WriteAllBytes(
            index,
            [0xEF, 0xBB, 0xBF, .. "{\"metadata\":{\"total_size\":24,\"note\":\"hi\"},\"weight_map\":{\"c\":\"s.safetensors\",\"a\":\"s.safetensors\",\"b\":\"s.safetensors\"}}"u8]);

        TensorFile file = SafetensorsReader.Read(index);

        Assert.Equal(["a", "b", "c"], file.Tensors.Keys);
        Assert.Equal([5f, 6f], file.Tensors["c"].ToTensor().Data);

        // Metadata: the shard's own first, then the index's string entries (total_size is a number: dropped).
        Assert.Equal(["format", "note"], file.Metadata.Keys);
        Assert.Equal("hi", file.Metadata["note"]);
    }

    [Theory]
    [InlineData("[]", "the index is an array, expected a JSON object with a \"weight_map\".")]
    [InlineData("{\"weight_map\":[]}", "\"weight_map\" is an array, expected an object mapping tensor names to shard files.")]
    [InlineData("{\"weight_map\":{},\"metadata\":[1]}", "\"metadata\" is an array, expected an object.")]
    public void ReadIndex_WrongShapes_NameWhatTheyAre(string json, string problem)
    {
        using var dir = new TempDir();
        string index = dir.File("model.safetensors.index.json");
        File.WriteAllText(index, json);

        var e = ReadFails(index);

        Assert.Equal($"{index}: {problem}", e.Message);
    }

    [Theory]
    [InlineData("{\"w\":3}", "3")]
    [InlineData("{\"w\":\"\"}", "\"\"")]
    [InlineData("{\"w\":null}", "null")]
    public void ReadIndex_ShardThatIsNotAFileName_IsRefused(string map, string shown)
    {
        using var dir = new TempDir();
        string index = dir.File("model.safetensors.index.json");
        File.WriteAllText(index, "{\"weight_map\":" + map + "}");

        var e = ReadFails(index, key: "w");

        Assert.EndsWith($": weight_map gives {shown} as the shard; expected a file name.", e.Message);
    }

    [Fact]
    public void ReadIndex_TensorListedTwice_IsRefused()
    {
        using var dir = new TempDir();
        string index = dir.File("model.safetensors.index.json");
        File.WriteAllText(index, "{\"weight_map\":{\"w\":\"a.safetensors\",\"w\":\"b.safetensors\"}}");

        var e = ReadFails(index, key: "w");

        Assert.EndsWith(": weight_map lists this tensor twice.", e.Message);
    }

    [Fact]
    public void ReadIndex_StringThatIsNotValidText_IsRefused()
    {
        using var dir = new TempDir();
        string index = dir.File("model.safetensors.index.json");
        File.WriteAllText(index, "{\"weight_map\":{\"\\udc00\":\"a.safetensors\"}}");

        var e = ReadFails(index);

        Assert.StartsWith($"{index}: the index holds a string that is not valid text: ", e.Message);
    }

    [Fact]
    public void ReadIndex_EmptyWeightMap_IsAnEmptyFileWithTheIndexMetadata()
    {
        using var dir = new TempDir();
        string index = dir.File("model.safetensors.index.json");
        File.WriteAllText(index, "{\"weight_map\":{},\"metadata\":null}");

        TensorFile file = SafetensorsReader.Read(index);

        Assert.Empty(file.Tensors);
        Assert.Empty(file.Metadata);
    }

    [Theory]
    [InlineData(131072)]
    [InlineData(131073)]
    public void ReadIndex_WeightMapListingMoreThanTheMostTensors_IsRefused(int count)
    {
        using var dir = new TempDir();
        string index = dir.File("model.safetensors.index.json");
        var json = new StringBuilder("{\"weight_map\":{");
        for (int i = 0; i < count; i++)
        {
            json.Append(i == 0 ? "" : ",").Append("\"t").Append(i).Append("\":\"s.safetensors\"");
        }

        File.WriteAllText(index, json.Append("}}").ToString());

        if (count > 131072)
        {
            var e = ReadFails(index, key: "t131072");
            Assert.EndsWith(": weight_map lists more than 131072 tensors, the most this reader accepts.", e.Message);
        }
        else
        {
            // At the limit the index is accepted; the (missing) shard is what fails.
            var e = ReadFails(index, key: "t0");
            Assert.Contains(": weight_map assigns 131072 tensor(s) to shard 's.safetensors', but ", e.Message);
            Assert.EndsWith(" does not exist.", e.Message);
        }
    }

    [Fact]
    public void ReadIndex_DirectoryOrMissingIndex_SaysSo()
    {
        using var dir = new TempDir();
        string folder = dir.File("model.safetensors.index.json");
        Directory.CreateDirectory(folder);
        Assert.Equal($"{folder}: is a directory, not a safetensors index file.", ReadFails(folder).Message);

        string missing = dir.File("other.safetensors.index.json");
        Assert.Equal($"{missing}: the index file does not exist.", ReadFails(missing).Message);
    }

    [Fact]
    public void ReadIndex_LargerThanAHeaderMayBe_IsRefusedUnread()
    {
        using var dir = new TempDir();
        string index = dir.File("model.safetensors.index.json");
        using (var fs = File.Create(index))
        {
            fs.SetLength(100_000_001);
        }

        Assert.Equal(
            $"{index}: the index file has 100000001 bytes, more than the 100000000 a safetensors header may have.",
            ReadFails(index).Message);
    }

    [Fact]
    public void ReadIndex_ShardThatIsADirectory_SaysSo()
    {
        using var dir = new TempDir();
        Directory.CreateDirectory(dir.File("s.safetensors"));
        string index = dir.File("model.safetensors.index.json");
        File.WriteAllText(index, "{\"weight_map\":{\"x\":\"s.safetensors\",\"w\":\"s.safetensors\"}}");

        var e = ReadFails(index, key: "x");

        Assert.EndsWith($": weight_map assigns 2 tensor(s) to shard 's.safetensors', but {dir.File("s.safetensors")} is a directory.", e.Message);
    }

    [Fact]
    public void ReadIndex_AbsoluteShardPath_IsRefusedEvenInsideTheFolder()
    {
        using var dir = new TempDir();
        SafetensorsWriter.Write(dir.File("s.safetensors"), SmallFile());
        string index = dir.File("model.safetensors.index.json");
        File.WriteAllText(index, "{\"weight_map\":{\"a\":\"" + dir.File("s.safetensors") + "\"}}");

        var e = ReadFails(index, key: "a");

        Assert.EndsWith($": weight_map names shard '{dir.File("s.safetensors")}', which is not a file inside the index's folder {dir.Path}.", e.Message);
    }

    [Fact]
    public void ReadIndex_ShardNamedLikeTheFolderButBesideIt_IsRefused()
    {
        // "../m2/x" resolves to a sibling folder whose name starts with the index folder's name ("m"): the check is on
        // whole folder names, not a string prefix.
        using var dir = new TempDir();
        Directory.CreateDirectory(dir.File("m"));
        Directory.CreateDirectory(dir.File("m2"));
        SafetensorsWriter.Write(dir.File("m2/s.safetensors"), SmallFile());
        string index = dir.File("m/model.safetensors.index.json");
        File.WriteAllText(index, "{\"weight_map\":{\"a\":\"../m2/s.safetensors\"}}");

        var e = ReadFails(index, key: "a");

        Assert.Contains("which is not a file inside the index's folder", e.Message);
    }

    [Fact]
    public void ReadIndex_ShardInASubfolder_IsRead()
    {
        using var dir = new TempDir();
        Directory.CreateDirectory(dir.File("parts"));
        SafetensorsWriter.Write(dir.File("parts/s.safetensors"), SmallFile());
        string index = dir.File("model.safetensors.index.json");
        File.WriteAllText(index, "{\"weight_map\":{\"a\":\"parts/s.safetensors\",\"b\":\"parts/s.safetensors\",\"c\":\"./parts/../parts/s.safetensors\"}}");

        // "./parts/../parts/s.safetensors" is the same file under another name, so "c" is assigned to a shard
        // other than the one it is read from.
        var e = ReadFails(dir.File("parts/s.safetensors"), key: "a", read: index);
        Assert.Contains("appears in shard", e.Message);

        File.WriteAllText(index, "{\"weight_map\":{\"a\":\"parts/s.safetensors\",\"b\":\"parts/s.safetensors\",\"c\":\"parts/s.safetensors\"}}");
        Assert.Equal(["a", "b", "c"], SafetensorsReader.Read(index).Tensors.Keys);
    }

    [Fact]
    public void ReadIndex_ShardsDisagreeingOnMetadata_AreRefused()
    {
        using var dir = new TempDir();
        var first = new TensorFile([new("a", StoredTensor.FromInt64(1))], [new("format", "pt"), new("same", "x")]);
        var second = new TensorFile([new("b", StoredTensor.FromInt64(2))], [new("same", "x"), new("format", "np")]);
        SafetensorsWriter.Write(dir.File("m-1.safetensors"), first);
        SafetensorsWriter.Write(dir.File("m-2.safetensors"), second);
        string index = dir.File("m.safetensors.index.json");
        File.WriteAllText(index, "{\"weight_map\":{\"a\":\"m-1.safetensors\",\"b\":\"m-2.safetensors\"}}");

        var e = ReadFails(dir.File("m-2.safetensors"), key: "__metadata__", read: index);

        Assert.EndsWith($": metadata 'format' is 'np' here but 'pt' in {dir.File("m-1.safetensors")}.", e.Message);

        // The index's own metadata must agree too; agreeing entries are kept once.
        File.WriteAllText(index, "{\"metadata\":{\"same\":\"y\"},\"weight_map\":{\"a\":\"m-1.safetensors\"}}");
        var fromIndex = ReadFails(index, key: "__metadata__");
        Assert.EndsWith($": metadata 'same' is 'y' here but 'x' in {dir.File("m-1.safetensors")}.", fromIndex.Message);

        File.WriteAllText(index, "{\"metadata\":{\"same\":\"x\"},\"weight_map\":{\"a\":\"m-1.safetensors\"}}");
        TensorFile ok = SafetensorsReader.Read(index);
        Assert.Equal(["format", "same"], ok.Metadata.Keys);
        Assert.Equal(["pt", "x"], ok.Metadata.Values);
    }

    [Fact]
    public void ReadIndex_ShardsAreReadInNameOrder()
    {
        using var dir = new TempDir();
        SafetensorsWriter.Write(dir.File("m-2.safetensors"), new TensorFile([new("a", StoredTensor.FromInt64(1))]));
        SafetensorsWriter.Write(dir.File("m-1.safetensors"), new TensorFile([new("z", StoredTensor.FromInt64(2)), new("b", StoredTensor.FromInt64(3))]));
        string index = dir.File("m.safetensors.index.json");
        File.WriteAllText(index, "{\"weight_map\":{\"a\":\"m-2.safetensors\",\"b\":\"m-1.safetensors\",\"z\":\"m-1.safetensors\"}}");

        Assert.Equal(["z", "b", "a"], SafetensorsReader.Read(index).Tensors.Keys);
    }

    [Fact]
    public void ReadIndex_ShardBehindALinkLoop_IsRefused()
    {
        using var dir = new TempDir();
        File.CreateSymbolicLink(dir.File("a.safetensors"), "b.safetensors");
        File.CreateSymbolicLink(dir.File("b.safetensors"), "a.safetensors");
        string index = dir.File("m.safetensors.index.json");
        File.WriteAllText(index, "{\"weight_map\":{\"w\":\"a.safetensors\"}}");

        var e = ReadFails(index, key: "w");

        Assert.Contains(": weight_map names shard 'a.safetensors', whose links cannot be resolved: more than 40 symbolic links in ", e.Message);
    }

    [Fact]
    public void ReadIndex_ShardBehindAChainOfLinksInsideTheFolder_IsRead()
    {
        // Forty links, each relative to its own folder: exactly the 40-hop limit (the loop above passes it).
        using var dir = new TempDir();
        SafetensorsWriter.Write(dir.File("real.safetensors"), SmallFile());
        Directory.CreateDirectory(dir.File("sub"));
        File.CreateSymbolicLink(dir.File("sub/l0"), "../real.safetensors");
        for (int i = 1; i < 40; i++)
        {
            File.CreateSymbolicLink(dir.File($"sub/l{i}"), $"l{i - 1}");
        }

        string index = dir.File("m.safetensors.index.json");
        File.WriteAllText(index, "{\"weight_map\":{\"a\":\"sub/l39\",\"b\":\"sub/l39\",\"c\":\"sub/l39\"}}");

        Assert.Equal(["a", "b", "c"], SafetensorsReader.Read(index).Tensors.Keys);
        Assert.Equal(dir.File("real.safetensors"), SafetensorsReader.RealPath(dir.File("sub/l39")));
    }

    [Theory]
    [InlineData("snapshot")] // not the cache's "snapshots" folder
    [InlineData("snapshots")]
    public void ReadIndex_LinkIntoBlobs_IsAcceptedOnlyFromASnapshotsFolder(string snapshots)
    {
        using var dir = new TempDir();
        string snapshot = dir.File($"models--x--y/{snapshots}/0123abc");
        Directory.CreateDirectory(snapshot);
        Directory.CreateDirectory(dir.File("models--x--y/blobs"));
        Directory.CreateDirectory(dir.File("models--x--y/other"));
        SafetensorsWriter.Write(dir.File("models--x--y/blobs/9f8e7d"), new TensorFile([new("a", StoredTensor.FromInt64(7))]));
        SafetensorsWriter.Write(dir.File("models--x--y/other/9f8e7d"), new TensorFile([new("b", StoredTensor.FromInt64(8))]));
        File.CreateSymbolicLink(Path.Combine(snapshot, "a.safetensors"), "../../blobs/9f8e7d");
        File.CreateSymbolicLink(Path.Combine(snapshot, "b.safetensors"), "../../other/9f8e7d");
        string index = Path.Combine(snapshot, "model.safetensors.index.json");

        File.WriteAllText(index, "{\"weight_map\": {\"a\": \"a.safetensors\"}}");
        if (snapshots == "snapshots")
        {
            Assert.Equal([7L], SafetensorsReader.Read(index).Tensors["a"].ToInt64());
        }
        else
        {
            Assert.Contains("which is outside the index's folder", ReadFails(index, key: "a").Message);
        }

        // A link from a snapshot to anywhere but blobs is refused.
        File.WriteAllText(index, "{\"weight_map\": {\"b\": \"b.safetensors\"}}");
        Assert.Contains("which is outside the index's folder", ReadFails(index, key: "b").Message);
    }

    // ---- writing --------------------------------------------------------------------------------

    [Fact]
    public void Write_NullOrEmptyArguments_Throw()
    {
        using var dir = new TempDir();
        Assert.Throws<ArgumentException>(() => SafetensorsWriter.Write("", SmallFile()));
        Assert.Throws<ArgumentNullException>(() => SafetensorsWriter.Write(dir.File("x.safetensors"), null!));
        Assert.Throws<ArgumentException>(() => SafetensorsWriter.WriteSharded("", SmallFile(), 8));
        Assert.Throws<ArgumentNullException>(() => SafetensorsWriter.WriteSharded(dir.File("m.safetensors.index.json"), null!, 8));
        Assert.Throws<ArgumentOutOfRangeException>(() => SafetensorsWriter.WriteSharded(dir.File("m.safetensors.index.json"), SmallFile(), -1));
        Assert.Empty(Directory.GetFiles(dir.Path));
    }

    [Fact]
    public void WriteSharded_IndexNames_MustHaveAPrefixAndTheSuffix()
    {
        using var dir = new TempDir();

        var bare = Assert.Throws<ArgumentException>(() => SafetensorsWriter.WriteSharded(dir.File(".safetensors.index.json"), SmallFile(), 8));
        Assert.Equal("indexPath", bare.ParamName);
        Assert.StartsWith(
            "A sharded checkpoint's index must be named <prefix>.safetensors.index.json (e.g. model.safetensors.index.json); got '.safetensors.index.json'.",
            bare.Message);

        var wrong = Assert.Throws<ArgumentException>(() => SafetensorsWriter.WriteSharded(dir.File("model.safetensors.index.JSON"), SmallFile(), 8));
        Assert.Contains("got 'model.safetensors.index.JSON'", wrong.Message);

        var empty = Assert.Throws<ArgumentException>(() => SafetensorsWriter.WriteSharded(dir.File("m.safetensors.index.json"), new TensorFile(), 8));
        Assert.Equal("file", empty.ParamName);
        Assert.StartsWith("There is nothing to shard: the file has no tensors.", empty.Message);

        // A one-character prefix is enough.
        SafetensorsWriter.WriteSharded(dir.File("m.safetensors.index.json"), SmallFile(), 100);
        Assert.True(File.Exists(dir.File("m-00001-of-00001.safetensors")));
        Assert.Equal(2, Directory.GetFiles(dir.Path).Length);
    }

    [Theory]
    [InlineData(7L, new[] { "a", "b", "c" })] // every tensor (8 bytes) is over the limit: one shard each
    [InlineData(8L, new[] { "a", "b", "c" })]
    [InlineData(15L, new[] { "a", "b", "c" })]
    [InlineData(23L, new[] { "ab", "c" })]
    [InlineData(24L, new[] { "abc" })] // exactly the limit fits
    public void WriteSharded_ClosesAShardBeforeATensorThatWouldPassTheLimit(long maxShardBytes, string[] expected)
    {
        using var dir = new TempDir();
        string index = dir.File("m.safetensors.index.json");

        SafetensorsWriter.WriteSharded(index, SmallFile(), maxShardBytes);

        int n = expected.Length;
        for (int i = 0; i < n; i++)
        {
            TensorFile shard = SafetensorsReader.Read(dir.File($"m-{i + 1:D5}-of-{n:D5}.safetensors"));
            Assert.Equal(expected[i].Select(c => c.ToString()), shard.Tensors.Keys);
            Assert.Equal("pt", shard.Metadata["format"]);
        }

        Assert.Equal(n + 1, Directory.GetFiles(dir.Path).Length);
    }

    [Fact]
    public void WriteSharded_WritesTheIndexAsHuggingFaceDoes()
    {
        using var dir = new TempDir();
        string index = dir.File("model.safetensors.index.json");
        var file = SmallFile();
        file.Tensors.Add("B", new StoredTensor(DType.U8, [3], [1, 2, 3]));

        SafetensorsWriter.WriteSharded(index, file, maxShardBytes: 16);

        // json.dumps(index, indent=2, sort_keys=True) + "\n": keys in ordinal order ("B" before "a").
        string expected =
            "{\n" +
            "  \"metadata\": {\n" +
            "    \"total_size\": 27\n" +
            "  },\n" +
            "  \"weight_map\": {\n" +
            "    \"B\": \"model-00002-of-00002.safetensors\",\n" +
            "    \"a\": \"model-00001-of-00002.safetensors\",\n" +
            "    \"b\": \"model-00001-of-00002.safetensors\",\n" +
            "    \"c\": \"model-00002-of-00002.safetensors\"\n" +
            "  }\n" +
            "}\n";
        Assert.Equal(expected, File.ReadAllText(index));
        Assert.Equal(["c", "B"], SafetensorsReader.Read(dir.File("model-00002-of-00002.safetensors")).Tensors.Keys);
    }

    [Fact]
    public void WriteSharded_InvalidTensor_WritesNothing()
    {
        using var dir = new TempDir();
        var file = SmallFile();
        file.Tensors["c"].Shape[0] = 3;

        var e = Assert.Throws<CheckpointException>(() => SafetensorsWriter.WriteSharded(dir.File("m.safetensors.index.json"), file, 8));

        Assert.Equal(dir.File("m-00003-of-00003.safetensors"), e.FilePath);
        Assert.Equal("c", e.Key);
        Assert.Empty(Directory.GetFiles(dir.Path));
    }

    [Fact]
    public void Write_NullTensor_IsRefusedByName()
    {
        using var dir = new TempDir();
        string path = dir.File("x.safetensors");
        var file = new TensorFile();
        file.Tensors.Add("n", null!);

        var e = Assert.Throws<CheckpointException>(() => SafetensorsWriter.Write(path, file));

        Assert.Equal($"{path}: key 'n': the tensor is null.", e.Message);
        Assert.Empty(Directory.GetFiles(dir.Path));
    }

    // Lone surrogates cannot go through attribute data (it is stored as UTF-8), so the cases are indexed.
    private static readonly string[] UnpairedSurrogateNames =
    [
        "a\ud800", // high surrogate at the end
        "\ud800a", // high surrogate before a non-surrogate
        "\udc00", // low surrogate alone
        "\ud800\ud800\udc00", // high, then a valid pair
    ];

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void Write_NameWithAnUnpairedSurrogate_IsRefused(int which)
    {
        string name = UnpairedSurrogateNames[which];
        using var dir = new TempDir();
        string path = dir.File("x.safetensors");
        var file = new TensorFile([new(name, StoredTensor.FromInt64(1))]);

        var e = Assert.Throws<CheckpointException>(() => SafetensorsWriter.Write(path, file));

        Assert.Equal(name, e.Key);
        Assert.Equal("the tensor name has an unpaired surrogate, which UTF-8 cannot hold.", e.Problem);
        Assert.Empty(Directory.GetFiles(dir.Path));
    }

    [Fact]
    public void Write_NamesAndMetadataWithSurrogatePairs_RoundTrip()
    {
        using var dir = new TempDir();
        string path = dir.File("x.safetensors");
        // U+1F600 is F0 9F 98 80 in UTF-8; the header holds it raw, as serde_json writes it.
        var file = new TensorFile([new("\ud83d\ude00", StoredTensor.FromInt64(1))], [new("k\ud83d\ude00", "v\ud83d\ude00")]);

        SafetensorsWriter.Write(path, file);

        Assert.Contains("\"k\ud83d\ude00\":\"v\ud83d\ude00\"", HeaderText(path));
        TensorFile back = SafetensorsReader.Read(path);
        Assert.Equal(["\ud83d\ude00"], back.Tensors.Keys);
        Assert.Equal("v\ud83d\ude00", back.Metadata["k\ud83d\ude00"]);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    public void Write_MetadataThatUtf8CannotHold_IsRefused(int which)
    {
        (string key, string? value) = which switch
        {
            0 => ("k\ud800", "v"),
            1 => ("k", "\udc00v"),
            _ => ("k", (string?)null),
        };
        using var dir = new TempDir();
        string path = dir.File("x.safetensors");
        var file = new TensorFile([new("w", StoredTensor.FromInt64(1))]);
        file.Metadata.Add("ok", "fine");
        file.Metadata.Add(key, value!);

        var e = Assert.Throws<CheckpointException>(() => SafetensorsWriter.Write(path, file));

        Assert.Equal("__metadata__", e.Key);
        Assert.Equal($"metadata entry '{key}' has a null value or text with an unpaired surrogate, which UTF-8 cannot hold.", e.Problem);
        Assert.Empty(Directory.GetFiles(dir.Path));
    }

    [Fact]
    public void Write_EscapesEveryControlCharacterLikeSerdeJson()
    {
        using var dir = new TempDir();
        string path = dir.File("x.safetensors");
        var file = new TensorFile([new("w", StoredTensor.FromInt64(1))]);
        file.Metadata.Add("c", "\b\f\r\n\t\u0000\u001f \u007f/");

        SafetensorsWriter.Write(path, file);

        // serde_json: short forms for \b \f \n \r \t, \u00xx (lowercase) for the other controls, nothing else escaped.
        Assert.StartsWith("{\"__metadata__\":{\"c\":\"\\b\\f\\r\\n\\t\\u0000\\u001f \u007f/\"},\"w\":", HeaderText(path));
        Assert.Equal("\b\f\r\n\t\u0000\u001f \u007f/", SafetensorsReader.Read(path).Metadata["c"]);
    }

    [Fact]
    public void Write_MetadataEntriesAreSeparatedByCommas()
    {
        using var dir = new TempDir();
        string path = dir.File("x.safetensors");
        var file = new TensorFile([], [new("a", "1"), new("b", "2"), new("c", "3")]);

        SafetensorsWriter.Write(path, file);

        Assert.Equal("{\"__metadata__\":{\"a\":\"1\",\"b\":\"2\",\"c\":\"3\"}}", HeaderText(path).TrimEnd(' '));
        Assert.Empty(SafetensorsReader.Read(path).Tensors);
    }

    [Fact]
    public void Write_HeaderAlreadyAligned_GetsNoPadding()
    {
        using var dir = new TempDir();
        string path = dir.File("x.safetensors");
        // {"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}} is 53 bytes; a 4-character name makes it 56.
        var file = new TensorFile([new("wwww", new StoredTensor(DType.U8, [1], [9]))]);

        SafetensorsWriter.Write(path, file);

        byte[] bytes = File.ReadAllBytes(path);
        Assert.Equal(56UL, BinaryPrimitives.ReadUInt64LittleEndian(bytes));
        Assert.Equal(8 + 56 + 1, bytes.Length);
        Assert.Equal((byte)'}', bytes[8 + 55]);
        Assert.Equal(9, bytes[^1]);
    }

    [Fact]
    public void Write_ShapeChangedToANegativeOrHugeDimension_IsRefused()
    {
        using var dir = new TempDir();
        string path = dir.File("x.safetensors");

        var negative = new TensorFile([new("w", new StoredTensor(DType.U8, [1, 2], [1, 2]))]);
        negative.Tensors["w"].Shape[1] = -2;
        var e = Assert.Throws<CheckpointException>(() => SafetensorsWriter.Write(path, negative));
        Assert.Equal("shape [1, -2] has a negative dimension.", e.Problem);

        var huge = new TensorFile([new("w", new StoredTensor(DType.I16, [1, 1, 1], [1, 2]))]);
        int[] shape = huge.Tensors["w"].Shape;
        (shape[0], shape[1], shape[2]) = (6, 715827883, 2147483647);
        e = Assert.Throws<CheckpointException>(() => SafetensorsWriter.Write(path, huge));
        Assert.Equal("shape [6, 715827883, 2147483647] has more elements than fit in 64 bits.", e.Problem);

        // One byte per element fits exactly below long.MaxValue, so the byte count is what is wrong.
        var edge = new TensorFile([new("w", new StoredTensor(DType.U8, [1, 1, 1], [1]))]);
        shape = edge.Tensors["w"].Shape;
        (shape[0], shape[1], shape[2]) = (6, 715827883, 2147483647);
        e = Assert.Throws<CheckpointException>(() => SafetensorsWriter.Write(path, edge));
        Assert.StartsWith("shape [6, 715827883, 2147483647] with dtype U8 needs 9223372036854775806 bytes, but the tensor holds 1 bytes", e.Problem);

        // A zero dimension before huge ones is an empty tensor.
        var empty = new TensorFile([new("w", new StoredTensor(DType.F64, [0, 1, 1], []))]);
        shape = empty.Tensors["w"].Shape;
        (shape[0], shape[1], shape[2]) = (0, 2147483647, 2147483647);
        SafetensorsWriter.Write(path, empty);
        Assert.Equal([0, 2147483647, 2147483647], SafetensorsReader.Read(path).Tensors["w"].Shape);
    }

    [Fact]
    public void Write_IntoAMissingFolder_IsACheckpointException()
    {
        using var dir = new TempDir();
        string path = dir.File("missing/x.safetensors");

        var e = Assert.Throws<CheckpointException>(() => SafetensorsWriter.Write(path, SmallFile()));

        Assert.Equal(path, e.FilePath);
        Assert.Contains("does not exist", e.Problem);
    }
}
