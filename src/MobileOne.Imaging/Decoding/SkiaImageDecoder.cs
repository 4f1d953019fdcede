using MobileOne.Data.Transforms;
using System.Buffers;
using System.Runtime.InteropServices;
using MobileOne.Data;
using SkiaSharp;

namespace MobileOne.Imaging;

/// <summary>
/// Decodes JPEG, PNG, WebP, GIF (first frame), BMP, ICO and WBMP with SkiaSharp. Pixels are requested
/// through <see cref="SKCodec"/> as RGBA 8888 with unpremultiplied alpha (SKBitmap.Decode would give BGRA
/// on Linux and premultiply), no colour-space conversion (embedded ICC profiles, gAMA and cHRM are ignored,
/// as PIL ignores them), then turned upright by the EXIF orientation (<see cref="SKCodec.EncodedOrigin"/>;
/// optional, see <see cref="Decode(byte[], string, int, ImageDecodeOptions)"/>), then reduced to the
/// requested channels: RGB drops alpha without compositing (as PIL's convert("RGB") does), grey uses PIL's
/// ITU-R 601-2 luma. 16-bit grey PNGs are reduced as PIL does: each value is clipped to 0..255 (PIL opens
/// them as mode "I" and convert("RGB") clips, so most of a real 16-bit image turns white).
/// </summary>
public sealed class SkiaImageDecoder : IImageDecoder
{
    private static readonly string[] Known = [".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".ico", ".wbmp"];

    /// <summary>The decoder (it holds no state).</summary>
    public static SkiaImageDecoder Instance { get; } = new();

    /// <summary>The file extensions it decodes, lower case with the dot.</summary>
    public IReadOnlyCollection<string> Extensions => Known;

    /// <summary>Reads and decodes <paramref name="path"/> to <paramref name="channels"/> (1 grey, 3 RGB) with <see cref="ImageDecodeOptions.Default"/>.</summary>
    public ByteImage Decode(string path, int channels) => Decode(path, channels, ImageDecodeOptions.Default);

    /// <summary>Reads and decodes <paramref name="path"/>; see <see cref="Decode(byte[], string, int, ImageDecodeOptions)"/>.</summary>
    public ByteImage Decode(string path, int channels, ImageDecodeOptions options)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        CheckChannels(channels);
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ImageDecodeException(path, $"cannot be read: {e.Message}", e);
        }

