using System.Runtime.CompilerServices;

namespace MobileOne.Kernels;

/// <summary>
/// Element-wise operations over spans, vectorized like the other training kernels: each is one loop body over
/// <see cref="ILanes{TV}"/> that <see cref="Lanes.Run{TLoop}(ref TLoop, int)"/> runs at every width <see cref="Lanes.Level"/> has.
/// </summary>
public static unsafe class Elementwise
{
    /// <summary>x = max(x, 0), in place.</summary>
    public static void Relu(Span<float> x)
    {
        fixed (float* p = x)
        {
            var loop = new ReluLoop(p);
            Lanes.Run(ref loop, x.Length);
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
            var loop = new AddLoop(d, s);
            Lanes.Run(ref loop, dst.Length);
        }
    }

    /// <summary>x += value, in place.</summary>
    public static void AddScalar(Span<float> x, float value)
    {
        fixed (float* p = x)
        {
            var loop = new ScaleShiftLoop(p, p, 1f, value, fused: false);
            Lanes.Run(ref loop, x.Length);
        }
    }

    /// <summary>x = x * scale + shift (one rounding).</summary>
    public static void ScaleShift(Span<float> x, float scale, float shift)
    {
        fixed (float* p = x)
        {
            ScaleShift(p, p, x.Length, scale, shift);
        }
    }

    /// <summary>y[i] = x[i] * scale + shift (one rounding) for <paramref name="n"/> floats; y may be x.</summary>
    internal static void ScaleShift(float* x, float* y, int n, float scale, float shift)
    {
        var loop = new ScaleShiftLoop(x, y, scale, shift, fused: true);
        Lanes.Run(ref loop, n);
    }

    /// <summary>
    /// y[i] = x[i] + shift for <paramref name="n"/> floats, then max with 0 (IEEE, as <see cref="MathF.Max(float, float)"/>)
    /// when <paramref name="relu"/>; y may be x. Copies between layouts that add a per-channel constant on the way.
    /// </summary>
    internal static void Shift(float* x, float* y, int n, float shift, bool relu)
    {
        var loop = new ShiftLoop(x, y, shift, relu);
        Lanes.Run(ref loop, n);
    }

    /// <summary>x *= scale, in place; bit for bit the plain product (a -0 product stays -0).</summary>
    public static void Scale(Span<float> x, float scale)
    {
        fixed (float* p = x)
        {
            // + (-0) is the exact identity (it keeps a -0 product), so this is x * scale bit for bit.
            var loop = new ScaleShiftLoop(p, p, scale, -0f, fused: false);
            Lanes.Run(ref loop, x.Length);
        }
    }

    /// <summary>1 / (1 + e^-x) of one value, in float.</summary>
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
            var loop = new DotLoop(pa, pb);
            Lanes.Run(ref loop, a.Length);
            return loop.Sum;
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

    private readonly struct ReluLoop(float* x) : IWidthLoop
    {
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public int Run<TV, TL>(int i, int n)
            where TV : struct
            where TL : struct, ILanes<TV>
        {
            for (; i + TL.Count <= n; i += TL.Count)
            {
                TL.Store(x + i, TL.Max(TL.Load(x + i), TL.Zero));
            }

            return i;
        }
    }

    private readonly struct AddLoop(float* dst, float* src) : IWidthLoop
    {
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public int Run<TV, TL>(int i, int n)
            where TV : struct
            where TL : struct, ILanes<TV>
        {
            for (; i + TL.Count <= n; i += TL.Count)
            {
                TL.Store(dst + i, TL.Add(TL.Load(dst + i), TL.Load(src + i)));
            }

            return i;
        }
    }

    /// <summary>y = x * scale + shift: fused (one rounding), or a multiply then an add (exactly x * scale, or x + shift).</summary>
    private readonly struct ScaleShiftLoop(float* x, float* y, float scale, float shift, bool fused) : IWidthLoop
    {
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public int Run<TV, TL>(int i, int n)
            where TV : struct
            where TL : struct, ILanes<TV>
        {
            TV s = TL.Splat(scale), b = TL.Splat(shift);
            for (; i + TL.Count <= n; i += TL.Count)
            {
                TV v = TL.Load(x + i);
                TL.Store(y + i, fused ? TL.Fma(v, s, b) : TL.Add(TL.Multiply(v, s), b));
            }

            return i;
        }
    }

    private readonly struct ShiftLoop(float* x, float* y, float shift, bool relu) : IWidthLoop
    {
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public int Run<TV, TL>(int i, int n)
            where TV : struct
            where TL : struct, ILanes<TV>
        {
            TV b = TL.Splat(shift);
            for (; i + TL.Count <= n; i += TL.Count)
            {
                TV v = TL.Add(TL.Load(x + i), b);
                TL.Store(y + i, relu ? TL.Max(v, TL.Zero) : v);
            }

            return i;
        }
    }

    private struct DotLoop(float* a, float* b) : IWidthLoop
    {
        public float Sum;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public int Run<TV, TL>(int i, int n)
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

            Sum += TL.Sum(acc);
            return i;
        }
    }
}
