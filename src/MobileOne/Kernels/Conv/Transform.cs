using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace MobileOne.Kernels.Conv;

/// <summary>
/// Short copies and clears for the im2col / im2win transforms, whose runs are often only C_in (3 for a stem)
/// or Kw*C_in floats long: with AVX-512 the tail of a run is one masked load and store instead of a scalar
/// loop, which is what makes the transforms cheap next to the GEMM for small C_in.
/// </summary>
internal static unsafe class Transform
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Copy(float* src, float* dst, nint count)
    {
        nint i = 0;
        if (Avx512F.IsSupported)
        {
            for (; i + 16 <= count; i += 16)
            {
                Vector512.Store(Vector512.Load(src + i), dst + i);
            }

            if (i < count)
            {
                Vector512<float> mask = Mask(count - i);
                Avx512F.MaskStore(dst + i, mask, Avx512F.MaskLoad(src + i, mask, Vector512<float>.Zero));
            }

            return;
        }

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
        if (Avx512F.IsSupported)
        {
            for (; i + 16 <= count; i += 16)
            {
                Vector512.Store(Vector512<float>.Zero, dst + i);
            }

            if (i < count)
            {
                Avx512F.MaskStore(dst + i, Mask(count - i), Vector512<float>.Zero);
            }

            return;
        }

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

    /// <summary>
    /// Copies <paramref name="count"/> floats from each of <paramref name="runs"/> sources <paramref name="srcStride"/>
    /// apart to destinations <paramref name="dstStride"/> apart: with AVX-512 and count up to 16, one masked
    /// load and store per run with the mask built once.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void CopyRuns(float* src, nint srcStride, float* dst, nint dstStride, nint count, int runs)
    {
        if (Avx512F.IsSupported && count <= 16)
        {
            Vector512<float> mask = Mask(count);
            for (int r = 0; r < runs; r++, src += srcStride, dst += dstStride)
            {
                Avx512F.MaskStore(dst, mask, Avx512F.MaskLoad(src, mask, Vector512<float>.Zero));
            }

            return;
        }

        for (int r = 0; r < runs; r++, src += srcStride, dst += dstStride)
        {
            Copy(src, dst, count);
        }
    }

    /// <summary>Lanes [0, count) set, count in 1..16.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Mask(nint count) =>
        Vector512.LessThan(Vector512<int>.Indices, Vector512.Create((int)count)).AsSingle();
}
