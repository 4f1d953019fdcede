using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace MobileOne.Kernels.Depthwise;

/// <summary>
/// Flat multi-tap loops behind the direct depthwise kernels. A padded plane stored with row stride rs turns a
/// 3x3 window into nine fixed offsets, so a whole plane is one loop over i with dst[i] = sum_t w[t] * tap_t[i]
/// (forward and input gradient) or sum_t += g[i] * tap_t[i] (weight gradient), without per-row edge cases.
/// Each loop is one body over <see cref="ILanes{TV}"/> that <see cref="Lanes.Run{TLoop}(ref TLoop, int)"/> runs at every width in turn.
/// </summary>
internal static unsafe class TapKernels
{
    /// <summary>The centre tap alone (a 1x1 kernel): dst[i] = (accumulate ? dst[i] : 0) + w * tap[i], for i in [0, length).</summary>
    private static void Scale(float* tap, float w, float* dst, int length, bool accumulate)
    {
        var scale = new ScaleLoop(tap, w, dst, accumulate);
        Lanes.Run(ref scale, length);
    }

    /// <summary>The centre tap alone: sum = sum over i of g[i] * tap[i] (each width's partial sum added in a fixed order).</summary>
    private static void Dot(float* g, float* tap, int length, float* sum)
    {
        *sum = 0f;
        var dot1 = new Dot1Loop(g, tap, sum);
        Lanes.Run(ref dot1, length);
    }

    /// <summary>
    /// The four parity planes of a stride-2, 3x3/pad-1 depthwise input gradient from one output gradient plane set g
    /// stored with row stride <paramref name="rowStride"/> (a zero column after each row, a zero row after each image).
    /// Input pixel (2r + a, 2s + b) receives only the taps whose parity matches: ee (even row, even column) w11 g[r, s];
    /// eo w10 g[r, s + 1] + w12 g[r, s]; oe w01 g[r + 1, s] + w21 g[r, s]; oo w00 g[r + 1, s + 1] + w02 g[r + 1, s] +
    /// w20 g[r, s + 1] + w22 g[r, s]: the nine multiply-adds of four input pixels, where correlating a zero-upsampled g
    /// spends nine on each. Every plane is written (accumulate false) or added to, for i in [0, length).
    /// </summary>
    public static void ParityGradient(float* g, int rowStride, float* w, float* ee, float* eo, float* oe, float* oo, int length, bool accumulate)
    {
        var loop = new ParityGradientLoop(g, rowStride, w, ee, eo, oe, oo, accumulate);
        Lanes.Run(ref loop, length);
    }

    /// <summary>The 1x1 (pad 0) branch of a stride-2 depthwise input gradient: it reaches even rows and columns only, ee[i] (+)= w * g[i].</summary>
    public static void ParityScale(float* g, float w, float* ee, int length, bool accumulate) => Scale(g, w, ee, length, accumulate);

    private readonly struct ParityGradientLoop(float* g, int rs, float* w, float* ee, float* eo, float* oe, float* oo, bool accumulate) : IWidthLoop
    {
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public int Run<TV, TL>(int i, int n)
            where TV : struct
            where TL : struct, ILanes<TV>
        {
            TV w00 = TL.Splat(w[0]), w01 = TL.Splat(w[1]), w02 = TL.Splat(w[2]), w10 = TL.Splat(w[3]), w11 = TL.Splat(w[4]);
            TV w12 = TL.Splat(w[5]), w20 = TL.Splat(w[6]), w21 = TL.Splat(w[7]), w22 = TL.Splat(w[8]);
            float* below = g + rs;
            int step = TL.Count;
            for (; i + step <= n; i += step)
            {
                TV g00 = TL.Load(g + i), g01 = TL.Load(g + i + 1), g10 = TL.Load(below + i), g11 = TL.Load(below + i + 1);
                TV a = accumulate ? TL.Load(ee + i) : TL.Zero;
                TV b = accumulate ? TL.Load(eo + i) : TL.Zero;
                TV c = accumulate ? TL.Load(oe + i) : TL.Zero;
                TV d = accumulate ? TL.Load(oo + i) : TL.Zero;
                TL.Store(ee + i, TL.Fma(w11, g00, a));
                TL.Store(eo + i, TL.Fma(w10, g01, TL.Fma(w12, g00, b)));
                TL.Store(oe + i, TL.Fma(w01, g10, TL.Fma(w21, g00, c)));
                TL.Store(oo + i, TL.Fma(w00, g11, TL.Fma(w02, g10, TL.Fma(w20, g01, TL.Fma(w22, g00, d)))));
            }

            return i;
        }
    }

    private readonly struct ScaleLoop(float* t0, float w, float* dst, bool accumulate) : IWidthLoop
    {
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public int Run<TV, TL>(int i, int n)
            where TV : struct
            where TL : struct, ILanes<TV>
        {
            TV w0 = TL.Splat(w);
            int step = TL.Count;
            for (; i + step <= n; i += step)
            {
                TV s = accumulate ? TL.Load(dst + i) : TL.Zero;
                TL.Store(dst + i, TL.Fma(w0, TL.Load(t0 + i), s));
            }

            return i;
        }
    }

    private readonly struct Dot1Loop(float* g, float* t0, float* sums) : IWidthLoop
    {
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public int Run<TV, TL>(int i, int n)
            where TV : struct
            where TL : struct, ILanes<TV>
        {
            int step = TL.Count;
            TV s0 = TL.Zero;
            for (; i + step <= n; i += step)
            {
                s0 = TL.Fma(TL.Load(g + i), TL.Load(t0 + i), s0);
            }

            sums[0] += TL.Sum(s0);
            return i;
        }
    }

