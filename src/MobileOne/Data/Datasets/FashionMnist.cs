namespace MobileOne.Data;

/// <summary>The two Fashion-MNIST splits.</summary>
public enum FashionMnistSplit
{
    /// <summary>The 60,000 training images (5,000 in the bundled subset).</summary>
    Train,
    /// <summary>The 10,000 test images (1,000 in the bundled subset).</summary>
    Test,
}

/// <summary>
/// Fashion-MNIST (Zalando Research, MIT licence): 28x28 grey images of 10 clothing classes, read from IDX
/// files. <see cref="Load"/> looks in an explicit folder, then in <see cref="SystemDirectory"/> (Debian's
/// dataset-fashion-mnist package), then falls back to a class-balanced subset embedded in this assembly,
/// so training works offline on a fresh machine. <see cref="InMemoryImageDataset.Source"/> says which.
/// </summary>
public static class FashionMnist
{
    /// <summary>Where Debian's dataset-fashion-mnist package installs the IDX files.</summary>
    public const string SystemDirectory = "/usr/share/datasets/fashion-mnist";

    /// <see cref="IImageDataset.Source"/> of the bundled subset.
    public const string BundledSource = "bundled subset";

    /// <summary>Per-channel mean and std of the training pixels (x/255) used by the recipe.</summary>
    public const float Mean = 0.2860f;

    /// <summary>See <see cref="Mean"/>.</summary>
    public const float Std = 0.3530f;

    /// <summary>Height and width of the images.</summary>
    public const int ImageSize = 28;

    /// <summary>Images per class in the bundled subset (train, test).</summary>
    public const int BundledTrainPerClass = 500;

    /// <summary>See <see cref="BundledTrainPerClass"/>.</summary>
    public const int BundledTestPerClass = 100;

    private static readonly string[] Names =
    [
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ];

    /// <summary>The ten class names in label order ("T-shirt/top" .. "Ankle boot").</summary>
    public static IReadOnlyList<string> ClassNames => Names;

    /// <summary>The IDX image file name of <paramref name="split"/> (without .gz).</summary>
    public static string ImagesFileName(FashionMnistSplit split) => $"{Prefix(split)}-images-idx3-ubyte";

    /// <summary>The IDX label file name of <paramref name="split"/> (without .gz).</summary>
    public static string LabelsFileName(FashionMnistSplit split) => $"{Prefix(split)}-labels-idx1-ubyte";

    /// <summary>
    /// The split from <paramref name="directory"/> when one is given (it must then hold the files: a
    /// mistyped --data must not silently train on something else), else from <see cref="SystemDirectory"/>
    /// when it holds them, else the bundled subset.
    /// </summary>
    public static InMemoryImageDataset Load(FashionMnistSplit split, string? directory = null)
    {
        if (!string.IsNullOrEmpty(directory))
        {
            return LoadDirectory(directory, split);
        }

        if (TryFind(SystemDirectory, split, out string? images, out string? labels))
        {
            return InMemoryImageDataset.FromIdxFiles(images, labels, Names, SystemDirectory);
        }

        return LoadBundled(split);
    }

    /// <summary>Reads {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] from a folder.</summary>
    public static InMemoryImageDataset LoadDirectory(string directory, FashionMnistSplit split)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        string expected = $"{ImagesFileName(split)}[.gz] and {LabelsFileName(split)}[.gz]";
        if (!Directory.Exists(directory))
        {
            throw new DatasetException($"Fashion-MNIST folder '{directory}' does not exist; expected a folder holding {expected}.");
        }

        if (!Directory.EnumerateFileSystemEntries(directory).Any())
        {
            throw new DatasetException($"Fashion-MNIST folder '{directory}' is empty; expected {expected}.");
        }

        if (!TryFind(directory, split, out string? images, out string? labels))
        {
            string missing = FindFile(directory, ImagesFileName(split)) is null ? ImagesFileName(split) : LabelsFileName(split);
            throw new DatasetException($"Fashion-MNIST folder '{directory}' has no {missing}[.gz]; expected {expected}.");
        }

        return InMemoryImageDataset.FromIdxFiles(images, labels, Names, Path.GetFullPath(directory));
    }

    /// <summary>The subset embedded in the library (see Data/Resources/README.md for how it was drawn).</summary>
    public static InMemoryImageDataset LoadBundled(FashionMnistSplit split)
    {
        string imagesName = ResourceName(ImagesFileName(split));
        string labelsName = ResourceName(LabelsFileName(split));
        var images = ReadResource(imagesName, IdxFile.ImagesMagic);
        var labels = ReadResource(labelsName, IdxFile.LabelsMagic);
        return InMemoryImageDataset.FromIdx(images, imagesName, labels, labelsName, Names, BundledSource);
    }

    /// <summary>Finds the image and label files of <paramref name="split"/> in <paramref name="directory"/> (plain or .gz); false when either is missing.</summary>
    public static bool TryFind(string directory, FashionMnistSplit split, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out string? images, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out string? labels)
    {
        images = null;
        labels = null;
        if (!Directory.Exists(directory))
        {
            return false;
        }

        images = FindFile(directory, ImagesFileName(split));
        labels = FindFile(directory, LabelsFileName(split));
        return images is not null && labels is not null;
    }

    private static string? FindFile(string directory, string baseName)
    {
        foreach (string candidate in new[] { baseName + ".gz", baseName })
        {
            string path = Path.Combine(directory, candidate);
            if (File.Exists(path))
            {
                return path;
            }
        }

        return null;
    }

    private static string Prefix(FashionMnistSplit split) => split switch
    {
        FashionMnistSplit.Train => "train",
        FashionMnistSplit.Test => "t10k",
        _ => throw new ArgumentOutOfRangeException(nameof(split), split, "Unknown Fashion-MNIST split."),
    };

    private static string ResourceName(string fileName) => $"MobileOne.Data.Resources.fashion-mnist-{fileName}.gz";

    private static IdxArray ReadResource(string name, int magic)
    {
        using var stream = typeof(FashionMnist).Assembly.GetManifestResourceStream(name)
            ?? throw new DatasetException($"The bundled Fashion-MNIST subset is missing from the library (resource '{name}').");
        return IdxFile.Read(stream, name, magic);
    }
}
