using System.Buffers.Binary;
using System.IO.Compression;

namespace MobileOne.Data;

/// <summary>An IDX array of unsigned bytes: big-endian dimensions and the row-major data they describe.</summary>
public sealed class IdxArray
{
    public IdxArray(int[] dimensions, byte[] data)
    {
        ArgumentNullException.ThrowIfNull(dimensions);
        ArgumentNullException.ThrowIfNull(data);
        long count = 1;
        foreach (int d in dimensions)
        {
            if (d < 0)
            {
                throw new ArgumentException($"IDX dimension {d} is negative.", nameof(dimensions));
            }

            count *= d;
        }

        if (count != data.Length)
        {
            throw new ArgumentException($"IDX dimensions [{string.Join(", ", dimensions)}] hold {count} bytes but the data has {data.Length}.", nameof(data));
        }

        Dimensions = (int[])dimensions.Clone();
        Data = data;
    }

    public int[] Dimensions { get; }

    public byte[] Data { get; }

    /// <summary>The magic number of this array: 0x0000 0x08 (unsigned byte) then the dimension count.</summary>
    public int Magic => 0x0800 | Dimensions.Length;
}

/// <summary>
/// Reads and writes IDX files (the MNIST / Fashion-MNIST format), gzip-compressed or not: the reader
/// recognises gzip by its two magic bytes, not by the file name.
/// </summary>
public static class IdxFile
{
    /// <summary>Unsigned bytes, 3 dimensions (count, rows, columns).</summary>
    public const int ImagesMagic = 2051;

    /// <summary>Unsigned bytes, 1 dimension (count).</summary>
    public const int LabelsMagic = 2049;

    public static IdxArray Read(string path, int expectedMagic)
    {
        byte[] raw;
        try
        {
            raw = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new DatasetException($"{path}: cannot be read: {e.Message}", e);
        }

        return Parse(raw, path, expectedMagic);
    }

    public static IdxArray Read(Stream stream, string name, int expectedMagic)
    {
        ArgumentNullException.ThrowIfNull(stream);
        using var buffer = new MemoryStream();
        stream.CopyTo(buffer);
        return Parse(buffer.ToArray(), name, expectedMagic);
    }

    /// <summary>Parses IDX bytes (gzip or raw); <paramref name="name"/> is used in messages.</summary>
    public static IdxArray Parse(byte[] raw, string name, int expectedMagic)
    {
        ArgumentNullException.ThrowIfNull(raw);
        byte[] bytes = IsGzip(raw) ? Gunzip(raw, name) : raw;
        if (bytes.Length < 4)
        {
            throw new DatasetException($"{name}: truncated IDX header: {bytes.Length} bytes, expected at least 4 (the magic number).");
        }

        int magic = BinaryPrimitives.ReadInt32BigEndian(bytes);
        if (magic != expectedMagic)
        {
            throw new DatasetException(
                $"{name}: magic number {magic} (0x{magic:X8}), expected {expectedMagic} (0x{expectedMagic:X8}: {Describe(expectedMagic)}).");
        }

        int rank = magic & 0xFF;
        int headerLength = 4 + (4 * rank);
        if (bytes.Length < headerLength)
        {
            throw new DatasetException($"{name}: truncated IDX header: {bytes.Length} bytes, expected {headerLength} for {rank} dimensions.");
        }

        var dims = new int[rank];
        long count = 1;
        for (int i = 0; i < rank; i++)
        {
            dims[i] = BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(4 + (4 * i)));
            if (dims[i] < 0)
            {
                throw new DatasetException($"{name}: dimension {i} is {dims[i]}; IDX dimensions must not be negative.");
            }

            count *= dims[i];
        }

        long available = bytes.Length - headerLength;
        if (available < count)
        {
            throw new DatasetException(
                $"{name}: truncated: the header declares [{string.Join(", ", dims)}] = {count} bytes of data but only {available} bytes follow.");
        }

        if (available > count)
        {
            throw new DatasetException(
                $"{name}: {available - count} unexpected bytes after the {count} bytes of data that the header [{string.Join(", ", dims)}] declares.");
        }

        return new IdxArray(dims, bytes.AsSpan(headerLength).ToArray());
    }

    public static void Write(string path, IdxArray array, bool gzip)
    {
        using var file = File.Create(path);
        Write(file, array, gzip);
    }

    public static void Write(Stream stream, IdxArray array, bool gzip)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(array);
        if (gzip)
        {
            using var z = new GZipStream(stream, CompressionLevel.SmallestSize, leaveOpen: true);
            WriteRaw(z, array);
        }
        else
        {
            WriteRaw(stream, array);
        }
    }

    private static void WriteRaw(Stream stream, IdxArray array)
    {
        Span<byte> word = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(word, array.Magic);
        stream.Write(word);
        foreach (int d in array.Dimensions)
        {
            BinaryPrimitives.WriteInt32BigEndian(word, d);
            stream.Write(word);
        }

        stream.Write(array.Data);
    }

    private static bool IsGzip(byte[] raw) => raw.Length >= 2 && raw[0] == 0x1F && raw[1] == 0x8B;

    private static byte[] Gunzip(byte[] raw, string name)
    {
        try
        {
            using var z = new GZipStream(new MemoryStream(raw), CompressionMode.Decompress);
            using var output = new MemoryStream(raw.Length * 4);
            z.CopyTo(output);
            return output.ToArray();
        }
        catch (InvalidDataException e)
        {
            throw new DatasetException($"{name}: the gzip stream is corrupt or truncated ({e.Message}).", e);
        }
    }

    private static string Describe(int magic) => magic switch
    {
        ImagesMagic => "IDX images, unsigned bytes, 3 dimensions",
        LabelsMagic => "IDX labels, unsigned bytes, 1 dimension",
        _ => $"IDX, type 0x{(magic >> 8) & 0xFF:X2}, {magic & 0xFF} dimensions",
    };
}
