using MobileOne.Data;
using MobileOne.Data.Loading;
using MobileOne.Data.Transforms;

namespace MobileOne.Tests.Data;

public class DataLoaderTests
{
    private static readonly Lazy<InMemoryImageDataset> Subset = new(() => FashionMnist.LoadBundled(FashionMnistSplit.Test));

    [Fact]
    public void BatchesAreBitIdenticalWhateverTheWorkerCount()
    {
        List<(float[] Images, int[] Labels, int[] Indices)> Run(int workers)
        {
            var loader = new DataLoader(Subset.Value, DataTransforms.FashionMnistTrain(), new DataLoaderOptions { BatchSize = 96, Workers = workers, Seed = 42, NumClasses = 10 });
            return loader.Epoch(3).Select(b => (b.Images.Data.ToArray(), b.Labels, b.Indices)).ToList();
        }

        var inline = Run(0);
        Assert.Equal(11, inline.Count);
        foreach (int workers in new[] { 1, 3 })
        {
            var other = Run(workers);
            Assert.Equal(inline.Count, other.Count);
            for (int i = 0; i < inline.Count; i++)
            {
                Assert.Equal(inline[i].Labels, other[i].Labels);
                Assert.Equal(inline[i].Indices, other[i].Indices);
                Assert.True(inline[i].Images.AsSpan().SequenceEqual(other[i].Images), $"batch {i} differs with {workers} workers");
            }
        }

        // Another epoch or seed shuffles and augments differently; the same epoch again is the same.
        var again = Run(0);
        Assert.True(inline[0].Images.AsSpan().SequenceEqual(again[0].Images));
        var loader = new DataLoader(Subset.Value, DataTransforms.FashionMnistTrain(), new DataLoaderOptions { BatchSize = 96, Workers = 0, Seed = 42 });
        Assert.NotEqual(inline[0].Indices, loader.LoadBatch(4, 0).Indices);
    }

    [Fact]
    public void BatchesAreNchwWithLabelsOfTheSamples()
    {
        var set = Subset.Value;
        var loader = new DataLoader(set, DataTransforms.FashionMnistEval(), new DataLoaderOptions { BatchSize = 64, Workers = 2, Seed = 1 });
        var (images, labels) = loader.LoadBatch(0, 2);
        Assert.Equal(new[] { 64, 1, 32, 32 }, images.Shape);
        var batch = loader.LoadBatch(0, 2);
        var order = loader.EpochOrder(0);
        Assert.Equal(order.Skip(128).Take(64), batch.Indices);
        Assert.Equal(batch.Indices.Select(set.GetLabel), labels);

        // Sample 5 of the batch is the eval transform of its image, computed here in double.
        int index = batch.Indices[5];
        var pixels = set.Pixels(index);
        for (int y = 0; y < 28; y++)
        {
            for (int x = 0; x < 28; x++)
            {
                double expected = ((pixels[(y * 28) + x] / 255.0) - 0.2860) / 0.3530;
                Assert.InRange(images.Data[(5 * 1024) + ((y + 2) * 32) + x + 2] - expected, -1e-6, 1e-6);
            }
        }
    }

