using System.Runtime.CompilerServices;

namespace MobileOne.Kernels.Depthwise;

/// <summary>
/// The loops of the depthwise moment passes over one channel held in a "stack" buffer where a 3x3 window is nine
/// fixed offsets (<see cref="Offsets"/>) from its output position: x[o + off_t] is the pixel under tap t of output
/// position o. The positions are visited in runs, and <see cref="Mask"/> (1 at output positions) keeps the others out
/// of every sum. <see cref="PatchStack"/> lays out padded planes (stride 1: the window's pixels are the plane's
/// neighbours); <see cref="StridedPatches"/> lays out the nine taps' pixels as nine rows (any stride: im2col of the
/// channel). The loops are the same for both: the patch moments (every branch's statistics), one convolution with the
/// combined kernel, the cross sums with the output gradient (every weight gradient) and the input gradient with the
/// moments' correction.
/// </summary>
internal abstract unsafe class PatchPasses
{
    /// <summary>Positions summed in float before a partial sum is added to a double: 256 terms per lane at 16 lanes.</summary>
    internal const int Block = 4096;

    /// <summary>The layout: runs of positions (start in the buffer, length, start in <see cref="Mask"/>), the buffer size and the mask.</summary>
    protected PatchPasses((int Start, int Length, int MaskStart)[] runs, int total, float[] mask)
    {
        (this.runs, Total, Mask) = (runs, total, mask);
    }

    private readonly (int Start, int Length, int MaskStart)[] runs;

    /// <summary>
    /// Runs over <paramref name="length"/> consecutive positions from <paramref name="start"/> in the buffer (the mask
    /// from 0), cut every <see cref="Block"/> positions so that no float partial sum grows long.
    /// </summary>
    protected static (int, int, int)[] BlockRuns(int start, int length)
    {
        var runs = new (int, int, int)[(length + Block - 1) / Block];
        for (int k = 0; k < runs.Length; k++)
        {
            runs[k] = (start + (k * Block), Math.Min(Block, length - (k * Block)), k * Block);
        }

        return runs;
    }

    /// <summary>Floats of one stack buffer.</summary>
    public int Total { get; }

    /// <summary>1 at the positions a run visits that are outputs, 0 elsewhere (read from each run's MaskStart).</summary>
    public float[] Mask { get; }

    /// <summary>Offset in floats of tap t (row-major in the 3x3 window) from the window's output position.</summary>
    public int[] Offsets { get; } = new int[9];

    /// <summary>The sum of a whole stack buffer (for a gathered stack: of the channel's values), in float blocks added in double.</summary>
    public double Sum(float* stack) => Sum(stack, Total);

    /// <summary>The sum of <paramref name="length"/> floats, in float blocks added in double.</summary>
    internal static double Sum(float* x, int length)
    {
        double total = 0;
        var partial = stackalloc float[1];
        for (int start = 0; start < length; start += Block)
        {
            *partial = 0f;
            var loop = new SumLoop(x + start, partial);
            Lanes.Run(ref loop, Math.Min(Block, length - start));
            total += *partial;
        }

        return total;
    }

    /// <summary>Adds <paramref name="value"/> at the output positions of a stack (x - mean there; borders stay 0).</summary>
    public void AddAtOutputs(float* stack, float value)
    {
        fixed (float* mask = Mask)
        {
            foreach (var (start, length, maskStart) in runs)
            {
                var loop = new AddMaskedLoop(stack + start, mask + maskStart, value);
                Lanes.Run(ref loop, length);
            }
        }
    }

