namespace MobileOne.Data;

/// <summary>
/// Equally sized 8-bit images held in memory (N x H x W x C bytes, HWC per image) with one label each:
/// what an IDX pair such as Fashion-MNIST becomes. Loading copies one image out, so it never fails.
/// </summary>
public sealed class InMemoryImageDataset : IImageDataset
{
    private readonly byte[] pixels;
    private readonly int[] labels;
    private readonly string[] classNames;
    private readonly string imagesName;

    /// <paramref name="count"/> images of <paramref name="height"/> x <paramref name="width"/> x <paramref name="channels"/> bytes, one after another in <paramref name="pixels"/> (not copied), with their labels.
    public InMemoryImageDataset(
        byte[] pixels, int count, int height, int width, int channels, int[] labels, IReadOnlyList<string> classNames, string source, string imagesName)
    {
        ArgumentNullException.ThrowIfNull(pixels);
        ArgumentNullException.ThrowIfNull(labels);
        ArgumentNullException.ThrowIfNull(classNames);
        ByteImage.CheckSize(width, height, channels);
        if (pixels.Length != (long)count * height * width * channels)
        {
            throw new ArgumentException($"{count} images of {height}x{width}x{channels} need {(long)count * height * width * channels} bytes; got {pixels.Length}.", nameof(pixels));
        }

        if (labels.Length != count)
        {
            throw new ArgumentException($"{count} images but {labels.Length} labels.", nameof(labels));
        }

        this.pixels = pixels;
        this.labels = labels;
        this.classNames = classNames.ToArray();
        this.imagesName = imagesName;
        Count = count;
        Height = height;
        Width = width;
        Channels = channels;
        Source = source;
    }

    /// <inheritdoc/>
    public string Source { get; }

    /// <inheritdoc/>
    public int Count { get; }

    /// <summary>Height of every image.</summary>
    public int Height { get; }

    /// <summary>Width of every image.</summary>
    public int Width { get; }

    /// <inheritdoc/>
    public int Channels { get; }

    /// <inheritdoc/>
    public IReadOnlyList<string> ClassNames => this.classNames;

    /// <summary>Every sample's label.</summary>
    public ReadOnlySpan<int> Labels => this.labels;

    /// <summary>The pixels of image <paramref name="index"/> without copying.</summary>
    public ReadOnlySpan<byte> Pixels(int index)
    {
        CheckIndex(index);
        int size = Height * Width * Channels;
        return this.pixels.AsSpan(index * size, size);
    }

    /// <inheritdoc/>
    public int GetLabel(int index)
    {
        CheckIndex(index);
        return this.labels[index];
    }

    /// <inheritdoc/>
    public string Describe(int index) => $"{this.imagesName}[{index}]";

    /// <inheritdoc/>
    public ByteImage Load(int index)
    {
        var image = ByteImage.Rent(Width, Height, Channels);
        Pixels(index).CopyTo(image.Span);
        return image;
    }

    /// <summary>
    /// Pairs an IDX image file (magic 2051) with an IDX label file (magic 2049). Labels are not checked
    /// against the class count here: the loader does that against the model's num_classes.
    /// </summary>
    internal static InMemoryImageDataset FromIdx(
        IdxArray images, string imagesName, IdxArray labels, string labelsName, IReadOnlyList<string> classNames, string source)
    {
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(labels);
        int n = images.Dimensions[0];
        if (labels.Dimensions[0] != n)
        {
            throw new DatasetException($"{imagesName} holds {n} images but {labelsName} holds {labels.Dimensions[0]} labels; the counts must match.");
        }

        var y = new int[n];
        for (int i = 0; i < n; i++)
        {
            y[i] = labels.Data[i];
        }

        return new InMemoryImageDataset(images.Data, n, images.Dimensions[1], images.Dimensions[2], 1, y, classNames, source, imagesName);
    }

    /// <summary>Reads an image file and a label file from disk (each gzip or raw).</summary>
    public static InMemoryImageDataset FromIdxFiles(string imagesPath, string labelsPath, IReadOnlyList<string> classNames, string? source = null)
    {
        var images = IdxFile.Read(imagesPath, IdxFile.ImagesMagic);
        var labels = IdxFile.Read(labelsPath, IdxFile.LabelsMagic);
        return FromIdx(images, imagesPath, labels, labelsPath, classNames, source ?? Path.GetDirectoryName(Path.GetFullPath(imagesPath)) ?? imagesPath);
    }

    private void CheckIndex(int index)
    {
        if ((uint)index >= (uint)Count)
        {
            throw new ArgumentOutOfRangeException(nameof(index), index, $"The data set holds {Count} images.");
        }
    }
}
