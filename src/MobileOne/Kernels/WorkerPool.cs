using System.Diagnostics;
using System.Runtime.ExceptionServices;

namespace MobileOne.Kernels;

/// <summary>
/// The library's one worker pool: the calling thread plus <c>threads - 1</c> persistent workers that execute one
/// parallel step at a time (a fork-join barrier per step). The training kernels share one process-wide pool
/// (<see cref="ComputeThreads"/>); the inference engine gives each execution context its own.
/// <para>A step is cut into fixed shares; which thread runs a share never changes what it computes, so results do
/// not depend on scheduling. Thread t owns a contiguous block of the shares and runs it in order; a share is claimed
/// (one CAS on a per-share generation stamp) before it runs, and a thread that has finished its block takes
/// unstarted shares from the ends of the other blocks. On a quiet machine that is a static partition; on a shared
/// host a descheduled worker stalls a step only for the share it is in, and the others run the rest.</para>
/// <para>Between steps the workers spin for a short while (a hand-off then costs well under a microsecond; past 20 us
/// they yield the core between checks) and then park on a monitor, so an idle pool burns no CPU. Nothing allocates
/// after construction.</para>
/// <para>One step runs at a time: a call that finds the pool busy (another caller, or a nested call from inside a
/// share) runs its shares inline, in order, on the calling thread, with the same results.</para>
/// </summary>
internal sealed class WorkerPool : IDisposable
{
    /// <summary>
    /// An idle worker spins without yielding for at most this long (the gap between two engine steps on a quiet
    /// machine); a pool that spins longer yields the core between checks for the rest of its spin.
    /// </summary>
    private static readonly long TightSpinTicks = Stopwatch.Frequency / 1_000_000 * 20;

    private readonly Worker[] workers;
    private readonly int[] claims;
    private readonly long spinTicks;
    private readonly RangeStep rangeStep = new();
    private readonly PartStep partStep = new();
    private IParallelStep? current;
    private int shares;
    private int generation;
    private int done;
    private int busy;
    private volatile bool stopping;
    private Exception? failure;

