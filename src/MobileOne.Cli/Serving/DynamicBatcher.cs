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
    private readonly ImageClassifier _classifier;
    private readonly int _maxBatch;
    private readonly TimeSpan _maxWait;
    private readonly ServerMetrics _metrics;
    private readonly Channel<Job> _channel;
    private readonly Tensor?[] _inputs;
    private readonly Thread _thread;

    public DynamicBatcher(ImageClassifier classifier, int maxBatch, TimeSpan maxWait, int capacity, ServerMetrics metrics)
    {
        _classifier = classifier;
        _maxBatch = maxBatch;
        _maxWait = maxWait;
        _metrics = metrics;
        _channel = Channel.CreateBounded<Job>(new BoundedChannelOptions(capacity) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });
        _inputs = new Tensor?[maxBatch];
        _thread = new Thread(Loop) { IsBackground = true, Name = "mobileone-batcher" };
        _thread.Start();
    }

    /// <summary>Floats a job's input holds: one preprocessed image.</summary>
    public int SampleLength => _classifier.SampleLength;

    /// <summary>
    /// Queues one preprocessed image (<paramref name="input"/>, rented from <see cref="ArrayPool{T}.Shared"/>: the
    /// batcher returns it) for its <paramref name="top"/> classes. Null when the queue is full or closed; the caller
    /// then keeps the array.
    /// </summary>
    public Task<IReadOnlyList<ClassScore>>? TryEnqueue(float[] input, int top, CancellationToken cancelled)
    {
        var job = new Job(input, top, cancelled);
        return _channel.Writer.TryWrite(job) ? job.Done.Task : null;
    }

    /// <summary>Stops taking images, answers those queued, and ends the thread.</summary>
    public void Dispose()
    {
        _channel.Writer.TryComplete();
        _thread.Join();
    }

    private void Loop()
    {
        var batch = new List<Job>(_maxBatch);
        var reader = _channel.Reader;
        while (Wait(reader, Timeout.InfiniteTimeSpan) == WaitResult.Ready)
        {
            long first = 0;
            while (batch.Count < _maxBatch)
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

                var left = _maxWait - Stopwatch.GetElapsedTime(first);
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
        int n = batch.Count, sample = _classifier.SampleLength, classes = _classifier.NumClasses, side = _classifier.Preprocessing.InputSize;
        var input = _inputs[n - 1] ??= new Tensor(n, _classifier.Channels, side, side);
        for (int i = 0; i < n; i++)
        {
            batch[i].Input.AsSpan(0, sample).CopyTo(input.Span.Slice(i * sample, sample));
            ArrayPool<float>.Shared.Return(batch[i].Input);
        }

        _metrics.Batch(n);
        try
        {
            var logits = _classifier.Run(input);
            for (int i = 0; i < n; i++)
            {
                batch[i].Done.TrySetResult(ImageClassifier.TopK(logits.Span.Slice(i * classes, classes), batch[i].Top, _classifier.Labels));
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
        public float[] Input { get; } = input;

        public int Top { get; } = top;

        public CancellationToken Cancelled { get; } = cancelled;

        public TaskCompletionSource<IReadOnlyList<ClassScore>> Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public void Abandon()
        {
            ArrayPool<float>.Shared.Return(Input);
            Done.TrySetCanceled(Cancelled);
        }
    }
}