    /// <summary>
    /// dst[i] = (accumulate ? dst[i] : 0) + sum over taps of w[t] * taps[t][i], i in [0, length), for a 3x3 window over
    /// planes stored without column padding: the left taps (0, 3, 6) are multiplied by <paramref name="left"/>[i] and
    /// the right taps (2, 5, 8) by <paramref name="right"/>[i] (0 at the plane's first / last column, else 1; null: all
    /// 1). A 1-tap (centre) window needs no masks.
    /// </summary>
    public static void CorrelateMasked(float** taps, float* w, int tapCount, float* left, float* right, float* dst, int length, bool accumulate)
    {
        if (tapCount == 1)
        {
            Scale(taps[0], w[0], dst, length, accumulate);
            return;
        }

        var correlateMasked = new CorrelateMaskedLoop(taps, w, left, right, dst, accumulate);
        Lanes.Run(ref correlateMasked, length);
    }

    /// <summary>sums[t] = sum over i of g[i] * taps[t][i], the left and right taps masked as in <see cref="CorrelateMasked"/>.</summary>
    public static void DotMasked(float* g, float** taps, int tapCount, float* left, float* right, int length, float* sums)
    {
        if (tapCount == 1)
        {
            Dot(g, taps[0], length, sums);
            return;
        }

        for (int t = 0; t < 9; t++)
        {
            sums[t] = 0f;
        }

        var dotMasked = new DotMaskedLoop(g, taps, left, right, sums);
        Lanes.Run(ref dotMasked, length);
    }

    private readonly struct CorrelateMaskedLoop(float** taps, float* w, float* left, float* right, float* dst, bool accumulate) : IWidthLoop
    {
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public int Run<TV, TL>(int i, int n)
            where TV : struct
            where TL : struct, ILanes<TV>
        {
            float* t0 = taps[0], t1 = taps[1], t2 = taps[2], t3 = taps[3], t4 = taps[4], t5 = taps[5], t6 = taps[6], t7 = taps[7], t8 = taps[8];
            TV w0 = TL.Splat(w[0]), w1 = TL.Splat(w[1]), w2 = TL.Splat(w[2]), w3 = TL.Splat(w[3]), w4 = TL.Splat(w[4]);
            TV w5 = TL.Splat(w[5]), w6 = TL.Splat(w[6]), w7 = TL.Splat(w[7]), w8 = TL.Splat(w[8]);
            int step = TL.Count;
            for (; i + step <= n; i += step)
            {
                TV c = accumulate ? TL.Load(dst + i) : TL.Zero;
                c = TL.Fma(w1, TL.Load(t1 + i), c);
                c = TL.Fma(w4, TL.Load(t4 + i), c);
                c = TL.Fma(w7, TL.Load(t7 + i), c);
                TV l = TL.Multiply(w0, TL.Load(t0 + i));
                l = TL.Fma(w3, TL.Load(t3 + i), l);
                l = TL.Fma(w6, TL.Load(t6 + i), l);
                TV r = TL.Multiply(w2, TL.Load(t2 + i));
                r = TL.Fma(w5, TL.Load(t5 + i), r);
                r = TL.Fma(w8, TL.Load(t8 + i), r);
                c = TL.Fma(TL.Load(left + i), l, c);
                c = right is null ? TL.Add(c, r) : TL.Fma(TL.Load(right + i), r, c);
                TL.Store(dst + i, c);
            }

            return i;
        }
    }

    private readonly struct DotMaskedLoop(float* g, float** taps, float* left, float* right, float* sums) : IWidthLoop
    {
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public int Run<TV, TL>(int i, int n)
            where TV : struct
            where TL : struct, ILanes<TV>
        {
            int step = TL.Count;
            if (i + step > n)
            {
                return i;
            }

            float* t0 = taps[0], t1 = taps[1], t2 = taps[2], t3 = taps[3], t4 = taps[4], t5 = taps[5], t6 = taps[6], t7 = taps[7], t8 = taps[8];
            TV s0 = TL.Zero, s1 = TL.Zero, s2 = TL.Zero, s3 = TL.Zero, s4 = TL.Zero, s5 = TL.Zero, s6 = TL.Zero, s7 = TL.Zero, s8 = TL.Zero;
            for (; i + step <= n; i += step)
            {
                TV gv = TL.Load(g + i);
                TV gl = TL.Multiply(gv, TL.Load(left + i));
                TV gr = right is null ? gv : TL.Multiply(gv, TL.Load(right + i));
                s0 = TL.Fma(gl, TL.Load(t0 + i), s0);
                s1 = TL.Fma(gv, TL.Load(t1 + i), s1);
                s2 = TL.Fma(gr, TL.Load(t2 + i), s2);
                s3 = TL.Fma(gl, TL.Load(t3 + i), s3);
                s4 = TL.Fma(gv, TL.Load(t4 + i), s4);
                s5 = TL.Fma(gr, TL.Load(t5 + i), s5);
                s6 = TL.Fma(gl, TL.Load(t6 + i), s6);
                s7 = TL.Fma(gv, TL.Load(t7 + i), s7);
                s8 = TL.Fma(gr, TL.Load(t8 + i), s8);
            }

            sums[0] += TL.Sum(s0);
            sums[1] += TL.Sum(s1);
            sums[2] += TL.Sum(s2);
            sums[3] += TL.Sum(s3);
            sums[4] += TL.Sum(s4);
            sums[5] += TL.Sum(s5);
            sums[6] += TL.Sum(s6);
            sums[7] += TL.Sum(s7);
            sums[8] += TL.Sum(s8);
            return i;
        }
    }
}
