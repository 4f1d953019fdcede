using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace MobileOne.Kernels.Depthwise;

/// <summary>
/// The engine's depthwise convolution, any kernel size, stride, padding and dilation, over NHWC rows, vectorized
/// over channels: each output pixel is bias (or, accumulating, the value already there) plus the in-bounds taps,
/// added in tap order, then the fused ReLU if any. Computes all <see cref="DepthwiseTapWeights.PaddedChannels"/>
/// channels (padding gives 0, or leaves an accumulated value unchanged). Undilated 3x3 kernels at stride 1 or 2 (every
/// MobileOne depthwise layer) keep a channel vector's 9 taps in registers along the row and compute tiles of
/// neighbouring outputs that load each input column once for all of them, at stride 1 two output rows at a time
/// where the registers allow; 1x1 kernels are per-channel scales; other sizes loop over taps. Every path is one
/// generic method per lane width (<see cref="ILanes{TV}"/>), chosen once per call; the JIT specializes the tile
/// shapes (it replaced a generated, hand-unrolled AVX-512/AVX2 3x3 kernel, measured as fast; docs/engine.md).
/// </summary>
internal static unsafe class DepthwiseKernel
{
    public readonly record struct Geometry(int InH, int InW, int OutW, int KernelH, int KernelW, int StrideH, int StrideW, int PadH, int PadW, int DilationH, int DilationW);

    /// <summary>Output rows [oy0, oy0 + count) of one image; input and output strides are in floats per pixel.</summary>
    public static void Rows(Isa isa, float* input, nint ics, DepthwiseTapWeights w, in Geometry g, int oy0, int count, float* output, nint ocs, bool accumulate, bool relu)
    {
        // Vector blocks first (16 or 8 channels), then the channels that remain one at a time.
        int cs = w.PaddedChannels;
        int vectorEnd = isa == Isa.Avx512 ? cs / 16 * 16 : isa == Isa.Avx2 ? cs / 8 * 8 : 0;
        if (isa == Isa.Avx512)
        {
            Rows<Vector512<float>, Lanes512>(input, ics, w, g, oy0, count, output, ocs, accumulate, relu, 0, vectorEnd);
        }
        else if (isa == Isa.Avx2)
        {
            Rows<Vector256<float>, Lanes256>(input, ics, w, g, oy0, count, output, ocs, accumulate, relu, 0, vectorEnd);
        }

        if (vectorEnd < cs)
        {
            Rows<float, Lanes1>(input, ics, w, g, oy0, count, output, ocs, accumulate, relu, vectorEnd, cs);
        }
    }

    private static void Rows<TV, TL>(float* input, nint ics, DepthwiseTapWeights w, in Geometry g, int oy0, int count, float* output, nint ocs, bool accumulate, bool relu, int c0, int c1)
        where TV : struct
        where TL : struct, ILanes<TV>
    {
        bool is3x3 = g.KernelH == 3 && g.KernelW == 3 && g.DilationH == 1 && g.DilationW == 1;
        for (int oy = oy0; oy < oy0 + count; oy++)
        {
            float* orow = output + ((long)(oy - oy0) * g.OutW * ocs);
            int iyBase = (oy * g.StrideH) - g.PadH;
            if (is3x3 && g.StrideH == 1 && g.StrideW == 1 && TL.Count >= 16 && oy + 1 < oy0 + count)
            {
                // Two rows at a time where there are registers for both rows' tiles.
                float* r0 = RowOrNull(input, ics, g, iyBase), r1 = RowOrNull(input, ics, g, iyBase + 1);
                float* r2 = RowOrNull(input, ics, g, iyBase + 2), r3 = RowOrNull(input, ics, g, iyBase + 3);
                Row3x3<TV, TL>(r0, r1, r2, r3, ics, w, g, c0, c1, orow, orow + (g.OutW * ocs), ocs, accumulate, relu);

                oy++;
            }
            else if (is3x3 && g.StrideW is 1 or 2)
            {
                float* r0 = RowOrNull(input, ics, g, iyBase), r1 = RowOrNull(input, ics, g, iyBase + 1), r2 = RowOrNull(input, ics, g, iyBase + 2);
                Row3x3<TV, TL>(r0, r1, r2, null, ics, w, g, c0, c1, orow, null, ocs, accumulate, relu);
            }
            else if (g.KernelH == 1 && g.KernelW == 1)
            {
                float* row = RowOrNull(input, ics, g, iyBase);
                for (int c = c0; c < c1; c += TL.Count)
                {
                    Row1x1<TV, TL>(row, ics, w, g, c, orow, ocs, accumulate, relu);
                }
            }
            else
            {
                for (int c = c0; c < c1; c += TL.Count)
                {
                    RowAny<TV, TL>(input, ics, w, g, iyBase, c, orow, ocs, accumulate, relu);
                }
            }
        }
    }

