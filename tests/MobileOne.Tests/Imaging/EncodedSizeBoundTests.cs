using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using MobileOne.Data;
using MobileOne.Imaging;
using MobileOne.IO.PyTorch;

namespace MobileOne.Tests.Imaging;

/// <summary>
/// The per-format bound of declared pixels by file size (<see cref="EncodedSizeBound"/>): valid images built at each
/// format's largest expansion decode, and the same headers declaring a little more than the data can hold are refused
/// before the pixel buffer is allocated (docs/reliability.md).
/// </summary>
public sealed class EncodedSizeBoundTests
{
    private const long MB = 1 << 20;

    private static string ImagePath(string name) => Path.Combine(AppContext.BaseDirectory, "Imaging", "Images", name);

    [Fact]
    public void All_black_one_bit_png_at_deflates_largest_expansion_decodes_and_a_few_more_rows_are_refused()
    {
        // 1-bit scanlines of zeros at the smallest size zlib makes: 2116 bytes for 2.1 MB of scanlines, 993:1 counting the
        // PNG's 57 bytes of signature and chunks, within 4% of deflate's 1032:1.
        const int Width = 4096, Height = 4096, RowBytes = 1 + (Width / 8);
        byte[] png = OneBitPng(Width, Height, Height);
        Assert.True((long)Height * RowBytes / png.Length >= 990, $"{png.Length} bytes for {Height * RowBytes} bytes of scanlines: not at the edge");
        using (var image = SkiaImageDecoder.Instance.Decode(png, "black.png", 1))
        {
            Assert.Equal((Width, Height), (image.Width, image.Height));
            Assert.All(image.Span.ToArray().Distinct(), p => Assert.Equal(0, p));
        }

        // The same data under a header declaring the fewest rows the file cannot hold: within 4% of the real height.
        int taller = (int)(((long)png.Length * 1032 / RowBytes) + 1);
        byte[] bomb = OneBitPng(Width, taller, Height);
        Assert.InRange(taller, Height + 1, Height * 104 / 100);
        var e = Budget.Refused<ImageDecodeException>(() => SkiaImageDecoder.Instance.Decode(bomb, "taller.png", 3), maxAllocatedBytes: 1 * MB);
        Assert.Contains($"taller.png: declares {Width}x{taller} = {(long)Width * taller} pixels, more than a PNG of {bomb.Length} bytes can hold: at 1 bits a pixel", e.Message);
        Assert.Contains("(deflate expands at most 1032:1); refused before decoding.", e.Message);

        // One row fewer is what the bound lets through: refused later, by the decoder, as truncated.
        byte[] justUnder = OneBitPng(Width, taller - 1, Height);
        Assert.Null(EncodedSizeBound.Refusal(justUnder, SkiaSharp.SKEncodedImageFormat.Png, Width, taller - 1));
    }

    [Fact]
    public void Rgba_png_interlaced_and_not_is_bounded_by_its_own_scanlines()
    {
        // 32 bits a pixel: a header declaring 4000 x 4000 RGBA needs 62 KB of deflate data whatever the interlacing.
        foreach (bool interlaced in new[] { false, true })
        {
            byte[] png = HostilePng(4000, 4000, bitDepth: 8, colourType: 6, interlaced);
            var e = Budget.Refused<ImageDecodeException>(() => SkiaImageDecoder.Instance.Decode(png, "rgba.png", 3), maxAllocatedBytes: 1 * MB);
            Assert.Contains($"at 32 bits a pixel{(interlaced ? ", interlaced," : string.Empty)} its scanlines are", e.Message);
        }
    }

