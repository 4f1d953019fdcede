using System.Diagnostics;
using System.Globalization;
using System.Runtime.CompilerServices;

namespace MobileOne.Tests;

/// <summary>
/// Asserts that a hostile input is refused within the readers' budget (docs/reliability.md): quickly, and
/// allocating little. Allocation is measured on the calling thread (the readers run on it), so the bound does
/// not depend on what other tests do at the same time; the time bound is loose because the machine is shared.
/// </summary>
internal static class Budget
{
    public const double RefusalSeconds = 5;

    /// <summary>Set to a file path to append each refusal's measured time and allocation (docs/reliability.md's table).</summary>
    public const string LogVariable = "MOBILEONE_BUDGET_LOG";

    public static TException Refused<TException>(Action action, long maxAllocatedBytes, double maxSeconds = RefusalSeconds, [CallerMemberName] string test = "")
        where TException : Exception
    {
        long before = GC.GetAllocatedBytesForCurrentThread();
        var clock = Stopwatch.StartNew();
        var error = Assert.Throws<TException>(action);
        clock.Stop();
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        if (Environment.GetEnvironmentVariable(LogVariable) is { Length: > 0 } log)
        {
            File.AppendAllText(log, string.Create(CultureInfo.InvariantCulture, $"{test}\t{clock.Elapsed.TotalSeconds:0.000} s\t{allocated / 1e6:0.0} MB\n"));
        }

        Assert.True(clock.Elapsed.TotalSeconds < maxSeconds, $"refused after {clock.Elapsed.TotalSeconds:0.00} s, budget {maxSeconds} s: {error.Message}");
        Assert.True(allocated < maxAllocatedBytes, $"allocated {allocated / 1e6:0.0} MB before refusing, budget {maxAllocatedBytes / 1e6:0.0} MB: {error.Message}");
        return error;
    }
}
