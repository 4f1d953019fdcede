using System.Runtime.Intrinsics;

namespace MobileOne.Kernels.Conv;

/// <summary>Register width the convolution kernels use; narrower than the CPU offers only for tests and comparisons.</summary>
public enum SimdWidth
{
    /// <summary>Vector512 where accelerated, else Vector256, else scalar.</summary>
    Auto,
    Vector512,
    Vector256,
    Scalar,
}

internal static class SimdWidths
{
    /// <summary>The requested width, or the widest accelerated one below it when the CPU lacks it.</summary>
    public static SimdWidth Resolve(SimdWidth requested)
    {
        if (requested is SimdWidth.Auto or SimdWidth.Vector512 && Vector512.IsHardwareAccelerated)
        {
            return SimdWidth.Vector512;
        }

        if (requested != SimdWidth.Scalar && Vector256.IsHardwareAccelerated)
        {
            return SimdWidth.Vector256;
        }

        return SimdWidth.Scalar;
    }

    public static int Lanes(SimdWidth width) => width switch
    {
        SimdWidth.Vector512 => Vector512<float>.Count,
        SimdWidth.Vector256 => Vector256<float>.Count,
        _ => 1,
    };

    public static int MaxColumnVectors(SimdWidth width) => width switch
    {
        SimdWidth.Vector512 => Vector512Ops.MaxColumnVectors,
        SimdWidth.Vector256 => Vector256Ops.MaxColumnVectors,
        _ => ScalarOps.MaxColumnVectors,
    };
}
