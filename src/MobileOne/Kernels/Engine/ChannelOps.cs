using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace MobileOne.Kernels.Engine;

/// <summary>
/// Per-channel operations on NHWC activations: channel means (global average pooling and the squeeze of
/// squeeze-excite), the gated ReLU, the dot/axpy helpers of the excite gate, and row adds and copies. Channels are vector
/// lanes; every reduction over pixels is one running sum per channel in pixel order, so the result does not
/// depend on how channels are split between threads.
/// </summary>
internal static unsafe class ChannelOps
{
    /// <summary>means[c] = scale * sum over pixels of x[p * cs + c], for c in [c0, c1).</summary>
    public static void ChannelMeans(Isa isa, float* x, int pixels, nint cs, int c0, int c1, float scale, float* means)
    {
        int c = isa switch
        {
            Isa.Avx512 => ChannelMeans<Vector512<float>, Lanes512>(x, pixels, cs, c0, c1, scale, means),
            Isa.Avx2 => ChannelMeans<Vector256<float>, Lanes256>(x, pixels, cs, c0, c1, scale, means),
            _ => c0,
        };
        ChannelMeans<float, Lanes1>(x, pixels, cs, c, c1, scale, means);
    }

    /// <summary>x[p, c] = max(x[p, c] * gate[c], 0) for pixels [0, pixels) and channels [0, channels).</summary>
    public static void GateRelu(Isa isa, float* x, int pixels, nint cs, int channels, float* gate, bool relu)
    {
        switch (isa)
        {
            case Isa.Avx512: GateRelu<Vector512<float>, Lanes512>(x, pixels, cs, channels, gate, relu); break;
            case Isa.Avx2: GateRelu<Vector256<float>, Lanes256>(x, pixels, cs, channels, gate, relu); break;
            default: GateRelu<float, Lanes1>(x, pixels, cs, channels, gate, relu); break;
        }
    }

    /// <summary>
    /// One pooled NHWC pixel: dst[c] = max (or sum divided by <paramref name="divisor"/>, as PyTorch divides) over the window rows [y0, y1) and
    /// columns [x0, x1) of <paramref name="image"/> (rows <paramref name="rowStride"/> apart, pixels
    /// <paramref name="pixelStride"/> apart), for channels [0, channels). The window must hold at least one tap. The max
    /// is IEEE's: a NaN anywhere in the window gives NaN, as PyTorch's max pooling does.
    /// </summary>
    public static void PoolPixel(Isa isa, float* image, nint rowStride, nint pixelStride, int y0, int y1, int x0, int x1, int channels, bool max, float divisor, float* dst)
    {
        var loop = new PoolLoop(image, rowStride, pixelStride, y0, y1, x0, x1, max, divisor, dst);
        Lanes.Run(ref loop, channels, isa);
    }

    /// <summary>sum_i a[i] * b[i] with lane-wise partial sums combined in a fixed order.</summary>
    public static float Dot(Isa isa, float* a, float* b, int n)
    {
        int i = 0;
        float s = 0f;
        if (isa == Isa.Avx512 && n >= 16)
        {
            s = Dot<Vector512<float>, Lanes512>(a, b, n, ref i, twoChains: true);
        }
        else if (isa == Isa.Avx2 && n >= 8)
        {
            s = Dot<Vector256<float>, Lanes256>(a, b, n, ref i, twoChains: false);
        }

        for (; i < n; i++)
        {
            s += a[i] * b[i];
        }

        return s;
    }

    /// <summary>y[i] += alpha * x[i] (fused in vectors, multiply then add in the scalar tail).</summary>
    public static void Axpy(Isa isa, float alpha, float* x, float* y, int n)
    {
        int i = isa switch
        {
            Isa.Avx512 => Axpy<Vector512<float>, Lanes512>(alpha, x, y, n),
            Isa.Avx2 => Axpy<Vector256<float>, Lanes256>(alpha, x, y, n),
            _ => 0,
        };

        for (; i < n; i++)
        {
            y[i] += alpha * x[i];
        }
    }

    /// <summary>dst[p, c] += src[p, c] for pixels [0, pixels) and channels [0, channels) (residual adds, branch sums).</summary>
    public static void AddRows(Isa isa, float* dst, nint dstStride, float* src, nint srcStride, long pixels, int channels)
    {
        switch (isa)
        {
            case Isa.Avx512: AddRows<Vector512<float>, Lanes512>(dst, dstStride, src, srcStride, pixels, channels); break;
            case Isa.Avx2: AddRows<Vector256<float>, Lanes256>(dst, dstStride, src, srcStride, pixels, channels); break;
            default: AddRows<float, Lanes1>(dst, dstStride, src, srcStride, pixels, channels); break;
        }
    }

    /// <summary>dst[p, c] = src[p, c] for pixels [0, pixels) and channels [0, channels).</summary>
    public static void CopyRows(float* dst, nint dstStride, float* src, nint srcStride, long pixels, int channels)
    {
        if (dstStride == srcStride && channels == dstStride)
        {
            Buffer.MemoryCopy(src, dst, pixels * channels * sizeof(float), pixels * channels * sizeof(float));
            return;
        }

        for (long i = 0; i < pixels; i++)
        {
            Buffer.MemoryCopy(src + (i * srcStride), dst + (i * dstStride), channels * sizeof(float), channels * sizeof(float));
        }
    }

