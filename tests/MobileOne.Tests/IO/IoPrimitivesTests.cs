using System.Buffers.Binary;
using System.Text;
using MobileOne.IO;
using MobileOne.Tensors;

namespace MobileOne.Tests.IO;

/// <summary>
/// The small IO types every format builds on: <see cref="DTypeInfo"/>, <see cref="StoredTensor"/>,
/// <see cref="TensorFile"/>, <see cref="CheckpointException"/> and <see cref="AtomicFile"/>. Expected bytes are
/// written out by hand (IEEE bit patterns, little-endian), not produced by the code under test.
/// </summary>
public class IoPrimitivesTests
{
    // ---- DTypeInfo -------------------------------------------------------------------------------

    [Theory]
    [InlineData(DType.F64, 8, true, "F64")]
    [InlineData(DType.F32, 4, true, "F32")]
    [InlineData(DType.F16, 2, true, "F16")]
    [InlineData(DType.BF16, 2, true, "BF16")]
    [InlineData(DType.I64, 8, false, "I64")]
    [InlineData(DType.I32, 4, false, "I32")]
    [InlineData(DType.I16, 2, false, "I16")]
    [InlineData(DType.I8, 1, false, "I8")]
    [InlineData(DType.U8, 1, false, "U8")]
    [InlineData(DType.Bool, 1, false, "BOOL")]
    public void DTypeInfo_SizeFloatnessAndNameOfEveryDType(DType dtype, int size, bool floating, string name)
    {
        Assert.Equal(size, DTypeInfo.SizeOf(dtype));
        Assert.Equal(floating, DTypeInfo.IsFloatingPoint(dtype));
        Assert.Equal(name, DTypeInfo.ToSafetensorsName(dtype));
        Assert.True(DTypeInfo.TryParseSafetensorsName(name, out DType parsed));
        Assert.Equal(dtype, parsed);
    }

    [Theory]
    [InlineData("")]
    [InlineData("f32")]
    [InlineData("Bool")]
    [InlineData("F8")]
    [InlineData("U16")]
    [InlineData("F32 ")]
    public void DTypeInfo_UnknownNames_AreNotParsed(string name)
    {
        Assert.False(DTypeInfo.TryParseSafetensorsName(name, out DType parsed));
        Assert.Equal(default, parsed);
    }