    /// <summary>The input row <paramref name="iy"/>, or null above or below the image (its taps are skipped).</summary>
    private static float* RowOrNull(float* input, nint ics, in Geometry g, int iy) =>
        (uint)iy < (uint)g.InH ? input + ((long)iy * g.InW * ics) : null;

    /// <summary>
    /// One output row of a 3x3 kernel at stride 1 or 2, or (<paramref name="r3"/> and <paramref name="prow"/> not
    /// null, stride 1) two neighbouring rows, channels [c0, c1). Interior outputs, whose window lies inside the image,
    /// go in tiles (8 per row at 16 lanes, which has the registers for them, 4 below; then one tile of 4 and of 2),
    /// the edges and the last odd output one at a time (<see cref="Edges3x3"/>). Each part is a method of its own
    /// that loops over the channel vectors, so calls are per row, not per channel vector, and each keeps its taps
    /// and accumulators in registers (the JIT's inlining budget is per method). Every output's sum is the same
    /// chain: bias (or the accumulated value), then the taps in (ky, kx) order.
    /// </summary>
    private static void Row3x3<TV, TL>(float* r0, float* r1, float* r2, float* r3, nint ics, DepthwiseTapWeights w, in Geometry g, int c0, int c1, float* orow, float* prow, nint ocs, bool accumulate, bool relu)
        where TV : struct
        where TL : struct, ILanes<TV>
    {
        var k = new Window3x3(r0, r1, r2, r3, ics, w.Weights, w.PaddedChannels, w.Bias, ocs, accumulate, relu, c0, c1);
        int stride = g.StrideW, pad = g.PadW, inW = g.InW, outW = g.OutW;
        int lo = Math.Min(outW, (pad + stride - 1) / stride);
        int hi = Math.Max(lo, Math.Min(outW, inW - 3 + pad >= 0 ? ((inW - 3 + pad) / stride) + 1 : 0));
        int x = lo;
        for (int n = TL.Count >= 16 ? 8 : 4; n >= 2; n /= 2)
        {
            int tiles = n == 8 || (n == 4 && TL.Count < 16) ? (hi - x) / n : Math.Min(1, (hi - x) / n);
            if (tiles > 0)
            {
                nint at = (nint)((x * stride) - pad) * ics;
                float* o = orow + (x * ocs), p = prow == null ? null : prow + (x * ocs);
                if (prow != null)
                {
                    Tiles3x3<TV, TL, D1, D2>(n, k, at, o, p, tiles);
                }
                else if (stride == 1)
                {
                    Tiles3x3<TV, TL, D1, D1>(n, k, at, o, p, tiles);
                }
                else
                {
                    Tiles3x3<TV, TL, D2, D1>(n, k, at, o, p, tiles);
                }

                x += tiles * n;
            }
        }

        if (lo > 0 || x < outW)
        {
            Edges3x3<TV, TL>(k, stride, pad, inW, lo, x, outW, orow, prow);
        }
    }

    /// <summary>A tile count at a tile width of 8, 4 or 2 outputs as the type argument.</summary>
    private static void Tiles3x3<TV, TL, TS, TR>(int n, in Window3x3 k, nint at, float* o, float* p, int tiles)
        where TV : struct
        where TL : struct, ILanes<TV>
        where TS : struct, IDim
        where TR : struct, IDim
    {
        switch (n)
        {
            case 8: Tiles3x3<TV, TL, D8, TS, TR>(k, at, o, p, tiles); break;
            case 4: Tiles3x3<TV, TL, D4, TS, TR>(k, at, o, p, tiles); break;
            default: Tiles3x3<TV, TL, D2, TS, TR>(k, at, o, p, tiles); break;
        }
    }

