namespace MobileOne.Data.Transforms;

/// <summary>Which policy-based augmentation an ImageNet-style training pipeline adds after the flip.</summary>
internal enum AugmentPolicy
{
    None,

    /// <summary>torchvision AutoAugment, ImageNet policy (MobileOne's recipe for S2..S4).</summary>
    AutoAugment,

    /// <summary>timm RandAugment, rand-m9-mstd0.5 unless configured otherwise.</summary>
    RandAugment,
}

/// <summary>The pipelines of the MobileOne recipes, ready to hand to a <see cref="Loading.DataLoader"/>.</summary>
internal static class DataTransforms
{
    /// <summary>Fashion-MNIST 28x28 images become 32x32 after a 2-pixel black border.</summary>
    public const int FashionMnistSize = 32;

    /// <summary>The black border around the 28 x 28 image that makes it 32 x 32 (and size - 4 resized images size x size).</summary>
    public const int FashionMnistBorder = 2;

    /// <summary>The smallest Fashion-MNIST size: an 8 x 8 image inside the border.</summary>
    public const int FashionMnistMinSize = 8 + (2 * FashionMnistBorder);

    /// <summary>
    /// Fashion-MNIST without augmentation (training without augmentation, and evaluation): x/255,
    /// normalize with mean 0.2860 / std 0.3530, then pad by 2 with the normalized value of black,
    /// (0 - 0.2860) / 0.3530, giving 1 x 32 x 32.
    /// </summary>
    public static SampleTransform FashionMnistEval()
    {
        var norm = Normalization.FashionMnist;
        return new SampleTransform(1, FashionMnistSize, FashionMnistSize, null, norm, [new Pad(2, norm.Background)]);
    }

    /// <summary>
    /// The recipe's Fashion-MNIST training pipeline: <see cref="FashionMnistEval"/>, then on the 32x32
    /// normalized image a 4-pixel pad, a random 32x32 crop and a horizontal flip with p = 0.5. The pad-4
    /// fill is black in normalized units by default (<paramref name="zeroFill"/> false), i.e. the same as
    /// padding the raw image with 0: the shifted image then looks like a shifted garment on a black
    /// background. PyTorch's literal RandomCrop(32, padding=4) after Normalize would fill with 0.0 in
    /// normalized units (raw grey 0.2860); pass <paramref name="zeroFill"/> true for that.
    /// </summary>
    public static SampleTransform FashionMnistTrain(bool zeroFill = false)
    {
        var norm = Normalization.FashionMnist;
        float[] fill = zeroFill ? [0f] : norm.Background;
        return new SampleTransform(
            1,
            FashionMnistSize,
            FashionMnistSize,
            null,
            norm,
            [new Pad(2, norm.Background), new RandomCrop(FashionMnistSize, 4, fill), new RandomHorizontalFlip(0.5)]);
    }

    /// <summary>
    /// Fashion-MNIST training images at <paramref name="size"/> x <paramref name="size"/> (progressive resizing): the
    /// 28 x 28 image is resized (PIL bilinear) to size - 4, then goes through the 32 pipeline's steps scaled to it:
    /// normalize, the 2-pixel black border (so the garment fills the same fraction of the frame at every size, as
    /// 28 does of 32), and with <paramref name="augment"/> a pad of round(size / 8) (4 at 32: the same relative shift)
    /// with a random size x size crop and a horizontal flip; <paramref name="erasing"/> comes last, on the normalized
    /// tensor, as in timm. At 32 without erasing this is exactly <see cref="FashionMnistTrain(bool)"/> (augment) or
    /// <see cref="FashionMnistEval"/> (no augment): no resize step is added, so nothing changes by a bit.
    /// </summary>
    public static SampleTransform FashionMnistAtSize(int size, bool augment = true, ITensorTransform? erasing = null)
    {
        int inner = FashionMnistInner(size, "training sizes");

        var norm = Normalization.FashionMnist;
        IImageTransform[]? resize = inner == FashionMnist.ImageSize ? null : [new ResizeShorterSide(inner, ResampleFilter.Bilinear)];
        var tensor = new List<ITensorTransform> { new Pad(FashionMnistBorder, norm.Background) };
        if (augment)
        {
            tensor.Add(new RandomCrop(size, FashionMnistShift(size), norm.Background));
            tensor.Add(new RandomHorizontalFlip(0.5));
        }

        if (erasing is not null)
        {
            tensor.Add(erasing);
        }

        return new SampleTransform(1, size, size, resize, norm, tensor);
    }

