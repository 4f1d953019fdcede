using System.Globalization;

namespace MobileOne.Data.Transforms;

/// <summary>
/// timm's RandAugment (rand_augment_transform), default "rand-m9-mstd0.5": <see cref="Layers"/> operations
/// drawn uniformly with replacement from timm's 15 (AutoContrast, Equalize, Invert, Rotate, Posterize,
/// Solarize, SolarizeAdd, Color, Contrast, Brightness, Sharpness, ShearX, ShearY, TranslateXRel,
/// TranslateYRel); each runs with probability <see cref="Probability"/>, at a magnitude drawn from
/// N(<see cref="Magnitude"/>, <see cref="MagnitudeStd"/>) clipped to [0, 10], mapped as timm does:
/// rotate 30 m/10 degrees, shear 0.3 m/10, translate 0.45 m/10 of the size (each with a random sign),
/// enhancement factor 1.8 m/10 + 0.1, posterize int(4 m/10) bits, solarize threshold int(256 m/10),
/// solarize-add int(110 m/10). Geometric operations resample bilinearly and fill with the dataset mean
/// colour (timm's img_mean hyper-parameter).
/// </summary>
internal sealed class RandAugment : IImageTransform
{
    private static readonly string[] Ops =
    [
        "AutoContrast", "Equalize", "Invert", "Rotate", "Posterize", "Solarize", "SolarizeAdd",
        "Color", "Contrast", "Brightness", "Sharpness", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel",
    ];

    private readonly byte[] fill;

    public RandAugment(double magnitude = 9, double magnitudeStd = 0.5, int layers = 2, double probability = 0.5, byte[]? fill = null)
    {
        if (!(magnitude >= 0 && magnitude <= 10))
        {
            throw new ArgumentOutOfRangeException(nameof(magnitude), magnitude, "RandAugment magnitude must lie in [0, 10].");
        }

        if (!(magnitudeStd >= 0))
        {
            throw new ArgumentOutOfRangeException(nameof(magnitudeStd), magnitudeStd, "RandAugment magnitude std must not be negative.");
        }

        if (layers < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(layers), layers, "RandAugment needs at least one layer.");
        }

        if (!(probability >= 0 && probability <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(probability), probability, "A probability must lie in [0, 1].");
        }

        Magnitude = magnitude;
        MagnitudeStd = magnitudeStd;
        Layers = layers;
        Probability = probability;
        this.fill = fill ?? [124, 116, 104];
    }

    public double Magnitude { get; }

    public double MagnitudeStd { get; }

    public int Layers { get; }

    public double Probability { get; }

    public IReadOnlyList<byte> FillColor => this.fill;

    public static IReadOnlyList<string> OperationNames => Ops;

    /// <summary>
    /// Parses timm's config string: "rand" then dash-separated m&lt;magnitude&gt;, n&lt;layers&gt;,
    /// mstd&lt;std&gt;, p&lt;probability&gt; (e.g. "rand-m9-mstd0.5", "rand-m7-n3-mstd0.5-p0.5").
    /// </summary>
    public static RandAugment Parse(string config, byte[]? fill = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(config);
        string[] parts = config.Split('-');
        if (parts[0] != "rand")
        {
            throw new ArgumentException($"RandAugment config '{config}' must start with 'rand' (e.g. rand-m9-mstd0.5).", nameof(config));
        }

        double m = 9, std = 0.5, p = 0.5;
        int n = 2;
        foreach (string part in parts.Skip(1))
        {
            string key = part.StartsWith("mstd", StringComparison.Ordinal) ? "mstd" : part.Length > 0 ? part[..1] : part;
            string value = part[key.Length..];
            bool ok = key switch
            {
                "m" => double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out m),
                "n" => int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out n),
                "mstd" => double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out std),
                "p" => double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out p),
                _ => false,
            };
            if (!ok)
            {
                throw new ArgumentException(
                    $"RandAugment config '{config}': cannot use '{part}'; supported: m<magnitude>, n<layers>, mstd<std>, p<probability>.", nameof(config));
            }
        }

        return new RandAugment(m, std, n, p, fill);
    }

    public ByteImage Apply(ByteImage image, ref SampleRandom random)
    {
        Span<int> chosen = stackalloc int[Layers];
        for (int i = 0; i < Layers; i++)
        {
            chosen[i] = random.NextInt(Ops.Length);
        }

        var current = image;
        foreach (int index in chosen)
        {
            string op = Ops[index];
            if (Probability < 1.0 && random.NextDouble() > Probability)
            {
                continue;
            }

            double level = MagnitudeStd > 0 ? random.Gaussian(Magnitude, MagnitudeStd) : Magnitude;
            level = Math.Clamp(level, 0.0, 10.0) / 10.0;
            double m = op switch
            {
                "Rotate" => Negate(level * 30.0, ref random),
                "ShearX" or "ShearY" => Negate(level * 0.3, ref random),
                "TranslateXRel" or "TranslateYRel" => Negate(level * 0.45, ref random),
                "Color" or "Contrast" or "Brightness" or "Sharpness" => (level * 1.8) + 0.1 - 1.0,
                "Posterize" => (int)(level * 4),
                "Solarize" => (int)(level * 256),
                "SolarizeAdd" => (int)(level * 110),
                _ => 0.0,
            };
            var next = Operations.Apply(current, op, m, Interpolation.Bilinear, this.fill);
            if (!ReferenceEquals(next, current) && !ReferenceEquals(current, image))
            {
                current.Dispose();
            }

            current = next;
        }

        return current;
    }

    private static double Negate(double v, ref SampleRandom random) => random.NextDouble() > 0.5 ? -v : v;
}