    [Fact]
    public void Gif_at_lzws_largest_expansion_decodes_and_a_frame_declared_twice_as_tall_is_refused()
    {
        // Every code as long as the table allows (a run of one colour; no clear code when the table is full): the most
        // pixels LZW can put in a byte.
        const int Width = 4096, Height = 4096;
        byte[] gif = ZeroGif(Width, Height, Width, Height);
        Assert.True((long)Width * Height / gif.Length >= 1800, $"{gif.Length} bytes: not near LZW's 2730 pixels a byte");
        using (var image = SkiaImageDecoder.Instance.Decode(gif, "black.gif", 1))
        {
            Assert.Equal((Width, Height), (image.Width, image.Height));
            Assert.All(image.Span.ToArray().Distinct(), p => Assert.Equal(0, p));
        }

        // Larger images approach the bound (the table's ramp is paid once): 9000 x 9000 is still accepted.
        byte[] large = ZeroGif(9000, 9000, 9000, 9000);
        Assert.True(81_000_000L / large.Length >= 2400, $"{large.Length} bytes");
        Assert.Null(EncodedSizeBound.Refusal(large, SkiaSharp.SKEncodedImageFormat.Gif, 9000, 9000));

        // The same 4096 x 4096 frame's data under a frame header 2 times as tall: refused.
        byte[] taller = ZeroGif(Width, 2 * Height, Width, 2 * Height, codedPixels: (long)Width * Height);
        var e = Budget.Refused<ImageDecodeException>(() => SkiaImageDecoder.Instance.Decode(taller, "taller.gif", 3), maxAllocatedBytes: 1 * MB);
        Assert.Contains($"its first frame's {Width}x{2 * Height} pixels need at least 12288 bytes of LZW codes (at most 4096 pixels per 12-bit code)", e.Message);
    }

    [Fact]
    public void Gif_without_a_first_image_is_refused_before_its_screen_is_allocated()
    {
        // The upload fuzz target's largest allocation (2026-12-05): a 53-byte GIF87a declaring a 16746 x 2180 screen, no
        // colour table, and a byte that starts no block where the first image must: Skia allocated the screen's 146 MB
        // of RGBA, then found the data corrupt. A file that ends inside its first image's descriptor Skia refuses itself.
        byte[] header = [.. "GIF87a"u8, 0x6A, 0x41, 0x84, 0x08, 0x52, 0, 0];
        byte[] stray = [.. header, 0xCD, 0xFF, 0xC9, 0x18, 0x3D, 0xE9, 0x30, 0x00, 0x28, 0x00];
        var e = Budget.Refused<ImageDecodeException>(() => SkiaImageDecoder.Instance.Decode(stray, "stray.gif", 3), maxAllocatedBytes: 1 * MB);
        Assert.Contains("declares 16746x2180 = 36506280 pixels, more than a GIF of 23 bytes can hold: it has no image (byte 13 is 0xCD", e.Message);

        byte[] cut = [.. "GIF89a"u8, 0x6A, 0x41, 0x84, 0x08, 0x80, 0, 0, 0, 0, 0, 255, 255, 255, 0x2C, 0, 0, 0];
        e = Budget.Refused<ImageDecodeException>(() => SkiaImageDecoder.Instance.Decode(cut, "cut.gif", 3), maxAllocatedBytes: 1 * MB);
        Assert.Contains("cut.gif: not a decodable image (the data is truncated)", e.Message);
    }

    [Fact]
    public void Gif_screen_larger_than_its_first_frame_is_not_refused()
    {
        // Valid: the screen around a 1 x 1 first frame costs no data (what the bound cannot refuse; docs/reliability.md).
        byte[] gif = ZeroGif(2000, 2000, 1, 1);
        using var image = SkiaImageDecoder.Instance.Decode(gif, "screen.gif", 3);
        Assert.Equal((2000, 2000), (image.Width, image.Height));
    }

    [Fact]
    public void Progressive_jpeg_of_one_bit_a_block_decodes_and_two_more_block_rows_are_refused()
    {
        // A DC-only progressive JPEG whose DC code is one bit: one bit per 8x8 block, the least Huffman coding allows.
        const int Width = 4096, Height = 4096;
        byte[] jpeg = DcOnlyJpeg(Width, Height, Width * Height / 64);
        Assert.True(Width * Height / jpeg.Length >= 510, $"{jpeg.Length} bytes");
        using (var image = SkiaImageDecoder.Instance.Decode(jpeg, "grey.jpg", 1))
        {
            Assert.Equal((Width, Height), (image.Width, image.Height));
            Assert.All(image.Span.ToArray().Distinct(), p => Assert.Equal(128, p));
        }

        // The frame header declares 16 more rows than the scan codes; libjpeg would fill them in (it pads a scan that
        // ends early with zeros), the bound refuses them from the header.
        byte[] taller = DcOnlyJpeg(Width, Height + 16, Width * Height / 64);
        var e = Budget.Refused<ImageDecodeException>(() => SkiaImageDecoder.Instance.Decode(taller, "taller.jpg", 3), maxAllocatedBytes: 1 * MB);
        Assert.Contains($"more than a JPEG of {taller.Length} bytes can hold: its 263168 8x8 blocks (1 component) need at least 32896 bytes", e.Message);
    }