    /// <summary>
    /// The patch moments of a stack: <paramref name="sums"/>[t] = sum over output positions o of x[o + off_t], and
    /// <paramref name="products"/>[9a + b] = sum over o of x[o + off_a] * x[o + off_b] (all 81, symmetric).
    /// </summary>
    public virtual void Moments(float* stack, double* sums, double* products)
    {
        new Span<double>(sums, 9).Clear();
        new Span<double>(products, 81).Clear();
        var partial = stackalloc float[12];
        fixed (float* mask = Mask)
        fixed (int* off = Offsets)
        {
            foreach (var (start, length, maskStart) in runs)
            {
                // The 9 x 9 products in the 6 blocks of tap rows (ra <= rb): 3 masked taps of row ra times 3 of row rb.
                for (int ra = 0; ra < 3; ra++)
                {
                    for (int rb = ra; rb < 3; rb++)
                    {
                        new Span<float>(partial, 12).Clear();
                        var loop = new ProductBlockLoop(stack + start, mask + maskStart, off + (3 * ra), off + (3 * rb), partial);
                        Lanes.Run(ref loop, length);
                        for (int i = 0; i < 3; i++)
                        {
                            for (int j = 0; j < 3; j++)
                            {
                                products[(9 * ((3 * ra) + i)) + (3 * rb) + j] += partial[(3 * i) + j];
                            }
                        }

                        if (ra == rb)
                        {
                            for (int i = 0; i < 3; i++)
                            {
                                sums[(3 * ra) + i] += partial[9 + i];
                            }
                        }
                    }
                }
            }
        }

        for (int a = 0; a < 9; a++)
        {
            for (int b = 0; b < a; b++)
            {
                products[(9 * a) + b] = products[(9 * b) + a];
            }
        }
    }

    /// <summary>y[o] = sum over taps of w[t] * x[o + off_t] at the positions runs visit (border ones hold garbage the scatter skips).</summary>
    public void Correlate(float* stack, float* w, float* output)
    {
        fixed (int* off = Offsets)
        {
            foreach (var (start, length, _) in runs)
            {
                var loop = new CorrelateLoop(stack + start, off, w, output + start);
                Lanes.Run(ref loop, length);
            }
        }
    }

    /// <summary>
    /// The cross sums of an output-gradient stack g (zero off the output positions) with an input stack x:
    /// <paramref name="sumG"/> = sum of g, <paramref name="cross"/>[t] = sum over o of g[o] * x[o + off_t].
    /// </summary>
    public void Cross(float* g, float* x, double* sumG, double* cross)
    {
        *sumG = 0;
        new Span<double>(cross, 9).Clear();
        var partial = stackalloc float[10];
        fixed (int* off = Offsets)
        {
            foreach (var (start, length, _) in runs)
            {
                new Span<float>(partial, 10).Clear();
                var loop = new CrossLoop(g + start, x + start, off, partial);
                Lanes.Run(ref loop, length);
                for (int t = 0; t < 9; t++)
                {
                    cross[t] += partial[t];
                }

                *sumG += partial[9];
            }
        }
    }

    /// <summary>
    /// The input gradient: dx = sum over taps t of the output positions' h_t moved back by off_t, with
    /// h_t[o] = w[t] * g[o] + k[t] - sum over t' of q[9t + t'] * x[o + off_t'] at output positions (0 elsewhere).
    /// <paramref name="dx"/> is a whole stack buffer, overwritten.
    /// </summary>
    public virtual void InputGradient(float* g, float* x, float* w, float* q, float* k, float* dx)
    {
        new Span<float>(dx, Total).Clear();
        fixed (float* mask = Mask)
        fixed (int* off = Offsets)
        {
            for (int t = 0; t < 9; t++)
            {
                foreach (var (start, length, maskStart) in runs)
                {
                    var loop = new InputGradientLoop(g + start, x + start, mask + maskStart, off, q + (9 * t), w[t], k[t], dx + start + off[t]);
                    Lanes.Run(ref loop, length);
                }
            }
        }
    }

