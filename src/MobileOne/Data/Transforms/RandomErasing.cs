namespace MobileOne.Data.Transforms;

/// <summary>What an erased rectangle is filled with (timm's RandomErasing mode).</summary>
internal enum ErasingMode
{
    /// <summary>'const': 0 in every channel, i.e. the data set's mean colour in normalized units.</summary>
    Const,

    /// <summary>'rand': one standard-normal value per channel for the whole rectangle.</summary>
    Rand,

    /// <summary>'pixel': a standard-normal value per pixel and channel (timm train.py's default --remode).</summary>
    Pixel,
}

/// <summary>
/// timm's RandomErasing (Zhong et al., 'Random Erasing Data Augmentation') on one normalized CHW image, in place,
/// with timm's control flow (timm/data/random_erasing.py): nothing happens when a uniform draw is above
/// <see cref="Probability"/>; otherwise for each of count rectangles (count drawn from [MinCount, MaxCount], not drawn
/// when they are equal), up to 10 attempts draw a target area uniformly in [min_area, max_area] x H x W / count and a
/// log aspect ratio uniformly in [log min_aspect, log max_aspect], take h = round(sqrt(area x aspect)) and
/// w = round(sqrt(area / aspect)) with Python's round (half to even), and the first attempt with w &lt; W and h &lt; H
/// places the rectangle at top ~ U{0..H-h}, left ~ U{0..W-w} and fills it per <see cref="Mode"/>.
/// Python's random.random / uniform / randint and torch's normal_ become <see cref="SampleRandom.NextDouble"/>,
/// <see cref="SampleRandom.Uniform"/>, <see cref="SampleRandom.NextIntInclusive"/> and <see cref="SampleRandom.Gaussian"/>
/// (per pixel in C, H, W order), so an image's erasing is fixed by (seed, epoch, index) like every other augmentation.
/// </summary>
internal sealed class RandomErasing : ITensorTransform
{
    /// <summary>timm's min_area: the smallest rectangle is 2% of the image.</summary>
    public const double DefaultMinArea = 0.02;

    /// <summary>timm's max_area: the largest rectangle is a third of the image.</summary>
    public const double DefaultMaxArea = 1.0 / 3;

    /// <summary>timm's min_aspect (max_aspect is its inverse, 1 / 0.3).</summary>
    public const double DefaultMinAspect = 0.3;

    private const int Attempts = 10;

    public RandomErasing(
        double probability, ErasingMode mode = ErasingMode.Pixel, int minCount = 1, int? maxCount = null,
        double minArea = DefaultMinArea, double maxArea = DefaultMaxArea, double minAspect = DefaultMinAspect, double? maxAspect = null)
    {
        if (!(probability >= 0 && probability <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(probability), probability, "A probability must lie in [0, 1].");
        }

        if (!Enum.IsDefined(mode))
        {
            throw new ArgumentOutOfRangeException(nameof(mode), mode, "Unknown erasing mode.");
        }

        int max = maxCount ?? minCount;
        if (minCount < 1 || max < minCount)
        {
            throw new ArgumentOutOfRangeException(nameof(maxCount), max, $"Erasing needs 1 <= min count <= max count; got {minCount} and {max}.");
        }

        if (!(minArea > 0 && minArea <= maxArea && maxArea <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(minArea), minArea, $"Erasing needs 0 < min area <= max area <= 1; got {minArea} and {maxArea}.");
        }

        double maxAspectValue = maxAspect ?? (1 / minAspect);
        if (!(minAspect > 0 && maxAspectValue >= minAspect && double.IsFinite(maxAspectValue)))
        {
            throw new ArgumentOutOfRangeException(nameof(minAspect), minAspect, $"Erasing needs 0 < min aspect <= max aspect; got {minAspect} and {maxAspectValue}.");
        }

        Probability = probability;
        Mode = mode;
        MinCount = minCount;
        MaxCount = max;
        MinArea = minArea;
        MaxArea = maxArea;
        LogAspectRange = (Math.Log(minAspect), Math.Log(maxAspectValue));
    }

    public double Probability { get; }

    public ErasingMode Mode { get; }

    public int MinCount { get; }

    public int MaxCount { get; }

    public double MinArea { get; }

    public double MaxArea { get; }

    public (double Low, double High) LogAspectRange { get; }

    /// <summary>timm's --remode names: "pixel", "rand" or "const" ("" is const, as in timm).</summary>
    public static ErasingMode ParseMode(string? name) => name?.ToLowerInvariant() switch
    {
        "pixel" => ErasingMode.Pixel,
        "rand" => ErasingMode.Rand,
        "const" or "" or null => ErasingMode.Const,
        _ => throw new ArgumentException($"--remode must be pixel, rand or const; got '{name}'."),
    };

    public FloatImage Apply(FloatImage image, ref SampleRandom random)
    {
        ArgumentNullException.ThrowIfNull(image);
        if (random.NextDouble() > Probability)
        {
            return image;
        }

        int height = image.Height, width = image.Width;
        double area = height * width;
        int count = MinCount == MaxCount ? MinCount : random.NextIntInclusive(MinCount, MaxCount);
        for (int n = 0; n < count; n++)
        {
            for (int attempt = 0; attempt < Attempts; attempt++)
            {
                // The same order of operations as timm: uniform * area / count, then exp of a uniform log-aspect.
                double targetArea = random.Uniform(MinArea, MaxArea) * area / count;
                double aspect = Math.Exp(random.Uniform(LogAspectRange.Low, LogAspectRange.High));
                int h = (int)Math.Round(Math.Sqrt(targetArea * aspect), MidpointRounding.ToEven);
                int w = (int)Math.Round(Math.Sqrt(targetArea / aspect), MidpointRounding.ToEven);
                if (w < width && h < height)
                {
                    int top = random.NextIntInclusive(0, height - h);
                    int left = random.NextIntInclusive(0, width - w);
                    Fill(image, top, left, h, w, ref random);
                    break;
                }
            }
        }

        return image;
    }

    private void Fill(FloatImage image, int top, int left, int h, int w, ref SampleRandom random)
    {
        for (int c = 0; c < image.Channels; c++)
        {
            var plane = image.Plane(c);
            float channelValue = Mode == ErasingMode.Rand ? (float)random.Gaussian(0, 1) : 0f;
            for (int y = top; y < top + h; y++)
            {
                var row = plane.Slice((y * image.Width) + left, w);
                if (Mode == ErasingMode.Pixel)
                {
                    for (int x = 0; x < w; x++)
                    {
                        row[x] = (float)random.Gaussian(0, 1);
                    }
                }
                else
                {
                    row.Fill(channelValue);
                }
            }
        }
    }
}