    [Fact]
    public void Jpeg_header_with_no_scan_data_is_refused_though_the_decoder_would_fill_it()
    {
        // 8000 x 8000 three-component (4:2:0) frame, then an empty scan: Skia decodes this as grey, 256 MB of RGBA.
        byte[] jpeg = DcOnlyJpeg(8000, 8000, 0, components: 3);
        var e = Budget.Refused<ImageDecodeException>(() => SkiaImageDecoder.Instance.Decode(jpeg, "empty.jpg", 3), maxAllocatedBytes: 1 * MB);
        Assert.Contains("its 1500000 8x8 blocks (3 components) need at least 187500 bytes (a Huffman-coded block costs at least one bit)", e.Message);
    }

    [Fact]
    public void Lossy_webp_is_bounded_by_its_macroblocks_and_lossless_webp_is_not()
    {
        // PIL (libwebp, quality 0, method 6), black: 3.7 bits a macroblock.
        byte[] lossy = File.ReadAllBytes(ImagePath("black_lossy_1024.webp"));
        using (var image = SkiaImageDecoder.Instance.Decode(lossy, "black.webp", 3))
        {
            Assert.Equal((1024, 1024), (image.Width, image.Height));
        }

        // Its VP8 header declaring 16383 x 5461 (just under the pixel limit): 350,208 macroblocks in 1926 bytes.
        BinaryPrimitives.WriteUInt16LittleEndian(lossy.AsSpan(26), 16383);
        BinaryPrimitives.WriteUInt16LittleEndian(lossy.AsSpan(28), 5461);
        var e = Budget.Refused<ImageDecodeException>(() => SkiaImageDecoder.Instance.Decode(lossy, "wide.webp", 3), maxAllocatedBytes: 1 * MB);
        Assert.Contains("more than a lossy WebP of 1926 bytes can hold: its 350208 16x16 macroblocks need at least 43776 bytes", e.Message);

        // A solid colour, lossless: 2048 x 2048 in 220 bytes (19,000 pixels a byte) is valid and decoded.
        byte[] lossless = File.ReadAllBytes(ImagePath("solid_lossless_2048.webp"));
        using var solid = SkiaImageDecoder.Instance.Decode(lossless, "solid.webp", 3);
        Assert.Equal((2048, 2048), (solid.Width, solid.Height));
        Assert.Equal(new byte[] { 10, 20, 30 }, solid.Pixels.AsSpan(0, 3).ToArray());
    }

    [Fact]
    public void Uncompressed_bmp_one_row_short_is_refused_and_rle_ending_early_is_decoded()
    {
        const int Width = 4096, Height = 2048;
        byte[] bmp = OneBitBmp(Width, Height, Height);
        using (var image = SkiaImageDecoder.Instance.Decode(bmp, "whole.bmp", 1))
        {
            Assert.Equal((Width, Height), (image.Width, image.Height));
        }

        byte[] shortBmp = OneBitBmp(Width, Height, Height - 1);
        var e = Budget.Refused<ImageDecodeException>(() => SkiaImageDecoder.Instance.Decode(shortBmp, "short.bmp", 3), maxAllocatedBytes: 1 * MB);
        Assert.Contains($"more than an uncompressed BMP of {shortBmp.Length} bytes can hold: at 1 bits a pixel they need {Width / 8 * Height} bytes", e.Message);

        // RLE8 whose first code ends the bitmap: valid, the rest is left to the decoder (transparent). Not bounded.
        byte[] rle = Rle8EndOfBitmapBmp(1000, 1000);
        using var filled = SkiaImageDecoder.Instance.Decode(rle, "rle.bmp", 3);
        Assert.Equal((1000, 1000), (filled.Width, filled.Height));
    }

    [Fact]
    public void Wbmp_shorter_than_its_bits_is_refused()
    {
        // Type 0, fixed header, width and height as multi-byte integers (7 bits a byte), then one bit a pixel.
        byte[] header = [0, 0, 0x9F, 0x7F, 0x9F, 0x7F]; // 4095 x 4095
        byte[] wbmp = [.. header, .. new byte[512 * 4095 / 2]];
        var e = Budget.Refused<ImageDecodeException>(() => SkiaImageDecoder.Instance.Decode(wbmp, "half.wbmp", 3), maxAllocatedBytes: 1 * MB);
        Assert.Contains($"more than a WBMP of {wbmp.Length} bytes can hold: at 1 bit a pixel they need {512 * 4095} bytes", e.Message);
    }

