namespace MobileOne.Data;

/// <summary>
/// A contiguous run of another data set's samples, <see cref="Start"/> .. <see cref="Start"/> + <see cref="Count"/> - 1,
/// re-indexed from 0: how --val-split holds out the last N training images. Nothing is copied. Sample i here is sample
/// Start + i there, so a range starting at 0 keeps every sample's index, and with it its augmentation (seeded by
/// index, <see cref="SampleRandom.ForSample"/>) and its place in messages.
/// </summary>
public sealed class ImageDatasetRange : IImageDataset
{
    private readonly IImageDataset inner;

    /// <summary>Samples <paramref name="start"/> .. <paramref name="start"/> + <paramref name="count"/> - 1 of <paramref name="inner"/>.</summary>
    public ImageDatasetRange(IImageDataset inner, int start, int count)
    {
        ArgumentNullException.ThrowIfNull(inner);
        if (start < 0 || count < 0 || start > inner.Count - count)
        {
            throw new ArgumentOutOfRangeException(nameof(count), count, $"Samples {start}..{start + count - 1} are not all in the {inner.Count} samples of {inner.Source}.");
        }

        this.inner = inner;
        Start = start;
        Count = count;
    }

    /// <summary>The first sample of the range in the underlying data set.</summary>
    public int Start { get; }

    /// <inheritdoc/>
    public int Count { get; }

    /// <summary>The underlying data set's source with the range, e.g. "/data/fashion-mnist [55000, 60000)".</summary>
    public string Source => $"{this.inner.Source} [{Start}, {Start + Count})";

    /// <inheritdoc/>
    public int Channels => this.inner.Channels;

    /// <inheritdoc/>
    public IReadOnlyList<string> ClassNames => this.inner.ClassNames;

    /// <inheritdoc/>
    public int GetLabel(int index) => this.inner.GetLabel(Map(index));

    /// <inheritdoc/>
    public string Describe(int index) => this.inner.Describe(Map(index));

    /// <inheritdoc/>
    public ByteImage Load(int index) => this.inner.Load(Map(index));

    private int Map(int index) =>
        (uint)index < (uint)Count ? Start + index : throw new ArgumentOutOfRangeException(nameof(index), index, $"The range holds {Count} samples.");
}
