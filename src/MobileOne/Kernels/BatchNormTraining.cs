using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace MobileOne.Kernels;

/// <summary>
/// Train-mode BatchNorm over NCHW activations, forward and backward, in PyTorch's semantics: batch mean and
/// biased variance normalize; the caller updates running statistics with the unbiased variance.
/// Per-channel sums are accumulated in double (vectors of doubles within a plane, planes in image order) and
/// channels are split across threads, so results do not depend on the thread count.
/// The backward pass is written as dx = k1 * (dy - mean(dy)) + k2 * (x - mean(x)) with per-channel k1, k2, which
/// also covers eval mode (k2 = 0, no mean(dy)) and several BatchNorms fed by one gradient (MobileOne's branches).
/// </summary>
public static unsafe class BatchNormTraining
{
    /// <summary>Planes up to this size run whole images per loop (coefficients expanded per element) instead of plane by plane.</summary>
    public const int SmallPlane = 64;

    [ThreadStatic]
    private static float[]? expandScratch;

    [ThreadStatic]
    private static double[]? accumulatorScratch;

    /// <summary>Per-channel mean and biased variance over batch and plane. <paramref name="imageStride"/> is the distance between images.</summary>
    public static void Statistics(float* x, int batch, int channels, int plane, long imageStride, double* mean, double* variance)
    {
        nint xp = (nint)x, mp = (nint)mean, vp = (nint)variance;
        double count = (double)batch * plane;
        ComputeThreads.For(channels, (c0, c1) =>
        {
            if (plane <= SmallPlane)
            {
                // Element-wise double accumulators over the images, folded per channel: one long loop per image.
                int len = (c1 - c0) * plane;
                double* acc = Accumulators(2 * len);
                for (int n = 0; n < batch; n++)
                {
                    AccumulateSumSquares((float*)xp + (n * imageStride) + ((long)c0 * plane), acc, acc + len, len);
                }

                for (int c = c0; c < c1; c++)
                {
                    double s = 0, sq = 0;
                    for (int p = 0; p < plane; p++)
                    {
                        s += acc[((c - c0) * plane) + p];
                        sq += acc[len + ((c - c0) * plane) + p];
                    }

                    Finish(c, s, sq);
                }

                return;
            }

            for (int c = c0; c < c1; c++)
            {
                double s = 0, sq = 0;
                for (int n = 0; n < batch; n++)
                {
                    SumAndSquares((float*)xp + (n * imageStride) + ((long)c * plane), plane, ref s, ref sq);
                }

                Finish(c, s, sq);
            }
        });

        void Finish(int c, double s, double sq)
        {
            double m = s / count;
            ((double*)mp)[c] = m;
            ((double*)vp)[c] = Math.Max(0.0, (sq / count) - (m * m));
        }
    }

    /// <summary>y[n, c] = scale[c] * x[n, c] + shift[c].</summary>
    public static void Affine(float* x, float* y, int batch, int channels, int plane, float* scale, float* shift)
    {
        nint xp = (nint)x, yp = (nint)y, sp = (nint)scale, bp = (nint)shift;
        if (plane <= SmallPlane)
        {
            ComputeThreads.For(channels, (c0, c1) =>
            {
                int len = (c1 - c0) * plane;
                float* e = Expanded(2 * len);
                Expand((float*)sp + c0, c1 - c0, plane, e);
                Expand((float*)bp + c0, c1 - c0, plane, e + len);
                for (int n = 0; n < batch; n++)
                {
                    long off = ((((long)n * channels) + c0) * plane);
                    Flat.Affine((float*)xp + off, e, e + len, (float*)yp + off, len);
                }
            });
            return;
        }

        ComputeThreads.For(batch * channels, (p0, p1) =>
        {
            for (int p = p0; p < p1; p++)
            {
                int c = p % channels;
                long off = (long)p * plane;
                Elementwise.ScaleShift((float*)xp + off, (float*)yp + off, plane, ((float*)sp)[c], ((float*)bp)[c]);
            }
        }, minPerPart: 16);
    }

