namespace MobileOne.Kernels;

/// <summary>
/// How many threads the training kernels (packed GEMM, convolution passes, BatchNorm) use, and the process-wide
/// <see cref="WorkerPool"/> they run on. Work is always cut into the same fixed parts for a given count, and every
/// reduction combines its parts in a fixed order, so one seed and one thread count reproduce a run bit for bit.
/// </summary>
public static class ComputeThreads
{
    /// <summary>
    /// How long an idle worker waits for the next pass before parking (spinning 20 us, then yielding the core between
    /// checks): a training step runs hundreds of short passes back to back, with serial work between them.
    /// </summary>
    private const int SpinMicroseconds = 200;

    private static readonly object PoolLock = new();
    private static int count = Math.Max(1, Environment.ProcessorCount);
    private static WorkerPool? pool;

    /// <summary>
    /// Threads that cooperate on one kernel call (the calling thread included). Defaults to the processor count. Set it
    /// between steps, not while kernels run; the worker threads are created on first use.
    /// </summary>
    public static int Count
    {
        get => count;
        set
        {
            if (value < 1)
            {
                throw new ArgumentOutOfRangeException(nameof(value), value, "The thread count must be at least 1.");
            }

            count = value;
        }
    }

    /// <summary>
    /// Work is cut into up to this many parts per thread: when the machine is shared and one thread is descheduled,
    /// the others take its remaining parts instead of waiting for it.
    /// </summary>
    public const int PartsPerThread = 4;

    /// <summary>
    /// Runs <paramref name="body"/> for every part in [0, parts). Parts are independent units whose results do
    /// not depend on which thread runs them; with one thread they run in order on the caller. A call made while the
    /// pool is busy (from another thread, or from inside a part) also runs in order on its caller.
    /// </summary>
    public static void Run(int parts, Action<int> body)
    {
        if (parts <= 0)
        {
            return;
        }

        if (Math.Min(Count, parts) == 1)
        {
            for (int p = 0; p < parts; p++)
            {
                body(p);
            }

            return;
        }

        Pool().Run(parts, body);
    }

    /// <summary>Runs <paramref name="body"/>(start, end) over contiguous ranges of [0, total) (at most <see cref="PartsPerThread"/> per thread).</summary>
    public static void For(int total, Action<int, int> body, int minPerPart = 1)
    {
        int parts = PartsFor(total, minPerPart);
        if (parts <= 1)
        {
            if (total > 0)
            {
                body(0, total);
            }

            return;
        }

        Pool().For(total, parts, body);
    }

    /// <summary>How many parts of at least <paramref name="minPerPart"/> items <paramref name="total"/> items make (one per thread when single-threaded).</summary>
    public static int PartsFor(int total, int minPerPart = 1) =>
        Count == 1 ? 1 : Math.Max(1, Math.Min(Count * PartsPerThread, total / Math.Max(1, minPerPart)));

    /// <summary>The part-th of <paramref name="parts"/> near-equal contiguous ranges of [0, total).</summary>
    public static (int Start, int End) Range(int total, int parts, int part) =>
        ((int)((long)total * part / parts), (int)((long)total * (part + 1) / parts));

    private static WorkerPool Pool()
    {
        int threads = count;
        var p = Volatile.Read(ref pool);
        if (p is not null && p.Threads == threads)
        {
            return p;
        }

        WorkerPool? old;
        lock (PoolLock)
        {
            p = pool;
            if (p is not null && p.Threads == threads)
            {
                return p;
            }

            old = p;
            p = new WorkerPool(threads, threads * PartsPerThread, "MobileOne compute", SpinMicroseconds);
            Volatile.Write(ref pool, p);
        }

        // A call still running on the old pool completes on its caller.
        old?.Dispose();
        return p;
    }
}