    /// <summary>The side the 28 x 28 image is resized to for a Fashion-MNIST <paramref name="size"/>: size less the borders; throws below <see cref="FashionMnistMinSize"/>.</summary>
    private static int FashionMnistInner(int size, string what) =>
        size >= FashionMnistMinSize
            ? size - (2 * FashionMnistBorder)
            : throw new ArgumentOutOfRangeException(nameof(size), size, $"Fashion-MNIST {what} must be at least {FashionMnistMinSize}.");

    /// <summary>The random-crop padding of <see cref="FashionMnistAtSize"/>: round(size / 8), 4 at 32.</summary>
    public static int FashionMnistShift(int size) => (int)Math.Round(size / 8.0, MidpointRounding.ToEven);

    /// <summary>
    /// timm's ImageNet training pipeline: RandomResizedCrop(size, scale (0.08, 1), ratio (3/4, 4/3),
    /// bilinear), horizontal flip p = 0.5, an optional AutoAugment / RandAugment, ToTensor, Normalize, and
    /// <paramref name="erasing"/> (timm's RandomErasing) on the normalized tensor when given.
    /// </summary>
    public static SampleTransform ImageNetTrain(
        int size = 224, AugmentPolicy policy = AugmentPolicy.None, string randAugment = "rand-m9-mstd0.5", Normalization? normalization = null,
        ITensorTransform? erasing = null)
    {
        var norm = normalization ?? Normalization.ImageNet;
        var steps = new List<IImageTransform> { new RandomResizedCrop(size), new RandomHorizontalFlip(0.5) };
        switch (policy)
        {
            case AugmentPolicy.AutoAugment:
                steps.Add(new AutoAugment());
                break;
            case AugmentPolicy.RandAugment:
                steps.Add(RandAugment.Parse(randAugment, MeanColor(norm)));
                break;
        }

        return new SampleTransform(norm.Channels, size, size, steps, norm, erasing is null ? null : [erasing]);
    }

    /// <summary>
    /// timm's evaluation pipeline: resize the shorter side to floor(size / cropPct) (PIL bilinear unless
    /// <paramref name="filter"/> says otherwise), centre crop size x size, ToTensor, Normalize.
    /// </summary>
    public static SampleTransform ImageNetEval(
        int size = 224, double cropPct = 0.875, Normalization? normalization = null, ResampleFilter filter = ResampleFilter.Bilinear)
    {
        if (!(cropPct > 0 && cropPct <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(cropPct), cropPct, "The crop fraction must lie in (0, 1].");
        }

        var norm = normalization ?? Normalization.ImageNet;
        int scaleSize = (int)Math.Floor(size / cropPct);
        return new SampleTransform(norm.Channels, size, size, [new ResizeShorterSide(scaleSize, filter), new CenterCrop(size)], norm);
    }

    /// <summary>
    /// Fashion-MNIST's evaluation transform at <paramref name="size"/> (<see cref="FashionMnistAtSize"/> without
    /// augmentation; <see cref="FashionMnistEval"/> at 32) for a grey image of any size: the shorter side resized to
    /// size - 4 (PIL bilinear unless <paramref name="filter"/> says otherwise) and the centre kept, so a 28 x 28
    /// image goes through exactly as in evaluation, then the 2-pixel black border.
    /// </summary>
    public static SampleTransform FashionMnistAnySize(ResampleFilter filter = ResampleFilter.Bilinear, int size = FashionMnistSize)
    {
        var norm = Normalization.FashionMnist;
        int inner = FashionMnistInner(size, "sizes");

        return new SampleTransform(
            1, size, size, [new ResizeShorterSide(inner, filter), new CenterCrop(inner)], norm, [new Pad(FashionMnistBorder, norm.Background)]);
    }

    /// <summary>
    /// Parses an augmentation name as the trainer's --aa takes it: "none", "autoaugment" (or timm's
    /// "original"), or a RandAugment config "rand-...".
    /// </summary>
    public static (AugmentPolicy Policy, string RandAugment) ParsePolicy(string? name)
    {
        if (string.IsNullOrEmpty(name) || name == "none")
        {
            return (AugmentPolicy.None, "");
        }

        if (name is "autoaugment" or "original" or "aa")
        {
            return (AugmentPolicy.AutoAugment, "");
        }

        if (name.StartsWith("rand", StringComparison.Ordinal))
        {
            _ = RandAugment.Parse(name);
            return (AugmentPolicy.RandAugment, name);
        }

        throw new ArgumentException($"Unknown augmentation '{name}'; expected none, autoaugment or a RandAugment config such as rand-m9-mstd0.5.", nameof(name));
    }

    /// <summary>timm's img_mean fill: round(255 * mean) per channel.</summary>
    private static byte[] MeanColor(Normalization norm) =>
        norm.Mean.Select(m => (byte)Math.Min(255, Math.Round(255 * m, MidpointRounding.ToEven))).ToArray();
}
