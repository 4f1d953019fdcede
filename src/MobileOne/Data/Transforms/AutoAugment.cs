namespace MobileOne.Data.Transforms;

/// <summary>
/// AutoAugment with the ImageNet policy of Cubuk et al. (the one MobileOne's paper uses for S2..S4), as
/// torchvision's AutoAugment(AutoAugmentPolicy.IMAGENET) applies it: pick one of 25 sub-policies
/// uniformly; each of its two operations runs with its probability, its magnitude taken from 10 bins
/// (shear 0..0.3, rotate 0..30 degrees, colour/contrast/sharpness/brightness 0..0.9 as factor 1 +/- m,
/// posterize 8..4 bits, solarize threshold 255..0), with a random sign for the signed operations;
/// geometric operations use nearest-neighbour sampling and fill with black.
/// </summary>
internal sealed class AutoAugment : IImageTransform
{
    private const int Bins = 10;

    // (operation, probability, magnitude bin or -1), two per sub-policy.
    private static readonly (string Op, double P, int Bin)[][] Policy =
    [
        [("Posterize", 0.4, 8), ("Rotate", 0.6, 9)],
        [("Solarize", 0.6, 5), ("AutoContrast", 0.6, -1)],
        [("Equalize", 0.8, -1), ("Equalize", 0.6, -1)],
        [("Posterize", 0.6, 7), ("Posterize", 0.6, 6)],
        [("Equalize", 0.4, -1), ("Solarize", 0.2, 4)],
        [("Equalize", 0.4, -1), ("Rotate", 0.8, 8)],
        [("Solarize", 0.6, 3), ("Equalize", 0.6, -1)],
        [("Posterize", 0.8, 5), ("Equalize", 1.0, -1)],
        [("Rotate", 0.2, 3), ("Solarize", 0.6, 8)],
        [("Equalize", 0.6, -1), ("Posterize", 0.4, 6)],
        [("Rotate", 0.8, 8), ("Color", 0.4, 0)],
        [("Rotate", 0.4, 9), ("Equalize", 0.6, -1)],
        [("Equalize", 0.0, -1), ("Equalize", 0.8, -1)],
        [("Invert", 0.6, -1), ("Equalize", 1.0, -1)],
        [("Color", 0.6, 4), ("Contrast", 1.0, 8)],
        [("Rotate", 0.8, 8), ("Color", 1.0, 2)],
        [("Color", 0.8, 8), ("Solarize", 0.8, 7)],
        [("Sharpness", 0.4, 7), ("Invert", 0.6, -1)],
        [("ShearX", 0.6, 5), ("Equalize", 1.0, -1)],
        [("Color", 0.4, 0), ("Equalize", 0.6, -1)],
        [("Equalize", 0.4, -1), ("Solarize", 0.2, 4)],
        [("Solarize", 0.6, 5), ("AutoContrast", 0.6, -1)],
        [("Invert", 0.6, -1), ("Equalize", 1.0, -1)],
        [("Color", 0.6, 4), ("Contrast", 1.0, 8)],
        [("Equalize", 0.8, -1), ("Equalize", 0.6, -1)],
    ];

    public static int SubPolicyCount => Policy.Length;

    public ByteImage Apply(ByteImage image, ref SampleRandom random)
    {
        var sub = Policy[random.NextInt(Policy.Length)];
        double p0 = random.NextDouble(), p1 = random.NextDouble();
        bool negative0 = random.NextInt(2) == 0, negative1 = random.NextInt(2) == 0;
        var current = image;
        current = Step(current, image, sub[0], p0, negative0);
        current = Step(current, image, sub[1], p1, negative1);
        return current;
    }

