using System.Runtime.CompilerServices;

namespace MobileOne.Kernels.Depthwise;

/// <summary>
/// One channel of a 3x3, stride-1, padding-1 depthwise layer over a whole batch, in one of two layouts of the same
/// padded planes (every image's plane with a one-pixel border of zeros), so a 3x3 window is nine fixed offsets and a
/// pass over the channel is a few flat loops ("runs") with no edge cases:
/// <list type="bullet">
/// <item><b>planes in a row</b>: the padded planes one after another; a run is a block of consecutive positions, and
/// <see cref="Mask"/> (1 at a plane's interior, 0 on borders and the rounding tail) keeps border positions out of
/// every sum. Suits planes of many pixels.</item>
/// <item><b>images in lanes</b>: position-major, the batch's images contiguous at each position, so a run is one
/// interior position over all images and nothing is wasted on borders; suits small planes (a padded 2x2 plane is
/// four times the plane), and the mask is all ones.</item>
/// </list>
/// A window read from an interior position never leaves its own plane. The loops are the passes of
/// <c>DepthwiseMoments</c>: the patch moments of the input (the statistics of every branch), one convolution with the
/// combined kernel, the cross sums with the output gradient (every weight gradient), and the input gradient with the
/// moments' correction.
/// </summary>
internal sealed unsafe class PatchStack
{
    /// <summary>Positions summed in float before a partial sum is added to a double: 256 terms per lane at 16 lanes.</summary>
    private const int Block = 4096;

    private readonly (int Start, int Length, int MaskStart)[] runs;

    /// <summary>The layout of <paramref name="batch"/> planes of <paramref name="height"/> x <paramref name="width"/>.</summary>
    public PatchStack(int batch, int height, int width, bool imagesInLanes)
    {
        (Batch, Height, Width, ImagesInLanes) = (batch, height, width, imagesInLanes);
        RowStride = width + 2;
        PlaneSize = (height + 2) * RowStride;
        int scale = imagesInLanes ? batch : 1;
        for (int t = 0; t < 9; t++)
        {
            Offsets[t] = ((((t / 3) - 1) * RowStride) + (t % 3) - 1) * scale;
        }

        if (imagesInLanes)
        {
            Margin = 0;
            Total = checked(PlaneSize * batch);
            Mask = new float[batch];
            Mask.AsSpan().Fill(1f);
            runs = new (int, int, int)[height * width];
            for (int r = 0; r < height; r++)
            {
                for (int c = 0; c < width; c++)
                {
                    runs[(r * width) + c] = ((((r + 1) * RowStride) + c + 1) * batch, batch, 0);
                }
            }
        }
        else
        {
            int length = checked(((batch * PlaneSize) + 15) & ~15);
            Margin = (RowStride + 1 + 15) & ~15;
            Total = length + (2 * Margin);
            Mask = new float[length];
            for (int i = 0; i < batch; i++)
            {
                for (int r = 1; r <= height; r++)
                {
                    Mask.AsSpan((i * PlaneSize) + (r * RowStride) + 1, width).Fill(1f);
                }
            }

            runs = new (int, int, int)[(length + Block - 1) / Block];
            for (int k = 0; k < runs.Length; k++)
            {
                runs[k] = (Margin + (k * Block), Math.Min(Block, length - (k * Block)), k * Block);
            }
        }

        int stride = width + 1;
        for (int a = 0; a < 9; a++)
        {
            for (int b = 0; b < 9; b++)
            {
                var (r0, r1, c0, c1) = PairRegion(a, b);
                PairCounts[(a * 9) + b] = (double)batch * (r1 - r0) * (c1 - c0);
                PairCorners[(a * 9) + b] = ((r1 * stride) + c1, (r0 * stride) + c1, (r1 * stride) + c0, (r0 * stride) + c0);
            }
        }
    }

    public int Batch { get; }

    public int Height { get; }

    public int Width { get; }

    /// <summary>Whether the images of the batch are contiguous at each position (else the planes are).</summary>
    public bool ImagesInLanes { get; }

    /// <summary>Width + 2.</summary>
    public int RowStride { get; }

    /// <summary>(Height + 2) x (Width + 2).</summary>
    public int PlaneSize { get; }

    /// <summary>Floats before the planes that windows of border positions read (planes in a row; 0 with images in lanes).</summary>
    public int Margin { get; }

    /// <summary>Floats of one stack buffer.</summary>
    public int Total { get; }

    /// <summary>1 at the positions a run visits that are outputs, 0 elsewhere (read from each run's MaskStart).</summary>
    public float[] Mask { get; }

    /// <summary>Offset in floats of tap t (row-major in the 3x3 window) from the window's centre.</summary>
    public int[] Offsets { get; } = new int[9];

    /// <summary>
    /// [9a + b]: the output positions of the batch whose window taps a and b both fall inside the plane (a = b: those
    /// whose tap a does).
    /// </summary>
    public double[] PairCounts { get; } = new double[81];

    /// <summary>
    /// [9a + b]: the <see cref="PlaneIntegral"/> entries whose (+, -, -, +) sum is the sum over those positions of the
    /// pixel under tap a (see <see cref="PairRegion"/>).
    /// </summary>
    public (int Plus, int MinusRow, int MinusCol, int PlusCorner)[] PairCorners { get; } = new (int, int, int, int)[81];

    /// <summary>Where padded position <paramref name="q"/> of image <paramref name="i"/> is in a stack buffer.</summary>
    private int Element(int i, int q) => ImagesInLanes ? (q * Batch) + i : Margin + (i * PlaneSize) + q;

