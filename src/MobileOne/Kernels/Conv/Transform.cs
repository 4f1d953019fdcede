using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace MobileOne.Kernels.Conv;

/// <summary>Short copies and clears for the im2col / im2win transforms, whose runs are often only C_in floats long.</summary>
internal static unsafe class Transform
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Copy(float* src, float* dst, nint count)
    {
        nint i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            for (; i + 8 <= count; i += 8)
            {
                Vector256.Store(Vector256.Load(src + i), dst + i);
            }
        }

        for (; i < count; i++)
        {
            dst[i] = src[i];
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Clear(float* dst, nint count)
    {
        nint i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            for (; i + 8 <= count; i += 8)
            {
                Vector256.Store(Vector256<float>.Zero, dst + i);
            }
        }

        for (; i < count; i++)
        {
            dst[i] = 0f;
        }
    }
}
