using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace MobileOne.Tests.Oracle;

/// <summary>
/// Row-major single-precision matrix products for the test oracle's <see cref="Convolution"/>. Register-blocked over
/// 4 rows of C and two SIMD vectors of columns, so each loaded row of B feeds 4 FMAs; the library has its own packed
/// kernels. Every output element is accumulated over k in ascending order whatever the blocking or threading, so
/// results are reproducible bit for bit.
/// </summary>
internal static class Gemm
{
    private const long ParallelThresholdMacs = 1 << 20;

    /// <summary>C[m,n] = (accumulate ? C[m,n] : 0) + sum_k A[m,k] * B[k,n]. lda/ldb/ldc are row strides.</summary>
    public static void Multiply(
        ReadOnlySpan<float> a, int lda,
        ReadOnlySpan<float> b, int ldb,
        Span<float> c, int ldc,
        int m, int n, int k,
        bool accumulate)
    {
        if (m == 0 || n == 0)
        {
            return;
        }

        CheckExtent(a.Length, m, k, lda, nameof(a));
        CheckExtent(b.Length, k, n, ldb, nameof(b));
        CheckExtent(c.Length, m, n, ldc, nameof(c));

        int rowBlocks = (m + 3) / 4;
        if ((long)m * n * k < ParallelThresholdMacs || rowBlocks == 1 || Environment.ProcessorCount == 1)
        {
            MultiplyRows(ref MemoryMarshal.GetReference(a), lda, ref MemoryMarshal.GetReference(b), ldb, ref MemoryMarshal.GetReference(c), ldc, 0, m, n, k, accumulate);
            return;
        }

        unsafe
        {
            fixed (float* pa = a)
            fixed (float* pb = b)
            fixed (float* pc = c)
            {
                float* ca = pa, cb = pb, cc = pc;
                Parallel.For(0, rowBlocks, blk =>
                {
                    int r0 = blk * 4;
                    int r1 = Math.Min(m, r0 + 4);
                    MultiplyRows(ref *ca, lda, ref *cb, ldb, ref *cc, ldc, r0, r1, n, k, accumulate);
                });
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void MultiplyRows(ref float a, int lda, ref float b, int ldb, ref float c, int ldc, int rowStart, int rowEnd, int n, int k, bool accumulate)
    {
        int w = Vector<float>.Count;
        int i = rowStart;
        for (; i + 4 <= rowEnd; i += 4)
        {
            ref float a0 = ref Unsafe.Add(ref a, (nint)i * lda);
            ref float a1 = ref Unsafe.Add(ref a0, lda);
            ref float a2 = ref Unsafe.Add(ref a1, lda);
            ref float a3 = ref Unsafe.Add(ref a2, lda);
            ref float c0 = ref Unsafe.Add(ref c, (nint)i * ldc);
            ref float c1 = ref Unsafe.Add(ref c0, ldc);
            ref float c2 = ref Unsafe.Add(ref c1, ldc);
            ref float c3 = ref Unsafe.Add(ref c2, ldc);
            int j = 0;
            for (; j + (2 * w) <= n; j += 2 * w)
            {
                Vector<float> s00 = accumulate ? Load(ref c0, j) : default, s01 = accumulate ? Load(ref c0, j + w) : default;
                Vector<float> s10 = accumulate ? Load(ref c1, j) : default, s11 = accumulate ? Load(ref c1, j + w) : default;
                Vector<float> s20 = accumulate ? Load(ref c2, j) : default, s21 = accumulate ? Load(ref c2, j + w) : default;
                Vector<float> s30 = accumulate ? Load(ref c3, j) : default, s31 = accumulate ? Load(ref c3, j + w) : default;
                ref float bj = ref Unsafe.Add(ref b, j);
                for (int p = 0; p < k; p++)
                {
                    ref float brow = ref Unsafe.Add(ref bj, (nint)p * ldb);
                    Vector<float> b0 = Load(ref brow, 0);
                    Vector<float> b1 = Load(ref brow, w);
                    var v0 = new Vector<float>(Unsafe.Add(ref a0, p));
                    var v1 = new Vector<float>(Unsafe.Add(ref a1, p));
                    var v2 = new Vector<float>(Unsafe.Add(ref a2, p));
                    var v3 = new Vector<float>(Unsafe.Add(ref a3, p));
                    s00 = Vector.FusedMultiplyAdd(v0, b0, s00);
                    s01 = Vector.FusedMultiplyAdd(v0, b1, s01);
                    s10 = Vector.FusedMultiplyAdd(v1, b0, s10);
                    s11 = Vector.FusedMultiplyAdd(v1, b1, s11);
                    s20 = Vector.FusedMultiplyAdd(v2, b0, s20);
                    s21 = Vector.FusedMultiplyAdd(v2, b1, s21);
                    s30 = Vector.FusedMultiplyAdd(v3, b0, s30);
                    s31 = Vector.FusedMultiplyAdd(v3, b1, s31);
                }

                Store(s00, ref c0, j); Store(s01, ref c0, j + w);
                Store(s10, ref c1, j); Store(s11, ref c1, j + w);
                Store(s20, ref c2, j); Store(s21, ref c2, j + w);
                Store(s30, ref c3, j); Store(s31, ref c3, j + w);
            }

            for (; j < n; j++)
            {
                ScalarColumn(ref a0, ref b, ldb, ref c0, j, k, accumulate);
                ScalarColumn(ref a1, ref b, ldb, ref c1, j, k, accumulate);
                ScalarColumn(ref a2, ref b, ldb, ref c2, j, k, accumulate);
                ScalarColumn(ref a3, ref b, ldb, ref c3, j, k, accumulate);
            }
        }

        for (; i < rowEnd; i++)
        {
            ref float ai = ref Unsafe.Add(ref a, (nint)i * lda);
            ref float ci = ref Unsafe.Add(ref c, (nint)i * ldc);
            int j = 0;
            for (; j + w <= n; j += w)
            {
                Vector<float> s = accumulate ? Load(ref ci, j) : default;
                ref float bj = ref Unsafe.Add(ref b, j);
                for (int p = 0; p < k; p++)
                {
                    s = Vector.FusedMultiplyAdd(new Vector<float>(Unsafe.Add(ref ai, p)), Load(ref Unsafe.Add(ref bj, (nint)p * ldb), 0), s);
                }

                Store(s, ref ci, j);
            }

            for (; j < n; j++)
            {
                ScalarColumn(ref ai, ref b, ldb, ref ci, j, k, accumulate);
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void ScalarColumn(ref float ai, ref float b, int ldb, ref float ci, int j, int k, bool accumulate)
    {
        float s = accumulate ? Unsafe.Add(ref ci, j) : 0f;
        for (int p = 0; p < k; p++)
        {
            s = MathF.FusedMultiplyAdd(Unsafe.Add(ref ai, p), Unsafe.Add(ref b, ((nint)p * ldb) + j), s);
        }

        Unsafe.Add(ref ci, j) = s;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector<float> Load(ref float row, int offset) =>
        Vector.LoadUnsafe(ref Unsafe.Add(ref row, offset));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(Vector<float> v, ref float row, int offset) =>
        v.StoreUnsafe(ref Unsafe.Add(ref row, offset));

    private static void CheckExtent(int length, int rows, int cols, int ld, string name)
    {
        if (ld < cols || (long)(rows - 1) * ld + cols > length)
        {
            throw new ArgumentException($"Matrix {name} ({rows}x{cols}, stride {ld}) does not fit a span of {length} elements.", name);
        }
    }
}
