using System.Buffers;

namespace MobileOne.Data;

/// <summary>
/// An 8-bit image with interleaved channels (HWC: row-major, channel fastest), the form decoders produce and
/// PIL-style augmentations work on. Pixel arrays may be rented from <see cref="ArrayPool{T}"/>: the
/// array can be longer than <see cref="Length"/>, and <see cref="Dispose"/> returns it.
/// </summary>
public sealed class ByteImage : IDisposable
{
    private byte[]? pixels;
    private readonly bool rented;

    /// <summary>Wraps an existing array (not pooled); it must hold at least width*height*channels bytes.</summary>
    public ByteImage(int width, int height, int channels, byte[] pixels)
        : this(width, height, channels, pixels, rented: false)
    {
    }

    private ByteImage(int width, int height, int channels, byte[] pixels, bool rented)
    {
        CheckSize(width, height, channels);
        ArgumentNullException.ThrowIfNull(pixels);
        if (pixels.Length < (long)width * height * channels)
        {
            throw new ArgumentException($"A {width}x{height}x{channels} image needs {(long)width * height * channels} bytes; the array has {pixels.Length}.", nameof(pixels));
        }

        Width = width;
        Height = height;
        Channels = channels;
        this.pixels = pixels;
        this.rented = rented;
    }

    /// <summary>Width in pixels.</summary>
    public int Width { get; }

    /// <summary>Height in pixels.</summary>
    public int Height { get; }

    /// <summary>Interleaved channels per pixel (1 grey, 3 RGB).</summary>
    public int Channels { get; }

    /// <summary>Bytes of the image (the pooled array may be longer).</summary>
    public int Length => Width * Height * Channels;

    /// <summary>Bytes per row.</summary>
    public int Stride => Width * Channels;

    /// <summary>The pixel array (possibly longer than <see cref="Length"/>); throws once disposed.</summary>
    public byte[] Pixels => this.pixels ?? throw new ObjectDisposedException(nameof(ByteImage));

    /// <summary>The image's bytes, rows top to bottom, channels interleaved.</summary>
    public Span<byte> Span => Pixels.AsSpan(0, Length);

    /// <summary>Row <paramref name="y"/>'s bytes.</summary>
    public Span<byte> Row(int y) => Pixels.AsSpan(y * Stride, Stride);

    /// <summary>A pooled image whose pixels are NOT cleared.</summary>
    public static ByteImage Rent(int width, int height, int channels)
    {
        CheckSize(width, height, channels);
        return new ByteImage(width, height, channels, ArrayPool<byte>.Shared.Rent(width * height * channels), rented: true);
    }

    /// <summary>A copy with its own pixels.</summary>
    public ByteImage Clone()
    {
        var copy = Rent(Width, Height, Channels);
        Span.CopyTo(copy.Span);
        return copy;
    }

    /// <summary>"ByteImage WxHxC".</summary>
    public override string ToString() => $"ByteImage {Width}x{Height}x{Channels}";

    /// <summary>Returns the pixels to their pool, if pooled; the image is unusable afterwards.</summary>
    public void Dispose()
    {
        byte[]? pixels = Interlocked.Exchange(ref this.pixels, null);
        if (pixels is not null && this.rented)
        {
            ArrayPool<byte>.Shared.Return(pixels);
        }
    }

    internal static void CheckSize(int width, int height, int channels)
    {
        if (width <= 0 || height <= 0 || channels <= 0 || (long)width * height * channels > Array.MaxLength)
        {
            throw new ArgumentException($"Image size {width}x{height}x{channels} is not valid (each dimension must be positive and the image must fit one array).");
        }
    }
}