    private readonly struct ProductBlockLoop(float* x, float* mask, int* offA, int* offB, float* partial) : IWidthLoop
    {
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public int Run<TV, TL>(int i, int n)
            where TV : struct
            where TL : struct, ILanes<TV>
        {
            if (n - i < TL.Count)
            {
                // No whole vector of this width: skip its set-up and reductions (runs are often a few vectors long).
                return i;
            }

            float* a0 = x + offA[0], a1 = x + offA[1], a2 = x + offA[2], b0 = x + offB[0], b1 = x + offB[1], b2 = x + offB[2];
            TV s00 = TL.Zero, s01 = TL.Zero, s02 = TL.Zero, s10 = TL.Zero, s11 = TL.Zero, s12 = TL.Zero, s20 = TL.Zero, s21 = TL.Zero, s22 = TL.Zero;
            TV m0 = TL.Zero, m1 = TL.Zero, m2 = TL.Zero;
            int step = TL.Count;
            for (; i + step <= n; i += step)
            {
                TV mk = TL.Load(mask + i);
                TV va0 = TL.Multiply(mk, TL.Load(a0 + i)), va1 = TL.Multiply(mk, TL.Load(a1 + i)), va2 = TL.Multiply(mk, TL.Load(a2 + i));
                TV vb0 = TL.Load(b0 + i), vb1 = TL.Load(b1 + i), vb2 = TL.Load(b2 + i);
                s00 = TL.Fma(va0, vb0, s00);
                s01 = TL.Fma(va0, vb1, s01);
                s02 = TL.Fma(va0, vb2, s02);
                s10 = TL.Fma(va1, vb0, s10);
                s11 = TL.Fma(va1, vb1, s11);
                s12 = TL.Fma(va1, vb2, s12);
                s20 = TL.Fma(va2, vb0, s20);
                s21 = TL.Fma(va2, vb1, s21);
                s22 = TL.Fma(va2, vb2, s22);
                m0 = TL.Add(m0, va0);
                m1 = TL.Add(m1, va1);
                m2 = TL.Add(m2, va2);
            }

            partial[0] += TL.Sum(s00);
            partial[1] += TL.Sum(s01);
            partial[2] += TL.Sum(s02);
            partial[3] += TL.Sum(s10);
            partial[4] += TL.Sum(s11);
            partial[5] += TL.Sum(s12);
            partial[6] += TL.Sum(s20);
            partial[7] += TL.Sum(s21);
            partial[8] += TL.Sum(s22);
            partial[9] += TL.Sum(m0);
            partial[10] += TL.Sum(m1);
            partial[11] += TL.Sum(m2);
            return i;
        }
    }

    private readonly struct CorrelateLoop(float* x, int* off, float* w, float* y) : IWidthLoop
    {
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public int Run<TV, TL>(int i, int n)
            where TV : struct
            where TL : struct, ILanes<TV>
        {
            if (n - i < TL.Count)
            {
                return i;
            }

            float* t0 = x + off[0], t1 = x + off[1], t2 = x + off[2], t3 = x + off[3], t4 = x + off[4], t5 = x + off[5], t6 = x + off[6], t7 = x + off[7], t8 = x + off[8];
            TV w0 = TL.Splat(w[0]), w1 = TL.Splat(w[1]), w2 = TL.Splat(w[2]), w3 = TL.Splat(w[3]), w4 = TL.Splat(w[4]);
            TV w5 = TL.Splat(w[5]), w6 = TL.Splat(w[6]), w7 = TL.Splat(w[7]), w8 = TL.Splat(w[8]);
            int step = TL.Count;
            for (; i + step <= n; i += step)
            {
                TV c = TL.Multiply(w0, TL.Load(t0 + i));
                c = TL.Fma(w1, TL.Load(t1 + i), c);
                c = TL.Fma(w2, TL.Load(t2 + i), c);
                c = TL.Fma(w3, TL.Load(t3 + i), c);
                c = TL.Fma(w4, TL.Load(t4 + i), c);
                c = TL.Fma(w5, TL.Load(t5 + i), c);
                c = TL.Fma(w6, TL.Load(t6 + i), c);
                c = TL.Fma(w7, TL.Load(t7 + i), c);
                c = TL.Fma(w8, TL.Load(t8 + i), c);
                TL.Store(y + i, c);
            }

            return i;
        }
    }

