using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace MobileOne.Kernels.Engine;

/// <summary>
/// Depthwise convolution of any kernel size, stride, padding and dilation over NHWC rows, vectorized over
/// channels: each output pixel is bias (or, accumulating, the value already there) plus the in-bounds taps,
/// added in tap order. Computes all <see cref="DepthwiseTapWeights.PaddedChannels"/> channels (padding gives 0,
/// or leaves an accumulated value unchanged). The engine's unrolled 3x3 kernel (<see cref="Depthwise3x3"/>) covers
/// the common fused case; this one covers the rest, and the branches that add into a block's sum. Undilated 3x3
/// and 1x1 kernels keep a channel block's taps in registers for a whole output row; other sizes loop over taps.
/// Every path is one generic method per lane width (<see cref="ILanes{TV}"/>), chosen once per call.
/// </summary>
internal static unsafe class DepthwiseAnyKernel
{
    public readonly record struct Geometry(int InH, int InW, int OutW, int KernelH, int KernelW, int StrideH, int StrideW, int PadH, int PadW, int DilationH, int DilationW);

    /// <summary>Output rows [oy0, oy0 + count) of one image; input and output strides are in floats per pixel.</summary>
    public static void Rows(Isa isa, float* input, nint ics, DepthwiseTapWeights w, in Geometry g, int oy0, int count, float* output, nint ocs, bool accumulate)
    {
        // Vector blocks first (16 or 8 channels), then the channels that remain one at a time.
        int cs = w.PaddedChannels;
        int vectorEnd = isa == Isa.Avx512 ? cs / 16 * 16 : isa == Isa.Avx2 ? cs / 8 * 8 : 0;
        if (isa == Isa.Avx512)
        {
            Rows<Vector512<float>, Lanes512>(input, ics, w, g, oy0, count, output, ocs, accumulate, 0, vectorEnd);
        }
        else if (isa == Isa.Avx2)
        {
            Rows<Vector256<float>, Lanes256>(input, ics, w, g, oy0, count, output, ocs, accumulate, 0, vectorEnd);
        }

        if (vectorEnd < cs)
        {
            Rows<float, Lanes1>(input, ics, w, g, oy0, count, output, ocs, accumulate, vectorEnd, cs);
        }
    }

    private static void Rows<TV, TL>(float* input, nint ics, DepthwiseTapWeights w, in Geometry g, int oy0, int count, float* output, nint ocs, bool accumulate, int c0, int c1)
        where TV : struct
        where TL : struct, ILanes<TV>
    {
        for (int oy = oy0; oy < oy0 + count; oy++)
        {
            float* orow = output + ((long)(oy - oy0) * g.OutW * ocs);
            int iyBase = (oy * g.StrideH) - g.PadH;
            if (g.KernelH == 3 && g.KernelW == 3 && g.DilationH == 1 && g.DilationW == 1)
            {
                float* r0 = RowOrNull(input, ics, g, iyBase), r1 = RowOrNull(input, ics, g, iyBase + 1), r2 = RowOrNull(input, ics, g, iyBase + 2);
                for (int c = c0; c < c1; c += TL.Count)
                {
                    Row3x3<TV, TL>(r0, r1, r2, ics, w, g, c, orow, ocs, accumulate);
                }
            }
            else if (g.KernelH == 1 && g.KernelW == 1)
            {
                float* row = RowOrNull(input, ics, g, iyBase);
                for (int c = c0; c < c1; c += TL.Count)
                {
                    Row1x1<TV, TL>(row, ics, w, g, c, orow, ocs, accumulate);
                }
            }
            else
            {
                for (int c = c0; c < c1; c += TL.Count)
                {
                    RowAny<TV, TL>(input, ics, w, g, iyBase, c, orow, ocs, accumulate);
                }
            }
        }
    }

    /// <summary>The input row <paramref name="iy"/>, or null above or below the image (its taps are skipped).</summary>
    private static float* RowOrNull(float* input, nint ics, in Geometry g, int iy) =>
        (uint)iy < (uint)g.InH ? input + ((long)iy * g.InW * ics) : null;

