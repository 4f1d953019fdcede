using System.Buffers.Binary;
using System.Globalization;
using SkiaSharp;

namespace MobileOne.Imaging;

/// <summary>
/// Refuses an image whose header declares more pixels than its format could encode in the file's length, before
/// the decoder allocates the pixel buffer (a 72-byte GIF declaring 83 million pixels otherwise costs its 334 MB RGBA
/// buffer before it is found truncated). Each bound is the format's largest possible expansion, so a valid file is
/// never refused; the file's whole length stands in for its compressed data, which only loosens the bound.
/// <list type="bullet">
/// <item>PNG: the scanlines (one filter byte per row and pass, then the packed samples at the header's bit depth and
/// colour type, Adam7 passes counted separately) are a zlib stream, and deflate expands at most 1032:1 (a 258-byte
/// match costs at least two bits: one for the length code, one for the distance code).</item>
/// <item>GIF: the first frame (the one decoded) is LZW with codes of at most 12 bits; one code yields one table entry,
/// each entry is one pixel longer than an entry defined before it, so while codes are w bits wide no entry is longer
/// than 2^w pixels: at most 4096 pixels per 12-bit code (2730.7 a byte), the best ratio at any width. Only the frame is bounded: the logical screen around a smaller first frame is valid and costs no data.
/// A file with another block where the first image must start is refused too (it has no image).</item>
/// <item>JPEG, Huffman-coded (SOF0-3, 5-7): every 8x8 block of every component (at its sampling factors) has its DC
/// coefficient coded, at least one Huffman code of at least one bit (baseline needs two: DC and end-of-block;
/// progressive AC scans can skip whole runs of blocks with EOBRUN, the DC scan cannot). libjpeg refuses to write a
/// scan script that leaves a component's DC out (JERR_MISSING_DATA). Arithmetic-coded JPEG (SOF9-15) is not
/// bounded: its adaptive coder spends far less than a bit on a zero block.</item>
/// <item>WebP, lossy (VP8, still): each 16x16 macroblock codes its luma and chroma prediction modes with the key
/// frame's fixed probabilities, at least 0.82 + 0.85 bits; bounded at one bit. Lossless WebP (VP8L) is not bounded
/// (a prefix code with one symbol costs no bits: libwebp writes a solid 2048 x 2048 colour in 220 bytes), nor is an
/// animated WebP's canvas.</item>
/// <item>BMP, uncompressed (BI_RGB, and BI_BITFIELDS / BI_ALPHABITFIELDS with Windows headers): every row is stored,
/// at least width x bits-per-pixel bits (row padding not counted). RLE is not bounded: its end-of-bitmap code leaves
/// the rest of the image undefined, which decoders fill.</item>
/// <item>WBMP: one bit a pixel, stored.</item>
/// </list>
/// ICO and anything else Skia may decode are not bounded (an icon may hold a PNG or an RLE BMP of any size).
/// </summary>
internal static class EncodedSizeBound
{
    /// <summary>Deflate's largest expansion: 258 bytes from two bits.</summary>
    public const int DeflateRatio = 1032;

    /// <summary>The most pixels one LZW code can yield (the GIF table has 4096 entries), and that code's width.</summary>
    public const int LzwPixelsPerCode = 4096, LzwCodeBits = 12;