    /// <summary>
    /// One pass over a gradient and the inputs of several BatchNorms it feeds: sumDy[c] = sum of dy and, per input b,
    /// sumDyX[b * channels + c] = sum of dy * (x_b - mean_b[c]). Input b lives at <paramref name="inputs"/>[b]
    /// with the same NCHW shape as dy; the means are <paramref name="means"/>[b * channels + c].
    /// </summary>
    public static void GradientSums(float* dy, ReadOnlySpan<nint> inputs, float* means, int batch, int channels, int plane, double* sumDy, double* sumDyX)
    {
        nint[] xs = inputs.ToArray();
        nint dyp = (nint)dy, mp = (nint)means, sdp = (nint)sumDy, sxp = (nint)sumDyX;
        int count = xs.Length;
        ComputeThreads.For(channels, (c0, c1) =>
        {
            if (plane <= SmallPlane)
            {
                int len = (c1 - c0) * plane;
                double* acc = Accumulators((long)(count + 1) * len);
                float* mu = Expanded((long)count * len);
                for (int b = 0; b < count; b++)
                {
                    Expand((float*)mp + (b * channels) + c0, c1 - c0, plane, mu + ((long)b * len));
                }

                for (int n = 0; n < batch; n++)
                {
                    long off = ((((long)n * channels) + c0) * plane);
                    float* g = (float*)dyp + off;
                    AccumulateSum(g, acc, len);
                    for (int b = 0; b < count; b++)
                    {
                        AccumulateDotCentered(g, (float*)xs[b] + off, mu + ((long)b * len), acc + ((long)(b + 1) * len), len);
                    }
                }

                for (int c = c0; c < c1; c++)
                {
                    int at = (c - c0) * plane;
                    ((double*)sdp)[c] = Fold(acc + at, plane);
                    for (int b = 0; b < count; b++)
                    {
                        ((double*)sxp)[(b * channels) + c] = Fold(acc + ((long)(b + 1) * len) + at, plane);
                    }
                }

                return;
            }

            double* dots = stackalloc double[Math.Max(1, count)];
            float* mus = stackalloc float[Math.Max(1, count)];
            for (int c = c0; c < c1; c++)
            {
                double sd = 0;
                for (int b = 0; b < count; b++)
                {
                    dots[b] = 0;
                    mus[b] = ((float*)mp)[(b * channels) + c];
                }

                for (int n = 0; n < batch; n++)
                {
                    long off = (((long)n * channels) + c) * plane;
                    float* g = (float*)dyp + off;
                    sd += Sum(g, plane);
                    for (int b = 0; b < count; b++)
                    {
                        dots[b] += DotCentered(g, (float*)xs[b] + off, mus[b], plane);
                    }
                }

                ((double*)sdp)[c] = sd;
                for (int b = 0; b < count; b++)
                {
                    ((double*)sxp)[(b * channels) + c] = dots[b];
                }
            }
        });
    }

    /// <summary>dx = (accumulate ? dx : 0) + k1[c] * (dy - meanDy[c]) + k2[c] * (x - mean[c]). dx may alias x.</summary>
    public static void InputGradient(float* dy, float* x, float* dx, bool accumulate, int batch, int channels, int plane, float* k1, float* meanDy, float* k2, float* mean)
    {
        nint dyp = (nint)dy, xp = (nint)x, dxp = (nint)dx, k1p = (nint)k1, mdp = (nint)meanDy, k2p = (nint)k2, mp = (nint)mean;
        if (plane <= SmallPlane)
        {
            ComputeThreads.For(channels, (c0, c1) =>
            {
                int len = (c1 - c0) * plane;
                float* e = Expanded(4L * len);
                Expand((float*)k1p + c0, c1 - c0, plane, e);
                Expand((float*)mdp + c0, c1 - c0, plane, e + len);
                Expand((float*)k2p + c0, c1 - c0, plane, e + (2 * len));
                Expand((float*)mp + c0, c1 - c0, plane, e + (3 * len));
                for (int n = 0; n < batch; n++)
                {
                    long off = ((((long)n * channels) + c0) * plane);
                    Flat.Gradient((float*)dyp + off, (float*)xp + off, (float*)dxp + off, e, e + len, e + (2 * len), e + (3 * len), len, accumulate);
                }
            });
            return;
        }

        ComputeThreads.For(batch * channels, (p0, p1) =>
        {
            for (int p = p0; p < p1; p++)
            {
                int c = p % channels;
                long off = (long)p * plane;
                var coefficients = new GradCoefficients(((float*)k1p)[c], ((float*)mdp)[c], ((float*)k2p)[c], ((float*)mp)[c]);
                Gradient((float*)dyp + off, (float*)xp + off, (float*)dxp + off, plane, coefficients, accumulate);
            }
        }, minPerPart: 16);
    }

