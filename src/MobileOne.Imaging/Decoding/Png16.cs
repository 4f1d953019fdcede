using System.Buffers.Binary;
using System.IO.Compression;

namespace MobileOne.Imaging;

/// <summary>
/// 16-bit grey PNGs the way PIL reads them. PIL 9 opens them as mode "I" (the 16-bit value itself) and I -> RGB
/// (or L) clips each value to 0..255 rather than scaling it, so every value above 255 becomes white. Skia's codec
/// reduces such files to 8 bits (the high byte) before any output format, so after Skia has decoded and validated
/// the file, this reads the 16-bit samples again from the image data (zlib, the five PNG row filters, Adam7) and
/// writes min(value, 255) into the grey channels. Other 16-bit PNGs need nothing: Skia's high byte is what
/// PIL's RGB;16B / RGBA;16B / LA;16B unpackers keep.
/// </summary>
internal static class Png16
{
    private static readonly (int X, int Y, int Dx, int Dy)[] Adam7 =
        [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)];

    private static ReadOnlySpan<byte> Signature => [137, 80, 78, 71, 13, 10, 26, 10];

    /// <summary>True for a PNG whose IHDR says 16 bits per sample and colour type 0 (grey, no alpha channel).</summary>
    public static bool IsSixteenBitGrey(ReadOnlySpan<byte> encoded) =>
        // Signature, IHDR length, "IHDR", width, height, bit depth (offset 24), colour type (offset 25).
        encoded.Length >= 29 && encoded[..8].SequenceEqual(Signature) && encoded.Slice(12, 4).SequenceEqual("IHDR"u8)
            && encoded[24] == 16 && encoded[25] == 0;

    /// <summary>
    /// Replaces R, G and B of every pixel of <paramref name="rgba"/> (width x height, 4 bytes a pixel, as Skia
    /// decoded the file) with min(value, 255) of the file's 16-bit grey sample. Throws
    /// <see cref="InvalidDataException"/> when the image data is shorter or other than the header promises.
    /// </summary>
    public static void ClipGrey(byte[] encoded, byte[] rgba, int width, int height)
    {
        int fileWidth = BinaryPrimitives.ReadInt32BigEndian(encoded.AsSpan(16));
        int fileHeight = BinaryPrimitives.ReadInt32BigEndian(encoded.AsSpan(20));
        if (fileWidth != width || fileHeight != height)
        {
            throw new InvalidDataException($"the PNG header says {fileWidth}x{fileHeight}, the decoder {width}x{height}.");
        }

        bool interlaced = encoded[28] == 1;
        using var data = new ZLibStream(new MemoryStream(ImageData(encoded), writable: false), CompressionMode.Decompress);
        foreach (var pass in interlaced ? Adam7 : [(0, 0, 1, 1)])
        {
            int passWidth = (width - pass.X + pass.Dx - 1) / pass.Dx, passHeight = (height - pass.Y + pass.Dy - 1) / pass.Dy;
            if (passWidth <= 0 || passHeight <= 0)
            {
                continue;
            }

            int stride = passWidth * 2;
            var previous = new byte[stride];
            var current = new byte[stride];
            for (int row = 0; row < passHeight; row++)
            {
                int filter = data.ReadByte();
                if (filter < 0 || data.ReadAtLeast(current, stride, throwOnEndOfStream: false) < stride)
                {
                    throw new InvalidDataException("the 16-bit image data is truncated.");
                }

                Unfilter(filter, current, previous);
                int y = pass.Y + (row * pass.Dy);
                for (int i = 0; i < passWidth; i++)
                {
                    int value = (current[2 * i] << 8) | current[(2 * i) + 1];
                    byte clipped = (byte)Math.Min(value, 255);
                    int o = ((y * width) + pass.X + (i * pass.Dx)) * 4;
                    rgba[o] = clipped;
                    rgba[o + 1] = clipped;
                    rgba[o + 2] = clipped;
                }

                (previous, current) = (current, previous);
            }
        }
    }

    /// <summary>The concatenated IDAT chunks.</summary>
    private static byte[] ImageData(byte[] encoded)
    {
        using var idat = new MemoryStream();
        for (int pos = 8; pos + 12 <= encoded.Length;)
        {
            int length = BinaryPrimitives.ReadInt32BigEndian(encoded.AsSpan(pos));
            if (length < 0 || length > encoded.Length - pos - 12)
            {
                throw new InvalidDataException("a PNG chunk runs past the end of the file.");
            }

            var type = encoded.AsSpan(pos + 4, 4);
            if (type.SequenceEqual("IDAT"u8))
            {
                idat.Write(encoded, pos + 8, length);
            }
            else if (type.SequenceEqual("IEND"u8))
            {
                break;
            }

            pos += 12 + length;
        }

        return idat.ToArray();
    }

    /// <summary>Undoes a PNG row filter (2 bytes a pixel) in place, given the previous unfiltered row (zeros for the first).</summary>
    private static void Unfilter(int filter, Span<byte> row, ReadOnlySpan<byte> up)
    {
        const int bpp = 2;
        switch (filter)
        {
            case 0:
                break;
            case 1:
                for (int i = bpp; i < row.Length; i++)
                {
                    row[i] += row[i - bpp];
                }

                break;
            case 2:
                for (int i = 0; i < row.Length; i++)
                {
                    row[i] += up[i];
                }

                break;
            case 3:
                for (int i = 0; i < row.Length; i++)
                {
                    int left = i >= bpp ? row[i - bpp] : 0;
                    row[i] += (byte)((left + up[i]) >> 1);
                }

                break;
            case 4:
                for (int i = 0; i < row.Length; i++)
                {
                    int a = i >= bpp ? row[i - bpp] : 0, b = up[i], c = i >= bpp ? up[i - bpp] : 0;
                    int p = a + b - c, pa = Math.Abs(p - a), pb = Math.Abs(p - b), pc = Math.Abs(p - c);
                    row[i] += (byte)(pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
                }

                break;
            default:
                throw new InvalidDataException($"unknown PNG row filter {filter}.");
        }
    }
}
