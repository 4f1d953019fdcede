using System.Runtime.CompilerServices;
using MobileOne.Kernels.Gemm;

namespace MobileOne.Kernels.Depthwise;

/// <summary>
/// The depthwise microkernel (one input channel per output channel): NHWC puts a pixel's channels side by side,
/// so TRows pixels x TCols channel vectors are summed over the taps with element-wise FMAs, no broadcasts.
/// Each pixel's first tap is a pointer of its own; <see cref="ReductionLoop"/> describes how to step from tap
/// to tap (outer x inner taps; <see cref="ReductionLoop.SegmentLength"/> is not used here) in the source and
/// in the packed weights [tap][ldw].
/// </summary>
internal static unsafe class DepthwiseTile
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Run<TV, TL, TRows, TCols>(
        float** rows, nint aOffset, float* weights, nint ldw, in ReductionLoop taps, float* bias, float* c, nint ldc, bool relu)
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
        for (int o = 0; o < taps.OuterCount; o++)
        {
            nint offA = o * taps.OuterStrideA;
            float* pw = weights + (o * taps.OuterStrideB * ldw);
            for (int i = 0; i < taps.InnerCount; i++)
            {
                TV w0 = TL.Load(pw);
                TV w1 = TCols.Value > 1 ? TL.Load(pw + w) : z;
                TV w2 = TCols.Value > 2 ? TL.Load(pw + (2 * w)) : z;
                TV w3 = TCols.Value > 3 ? TL.Load(pw + (3 * w)) : z;
                float* p0 = a0 + offA;
                c00 = TL.Fma(TL.Load(p0), w0, c00);
                if (TCols.Value > 1) c01 = TL.Fma(TL.Load(p0 + (1 * w)), w1, c01);
                if (TCols.Value > 2) c02 = TL.Fma(TL.Load(p0 + (2 * w)), w2, c02);
                if (TCols.Value > 3) c03 = TL.Fma(TL.Load(p0 + (3 * w)), w3, c03);

                if (TRows.Value > 1)
                {
                    float* p1 = a1 + offA;
                    c10 = TL.Fma(TL.Load(p1), w0, c10);
                    if (TCols.Value > 1) c11 = TL.Fma(TL.Load(p1 + (1 * w)), w1, c11);
                    if (TCols.Value > 2) c12 = TL.Fma(TL.Load(p1 + (2 * w)), w2, c12);
                    if (TCols.Value > 3) c13 = TL.Fma(TL.Load(p1 + (3 * w)), w3, c13);
                }

                if (TRows.Value > 2)
                {
                    float* p2 = a2 + offA;
                    c20 = TL.Fma(TL.Load(p2), w0, c20);
                    if (TCols.Value > 1) c21 = TL.Fma(TL.Load(p2 + (1 * w)), w1, c21);
                    if (TCols.Value > 2) c22 = TL.Fma(TL.Load(p2 + (2 * w)), w2, c22);
                    if (TCols.Value > 3) c23 = TL.Fma(TL.Load(p2 + (3 * w)), w3, c23);
                }

                if (TRows.Value > 3)
                {
                    float* p3 = a3 + offA;
                    c30 = TL.Fma(TL.Load(p3), w0, c30);
                    if (TCols.Value > 1) c31 = TL.Fma(TL.Load(p3 + (1 * w)), w1, c31);
                    if (TCols.Value > 2) c32 = TL.Fma(TL.Load(p3 + (2 * w)), w2, c32);
                    if (TCols.Value > 3) c33 = TL.Fma(TL.Load(p3 + (3 * w)), w3, c33);
                }

                if (TRows.Value > 4)
                {
                    float* p4 = a4 + offA;
                    c40 = TL.Fma(TL.Load(p4), w0, c40);
                    if (TCols.Value > 1) c41 = TL.Fma(TL.Load(p4 + (1 * w)), w1, c41);
                    if (TCols.Value > 2) c42 = TL.Fma(TL.Load(p4 + (2 * w)), w2, c42);
                    if (TCols.Value > 3) c43 = TL.Fma(TL.Load(p4 + (3 * w)), w3, c43);
                }

                if (TRows.Value > 5)
                {
                    float* p5 = a5 + offA;
                    c50 = TL.Fma(TL.Load(p5), w0, c50);
                    if (TCols.Value > 1) c51 = TL.Fma(TL.Load(p5 + (1 * w)), w1, c51);
                    if (TCols.Value > 2) c52 = TL.Fma(TL.Load(p5 + (2 * w)), w2, c52);
                    if (TCols.Value > 3) c53 = TL.Fma(TL.Load(p5 + (3 * w)), w3, c53);
                }

                offA += taps.InnerStrideA;
                pw += taps.InnerStrideB * ldw;
            }
        }

        GemmTile.StoreRow<TV, TL, TCols>(c, c00, c01, c02, c03, TCols.Value * w, relu);

        if (TRows.Value > 1)
        {
            GemmTile.StoreRow<TV, TL, TCols>(c + (1 * ldc), c10, c11, c12, c13, TCols.Value * w, relu);
        }

        if (TRows.Value > 2)
        {
            GemmTile.StoreRow<TV, TL, TCols>(c + (2 * ldc), c20, c21, c22, c23, TCols.Value * w, relu);
        }

        if (TRows.Value > 3)
        {
            GemmTile.StoreRow<TV, TL, TCols>(c + (3 * ldc), c30, c31, c32, c33, TCols.Value * w, relu);
        }

        if (TRows.Value > 4)
        {
            GemmTile.StoreRow<TV, TL, TCols>(c + (4 * ldc), c40, c41, c42, c43, TCols.Value * w, relu);
        }

        if (TRows.Value > 5)
        {
            GemmTile.StoreRow<TV, TL, TCols>(c + (5 * ldc), c50, c51, c52, c53, TCols.Value * w, relu);
        }
    }
}
