using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

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
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void ChannelMeans(Isa isa, float* x, int pixels, nint cs, int c0, int c1, float scale, float* means)
    {
        int c = c0;
        if (isa == Isa.Avx512)
        {
            // Four channel blocks at a time: four independent add chains instead of one latency-bound chain.
            for (; c + 64 <= c1; c += 64)
            {
                Vector512<float> s0 = default, s1 = default, s2 = default, s3 = default;
                float* p = x + c;
                for (int i = 0; i < pixels; i++, p += cs)
                {
                    s0 += Vector512.Load(p);
                    s1 += Vector512.Load(p + 16);
                    s2 += Vector512.Load(p + 32);
                    s3 += Vector512.Load(p + 48);
                }

                (s0 * scale).Store(means + c);
                (s1 * scale).Store(means + c + 16);
                (s2 * scale).Store(means + c + 32);
                (s3 * scale).Store(means + c + 48);
            }

            for (; c + 16 <= c1; c += 16)
            {
                var s = Vector512<float>.Zero;
                float* p = x + c;
                for (int i = 0; i < pixels; i++, p += cs)
                {
                    s += Vector512.Load(p);
                }

                (s * scale).Store(means + c);
            }
        }
        else if (isa == Isa.Avx2)
        {
            for (; c + 8 <= c1; c += 8)
            {
                var s = Vector256<float>.Zero;
                float* p = x + c;
                for (int i = 0; i < pixels; i++, p += cs)
                {
                    s += Vector256.Load(p);
                }

                (s * scale).Store(means + c);
            }
        }

        for (; c < c1; c++)
        {
            float s = 0f;
            float* p = x + c;
            for (int i = 0; i < pixels; i++, p += cs)
            {
                s += *p;
            }

            means[c] = s * scale;
        }
    }

    /// <summary>x[p, c] = max(x[p, c] * gate[c], 0) for pixels [0, pixels) and channels [0, channels).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void GateRelu(Isa isa, float* x, int pixels, nint cs, int channels, float* gate, bool relu)
    {
        for (int i = 0; i < pixels; i++)
        {
            float* row = x + (i * cs);
            int c = 0;
            if (isa == Isa.Avx512)
            {
                for (; c + 16 <= channels; c += 16)
                {
                    var v = Vector512.Load(row + c) * Vector512.Load(gate + c);
                    (relu ? Vector512.Max(v, Vector512<float>.Zero) : v).Store(row + c);
                }
            }
            else if (isa == Isa.Avx2)
            {
                for (; c + 8 <= channels; c += 8)
                {
                    var v = Vector256.Load(row + c) * Vector256.Load(gate + c);
                    (relu ? Vector256.Max(v, Vector256<float>.Zero) : v).Store(row + c);
                }
            }

            for (; c < channels; c++)
            {
                float v = row[c] * gate[c];
                row[c] = relu ? MathF.Max(v, 0f) : v;
            }
        }
    }

    /// <summary>sum_i a[i] * b[i] with lane-wise partial sums combined in a fixed order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float Dot(Isa isa, float* a, float* b, int n)
    {
        int i = 0;
        float s = 0f;
        if (isa == Isa.Avx512 && n >= 16)
        {
            Vector512<float> acc0 = default, acc1 = default;
            for (; i + 32 <= n; i += 32)
            {
                acc0 = Avx512F.FusedMultiplyAdd(Vector512.Load(a + i), Vector512.Load(b + i), acc0);
                acc1 = Avx512F.FusedMultiplyAdd(Vector512.Load(a + i + 16), Vector512.Load(b + i + 16), acc1);
            }

            for (; i + 16 <= n; i += 16)
            {
                acc0 = Avx512F.FusedMultiplyAdd(Vector512.Load(a + i), Vector512.Load(b + i), acc0);
            }

            s = Vector512.Sum(acc0 + acc1);
        }
        else if (isa == Isa.Avx2 && n >= 8)
        {
            var acc = Vector256<float>.Zero;
            for (; i + 8 <= n; i += 8)
            {
                acc = Fma.MultiplyAdd(Vector256.Load(a + i), Vector256.Load(b + i), acc);
            }

            s = Vector256.Sum(acc);
        }

        for (; i < n; i++)
        {
            s += a[i] * b[i];
        }

        return s;
    }

    /// <summary>y[i] += alpha * x[i].</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Axpy(Isa isa, float alpha, float* x, float* y, int n)
    {
        int i = 0;
        if (isa == Isa.Avx512)
        {
            var va = Vector512.Create(alpha);
            for (; i + 16 <= n; i += 16)
            {
                Avx512F.FusedMultiplyAdd(va, Vector512.Load(x + i), Vector512.Load(y + i)).Store(y + i);
            }
        }
        else if (isa == Isa.Avx2)
        {
            var va = Vector256.Create(alpha);
            for (; i + 8 <= n; i += 8)
            {
                Fma.MultiplyAdd(va, Vector256.Load(x + i), Vector256.Load(y + i)).Store(y + i);
            }
        }

        for (; i < n; i++)
        {
            y[i] += alpha * x[i];
        }
    }

    /// <summary>dst[p, c] += src[p, c] for pixels [0, pixels) and channels [0, channels) (residual adds, branch sums).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void AddRows(Isa isa, float* dst, nint dstStride, float* src, nint srcStride, long pixels, int channels)
    {
        for (long i = 0; i < pixels; i++)
        {
            float* d = dst + (i * dstStride), x = src + (i * srcStride);
            int c = 0;
            if (isa == Isa.Avx512)
            {
                for (; c + 16 <= channels; c += 16)
                {
                    (Vector512.Load(d + c) + Vector512.Load(x + c)).Store(d + c);
                }
            }

            if (isa != Isa.Scalar)
            {
                for (; c + 8 <= channels; c += 8)
                {
                    (Vector256.Load(d + c) + Vector256.Load(x + c)).Store(d + c);
                }
            }

            for (; c < channels; c++)
            {
                d[c] += x[c];
            }
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
}
