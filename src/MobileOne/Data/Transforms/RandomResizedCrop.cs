namespace MobileOne.Data.Transforms;

/// <summary>A crop box: top-left corner and size, in pixels of the source image.</summary>
internal readonly record struct CropBox(int Top, int Left, int Height, int Width);

/// <summary>
/// torchvision's / timm's RandomResizedCrop: up to 10 attempts to draw an area fraction in
/// <see cref="ScaleMin"/>..<see cref="ScaleMax"/> and a log-uniform aspect ratio in
/// <see cref="RatioMin"/>..<see cref="RatioMax"/>; w = round(sqrt(area * ratio)), h = round(sqrt(area / ratio))
/// with Python's round (half to even); the first box that fits gets a uniform position. After 10 misses,
/// the fallback is a centre crop clamped to the ratio range. The box is then resized to Size x Size with
/// PIL-style bilinear (<see cref="Resample"/>).
/// </summary>
internal sealed class RandomResizedCrop : IImageTransform
{
    public RandomResizedCrop(int size, double scaleMin = 0.08, double scaleMax = 1.0, double ratioMin = 3.0 / 4.0, double ratioMax = 4.0 / 3.0)
    {
        if (size <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(size), size, "The crop size must be positive.");
        }

        if (!(scaleMin > 0 && scaleMin <= scaleMax && scaleMax <= 1.0))
        {
            throw new ArgumentException($"Scale range ({scaleMin}, {scaleMax}) must satisfy 0 < min <= max <= 1.");
        }

        if (!(ratioMin > 0 && ratioMin <= ratioMax))
        {
            throw new ArgumentException($"Ratio range ({ratioMin}, {ratioMax}) must satisfy 0 < min <= max.");
        }

        Size = size;
        ScaleMin = scaleMin;
        ScaleMax = scaleMax;
        RatioMin = ratioMin;
        RatioMax = ratioMax;
    }

    public int Size { get; }

    public double ScaleMin { get; }

    public double ScaleMax { get; }

    public double RatioMin { get; }

    public double RatioMax { get; }

    public CropBox Sample(int width, int height, ref SampleRandom random)
    {
        double area = (double)width * height;
        double logMin = Math.Log(RatioMin), logMax = Math.Log(RatioMax);
        for (int attempt = 0; attempt < 10; attempt++)
        {
            double targetArea = area * random.Uniform(ScaleMin, ScaleMax);
            double aspect = Math.Exp(random.Uniform(logMin, logMax));
            int w = (int)Math.Round(Math.Sqrt(targetArea * aspect), MidpointRounding.ToEven);
            int h = (int)Math.Round(Math.Sqrt(targetArea / aspect), MidpointRounding.ToEven);
            if (w > 0 && w <= width && h > 0 && h <= height)
            {
                int top = random.NextInt(height - h + 1);
                int left = random.NextInt(width - w + 1);
                return new CropBox(top, left, h, w);
            }
        }

        double inRatio = (double)width / height;
        int cw, ch;
        if (inRatio < RatioMin)
        {
            cw = width;
            ch = (int)Math.Round(cw / RatioMin, MidpointRounding.ToEven);
        }
        else if (inRatio > RatioMax)
        {
            ch = height;
            cw = (int)Math.Round(ch * RatioMax, MidpointRounding.ToEven);
        }
        else
        {
            cw = width;
            ch = height;
        }

        return new CropBox((height - ch) / 2, (width - cw) / 2, ch, cw);
    }

    public ByteImage Apply(ByteImage image, ref SampleRandom random)
    {
        var box = Sample(image.Width, image.Height, ref random);
        return Resample.Bilinear(image, box.Left, box.Top, box.Width, box.Height, Size, Size);
    }
}

/// <summary>
/// torchvision's Resize(int) on a PIL image: the shorter side becomes <see cref="Size"/>, the longer side
/// int(Size * long / short) (truncated), resampled as PIL does with <see cref="Filter"/> (bilinear unless
/// given). An image already at that size is unchanged.
/// </summary>
internal sealed class ResizeShorterSide : IImageTransform
{
    public ResizeShorterSide(int size, ResampleFilter filter = ResampleFilter.Bilinear)
    {
        if (size <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(size), size, "The resize target must be positive.");
        }

