using System.Diagnostics;

namespace MobileOne.Inference;

/// <summary>
/// The calling thread plus <c>threads - 1</c> persistent workers that execute one parallel step at a time
/// (a fork-join barrier per step). Workers are created once; between steps they spin for a short while
/// (a hand-off then costs well under a microsecond, against several for Parallel.For) and then park on a
/// monitor so an idle model burns no CPU. Nothing here allocates after construction.
/// <para>Each step is cut into <c>shares</c> static shares (a few per thread), and thread t owns a contiguous
/// block of them. A share is claimed before it runs: a thread runs its own block in order, then takes
/// unstarted shares from the end of the other blocks. On a quiet machine every thread runs exactly its block
/// (a static partition); on a shared host a worker that the OS has descheduled stalls the step only for the
/// share it is in, not for its whole block. Which thread runs a share never changes what it computes, so
/// results stay bit-identical.</para>
/// </summary>
internal sealed class WorkerTeam : IDisposable
{
    /// <summary>
    /// How long a worker spins for the next step before parking: long enough to cover the gap between two steps on
    /// a quiet machine (the caller finishing its last share, a few microseconds), short enough that on a busy host
    /// the worker does not burn the time slice the caller needs (runs under load: 200 us and 50 us slower, 20 us as
    /// fast as parking at once; see docs/engine.md).
    /// MOBILEONE_ENGINE_SPIN_US overrides it for experiments.
    /// </summary>
    private static readonly long SpinTicks = Stopwatch.Frequency / 1_000_000 *
        (int.TryParse(Environment.GetEnvironmentVariable("MOBILEONE_ENGINE_SPIN_US"), out int us) && us >= 0 ? us : 20);

    private readonly Worker[] workers;
    private readonly int[] claims;
    private IParallelStep? current;
    private int generation;
    private int done;
    private volatile bool stopping;
    private Exception? failure;

    public WorkerTeam(int threads, int shares, string name)
    {
        Threads = threads;
        Shares = shares;
        claims = new int[shares];
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

    public int Shares { get; }

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

    /// <summary>Runs every share of <paramref name="step"/> (the caller is thread 0) and returns when all are done.</summary>
    public void Execute(IParallelStep step)
    {
        if (workers.Length == 0)
        {
            for (int share = 0; share < Shares; share++)
            {
                step.Run(share);
            }

            return;
        }

        current = step;
        Volatile.Write(ref done, 0);
        int g = Interlocked.Increment(ref generation); // full fence: publishes the step before any worker can see the new generation
        foreach (var worker in workers)
        {
            if (Volatile.Read(ref worker.Parked) != 0)
            {
                worker.Wake();
            }
        }

        RunShares(g, 0);
        var spin = default(SpinWait);
        while (Volatile.Read(ref done) != Shares)
        {
            spin.SpinOnce(sleep1Threshold: -1);
        }

        current = null;
        Exception? error = Interlocked.Exchange(ref failure, null);
        if (error is not null)
        {
            throw error;
        }
    }

    /// <summary>
    /// Runs every share of generation <paramref name="g"/> that thread <paramref name="thread"/> can claim: its own
    /// block first, in order, then the other blocks from their ends. claims[s] holds the last generation that
    /// claimed share s; every share is claimed once per generation, so the claim CAS(g - 1 -> g) succeeds exactly
    /// once, and never for a thread that still thinks an older generation runs.
    /// </summary>
    private void RunShares(int g, int thread)
    {
        int first = Shares * thread / Threads, end = Shares * (thread + 1) / Threads;
        for (int share = first; share < end; share++)
        {
            TryRun(g, share);
        }

        for (int other = 1; other < Threads; other++)
        {
            int t = thread + other < Threads ? thread + other : thread + other - Threads;
            int from = Shares * t / Threads, to = Shares * (t + 1) / Threads;
            for (int share = to - 1; share >= from; share--)
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

    public void Dispose()
    {
        if (stopping)
        {
            return;
        }

        stopping = true;
        Interlocked.Increment(ref generation);
        foreach (var worker in workers)
        {
            worker.Wake();
        }

        foreach (var worker in workers)
        {
            if (worker.Thread != Thread.CurrentThread)
            {
                worker.Thread?.Join();
            }
        }
    }

    private sealed class Worker
    {
        public int Parked;
        public long AllocatedBytes;

        private readonly WorkerTeam team;
        private readonly int index;
        private readonly object gate = new();

        public Worker(WorkerTeam team, int index)
        {
            this.team = team;
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
            // the field here instead would race with the first Execute and could skip its step forever.
            int seen = 0;
            while (true)
            {
                int now = WaitForGeneration(seen);
                seen = now;
                if (team.stopping)
                {
                    return;
                }

                team.RunShares(now, index);
                Volatile.Write(ref AllocatedBytes, GC.GetAllocatedBytesForCurrentThread());
            }
        }

        private int WaitForGeneration(int seen)
        {
            long start = Stopwatch.GetTimestamp();
            int spins = 0;
            while (true)
            {
                int now = Volatile.Read(ref team.generation);
                if (now != seen)
                {
                    return now;
                }

                Thread.SpinWait(8);
                if ((++spins & 63) == 0 && Stopwatch.GetTimestamp() - start > SpinTicks)
                {
                    break;
                }
            }

            // Park. The Exchange is a full fence, as is the Increment in Execute, so either Execute sees Parked == 1
            // and pulses, or this thread sees the new generation below: a wake-up cannot be lost.
            lock (gate)
            {
                Interlocked.Exchange(ref Parked, 1);
                int now;
                while ((now = Volatile.Read(ref team.generation)) == seen)
                {
                    Monitor.Wait(gate);
                }

                Interlocked.Exchange(ref Parked, 0);
                return now;
            }
        }
    }
}

/// <summary>A unit of parallel work cut into static shares; <c>Run(share)</c> computes one.</summary>
internal interface IParallelStep
{
    void Run(int share);
}
