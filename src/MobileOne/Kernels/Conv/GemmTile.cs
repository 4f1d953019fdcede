using System.Runtime.CompilerServices;

namespace MobileOne.Kernels.Conv;

/// <summary>
/// The register-blocked GEMM microkernel shared by the dense and grouped paths of all three algorithms:
/// C[r, 0..TCols*W) = bias + sum_k A_r[k] * B[k, 0..TCols*W) for TRows (up to 6) output pixels at once.
/// Each pixel's A row is a pointer of its own, so one kernel serves im2col rows, im2win windows and direct
/// reads of the image; B is a packed panel of <c>ldb</c> floats per k (zero-padded output channels).
/// Per k it loads TCols weight vectors and broadcasts one value per row: 6 x 4 Vector512 accumulators give
/// 24 FMAs for 4 loads and 6 broadcasts, enough to keep Zen 4's FMA pipe busy from L1/L2.
/// </summary>
internal static unsafe class GemmTile
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Run<TV, TL, TRows, TCols>(
        float** rows, nint aOffset, float* b, nint ldb, in ReductionLoop loop, float* bias, float* c, nint ldc, int validColumns, bool relu)
        where TV : struct
        where TL : struct, ILanes<TV>
        where TRows : struct, IDim
        where TCols : struct, IDim
    {
        int w = TL.Count;
        TV z = TL.Zero;
        TV bias0 = TL.Load(bias);
        TV bias1 = TCols.Value > 1 ? TL.Load(bias + w) : z;
        TV bias2 = TCols.Value > 2 ? TL.Load(bias + (2 * w)) : z;
        TV bias3 = TCols.Value > 3 ? TL.Load(bias + (3 * w)) : z;
        TV c00 = bias0, c01 = bias1, c02 = bias2, c03 = bias3;
        TV c10 = bias0, c11 = bias1, c12 = bias2, c13 = bias3;
        TV c20 = bias0, c21 = bias1, c22 = bias2, c23 = bias3;
        TV c30 = bias0, c31 = bias1, c32 = bias2, c33 = bias3;
        TV c40 = bias0, c41 = bias1, c42 = bias2, c43 = bias3;
        TV c50 = bias0, c51 = bias1, c52 = bias2, c53 = bias3;

        // Rows beyond TRows alias row 0 so every pointer is valid; their sums are never stored.
        float* a0 = rows[0] + aOffset;
        float* a1 = TRows.Value > 1 ? rows[1] + aOffset : a0;
        float* a2 = TRows.Value > 2 ? rows[2] + aOffset : a0;
        float* a3 = TRows.Value > 3 ? rows[3] + aOffset : a0;
        float* a4 = TRows.Value > 4 ? rows[4] + aOffset : a0;
        float* a5 = TRows.Value > 5 ? rows[5] + aOffset : a0;
        nint segment = loop.SegmentLength;
        for (int o = 0; o < loop.OuterCount; o++)
        {
            for (int i = 0; i < loop.InnerCount; i++)
            {
                nint offA = (o * loop.OuterStrideA) + (i * loop.InnerStrideA);
                float* pb = b + (((o * loop.OuterStrideB) + (i * loop.InnerStrideB)) * ldb);
                float* p0 = a0 + offA;
                float* p1 = a1 + offA;
                float* p2 = a2 + offA;
                float* p3 = a3 + offA;
                float* p4 = a4 + offA;
                float* p5 = a5 + offA;
                for (nint k = 0; k < segment; k++)
                {
                    TV b0 = TL.Load(pb);
                    TV b1 = TCols.Value > 1 ? TL.Load(pb + w) : z;
                    TV b2 = TCols.Value > 2 ? TL.Load(pb + (2 * w)) : z;
                    TV b3 = TCols.Value > 3 ? TL.Load(pb + (3 * w)) : z;
                    TV x;
                    x = TL.Splat(p0[k]);
                    c00 = TL.Fma(x, b0, c00);
                    if (TCols.Value > 1) c01 = TL.Fma(x, b1, c01);
                    if (TCols.Value > 2) c02 = TL.Fma(x, b2, c02);
                    if (TCols.Value > 3) c03 = TL.Fma(x, b3, c03);

                    if (TRows.Value > 1)
                    {
                        x = TL.Splat(p1[k]);
                        c10 = TL.Fma(x, b0, c10);
                        if (TCols.Value > 1) c11 = TL.Fma(x, b1, c11);
                        if (TCols.Value > 2) c12 = TL.Fma(x, b2, c12);
                        if (TCols.Value > 3) c13 = TL.Fma(x, b3, c13);
                    }

                    if (TRows.Value > 2)
                    {
                        x = TL.Splat(p2[k]);
                        c20 = TL.Fma(x, b0, c20);
                        if (TCols.Value > 1) c21 = TL.Fma(x, b1, c21);
                        if (TCols.Value > 2) c22 = TL.Fma(x, b2, c22);
                        if (TCols.Value > 3) c23 = TL.Fma(x, b3, c23);
                    }

                    if (TRows.Value > 3)
                    {
                        x = TL.Splat(p3[k]);
                        c30 = TL.Fma(x, b0, c30);
                        if (TCols.Value > 1) c31 = TL.Fma(x, b1, c31);
                        if (TCols.Value > 2) c32 = TL.Fma(x, b2, c32);
                        if (TCols.Value > 3) c33 = TL.Fma(x, b3, c33);
                    }

                    if (TRows.Value > 4)
                    {
                        x = TL.Splat(p4[k]);
                        c40 = TL.Fma(x, b0, c40);
                        if (TCols.Value > 1) c41 = TL.Fma(x, b1, c41);
                        if (TCols.Value > 2) c42 = TL.Fma(x, b2, c42);
                        if (TCols.Value > 3) c43 = TL.Fma(x, b3, c43);
                    }

                    if (TRows.Value > 5)
                    {
                        x = TL.Splat(p5[k]);
                        c50 = TL.Fma(x, b0, c50);
                        if (TCols.Value > 1) c51 = TL.Fma(x, b1, c51);
                        if (TCols.Value > 2) c52 = TL.Fma(x, b2, c52);
                        if (TCols.Value > 3) c53 = TL.Fma(x, b3, c53);
                    }

                    pb += ldb;
                }
            }
        }

        StoreRow<TV, TL, TCols>(c, c00, c01, c02, c03, validColumns, relu);

        if (TRows.Value > 1)
        {
            StoreRow<TV, TL, TCols>(c + (1 * ldc), c10, c11, c12, c13, validColumns, relu);
        }

        if (TRows.Value > 2)
        {
            StoreRow<TV, TL, TCols>(c + (2 * ldc), c20, c21, c22, c23, validColumns, relu);
        }

        if (TRows.Value > 3)
        {
            StoreRow<TV, TL, TCols>(c + (3 * ldc), c30, c31, c32, c33, validColumns, relu);
        }

        if (TRows.Value > 4)
        {
            StoreRow<TV, TL, TCols>(c + (4 * ldc), c40, c41, c42, c43, validColumns, relu);
        }

        if (TRows.Value > 5)
        {
            StoreRow<TV, TL, TCols>(c + (5 * ldc), c50, c51, c52, c53, validColumns, relu);
        }

    }

    /// <summary>Writes one pixel's TCols vectors; the last may be partial so no other pixel's channels are touched.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void StoreRow<TV, TL, TCols>(float* c, TV v0, TV v1, TV v2, TV v3, int validColumns, bool relu)
        where TV : struct
        where TL : struct, ILanes<TV>
        where TCols : struct, IDim
    {
        if (relu)
        {
            v0 = TL.Relu(v0);
            v1 = TL.Relu(v1);
            v2 = TL.Relu(v2);
            v3 = TL.Relu(v3);
        }

        int w = TL.Count;
        int full = TCols.Value * w == validColumns ? TCols.Value : TCols.Value - 1;
        StoreVector<TV, TL>(c, v0, 0, full, validColumns);
        if (TCols.Value > 1)
        {
            StoreVector<TV, TL>(c + w, v1, 1, full, validColumns - w);
        }

        if (TCols.Value > 2)
        {
            StoreVector<TV, TL>(c + (2 * w), v2, 2, full, validColumns - (2 * w));
        }

        if (TCols.Value > 3)
        {
            StoreVector<TV, TL>(c + (3 * w), v3, 3, full, validColumns - (3 * w));
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreVector<TV, TL>(float* c, TV v, int index, int full, int remaining)
        where TV : struct
        where TL : struct, ILanes<TV>
    {
        if (index < full)
        {
            TL.Store(c, v);
        }
        else
        {
            TL.StoreFirst(c, v, remaining);
        }
    }
}