    /// <summary>
    /// For each channel vector, <paramref name="tiles"/> side-by-side tiles of <typeparamref name="TN"/> outputs in
    /// <typeparamref name="TR"/> rows (2: the row at <paramref name="p0"/> too), stride <typeparamref name="TS"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void Tiles3x3<TV, TL, TN, TS, TR>(in Window3x3 k, nint at0, float* o0, float* p0, int tiles)
        where TV : struct
        where TL : struct, ILanes<TV>
        where TN : struct, IDim
        where TS : struct, IDim
        where TR : struct, IDim
    {
        nint cs = k.WeightStride, ics = k.InputStride, ocs = k.OutputStride;
        bool accumulate = k.Accumulate;

        // The fused ReLU as a lower bound on every store, -infinity without it: no branch per store.
        TV floor = k.Relu ? TL.Zero : TL.Splat(float.NegativeInfinity);
        nint step = TN.Value * TS.Value * ics, outStep = TN.Value * ocs;
        for (int c = k.C0; c < k.C1; c += TL.Count)
        {
            // The rows from this channel vector on (a missing row stays null: its taps are skipped).
            float* r0 = Offset(k.R0, c), r1 = Offset(k.R1, c), r2 = Offset(k.R2, c), r3 = Offset(k.R3, c);
            float* wp = k.Weights + c;
            TV w00 = TL.Load(wp), w01 = TL.Load(wp + cs), w02 = TL.Load(wp + (2 * cs));
            TV w10 = TL.Load(wp + (3 * cs)), w11 = TL.Load(wp + (4 * cs)), w12 = TL.Load(wp + (5 * cs));
            TV w20 = TL.Load(wp + (6 * cs)), w21 = TL.Load(wp + (7 * cs)), w22 = TL.Load(wp + (8 * cs));
            TV b = TL.Load(k.Bias + c);
            nint at = at0;
            float* o = o0 + c, p = p0 + c;
            for (int t = 0; t < tiles; t++, at += step, o += outStep, p += outStep)
            {
                if (TR.Value == 2)
                {
                    InteriorPair3x3<TV, TL, TN>(r0, r1, r2, r3, ics, at, w00, w01, w02, w10, w11, w12, w20, w21, w22, b, o, p, ocs, accumulate, floor);
                }
                else
                {
                    Interior3x3<TV, TL, TN, TS>(r0, r1, r2, ics, at, w00, w01, w02, w10, w11, w12, w20, w21, w22, b, o, ocs, accumulate, floor);
                }
            }
        }
    }

    /// <summary>
    /// For each channel vector, outputs [0, <paramref name="lo"/>) and [<paramref name="from"/>, outW) of the row
    /// (and of the row at <paramref name="prow"/>), one at a time with <see cref="Edge3x3"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void Edges3x3<TV, TL>(in Window3x3 k, int stride, int pad, int inW, int lo, int from, int outW, float* orow, float* prow)
        where TV : struct
        where TL : struct, ILanes<TV>
    {
        nint cs = k.WeightStride, ics = k.InputStride, ocs = k.OutputStride;
        bool accumulate = k.Accumulate;
        TV floor = k.Relu ? TL.Zero : TL.Splat(float.NegativeInfinity);
        for (int c = k.C0; c < k.C1; c += TL.Count)
        {
            float* r0 = Offset(k.R0, c), r1 = Offset(k.R1, c), r2 = Offset(k.R2, c), r3 = Offset(k.R3, c);
            float* wp = k.Weights + c;
            TV w00 = TL.Load(wp), w01 = TL.Load(wp + cs), w02 = TL.Load(wp + (2 * cs));
            TV w10 = TL.Load(wp + (3 * cs)), w11 = TL.Load(wp + (4 * cs)), w12 = TL.Load(wp + (5 * cs));
            TV w20 = TL.Load(wp + (6 * cs)), w21 = TL.Load(wp + (7 * cs)), w22 = TL.Load(wp + (8 * cs));
            TV b = TL.Load(k.Bias + c);
            for (int ox = 0; ox < outW; ox++)
            {
                if (ox == lo)
                {
                    ox = from;
                    if (ox >= outW)
                    {
                        break;
                    }
                }

                int ix = (ox * stride) - pad;
                Edge3x3<TV, TL>(r0, r1, r2, ics, ix, inW, w00, w01, w02, w10, w11, w12, w20, w21, w22, b, orow + (ox * ocs) + c, accumulate, floor);
                if (prow != null)
                {
                    Edge3x3<TV, TL>(r1, r2, r3, ics, ix, inW, w00, w01, w02, w10, w11, w12, w20, w21, w22, b, prow + (ox * ocs) + c, accumulate, floor);
                }
            }
        }
    }