    /// <summary>Adam7's passes: first column and row, then column and row steps.</summary>
    private static readonly (int X, int Y, int Dx, int Dy)[] Adam7 =
        [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)];

    /// <summary>
    /// Why a file of <paramref name="encoded"/>'s length cannot hold a <paramref name="width"/> x
    /// <paramref name="height"/> image of <paramref name="format"/> (a clause that follows "declares W x H = N
    /// pixels, "), or null when it can or the format has no bound. The header was already accepted by Skia and
    /// the pixel count is at most <see cref="MobileOne.Data.IImageDecoder.MaxPixels"/>, so products fit in a long.
    /// </summary>
    public static string? Refusal(ReadOnlySpan<byte> encoded, SKEncodedImageFormat format, int width, int height) => format switch
    {
        SKEncodedImageFormat.Png => Png(encoded, width, height),
        SKEncodedImageFormat.Gif => Gif(encoded),
        SKEncodedImageFormat.Jpeg => Jpeg(encoded),
        SKEncodedImageFormat.Webp => Webp(encoded, width, height),
        SKEncodedImageFormat.Bmp => Bmp(encoded, width, height),
        SKEncodedImageFormat.Wbmp => Over(encoded, CeilDiv(width, 8) * height, "a WBMP", "at 1 bit a pixel they need"),
        _ => null,
    };

    private static string? Png(ReadOnlySpan<byte> encoded, long width, long height)
    {
        // IHDR is the first chunk (libpng insists): width, height, bit depth, colour type, ..., interlace method.
        if (encoded.Length < 29 || !encoded.Slice(12, 4).SequenceEqual("IHDR"u8))
        {
            return null;
        }

        int depth = encoded[24];
        int channels = encoded[25] switch { 0 => 1, 2 => 3, 3 => 1, 4 => 2, 6 => 4, _ => 0 };
        if (channels == 0 || depth == 0)
        {
            return null;
        }

        int bits = channels * depth;
        long scanlines = 0;
        foreach (var pass in encoded[28] == 1 ? Adam7 : [(0, 0, 1, 1)])
        {
            long passWidth = CeilDiv(width - pass.X, pass.Dx), passHeight = CeilDiv(height - pass.Y, pass.Dy);
            if (passWidth > 0 && passHeight > 0)
            {
                scanlines += passHeight * (1 + CeilDiv(passWidth * bits, 8));
            }
        }

        return Over(encoded, CeilDiv(scanlines, DeflateRatio), "a PNG",
            Invariant($"at {bits} bits a pixel{(encoded[28] == 1 ? ", interlaced," : string.Empty)} its scanlines are {scanlines} bytes, which need at least"),
            Invariant($" of deflate data (deflate expands at most {DeflateRatio}:1)"));
    }

    private static string? Gif(ReadOnlySpan<byte> encoded)
    {
        // Header and logical screen (13 bytes), the global colour table, then extensions until the first image
        // descriptor. A file that holds another block where an image must start has no image to decode, so nothing valid
        // is refused with it; Skia allocated the screen for such files before failing (fuzzing: 53 bytes, 146 MB).
        if (encoded.Length < 13)
        {
            return null;
        }

        int pos = 13 + ((encoded[10] & 0x80) != 0 ? 3 << ((encoded[10] & 7) + 1) : 0);
        while (pos < encoded.Length && encoded[pos] == 0x21)
        {
            pos += 2; // introducer and label, then data sub-blocks up to an empty one
            while (pos < encoded.Length)
            {
                int length = encoded[pos];
                pos += 1 + length;
                if (length == 0)
                {
                    break;
                }
            }
        }

        if (pos >= encoded.Length || (encoded[pos] == 0x2C && pos + 9 > encoded.Length))
        {
            return null; // it ends first: Skia refuses it before allocating (tested)
        }

        if (encoded[pos] != 0x2C)
        {
            return Invariant($"more than a GIF of {encoded.Length} bytes can hold: it has no image (byte {pos} is 0x{encoded[pos]:X2}, where an extension or the first image must start)");
        }

        int frameWidth = BinaryPrimitives.ReadUInt16LittleEndian(encoded[(pos + 5)..]), frameHeight = BinaryPrimitives.ReadUInt16LittleEndian(encoded[(pos + 7)..]);
        long pixels = (long)frameWidth * frameHeight;
        return Over(encoded, CeilDiv(pixels * LzwCodeBits, LzwPixelsPerCode * 8L), "a GIF",
            Invariant($"its first frame's {frameWidth}x{frameHeight} pixels need at least"),
            Invariant($" of LZW codes (at most {LzwPixelsPerCode} pixels per {LzwCodeBits}-bit code)"));
    }

    private static string? Jpeg(ReadOnlySpan<byte> encoded)
    {
        // Markers as libjpeg reads them up to the frame header: bytes other than 0xFF before a marker are skipped
        // (libjpeg warns and goes on), 0xFF fill bytes too, 0xFF00 is no marker; segments carry their length.
        int pos = 2;
        while (true)
        {
            while (pos < encoded.Length && encoded[pos] != 0xFF)
            {
                pos++;
            }

            while (pos < encoded.Length && encoded[pos] == 0xFF)
            {
                pos++;
            }

            if (pos >= encoded.Length)
            {
                return null;
            }

            int marker = encoded[pos++];
            if (marker == 0x00 || marker == 0x01 || marker is >= 0xD0 and <= 0xD7)
            {
                continue; // no segment
            }

            if (marker is 0xD9 or 0xDA || pos + 2 > encoded.Length)
            {
                return null; // a scan or the end before any frame header: the decoder refuses it
            }

            int length = BinaryPrimitives.ReadUInt16BigEndian(encoded[pos..]);
            if (marker is >= 0xC0 and <= 0xCF and not (0xC4 or 0xC8 or 0xCC))
            {
                return marker >= 0xC9 ? null : JpegFrame(encoded, pos);
            }

            if (length < 2)
            {
                return null;
            }

            pos += length;
        }
    }

    /// <summary>The bound of a Huffman-coded frame whose header (after the marker) starts at <paramref name="pos"/>.</summary>
    private static string? JpegFrame(ReadOnlySpan<byte> encoded, int pos)
    {
        if (pos + 8 > encoded.Length)
        {
            return null;
        }

        int height = BinaryPrimitives.ReadUInt16BigEndian(encoded[(pos + 3)..]), width = BinaryPrimitives.ReadUInt16BigEndian(encoded[(pos + 5)..]);
        int components = encoded[pos + 7];
        if (width == 0 || height == 0 || components == 0 || pos + 8 + (3 * components) > encoded.Length)
        {
            return null;
        }

        var sampling = encoded.Slice(pos + 8, 3 * components);
        int maxH = 0, maxV = 0;
        for (int c = 0; c < components; c++)
        {
            int h = sampling[(3 * c) + 1] >> 4, v = sampling[(3 * c) + 1] & 15;
            if (h == 0 || v == 0)
            {
                return null; // libjpeg refuses a zero sampling factor
            }

            maxH = Math.Max(maxH, h);
            maxV = Math.Max(maxV, v);
        }

        // Each component's blocks, as a non-interleaved scan codes them (interleaved scans pad to whole MCUs: more).
        long blocks = 0;
        for (int c = 0; c < components; c++)
        {
            int h = sampling[(3 * c) + 1] >> 4, v = sampling[(3 * c) + 1] & 15;
            blocks += CeilDiv(CeilDiv((long)width * h, maxH), 8) * CeilDiv(CeilDiv((long)height * v, maxV), 8);
        }

        return Over(encoded, CeilDiv(blocks, 8), "a JPEG",
            Invariant($"its {blocks} 8x8 blocks ({components} component{(components == 1 ? string.Empty : "s")}) need at least"),
            " (a Huffman-coded block costs at least one bit)");
    }

    private static string? Webp(ReadOnlySpan<byte> encoded, int width, int height)
    {
        // RIFF "WEBP", then chunks: a still image is "VP8 " (lossy) or "VP8L"; "VP8X" announces more chunks, with an
        // animation flag. Only a lossy still image is bounded.
        if (encoded.Length < 21 || !encoded[..4].SequenceEqual("RIFF"u8) || !encoded.Slice(8, 4).SequenceEqual("WEBP"u8)
            || (encoded.Slice(12, 4).SequenceEqual("VP8X"u8) && (encoded[20] & 0x02) != 0))
        {
            return null;
        }

        for (long pos = 12; pos + 8 <= encoded.Length;)
        {
            var chunk = encoded.Slice((int)pos, 4);
            if (chunk.SequenceEqual("VP8 "u8))
            {
                long macroblocks = CeilDiv(width, 16) * CeilDiv(height, 16);
                return Over(encoded, CeilDiv(macroblocks, 8), "a lossy WebP",
                    Invariant($"its {macroblocks} 16x16 macroblocks need at least"), " (each codes its prediction modes in more than one bit)");
            }

            if (chunk.SequenceEqual("VP8L"u8) || chunk.SequenceEqual("ANMF"u8))
            {
                return null;
            }

            uint size = BinaryPrimitives.ReadUInt32LittleEndian(encoded[((int)pos + 4)..]);
            pos += 8 + size + (size & 1);
        }

        return null;
    }

    private static string? Bmp(ReadOnlySpan<byte> encoded, int width, int height)
    {
        // File header (14 bytes), then the info header, whose size tells its kind: 12 is OS/2 1.x (16-bit fields, no
        // compression), 40/52/56/108/124 are Windows' (BITFIELDS is uncompressed there; OS/2 2.x reuses the numbers
        // for Huffman and RLE24).
        if (encoded.Length < 30)
        {
            return null;
        }

        uint header = BinaryPrimitives.ReadUInt32LittleEndian(encoded[14..]);
        int bits;
        uint compression = 0;
        if (header == 12)
        {
            bits = BinaryPrimitives.ReadUInt16LittleEndian(encoded[24..]);
        }
        else
        {
            bits = BinaryPrimitives.ReadUInt16LittleEndian(encoded[28..]);
            if (header >= 20 && encoded.Length >= 34)
            {
                compression = BinaryPrimitives.ReadUInt32LittleEndian(encoded[30..]);
            }
        }

        bool windows = header is 40 or 52 or 56 or 108 or 124;
        if (bits is not (1 or 2 or 4 or 8 or 16 or 24 or 32) || !(compression == 0 || (windows && compression is 3 or 6)))
        {
            return null;
        }

        return Over(encoded, CeilDiv((long)width * bits, 8) * height, "an uncompressed BMP", Invariant($"at {bits} bits a pixel they need"));
    }

    /// <summary>The refusal when <paramref name="needed"/> bytes are more than the file has, else null.</summary>
    private static string? Over(ReadOnlySpan<byte> encoded, long needed, string format, string why, string after = "") =>
        needed <= encoded.Length
            ? null
            : Invariant($"more than {format} of {encoded.Length} bytes can hold: {why} {needed} bytes{after}");

    private static long CeilDiv(long a, long b) => a <= 0 ? 0 : ((a - 1) / b) + 1;

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
