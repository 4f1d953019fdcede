namespace MobileOne.Data.Transforms;

/// <summary>
/// Constant padding of a normalized CHW image by <see cref="Padding"/> on every side, with a per-channel
/// fill value given in the normalized domain (so "black" is (0 - mean) / std, see
/// <see cref="Normalization.Background"/>).
/// </summary>
internal sealed class Pad : ITensorTransform
{
    private readonly float[] fill;

    public Pad(int padding, float[] fill)
    {
        ArgumentNullException.ThrowIfNull(fill);
        if (padding < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(padding), padding, "Padding must not be negative.");
        }

        Padding = padding;
        this.fill = (float[])fill.Clone();
    }

    public int Padding { get; }

    public IReadOnlyList<float> Fill => this.fill;

    public FloatImage Apply(FloatImage image, ref SampleRandom random) => Padding == 0 ? image : PadImage(image, Padding, this.fill);

    internal static FloatImage PadImage(FloatImage image, int padding, float[] fill)
    {
        if (fill.Length != 1 && fill.Length != image.Channels)
        {
            throw new ArgumentException($"The fill has {fill.Length} values for a {image.Channels}-channel image; give 1 or {image.Channels}.");
        }

        int h = image.Height + (2 * padding), w = image.Width + (2 * padding);
        var output = FloatImage.Rent(image.Channels, h, w);
        for (int c = 0; c < image.Channels; c++)
        {
            var dst = output.Plane(c);
            dst.Fill(fill.Length == 1 ? fill[0] : fill[c]);
            var src = image.Plane(c);
            for (int y = 0; y < image.Height; y++)
            {
                src.Slice(y * image.Width, image.Width).CopyTo(dst.Slice(((y + padding) * w) + padding));
            }
        }

        return output;
    }
}

/// <summary>
/// torchvision's RandomCrop(size, padding): pad by <see cref="Padding"/> with the fill, then a
/// <see cref="Size"/> x <see cref="Size"/> window at top ~ U{0..H-size}, left ~ U{0..W-size}.
/// </summary>
internal sealed class RandomCrop : ITensorTransform
{
    private readonly float[] fill;

    public RandomCrop(int size, int padding, float[] fill)
    {
        ArgumentNullException.ThrowIfNull(fill);
        if (size <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(size), size, "The crop size must be positive.");
        }

        if (padding < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(padding), padding, "Padding must not be negative.");
        }

        Size = size;
        Padding = padding;
        this.fill = (float[])fill.Clone();
    }

    public int Size { get; }

    public int Padding { get; }

    public IReadOnlyList<float> Fill => this.fill;

    public FloatImage Apply(FloatImage image, ref SampleRandom random)
    {
        var padded = Padding == 0 ? image : Pad.PadImage(image, Padding, this.fill);
        try
        {
            if (padded.Height < Size || padded.Width < Size)
            {
                throw new ArgumentException($"RandomCrop({Size}) needs an image of at least {Size}x{Size}; got {padded.Height}x{padded.Width} after padding {Padding}.");
            }

            int top = random.NextInt(padded.Height - Size + 1);
            int left = random.NextInt(padded.Width - Size + 1);
            var output = FloatImage.Rent(image.Channels, Size, Size);
            for (int c = 0; c < image.Channels; c++)
            {
                var src = padded.Plane(c);
                var dst = output.Plane(c);
                for (int y = 0; y < Size; y++)
                {
                    src.Slice(((top + y) * padded.Width) + left, Size).CopyTo(dst.Slice(y * Size));
                }
            }

            return output;
        }
        finally
        {
            if (!ReferenceEquals(padded, image))
            {
                padded.Dispose();
            }
        }
    }
}