    /// <summary>The magnitude of bin <paramref name="bin"/> for an operation (torchvision's linspace tables).</summary>
    public static double Magnitude(string op, int bin) => op switch
    {
        "ShearX" or "ShearY" => Linspace(0.0, 0.3, bin),
        "Rotate" => Linspace(0.0, 30.0, bin),
        "Brightness" or "Color" or "Contrast" or "Sharpness" => Linspace(0.0, 0.9, bin),
        "Posterize" => 8 - (int)Math.Round(bin / ((Bins - 1) / 4.0), MidpointRounding.ToEven),
        "Solarize" => Linspace(255.0, 0.0, bin),
        _ => 0.0,
    };

    private static ByteImage Step(ByteImage current, ByteImage original, (string Op, double P, int Bin) op, double draw, bool negative)
    {
        if (!(draw <= op.P))
        {
            return current;
        }

        double m = op.Bin >= 0 ? Magnitude(op.Op, op.Bin) : 0.0;
        bool signed = op.Op is "ShearX" or "ShearY" or "Rotate" or "Brightness" or "Color" or "Contrast" or "Sharpness";
        if (signed && negative)
        {
            m = -m;
        }

        var next = Operations.Apply(current, op.Op, m, Interpolation.Nearest, []);
        if (!ReferenceEquals(next, current) && !ReferenceEquals(current, original))
        {
            current.Dispose();
        }

        return next;
    }

    private static double Linspace(double start, double end, int bin) => start + ((end - start) * bin / (Bins - 1));
}

/// <summary>The operation set shared by <see cref="AutoAugment"/> and <see cref="RandAugment"/>.</summary>
internal static class Operations
{
    /// <summary>
    /// Applies one named operation with its final magnitude (a factor offset, an angle, a shear, pixels).
    /// Shears are PIL's inverse map (1, m, 0, 0, 1, 0) / (1, 0, 0, m, 1, 0): torchvision's
    /// affine(shear=degrees(atan(m)), center=[0, 0]) reduces to exactly that matrix, and timm passes it directly.
    /// </summary>
    public static ByteImage Apply(ByteImage image, string op, double m, Interpolation interpolation, ReadOnlySpan<byte> fill)
    {
        switch (op)
        {
            case "ShearX":
                return ImageOps.Affine(image, [1, m, 0, 0, 1, 0], interpolation, fill);
            case "ShearY":
                return ImageOps.Affine(image, [1, 0, 0, m, 1, 0], interpolation, fill);
            case "TranslateX":
                return ImageOps.Affine(image, [1, 0, -m, 0, 1, 0], interpolation, fill);
            case "TranslateY":
                return ImageOps.Affine(image, [1, 0, 0, 0, 1, -m], interpolation, fill);
            case "TranslateXRel":
                return ImageOps.Affine(image, [1, 0, m * image.Width, 0, 1, 0], interpolation, fill);
            case "TranslateYRel":
                return ImageOps.Affine(image, [1, 0, 0, 0, 1, m * image.Height], interpolation, fill);
            case "Rotate":
                return m == 0.0 ? image : ImageOps.Rotate(image, m, interpolation, fill);
            case "Brightness":
                ImageOps.Brightness(image, 1.0 + m);
                return image;
            case "Color":
                ImageOps.Color(image, 1.0 + m);
                return image;
            case "Contrast":
                ImageOps.Contrast(image, 1.0 + m);
                return image;
            case "Sharpness":
                return ImageOps.Sharpness(image, 1.0 + m);
            case "Posterize":
                ImageOps.Posterize(image, (int)m);
                return image;
            case "Solarize":
                ImageOps.Solarize(image, m);
                return image;
            case "SolarizeAdd":
                ImageOps.SolarizeAdd(image, (int)m);
                return image;
            case "AutoContrast":
                ImageOps.AutoContrast(image);
                return image;
            case "Equalize":
                ImageOps.Equalize(image);
                return image;
            case "Invert":
                ImageOps.Invert(image);
                return image;
            default:
                throw new ArgumentException($"Unknown augmentation operation '{op}'.", nameof(op));
        }
    }
}
