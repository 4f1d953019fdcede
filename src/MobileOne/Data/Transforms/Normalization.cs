namespace MobileOne.Data.Transforms;

/// <summary>
/// ToTensor + Normalize: value = (byte / 255 - mean[c]) / std[c], evaluated in float32 in exactly that
/// order (as PyTorch does: a float division by 255, a subtraction, a division), tabulated per channel
/// for all 256 byte values.
/// </summary>
public sealed class Normalization
{
    private readonly float[] mean;
    private readonly float[] std;
    private readonly float[][] table;

    /// <summary>Per-channel <paramref name="mean"/> and <paramref name="std"/> of pixels scaled to [0, 1].</summary>
    public Normalization(float[] mean, float[] std)
    {
        ArgumentNullException.ThrowIfNull(mean);
        ArgumentNullException.ThrowIfNull(std);
        if (mean.Length == 0 || mean.Length != std.Length)
        {
            throw new ArgumentException($"Mean ({mean.Length} values) and std ({std.Length} values) must have one value per channel.");
        }

        foreach (float s in std)
        {
            if (!(s > 0) || !float.IsFinite(s))
            {
                throw new ArgumentException($"Every std must be positive and finite; got {s}.", nameof(std));
            }
        }

        this.mean = (float[])mean.Clone();
        this.std = (float[])std.Clone();
        this.table = new float[mean.Length][];
        for (int c = 0; c < mean.Length; c++)
        {
            this.table[c] = new float[256];
            for (int v = 0; v < 256; v++)
            {
                this.table[c][v] = Apply(v, c);
            }
        }
    }

    /// <summary>A normalization from a configuration's mean and std in double (timm's pretrained_cfg), rounded to float.</summary>
    public static Normalization From(IReadOnlyList<double> mean, IReadOnlyList<double> std) =>
        new([.. mean.Select(v => (float)v)], [.. std.Select(v => (float)v)]);

    /// <summary>ImageNet's mean and std (timm's defaults).</summary>
    public static Normalization ImageNet { get; } = new([0.485f, 0.456f, 0.406f], [0.229f, 0.224f, 0.225f]);

    /// <summary>Fashion-MNIST's mean and std.</summary>
    public static Normalization FashionMnist { get; } = new([Data.FashionMnist.Mean], [Data.FashionMnist.Std]);

    /// <summary>Channels it normalises.</summary>
    public int Channels => this.mean.Length;

    /// <summary>Per-channel mean.</summary>
    public IReadOnlyList<float> Mean => this.mean;

    /// <summary>Per-channel standard deviation.</summary>
    public IReadOnlyList<float> Std => this.std;

    /// <summary>What a black pixel (byte 0) becomes in each channel: the fill that makes padding look black.</summary>
    public float[] Background => this.table.Select(t => t[0]).ToArray();

    /// <summary>(<paramref name="value"/> / 255 - mean) / std for <paramref name="channel"/>.</summary>
    public float Apply(int value, int channel)
    {
        float x = value / 255f;
        return (x - this.mean[channel]) / this.std[channel];
    }

    /// <summary>HWC bytes -> normalized CHW floats.</summary>
    public void ToTensor(ByteImage image, Span<float> destination)
    {
        ArgumentNullException.ThrowIfNull(image);
        int c = image.Channels;
        if (c != Channels)
        {
            throw new ArgumentException($"The normalization has {Channels} channels but the image has {c}.");
        }

        int plane = image.Width * image.Height;
        if (destination.Length < plane * c)
        {
            throw new ArgumentException($"The destination holds {destination.Length} floats; a {c}x{image.Height}x{image.Width} image needs {plane * c}.");
        }

        ReadOnlySpan<byte> src = image.Span;
        for (int ch = 0; ch < c; ch++)
        {
            float[] table = this.table[ch];
            var dst = destination.Slice(ch * plane, plane);
            for (int i = 0, p = ch; i < plane; i++, p += c)
            {
                dst[i] = table[src[p]];
            }
        }
    }
}
