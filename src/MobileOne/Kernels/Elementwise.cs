using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace MobileOne.Kernels;

/// <summary>
/// Element-wise operations over spans, vectorized like the other training kernels: Vector512, Vector256, Vector128
/// and scalar chunks in turn, as far as <see cref="Lanes.Level"/> goes (<see cref="ILanes{TV}"/>).
/// </summary>
public static unsafe class Elementwise
{
    public static void Relu(Span<float> x)
    {
        fixed (float* p = x)
        {
            int n = x.Length, i = 0;
            if (Lanes.Use512)
            {
                i = Relu<Vector512<float>, Lanes512>(p, i, n);
            }

            if (Lanes.Use256)
            {
                i = Relu<Vector256<float>, Lanes256>(p, i, n);
            }

            if (Lanes.Use128)
            {
                i = Relu<Vector128<float>, Lanes128>(p, i, n);
            }

            Relu<float, Lanes1>(p, i, n);
        }
    }

    /// <summary>dst += src.</summary>
    public static void Add(Span<float> dst, ReadOnlySpan<float> src)
    {
        if (src.Length != dst.Length)
        {
            throw new ArgumentException("Spans differ in length.", nameof(src));
        }

        fixed (float* d = dst)
        fixed (float* s = src)
        {
            int n = dst.Length, i = 0;
            if (Lanes.Use512)
            {
                i = Add<Vector512<float>, Lanes512>(d, s, i, n);
            }

            if (Lanes.Use256)
            {
                i = Add<Vector256<float>, Lanes256>(d, s, i, n);
            }

            if (Lanes.Use128)
            {
                i = Add<Vector128<float>, Lanes128>(d, s, i, n);
            }

            Add<float, Lanes1>(d, s, i, n);
        }
    }

    public static void AddScalar(Span<float> x, float value)
    {
        fixed (float* p = x)
        {
            int n = x.Length, i = 0;
            if (Lanes.Use512)
            {
                i = AddScalar<Vector512<float>, Lanes512>(p, i, n, value);
            }

            if (Lanes.Use256)
            {
                i = AddScalar<Vector256<float>, Lanes256>(p, i, n, value);
            }

            if (Lanes.Use128)
            {
                i = AddScalar<Vector128<float>, Lanes128>(p, i, n, value);
            }

            AddScalar<float, Lanes1>(p, i, n, value);
        }
    }

    /// <summary>x = x * scale + shift (one rounding).</summary>
    public static void ScaleShift(Span<float> x, float scale, float shift)
    {
        fixed (float* p = x)
        {
            int n = x.Length, i = 0;
            if (Lanes.Use512)
            {
                i = ScaleShift<Vector512<float>, Lanes512>(p, i, n, scale, shift);
            }

            if (Lanes.Use256)
            {
                i = ScaleShift<Vector256<float>, Lanes256>(p, i, n, scale, shift);
            }

            if (Lanes.Use128)
            {
                i = ScaleShift<Vector128<float>, Lanes128>(p, i, n, scale, shift);
            }

            ScaleShift<float, Lanes1>(p, i, n, scale, shift);
        }
    }

    public static void Scale(Span<float> x, float scale)
    {
        fixed (float* p = x)
        {
            int n = x.Length, i = 0;
            if (Lanes.Use512)
            {
                i = Scale<Vector512<float>, Lanes512>(p, i, n, scale);
            }

            if (Lanes.Use256)
            {
                i = Scale<Vector256<float>, Lanes256>(p, i, n, scale);
            }

            if (Lanes.Use128)
            {
                i = Scale<Vector128<float>, Lanes128>(p, i, n, scale);
            }

            Scale<float, Lanes1>(p, i, n, scale);
        }
    }

    public static float Sigmoid(float x) => 1f / (1f + MathF.Exp(-x));

    /// <summary>sum a[i] * b[i]: per-lane fused partial sums of each width, added in a fixed order.</summary>
    public static float Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        if (a.Length != b.Length)
        {
            throw new ArgumentException("Spans differ in length.", nameof(b));
        }

        fixed (float* pa = a)
        fixed (float* pb = b)
        {
            int n = a.Length, i = 0;
            float s = 0f;
            if (Lanes.Use512)
            {
                i = Dot<Vector512<float>, Lanes512>(pa, pb, i, n, ref s);
            }

            if (Lanes.Use256)
            {
                i = Dot<Vector256<float>, Lanes256>(pa, pb, i, n, ref s);
            }

            if (Lanes.Use128)
            {
                i = Dot<Vector128<float>, Lanes128>(pa, pb, i, n, ref s);
            }

            Dot<float, Lanes1>(pa, pb, i, n, ref s);
            return s;
        }
    }

    /// <summary>Sum accumulated in double so long planes do not lose precision.</summary>
    public static double Sum(ReadOnlySpan<float> x)
    {
        double s = 0;
        foreach (float v in x)
        {
            s += v;
        }

        return s;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static int Relu<TV, TL>(float* x, int i, int n)
        where TV : struct
        where TL : struct, ILanes<TV>
    {
        for (; i + TL.Count <= n; i += TL.Count)
        {
            TL.Store(x + i, TL.Max(TL.Load(x + i), TL.Zero));
        }

        return i;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static int Add<TV, TL>(float* dst, float* src, int i, int n)
        where TV : struct
        where TL : struct, ILanes<TV>
    {
        for (; i + TL.Count <= n; i += TL.Count)
        {
            TL.Store(dst + i, TL.Add(TL.Load(dst + i), TL.Load(src + i)));
        }

        return i;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static int AddScalar<TV, TL>(float* x, int i, int n, float value)
        where TV : struct
        where TL : struct, ILanes<TV>
    {
        TV v = TL.Splat(value);
        for (; i + TL.Count <= n; i += TL.Count)
        {
            TL.Store(x + i, TL.Add(TL.Load(x + i), v));
        }

        return i;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static int ScaleShift<TV, TL>(float* x, int i, int n, float scale, float shift)
        where TV : struct
        where TL : struct, ILanes<TV>
    {
        TV s = TL.Splat(scale), b = TL.Splat(shift);
        for (; i + TL.Count <= n; i += TL.Count)
        {
            TL.Store(x + i, TL.Fma(TL.Load(x + i), s, b));
        }

        return i;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static int Scale<TV, TL>(float* x, int i, int n, float scale)
        where TV : struct
        where TL : struct, ILanes<TV>
    {
        TV s = TL.Splat(scale);
        for (; i + TL.Count <= n; i += TL.Count)
        {
            TL.Store(x + i, TL.Multiply(TL.Load(x + i), s));
        }

        return i;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static int Dot<TV, TL>(float* a, float* b, int i, int n, ref float sum)
        where TV : struct
        where TL : struct, ILanes<TV>
    {
        if (i + TL.Count > n)
        {
            return i;
        }

        TV acc = TL.Zero;
        for (; i + TL.Count <= n; i += TL.Count)
        {
            acc = TL.Fma(TL.Load(a + i), TL.Load(b + i), acc);
        }

        sum += TL.Sum(acc);
        return i;
    }
}