    /// <summary>
    /// MobileOne's branch sum: y = sum over branches of scale_b[c] * x_b + shift[c] (shift: every branch's shift added
    /// once), then ReLU when <paramref name="relu"/>. All branches have y's NCHW shape; scales are scale[b * channels + c].
    /// </summary>
    public static void BranchSum(ReadOnlySpan<nint> branches, float* scales, float* shift, float* y, int batch, int channels, int plane, bool relu)
    {
        nint[] xs = branches.ToArray();
        nint sp = (nint)scales, bp = (nint)shift, yp = (nint)y;
        if (plane <= SmallPlane)
        {
            ComputeThreads.For(channels, (c0, c1) =>
            {
                int len = (c1 - c0) * plane;
                float* e = Expanded((long)(xs.Length + 1) * len);
                for (int b = 0; b < xs.Length; b++)
                {
                    Expand((float*)sp + (b * channels) + c0, c1 - c0, plane, e + ((long)b * len));
                }

                float* sh = e + ((long)xs.Length * len);
                Expand((float*)bp + c0, c1 - c0, plane, sh);
                float** src = stackalloc float*[xs.Length];
                for (int n = 0; n < batch; n++)
                {
                    long off = ((((long)n * channels) + c0) * plane);
                    for (int b = 0; b < xs.Length; b++)
                    {
                        src[b] = (float*)xs[b] + off;
                    }

                    Flat.BranchSum(src, e, xs.Length, len, sh, (float*)yp + off, relu);
                }
            });
            return;
        }

        ComputeThreads.For(batch * channels, (p0, p1) =>
        {
            float** src = stackalloc float*[xs.Length];
            float* sc = stackalloc float[xs.Length];
            for (int p = p0; p < p1; p++)
            {
                int c = p % channels;
                long off = (long)p * plane;
                for (int b = 0; b < xs.Length; b++)
                {
                    src[b] = (float*)xs[b] + off;
                    sc[b] = ((float*)sp)[(b * channels) + c];
                }

                SumPlane(src, sc, xs.Length, ((float*)bp)[c], (float*)yp + off, plane, relu);
            }
        }, minPerPart: 16);
    }

    private static float* Expanded(long size)
    {
        if (expandScratch is null || expandScratch.Length < size)
        {
            expandScratch = GC.AllocateUninitializedArray<float>(checked((int)Math.Max(size, 256)), pinned: true);
        }

        return (float*)Unsafe.AsPointer(ref expandScratch[0]);
    }

    private static double* Accumulators(long size)
    {
        if (accumulatorScratch is null || accumulatorScratch.Length < size)
        {
            accumulatorScratch = GC.AllocateUninitializedArray<double>(checked((int)Math.Max(size, 256)), pinned: true);
        }

        new Span<double>(accumulatorScratch, 0, (int)size).Clear();
        return (double*)Unsafe.AsPointer(ref accumulatorScratch[0]);
    }

    /// <summary>dst[c * plane + p] = values[c]: per-channel coefficients laid out like the activations.</summary>
    private static void Expand(float* values, int channels, int plane, float* dst)
    {
        for (int c = 0; c < channels; c++)
        {
            new Span<float>(dst + ((long)c * plane), plane).Fill(values[c]);
        }
    }

    private static double Fold(double* acc, int plane)
    {
        double s = 0;
        for (int p = 0; p < plane; p++)
        {
            s += acc[p];
        }

        return s;
    }

    private static void AccumulateSumSquares(float* x, double* sum, double* sumSq, int n)
    {
        int i = 0;
        if (Lanes.Use512)
        {
            for (; i + 16 <= n; i += 16)
            {
                var (lo, hi) = Vector512.Widen(Vector512.Load(x + i));
                (Vector512.Load(sum + i) + lo).Store(sum + i);
                (Vector512.Load(sum + i + 8) + hi).Store(sum + i + 8);
                Vector512.FusedMultiplyAdd(lo, lo, Vector512.Load(sumSq + i)).Store(sumSq + i);
                Vector512.FusedMultiplyAdd(hi, hi, Vector512.Load(sumSq + i + 8)).Store(sumSq + i + 8);
            }
        }

        for (; i < n; i++)
        {
            double v = x[i];
            sum[i] += v;
            sumSq[i] = Math.FusedMultiplyAdd(v, v, sumSq[i]);
        }
    }

    private static void AccumulateSum(float* x, double* sum, int n)
    {
        int i = 0;
        if (Lanes.Use512)
        {
            for (; i + 16 <= n; i += 16)
            {
                var (lo, hi) = Vector512.Widen(Vector512.Load(x + i));
                (Vector512.Load(sum + i) + lo).Store(sum + i);
                (Vector512.Load(sum + i + 8) + hi).Store(sum + i + 8);
            }
        }

        for (; i < n; i++)
        {
            sum[i] += x[i];
        }
    }