    private readonly struct CrossLoop(float* g, float* x, int* off, float* partial) : IWidthLoop
    {
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public int Run<TV, TL>(int i, int n)
            where TV : struct
            where TL : struct, ILanes<TV>
        {
            if (n - i < TL.Count)
            {
                return i;
            }

            float* t0 = x + off[0], t1 = x + off[1], t2 = x + off[2], t3 = x + off[3], t4 = x + off[4], t5 = x + off[5], t6 = x + off[6], t7 = x + off[7], t8 = x + off[8];
            TV s0 = TL.Zero, s1 = TL.Zero, s2 = TL.Zero, s3 = TL.Zero, s4 = TL.Zero, s5 = TL.Zero, s6 = TL.Zero, s7 = TL.Zero, s8 = TL.Zero, sg = TL.Zero;
            int step = TL.Count;
            for (; i + step <= n; i += step)
            {
                TV gv = TL.Load(g + i);
                s0 = TL.Fma(gv, TL.Load(t0 + i), s0);
                s1 = TL.Fma(gv, TL.Load(t1 + i), s1);
                s2 = TL.Fma(gv, TL.Load(t2 + i), s2);
                s3 = TL.Fma(gv, TL.Load(t3 + i), s3);
                s4 = TL.Fma(gv, TL.Load(t4 + i), s4);
                s5 = TL.Fma(gv, TL.Load(t5 + i), s5);
                s6 = TL.Fma(gv, TL.Load(t6 + i), s6);
                s7 = TL.Fma(gv, TL.Load(t7 + i), s7);
                s8 = TL.Fma(gv, TL.Load(t8 + i), s8);
                sg = TL.Add(sg, gv);
            }

            partial[0] += TL.Sum(s0);
            partial[1] += TL.Sum(s1);
            partial[2] += TL.Sum(s2);
            partial[3] += TL.Sum(s3);
            partial[4] += TL.Sum(s4);
            partial[5] += TL.Sum(s5);
            partial[6] += TL.Sum(s6);
            partial[7] += TL.Sum(s7);
            partial[8] += TL.Sum(s8);
            partial[9] += TL.Sum(sg);
            return i;
        }
    }

    private readonly struct InputGradientLoop(float* g, float* x, float* mask, int* off, float* q, float w, float k, float* dx) : IWidthLoop
    {
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public int Run<TV, TL>(int i, int n)
            where TV : struct
            where TL : struct, ILanes<TV>
        {
            if (n - i < TL.Count)
            {
                return i;
            }

            float* t0 = x + off[0], t1 = x + off[1], t2 = x + off[2], t3 = x + off[3], t4 = x + off[4], t5 = x + off[5], t6 = x + off[6], t7 = x + off[7], t8 = x + off[8];
            TV q0 = TL.Splat(q[0]), q1 = TL.Splat(q[1]), q2 = TL.Splat(q[2]), q3 = TL.Splat(q[3]), q4 = TL.Splat(q[4]);
            TV q5 = TL.Splat(q[5]), q6 = TL.Splat(q[6]), q7 = TL.Splat(q[7]), q8 = TL.Splat(q[8]);
            TV wv = TL.Splat(w), kv = TL.Splat(k);
            int step = TL.Count;
            for (; i + step <= n; i += step)
            {
                TV c = TL.Multiply(q0, TL.Load(t0 + i));
                c = TL.Fma(q1, TL.Load(t1 + i), c);
                c = TL.Fma(q2, TL.Load(t2 + i), c);
                c = TL.Fma(q3, TL.Load(t3 + i), c);
                c = TL.Fma(q4, TL.Load(t4 + i), c);
                c = TL.Fma(q5, TL.Load(t5 + i), c);
                c = TL.Fma(q6, TL.Load(t6 + i), c);
                c = TL.Fma(q7, TL.Load(t7 + i), c);
                c = TL.Fma(q8, TL.Load(t8 + i), c);
                TV h = TL.Subtract(TL.Fma(wv, TL.Load(g + i), kv), c);
                TL.Store(dx + i, TL.Fma(TL.Load(mask + i), h, TL.Load(dx + i)));
            }

            return i;
        }
    }

    protected readonly struct SumLoop(float* x, float* sum) : IWidthLoop
    {
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public int Run<TV, TL>(int i, int n)
            where TV : struct
            where TL : struct, ILanes<TV>
        {
            if (n - i < TL.Count)
            {
                return i;
            }

            TV s = TL.Zero;
            int step = TL.Count;
            for (; i + step <= n; i += step)
            {
                s = TL.Add(s, TL.Load(x + i));
            }

            *sum += TL.Sum(s);
            return i;
        }
    }

    private readonly struct AddMaskedLoop(float* x, float* mask, float value) : IWidthLoop
    {
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public int Run<TV, TL>(int i, int n)
            where TV : struct
            where TL : struct, ILanes<TV>
        {
            if (n - i < TL.Count)
            {
                return i;
            }

            TV v = TL.Splat(value);
            int step = TL.Count;
            for (; i + step <= n; i += step)
            {
                TL.Store(x + i, TL.Fma(TL.Load(mask + i), v, TL.Load(x + i)));
            }

            return i;
        }
    }
}
