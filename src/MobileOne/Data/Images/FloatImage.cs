using System.Buffers;

namespace MobileOne.Data;

/// <summary>
/// A float32 image in planar CHW order: the form after ToTensor + Normalize, where the tensor-stage
/// transforms (pad, random crop, flip) run, exactly like torchvision transforms placed after Normalize.
/// Pixels may be rented from <see cref="ArrayPool{T}"/>; <see cref="Dispose"/> returns them.
/// </summary>
public sealed class FloatImage : IDisposable
{
    private float[]? _data;
    private readonly bool _rented;

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
        _data = data;
        _rented = rented;
    }

    public int Channels { get; }

    public int Height { get; }

    public int Width { get; }

    public int Length => Channels * Height * Width;

    public float[] Data => _data ?? throw new ObjectDisposedException(nameof(FloatImage));

    public Span<float> Span => Data.AsSpan(0, Length);

    public Span<float> Plane(int c) => Data.AsSpan(c * Height * Width, Height * Width);

    /// <summary>A pooled image whose values are NOT cleared.</summary>
    public static FloatImage Rent(int channels, int height, int width)
    {
        ByteImage.CheckSize(width, height, channels);
        return new FloatImage(channels, height, width, ArrayPool<float>.Shared.Rent(width * height * channels), rented: true);
    }

    public override string ToString() => $"FloatImage {Channels}x{Height}x{Width}";

    public void Dispose()
    {
        float[]? data = Interlocked.Exchange(ref _data, null);
        if (data is not null && _rented)
        {
            ArrayPool<float>.Shared.Return(data);
        }
    }
}
