namespace MobileOne.Data;

/// <summary>
/// A labelled image collection with random access. Implementations are safe to read from several
/// loader workers at once.
/// </summary>
public interface IImageDataset
{
    /// <summary>Where the images came from: a path, or "bundled subset".</summary>
    string Source { get; }

    /// <summary>Number of samples.</summary>
    int Count { get; }

    /// <summary>Channels of the images <see cref="Load"/> returns (1 for Fashion-MNIST, 3 for RGB folders).</summary>
    int Channels { get; }

    /// <summary>Class names in label order.</summary>
    IReadOnlyList<string> ClassNames { get; }

    /// <summary>The label of sample <paramref name="index"/>, without decoding it.</summary>
    int GetLabel(int index);

    /// <summary>The sample's file (an image path, or "file[index]" for IDX data), for messages.</summary>
    string Describe(int index);

    /// <summary>Decodes one image; throws <see cref="ImageDecodeException"/> when it cannot be read.</summary>
    ByteImage Load(int index);
}