    /// <summary>One output row of channels [c, c + lanes) of a 3x3 kernel: 9 tap vectors in registers, taps in (ky, kx) order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Row3x3<TV, TL>(float* r0, float* r1, float* r2, nint ics, DepthwiseTapWeights w, in Geometry g, int c, float* orow, nint ocs, bool accumulate)
        where TV : struct
        where TL : struct, ILanes<TV>
    {
        nint cs = w.PaddedChannels;
        float* wp = w.Weights + c;
        TV w00 = TL.Load(wp), w01 = TL.Load(wp + cs), w02 = TL.Load(wp + (2 * cs));
        TV w10 = TL.Load(wp + (3 * cs)), w11 = TL.Load(wp + (4 * cs)), w12 = TL.Load(wp + (5 * cs));
        TV w20 = TL.Load(wp + (6 * cs)), w21 = TL.Load(wp + (7 * cs)), w22 = TL.Load(wp + (8 * cs));
        TV bias = TL.Load(w.Bias + c);
        for (int ox = 0; ox < g.OutW; ox++)
        {
            int ix = (ox * g.StrideW) - g.PadW;
            float* o = orow + (ox * ocs) + c;
            TV acc = accumulate ? TL.Load(o) : bias;
            if (ix >= 0 && ix + 2 < g.InW)
            {
                nint at = (ix * ics) + c;
                if (r0 != null)
                {
                    acc = TL.Fma(TL.Load(r0 + at), w00, acc);
                    acc = TL.Fma(TL.Load(r0 + at + ics), w01, acc);
                    acc = TL.Fma(TL.Load(r0 + at + (2 * ics)), w02, acc);
                }

                if (r1 != null)
                {
                    acc = TL.Fma(TL.Load(r1 + at), w10, acc);
                    acc = TL.Fma(TL.Load(r1 + at + ics), w11, acc);
                    acc = TL.Fma(TL.Load(r1 + at + (2 * ics)), w12, acc);
                }

                if (r2 != null)
                {
                    acc = TL.Fma(TL.Load(r2 + at), w20, acc);
                    acc = TL.Fma(TL.Load(r2 + at + ics), w21, acc);
                    acc = TL.Fma(TL.Load(r2 + at + (2 * ics)), w22, acc);
                }
            }
            else
            {
                // An edge pixel: the same taps in the same order, skipping the columns outside the image.
                bool k0 = (uint)ix < (uint)g.InW, k1 = (uint)(ix + 1) < (uint)g.InW, k2 = (uint)(ix + 2) < (uint)g.InW;
                nint at = (ix * ics) + c;
                if (r0 != null)
                {
                    acc = k0 ? TL.Fma(TL.Load(r0 + at), w00, acc) : acc;
                    acc = k1 ? TL.Fma(TL.Load(r0 + at + ics), w01, acc) : acc;
                    acc = k2 ? TL.Fma(TL.Load(r0 + at + (2 * ics)), w02, acc) : acc;
                }

                if (r1 != null)
                {
                    acc = k0 ? TL.Fma(TL.Load(r1 + at), w10, acc) : acc;
                    acc = k1 ? TL.Fma(TL.Load(r1 + at + ics), w11, acc) : acc;
                    acc = k2 ? TL.Fma(TL.Load(r1 + at + (2 * ics)), w12, acc) : acc;
                }

                if (r2 != null)
                {
                    acc = k0 ? TL.Fma(TL.Load(r2 + at), w20, acc) : acc;
                    acc = k1 ? TL.Fma(TL.Load(r2 + at + ics), w21, acc) : acc;
                    acc = k2 ? TL.Fma(TL.Load(r2 + at + (2 * ics)), w22, acc) : acc;
                }
            }

            TL.Store(o, acc);
        }
    }

    /// <summary>One output row of a 1x1 kernel (a per-channel scale, e.g. a block's scale branch or its BatchNorm skip).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Row1x1<TV, TL>(float* row, nint ics, DepthwiseTapWeights w, in Geometry g, int c, float* orow, nint ocs, bool accumulate)
        where TV : struct
        where TL : struct, ILanes<TV>
    {
        TV scale = TL.Load(w.Weights + c), bias = TL.Load(w.Bias + c);
        for (int ox = 0; ox < g.OutW; ox++)
        {
            int ix = (ox * g.StrideW) - g.PadW;
            float* o = orow + (ox * ocs) + c;
            TV acc = accumulate ? TL.Load(o) : bias;
            if (row != null && (uint)ix < (uint)g.InW)
            {
                acc = TL.Fma(TL.Load(row + (ix * ics) + c), scale, acc);
            }

            TL.Store(o, acc);
        }
    }

    /// <summary>One output row of any kernel: taps looped in (ky, kx) order, out-of-image taps skipped.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void RowAny<TV, TL>(float* input, nint ics, DepthwiseTapWeights w, in Geometry g, int iyBase, int c, float* orow, nint ocs, bool accumulate)
        where TV : struct
        where TL : struct, ILanes<TV>
    {
        nint cs = w.PaddedChannels;
        TV bias = TL.Load(w.Bias + c);
        for (int ox = 0; ox < g.OutW; ox++)
        {
            int ixBase = (ox * g.StrideW) - g.PadW;
            float* o = orow + (ox * ocs) + c;
            TV acc = accumulate ? TL.Load(o) : bias;
            for (int ky = 0; ky < g.KernelH; ky++)
            {
                int iy = iyBase + (ky * g.DilationH);
                if ((uint)iy >= (uint)g.InH)
                {
                    continue;
                }

                float* row = input + ((long)iy * g.InW * ics) + c;
                for (int kx = 0; kx < g.KernelW; kx++)
                {
                    int ix = ixBase + (kx * g.DilationW);
                    if ((uint)ix < (uint)g.InW)
                    {
                        acc = TL.Fma(TL.Load(row + (ix * ics)), TL.Load(w.Weights + ((((ky * g.KernelW) + kx) * cs) + c)), acc);
                    }
                }
            }

            TL.Store(o, acc);
        }
    }
}