    private static void AccumulateDotCentered(float* g, float* x, float* mu, double* sum, int n)
    {
        int i = 0;
        if (Lanes.Use512)
        {
            for (; i + 16 <= n; i += 16)
            {
                var (lo, hi) = Vector512.Widen(Vector512.Load(g + i) * (Vector512.Load(x + i) - Vector512.Load(mu + i)));
                (Vector512.Load(sum + i) + lo).Store(sum + i);
                (Vector512.Load(sum + i + 8) + hi).Store(sum + i + 8);
            }
        }

        for (; i < n; i++)
        {
            sum[i] += g[i] * (x[i] - mu[i]);
        }
    }

    private static void SumAndSquares(float* x, int n, ref double sum, ref double sumSq)
    {
        int i = 0;
        if (Lanes.Use512 && n >= 16)
        {
            Vector512<double> s = Vector512<double>.Zero, q = Vector512<double>.Zero;
            for (; i + 16 <= n; i += 16)
            {
                var (lo, hi) = Vector512.Widen(Vector512.Load(x + i));
                s += lo + hi;
                q = Vector512.FusedMultiplyAdd(lo, lo, q);
                q = Vector512.FusedMultiplyAdd(hi, hi, q);
            }

            sum += Vector512.Sum(s);
            sumSq += Vector512.Sum(q);
        }

        if (Lanes.Use256 && i + 8 <= n)
        {
            Vector256<double> s = Vector256<double>.Zero, q = Vector256<double>.Zero;
            for (; i + 8 <= n; i += 8)
            {
                var (lo, hi) = Vector256.Widen(Vector256.Load(x + i));
                s += lo + hi;
                q = Vector256.FusedMultiplyAdd(lo, lo, q);
                q = Vector256.FusedMultiplyAdd(hi, hi, q);
            }

            sum += Vector256.Sum(s);
            sumSq += Vector256.Sum(q);
        }

        for (; i < n; i++)
        {
            double v = x[i];
            sum += v;
            sumSq += v * v;
        }
    }

    private static double Sum(float* x, int n)
    {
        double sum = 0;
        int i = 0;
        if (Lanes.Use512 && n >= 16)
        {
            Vector512<double> s = Vector512<double>.Zero;
            for (; i + 16 <= n; i += 16)
            {
                var (lo, hi) = Vector512.Widen(Vector512.Load(x + i));
                s += lo + hi;
            }

            sum += Vector512.Sum(s);
        }

        if (Lanes.Use256 && i + 8 <= n)
        {
            Vector256<double> s = Vector256<double>.Zero;
            for (; i + 8 <= n; i += 8)
            {
                var (lo, hi) = Vector256.Widen(Vector256.Load(x + i));
                s += lo + hi;
            }

            sum += Vector256.Sum(s);
        }

        for (; i < n; i++)
        {
            sum += x[i];
        }

        return sum;
    }

    /// <summary>Sum of g * (x - mu): the product rounds once in float, the sum runs in double.</summary>
    private static double DotCentered(float* g, float* x, float mu, int n)
    {
        double sum = 0;
        int i = 0;
        if (Lanes.Use512 && n >= 16)
        {
            Vector512<double> s = Vector512<double>.Zero;
            var m = Vector512.Create(mu);
            for (; i + 16 <= n; i += 16)
            {
                var (lo, hi) = Vector512.Widen(Vector512.Load(g + i) * (Vector512.Load(x + i) - m));
                s += lo + hi;
            }

            sum += Vector512.Sum(s);
        }

        if (Lanes.Use256 && i + 8 <= n)
        {
            Vector256<double> s = Vector256<double>.Zero;
            var m = Vector256.Create(mu);
            for (; i + 8 <= n; i += 8)
            {
                var (lo, hi) = Vector256.Widen(Vector256.Load(g + i) * (Vector256.Load(x + i) - m));
                s += lo + hi;
            }

            sum += Vector256.Sum(s);
        }

        for (; i < n; i++)
        {
            sum += g[i] * (x[i] - mu);
        }

        return sum;
    }

    private readonly record struct GradCoefficients(float K1, float MeanDy, float K2, float Mean);

    private static void Gradient(float* dy, float* x, float* dx, int n, GradCoefficients k, bool accumulate)
    {
        var loop = new GradientLoop(dy, x, dx, k, accumulate);
        Lanes.Run(ref loop, n);
    }