        if (!Enum.IsDefined(filter))
        {
            throw new ArgumentOutOfRangeException(nameof(filter), filter, "Unknown resampling filter.");
        }

        Size = size;
        Filter = filter;
    }

    public int Size { get; }

    public ResampleFilter Filter { get; }

    public (int Width, int Height) OutputSize(int width, int height) =>
        width <= height ? (Size, (int)((double)Size * height / width)) : ((int)((double)Size * width / height), Size);

    public ByteImage Apply(ByteImage image, ref SampleRandom random)
    {
        var (w, h) = OutputSize(image.Width, image.Height);
        return w == image.Width && h == image.Height ? image : Resample.Resize(image, w, h, Filter);
    }
}

/// <summary>
/// torchvision's CenterCrop: top = round((H - size) / 2), left = round((W - size) / 2) with Python's
/// round; an image smaller than the crop is first zero-padded (left/top get the floor of half the
/// shortfall, right/bottom the ceiling).
/// </summary>
internal sealed class CenterCrop : IImageTransform
{
    public CenterCrop(int size)
    {
        if (size <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(size), size, "The crop size must be positive.");
        }

        Size = size;
    }

    public int Size { get; }

    public ByteImage Apply(ByteImage image, ref SampleRandom random)
    {
        int c = image.Channels;
        var output = ByteImage.Rent(Size, Size, c);
        output.Span.Clear();
        int padLeft = image.Width < Size ? (Size - image.Width) / 2 : 0;
        int padTop = image.Height < Size ? (Size - image.Height) / 2 : 0;
        int srcLeft = image.Width > Size ? (int)Math.Round((image.Width - Size) / 2.0, MidpointRounding.ToEven) : 0;
        int srcTop = image.Height > Size ? (int)Math.Round((image.Height - Size) / 2.0, MidpointRounding.ToEven) : 0;
        int copyW = Math.Min(Size, image.Width), copyH = Math.Min(Size, image.Height);
        for (int y = 0; y < copyH; y++)
        {
            image.Pixels.AsSpan(((srcTop + y) * image.Stride) + (srcLeft * c), copyW * c)
                .CopyTo(output.Pixels.AsSpan(((padTop + y) * output.Stride) + (padLeft * c)));
        }

        return output;
    }
}

/// <summary>Mirror left-right with probability <see cref="Probability"/> (torch.rand(1) &lt; p), in place.</summary>
internal sealed class RandomHorizontalFlip : IImageTransform, ITensorTransform
{
    public RandomHorizontalFlip(double probability = 0.5)
    {
        if (!(probability >= 0 && probability <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(probability), probability, "A probability must lie in [0, 1].");
        }

        Probability = probability;
    }

    public double Probability { get; }

    public ByteImage Apply(ByteImage image, ref SampleRandom random)
    {
        if (random.Bernoulli(Probability))
        {
            Flip(image);
        }

        return image;
    }

    public FloatImage Apply(FloatImage image, ref SampleRandom random)
    {
        if (random.Bernoulli(Probability))
        {
            Flip(image);
        }

        return image;
    }

    public static void Flip(ByteImage image)
    {
        int c = image.Channels;
        for (int y = 0; y < image.Height; y++)
        {
            var row = image.Row(y);
            for (int l = 0, r = image.Width - 1; l < r; l++, r--)
            {
                for (int ch = 0; ch < c; ch++)
                {
                    (row[(l * c) + ch], row[(r * c) + ch]) = (row[(r * c) + ch], row[(l * c) + ch]);
                }
            }
        }
    }

    public static void Flip(FloatImage image)
    {
        for (int ch = 0; ch < image.Channels; ch++)
        {
            var plane = image.Plane(ch);
            for (int y = 0; y < image.Height; y++)
            {
                plane.Slice(y * image.Width, image.Width).Reverse();
            }
        }
    }
}
