using System.Buffers;
using System.Diagnostics;
using System.Threading.Channels;
using MobileOne.Classification;
using MobileOne.Tensors;

namespace MobileOne.Cli.Serving;

/// <summary>
/// Runs preprocessed images on one <see cref="ImageClassifier"/> in dynamic batches: one thread takes the first
/// image waiting in a bounded channel, then up to <c>maxBatch - 1</c> more that arrive within <c>maxWait</c> of it,
/// runs them as one engine batch and answers each with its own top-k. The classifier is not thread-safe; this
/// thread is its only caller.
/// </summary>
internal sealed class DynamicBatcher : IDisposable
{
    private readonly ImageClassifier classifier;
    private readonly int maxBatch;
    private readonly TimeSpan maxWait;
    private readonly ServerMetrics metrics;
    private readonly Channel<Job> channel;
    private readonly Tensor?[] inputs;
    private readonly Thread thread;

    /// <summary>Starts the batcher's thread; <paramref name="capacity"/> bounds the images waiting (the server's --queue).</summary>
    public DynamicBatcher(ImageClassifier classifier, int maxBatch, TimeSpan maxWait, int capacity, ServerMetrics metrics)
    {
        this.classifier = classifier;
        this.maxBatch = maxBatch;
        this.maxWait = maxWait;
        this.metrics = metrics;
        channel = Channel.CreateBounded<Job>(new BoundedChannelOptions(capacity) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });
        inputs = new Tensor?[maxBatch];
        thread = new Thread(Loop) { IsBackground = true, Name = "mobileone-batcher" };
        thread.Start();
    }

    /// <summary>Floats a job's input holds: one preprocessed image.</summary>
    public int SampleLength => classifier.SampleLength;

    /// <summary>
    /// Queues one preprocessed image (<paramref name="input"/>, rented from <see cref="ArrayPool{T}.Shared"/>: the
    /// batcher returns it) for its <paramref name="top"/> classes. Null when the queue is full or closed; the caller
    /// then keeps the array.
    /// </summary>
    public Task<IReadOnlyList<ClassScore>>? TryEnqueue(float[] input, int top, CancellationToken cancelled)
    {
        var job = new Job(input, top, cancelled);
        return channel.Writer.TryWrite(job) ? job.Done.Task : null;
    }

    /// <summary>Stops taking images, answers those queued, and ends the thread.</summary>
    public void Dispose()
    {
        channel.Writer.TryComplete();
        thread.Join();
    }

    private void Loop()
    {
        var batch = new List<Job>(maxBatch);
        var reader = channel.Reader;
        while (Wait(reader, Timeout.InfiniteTimeSpan) == WaitResult.Ready)
        {
            long first = 0;
            while (batch.Count < maxBatch)
            {
                if (reader.TryRead(out var job))
                {
                    if (job.Cancelled.IsCancellationRequested)
                    {
                        job.Abandon(); // its request has timed out or gone: not worth a slot
                        continue;
                    }

                    first = batch.Count == 0 ? Stopwatch.GetTimestamp() : first;
                    batch.Add(job);
                    continue;
                }

                var left = maxWait - Stopwatch.GetElapsedTime(first);
                if (batch.Count == 0 || left <= TimeSpan.Zero || Wait(reader, left) != WaitResult.Ready)
                {
                    break;
                }
            }

            if (batch.Count > 0)
            {
                Run(batch);
                batch.Clear();
            }
        }
    }

    private enum WaitResult
    {
        Ready,
        TimedOut,
        Closed,
    }

    /// <summary>Blocks this thread (the batcher's own, not a pool thread) until an image waits, the time is up, or the channel is closed.</summary>
    private static WaitResult Wait(ChannelReader<Job> reader, TimeSpan timeout)
    {
        var wait = reader.WaitToReadAsync();
        if (wait.IsCompleted)
        {
            return wait.Result ? WaitResult.Ready : WaitResult.Closed;
        }

        var task = wait.AsTask();
        if (!task.Wait(timeout))
        {
            return WaitResult.TimedOut;
        }

        return task.Result ? WaitResult.Ready : WaitResult.Closed;
    }

    private void Run(List<Job> batch)
    {
        int n = batch.Count, sample = classifier.SampleLength, classes = classifier.NumClasses, side = classifier.Preprocessing.InputSize;
        var input = inputs[n - 1] ??= new Tensor(n, classifier.Channels, side, side);
        for (int i = 0; i < n; i++)
        {
            batch[i].Input.AsSpan(0, sample).CopyTo(input.Span.Slice(i * sample, sample));
            ArrayPool<float>.Shared.Return(batch[i].Input);
        }

        metrics.Batch(n);
        try
        {
            var logits = classifier.Run(input);
            for (int i = 0; i < n; i++)
            {
                batch[i].Done.TrySetResult(ImageClassifier.TopK(logits.Span.Slice(i * classes, classes), batch[i].Top, classifier.Labels));
            }
        }
        catch (Exception e)
        {
            foreach (var job in batch)
            {
                job.Done.TrySetException(e);
            }
        }
    }

    private sealed class Job(float[] input, int top, CancellationToken cancelled)
    {
        /// <summary>The preprocessed image, a pooled array the batcher returns.</summary>
        public float[] Input { get; } = input;

        /// <summary>Classes to answer with.</summary>
        public int Top { get; } = top;

        /// <summary>Cancelled when the request times out or goes; such a job is dropped before it takes a slot.</summary>
        public CancellationToken Cancelled { get; } = cancelled;

        /// <summary>The answer; continuations run off the batcher's thread, so a slow client cannot stall it.</summary>
        public TaskCompletionSource<IReadOnlyList<ClassScore>> Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>Gives the input back to the pool and cancels the answer.</summary>
        public void Abandon()
        {
            ArrayPool<float>.Shared.Return(Input);
            Done.TrySetCanceled(Cancelled);
        }
    }
}
