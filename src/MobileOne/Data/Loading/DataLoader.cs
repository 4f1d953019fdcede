using System.Collections.Concurrent;
using System.Runtime.ExceptionServices;
using MobileOne.Data.Transforms;
using MobileOne.Tensors;

namespace MobileOne.Data.Loading;

/// <summary>
/// Turns a data set and a per-sample transform into batches. Batch <c>s</c> of epoch <c>e</c> holds
/// the samples at positions s*B .. s*B+B-1 of the epoch's permutation (drawn from (Seed, e)), and each
/// sample's augmentation draws from its own generator seeded by (Seed, e, sample index); so a batch is
/// the same bit for bit whatever the worker count, and an epoch can start at any step (--resume).
/// Workers build whole batches in the background, at most <see cref="DataLoaderOptions.Prefetch"/> ahead
/// of the consumer; batches are delivered in order. Images that cannot be decoded are left out of their
/// batch, counted and listed; any other failure is rethrown to the consumer at the batch where it
/// happened. Leaving the enumeration early (break, dispose, cancellation) stops and joins the workers.
/// </summary>
public sealed class DataLoader
{
    private const int SkippedListLimit = 1000;

    private readonly ConcurrentBag<float[]> buffers = [];
    private readonly ConcurrentQueue<SkippedImage> skippedList = new();
    private long skipped;

    /// <summary>A loader over <paramref name="dataset"/> that applies <paramref name="transform"/> to each sample; workers start on the first enumeration.</summary>
    public DataLoader(IImageDataset dataset, SampleTransform transform, DataLoaderOptions options)
    {
        ArgumentNullException.ThrowIfNull(dataset);
        ArgumentNullException.ThrowIfNull(transform);
        ArgumentNullException.ThrowIfNull(options);
        if (options.BatchSize < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.BatchSize, $"Batch size (--batch-size) must be at least 1; got {options.BatchSize}.");
        }

