namespace MobileOne.Data.Loading;

/// <summary>How a <see cref="DataLoader"/> batches, shuffles and prefetches.</summary>
public sealed record DataLoaderOptions
{
    /// <summary>Samples per batch (--batch-size).</summary>
    public int BatchSize { get; init; } = 64;

    /// <summary>A new permutation every epoch, drawn from (Seed, epoch); false keeps file order.</summary>
    public bool Shuffle { get; init; } = true;

    /// <summary>Drop the last, smaller batch of an epoch.</summary>
    public bool DropLast { get; init; }

    /// <summary>Background threads that decode and augment (--workers); 0 does the work on the consumer's thread.</summary>
    public int Workers { get; init; } = 2;

    /// <summary>Batches that may be ready or in progress ahead of the consumer (raised to Workers if lower).</summary>
    public int Prefetch { get; init; } = 4;

    /// <summary>Seed of the shuffle and of every sample's augmentation.</summary>
    public ulong Seed { get; init; }

    /// <summary>When set, every label is checked against it before any work starts (the model's num_classes).</summary>
    public int? NumClasses { get; init; }
}
