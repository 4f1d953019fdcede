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
    internal static void Shift(float* x, float* y, int n, float shift, bool relu) => ShiftRuns(x, 0, y, 0, 1, n, shift, relu);

    /// <summary>
    /// y[r * yStride + i] = x[r * xStride + i] + shift for <paramref name="runs"/> runs of <paramref name="length"/>
    /// floats, then max with 0 when <paramref name="relu"/>: one channel's planes of every image into one row and
    /// back, in one width chain for all the runs, so planes of 4 or 16 pixels cost no call per plane.
    /// </summary>
    internal static void ShiftRuns(float* x, long xStride, float* y, long yStride, int runs, int length, float shift, bool relu)
    {
        var loop = new ShiftRunsLoop(x, xStride, y, yStride, runs, shift, relu);
        Lanes.Run(ref loop, length);
    }

    /// <summary>y += scale * x for <paramref name="n"/> floats: a multiply, then an add.</summary>
    internal static void AddScaled(float* y, float* x, float scale, int n)
    {
        var loop = new AddScaledLoop(x, y, scale);
        Lanes.Run(ref loop, n);
    }

    /// <summary>
    /// sum a[i] * b[i] with every product and partial sum in double (the floats widen exactly): for dot products
    /// whose terms cancel, such as a variance taken from second moments.
    /// </summary>
    internal static double DotDouble(float* a, float* b, int n)
    {
        var loop = new DotDoubleLoop(a, b, null);
        Lanes.RunDouble(ref loop, n);
        return loop.Sum;
    }

    /// <summary><see cref="DotDouble(float*, float*, int)"/> against doubles.</summary>
    internal static double DotDouble(float* a, double* b, int n)
    {
        var loop = new DotDoubleLoop(a, null, b);
        Lanes.RunDouble(ref loop, n);
        return loop.Sum;
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

    private readonly struct ShiftRunsLoop(float* x, long xStride, float* y, long yStride, int runs, float shift, bool relu) : IWidthLoop
    {
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public int Run<TV, TL>(int start, int n)
            where TV : struct
            where TL : struct, ILanes<TV>
        {
            int end = start + ((n - start) / TL.Count * TL.Count);
            TV b = TL.Splat(shift);
            for (int r = 0; r < runs; r++)
            {
                float* xr = x + (r * xStride), yr = y + (r * yStride);
                for (int i = start; i < end; i += TL.Count)
                {
                    TV v = TL.Add(TL.Load(xr + i), b);
                    TL.Store(yr + i, relu ? TL.Max(v, TL.Zero) : v);
                }
            }

            return end;
        }
    }

    private readonly struct AddScaledLoop(float* x, float* y, float scale) : IWidthLoop
    {
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public int Run<TV, TL>(int i, int n)
            where TV : struct
            where TL : struct, ILanes<TV>
        {
            TV s = TL.Splat(scale);
            for (; i + TL.Count <= n; i += TL.Count)
            {
                TL.Store(y + i, TL.Add(TL.Load(y + i), TL.Multiply(TL.Load(x + i), s)));
            }

            return i;
        }
    }

    /// <summary>The double dot of <see cref="DotDouble(float*, float*, int)"/>: b is floats (bf) or doubles (bd).</summary>
    private struct DotDoubleLoop(float* a, float* bf, double* bd) : IDoubleWidthLoop
    {
        public double Sum;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public int Run<TD, TW>(int i, int n)
            where TD : struct
            where TW : struct, IDoubleLanes<TD>
        {
            if (i + TW.Count > n)
            {
                return i;
            }

            TD acc = TW.Splat(0);
            if (bf != null)
            {
                for (; i + TW.Count <= n; i += TW.Count)
                {
                    acc = TW.Add(acc, TW.Multiply(TW.LoadFloats(a + i), TW.LoadFloats(bf + i)));
                }
            }
            else
            {
                for (; i + TW.Count <= n; i += TW.Count)
                {
                    acc = TW.Add(acc, TW.Multiply(TW.LoadFloats(a + i), TW.Load(bd + i)));
                }
            }

            Sum += TW.Sum(acc);
            return i;
        }
    }
}
