using System.Globalization;
using MobileOne.Data.Transforms;
using MobileOne.Models;

namespace MobileOne.Classification;

/// <summary>Which evaluation transform a classifier's inputs go through.</summary>
public enum InputPipeline
{
    /// <summary>
    /// timm's eval pipeline on PIL images: convert("RGB"), resize the shorter side to floor(size / crop_pct),
    /// centre crop size x size, ToTensor, Normalize with the ImageNet mean and std.
    /// </summary>
    ImageNet,

    /// <summary>
    /// The project's Fashion-MNIST evaluation transform for grey (1-channel) models: convert("L"), resize the
    /// shorter side to 28 and centre crop 28 x 28 (a no-op for 28 x 28 images), x / 255, Normalize(0.2860,
    /// 0.3530), pad 2 pixels of black to 32 x 32.
    /// </summary>
    FashionMnist,
}

/// <summary>
/// The preprocessing of a classifier's input images, with the defaults of the model's timm pretrained
/// configuration (<see cref="ForModel(ClassifierNetwork)"/>, from the model registry): e.g. MobileOne-S0 crop_pct 0.875,
/// S1..S4 0.9, bilinear, ImageNet mean and std; ResNet 0.95 bicubic; MobileNet-V1 mean and std 0.5. Grey models take
/// the Fashion-MNIST transform.
/// </summary>
public sealed record ImagePreprocessing
{
    /// <summary>Which pipeline: timm's ImageNet eval transform, or the Fashion-MNIST one for grey 28 x 28 models.</summary>
    public InputPipeline Pipeline { get; init; } = InputPipeline.ImageNet;

    /// <summary>
    /// Side of the square crop (ImageNet pipeline; 224 unless set), or of the bordered grey input (Fashion-MNIST
    /// pipeline: 32 unless set, e.g. to the size the model was trained at).
    /// </summary>
    public int Size
    {
        get => size ?? (Pipeline == InputPipeline.FashionMnist ? DataTransforms.FashionMnistSize : 224);
        init => size = value;
    }

    private readonly int? size;

    /// <summary>Fraction of the resized shorter side kept by the centre crop (ImageNet pipeline).</summary>
    public double CropPct { get; init; } = 0.875;

    /// <summary>Resampling filter of the resize (timm's default for MobileOne is bilinear).</summary>
    public ResampleFilter Interpolation { get; init; } = ResampleFilter.Bilinear;

    /// <summary>Per-channel mean subtracted after scaling to [0, 1] (ImageNet pipeline; ImageNet's by default).</summary>
    public IReadOnlyList<double> Mean { get; init; } = [0.485, 0.456, 0.406];

    /// <summary>Per-channel standard deviation divided by (ImageNet pipeline; ImageNet's by default).</summary>
    public IReadOnlyList<double> Std { get; init; } = [0.229, 0.224, 0.225];

    /// <summary>Colour channels of the model input: 3 (RGB) or 1 (grey).</summary>
    public int Channels => Pipeline == InputPipeline.FashionMnist ? 1 : 3;

    /// <summary>Height and width of the model input.</summary>
    public int InputSize => Size;

    /// <summary>The shorter side after the resize: floor(size / crop_pct), as timm computes it; for grey models the size less the 2-pixel borders (28 at 32).</summary>
    public int ResizeTo => Pipeline == InputPipeline.FashionMnist ? Size - (2 * DataTransforms.FashionMnistBorder) : (int)Math.Floor(Size / CropPct);

    /// <summary>
    /// timm's pretrained configuration of the network's architecture (<see cref="ModelRegistry.PretrainedFor"/>: input
    /// size, crop_pct, interpolation, mean and std) for an RGB model; the Fashion-MNIST pipeline for a 1-channel model.
    /// Throws <see cref="ArgumentException"/> for other channel counts.
    /// </summary>
    public static ImagePreprocessing ForModel(ClassifierNetwork network)
    {
        ArgumentNullException.ThrowIfNull(network);
        return ForArchitecture(network.Architecture, network.InChans);
    }

    /// <summary>As <see cref="ForModel(ClassifierNetwork)"/> for a MobileOne configuration (its published variant's defaults; a custom one gets S1..S4's).</summary>
    public static ImagePreprocessing ForModel(MobileOneConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        return ForArchitecture("mobileone_" + config.MatchVariantName(ignoreBranches: true), config.InChans);
    }

    private static ImagePreprocessing ForArchitecture(string architecture, int inChans)
    {
        switch (inChans)
        {
            case 3:
                var pretrained = ModelRegistry.PretrainedFor(architecture);
                return new ImagePreprocessing
                {
                    Size = pretrained.InputSize,
                    CropPct = pretrained.CropPct,
                    Interpolation = ResampleFilters.Parse(pretrained.Interpolation),
                    Mean = pretrained.Mean,
                    Std = pretrained.Std,
                };
            case 1:
                return new ImagePreprocessing { Pipeline = InputPipeline.FashionMnist };
            default:
                throw new ArgumentException(
                    $"Images can be classified by RGB (in_chans 3) or grey (in_chans 1) models; this model has in_chans {inChans}.");
        }
    }

    /// <summary>Checks the values; throws <see cref="ArgumentException"/> naming the bad one.</summary>
    public ImagePreprocessing Validate()
    {
        if (Size <= 0)
        {
            throw new ArgumentException($"The image size must be a positive integer; got {Size}.");
        }

        if (Pipeline == InputPipeline.FashionMnist && Size < DataTransforms.FashionMnistMinSize)
        {
            throw new ArgumentException($"A grey (Fashion-MNIST) model's image size must be at least {DataTransforms.FashionMnistMinSize} (the image resized to size - 4 inside a 2-pixel border); got {Size}.");
        }

        if (!(CropPct > 0 && CropPct <= 1))
        {
            throw new ArgumentException($"The crop fraction must lie in (0, 1]; got {CropPct.ToString(CultureInfo.InvariantCulture)}.");
        }

        if (!Enum.IsDefined(Interpolation) || !Enum.IsDefined(Pipeline))
        {
            throw new ArgumentException($"Unknown interpolation {Interpolation} or pipeline {Pipeline}.");
        }

        return this;
    }

    /// <summary>The per-image transform (decoded 8-bit image in, normalized CHW floats out).</summary>
    public SampleTransform CreateTransform()
    {
        Validate();
        return Pipeline == InputPipeline.FashionMnist
            ? DataTransforms.FashionMnistAnySize(Interpolation, Size)
            : DataTransforms.ImageNetEval(Size, CropPct, Normalization.From(Mean, Std), Interpolation);
    }

    /// <summary>One line for logs, e.g. "resize 256 bilinear, centre crop 224, ImageNet mean/std".</summary>
    public string Describe()
    {
        string filter = Interpolation.ToString().ToLowerInvariant();
        return Pipeline == InputPipeline.FashionMnist
            ? $"grey, resize {ResizeTo} {filter}, centre crop {ResizeTo}, Fashion-MNIST mean/std, pad to {Size}"
            : string.Create(CultureInfo.InvariantCulture, $"RGB, resize {ResizeTo} {filter} (crop_pct {CropPct}), centre crop {Size}, {(Mean.SequenceEqual(PretrainedConfig.ImageNetMean) && Std.SequenceEqual(PretrainedConfig.ImageNetStd) ? "ImageNet mean/std" : $"mean ({string.Join(", ", Mean)}) std ({string.Join(", ", Std)})")}");
    }
}