    /// <param name="threads">Threads that work on a step, the caller included.</param>
    /// <param name="maxShares">The most shares one step may have.</param>
    /// <param name="name">Prefix of the worker threads' names.</param>
    /// <param name="spinMicroseconds">How long an idle worker spins for the next step before parking.</param>
    public WorkerPool(int threads, int maxShares, string name, int spinMicroseconds)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxShares, 1);
        Threads = threads;
        claims = new int[maxShares];
        spinTicks = Stopwatch.Frequency / 1_000_000 * Math.Max(0, spinMicroseconds);
        workers = new Worker[threads - 1];
        for (int i = 0; i < workers.Length; i++)
        {
            var worker = new Worker(this, i + 1);
            workers[i] = worker;
            worker.Thread = new Thread(worker.Loop)
            {
                IsBackground = true,
                Name = $"{name} worker {i + 1}",
            };
            worker.Thread.Start();
        }
    }

    public int Threads { get; }

    /// <summary>The most shares one step may have.</summary>
    public int MaxShares => claims.Length;

    /// <summary>Managed bytes the workers have allocated so far (each samples its own counter after every step): for tests.</summary>
    public long WorkerAllocatedBytes
    {
        get
        {
            long sum = 0;
            foreach (var worker in workers)
            {
                sum += Volatile.Read(ref worker.AllocatedBytes);
            }

            return sum;
        }
    }

    /// <summary>
    /// Runs <paramref name="step"/>.Run(share) for every share in [0, <paramref name="shareCount"/>) and returns when
    /// all are done; the caller works too. Runs inline, in share order, when the pool is busy.
    /// </summary>
    public void Run(IParallelStep step, int shareCount)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(shareCount, claims.Length);
        if (shareCount <= 0)
        {
            return;
        }

        if (shareCount == 1 || workers.Length == 0 || Interlocked.CompareExchange(ref busy, 1, 0) != 0)
        {
            for (int share = 0; share < shareCount; share++)
            {
                step.Run(share);
            }

            return;
        }

        try
        {
            Execute(step, shareCount);
        }
        finally
        {
            Volatile.Write(ref busy, 0);
        }
    }

    /// <summary>Runs <paramref name="body"/>(start, end) over the <paramref name="parts"/> contiguous ranges <see cref="ComputeThreads.Range"/> cuts [0, total) into.</summary>
    public void For(int total, int parts, Action<int, int> body)
    {
        if (parts > claims.Length || workers.Length == 0 || Interlocked.CompareExchange(ref busy, 1, 0) != 0)
        {
            for (int p = 0; p < parts; p++)
            {
                var (start, end) = ComputeThreads.Range(total, parts, p);
                body(start, end);
            }

            return;
        }

        try
        {
            rangeStep.Set(body, total, parts);
            Execute(rangeStep, parts);
        }
        finally
        {
            rangeStep.Set(null, 0, 0);
            Volatile.Write(ref busy, 0);
        }
    }

    /// <summary>Runs <paramref name="body"/>(part) for every part in [0, <paramref name="parts"/>); parts beyond <see cref="MaxShares"/> are grouped into contiguous runs.</summary>
    public void Run(int parts, Action<int> body)
    {
        if (parts <= 0)
        {
            return;
        }

        if (workers.Length == 0 || Interlocked.CompareExchange(ref busy, 1, 0) != 0)
        {
            for (int p = 0; p < parts; p++)
            {
                body(p);
            }

            return;
        }

        try
        {
            int count = Math.Min(parts, claims.Length);
            partStep.Set(body, parts, count);
            Execute(partStep, count);
        }
        finally
        {
            partStep.Set(null, 0, 1);
            Volatile.Write(ref busy, 0);
        }
    }

    /// <summary>Stops the workers (they finish the share they are in; a step still running completes on its caller).</summary>
    public void Dispose()
    {
        if (stopping)
        {
            return;
        }

        stopping = true;
        foreach (var worker in workers)
        {
            worker.Wake();
        }
    }

    /// <summary>Runs one step on the whole team; the caller holds <see cref="busy"/>.</summary>
    private void Execute(IParallelStep step, int shareCount)
    {
        // Every share carries the stamp g - 1 when generation g starts: the shares this step does not use are stamped
        // here, the others were claimed by the previous step. So the claim CAS(g - 1 -> g) succeeds exactly once per
        // share, and never for a thread that still thinks an older generation runs (whatever share count it read).
        int g = unchecked(generation + 1);
        for (int s = shareCount; s < claims.Length; s++)
        {
            Volatile.Write(ref claims[s], g);
        }

        current = step;
        shares = shareCount;
        Volatile.Write(ref done, 0);
        Interlocked.Exchange(ref generation, g); // full fence: publishes the step before any worker can see the new generation
        foreach (var worker in workers)
        {
            if (Volatile.Read(ref worker.Parked) != 0)
            {
                worker.Wake();
            }
        }

        RunShares(g, 0);
        var spin = default(SpinWait);
        while (Volatile.Read(ref done) != shareCount)
        {
            spin.SpinOnce(sleep1Threshold: -1);
        }

        current = null;
        Exception? error = Interlocked.Exchange(ref failure, null);
        if (error is not null)
        {
            ExceptionDispatchInfo.Capture(error).Throw();
        }
    }

    /// <summary>
    /// Runs every share of generation <paramref name="g"/> that thread <paramref name="thread"/> can claim: its own
    /// block first, in order, then the other blocks from their ends. With fewer shares than threads the first threads
    /// own one share each and the others only take.
    /// </summary>
    private void RunShares(int g, int thread)
    {
        int count = Volatile.Read(ref shares);
        int owners = Math.Min(Threads, count);
        if (thread < owners)
        {
            for (int share = count * thread / owners, end = count * (thread + 1) / owners; share < end; share++)
            {
                TryRun(g, share);
            }
        }

        for (int k = 1; k <= owners; k++)
        {
            int t = (thread + k) % owners;
            if (t == thread)
            {
                continue;
            }

            for (int share = (count * (t + 1) / owners) - 1, from = count * t / owners; share >= from; share--)
            {
                TryRun(g, share);
            }
        }
    }

    private void TryRun(int g, int share)
    {
        if (Interlocked.CompareExchange(ref claims[share], g, g - 1) != g - 1)
        {
            return;
        }

        try
        {
            current!.Run(share);
        }
        catch (Exception e)
        {
            Interlocked.CompareExchange(ref failure, e, null);
        }

        Interlocked.Increment(ref done);
    }

    private sealed class Worker
    {
        public int Parked;
        public long AllocatedBytes;

        private readonly WorkerPool pool;
        private readonly int index;
        private readonly object gate = new();

        public Worker(WorkerPool pool, int index)
        {
            this.pool = pool;
            this.index = index;
        }

        public Thread? Thread { get; set; }

        public void Wake()
        {
            lock (gate)
            {
                Monitor.Pulse(gate);
            }
        }

        public void Loop()
        {
            // Nothing has been published before the constructor returns, so generation 0 is the last one seen. Reading
            // the field here instead would race with the first step and could skip it forever.
            int seen = 0;
            while (true)
            {
                int now = WaitForGeneration(seen);
                if (pool.stopping)
                {
                    return;
                }

                seen = now;
                pool.RunShares(now, index);
                Volatile.Write(ref AllocatedBytes, GC.GetAllocatedBytesForCurrentThread());
            }
        }

        private int WaitForGeneration(int seen)
        {
            long start = Stopwatch.GetTimestamp();
            int spins = 0;
            bool yielding = false;
            while (true)
            {
                int now = Volatile.Read(ref pool.generation);
                if (now != seen || pool.stopping)
                {
                    return now;
                }

                if (yielding)
                {
                    // Past the tight spin: offer the core to whatever else is ready to run (the caller itself, on a
                    // busy host), still checking for the next step between offers.
                    Thread.Yield();
                    if (Stopwatch.GetTimestamp() - start > pool.spinTicks)
                    {
                        break;
                    }
                }
                else
                {
                    Thread.SpinWait(8);
                    if ((++spins & 63) == 0)
                    {
                        long elapsed = Stopwatch.GetTimestamp() - start;
                        if (elapsed > pool.spinTicks)
                        {
                            break;
                        }

                        yielding = elapsed > TightSpinTicks;
                    }
                }
            }

            // Park. The Exchange is a full fence, as is the one that publishes a step, so either the caller sees
            // Parked == 1 and pulses, or this thread sees the new generation below: a wake-up cannot be lost.
            lock (gate)
            {
                Interlocked.Exchange(ref Parked, 1);
                int now;
                while ((now = Volatile.Read(ref pool.generation)) == seen && !pool.stopping)
                {
                    Monitor.Wait(gate);
                }

                Interlocked.Exchange(ref Parked, 0);
                return now;
            }
        }
    }

    /// <summary>Adapts ComputeThreads.For's body: share p is the p-th of the fixed ranges. Reused: only the pool's holder sets it.</summary>
    private sealed class RangeStep : IParallelStep
    {
        private Action<int, int>? body;
        private int total, parts;

        public void Set(Action<int, int>? body, int total, int parts) => (this.body, this.total, this.parts) = (body, total, parts);

        public void Run(int share)
        {
            var (start, end) = ComputeThreads.Range(total, parts, share);
            body!(start, end);
        }
    }

    /// <summary>Adapts ComputeThreads.Run's body: share s runs a contiguous run of parts, in order.</summary>
    private sealed class PartStep : IParallelStep
    {
        private Action<int>? body;
        private int parts, shares = 1;

        public void Set(Action<int>? body, int parts, int shares) => (this.body, this.parts, this.shares) = (body, parts, shares);

        public void Run(int share)
        {
            var (start, end) = ComputeThreads.Range(parts, shares, share);
            for (int p = start; p < end; p++)
            {
                body!(p);
            }
        }
    }
}

/// <summary>A unit of parallel work cut into fixed shares; <c>Run(share)</c> computes one (allocation-free dispatch for hot paths).</summary>
internal interface IParallelStep
{
    void Run(int share);
}
