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
    private readonly IImageDataset? test;
    private readonly bool fashion;
    private readonly string autoAugment;
    private readonly bool augment;
    private readonly RandomErasing? erasing;

    private TrainingData(IImageDataset train, IImageDataset eval, bool fashion, string autoAugment, bool augment, RandomErasing? erasing = null, IImageDataset? test = null)
    {
        this.train = train;
        this.eval = eval;
        this.fashion = fashion;
        this.autoAugment = autoAugment;
        this.augment = augment;
        this.erasing = erasing;
        this.test = test;
    }

    /// <summary>The training split: Fashion-MNIST's train set (less the validation split, when there is one), or the train/ folder.</summary>
    public IImageDataset Train => train;

    /// <summary>
    /// The split evaluated after every epoch: the validation split (the last N training images) when there is one, else
    /// Fashion-MNIST's test set, or the val/ (else validation/) folder read with the training classes.
    /// </summary>
    public IImageDataset Eval => eval;

    /// <summary>The test set, evaluated once at the end, when <see cref="Eval"/> is a validation split; null otherwise (the test set is then <see cref="Eval"/>).</summary>
    public IImageDataset? Test => test;

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
    public static TrainingData Open(string? data, IImageDecoder? decoder, string autoAugment = "none", bool augment = true) =>
        Open(data, decoder, new TrainingOptions { AutoAugment = autoAugment, Augment = augment });

    /// <summary>
    /// Opens the data <paramref name="options"/> describe (its Data, AutoAugment, Augment, ValSplit and random erasing);
    /// <paramref name="decoder"/> reads image folders. With <see cref="TrainingOptions.ValSplit"/> N the last N images of
    /// Fashion-MNIST's training set become <see cref="Eval"/> and the test set <see cref="Test"/>.
    /// </summary>
    public static TrainingData Open(string? data, IImageDecoder? decoder, TrainingOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        string autoAugment = options.AutoAugment;
        bool augment = options.Augment;
        var erasing = options.ReProb > 0
            ? new RandomErasing(options.ReProb, RandomErasing.ParseMode(options.ReMode), maxCount: options.ReCount)
            : null;
        if (data == Bundled || data is null || IsFashionMnistFolder(data))
        {
            var trainSet = data == Bundled ? FashionMnist.LoadBundled(FashionMnistSplit.Train) : FashionMnist.Load(FashionMnistSplit.Train, data);
            var testSet = data == Bundled ? FashionMnist.LoadBundled(FashionMnistSplit.Test) : FashionMnist.Load(FashionMnistSplit.Test, data);
            if (options.ValSplit is not int split)
            {
                return new TrainingData(trainSet, testSet, fashion: true, autoAugment, augment, erasing);
            }

            if (split >= trainSet.Count)
            {
                throw new ArgumentException($"--val-split {split} must leave images to train on; {trainSet.Source} has {trainSet.Count} training images.");
            }

            // The first Count - N images keep their indices, so their order and augmentation are those of the full set.
            int kept = trainSet.Count - split;
            return new TrainingData(
                new ImageDatasetRange(trainSet, 0, kept), new ImageDatasetRange(trainSet, kept, split), fashion: true, autoAugment, augment, erasing, testSet);
        }

        if (options.ValSplit is not null)
        {
            throw new ArgumentException($"--val-split holds out the last images of Fashion-MNIST's training set; {data} is an image folder, whose val/ folder is its evaluation split (and image folders are sorted by class, so their last images would be one class).");
        }

        var (trainDir, evalDir) = FolderSplits(data);
        if (decoder is null)
        {
            throw new ArgumentException($"{data}: reading an image folder needs an image decoder.");
        }

        DataTransforms.ParsePolicy(autoAugment);
        var trainFolder = ImageFolderDataset.Open(trainDir, decoder, channels: 3);
        var evalFolder = ImageFolderDataset.Open(evalDir, decoder, channels: 3, trainFolder.ClassNames);
        return new TrainingData(trainFolder, evalFolder, fashion: false, autoAugment, augment, erasing);
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
    /// The training pipeline at <paramref name="size"/> (progressive resizing changes it per epoch). Fashion-MNIST:
    /// the recipe's pad-2, pad-4 random crop and flip at 32, and at other sizes the image resized to size - 4 first
    /// (<see cref="DataTransforms.FashionMnistAtSize"/>). Without augmentation, as timm's --no-aug: Fashion-MNIST's
    /// evaluation transform (the pad to 32 only, at 32), or for image folders the shorter side resized to
    /// <paramref name="size"/> and the centre cropped (ImageNet mean/std), with no random crop, flip, AutoAugment or
    /// erasing. Random erasing (--reprob) comes last, on the normalized tensor.
    /// </summary>
    public SampleTransform TrainTransform(int size)
    {
        if (fashion)
        {
            return DataTransforms.FashionMnistAtSize(size, augment, augment ? erasing : null);
        }

        if (!augment)
        {
            return DataTransforms.ImageNetEval(size, cropPct: 1.0);
        }

        var (policy, rand) = DataTransforms.ParsePolicy(autoAugment);
        return DataTransforms.ImageNetTrain(size, policy, rand, erasing: erasing);
    }

    /// <summary>
    /// The evaluation pipeline: Fashion-MNIST's when <paramref name="fashionMnist"/> (at 32, the 28x28 image with its
    /// 2-pixel border; at other sizes resized to size - 4 first, as the training images of that size are), else timm's
    /// resize and centre crop to <paramref name="size"/> with <paramref name="pretrained"/>'s crop fraction, mean, std and
    /// interpolation (timm's pretrained_cfg).
    /// </summary>
    public static SampleTransform EvalTransform(bool fashionMnist, int size, PretrainedConfig pretrained) =>
        fashionMnist
            ? DataTransforms.FashionMnistAtSize(size, augment: false)
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