    /// <summary>Channels [c0, c1) in whole vectors, four blocks at a time first; returns where it stopped.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static int ChannelMeans<TV, TL>(float* x, int pixels, nint cs, int c0, int c1, float scale, float* means)
        where TV : struct
        where TL : struct, ILanes<TV>
    {
        int w = TL.Count, c = c0;
        TV vscale = TL.Splat(scale);

        // Four independent add chains instead of one latency-bound chain.
        for (; c + (4 * w) <= c1; c += 4 * w)
        {
            TV s0 = TL.Zero, s1 = TL.Zero, s2 = TL.Zero, s3 = TL.Zero;
            float* p = x + c;
            for (int i = 0; i < pixels; i++, p += cs)
            {
                s0 = TL.Add(s0, TL.Load(p));
                s1 = TL.Add(s1, TL.Load(p + w));
                s2 = TL.Add(s2, TL.Load(p + (2 * w)));
                s3 = TL.Add(s3, TL.Load(p + (3 * w)));
            }

            TL.Store(means + c, TL.Multiply(s0, vscale));
            TL.Store(means + c + w, TL.Multiply(s1, vscale));
            TL.Store(means + c + (2 * w), TL.Multiply(s2, vscale));
            TL.Store(means + c + (3 * w), TL.Multiply(s3, vscale));
        }

        for (; c + w <= c1; c += w)
        {
            TV s = TL.Zero;
            float* p = x + c;
            for (int i = 0; i < pixels; i++, p += cs)
            {
                s = TL.Add(s, TL.Load(p));
            }

            TL.Store(means + c, TL.Multiply(s, vscale));
        }

        return c;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void GateRelu<TV, TL>(float* x, int pixels, nint cs, int channels, float* gate, bool relu)
        where TV : struct
        where TL : struct, ILanes<TV>
    {
        for (int i = 0; i < pixels; i++)
        {
            float* row = x + (i * cs);
            int c = 0;
            for (; c + TL.Count <= channels; c += TL.Count)
            {
                TV v = TL.Multiply(TL.Load(row + c), TL.Load(gate + c));
                TL.Store(row + c, relu ? TL.Max(v, TL.Zero) : v);
            }

            for (; c < channels; c++)
            {
                float v = row[c] * gate[c];
                row[c] = relu ? MathF.Max(v, 0f) : v;
            }
        }
    }

    /// <summary>
    /// The vector part of <see cref="Dot(Isa, float*, float*, int)"/>: with <paramref name="twoChains"/> (AVX-512) pairs
    /// of vectors go to two accumulators, then single vectors to the first; AVX2 has always used one accumulator.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float Dot<TV, TL>(float* a, float* b, int n, ref int i, bool twoChains)
        where TV : struct
        where TL : struct, ILanes<TV>
    {
        int w = TL.Count;
        TV acc0 = TL.Zero, acc1 = TL.Zero;
        if (twoChains)
        {
            for (; i + (2 * w) <= n; i += 2 * w)
            {
                acc0 = TL.Fma(TL.Load(a + i), TL.Load(b + i), acc0);
                acc1 = TL.Fma(TL.Load(a + i + w), TL.Load(b + i + w), acc1);
            }
        }

        for (; i + w <= n; i += w)
        {
            acc0 = TL.Fma(TL.Load(a + i), TL.Load(b + i), acc0);
        }

        return TL.Sum(twoChains ? TL.Add(acc0, acc1) : acc0);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static int Axpy<TV, TL>(float alpha, float* x, float* y, int n)
        where TV : struct
        where TL : struct, ILanes<TV>
    {
        TV va = TL.Splat(alpha);
        int i = 0;
        for (; i + TL.Count <= n; i += TL.Count)
        {
            TL.Store(y + i, TL.Fma(va, TL.Load(x + i), TL.Load(y + i)));
        }

        return i;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void AddRows<TV, TL>(float* dst, nint dstStride, float* src, nint srcStride, long pixels, int channels)
        where TV : struct
        where TL : struct, ILanes<TV>
    {
        for (long i = 0; i < pixels; i++)
        {
            float* d = dst + (i * dstStride), x = src + (i * srcStride);
            int c = 0;
            for (; c + TL.Count <= channels; c += TL.Count)
            {
                TL.Store(d + c, TL.Add(TL.Load(d + c), TL.Load(x + c)));
            }

            for (; c < channels; c++)
            {
                d[c] += x[c];
            }
        }
    }

    private readonly struct PoolLoop(float* image, nint rowStride, nint pixelStride, int y0, int y1, int x0, int x1, bool max, float divisor, float* dst) : IWidthLoop
    {
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public int Run<TV, TL>(int i, int n)
            where TV : struct
            where TL : struct, ILanes<TV>
        {
            for (; i + TL.Count <= n; i += TL.Count)
            {
                // The accumulator stays in a register across the window's taps; channels are the vector lanes.
                TV acc = TL.Load(image + (y0 * rowStride) + (x0 * pixelStride) + i);
                for (int y = y0; y < y1; y++)
                {
                    float* row = image + (y * rowStride) + i;
                    for (int x = y == y0 ? x0 + 1 : x0; x < x1; x++)
                    {
                        TV v = TL.Load(row + (x * pixelStride));
                        acc = max ? TL.Max(acc, v) : TL.Add(acc, v);
                    }
                }

                TL.Store(dst + i, max ? acc : TL.Divide(acc, TL.Splat(divisor)));
            }

            return i;
        }
    }
}
