using System.Diagnostics;

namespace MobileOne.Inference;

/// <summary>
/// The calling thread plus <c>threads - 1</c> persistent workers that execute one parallel step at a time
/// (a fork-join barrier per step). Workers are created once; between steps they spin for a short while
/// (a hand-off then costs well under a microsecond, against several for Parallel.For) and then park on a
/// monitor so an idle model burns no CPU. Nothing here allocates after construction.
/// </summary>
internal sealed class WorkerTeam : IDisposable
{
    /// <summary>How long a worker spins for the next step before parking.</summary>
    private static readonly long SpinTicks = Stopwatch.Frequency / 5000; // 200 us

    private readonly Worker[] workers;
    private IParallelStep? current;
    private int generation;
    private int pending;
    private volatile bool stopping;
    private Exception? failure;

    public WorkerTeam(int threads, string name)
    {
        Threads = threads;
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

    /// <summary>Runs <paramref name="step"/> on every thread (the caller is thread 0) and returns when all are done.</summary>
    public void Execute(IParallelStep step)
    {
        if (workers.Length == 0)
        {
            step.Run(0);
            return;
        }

        current = step;
        Volatile.Write(ref pending, workers.Length);
        Interlocked.Increment(ref generation); // full fence: publishes the step before any worker can see the new generation
        foreach (var worker in workers)
        {
            if (Volatile.Read(ref worker.Parked) != 0)
            {
                worker.Wake();
            }
        }

        Exception? own = null;
        try
        {
            step.Run(0);
        }
        catch (Exception e)
        {
            own = e;
        }

        var spin = default(SpinWait);
        while (Volatile.Read(ref pending) != 0)
        {
            spin.SpinOnce(sleep1Threshold: -1);
        }

        current = null;
        Exception? theirs = Interlocked.Exchange(ref failure, null);
        if (own is not null || theirs is not null)
        {
            throw own ?? theirs!;
        }
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

                try
                {
                    team.current!.Run(index);
                }
                catch (Exception e)
                {
                    Interlocked.CompareExchange(ref team.failure, e, null);
                }

                Volatile.Write(ref AllocatedBytes, GC.GetAllocatedBytesForCurrentThread());
                Interlocked.Decrement(ref team.pending);
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

/// <summary>A unit of parallel work: thread <c>t</c> of the team does its static share.</summary>
internal interface IParallelStep
{
    void Run(int thread);
}