    private static float* Offset(float* p, int c) => p == null ? null : p + c;

    /// <summary>
    /// One output, taps in the same order as a tile's; the tap columns outside the image (at an edge) are left out.
    /// Also takes the interior outputs short of a whole tile.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Edge3x3<TV, TL>(
        float* r0, float* r1, float* r2, nint ics, int ix, int inW, TV w00, TV w01, TV w02, TV w10, TV w11, TV w12, TV w20, TV w21, TV w22, TV bias, float* o, bool accumulate, TV floor)
        where TV : struct
        where TL : struct, ILanes<TV>
    {
        bool c0 = (uint)ix < (uint)inW, c1 = (uint)(ix + 1) < (uint)inW, c2 = (uint)(ix + 2) < (uint)inW;
        nint at = ix * ics;
        TV acc = accumulate ? TL.Load(o) : bias;
        if (r0 != null)
        {
            if (c0) acc = TL.Fma(TL.Load(r0 + at), w00, acc);
            if (c1) acc = TL.Fma(TL.Load(r0 + at + ics), w01, acc);
            if (c2) acc = TL.Fma(TL.Load(r0 + at + (2 * ics)), w02, acc);
        }

        if (r1 != null)
        {
            if (c0) acc = TL.Fma(TL.Load(r1 + at), w10, acc);
            if (c1) acc = TL.Fma(TL.Load(r1 + at + ics), w11, acc);
            if (c2) acc = TL.Fma(TL.Load(r1 + at + (2 * ics)), w12, acc);
        }

        if (r2 != null)
        {
            if (c0) acc = TL.Fma(TL.Load(r2 + at), w20, acc);
            if (c1) acc = TL.Fma(TL.Load(r2 + at + ics), w21, acc);
            if (c2) acc = TL.Fma(TL.Load(r2 + at + (2 * ics)), w22, acc);
        }

        TL.Store(o, TL.AtLeast(floor, acc));
    }

    /// <summary>What a 3x3 row's tiles and edge outputs share: the input rows (null outside the image), strides, packed taps, bias, epilogue, channel range.</summary>
    private readonly struct Window3x3(float* r0, float* r1, float* r2, float* r3, nint inputStride, float* weights, nint weightStride, float* bias, nint outputStride, bool accumulate, bool relu, int c0, int c1)
    {
        public readonly float* R0 = r0, R1 = r1, R2 = r2, R3 = r3, Weights = weights, Bias = bias;
        public readonly nint InputStride = inputStride, WeightStride = weightStride, OutputStride = outputStride;
        public readonly bool Accumulate = accumulate, Relu = relu;
        public readonly int C0 = c0, C1 = c1;
    }

    /// <summary>
    /// <typeparamref name="TN"/> neighbouring interior outputs (at most 8) of one row: each input column of a kernel
    /// row is loaded once and feeds every output whose window holds it, so each output still adds bias (or the
    /// accumulated value), then its taps in (ky, kx) order.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Interior3x3<TV, TL, TN, TS>(
        float* r0, float* r1, float* r2, nint ics, nint at, TV w00, TV w01, TV w02, TV w10, TV w11, TV w12, TV w20, TV w21, TV w22, TV bias, float* o, nint ocs, bool accumulate, TV floor)
        where TV : struct
        where TL : struct, ILanes<TV>
        where TN : struct, IDim
        where TS : struct, IDim
    {
        Start<TV, TL, TN>(o, ocs, accumulate, bias, out TV a0, out TV a1, out TV a2, out TV a3, out TV a4, out TV a5, out TV a6, out TV a7);
        if (r0 != null)
        {
            KernelRow<TV, TL, TN, TS>(r0 + at, ics, w00, w01, w02, ref a0, ref a1, ref a2, ref a3, ref a4, ref a5, ref a6, ref a7);
        }

        if (r1 != null)
        {
            KernelRow<TV, TL, TN, TS>(r1 + at, ics, w10, w11, w12, ref a0, ref a1, ref a2, ref a3, ref a4, ref a5, ref a6, ref a7);
        }

        if (r2 != null)
        {
            KernelRow<TV, TL, TN, TS>(r2 + at, ics, w20, w21, w22, ref a0, ref a1, ref a2, ref a3, ref a4, ref a5, ref a6, ref a7);
        }

        Finish<TV, TL, TN>(o, ocs, floor, a0, a1, a2, a3, a4, a5, a6, a7);
    }

    /// <summary>
    /// Two output rows of stride-1 interior outputs, <typeparamref name="TN"/> each: input rows r1 and r2 serve both,
    /// so each of their columns is loaded once for two rows (4 input rows read for 2 output rows instead of 6).
    /// Each output's sum is the same chain as in <see cref="Interior3x3"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void InteriorPair3x3<TV, TL, TN>(
        float* r0, float* r1, float* r2, float* r3, nint ics, nint at, TV w00, TV w01, TV w02, TV w10, TV w11, TV w12, TV w20, TV w21, TV w22, TV bias, float* o, float* p, nint ocs, bool accumulate, TV floor)
        where TV : struct
        where TL : struct, ILanes<TV>
        where TN : struct, IDim
    {
        Start<TV, TL, TN>(o, ocs, accumulate, bias, out TV a0, out TV a1, out TV a2, out TV a3, out TV a4, out TV a5, out TV a6, out TV a7);
        Start<TV, TL, TN>(p, ocs, accumulate, bias, out TV b0, out TV b1, out TV b2, out TV b3, out TV b4, out TV b5, out TV b6, out TV b7);
        if (r0 != null)
        {
            KernelRow<TV, TL, TN, D1>(r0 + at, ics, w00, w01, w02, ref a0, ref a1, ref a2, ref a3, ref a4, ref a5, ref a6, ref a7);
        }

        if (r1 != null)
        {
            KernelRowPair<TV, TL, TN>(r1 + at, ics, w10, w11, w12, ref a0, ref a1, ref a2, ref a3, ref a4, ref a5, ref a6, ref a7, w00, w01, w02, ref b0, ref b1, ref b2, ref b3, ref b4, ref b5, ref b6, ref b7);
        }

        if (r2 != null)
        {
            KernelRowPair<TV, TL, TN>(r2 + at, ics, w20, w21, w22, ref a0, ref a1, ref a2, ref a3, ref a4, ref a5, ref a6, ref a7, w10, w11, w12, ref b0, ref b1, ref b2, ref b3, ref b4, ref b5, ref b6, ref b7);
        }

        if (r3 != null)
        {
            KernelRow<TV, TL, TN, D1>(r3 + at, ics, w20, w21, w22, ref b0, ref b1, ref b2, ref b3, ref b4, ref b5, ref b6, ref b7);
        }

        Finish<TV, TL, TN>(o, ocs, floor, a0, a1, a2, a3, a4, a5, a6, a7);
        Finish<TV, TL, TN>(p, ocs, floor, b0, b1, b2, b3, b4, b5, b6, b7);
    }

    /// <summary>The starting values of a tile: the outputs already there when accumulating, else the bias.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Start<TV, TL, TN>(float* o, nint ocs, bool accumulate, TV bias, out TV a0, out TV a1, out TV a2, out TV a3, out TV a4, out TV a5, out TV a6, out TV a7)
        where TV : struct
        where TL : struct, ILanes<TV>
        where TN : struct, IDim
    {
        a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = bias;
        if (accumulate)
        {
            a0 = TL.Load(o);
            if (TN.Value > 1) a1 = TL.Load(o + ocs);
            if (TN.Value > 2) a2 = TL.Load(o + (2 * ocs));
            if (TN.Value > 3) a3 = TL.Load(o + (3 * ocs));
            if (TN.Value > 4) a4 = TL.Load(o + (4 * ocs));
            if (TN.Value > 5) a5 = TL.Load(o + (5 * ocs));
            if (TN.Value > 6) a6 = TL.Load(o + (6 * ocs));
            if (TN.Value > 7) a7 = TL.Load(o + (7 * ocs));
        }
    }

    /// <summary>Stores a tile's <typeparamref name="TN"/> outputs, each at least <paramref name="floor"/> (0 for a fused ReLU).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Finish<TV, TL, TN>(float* o, nint ocs, TV floor, TV a0, TV a1, TV a2, TV a3, TV a4, TV a5, TV a6, TV a7)
        where TV : struct
        where TL : struct, ILanes<TV>
        where TN : struct, IDim
    {
        TL.Store(o, TL.AtLeast(floor, a0));
        if (TN.Value > 1) TL.Store(o + ocs, TL.AtLeast(floor, a1));
        if (TN.Value > 2) TL.Store(o + (2 * ocs), TL.AtLeast(floor, a2));
        if (TN.Value > 3) TL.Store(o + (3 * ocs), TL.AtLeast(floor, a3));
        if (TN.Value > 4) TL.Store(o + (4 * ocs), TL.AtLeast(floor, a4));
        if (TN.Value > 5) TL.Store(o + (5 * ocs), TL.AtLeast(floor, a5));
        if (TN.Value > 6) TL.Store(o + (6 * ocs), TL.AtLeast(floor, a6));
        if (TN.Value > 7) TL.Store(o + (7 * ocs), TL.AtLeast(floor, a7));
    }

    /// <summary>
    /// One stride-1 input row feeding two output rows: taps t0..t2 into a0..a7 (the row above's outputs) and u0..u2
    /// into b0..b7, each column loaded once.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void KernelRowPair<TV, TL, TN>(
        float* s, nint ics, TV t0, TV t1, TV t2, ref TV a0, ref TV a1, ref TV a2, ref TV a3, ref TV a4, ref TV a5, ref TV a6, ref TV a7,
        TV u0, TV u1, TV u2, ref TV b0, ref TV b1, ref TV b2, ref TV b3, ref TV b4, ref TV b5, ref TV b6, ref TV b7)
        where TV : struct
        where TL : struct, ILanes<TV>
        where TN : struct, IDim
    {
        int n = TN.Value;
        TV v0 = TL.Load(s);
        a0 = TL.Fma(v0, t0, a0);
        b0 = TL.Fma(v0, u0, b0);

        TV v1 = TL.Load(s + (1 * ics));
        a0 = TL.Fma(v1, t1, a0);
        b0 = TL.Fma(v1, u1, b0);
        if (n > 1) a1 = TL.Fma(v1, t0, a1);
        if (n > 1) b1 = TL.Fma(v1, u0, b1);

        TV v2 = TL.Load(s + (2 * ics));
        a0 = TL.Fma(v2, t2, a0);
        b0 = TL.Fma(v2, u2, b0);
        if (n > 1) a1 = TL.Fma(v2, t1, a1);
        if (n > 1) b1 = TL.Fma(v2, u1, b1);
        if (n > 2) a2 = TL.Fma(v2, t0, a2);
        if (n > 2) b2 = TL.Fma(v2, u0, b2);

        if (n > 1)
        {
            TV v3 = TL.Load(s + (3 * ics));
            a1 = TL.Fma(v3, t2, a1);
            b1 = TL.Fma(v3, u2, b1);
            if (n > 2) a2 = TL.Fma(v3, t1, a2);
            if (n > 2) b2 = TL.Fma(v3, u1, b2);
            if (n > 3) a3 = TL.Fma(v3, t0, a3);
            if (n > 3) b3 = TL.Fma(v3, u0, b3);
        }

        if (n > 2)
        {
            TV v4 = TL.Load(s + (4 * ics));
            a2 = TL.Fma(v4, t2, a2);
            b2 = TL.Fma(v4, u2, b2);
            if (n > 3) a3 = TL.Fma(v4, t1, a3);
            if (n > 3) b3 = TL.Fma(v4, u1, b3);
            if (n > 4) a4 = TL.Fma(v4, t0, a4);
            if (n > 4) b4 = TL.Fma(v4, u0, b4);
        }

        if (n > 3)
        {
            TV v5 = TL.Load(s + (5 * ics));
            a3 = TL.Fma(v5, t2, a3);
            b3 = TL.Fma(v5, u2, b3);
            if (n > 4) a4 = TL.Fma(v5, t1, a4);
            if (n > 4) b4 = TL.Fma(v5, u1, b4);
            if (n > 5) a5 = TL.Fma(v5, t0, a5);
            if (n > 5) b5 = TL.Fma(v5, u0, b5);
        }

        if (n > 4)
        {
            TV v6 = TL.Load(s + (6 * ics));
            a4 = TL.Fma(v6, t2, a4);
            b4 = TL.Fma(v6, u2, b4);
            if (n > 5) a5 = TL.Fma(v6, t1, a5);
            if (n > 5) b5 = TL.Fma(v6, u1, b5);
            if (n > 6) a6 = TL.Fma(v6, t0, a6);
            if (n > 6) b6 = TL.Fma(v6, u0, b6);
        }

        if (n > 5)
        {
            TV v7 = TL.Load(s + (7 * ics));
            a5 = TL.Fma(v7, t2, a5);
            b5 = TL.Fma(v7, u2, b5);
            if (n > 6) a6 = TL.Fma(v7, t1, a6);
            if (n > 6) b6 = TL.Fma(v7, u1, b6);
            if (n > 7) a7 = TL.Fma(v7, t0, a7);
            if (n > 7) b7 = TL.Fma(v7, u0, b7);
        }

        if (n > 6)
        {
            TV v8 = TL.Load(s + (8 * ics));
            a6 = TL.Fma(v8, t2, a6);
            b6 = TL.Fma(v8, u2, b6);
            if (n > 7) a7 = TL.Fma(v8, t1, a7);
            if (n > 7) b7 = TL.Fma(v8, u1, b7);
        }

        if (n > 7)
        {
            TV v9 = TL.Load(s + (9 * ics));
            a7 = TL.Fma(v9, t2, a7);
            b7 = TL.Fma(v9, u2, b7);
        }
    }

    /// <summary>
    /// One kernel row (taps t0, t1, t2) of up to 8 outputs spaced <typeparamref name="TS"/> columns apart (stride 1
    /// or 2). Column j feeds output i with tap j - stride * i when that is 0, 1 or 2; columns go left to right, so
    /// every output takes its taps in kx order.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void KernelRow<TV, TL, TN, TS>(float* s, nint ics, TV t0, TV t1, TV t2, ref TV a0, ref TV a1, ref TV a2, ref TV a3, ref TV a4, ref TV a5, ref TV a6, ref TV a7)
        where TV : struct
        where TL : struct, ILanes<TV>
        where TN : struct, IDim
        where TS : struct, IDim
    {
        int n = TN.Value;
        if (TS.Value == 1)
        {
            TV v = TL.Load(s);
            a0 = TL.Fma(v, t0, a0);
            v = TL.Load(s + ics);
            a0 = TL.Fma(v, t1, a0);
            if (n > 1) a1 = TL.Fma(v, t0, a1);
            v = TL.Load(s + (2 * ics));
            a0 = TL.Fma(v, t2, a0);
            if (n > 1) a1 = TL.Fma(v, t1, a1);
            if (n > 2) a2 = TL.Fma(v, t0, a2);
            if (n > 1)
            {
                v = TL.Load(s + (3 * ics));
                a1 = TL.Fma(v, t2, a1);
                if (n > 2) a2 = TL.Fma(v, t1, a2);
                if (n > 3) a3 = TL.Fma(v, t0, a3);
            }

            if (n > 2)
            {
                v = TL.Load(s + (4 * ics));
                a2 = TL.Fma(v, t2, a2);
                if (n > 3) a3 = TL.Fma(v, t1, a3);
                if (n > 4) a4 = TL.Fma(v, t0, a4);
            }

            if (n > 3)
            {
                v = TL.Load(s + (5 * ics));
                a3 = TL.Fma(v, t2, a3);
                if (n > 4) a4 = TL.Fma(v, t1, a4);
                if (n > 5) a5 = TL.Fma(v, t0, a5);
            }

            if (n > 4)
            {
                v = TL.Load(s + (6 * ics));
                a4 = TL.Fma(v, t2, a4);
                if (n > 5) a5 = TL.Fma(v, t1, a5);
                if (n > 6) a6 = TL.Fma(v, t0, a6);
            }

            if (n > 5)
            {
                v = TL.Load(s + (7 * ics));
                a5 = TL.Fma(v, t2, a5);
                if (n > 6) a6 = TL.Fma(v, t1, a6);
                if (n > 7) a7 = TL.Fma(v, t0, a7);
            }

            if (n > 6)
            {
                v = TL.Load(s + (8 * ics));
                a6 = TL.Fma(v, t2, a6);
                if (n > 7) a7 = TL.Fma(v, t1, a7);
            }

            if (n > 7)
            {
                a7 = TL.Fma(TL.Load(s + (9 * ics)), t2, a7);
            }
        }
        else
        {
            // Stride 2: output i reads columns 2i, 2i + 1 and 2i + 2, so an even column ends one output and starts the next.
            TV v = TL.Load(s);
            a0 = TL.Fma(v, t0, a0);

            v = TL.Load(s + (1 * ics));
            a0 = TL.Fma(v, t1, a0);

            v = TL.Load(s + (2 * ics));
            a0 = TL.Fma(v, t2, a0);
            if (n > 1) a1 = TL.Fma(v, t0, a1);

            if (n > 1)
            {
                v = TL.Load(s + (3 * ics));
                a1 = TL.Fma(v, t1, a1);
                v = TL.Load(s + (4 * ics));
                a1 = TL.Fma(v, t2, a1);
                if (n > 2) a2 = TL.Fma(v, t0, a2);
            }

            if (n > 2)
            {
                v = TL.Load(s + (5 * ics));
                a2 = TL.Fma(v, t1, a2);
                v = TL.Load(s + (6 * ics));
                a2 = TL.Fma(v, t2, a2);
                if (n > 3) a3 = TL.Fma(v, t0, a3);
            }

            if (n > 3)
            {
                v = TL.Load(s + (7 * ics));
                a3 = TL.Fma(v, t1, a3);
                v = TL.Load(s + (8 * ics));
                a3 = TL.Fma(v, t2, a3);
                if (n > 4) a4 = TL.Fma(v, t0, a4);
            }

            if (n > 4)
            {
                v = TL.Load(s + (9 * ics));
                a4 = TL.Fma(v, t1, a4);
                v = TL.Load(s + (10 * ics));
                a4 = TL.Fma(v, t2, a4);
                if (n > 5) a5 = TL.Fma(v, t0, a5);
            }

            if (n > 5)
            {
                v = TL.Load(s + (11 * ics));
                a5 = TL.Fma(v, t1, a5);
                v = TL.Load(s + (12 * ics));
                a5 = TL.Fma(v, t2, a5);
                if (n > 6) a6 = TL.Fma(v, t0, a6);
            }

            if (n > 6)
            {
                v = TL.Load(s + (13 * ics));
                a6 = TL.Fma(v, t1, a6);
                v = TL.Load(s + (14 * ics));
                a6 = TL.Fma(v, t2, a6);
                if (n > 7) a7 = TL.Fma(v, t0, a7);
            }

            if (n > 7)
            {
                v = TL.Load(s + (15 * ics));
                a7 = TL.Fma(v, t1, a7);
                v = TL.Load(s + (16 * ics));
                a7 = TL.Fma(v, t2, a7);
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store<TV, TL>(float* o, TV value, bool relu)
        where TV : struct
        where TL : struct, ILanes<TV>
    {
        TL.Store(o, relu ? TL.Relu(value) : value);
    }

    /// <summary>One output row of a 1x1 kernel (a per-channel scale, e.g. a block's scale branch or its BatchNorm skip).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Row1x1<TV, TL>(float* row, nint ics, DepthwiseTapWeights w, in Geometry g, int c, float* orow, nint ocs, bool accumulate, bool relu)
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

            Store<TV, TL>(o, acc, relu);
        }
    }

    /// <summary>One output row of any kernel: taps looped in (ky, kx) order, out-of-image taps skipped.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void RowAny<TV, TL>(float* input, nint ics, DepthwiseTapWeights w, in Geometry g, int iyBase, int c, float* orow, nint ocs, bool accumulate, bool relu)
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

            Store<TV, TL>(o, acc, relu);
        }
    }
}