    /// <summary>A 1-bit grey PNG of zeros declaring <paramref name="height"/> rows and holding <paramref name="rows"/>.</summary>
    private static byte[] OneBitPng(int width, int height, int rows)
    {
        var raw = new byte[(long)rows * (1 + (width / 8))];
        var deflated = new MemoryStream();
        using (var z = new ZLibStream(deflated, CompressionLevel.SmallestSize, leaveOpen: true))
        {
            z.Write(raw);
        }

        return Png(width, height, 1, 0, interlaced: false, deflated.ToArray());
    }

    /// <summary>A PNG header with a few bytes of image data.</summary>
    private static byte[] HostilePng(int width, int height, byte bitDepth, byte colourType, bool interlaced) =>
        Png(width, height, bitDepth, colourType, interlaced, [0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]);

    private static byte[] Png(int width, int height, byte bitDepth, byte colourType, bool interlaced, byte[] idat)
    {
        var png = new List<byte>([0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A]);
        var ihdr = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(ihdr, width);
        BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), height);
        ihdr[8] = bitDepth;
        ihdr[9] = colourType;
        ihdr[12] = (byte)(interlaced ? 1 : 0);
        Chunk("IHDR", ihdr);
        Chunk("IDAT", idat);
        Chunk("IEND", []);
        return [.. png];

        void Chunk(string type, byte[] data)
        {
            var length = new byte[4];
            BinaryPrimitives.WriteInt32BigEndian(length, data.Length);
            png.AddRange(length);
            byte[] typed = [.. Encoding.ASCII.GetBytes(type), .. data];
            png.AddRange(typed);
            var crc = new byte[4];
            BinaryPrimitives.WriteUInt32BigEndian(crc, Crc32.Compute(typed));
            png.AddRange(crc);
        }
    }

    /// <summary>
    /// A GIF whose screen is <paramref name="screenWidth"/> x <paramref name="screenHeight"/> and whose one frame's header
    /// declares <paramref name="frameWidth"/> x <paramref name="frameHeight"/>, its LZW data coding
    /// <paramref name="codedPixels"/> zeros (by default the whole frame) with the longest codes the table allows.
    /// </summary>
    private static byte[] ZeroGif(int screenWidth, int screenHeight, int frameWidth, int frameHeight, long? codedPixels = null)
    {
        long pixels = codedPixels ?? (long)frameWidth * frameHeight;
        var gif = new List<byte>("GIF89a"u8.ToArray());
        AddShort(screenWidth);
        AddShort(screenHeight);
        gif.AddRange([0x81, 0, 0, 0, 0, 0, 255, 255, 255, 128, 128, 128, 64, 64, 64]); // 4-colour global table
        gif.AddRange([0x2C, 0, 0, 0, 0]);
        AddShort(frameWidth);
        AddShort(frameHeight);
        gif.AddRange([0, 2]); // no local table; LZW minimum code size 2 (codes 0-3, clear 4, end 5)
        byte[] codes = LzwZeros(pixels);
        for (int i = 0; i < codes.Length; i += 255)
        {
            int n = Math.Min(255, codes.Length - i);
            gif.Add((byte)n);
            gif.AddRange(codes.AsSpan(i, n).ToArray());
        }

        gif.AddRange([0, 0x3B]);
        return [.. gif];

        void AddShort(int value)
        {
            gif.Add((byte)value);
            gif.Add((byte)(value >> 8));
        }
    }

    /// <summary>
    /// GIF LZW (minimum code size 2) of <paramref name="pixels"/> zeros: each code is the longest run of zeros the table
    /// holds (1, 2, 3, ... then 4091 once the table is full; no clear code after that, as the format allows).
    /// </summary>
    private static byte[] LzwZeros(long pixels)
    {
        var bytes = new List<byte>();
        ulong buffer = 0;
        int bits = 0;
        int next = 6; // the decoder's next free entry when it reads the next code
        int longest = 1; // the longest run of zeros the encoder's table holds
        bool first = true;
        Emit(4, 3); // clear
        for (long remaining = pixels; remaining > 0;)
        {
            int length = (int)Math.Min(remaining, longest);
            Emit(length == 1 ? 0 : 4 + length, Width());
            if (!first && next < 4096)
            {
                next++;
            }

            first = false;
            remaining -= length;
            if (longest < 4091 && remaining > 0)
            {
                longest++;
            }
        }

        Emit(5, Width()); // end of information
        if (bits > 0)
        {
            bytes.Add((byte)buffer);
        }

        return [.. bytes];

        int Width() => Math.Min(12, 32 - System.Numerics.BitOperations.LeadingZeroCount((uint)next));

        void Emit(int code, int width)
        {
            buffer |= (ulong)code << bits;
            bits += width;
            while (bits >= 8)
            {
                bytes.Add((byte)buffer);
                buffer >>= 8;
                bits -= 8;
            }
        }
    }

    /// <summary>
    /// A progressive JPEG declaring <paramref name="width"/> x <paramref name="height"/> with one DC scan whose only
    /// Huffman code (category 0) is one bit, holding <paramref name="blocks"/> blocks of it (all 0 bits, so every block
    /// is mid-grey); three components are 4:2:0.
    /// </summary>
    private static byte[] DcOnlyJpeg(int width, int height, int blocks, int components = 1)
    {
        var jpeg = new List<byte> { 0xFF, 0xD8 };
        Segment(0xDB, [0, .. Enumerable.Repeat((byte)1, 64)]);
        var frame = new List<byte> { 8, (byte)(height >> 8), (byte)height, (byte)(width >> 8), (byte)width, (byte)components };
        for (int c = 0; c < components; c++)
        {
            frame.AddRange([(byte)(c + 1), (byte)(c == 0 && components > 1 ? 0x22 : 0x11), 0]);
        }

        Segment(0xC2, [.. frame]);
        Segment(0xC4, [0x00, 1, .. new byte[15], 0]); // DC table 0: one code of length 1, category 0
        var scan = new List<byte> { (byte)components };
        for (int c = 0; c < components; c++)
        {
            scan.AddRange([(byte)(c + 1), 0x00]);
        }

        Segment(0xDA, [.. scan, 0, 0, 0]); // DC first scan, no successive approximation
        jpeg.AddRange(new byte[blocks / 8]);
        jpeg.AddRange([0xFF, 0xD9]);
        return [.. jpeg];

        void Segment(byte marker, byte[] data)
        {
            jpeg.AddRange([0xFF, marker, (byte)((data.Length + 2) >> 8), (byte)(data.Length + 2)]);
            jpeg.AddRange(data);
        }
    }

    /// <summary>A bottom-up 1-bit BMP (BITMAPINFOHEADER) declaring <paramref name="height"/> rows and holding <paramref name="rows"/>.</summary>
    private static byte[] OneBitBmp(int width, int height, int rows) =>
        Bmp(width, height, bitCount: 1, compression: 0, palette: [0, 0, 0, 0, 255, 255, 255, 0], new byte[(width + 31) / 32 * 4 * rows]);

    private static byte[] Rle8EndOfBitmapBmp(int width, int height) =>
        Bmp(width, height, bitCount: 8, compression: 1, palette: [.. Enumerable.Range(0, 256).SelectMany(i => new[] { (byte)i, (byte)i, (byte)i, (byte)0 })], [0, 1]);

    /// <summary>A BMP with a BITMAPINFOHEADER, <paramref name="palette"/> (BGRA entries) and <paramref name="data"/> as its pixel bytes; the fuzzer's BMP seed too.</summary>
    internal static byte[] Bmp(int width, int height, short bitCount, int compression, byte[] palette, byte[] data)
    {
        int offset = 14 + 40 + palette.Length;
        var bmp = new byte[offset + data.Length];
        "BM"u8.CopyTo(bmp);
        BinaryPrimitives.WriteInt32LittleEndian(bmp.AsSpan(2), bmp.Length);
        BinaryPrimitives.WriteInt32LittleEndian(bmp.AsSpan(10), offset);
        BinaryPrimitives.WriteInt32LittleEndian(bmp.AsSpan(14), 40);
        BinaryPrimitives.WriteInt32LittleEndian(bmp.AsSpan(18), width);
        BinaryPrimitives.WriteInt32LittleEndian(bmp.AsSpan(22), height);
        BinaryPrimitives.WriteInt16LittleEndian(bmp.AsSpan(26), 1);
        BinaryPrimitives.WriteInt16LittleEndian(bmp.AsSpan(28), bitCount);
        BinaryPrimitives.WriteInt32LittleEndian(bmp.AsSpan(30), compression);
        BinaryPrimitives.WriteInt32LittleEndian(bmp.AsSpan(34), data.Length);
        BinaryPrimitives.WriteInt32LittleEndian(bmp.AsSpan(46), palette.Length / 4);
        palette.CopyTo(bmp, 54);
        data.CopyTo(bmp, offset);
        return bmp;
    }
}
