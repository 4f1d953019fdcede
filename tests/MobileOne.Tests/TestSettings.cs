using System.Reflection;
using MobileOne.Inference;
using MobileOne.Kernels;
using Xunit.Sdk;

namespace MobileOne.Tests;

/// <summary>
/// Captures the process-wide kernel settings (SIMD level, compute threads) and restores them when disposed:
/// <c>using var settings = new KernelSettingsScope();</c> before changing them, so a failing assertion cannot
/// leave the next test running on another level or thread count.
/// </summary>
internal sealed class KernelSettingsScope : IDisposable
{
    private readonly IsaLevel _level = Lanes.Level;
    private readonly int _threads = ComputeThreads.Count;

    public void Dispose()
    {
        Lanes.Level = _level;
        ComputeThreads.Count = _threads;
    }
}

/// <summary>
/// One theory row whose first argument is an instruction-set level: the row is reported as skipped (with the
/// reason) on a CPU that lacks that level, instead of returning early and counting as passed.
/// </summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = true)]
public sealed class IsaDataAttribute : DataAttribute
{
    private readonly object[] _row;

    public IsaDataAttribute(IsaLevel isa, params object[] rest)
    {
        _row = [isa, .. rest];
        Skip = CompiledModel.IsSupported(isa) ? null : $"this CPU does not support {isa}";
    }

    public override IEnumerable<object[]> GetData(MethodInfo testMethod) => [_row];
}