    private readonly struct GradientLoop(float* dy, float* x, float* dx, GradCoefficients k, bool accumulate) : IWidthLoop
    {
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public int Run<TV, TL>(int i, int n)
            where TV : struct
            where TL : struct, ILanes<TV>
        {
            TV k1 = TL.Splat(k.K1), md = TL.Splat(k.MeanDy), k2 = TL.Splat(k.K2), mu = TL.Splat(k.Mean);
            for (; i + TL.Count <= n; i += TL.Count)
            {
                TV v = TL.Fma(k1, TL.Subtract(TL.Load(dy + i), md), TL.Multiply(k2, TL.Subtract(TL.Load(x + i), mu)));
                TL.Store(dx + i, accumulate ? TL.Add(TL.Load(dx + i), v) : v);
            }

            return i;
        }
    }

    private static void SumPlane(float** src, float* scales, int count, float shift, float* y, int n, bool relu)
    {
        var loop = new SumPlaneLoop(src, scales, count, shift, y, relu);
        Lanes.Run(ref loop, n);
    }

    private readonly struct SumPlaneLoop(float** src, float* scales, int count, float shift, float* y, bool relu) : IWidthLoop
    {
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public int Run<TV, TL>(int i, int n)
            where TV : struct
            where TL : struct, ILanes<TV>
        {
            TV b = TL.Splat(shift);
            for (; i + TL.Count <= n; i += TL.Count)
            {
                TV s = b;
                for (int k = 0; k < count; k++)
                {
                    s = TL.Fma(TL.Splat(scales[k]), TL.Load(src[k] + i), s);
                }

                TL.Store(y + i, relu ? TL.Max(s, TL.Zero) : s);
            }

            return i;
        }
    }

    /// <summary>Element-wise passes with per-element coefficient arrays (the small-plane layout).</summary>
    private static class Flat
    {
        public static void Affine(float* x, float* scale, float* shift, float* y, int n)
        {
            var loop = new AffineLoop(x, scale, shift, y);
            Lanes.Run(ref loop, n);
        }

        public static void Gradient(float* dy, float* x, float* dx, float* k1, float* meanDy, float* k2, float* mean, int n, bool accumulate)
        {
            var loop = new GradientLoop(dy, x, dx, k1, meanDy, k2, mean, accumulate);
            Lanes.Run(ref loop, n);
        }

        public static void BranchSum(float** src, float* scales, int count, int n, float* shift, float* y, bool relu)
        {
            var loop = new BranchSumLoop(src, scales, count, n, shift, y, relu);
            Lanes.Run(ref loop, n);
        }

        private readonly struct AffineLoop(float* x, float* scale, float* shift, float* y) : IWidthLoop
        {
            [MethodImpl(MethodImplOptions.AggressiveOptimization)]
            public int Run<TV, TL>(int i, int n)
                where TV : struct
                where TL : struct, ILanes<TV>
            {
                for (; i + TL.Count <= n; i += TL.Count)
                {
                    TL.Store(y + i, TL.Fma(TL.Load(scale + i), TL.Load(x + i), TL.Load(shift + i)));
                }

                return i;
            }
        }

        private readonly struct GradientLoop(float* dy, float* x, float* dx, float* k1, float* meanDy, float* k2, float* mean, bool accumulate) : IWidthLoop
        {
            [MethodImpl(MethodImplOptions.AggressiveOptimization)]
            public int Run<TV, TL>(int i, int n)
                where TV : struct
                where TL : struct, ILanes<TV>
            {
                for (; i + TL.Count <= n; i += TL.Count)
                {
                    TV v = TL.Fma(TL.Load(k1 + i), TL.Subtract(TL.Load(dy + i), TL.Load(meanDy + i)), TL.Multiply(TL.Load(k2 + i), TL.Subtract(TL.Load(x + i), TL.Load(mean + i))));
                    TL.Store(dx + i, accumulate ? TL.Add(TL.Load(dx + i), v) : v);
                }

                return i;
            }
        }

        /// <summary>Branch k's coefficients are the k-th run of <c>length</c> floats of <c>scales</c>.</summary>
        private readonly struct BranchSumLoop(float** src, float* scales, int count, int length, float* shift, float* y, bool relu) : IWidthLoop
        {
            [MethodImpl(MethodImplOptions.AggressiveOptimization)]
            public int Run<TV, TL>(int i, int n)
                where TV : struct
                where TL : struct, ILanes<TV>
            {
                for (; i + TL.Count <= n; i += TL.Count)
                {
                    TV s = TL.Load(shift + i);
                    for (int k = 0; k < count; k++)
                    {
                        s = TL.Fma(TL.Load(scales + ((long)k * length) + i), TL.Load(src[k] + i), s);
                    }

                    TL.Store(y + i, relu ? TL.Max(s, TL.Zero) : s);
                }

                return i;
            }
        }
    }
}
