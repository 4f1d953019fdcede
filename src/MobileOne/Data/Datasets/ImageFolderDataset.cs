namespace MobileOne.Data;

/// <summary>
/// torchvision's ImageFolder layout: one subfolder per class under a root. Class names are the subfolder
/// names sorted by ordinal (code point) comparison, as Python's sorted() does, and a class's label is its
/// position in that list. Images are the files under each class folder (recursively) whose extension the
/// decoder reads (case-insensitive), sorted by path. Files directly under the root are ignored.
/// </summary>
public sealed class ImageFolderDataset : IImageDataset
{
    private readonly string[] paths;
    private readonly int[] labels;
    private readonly string[] classes;
    private readonly IImageDecoder decoder;

    private ImageFolderDataset(string root, string[] classes, string[] paths, int[] labels, IImageDecoder decoder, int channels)
    {
        Source = root;
        this.classes = classes;
        this.paths = paths;
        this.labels = labels;
        this.decoder = decoder;
        Channels = channels;
    }

    /// <inheritdoc/>
    public string Source { get; }

    /// <inheritdoc/>
    public int Count => this.paths.Length;

    /// <inheritdoc/>
    public int Channels { get; }

    /// <inheritdoc/>
    public IReadOnlyList<string> ClassNames => this.classes;

    /// <summary>The image files in sample order.</summary>
    public IReadOnlyList<string> Paths => this.paths;

    /// <summary>Images per class, in label order.</summary>
    public int[] CountsPerClass()
    {
        var counts = new int[this.classes.Length];
        foreach (int label in this.labels)
        {
            counts[label]++;
        }

        return counts;
    }

    /// <summary>
    /// Scans <paramref name="root"/>. All problems that make the folder unusable are reported here, before
    /// any work starts: a missing or empty root, a class folder without images, and (when
    /// <paramref name="expectedClasses"/> is given, e.g. the training set's classes for a validation
    /// folder) a class list that differs, since a missing class would silently shift every later label.
    /// </summary>
    public static ImageFolderDataset Open(string root, IImageDecoder decoder, int channels = 3, IReadOnlyList<string>? expectedClasses = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(root);
        ArgumentNullException.ThrowIfNull(decoder);
        if (channels is not (1 or 3 or 4))
        {
            throw new ArgumentOutOfRangeException(nameof(channels), channels, "Images are decoded to 1 (grey), 3 (RGB) or 4 (RGBA) channels.");
        }

        string extensions = string.Join(", ", decoder.Extensions.Order(StringComparer.Ordinal));
        if (!Directory.Exists(root))
        {
            throw new DatasetException($"Image folder '{root}' does not exist; expected one subfolder per class holding images ({extensions}).");
        }

        string[] classes = Directory.GetDirectories(root).Select(Path.GetFileName).OfType<string>().Order(StringComparer.Ordinal).ToArray();
        if (classes.Length == 0)
        {
            string what = Directory.EnumerateFileSystemEntries(root).Any() ? "has no class subfolders" : "is empty";
            throw new DatasetException($"Image folder '{root}' {what}; expected one subfolder per class holding images ({extensions}).");
        }

        if (expectedClasses is not null)
        {
            var missing = expectedClasses.Except(classes, StringComparer.Ordinal).ToArray();
            var extra = classes.Except(expectedClasses, StringComparer.Ordinal).ToArray();
            if (missing.Length > 0 || extra.Length > 0)
            {
                throw new DatasetException(
                    $"Image folder '{root}' has classes that differ from the expected {expectedClasses.Count}: " +
                    $"missing [{string.Join(", ", missing.Take(10))}]{(missing.Length > 10 ? $" and {missing.Length - 10} more" : "")}, " +
                    $"unexpected [{string.Join(", ", extra.Take(10))}]{(extra.Length > 10 ? $" and {extra.Length - 10} more" : "")}.");
            }

            classes = expectedClasses.ToArray();
        }

        var allowed = new HashSet<string>(decoder.Extensions, StringComparer.OrdinalIgnoreCase);
        var paths = new List<string>();
        var labels = new List<int>();
        var empty = new List<string>();
        for (int label = 0; label < classes.Length; label++)
        {
            string folder = Path.Combine(root, classes[label]);
            var files = Directory.EnumerateFiles(folder, "*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0 })
                .Where(f => allowed.Contains(Path.GetExtension(f)))
                .Order(StringComparer.Ordinal)
                .ToList();
            if (files.Count == 0)
            {
                empty.Add(folder);
            }

            paths.AddRange(files);
            labels.AddRange(Enumerable.Repeat(label, files.Count));
        }

        if (empty.Count > 0)
        {
            throw new DatasetException(
                $"Class folder{(empty.Count > 1 ? "s" : "")} {string.Join(", ", empty.Take(10).Select(e => $"'{e}'"))}{(empty.Count > 10 ? $" and {empty.Count - 10} more" : "")} " +
                $"hold{(empty.Count > 1 ? "" : "s")} no images ({extensions}); every class needs at least one.");
        }

        return new ImageFolderDataset(Path.GetFullPath(root), classes, paths.ToArray(), labels.ToArray(), decoder, channels);
    }

    /// <inheritdoc/>
    public int GetLabel(int index) => this.labels[index];

    /// <inheritdoc/>
    public string Describe(int index) => this.paths[index];

    /// <inheritdoc/>
    public ByteImage Load(int index)
    {
        string path = this.paths[index];
        ByteImage image;
        try
        {
            image = this.decoder.Decode(path, Channels);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ImageDecodeException(path, $"cannot be read: {e.Message}", e);
        }

        // The bundled decoder refuses oversized images from their header; this holds any other decoder to the same limit.
        if ((long)image.Width * image.Height > IImageDecoder.MaxPixels)
        {
            long pixels = (long)image.Width * image.Height;
            image.Dispose();
            throw new ImageDecodeException(path, $"decoded to {image.Width}x{image.Height} = {pixels} pixels, more than the {IImageDecoder.MaxPixels} images may have.");
        }

        return image;
    }
}
