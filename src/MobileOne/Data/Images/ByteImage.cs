using System.Buffers;

namespace MobileOne.Data;

/// <summary>
/// An 8-bit image with interleaved channels (HWC: row-major, channel fastest), the form decoders produce and
/// PIL-style augmentations work on. Pixel arrays may be rented from <see cref="ArrayPool{T}"/>: the
/// array can be longer than <see cref="Length"/>, and <see cref="Dispose"/> returns it.
/// </summary>
public sealed class ByteImage : IDisposable
{
    private byte[]? _pixels;
    private readonly bool _rented;

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
        _pixels = pixels;
        _rented = rented;
    }

    public int Width { get; }

    public int Height { get; }

    public int Channels { get; }

    public int Length => Width * Height * Channels;

    public int Stride => Width * Channels;

    public byte[] Pixels => _pixels ?? throw new ObjectDisposedException(nameof(ByteImage));

    public Span<byte> Span => Pixels.AsSpan(0, Length);

    public Span<byte> Row(int y) => Pixels.AsSpan(y * Stride, Stride);

    /// <summary>A pooled image whose pixels are NOT cleared.</summary>
    public static ByteImage Rent(int width, int height, int channels)
    {
        CheckSize(width, height, channels);
        return new ByteImage(width, height, channels, ArrayPool<byte>.Shared.Rent(width * height * channels), rented: true);
    }

    public ByteImage Clone()
    {
        var copy = Rent(Width, Height, Channels);
        Span.CopyTo(copy.Span);
        return copy;
    }

    public override string ToString() => $"ByteImage {Width}x{Height}x{Channels}";

    public void Dispose()
    {
        byte[]? pixels = Interlocked.Exchange(ref _pixels, null);
        if (pixels is not null && _rented)
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