        return Decode(bytes, path, channels, options);
    }

    /// <summary>Decodes an encoded image held in memory; <paramref name="name"/> is used in messages.</summary>
    public ByteImage Decode(byte[] encoded, string name, int channels) => Decode(encoded, name, channels, ImageDecodeOptions.Default);

    /// <summary>
    /// Decodes an encoded image held in memory to <paramref name="channels"/> (1, 3 or 4) interleaved 8-bit
    /// channels; <paramref name="name"/> is used in messages. Throws <see cref="ImageDecodeException"/> for empty,
    /// unrecognised, truncated or corrupt data, for images above <see cref="ImageDecodeOptions.MaxPixels"/>, and for
    /// files too small to hold the pixels their header declares (the format's largest expansion; checked, like the
    /// pixel limit, before the pixel buffer is allocated).
    /// </summary>
    public ByteImage Decode(byte[] encoded, string name, int channels, ImageDecodeOptions options)
    {
        ArgumentNullException.ThrowIfNull(encoded);
        ArgumentNullException.ThrowIfNull(options);
        CheckChannels(channels);
        if (encoded.Length == 0)
        {
            throw new ImageDecodeException(name, "the file is empty.");
        }

        // The codec takes ownership of the stream and disposes it with itself.
        using var codec = SKCodec.Create(new SKMemoryStream(encoded), out SKCodecResult created);
        if (codec is null)
        {
            throw new ImageDecodeException(name, $"not a decodable image ({Describe(created)}).");
        }

        // The size comes from the header, before any pixel is decoded or allocated.
        int width = codec.Info.Width, height = codec.Info.Height;
        if (width <= 0 || height <= 0)
        {
            throw new ImageDecodeException(name, $"image size {width}x{height} is not supported.");
        }

        // The decoder's own bound (Pillow's bomb limit) and a caller's tighter one, both from the header.
        long limit = Math.Min(options.MaxPixels, IImageDecoder.MaxPixels);
        if ((long)width * height > limit)
        {
            throw new ImageDecodeException(name,
                $"declares {width}x{height} = {(long)width * height} pixels, more than the {limit} this decoder accepts{(limit == IImageDecoder.MaxPixels ? " (Pillow's decompression-bomb limit)" : string.Empty)}; refused before decoding.");
        }

        // The format's own bound, also from the header: a small file cannot hold a large image, so it is refused
        // before its pixel buffer is allocated rather than found truncated after (EncodedSizeBound says why per format).
        if (options.CheckEncodedSize && EncodedSizeBound.Refusal(encoded, codec.EncodedFormat, width, height) is { } tooSmall)
        {
            throw new ImageDecodeException(name, $"declares {width}x{height} = {(long)width * height} pixels, {tooSmall}; refused before decoding.");
        }

        var origin = options.ApplyExifOrientation ? codec.EncodedOrigin : SKEncodedOrigin.TopLeft;
        // Pooled: a 256x256 RGBA buffer is already a large-object-heap allocation per image. Above PooledBytes the buffer is
        // allocated to size: the pool rounds up to a power of two, so an image near the pixel limit (358 MB of RGBA) cost
        // 512 MB, and a 72-byte GIF declaring 57136 x 1461 pixels took that much before failing as truncated (fuzzing).
        int bytes = width * height * 4;
        bool pooled = bytes <= PooledBytes;
        byte[] rgba = pooled ? ArrayPool<byte>.Shared.Rent(bytes) : GC.AllocateUninitializedArray<byte>(bytes);
        try
        {
            var info = new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
            var handle = GCHandle.Alloc(rgba, GCHandleType.Pinned);
            SKCodecResult result;
            try
            {
                result = codec.GetPixels(info, handle.AddrOfPinnedObject(), width * 4, SKCodecOptions.Default);
            }
            finally
            {
                handle.Free();
            }

            if (result != SKCodecResult.Success)
            {
                throw new ImageDecodeException(name, $"decoding failed ({Describe(result)}).");
            }

            if (Png16.IsSixteenBitGrey(encoded))
            {
                try
                {
                    Png16.ClipGrey(encoded, rgba, width, height);
                }
                catch (InvalidDataException e)
                {
                    throw new ImageDecodeException(name, $"decoding failed ({e.Message})", e);
                }
            }

            return Orient(rgba, width, height, origin, channels);
        }
        finally
        {
            if (pooled)
            {
                ArrayPool<byte>.Shared.Return(rgba);
            }
        }
    }

    /// <summary>Largest RGBA buffer taken from the shared pool (16 MB: a 2048 x 2048 image).</summary>
    private const int PooledBytes = 16 << 20;

    private static void CheckChannels(int channels)
    {
        if (channels is not (1 or 3 or 4))
        {
            throw new ArgumentOutOfRangeException(nameof(channels), channels, "Images are decoded to 1, 3 or 4 channels.");
        }
    }

    /// <summary>
    /// Writes the upright image with the requested channels. For each output pixel (x', y') of the upright
    /// image, the stored pixel it comes from is given per EXIF orientation 1..8.
    /// </summary>
    internal static ByteImage Orient(byte[] rgba, int width, int height, SKEncodedOrigin origin, int channels)
    {
        bool swap = origin is SKEncodedOrigin.LeftTop or SKEncodedOrigin.RightTop or SKEncodedOrigin.RightBottom or SKEncodedOrigin.LeftBottom;
        int outW = swap ? height : width, outH = swap ? width : height;
        var image = ByteImage.Rent(outW, outH, channels);
        var dst = image.Pixels;
        if (channels == 3 && origin is SKEncodedOrigin.TopLeft or SKEncodedOrigin.Default)
        {
            for (int p = 0, o3 = 0, end = width * height * 4; p < end; p += 4, o3 += 3)
            {
                dst[o3] = rgba[p];
                dst[o3 + 1] = rgba[p + 1];
                dst[o3 + 2] = rgba[p + 2];
            }

            return image;
        }

        int o = 0;
        for (int y = 0; y < outH; y++)
        {
            for (int x = 0; x < outW; x++)
            {
                (int sx, int sy) = origin switch
                {
                    SKEncodedOrigin.TopRight => (width - 1 - x, y),
                    SKEncodedOrigin.BottomRight => (width - 1 - x, height - 1 - y),
                    SKEncodedOrigin.BottomLeft => (x, height - 1 - y),
                    SKEncodedOrigin.LeftTop => (y, x),
                    SKEncodedOrigin.RightTop => (y, height - 1 - x),
                    SKEncodedOrigin.RightBottom => (width - 1 - y, height - 1 - x),
                    SKEncodedOrigin.LeftBottom => (width - 1 - y, x),
                    _ => (x, y),
                };
                int s = ((sy * width) + sx) * 4;
                switch (channels)
                {
                    case 1:
                        dst[o++] = ImageOps.Luma(rgba[s], rgba[s + 1], rgba[s + 2]);
                        break;
                    case 3:
                        dst[o++] = rgba[s];
                        dst[o++] = rgba[s + 1];
                        dst[o++] = rgba[s + 2];
                        break;
                    default:
                        dst[o++] = rgba[s];
                        dst[o++] = rgba[s + 1];
                        dst[o++] = rgba[s + 2];
                        dst[o++] = rgba[s + 3];
                        break;
                }
            }
        }

        return image;
    }

    private static string Describe(SKCodecResult result) => result switch
    {
        SKCodecResult.IncompleteInput => "the data is truncated",
        SKCodecResult.ErrorInInput => "the data is corrupt",
        SKCodecResult.InvalidInput or SKCodecResult.Unimplemented => "unrecognised or unsupported format",
        _ => result.ToString(),
    };
}
