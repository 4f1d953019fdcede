using System.Runtime.CompilerServices;

namespace MobileOne.Kernels;

/// <summary>
/// Element-wise passes of the training graph: ReLU's backward mask and the per-plane channel scale of
/// squeeze-excite (forward y = x * gate, backward dgate = sum dy * x, dx = dy * gate). Split across threads by
/// fixed chunks or planes; each plane's sum is computed by one thread.
/// </summary>
public static unsafe class ActivationBackward
{
    private const int Chunk = 4096;

    /// <summary>dx = dy where y > 0, else 0 (the derivative at 0 is 0, as in PyTorch). dx may alias dy.</summary>
    public static void Relu(float* dy, float* y, float* dx, long length) => Mask(dy, y, dx, length, six: false);

    /// <summary>
    /// ReLU6's backward: dx = dy where 0 &lt; y &lt; 6, else 0 (PyTorch's hardtanh backward: no gradient at either
    /// bound). dx may alias dy.
    /// </summary>
    public static void Relu6(float* dy, float* y, float* dx, long length) => Mask(dy, y, dx, length, six: true);

    /// <summary>y[p] = x[p] * gate[p] for every plane p of <paramref name="plane"/> floats, then ReLU when asked.</summary>
    public static void ScalePlanes(float* x, float* gate, float* y, int planes, int plane, bool relu)
    {
        nint xp = (nint)x, gp = (nint)gate, yp = (nint)y;
        ComputeThreads.For(planes, (p0, p1) =>
        {
            for (int p = p0; p < p1; p++)
            {
                long off = (long)p * plane;
                Scale((float*)xp + off, ((float*)gp)[p], (float*)yp + off, plane, relu);
            }
        }, minPerPart: 16);
    }

    /// <summary>Backward of <see cref="ScalePlanes"/> without the ReLU: gateGrad[p] = sum dy * x; dx = dy * gate[p].</summary>
    public static void ScalePlanesBackward(float* dy, float* x, float* gate, float* dx, float* gateGrad, int planes, int plane)
    {
        nint dyp = (nint)dy, xp = (nint)x, gp = (nint)gate, dxp = (nint)dx, ggp = (nint)gateGrad;
        ComputeThreads.For(planes, (p0, p1) =>
        {
            for (int p = p0; p < p1; p++)
            {
                long off = (long)p * plane;
                float* g = (float*)dyp + off;
                double s = 0;
                float* xv = (float*)xp + off;
                for (int i = 0; i < plane; i++)
                {
                    s += (double)g[i] * xv[i];
                }

                ((float*)ggp)[p] = (float)s;
                Scale(g, ((float*)gp)[p], (float*)dxp + off, plane, relu: false);
            }
        }, minPerPart: 16);
    }

    private static void Mask(float* dy, float* y, float* dx, long length, bool six)
    {
        nint dyp = (nint)dy, yp = (nint)y, dxp = (nint)dx;
        int chunks = (int)((length + Chunk - 1) / Chunk);
        ComputeThreads.For(chunks, (c0, c1) =>
        {
            long s = (long)c0 * Chunk, e = Math.Min(length, (long)c1 * Chunk);
            for (long p = s; p < e; p += Chunk)
            {
                var loop = new MaskLoop((float*)dyp + p, (float*)yp + p, (float*)dxp + p, six);
                Lanes.Run(ref loop, (int)Math.Min(Chunk, e - p));
            }
        });
    }

    private static void Scale(float* x, float s, float* y, int n, bool relu)
    {
        var loop = new ScaleLoop(x, s, y, relu);
        Lanes.Run(ref loop, n);
    }

    /// <summary>dx = dy where y > 0 (and, for ReLU6, y &lt; 6), else 0.</summary>
    private readonly struct MaskLoop(float* dy, float* y, float* dx, bool six) : IWidthLoop
    {
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public int Run<TV, TL>(int i, int n)
            where TV : struct
            where TL : struct, ILanes<TV>
        {
            TV bound = TL.Splat(6f);
            for (; i + TL.Count <= n; i += TL.Count)
            {
                TV yv = TL.Load(y + i), d = TL.Load(dy + i);
                TL.Store(dx + i, TL.WherePositive(yv, six ? TL.WherePositive(TL.Subtract(bound, yv), d) : d));
            }

            return i;
        }
    }

    private readonly struct ScaleLoop(float* x, float s, float* y, bool relu) : IWidthLoop
    {
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public int Run<TV, TL>(int i, int n)
            where TV : struct
            where TL : struct, ILanes<TV>
        {
            TV sv = TL.Splat(s);
            for (; i + TL.Count <= n; i += TL.Count)
            {
                TV v = TL.Multiply(TL.Load(x + i), sv);
                TL.Store(y + i, relu ? TL.Max(v, TL.Zero) : v);
            }

            return i;
        }
    }
}