    [Fact]
    public void SkippingAheadGivesTheSameLaterBatches()
    {
        var options = new DataLoaderOptions { BatchSize = 128, Workers = 2, Seed = 9 };
        var loader = new DataLoader(Subset.Value, DataTransforms.FashionMnistTrain(), options);
        var full = loader.Epoch(1).ToList();
        var resumed = loader.Epoch(1, startStep: 5).ToList();
        Assert.Equal(full.Count - 5, resumed.Count);
        Assert.Equal(5, resumed[0].Step);
        for (int i = 0; i < resumed.Count; i++)
        {
            Assert.True(full[i + 5].Images.Data.AsSpan().SequenceEqual(resumed[i].Images.Data));
            Assert.Equal(full[i + 5].Labels, resumed[i].Labels);
        }

        Assert.Empty(loader.Epoch(1, startStep: loader.BatchesPerEpoch));
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => loader.Epoch(1, startStep: 9));
        Assert.StartsWith("Start step 9 is outside the epoch's 0..8 batches.", e.Message);
    }

    [Fact]
    public void DropLastAndShuffleOff()
    {
        var keep = new DataLoader(Subset.Value, DataTransforms.FashionMnistEval(), new DataLoaderOptions { BatchSize = 300, Shuffle = false, Workers = 1 });
        var batches = keep.Epoch(0).ToList();
        Assert.Equal(4, keep.BatchesPerEpoch);
        Assert.Equal(new[] { 300, 300, 300, 100 }, batches.Select(b => b.Count));
        Assert.Equal(Enumerable.Range(0, 300), batches[0].Indices);

        var drop = new DataLoader(Subset.Value, DataTransforms.FashionMnistEval(), new DataLoaderOptions { BatchSize = 300, DropLast = true, Workers = 1 });
        Assert.Equal(3, drop.BatchesPerEpoch);
        Assert.Equal(900, drop.Epoch(0).Sum(b => b.Count));
    }

    [Fact]
    public void BadOptionsNameTheOption()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => new DataLoader(Subset.Value, DataTransforms.FashionMnistEval(), new DataLoaderOptions { BatchSize = 0 }));
        Assert.StartsWith("Batch size (--batch-size) must be at least 1; got 0.", e.Message);
        e = Assert.Throws<ArgumentOutOfRangeException>(() => new DataLoader(Subset.Value, DataTransforms.FashionMnistEval(), new DataLoaderOptions { Workers = -1 }));
        Assert.StartsWith("Worker count (--workers) must not be negative; got -1.", e.Message);

        var d = Assert.Throws<DatasetException>(() => new DataLoader(Subset.Value, DataTransforms.ImageNetEval(32), new DataLoaderOptions()));
        Assert.Equal("The data set 'bundled subset' yields 1-channel images but the transform produces 3 channels (the model's in_chans).", d.Message);
    }

    [Fact]
    public void LabelsOutOfRangeNameTheFileAndLabel()
    {
        var e = Assert.Throws<DatasetException>(() => new DataLoader(Subset.Value, DataTransforms.FashionMnistEval(), new DataLoaderOptions { NumClasses = 5 }));
        int first = Enumerable.Range(0, Subset.Value.Count).First(i => Subset.Value.GetLabel(i) >= 5);
        Assert.Equal(
            $"MobileOne.Data.Resources.fashion-mnist-t10k-images-idx3-ubyte.gz[{first}]: label {Subset.Value.GetLabel(first)} is out of range for 5 classes (expected 0..4).",
            e.Message);
    }

    [Fact]
    public void LeavingEarlyStopsTheWorkers()
    {
        var counting = new CountingDataset(Subset.Value);
        var loader = new DataLoader(counting, DataTransforms.FashionMnistEval(), new DataLoaderOptions { BatchSize = 10, Workers = 3, Prefetch = 4 });
        foreach (var batch in loader.Epoch(0))
        {
            if (batch.Step == 2)
            {
                break;
            }
        }

        // Disposing the enumerator joined the workers: at most Prefetch batches beyond the consumer were
        // started, and nothing is loaded afterwards.
        int loaded = counting.Loads;
        Assert.InRange(loaded, 30, 30 + (4 * 10));
        Thread.Sleep(100);
        Assert.Equal(loaded, counting.Loads);

        using var cts = new CancellationTokenSource();
        int seen = 0;
        Assert.ThrowsAny<OperationCanceledException>(() =>
        {
            foreach (var batch in loader.Epoch(0, 0, cts.Token))
            {
                if (++seen == 3)
                {
                    cts.Cancel();
                }
            }
        });
        Assert.Equal(3, seen);
    }

    [Fact]
    public void AWorkerFailureReachesTheConsumerAtItsBatch()
    {
        var failing = new CountingDataset(Subset.Value) { FailAt = 0 };
        var loader = new DataLoader(failing, DataTransforms.FashionMnistEval(), new DataLoaderOptions { BatchSize = 50, Workers = 2, Shuffle = false });
        var delivered = new List<int>();
        failing.FailAt = 175;
        var e = Assert.Throws<InvalidOperationException>(() =>
        {
            foreach (var batch in loader.Epoch(0))
            {
                delivered.Add(batch.Step);
            }
        });
        Assert.Equal("simulated failure at 175", e.Message);
        Assert.Equal(new[] { 0, 1, 2 }, delivered);
    }

    [Fact]
    public void AWholeEpochWithTwoWorkersHasEverySampleOnce()
    {
        var set = FashionMnist.LoadBundled(FashionMnistSplit.Train);
        var loader = new DataLoader(set, DataTransforms.FashionMnistTrain(), new DataLoaderOptions { BatchSize = 256, Workers = 2, Seed = 3, NumClasses = 10 });
        var seen = new bool[set.Count];
        int total = 0;
        foreach (var batch in loader.Epoch(0))
        {
            using (batch)
            {
                Assert.All(batch.Images.Data.AsSpan(0, 1024).ToArray(), v => Assert.True(float.IsFinite(v)));
                foreach (int i in batch.Indices)
                {
                    Assert.False(seen[i]);
                    seen[i] = true;
                }

                total += batch.Count;
            }
        }

        Assert.Equal(set.Count, total);
        Assert.Equal(0, loader.SkippedImages);
    }

    private sealed class CountingDataset(IImageDataset inner) : IImageDataset
    {
        private int _loads;

        public int Loads => Volatile.Read(ref _loads);

        public int FailAt { get; set; } = -1;

        public string Source => inner.Source;

        public int Count => inner.Count;

        public int Channels => inner.Channels;

        public IReadOnlyList<string> ClassNames => inner.ClassNames;

        public int GetLabel(int index) => inner.GetLabel(index);

        public string Describe(int index) => inner.Describe(index);

        public ByteImage Load(int index)
        {
            Interlocked.Increment(ref _loads);
            if (index == FailAt)
            {
                throw new InvalidOperationException($"simulated failure at {index}");
            }

            return inner.Load(index);
        }
    }
}
