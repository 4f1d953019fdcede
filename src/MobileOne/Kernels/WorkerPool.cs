using System.Diagnostics;
using System.Runtime.ExceptionServices;

namespace MobileOne.Kernels;

/// <summary>
/// Persistent worker threads for <see cref="ComputeThreads"/>. A training step runs hundreds of short parallel passes
/// back to back; handing each to the thread pool costs a wake-up (tens of microseconds) per pass. These workers spin
/// for a short while after a pass so the next one starts in well under a microsecond, then sleep. Parts are claimed
/// dynamically, but each part is a fixed piece of work, so results never depend on which thread ran it.
/// </summary>
internal sealed class WorkerPool : IDisposable
{
    private static readonly long SpinTicks = Stopwatch.Frequency / 5000; // 200 microseconds

    [ThreadStatic]
    private static bool insidePart;

    private readonly Thread[] workers;
    private readonly SemaphoreSlim wake = new(0);
    private readonly object gate = new();
    private Job? current;
    private int sleepers;
    private volatile bool disposed;

    public WorkerPool(int threads)
    {
        Threads = threads;
        workers = new Thread[threads - 1];
        for (int i = 0; i < workers.Length; i++)
        {
            workers[i] = new Thread(WorkerLoop) { IsBackground = true, Name = $"MobileOne compute {i + 1}" };
            workers[i].Start();
        }
    }

    public int Threads { get; }

    /// <summary>
    /// Runs body(part) for every part; the caller works too. Nested calls (from inside a part) and calls that find the
    /// pool busy with another caller's job run inline, in part order.
    /// </summary>
    public void Run(int parts, Action<int> body)
    {
        if (insidePart || workers.Length == 0 || !Monitor.TryEnter(gate))
        {
            RunInline(parts, body);
            return;
        }

        try
        {
            var job = new Job(body, parts);

            // A full fence between publishing the job and reading the sleeper count: a worker either sees the job after
            // announcing that it sleeps, or is counted here and released.
            Interlocked.Exchange(ref current, job);
            int asleep = Volatile.Read(ref sleepers);
            if (asleep > 0)
            {
                wake.Release(asleep);
            }

            Work(job);
            var spin = default(SpinWait);
            while (Volatile.Read(ref job.Remaining) > 0)
            {
                spin.SpinOnce(sleep1Threshold: -1);
            }

            Volatile.Write(ref current, null);
            if (job.Error is not null)
            {
                ExceptionDispatchInfo.Capture(job.Error).Throw();
            }
        }
        finally
        {
            Monitor.Exit(gate);
        }
    }

    public void Dispose()
    {
        disposed = true;
        if (workers.Length > 0)
        {
            wake.Release(workers.Length);
        }
    }

    private static void RunInline(int parts, Action<int> body)
    {
        for (int p = 0; p < parts; p++)
        {
            body(p);
        }
    }

    private static void Work(Job job)
    {
        bool outer = insidePart;
        insidePart = true;
        try
        {
            int p;
            while ((p = Interlocked.Increment(ref job.Next) - 1) < job.Parts)
            {
                try
                {
                    job.Body(p);
                }
                catch (Exception e)
                {
                    job.Error ??= e;
                }
                finally
                {
                    Interlocked.Decrement(ref job.Remaining);
                }
            }
        }
        finally
        {
            insidePart = outer;
        }
    }

    private void WorkerLoop()
    {
        Job? last = null;
        while (!disposed)
        {
            var job = Volatile.Read(ref current);
            if (job is not null && job != last)
            {
                last = job;
                Work(job);
                continue;
            }

            // Spin briefly: the next pass usually follows within microseconds.
            long start = Stopwatch.GetTimestamp();
            var spin = default(SpinWait);
            while (!disposed)
            {
                job = Volatile.Read(ref current);
                if ((job is not null && job != last) || Stopwatch.GetTimestamp() - start > SpinTicks)
                {
                    break;
                }

                spin.SpinOnce(sleep1Threshold: -1);
            }

            job = Volatile.Read(ref current);
            if (job is null || job == last)
            {
                Interlocked.Increment(ref sleepers);
                job = Volatile.Read(ref current);
                if (job is null || job == last)
                {
                    wake.Wait(10);
                }

                Interlocked.Decrement(ref sleepers);
            }
        }
    }

    private sealed class Job(Action<int> body, int parts)
    {
        public readonly Action<int> Body = body;
        public readonly int Parts = parts;
        public int Next;
        public int Remaining = parts;
        public volatile Exception? Error;
    }
}