        if (options.Workers < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.Workers, $"Worker count (--workers) must not be negative; got {options.Workers}.");
        }

        if (options.Prefetch < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.Prefetch, $"Prefetch depth must be at least 1 batch; got {options.Prefetch}.");
        }

        if (dataset.Count == 0)
        {
            throw new DatasetException($"The data set '{dataset.Source}' holds no images.");
        }

        if (dataset.Channels != transform.Channels)
        {
            throw new DatasetException(
                $"The data set '{dataset.Source}' yields {dataset.Channels}-channel images but the transform produces {transform.Channels} channels (the model's in_chans).");
        }

        if (options.NumClasses is int classes)
        {
            if (classes < 1)
            {
                throw new ArgumentOutOfRangeException(nameof(options), classes, $"The class count (num_classes) must be at least 1; got {classes}.");
            }

            for (int i = 0; i < dataset.Count; i++)
            {
                int label = dataset.GetLabel(i);
                if ((uint)label >= (uint)classes)
                {
                    throw new DatasetException(
                        $"{dataset.Describe(i)}: label {label} is out of range for {classes} classes (expected 0..{classes - 1}).");
                }
            }
        }

        Dataset = dataset;
        Transform = transform;
        Options = options;
        BatchesPerEpoch = options.DropLast ? dataset.Count / options.BatchSize : (dataset.Count + options.BatchSize - 1) / options.BatchSize;
    }

    /// <summary>The samples.</summary>
    public IImageDataset Dataset { get; }

    /// <summary>What each sample goes through.</summary>
    public SampleTransform Transform { get; }

    /// <summary>Batch size, shuffling, seed and workers.</summary>
    public DataLoaderOptions Options { get; }

    /// <summary>Batches in one epoch.</summary>
    public int BatchesPerEpoch { get; }

    /// <summary>Images skipped so far (over all epochs) because they could not be decoded.</summary>
    public long SkippedImages => Interlocked.Read(ref this.skipped);

    /// <summary>The skipped images (the first 1000), for a report.</summary>
    public IReadOnlyList<SkippedImage> SkippedList => skippedList.ToArray();

    /// <summary>The order in which epoch <paramref name="epoch"/> visits the data set.</summary>
    public int[] EpochOrder(int epoch)
    {
        if (!Options.Shuffle)
        {
            return Enumerable.Range(0, Dataset.Count).ToArray();
        }

        var random = SampleRandom.ForEpoch(Options.Seed, epoch);
        return random.Permutation(Dataset.Count);
    }

    /// <summary>
    /// The batches of one epoch from <paramref name="startStep"/> on, decoded in the background by
    /// <see cref="DataLoaderOptions.Workers"/> threads.
    /// </summary>
    public IEnumerable<Batch> Epoch(int epoch, int startStep = 0, CancellationToken cancellationToken = default)
    {
        if (startStep < 0 || startStep > BatchesPerEpoch)
        {
            throw new ArgumentOutOfRangeException(nameof(startStep), startStep, $"Start step {startStep} is outside the epoch's 0..{BatchesPerEpoch} batches.");
        }

        return Options.Workers == 0 ? Inline(epoch, startStep, cancellationToken) : Prefetched(epoch, startStep, cancellationToken);
    }

    /// <summary>Builds one batch on the calling thread (the same batch <see cref="Epoch"/> yields at that step).</summary>
    public Batch LoadBatch(int epoch, int step) => Build(EpochOrder(epoch), epoch, step);

    private IEnumerable<Batch> Inline(int epoch, int startStep, CancellationToken cancellationToken)
    {
        int[] order = EpochOrder(epoch);
        for (int step = startStep; step < BatchesPerEpoch; step++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            yield return Build(order, epoch, step);
        }
    }

    private IEnumerable<Batch> Prefetched(int epoch, int startStep, CancellationToken cancellationToken)
    {
        using var run = new PrefetchRun(this, EpochOrder(epoch), epoch, startStep, cancellationToken);
        for (int step = startStep; step < BatchesPerEpoch; step++)
        {
            yield return run.Take(step);
        }
    }

    private Batch Build(int[] order, int epoch, int step)
    {
        int batchSize = Options.BatchSize;
        int start = step * batchSize;
        int count = Math.Min(batchSize, order.Length - start);
        int sampleLength = Transform.SampleLength;
        float[] data = RentBuffer(count * sampleLength);
        var labels = new int[count];
        var indices = new int[count];
        List<SkippedImage>? skipped = null;
        int n = 0;
        for (int k = 0; k < count; k++)
        {
            int index = order[start + k];
            ByteImage image;
            try
            {
                image = Dataset.Load(index);
            }
            catch (ImageDecodeException e)
            {
                var entry = new SkippedImage(e.FilePath, e.Problem);
                (skipped ??= []).Add(entry);
                if (Interlocked.Increment(ref this.skipped) <= SkippedListLimit)
                {
                    skippedList.Enqueue(entry);
                }

                continue;
            }

            using (image)
            {
                var random = SampleRandom.ForSample(Options.Seed, epoch, index);
                Transform.Apply(image, ref random, data.AsSpan(n * sampleLength, sampleLength));
            }

            labels[n] = Dataset.GetLabel(index);
            indices[n] = index;
            n++;
        }

        if (n < count)
        {
            var shrunk = new float[n * sampleLength];
            data.AsSpan(0, shrunk.Length).CopyTo(shrunk);
            GiveBack(data);
            data = shrunk;
            Array.Resize(ref labels, n);
            Array.Resize(ref indices, n);
        }

        var images = new Tensor([n, Transform.Channels, Transform.Height, Transform.Width], data);
        return new Batch(images, labels, indices, epoch, step, (IReadOnlyList<SkippedImage>?)skipped ?? [], GiveBack);
    }

    private float[] RentBuffer(int length)
    {
        if (length == Options.BatchSize * Transform.SampleLength && buffers.TryTake(out float[]? buffer))
        {
            return buffer;
        }

        return new float[length];
    }

    private void GiveBack(float[] buffer)
    {
        if (buffer.Length == Options.BatchSize * Transform.SampleLength && buffers.Count < Options.Prefetch + Options.Workers + 2)
        {
            buffers.Add(buffer);
        }
    }

    /// <summary>Worker threads of one epoch and the in-order hand-off of their batches.</summary>
    private sealed class PrefetchRun : IDisposable
    {
        private readonly DataLoader loader;
        private readonly int[] order;
        private readonly int epoch;
        private readonly int end;
        private readonly CancellationTokenSource stop;
        private readonly SemaphoreSlim slots;
        private readonly Dictionary<int, object> ready = [];
        private readonly Thread[] threads;
        private int next;

        public PrefetchRun(DataLoader loader, int[] order, int epoch, int startStep, CancellationToken cancellationToken)
        {
            this.loader = loader;
            this.order = order;
            this.epoch = epoch;
            end = loader.BatchesPerEpoch;
            next = startStep;
            stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            int capacity = Math.Max(loader.Options.Prefetch, loader.Options.Workers);
            slots = new SemaphoreSlim(capacity, capacity);
            this.threads = new Thread[loader.Options.Workers];
            for (int i = 0; i < this.threads.Length; i++)
            {
                this.threads[i] = new Thread(Work) { IsBackground = true, Name = $"mobileone-loader-{i}" };
                this.threads[i].Start();
            }
        }

        public Batch Take(int step)
        {
            stop.Token.ThrowIfCancellationRequested();
            object result;
            lock (ready)
            {
                while (!ready.Remove(step, out result!))
                {
                    stop.Token.ThrowIfCancellationRequested();
                    Monitor.Wait(ready, 50);
                }
            }

            slots.Release();
            if (result is ExceptionDispatchInfo failure)
            {
                failure.Throw();
            }

            return (Batch)result;
        }

        public void Dispose()
        {
            stop.Cancel();
            foreach (var t in this.threads)
            {
                t.Join();
            }

            stop.Dispose();
            slots.Dispose();
        }

        private void Work()
        {
            var token = stop.Token;
            while (true)
            {
                try
                {
                    slots.Wait(token);
                }
                catch (OperationCanceledException)
                {
                    return;
                }

                int step = Interlocked.Increment(ref next) - 1;
                if (step >= end)
                {
                    return;
                }

                object result;
                try
                {
                    result = this.loader.Build(this.order, this.epoch, step);
                }
                catch (Exception e)
                {
                    result = ExceptionDispatchInfo.Capture(e);
                }

                lock (ready)
                {
                    ready[step] = result;
                    Monitor.PulseAll(ready);
                }

                if (token.IsCancellationRequested)
                {
                    return;
                }
            }
        }
    }
}
