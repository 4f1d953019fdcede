using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace MobileOne.Kernels.Engine;

/// <summary>The instruction set an engine kernel is compiled for; every kernel has all three paths.</summary>
internal enum EngineIsa
{
    Scalar,
    Avx2,
    Avx512,
}

internal static class EngineIsaSupport
{
    public static bool IsSupported(EngineIsa isa) => isa switch
    {
        EngineIsa.Avx512 => Avx512F.IsSupported,
        EngineIsa.Avx2 => Avx2.IsSupported && Fma.IsSupported,
        _ => true,
    };

    /// <summary>
    /// AVX-512 where the runtime also reports 512-bit vectors as accelerated (it does not on CPUs that
    /// throttle), else AVX2+FMA, else scalar.
    /// </summary>
    public static EngineIsa Best =>
        Avx512F.IsSupported && Vector512.IsHardwareAccelerated ? EngineIsa.Avx512
        : IsSupported(EngineIsa.Avx2) ? EngineIsa.Avx2
        : EngineIsa.Scalar;
}
