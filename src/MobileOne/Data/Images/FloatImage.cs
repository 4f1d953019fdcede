using System.Buffers;

namespace MobileOne.Data;

/// <summary>
/// A float32 image in planar CHW order: the form after ToTensor + Normalize, where the tensor-stage
/// transforms (pad, random crop, flip) run, exactly like torchvision transforms placed after Normalize.
/// Pixels may be rented from <see cref="ArrayPool{T}"/>; <see cref="Dispose"/> returns them.
/// </summary>
public sealed class FloatImage : IDisposable
{
    private float[]? data;
    private readonly bool rented;

    /// <summary>A channels x height x width planar image over <paramref name="data"/>.</summary>
    public FloatImage(int channels, int height, int width, float[] data)
        : this(channels, height, width, data, rented: false)
    {
    }

    private FloatImage(int channels, int height, int width, float[] data, bool rented)
    {
        ByteImage.CheckSize(width, height, channels);
        ArgumentNullException.ThrowIfNull(data);
        if (data.Length < (long)width * height * channels)
        {
            throw new ArgumentException($"A {channels}x{height}x{width} image needs {(long)width * height * channels} floats; the array has {data.Length}.", nameof(data));
        }

        Channels = channels;
        Height = height;
        Width = width;
        this.data = data;
        this.rented = rented;
    }

    /// <summary>Number of planes.</summary>
    public int Channels { get; }

    /// <summary>Height in pixels.</summary>
    public int Height { get; }

    /// <summary>Width in pixels.</summary>
    public int Width { get; }

    /// <summary>Values of the image (the array may be longer).</summary>
    public int Length => Channels * Height * Width;

    /// <summary>The value array (possibly longer than <see cref="Length"/>); throws once disposed.</summary>
    public float[] Data => this.data ?? throw new ObjectDisposedException(nameof(FloatImage));

    /// <summary>The image's values, plane after plane.</summary>
    public Span<float> Span => Data.AsSpan(0, Length);

    /// <summary>Plane <paramref name="c"/>.</summary>
    public Span<float> Plane(int c) => Data.AsSpan(c * Height * Width, Height * Width);

    /// <summary>A pooled image whose values are NOT cleared.</summary>
    public static FloatImage Rent(int channels, int height, int width)
    {
        ByteImage.CheckSize(width, height, channels);
        return new FloatImage(channels, height, width, ArrayPool<float>.Shared.Rent(width * height * channels), rented: true);
    }

    /// <summary>"FloatImage CxHxW".</summary>
    public override string ToString() => $"FloatImage {Channels}x{Height}x{Width}";

    /// <summary>Returns the values to their pool, if pooled.</summary>
    public void Dispose()
    {
        float[]? data = Interlocked.Exchange(ref this.data, null);
        if (data is not null && this.rented)
        {
            ArrayPool<float>.Shared.Return(data);
        }
    }
}