    /// <summary>
    /// stack = channel <paramref name="c"/> of NCHW <paramref name="nchw"/> at the output positions, 0 everywhere else
    /// (borders, margins, tail). <paramref name="stack"/> points at the buffer's start.
    /// </summary>
    public void Gather(float* nchw, int channels, int c, float* stack)
    {
        new Span<float>(stack, Total).Clear();
        long plane = (long)Height * Width;
        int step = ImagesInLanes ? Batch : 1;
        for (int i = 0; i < Batch; i++)
        {
            float* src = nchw + ((((long)i * channels) + c) * plane);
            float* dst = stack + Element(i, RowStride + 1);
            for (int r = 0; r < Height; r++)
            {
                if (step == 1)
                {
                    Elementwise.Shift(src, dst, Width, 0f, relu: false);
                }
                else
                {
                    for (int x = 0; x < Width; x++)
                    {
                        dst[x * step] = src[x];
                    }
                }

                src += Width;
                dst += RowStride * step;
            }
        }
    }

    /// <summary>Channel <paramref name="c"/> of NCHW <paramref name="nchw"/> = the stack's output positions + <paramref name="add"/>, then max with 0 when <paramref name="relu"/>.</summary>
    public void Scatter(float* stack, float add, bool relu, float* nchw, int channels, int c)
    {
        long plane = (long)Height * Width;
        int step = ImagesInLanes ? Batch : 1;
        for (int i = 0; i < Batch; i++)
        {
            float* src = stack + Element(i, RowStride + 1);
            float* dst = nchw + ((((long)i * channels) + c) * plane);
            for (int r = 0; r < Height; r++)
            {
                if (step == 1)
                {
                    Elementwise.Shift(src, dst, Width, add, relu);
                }
                else
                {
                    for (int x = 0; x < Width; x++)
                    {
                        float v = src[x * step] + add;
                        dst[x] = relu ? MathF.Max(v, 0f) : v;
                    }
                }

                src += RowStride * step;
                dst += Width;
            }
        }
    }

    /// <summary>The sum of a whole stack buffer (for a gathered stack: of the channel's values), in float blocks added in double.</summary>
    public double Sum(float* stack)
    {
        double total = 0;
        var partial = stackalloc float[1];
        for (int start = 0; start < Total; start += Block)
        {
            *partial = 0f;
            var loop = new SumLoop(stack + start, partial);
            Lanes.Run(ref loop, Math.Min(Block, Total - start));
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
    /// The sum of the planes of a stack (zero borders) over the batch as a 2-D prefix sum:
    /// <paramref name="integral"/>[(r * (Width + 1)) + c] = sum of rows [0, r) x columns [0, c), (Height + 1) x (Width + 1)
    /// entries. <paramref name="planeScratch"/> holds <see cref="PlaneSize"/> floats.
    /// </summary>
    public void PlaneIntegral(float* stack, float* planeScratch, double* integral)
    {
        new Span<float>(planeScratch, PlaneSize).Clear();
        if (ImagesInLanes)
        {
            for (int q = 0; q < PlaneSize; q++)
            {
                var loop = new SumLoop(stack + (q * Batch), planeScratch + q);
                Lanes.Run(ref loop, Batch);
            }
        }
        else
        {
            for (int i = 0; i < Batch; i++)
            {
                Elementwise.Add(new Span<float>(planeScratch, PlaneSize), new ReadOnlySpan<float>(stack + Margin + (i * PlaneSize), PlaneSize));
            }
        }

        int stride = Width + 1;
        new Span<double>(integral, stride).Clear();
        for (int r = 1; r <= Height; r++)
        {
            double row = 0;
            integral[r * stride] = 0;
            float* src = planeScratch + (r * RowStride) + 1;
            for (int c = 1; c <= Width; c++)
            {
                row += src[c - 1];
                integral[(r * stride) + c] = integral[((r - 1) * stride) + c] + row;
            }
        }
    }

    /// <summary>
    /// The output positions o of one plane whose window taps <paramref name="a"/> and <paramref name="b"/> both fall
    /// inside the plane, as the half-open row and column ranges of the positions o + off_a (tap a's pixels).
    /// </summary>
    public (int Row0, int Row1, int Col0, int Col1) PairRegion(int a, int b)
    {
        int ar = (a / 3) - 1, ac = (a % 3) - 1, br = (b / 3) - 1, bc = (b % 3) - 1;
        // u = o + off_a with u, u - off_a and u - off_a + off_b all inside the plane.
        int row0 = Math.Min(Height, Math.Max(0, Math.Max(ar, ar - br))), row1 = Math.Min(Height, Math.Min(Height + ar, Height + ar - br));
        int col0 = Math.Min(Width, Math.Max(0, Math.Max(ac, ac - bc))), col1 = Math.Min(Width, Math.Min(Width + ac, Width + ac - bc));
        return (row0, Math.Max(row0, row1), col0, Math.Max(col0, col1));
    }

    /// <summary>
    /// The patch moments of a stack: <paramref name="sums"/>[t] = sum over output positions o of x[o + off_t], and
    /// <paramref name="products"/>[9a + b] = sum over o of x[o + off_a] * x[o + off_b] (all 81, symmetric).
    /// </summary>
    public void Moments(float* stack, double* sums, double* products)
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
    public void InputGradient(float* g, float* x, float* w, float* q, float* k, float* dx)
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

    private readonly struct SumLoop(float* x, float* sum) : IWidthLoop
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
