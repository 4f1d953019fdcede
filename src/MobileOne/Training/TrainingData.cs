using MobileOne.Data;
using MobileOne.Data.Loading;
using MobileOne.Data.Transforms;
using MobileOne.Models;

namespace MobileOne.Training;

/// <summary>
/// The train and evaluation data of a run: Fashion-MNIST (from --data, the system package or the bundled
/// subset) or an image folder with train/ and val/ subfolders. Opening checks everything that can be checked
/// before training starts (folders, files, classes).
/// </summary>
public sealed class TrainingData
{
    private readonly IImageDataset train;
    private readonly IImageDataset eval;
    private readonly bool fashion;
    private readonly string autoAugment;
    private readonly bool augment;

    private TrainingData(IImageDataset train, IImageDataset eval, bool fashion, string autoAugment, bool augment)
    {
        this.train = train;
        this.eval = eval;
        this.fashion = fashion;
        this.autoAugment = autoAugment;
        this.augment = augment;
    }

    /// <summary>The training split: Fashion-MNIST's train set, or the train/ folder.</summary>
    public IImageDataset Train => train;

    /// <summary>The evaluation split: Fashion-MNIST's test set, or the val/ (else validation/) folder read with the training classes.</summary>
    public IImageDataset Eval => eval;

    /// <summary>Whether the data is Fashion-MNIST (one channel, its own transforms) rather than an image folder (RGB, ImageNet transforms).</summary>
    public bool IsFashionMnist => fashion;

    /// <summary>Channels of the training images: 1 for Fashion-MNIST, 3 for image folders; the model's in_chans.</summary>
    public int Channels => train.Channels;

    /// <summary>Classes of the training split (the model's num_classes).</summary>
    public int NumClasses => train.ClassNames.Count;

    /// <summary>The --data value that selects the Fashion-MNIST subset bundled with the library.</summary>
    public const string Bundled = "bundled";

    /// <summary>
    /// Opens the data a training run describes; <paramref name="decoder"/> reads image folders. Without
    /// <paramref name="augment"/> (timm's --no-aug) the training images go through the evaluation-style transform of
    /// <see cref="TrainTransform"/>.
    /// </summary>
    public static TrainingData Open(string? data, IImageDecoder? decoder, string autoAugment = "none", bool augment = true)
    {
        if (data == Bundled)
        {
            return new TrainingData(FashionMnist.LoadBundled(FashionMnistSplit.Train), FashionMnist.LoadBundled(FashionMnistSplit.Test), fashion: true, autoAugment, augment);
        }

        if (data is null || IsFashionMnistFolder(data))
        {
            return new TrainingData(
                FashionMnist.Load(FashionMnistSplit.Train, data), FashionMnist.Load(FashionMnistSplit.Test, data), fashion: true, autoAugment, augment);
        }

        var (trainDir, evalDir) = FolderSplits(data);
        if (decoder is null)
        {
            throw new ArgumentException($"{data}: reading an image folder needs an image decoder.");
        }

        DataTransforms.ParsePolicy(autoAugment);
        var trainSet = ImageFolderDataset.Open(trainDir, decoder, channels: 3);
        var evalSet = ImageFolderDataset.Open(evalDir, decoder, channels: 3, trainSet.ClassNames);
        return new TrainingData(trainSet, evalSet, fashion: false, autoAugment, augment);
    }

    /// <summary>Opens evaluation data alone (mobileone eval): Fashion-MNIST's test split, or DIR/val (or DIR itself) of an image folder.</summary>
    public static IImageDataset OpenEval(string? data, IImageDecoder? decoder, IReadOnlyList<string>? classNames = null)
    {
        if (data == Bundled)
        {
            return FashionMnist.LoadBundled(FashionMnistSplit.Test);
        }

        if (data is null || IsFashionMnistFolder(data))
        {
            return FashionMnist.Load(FashionMnistSplit.Test, data);
        }

        if (decoder is null)
        {
            throw new ArgumentException($"{data}: reading an image folder needs an image decoder.");
        }

        string val = Path.Combine(data, "val");
        return ImageFolderDataset.Open(Directory.Exists(val) ? val : data, decoder, channels: 3, classNames);
    }

    /// <summary>
    /// The training pipeline; image folders train at <paramref name="size"/> (progressive resizing changes it per epoch).
    /// Without augmentation, as timm's --no-aug: Fashion-MNIST's evaluation transform (the pad to 32 only), or for image
    /// folders the shorter side resized to <paramref name="size"/> and the centre cropped (ImageNet mean/std), with no
    /// random crop, flip or AutoAugment.
    /// </summary>
    public SampleTransform TrainTransform(int size)
    {
        if (!augment)
        {
            return fashion ? DataTransforms.FashionMnistEval() : DataTransforms.ImageNetEval(size, cropPct: 1.0);
        }

        if (fashion)
        {
            return DataTransforms.FashionMnistTrain();
        }

        var (policy, rand) = DataTransforms.ParsePolicy(autoAugment);
        return DataTransforms.ImageNetTrain(size, policy, rand);
    }

    /// <summary>
    /// The evaluation pipeline: Fashion-MNIST's when <paramref name="fashionMnist"/>, else timm's resize and centre crop to
    /// <paramref name="size"/> with <paramref name="pretrained"/>'s crop fraction, mean, std and interpolation (timm's pretrained_cfg).
    /// </summary>
    public static SampleTransform EvalTransform(bool fashionMnist, int size, PretrainedConfig pretrained) =>
        fashionMnist
            ? DataTransforms.FashionMnistEval()
            : DataTransforms.ImageNetEval(
                size,
                pretrained.CropPct,
                Normalization.From(pretrained.Mean, pretrained.Std),
                ResampleFilters.Parse(pretrained.Interpolation));

    /// <see cref="EvalTransform(bool, int, PretrainedConfig)"/> for this data.
    public SampleTransform EvalTransform(int size, PretrainedConfig pretrained) => EvalTransform(fashion, size, pretrained);

    /// <summary>Whether <paramref name="directory"/> is <see cref="Bundled"/> or holds Fashion-MNIST IDX files of either split (so it is not an image folder).</summary>
    public static bool IsFashionMnistFolder(string directory) =>
        directory == Bundled || FashionMnist.TryFind(directory, FashionMnistSplit.Train, out _, out _) || FashionMnist.TryFind(directory, FashionMnistSplit.Test, out _, out _);

    private static (string Train, string Eval) FolderSplits(string data)
    {
        if (!Directory.Exists(data))
        {
            throw new DatasetException($"{data}: the data folder does not exist.");
        }

        string trainDir = Path.Combine(data, "train");
        string evalDir = Directory.Exists(Path.Combine(data, "val")) ? Path.Combine(data, "val") : Path.Combine(data, "validation");
        if (!Directory.Exists(trainDir) || !Directory.Exists(evalDir))
        {
            throw new DatasetException(
                $"{data}: expected Fashion-MNIST IDX files ({FashionMnist.ImagesFileName(FashionMnistSplit.Train)}[.gz], ...) or an image folder with train/ and val/ subfolders, one folder per class.");
        }

        return (trainDir, evalDir);
    }
}
