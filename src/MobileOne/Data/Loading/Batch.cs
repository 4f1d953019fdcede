using MobileOne.Tensors;

namespace MobileOne.Data.Loading;

/// <summary>A skipped sample: its file and why it could not be used.</summary>
public readonly record struct SkippedImage(string File, string Problem);

/// <summary>
/// One batch: images [N, C, H, W] float32 (NCHW) and their labels. N is the batch size, less for the
/// last batch of an epoch (without DropLast) and less by the number of corrupt images skipped.
/// Disposing hands the image buffer back to the loader for reuse (optional: an undisposed batch is
/// simply collected).
/// </summary>
public sealed class Batch : IDisposable
{
    private readonly Action<float[]>? giveBack;
    private int disposed;

    internal Batch(Tensor images, int[] labels, int[] indices, int epoch, int step, IReadOnlyList<SkippedImage> skipped, Action<float[]>? giveBack)
    {
        Images = images;
        Labels = labels;
        Indices = indices;
        Epoch = epoch;
        Step = step;
        Skipped = skipped;
        this.giveBack = giveBack;
    }

    /// <summary>The images, NCHW, preprocessed.</summary>
    public Tensor Images { get; }

    /// <summary>The label of each image.</summary>
    public int[] Labels { get; }

    /// <summary>The data set index of each sample, in batch order.</summary>
    public int[] Indices { get; }

    /// <summary>The epoch the batch belongs to (0-based).</summary>
    public int Epoch { get; }

    /// <summary>The batch's position in its epoch (0-based), the unit of --resume.</summary>
    public int Step { get; }

    /// <summary>Images in the batch.</summary>
    public int Count => Labels.Length;

    /// <summary>Samples of this batch that could not be decoded and were left out.</summary>
    public IReadOnlyList<SkippedImage> Skipped { get; }

    /// <summary>(images, labels), for <c>var (x, y) = batch</c>.</summary>
    public void Deconstruct(out Tensor images, out int[] labels)
    {
        images = Images;
        labels = Labels;
    }

    /// <summary>Gives the buffers back to the loader for reuse.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref disposed, 1) == 0)
        {
            giveBack?.Invoke(Images.Data);
        }
    }
}