    [Fact]
    public void DTypeInfo_SizeOfAnUndefinedValue_Throws()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => DTypeInfo.SizeOf((DType)99));
        Assert.Equal("dtype", e.ParamName);
    }

    // ---- StoredTensor: construction -------------------------------------------------------------

    [Fact]
    public void StoredTensor_ByteCountMismatch_GivesDTypeShapeAndBothCounts()
    {
        var e = Assert.Throws<ArgumentException>(() => new StoredTensor(DType.F32, [2, 3], new byte[23]));
        Assert.Equal("data", e.ParamName);
        Assert.StartsWith("A F32 tensor of shape [2, 3] needs 24 bytes, got 23.", e.Message);

        // One byte too many is refused as well as one too few.
        Assert.Throws<ArgumentException>(() => new StoredTensor(DType.I16, [3], new byte[7]));
    }

    [Fact]
    public void StoredTensor_NullShapeOrData_Throws()
    {
        Assert.Equal("shape", Assert.Throws<ArgumentNullException>(() => new StoredTensor(DType.U8, null!, [])).ParamName);
        Assert.Equal("data", Assert.Throws<ArgumentNullException>(() => new StoredTensor(DType.U8, [0], null!)).ParamName);
    }

    [Fact]
    public void StoredTensor_KeepsItsOwnCopyOfTheShapeAndTheGivenBytes()
    {
        int[] shape = [2, 2];
        byte[] data = [1, 2, 3, 4];
        var t = new StoredTensor(DType.U8, shape, data);
        shape[0] = 4;

        Assert.Equal([2, 2], t.Shape);
        Assert.Same(data, t.Data);
        Assert.Equal(DType.U8, t.DType);
        Assert.Equal(4, t.ElementCount());
    }

    [Theory]
    [InlineData(new int[0], 1L)]
    [InlineData(new[] { 7 }, 7L)]
    [InlineData(new[] { 2, 3, 4 }, 24L)]
    [InlineData(new[] { 5, 0, 3 }, 0L)]
    [InlineData(new[] { 65536, 65536 }, 4294967296L)]
    public void StoredTensor_ElementCount_IsTheProductOfTheShape(int[] shape, long expected)
    {
        Assert.Equal(expected, StoredTensor.ElementCount(shape));
    }

    [Fact]
    public void StoredTensor_ElementCount_RefusesNegativeDimensionsAndOverflow()
    {
        var e = Assert.Throws<ArgumentException>(() => StoredTensor.ElementCount([2, -1]));
        Assert.Equal("shape", e.ParamName);
        Assert.StartsWith("Shape [2, -1] has a negative dimension.", e.Message);

        // A zero dimension is fine; 2^31 * 2^31 * 4 does not fit a long.
        Assert.Throws<OverflowException>(() => StoredTensor.ElementCount([int.MaxValue, int.MaxValue, int.MaxValue]));
    }

    // ---- StoredTensor: decoding ------------------------------------------------------------------

    [Fact]
    public void ToTensor_F32_ReadsLittleEndianSingles()
    {
        // 1.0f = 0x3F800000, -2.5f = 0xC0200000, 0.15625f = 0x3E200000.
        byte[] data = [0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x20, 0xC0, 0x00, 0x00, 0x20, 0x3E];
        Tensor t = new StoredTensor(DType.F32, [3, 1], data).ToTensor();
        Assert.Equal([3, 1], t.Shape);
        Assert.Equal([1f, -2.5f, 0.15625f], t.Data);
    }

    [Fact]
    public void ToTensor_F64_ReadsLittleEndianDoubles()
    {
        // 1.0 = 0x3FF0000000000000, -0.5 = 0xBFE0000000000000.
        byte[] data = [0, 0, 0, 0, 0, 0, 0xF0, 0x3F, 0, 0, 0, 0, 0, 0, 0xE0, 0xBF];
        Tensor t = new StoredTensor(DType.F64, [2], data).ToTensor();
        Assert.Equal([1f, -0.5f], t.Data);
    }

    [Fact]
    public void ToTensor_F16_ReadsLittleEndianHalves()
    {
        // 1.0 = 0x3C00, -2.0 = 0xC000, 0.5 = 0x3800, 65504 (largest half) = 0x7BFF.
        byte[] data = [0x00, 0x3C, 0x00, 0xC0, 0x00, 0x38, 0xFF, 0x7B];
        Tensor t = new StoredTensor(DType.F16, [2, 2], data).ToTensor();
        Assert.Equal([1f, -2f, 0.5f, 65504f], t.Data);
    }

    [Fact]
    public void ToTensor_BF16_IsTheUpperHalfOfAFloat32()
    {
        // 1.0 = 0x3F80, -3.0 = 0xC040, 1.0078125 = 0x3F81 (the last mantissa bit of bfloat16).
        byte[] data = [0x80, 0x3F, 0x40, 0xC0, 0x81, 0x3F];
        Tensor t = new StoredTensor(DType.BF16, [3], data).ToTensor();
        Assert.Equal([1f, -3f, 1.0078125f], t.Data);
    }

    [Theory]
    [InlineData(DType.I64)]
    [InlineData(DType.I32)]
    [InlineData(DType.I16)]
    [InlineData(DType.I8)]
    [InlineData(DType.U8)]
    [InlineData(DType.Bool)]
    public void ToTensor_IntegerDType_SaysItHoldsNoFloats(DType dtype)
    {
        var t = new StoredTensor(dtype, [1], new byte[DTypeInfo.SizeOf(dtype)]);
        var e = Assert.Throws<InvalidOperationException>(() => t.ToTensor());
        Assert.Equal($"A {dtype} tensor does not hold floating point values.", e.Message);
    }

    [Fact]
    public void ToInt64_ReadsEveryIntegerDTypeWithItsSign()
    {
        Assert.Equal(
            [-2L, 0x0102030405060708L],
            new StoredTensor(DType.I64, [2], [0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 8, 7, 6, 5, 4, 3, 2, 1]).ToInt64());
        Assert.Equal(
            [-1L, 0x01020304L, int.MinValue],
            new StoredTensor(DType.I32, [3], [0xFF, 0xFF, 0xFF, 0xFF, 4, 3, 2, 1, 0, 0, 0, 0x80]).ToInt64());
        Assert.Equal([-2L, 0x0102L, 300L], new StoredTensor(DType.I16, [3], [0xFE, 0xFF, 2, 1, 0x2C, 0x01]).ToInt64());
        Assert.Equal([-1L, 127L, -128L], new StoredTensor(DType.I8, [3], [0xFF, 0x7F, 0x80]).ToInt64());
        Assert.Equal([255L, 127L, 128L], new StoredTensor(DType.U8, [3], [0xFF, 0x7F, 0x80]).ToInt64());
        Assert.Equal([1L, 0L, 1L], new StoredTensor(DType.Bool, [3], [1, 0, 1]).ToInt64());
    }

    [Theory]
    [InlineData(DType.F64)]
    [InlineData(DType.F32)]
    [InlineData(DType.F16)]
    [InlineData(DType.BF16)]
    public void ToInt64_FloatDType_SaysItHoldsNoIntegers(DType dtype)
    {
        var t = new StoredTensor(dtype, [1], new byte[DTypeInfo.SizeOf(dtype)]);
        var e = Assert.Throws<InvalidOperationException>(() => t.ToInt64());
        Assert.Equal($"A {dtype} tensor does not hold integer values.", e.Message);
    }

    [Fact]
    public void ToInt64_EmptyTensor_IsEmptyWhateverTheDType()
    {
        Assert.Empty(new StoredTensor(DType.F32, [0], []).ToInt64());
    }

    // ---- StoredTensor: encoding ------------------------------------------------------------------

    [Fact]
    public void FromTensor_F32_WritesLittleEndianSingles()
    {
        var t = StoredTensor.FromTensor(new Tensor([1, 2], [1f, -2.5f]));
        Assert.Equal(DType.F32, t.DType);
        Assert.Equal([1, 2], t.Shape);
        Assert.Equal([0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x20, 0xC0], t.Data);
    }

    [Fact]
    public void FromTensor_F64_WritesLittleEndianDoubles()
    {
        var t = StoredTensor.FromTensor(new Tensor([2], [1f, -0.5f]), DType.F64);
        Assert.Equal(DType.F64, t.DType);
        Assert.Equal([0, 0, 0, 0, 0, 0, 0xF0, 0x3F, 0, 0, 0, 0, 0, 0, 0xE0, 0xBF], t.Data);
    }

    [Fact]
    public void FromTensor_F16_WritesLittleEndianHalves()
    {
        var t = StoredTensor.FromTensor(new Tensor([3], [1f, -2f, 65504f]), DType.F16);
        Assert.Equal(DType.F16, t.DType);
        Assert.Equal([0x00, 0x3C, 0x00, 0xC0, 0xFF, 0x7B], t.Data);
    }

    [Theory]
    // Exact bfloat16 values keep their upper 16 bits.
    [InlineData(0x3F800000u, (ushort)0x3F80)]
    [InlineData(0xC0400000u, (ushort)0xC040)]
    // Below half an ulp rounds down, above rounds up.
    [InlineData(0x3F807FFFu, (ushort)0x3F80)]
    [InlineData(0x3F808001u, (ushort)0x3F81)]
    // Exactly half an ulp rounds to the even neighbour: down from 0x3F80, up from 0x3F81.
    [InlineData(0x3F808000u, (ushort)0x3F80)]
    [InlineData(0x3F818000u, (ushort)0x3F82)]
    // Rounding may carry into the exponent, and past the largest finite value into infinity.
    [InlineData(0x3FFFFFFFu, (ushort)0x4000)]
    [InlineData(0x7F7FFFFFu, (ushort)0x7F80)]
    // NaNs stay NaN with the quiet bit set, even a signalling NaN whose payload sits only in the low bits
    // (rounding it would give 0x7F80, infinity).
    [InlineData(0x7F800001u, (ushort)0x7FC0)]
    [InlineData(0xFF800001u, (ushort)0xFFC0)]
    [InlineData(0x7FC00000u, (ushort)0x7FC0)]
    public void FromTensor_BF16_RoundsToNearestEvenAsTorchDoes(uint floatBits, ushort bf16Bits)
    {
        var t = StoredTensor.FromTensor(new Tensor([2], [1f, BitConverter.UInt32BitsToSingle(floatBits)]), DType.BF16);
        Assert.Equal(DType.BF16, t.DType);
        Assert.Equal(4, t.Data.Length);
        Assert.Equal((ushort)0x3F80, BinaryPrimitives.ReadUInt16LittleEndian(t.Data));
        Assert.Equal(bf16Bits, BinaryPrimitives.ReadUInt16LittleEndian(t.Data.AsSpan(2)));
    }

    [Theory]
    [InlineData(DType.I64)]
    [InlineData(DType.I8)]
    [InlineData(DType.Bool)]
    public void FromTensor_IntegerDType_IsRefused(DType dtype)
    {
        var e = Assert.Throws<ArgumentException>(() => StoredTensor.FromTensor(new Tensor([1], [1f]), dtype));
        Assert.Equal("dtype", e.ParamName);
        Assert.StartsWith($"Cannot store float values as {dtype}.", e.Message);
    }

    [Fact]
    public void FromTensor_Null_Throws()
    {
        Assert.Throws<ArgumentNullException>(() => StoredTensor.FromTensor(null!));
    }

    [Fact]
    public void FromInt64_IsAScalarI64()
    {
        var t = StoredTensor.FromInt64(-2);
        Assert.Equal(DType.I64, t.DType);
        Assert.Empty(t.Shape);
        Assert.Equal([0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF], t.Data);
    }

    // ---- TensorFile and CheckpointException ------------------------------------------------------

    [Fact]
    public void TensorFile_KeepsTheGivenOrderAndTellsKeysApartByCase()
    {
        var a = StoredTensor.FromInt64(1);
        var b = StoredTensor.FromInt64(2);
        var file = new TensorFile([new("z", a), new("Z", b)], [new("b", "1"), new("B", "2"), new("a", "3")]);

        Assert.Equal(["z", "Z"], file.Tensors.Keys);
        Assert.Same(b, file.Tensors["Z"]);
        Assert.Equal(["b", "B", "a"], file.Metadata.Keys);
        Assert.Equal("2", file.Metadata["B"]);

        var noMetadata = new TensorFile([new("x", a)]);
        Assert.Single(noMetadata.Tensors);
        Assert.Empty(noMetadata.Metadata);
        Assert.Empty(new TensorFile().Tensors);
    }

    [Fact]
    public void CheckpointException_NamesTheFileAndTheKeyWhenThereIsOne()
    {
        var inner = new IOException("disk");
        var withKey = new CheckpointException("m.safetensors", "bad shape", "w", inner);
        Assert.Equal("m.safetensors: key 'w': bad shape", withKey.Message);
        Assert.Equal("m.safetensors", withKey.FilePath);
        Assert.Equal("w", withKey.Key);
        Assert.Equal("bad shape", withKey.Problem);
        Assert.Same(inner, withKey.InnerException);

        var withoutKey = new CheckpointException("m.pt", "truncated");
        Assert.Equal("m.pt: truncated", withoutKey.Message);
        Assert.Null(withoutKey.Key);
        Assert.Null(withoutKey.InnerException);
    }

    // ---- AtomicFile ------------------------------------------------------------------------------

    [Fact]
    public void AtomicFile_WriteAllText_WritesUtf8WithoutAByteOrderMark()
    {
        using var temp = new TempDir();
        string path = temp.File("a.txt");
        AtomicFile.WriteAllText(path, "h\u00e9");
        Assert.Equal([(byte)'h', 0xC3, 0xA9], File.ReadAllBytes(path));
        Assert.Equal(["a.txt"], Directory.GetFiles(temp.Path).Select(Path.GetFileName));
    }

    [Fact]
    public void AtomicFile_Write_GoesThroughAHiddenTemporaryBesideTheTargetThenReplacesIt()
    {
        using var temp = new TempDir();
        string path = temp.File("m.bin");
        File.WriteAllBytes(path, [9, 9, 9, 9]);
        string? seen = null;

        AtomicFile.Write(path, stream =>
        {
            stream.Write([1, 2]);
            // While the callback runs, the old file is intact and the new bytes go to ".m.bin.PID.GUID.tmp".
            Assert.Equal([9, 9, 9, 9], File.ReadAllBytes(path));
            seen = Assert.Single(Directory.GetFiles(temp.Path, ".*.tmp"));
        });

        Assert.Equal([1, 2], File.ReadAllBytes(path));
        Assert.Matches(@"^\.m\.bin\." + Environment.ProcessId + @"\.[0-9a-f]{32}\.tmp$", Path.GetFileName(seen));
        Assert.Equal([path], Directory.GetFiles(temp.Path));
    }

    [Fact]
    public void AtomicFile_Write_FailingCallback_LeavesTheOldFileAndNoTemporary()
    {
        using var temp = new TempDir();
        string path = temp.File("m.bin");
        File.WriteAllBytes(path, [7]);

        var e = Assert.Throws<InvalidDataException>(() => AtomicFile.Write(path, stream =>
        {
            stream.Write([1, 2, 3]);
            throw new InvalidDataException("boom");
        }));

        Assert.Equal("boom", e.Message);
        Assert.Equal([7], File.ReadAllBytes(path));
        Assert.Equal([path], Directory.GetFiles(temp.Path));
    }

    [Fact]
    public void AtomicFile_Write_IntoAMissingFolder_NamesTheFolder()
    {
        using var temp = new TempDir();
        string path = Path.Combine(temp.Path, "missing", "m.bin");
        var e = Assert.Throws<CheckpointException>(() => AtomicFile.WriteAllText(path, "x"));
        Assert.Equal(path, e.FilePath);
        Assert.Equal($"the folder '{Path.Combine(temp.Path, "missing")}' does not exist.", e.Problem);
        Assert.False(Directory.Exists(Path.Combine(temp.Path, "missing")));
    }

    [Fact]
    public void AtomicFile_Write_OverADirectory_IsRefusedAndLeavesIt()
    {
        using var temp = new TempDir();
        string path = temp.File("d");
        Directory.CreateDirectory(path);
        var e = Assert.Throws<CheckpointException>(() => AtomicFile.WriteAllText(path, "x"));
        Assert.Equal("is a directory; expected a file path to write.", e.Problem);
        Assert.True(Directory.Exists(path));
        Assert.Equal([path], Directory.GetFileSystemEntries(temp.Path));
    }

    [Fact]
    public void AtomicFile_Write_NullArguments_Throw()
    {
        Assert.Equal("path", Assert.Throws<ArgumentNullException>(() => AtomicFile.Write(null!, _ => { })).ParamName);
        Assert.Equal("write", Assert.Throws<ArgumentNullException>(() => AtomicFile.Write("x", null!)).ParamName);
        Assert.Equal("directory", Assert.Throws<ArgumentNullException>(() => AtomicFile.RemoveStaleTemporaries(null!)).ParamName);
    }

    [Fact]
    public void AtomicFile_RemoveStaleTemporaries_RemovesOnlyWellFormedNamesOfDeadProcesses()
    {
        using var temp = new TempDir();
        string guid = Guid.NewGuid().ToString("N");
        // No process has a pid this large (Linux caps pid_max at 2^22), so it is a dead writer's.
        int dead = int.MaxValue;
        string[] removable = [$".a.bin.{dead}.{guid}.tmp", $".b.{dead}.{guid}.tmp"];
        string[] kept =
        [
            $".a.bin.{Environment.ProcessId}.{guid}.tmp", // this process: a write in progress
            $".a.bin.{dead}.{guid[..31]}.tmp", // GUID one digit short
            $".a.bin.{dead}.{guid.ToUpperInvariant()}.tmp", // GUID not lowercase hex
            $"..{dead}.{guid}.tmp", // no file name
            $".a.bin.99999999999.{guid}.tmp", // pid beyond an int
            $".a.bin.x{dead}.{guid}.tmp", // pid not all digits
            $".a.bin.{dead}.{guid}.tmp.old", // not a .tmp
            $"a.bin.{dead}.{guid}.tmp", // not hidden
        ];
        foreach (string name in removable.Concat(kept))
        {
            File.WriteAllText(temp.File(name), "partial");
        }

        var removed = AtomicFile.RemoveStaleTemporaries(temp.Path);

        Assert.Equal(removable.Order(StringComparer.Ordinal), removed.Order(StringComparer.Ordinal));
        Assert.Equal(kept.Order(StringComparer.Ordinal), Directory.GetFiles(temp.Path).Select(f => Path.GetFileName(f)!).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void AtomicFile_RemoveStaleTemporaries_OfAMissingFolder_IsEmpty()
    {
        using var temp = new TempDir();
        Assert.Empty(AtomicFile.RemoveStaleTemporaries(temp.File("none")));
        Assert.False(Directory.Exists(temp.File("none")));
    }

    [Fact]
    public void AtomicFile_RemoveStaleTemporaries_KeepsATemporaryOfALiveChildProcess()
    {
        using var temp = new TempDir();
        using var child = System.Diagnostics.Process.Start(
            new System.Diagnostics.ProcessStartInfo("sleep", "30") { UseShellExecute = false })!;
        try
        {
            string name = $".c.bin.{child.Id}.{Guid.NewGuid():N}.tmp";
            File.WriteAllText(temp.File(name), "partial");
            Assert.Empty(AtomicFile.RemoveStaleTemporaries(temp.Path));
            Assert.True(File.Exists(temp.File(name)));
        }
        finally
        {
            child.Kill();
            child.WaitForExit();
        }
    }
}
