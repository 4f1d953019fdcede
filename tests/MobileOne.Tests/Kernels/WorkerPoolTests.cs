using MobileOne.Kernels;

namespace MobileOne.Tests.Kernels;

/// <summary>The one worker pool: every share runs exactly once per step, whoever calls and however often.</summary>
public class WorkerPoolTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(5)]
    public void Every_share_of_every_step_runs_exactly_once_whatever_the_share_count(int threads)
    {
        using var pool = new WorkerPool(threads, 4 * threads, "test", spinMicroseconds: 20);
        var counts = new int[pool.MaxShares];
        var step = new CountingStep(counts);
        var rng = new Random(threads);
        for (int i = 0; i < 3000; i++)
        {
            // Varying counts leave some shares unused in a step; parking (a pause now and then) and spinning both occur.
            int shares = rng.Next(1, pool.MaxShares + 1);
            Array.Clear(counts);
            pool.Run(step, shares);
            for (int s = 0; s < counts.Length; s++)
            {
                Assert.True(counts[s] == (s < shares ? 1 : 0), $"step {i}: share {s} of {shares} ran {counts[s]} times");
            }

            if (i % 500 == 499)
            {
                Thread.Sleep(2);
            }
        }
    }

    [Fact]
    public async Task Concurrent_and_nested_calls_run_inline_and_still_cover_every_part()
    {
        using var pool = new WorkerPool(3, 12, "test", spinMicroseconds: 20);
        var tasks = Enumerable.Range(0, 4).Select(c => Task.Run(() =>
        {
            for (int i = 0; i < 300; i++)
            {
                int total = 37 + c + i;
                var outer = new int[total];
                var inner = new int[12 * 5];
                pool.For(total, 12, (start, end) =>
                {
                    for (int j = start; j < end; j++)
                    {
                        Interlocked.Increment(ref outer[j]);
                    }

                    // A nested call finds the pool busy and runs on this thread.
                    int part = Enumerable.Range(0, 12).First(q => ComputeThreads.Range(total, 12, q).Start == start);
                    pool.Run(5, p => Interlocked.Increment(ref inner[part + (12 * p)]));
                });
                Assert.All(outer, n => Assert.Equal(1, n));
                Assert.All(inner, n => Assert.Equal(1, n));
            }
        }));
        await Task.WhenAll(tasks);
    }

    [Fact]
    public void More_parts_than_shares_are_grouped_and_each_runs_once()
    {
        using var pool = new WorkerPool(2, 8, "test", spinMicroseconds: 20);
        var seen = new int[1000];
        pool.Run(1000, p => Interlocked.Increment(ref seen[p]));
        Assert.All(seen, n => Assert.Equal(1, n));
    }

    [Fact]
    public void An_exception_in_a_share_reaches_the_caller_and_the_pool_stays_usable()
    {
        using var pool = new WorkerPool(3, 12, "test", spinMicroseconds: 20);
        var e = Assert.Throws<InvalidOperationException>(() => pool.Run(12, p =>
        {
            if (p == 7)
            {
                throw new InvalidOperationException("share 7");
            }
        }));
        Assert.Equal("share 7", e.Message);
        var seen = new int[12];
        pool.Run(12, p => Interlocked.Increment(ref seen[p]));
        Assert.All(seen, n => Assert.Equal(1, n));
    }

    [Fact]
    public void A_disposed_pool_runs_on_its_caller()
    {
        var pool = new WorkerPool(3, 12, "test", spinMicroseconds: 0);
        pool.Dispose();
        var seen = new int[12];
        pool.Run(12, p => Interlocked.Increment(ref seen[p]));
        Assert.All(seen, n => Assert.Equal(1, n));
    }

    private sealed class CountingStep(int[] counts) : IParallelStep
    {
        public void Run(int share) => Interlocked.Increment(ref counts[share]);
    }
}
