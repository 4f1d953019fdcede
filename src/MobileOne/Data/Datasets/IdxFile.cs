using System.Buffers.Binary;
using System.IO.Compression;

namespace MobileOne.Data;

/// <summary>An IDX array of unsigned bytes: big-endian dimensions and the row-major data they describe.</summary>
internal sealed class IdxArray
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

            // Saturate instead of wrapping: a product past the data's length is a mismatch either way.
            count = count > long.MaxValue / Math.Max(d, 1) ? long.MaxValue : count * d;
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
internal static class IdxFile
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

    /// <summary>
    /// The most a gzip-compressed IDX file may expand (inflated size over file size). Fashion-MNIST and MNIST
    /// inflate about 2 to 5 times; gzip itself reaches about 1000, which is how a small file would declare
    /// gigabytes. The declared size is checked before anything is inflated.
    /// </summary>
    public const long MaxCompressionRatio = 100;

    /// <summary>Inflated sizes up to this are exempt from the ratio (a small all-zero file compresses very well).</summary>
    public const long CompressionRatioExemptBytes = 1 << 20;

    /// <summary>Parses IDX bytes (gzip or raw); <paramref name="name"/> is used in messages.</summary>
    /// <remarks>
    /// The header is read first and its dimensions multiplied without wrapping; the data is allocated only
    /// once the file is known to hold it (raw) or to be able to inflate to it (gzip, within
    /// <see cref="MaxCompressionRatio"/>), so a file never costs much more memory than its own size.
    /// </remarks>
    public static IdxArray Parse(byte[] raw, string name, int expectedMagic)
    {
        ArgumentNullException.ThrowIfNull(raw);
        bool gzip = IsGzip(raw);
        try
        {
            using Stream stream = gzip ? new GZipStream(new MemoryStream(raw), CompressionMode.Decompress) : new MemoryStream(raw, writable: false);
            return Parse(stream, raw.Length, gzip, name, expectedMagic);
        }
        catch (InvalidDataException e)
        {
            throw new DatasetException($"{name}: the gzip stream is corrupt or truncated ({e.Message}).", e);
        }
    }

    private static IdxArray Parse(Stream stream, long fileLength, bool gzip, string name, int expectedMagic)
    {
        var head = new byte[4];
        int got = stream.ReadAtLeast(head, 4, throwOnEndOfStream: false);
        if (got < 4)
        {
            throw new DatasetException($"{name}: truncated IDX header: {got} bytes, expected at least 4 (the magic number).");
        }

        int magic = BinaryPrimitives.ReadInt32BigEndian(head);
        if (magic != expectedMagic)
        {
            throw new DatasetException(
                $"{name}: magic number {magic} (0x{magic:X8}), expected {expectedMagic} (0x{expectedMagic:X8}: {Describe(expectedMagic)}).");
        }

        int rank = magic & 0xFF;
        int headerLength = 4 + (4 * rank);
        var dimBytes = new byte[4 * rank];
        got = stream.ReadAtLeast(dimBytes, dimBytes.Length, throwOnEndOfStream: false);
        if (got < dimBytes.Length)
        {
            throw new DatasetException($"{name}: truncated IDX header: {4 + got} bytes, expected {headerLength} for {rank} dimensions.");
        }

        var dims = new int[rank];
        long count = 1;
        for (int i = 0; i < rank; i++)
        {
            dims[i] = BinaryPrimitives.ReadInt32BigEndian(dimBytes.AsSpan(4 * i));
            if (dims[i] < 0)
            {
                throw new DatasetException($"{name}: dimension {i} is {dims[i]}; IDX dimensions must not be negative.");
            }

            // Four dimensions of 65536 would wrap a 64-bit product to 0 and "match" an empty file.
            if (dims[i] != 0 && count > Array.MaxLength / dims[i])
            {
                throw new DatasetException(
                    $"{name}: the header declares dimensions [{string.Join(", ", dims[..(i + 1)])}{(i + 1 < rank ? ", ..." : "")}], more than the {Array.MaxLength} bytes one IDX array can hold.");
            }

            count *= dims[i];
        }

        string shape = $"[{string.Join(", ", dims)}]";
        long limit = gzip ? Math.Max(MaxCompressionRatio * fileLength, CompressionRatioExemptBytes) : fileLength - headerLength;
        if (gzip && headerLength + count > limit)
        {
            throw new DatasetException(
                $"{name}: the header declares {shape} = {count} bytes of data in a {fileLength}-byte gzip file, more than the " +
                $"{MaxCompressionRatio}:1 expansion this reader accepts; refused before inflating it.");
        }

        if (!gzip && count > limit)
        {
            throw new DatasetException($"{name}: truncated: the header declares {shape} = {count} bytes of data but only {limit} bytes follow.");
        }

        var data = new byte[count];
        got = stream.ReadAtLeast(data, data.Length, throwOnEndOfStream: false);
        if (got < count)
        {
            throw new DatasetException($"{name}: truncated: the header declares {shape} = {count} bytes of data but only {got} bytes follow.");
        }

        // Count what follows the data, inflating no further than the ratio allows.
        long trailing = 0;
        var sink = new byte[1 << 16];
        int n;
        while ((n = stream.Read(sink)) > 0)
        {
            trailing += n;
            if (gzip && headerLength + count + trailing > limit)
            {
                throw new DatasetException(
                    $"{name}: more than {trailing} unexpected bytes after the {count} bytes of data that the header {shape} declares.");
            }
        }

        if (trailing > 0)
        {
            throw new DatasetException($"{name}: {trailing} unexpected bytes after the {count} bytes of data that the header {shape} declares.");
        }

        return new IdxArray(dims, data);
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

    private static string Describe(int magic) => magic switch
    {
        ImagesMagic => "IDX images, unsigned bytes, 3 dimensions",
        LabelsMagic => "IDX labels, unsigned bytes, 1 dimension",
        _ => $"IDX, type 0x{(magic >> 8) & 0xFF:X2}, {magic & 0xFF} dimensions",
    };
}
