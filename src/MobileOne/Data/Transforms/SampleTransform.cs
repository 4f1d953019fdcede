namespace MobileOne.Data.Transforms;

/// <summary>
/// The whole per-sample pipeline: 8-bit image transforms, then ToTensor + Normalize, then tensor
/// transforms, ending in a fixed Channels x Height x Width float block written into a batch.
/// </summary>
public sealed class SampleTransform
{
    private readonly IImageTransform[] image;
    private readonly ITensorTransform[] tensor;

    /// <summary>A transform to <paramref name="channels"/> x <paramref name="height"/> x <paramref name="width"/> floats: image transforms, then normalization, then tensor transforms.</summary>
    public SampleTransform(
        int channels, int height, int width, IEnumerable<IImageTransform>? image, Normalization normalization, IEnumerable<ITensorTransform>? tensor = null)
    {
        ArgumentNullException.ThrowIfNull(normalization);
        ByteImage.CheckSize(width, height, channels);
        if (normalization.Channels != channels)
        {
            throw new ArgumentException($"The normalization has {normalization.Channels} channels; the output has {channels}.");
        }

        Channels = channels;
        Height = height;
        Width = width;
        Normalization = normalization;
        this.image = image?.ToArray() ?? [];
        this.tensor = tensor?.ToArray() ?? [];
    }

    /// <summary>Channels of the output.</summary>
    public int Channels { get; }

    /// <summary>Height of the output.</summary>
    public int Height { get; }

    /// <summary>Width of the output.</summary>
    public int Width { get; }

    /// <summary>Floats per sample.</summary>
    public int SampleLength => Channels * Height * Width;

    /// <summary>The byte-to-float normalization.</summary>
    public Normalization Normalization { get; }

    /// <summary>Transforms applied to the 8-bit image, in order.</summary>
    public IReadOnlyList<IImageTransform> ImageTransforms => this.image;

    /// <summary>Transforms applied to the normalised float image, in order.</summary>
    public IReadOnlyList<ITensorTransform> TensorTransforms => this.tensor;

    /// <summary>
    /// Runs the pipeline on <paramref name="image"/> (which it may change in place but does not dispose)
    /// and writes Channels x Height x Width floats to <paramref name="destination"/>.
    /// </summary>
    public void Apply(ByteImage image, ref SampleRandom random, Span<float> destination)
    {
        ArgumentNullException.ThrowIfNull(image);
        var current = image;
        try
        {
            foreach (var t in this.image)
            {
                var next = t.Apply(current, ref random);
                if (!ReferenceEquals(next, current) && !ReferenceEquals(current, image))
                {
                    current.Dispose();
                }

                current = next;
            }

            if (current.Channels != Channels)
            {
                throw new InvalidOperationException($"The image has {current.Channels} channels; the transform produces {Channels}.");
            }

            if (this.tensor.Length == 0)
            {
                CheckShape(current.Height, current.Width);
                Normalization.ToTensor(current, destination);
                return;
            }

            var tensor = FloatImage.Rent(current.Channels, current.Height, current.Width);
            Normalization.ToTensor(current, tensor.Span);
            foreach (var t in this.tensor)
            {
                var next = t.Apply(tensor, ref random);
                if (!ReferenceEquals(next, tensor))
                {
                    tensor.Dispose();
                }

                tensor = next;
            }

            CheckShape(tensor.Height, tensor.Width);
            tensor.Span.CopyTo(destination);
            tensor.Dispose();
        }
        finally
        {
            if (!ReferenceEquals(current, image))
            {
                current.Dispose();
            }
        }
    }

    private void CheckShape(int height, int width)
    {
        if (height != Height || width != Width)
        {
            throw new InvalidOperationException(
                $"The transforms produced a {Channels}x{height}x{width} sample; the batch expects {Channels}x{Height}x{Width} (add a crop or resize to that size).");
        }
    }
}
