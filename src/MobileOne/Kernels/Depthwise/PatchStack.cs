using System.Runtime.CompilerServices;

namespace MobileOne.Kernels.Depthwise;

/// <summary>
/// One channel of a 3x3, stride-1, padding-1 depthwise layer over a whole batch, in one of two layouts of the same
/// padded planes (every image's plane with a one-pixel border of zeros), so a 3x3 window is nine fixed offsets and a
/// pass over the channel is a few flat loops ("runs") with no edge cases:
/// <list type="bullet">
/// <item><b>planes in a row</b>: the padded planes one after another; a run is a block of consecutive positions, and
/// <see cref="PatchPasses.Mask"/> (1 at a plane's interior, 0 on borders and the rounding tail) keeps border positions out of
/// every sum. Suits planes of many pixels.</item>
/// <item><b>images in lanes</b>: position-major, the batch's images contiguous at each position, so a run is one
/// interior position over all images and nothing is wasted on borders; suits small planes (a padded 2x2 plane is
/// four times the plane), and the mask is all ones.</item>
/// </list>
/// A window read from an interior position never leaves its own plane. The loops over the layout are those of
/// <see cref="PatchPasses"/>.
/// </summary>
internal sealed unsafe class PatchStack : PatchPasses
{
    /// <summary>The layout of <paramref name="batch"/> planes of <paramref name="height"/> x <paramref name="width"/>.</summary>
    public PatchStack(int batch, int height, int width, bool imagesInLanes)
        : this(batch, height, width, imagesInLanes, Layout(batch, height, width, imagesInLanes))
    {
    }

    private PatchStack(int batch, int height, int width, bool imagesInLanes, ((int, int, int)[] Runs, int Total, float[] Mask, int Margin) layout)
        : base(layout.Runs, layout.Total, layout.Mask)
    {
        (Batch, Height, Width, ImagesInLanes, Margin) = (batch, height, width, imagesInLanes, layout.Margin);
        RowStride = width + 2;
        PlaneSize = (height + 2) * RowStride;
        int scale = imagesInLanes ? batch : 1;
        for (int t = 0; t < 9; t++)
        {
            Offsets[t] = ((((t / 3) - 1) * RowStride) + (t % 3) - 1) * scale;
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

    /// <summary>Runs, buffer size, mask and margin of the layout (see the class summary).</summary>
    private static ((int, int, int)[] Runs, int Total, float[] Mask, int Margin) Layout(int batch, int height, int width, bool imagesInLanes)
    {
        int rowStride = width + 2, planeSize = (height + 2) * rowStride;
        if (imagesInLanes)
        {
            var mask = new float[batch];
            mask.AsSpan().Fill(1f);
            var runs = new (int, int, int)[height * width];
            for (int r = 0; r < height; r++)
            {
                for (int c = 0; c < width; c++)
                {
                    runs[(r * width) + c] = ((((r + 1) * rowStride) + c + 1) * batch, batch, 0);
                }
            }

            return (runs, checked(planeSize * batch), mask, 0);
        }

        int length = checked(((batch * planeSize) + 15) & ~15);
        int margin = (rowStride + 1 + 15) & ~15;
        var rowMask = new float[length];
        for (int i = 0; i < batch; i++)
        {
            for (int r = 1; r <= height; r++)
            {
                rowMask.AsSpan((i * planeSize) + (r * rowStride) + 1, width).Fill(1f);
            }
        }

        return (BlockRuns(margin, length), length + (2 * margin), rowMask, margin);
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

    /// <summary>
    /// Planes in a row: the buffer range from the first image's first output to just past the last image's last one,
    /// which holds every nonzero pixel (the other images' borders in between are zero).
    /// </summary>
    private (long First, long End) OutputSpan =>
        (Margin + RowStride + 1, Margin + ((long)(Batch - 1) * PlaneSize) + ((long)Height * RowStride) + Width + 1);

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


    /// <summary>
    /// The patch moments of <see cref="PatchPasses.Moments"/> for planes in a row. With zero borders, the sum over the
    /// output positions of x[o + off_a] x[o + off_b] is the whole batch's lag product sum_u x[u] x[u + d] at
    /// d = off_b - off_a, less the pixels u that no window reaches through tap a: the plane's first or last row and
    /// first or last column (the corner counted once). So one pass takes the 13 distinct lags of the 5x5 window
    /// (13 multiply-adds per position instead of 45 products of masked taps), and short passes along the plane's
    /// edges take those rows' and columns' own lags; beside a row's edge only the lags along the row survive (the
    /// rest reach the zero border), and likewise for a column.
    /// </summary>
    public override void Moments(float* stack, double* sums, double* products)
    {
        if (ImagesInLanes)
        {
            base.Moments(stack, sums, products);
            return;
        }

        int rs = RowStride;

        // lags[j]: sum over the batch of x[u] x[u + d_j] for the 13 offsets d with d = (0, 0..2) or (1..2, -2..2);
        // lags[13] the sum of x. Float partial sums over blocks of positions, added in double.
        var lags = stackalloc double[14];
        var partial = stackalloc float[14];
        new Span<double>(lags, 14).Clear();
        var (first, end) = OutputSpan;
        for (long start = first; start < end; start += Block)
        {
            new Span<float>(partial, 14).Clear();
            var loop = new LagLoop(stack + start, rs, partial);
            Lanes.Run(ref loop, (int)Math.Min(Block, end - start));
            for (int j = 0; j < 14; j++)
            {
                lags[j] += partial[j];
            }
        }

        // The edges, summed over the batch: [0..2] the lags 0..2 along the edge, [3] its sum; rows 1 and Height,
        // columns 1 and Width; corners' values and squares in the order (top, left), (top, right), (bottom, left),
        // (bottom, right).
        var top = stackalloc double[4];
        var bottom = stackalloc double[4];
        var left = stackalloc double[4];
        var right = stackalloc double[4];
        var corner = stackalloc double[4];
        var cornerSquare = stackalloc double[4];
        for (int j = 0; j < 4; j++)
        {
            top[j] = bottom[j] = left[j] = right[j] = corner[j] = cornerSquare[j] = 0;
        }

        for (int i = 0; i < Batch; i++)
        {
            float* plane = stack + Margin + ((long)i * PlaneSize);
            EdgeLags(plane + rs + 1, 1, Width, top);
            EdgeLags(plane + ((long)Height * rs) + 1, 1, Width, bottom);
            EdgeLags(plane + rs + 1, rs, Height, left);
            EdgeLags(plane + rs + Width, rs, Height, right);
            float tl = plane[rs + 1], tr = plane[rs + Width], bl = plane[((long)Height * rs) + 1], br = plane[((long)Height * rs) + Width];
            corner[0] += tl;
            corner[1] += tr;
            corner[2] += bl;
            corner[3] += br;
            cornerSquare[0] += tl * tl;
            cornerSquare[1] += tr * tr;
            cornerSquare[2] += bl * bl;
            cornerSquare[3] += br * br;
        }

        for (int a = 0; a < 9; a++)
        {
            int ya = (a / 3) - 1, xa = (a % 3) - 1;
            double* row = ya > 0 ? top : ya < 0 ? bottom : null;
            double* column = xa > 0 ? left : xa < 0 ? right : null;
            int cornerIndex = ((ya < 0 ? 1 : 0) * 2) + (xa < 0 ? 1 : 0);
            bool inCorner = row != null && column != null;
            sums[a] = lags[13] - (row == null ? 0 : row[3]) - (column == null ? 0 : column[3]) + (inCorner ? corner[cornerIndex] : 0);
            for (int b = a; b < 9; b++)
            {
                int dr = (b / 3) - 1 - ya, dc = (b % 3) - 1 - xa;
                double value = lags[LagIndex(dr, dc)];
                if (row != null && dr == 0)
                {
                    value -= row[Math.Abs(dc)];
                }

                if (column != null && dc == 0)
                {
                    value -= column[Math.Abs(dr)];
                }

                if (inCorner && a == b)
                {
                    value += cornerSquare[cornerIndex];
                }

                products[(9 * a) + b] = products[(9 * b) + a] = value;
            }
        }
    }

    /// <summary>Where the lag (dr, dc) or its opposite is in <see cref="LagLoop"/>'s sums.</summary>
    private static int LagIndex(int dr, int dc)
    {
        if (dr < 0 || (dr == 0 && dc < 0))
        {
            (dr, dc) = (-dr, -dc);
        }

        return dr == 0 ? dc : 3 + ((dr - 1) * 5) + dc + 2;
    }

    /// <summary>
    /// Adds the lags 0, 1, 2 of <paramref name="length"/> pixels <paramref name="stride"/> apart (sum of e[j] e[j + lag],
    /// the pixels past the end being zero border) to <paramref name="sums"/>[0..2] and their sum to [3].
    /// </summary>
    private static void EdgeLags(float* e, int stride, int length, double* sums)
    {
        float l0 = 0f, l1 = 0f, l2 = 0f, s = 0f;
        for (int j = 0; j < length; j++)
        {
            float v = e[(long)j * stride];
            s += v;
            l0 += v * v;
            l1 += v * e[(long)(j + 1) * stride];
            l2 += v * e[(long)(j + 2) * stride];
        }

        sums[0] += l0;
        sums[1] += l1;
        sums[2] += l2;
        sums[3] += s;
    }

    /// <summary>
    /// The input gradient of <see cref="PatchPasses.InputGradient"/> for planes in a row, at every output position
    /// (the other positions of <paramref name="dx"/> are left undefined; <see cref="Scatter"/> reads only outputs).
    /// Written per output p instead of per tap, dx[p] = sum over taps t with p - off_t an output position of
    /// w[t] g[p - off_t] + k[t] - sum over t' of q[9t + t'] x[p - off_t + off_t']. Where every p - off_t is an output
    /// (away from the plane's edge) the last term is one 5x5 correlation of x whose taps sum the entries of q with
    /// the same off_t' - off_t (a doubly block-Toeplitz structure): 9 + 25 multiply-adds per position instead of the
    /// 9 x 12 of the tap-by-tap scatter. The zero borders make g's and x's reads of the excluded positions vanish
    /// except for the q terms of windows centred on the border; those go back in by a fix-up along each plane's
    /// first and last rows (a 5-tap correlation of the row) and first and last columns.
    /// </summary>
    public override void InputGradient(float* g, float* x, float* w, float* q, float* k, float* dx)
    {
        if (ImagesInLanes)
        {
            // The padded planes of images in lanes have no margin for the 5x5 reads; that layout only serves planes
            // of up to 16 pixels and keeps the tap-by-tap form.
            base.InputGradient(g, x, w, q, k, dx);
            return;
        }

        int rs = RowStride;

        // kernel[(dr + 2) * 5 + dc + 2] = sum of q[9t + t'] over the tap pairs with off_t' - off_t = (dr, dc).
        var kernel = stackalloc float[25];
        new Span<float>(kernel, 25).Clear();
        float kappa = 0f;
        for (int t = 0; t < 9; t++)
        {
            kappa += k[t];
            for (int u = 0; u < 9; u++)
            {
                kernel[((((u / 3) - (t / 3)) + 2) * 5) + ((u % 3) - (t % 3)) + 2] += q[(9 * t) + u];
            }
        }

        // One pass from the first image's first output to the last image's last output (the other images' borders
        // in between compute garbage that nothing reads): reads reach two rows and two columns out, which stay
        // inside the buffer because the margin is at least a row and a pixel.
        var (first, end) = OutputSpan;
        var main = new CorrelatedGradientLoop(g + first, x + first, rs, w, kernel, kappa, dx + first);
        Lanes.Run(ref main, checked((int)(end - first)));

        // The fix-ups: first row (taps of the window's bottom row fell on the top border, dy = +1), last row (dy = -1),
        // then first and last columns (dx = +1, -1) for the taps whose window centre is in a row of the plane (a
        // centre in a corner is the rows' fix-up).
        var top = stackalloc float[5];
        var bottom = stackalloc float[5];
        var left = stackalloc float[5];
        var right = stackalloc float[5];
        for (int e = 0; e < 5; e++)
        {
            top[e] = bottom[e] = left[e] = right[e] = 0f;
        }

        for (int a = -1; a <= 1; a++)
        {
            for (int b = -1; b <= 1; b++)
            {
                top[b - a + 2] += q[(9 * (6 + a + 1)) + 6 + b + 1];
                bottom[b - a + 2] += q[(9 * (a + 1)) + b + 1];
                left[b - a + 2] += q[(9 * ((3 * (a + 1)) + 2)) + (3 * (b + 1)) + 2];
                right[b - a + 2] += q[(9 * (3 * (a + 1))) + (3 * (b + 1))];
            }
        }

        float kTop = k[6] + k[7] + k[8], kBottom = k[0] + k[1] + k[2];
        for (int i = 0; i < Batch; i++)
        {
            long plane = Margin + ((long)i * PlaneSize);
            var topRow = new RowFixLoop(x + plane + rs + 1, top, kTop, dx + plane + rs + 1);
            Lanes.Run(ref topRow, Width);
            var bottomRow = new RowFixLoop(x + plane + ((long)Height * rs) + 1, bottom, kBottom, dx + plane + ((long)Height * rs) + 1);
            Lanes.Run(ref bottomRow, Width);
            ColumnFix(x + plane + 1, dx + plane + 1, q, k, left, tapColumn: 2);
            ColumnFix(x + plane + Width, dx + plane + Width, q, k, right, tapColumn: 0);
        }
    }

    /// <summary>
    /// Adds to one border column of a plane (<paramref name="xColumn"/>, <paramref name="dxColumn"/>: row 0 of that
    /// column) the terms of the taps in window column <paramref name="tapColumn"/>, whose window centre lies in the
    /// border column beside it: sum over rows a with centre row r - a in the plane of sum over a' of
    /// q[(a, c), (a', c)] x[r - a + a'] - k[(a, c)]. <paramref name="interior"/> is that sum's 5-tap kernel for rows
    /// where every a counts.
    /// </summary>
    private void ColumnFix(float* xColumn, float* dxColumn, float* q, float* k, float* interior, int tapColumn)
    {
        int rs = RowStride;
        float kColumn = k[tapColumn] + k[3 + tapColumn] + k[6 + tapColumn];
        for (int r = 1; r <= Height; r++)
        {
            float* xr = xColumn + ((long)r * rs);
            float sum;
            if (r > 1 && r < Height)
            {
                sum = (interior[0] * xr[-2 * rs]) + (interior[1] * xr[-rs]) + (interior[2] * xr[0]) + (interior[3] * xr[rs]) + (interior[4] * xr[2 * rs]) - kColumn;
            }
            else
            {
                sum = 0f;
                for (int a = -1; a <= 1; a++)
                {
                    if (r - a < 1 || r - a > Height)
                    {
                        continue;
                    }

                    int t = (3 * (a + 1)) + tapColumn;
                    sum -= k[t];
                    for (int b = -1; b <= 1; b++)
                    {
                        sum += q[(9 * t) + (3 * (b + 1)) + tapColumn] * xr[(b - a) * rs];
                    }
                }
            }

            dxColumn[(long)r * rs] += sum;
        }
    }

    /// <summary>dx[p] = kappa + sum over taps of w[t] g[p - off_t] - sum over the 5x5 offsets d of kernel[d] x[p + d].</summary>
    private readonly struct CorrelatedGradientLoop(float* g, float* x, int rowStride, float* w, float* kernel, float kappa, float* dx) : IWidthLoop
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

            // g[p - off_t]: tap row dy reads g's row -dy, tap column dx its column -dx.
            float* g0 = g + rowStride, g1 = g, g2 = g - rowStride;
            float* x0 = x - (2 * rowStride), x1 = x - rowStride, x2 = x, x3 = x + rowStride, x4 = x + (2 * rowStride);
            TV w0 = TL.Splat(w[0]), w1 = TL.Splat(w[1]), w2 = TL.Splat(w[2]), w3 = TL.Splat(w[3]), w4 = TL.Splat(w[4]);
            TV w5 = TL.Splat(w[5]), w6 = TL.Splat(w[6]), w7 = TL.Splat(w[7]), w8 = TL.Splat(w[8]);
            TV k00 = TL.Splat(kernel[0]), k01 = TL.Splat(kernel[1]), k02 = TL.Splat(kernel[2]), k03 = TL.Splat(kernel[3]), k04 = TL.Splat(kernel[4]);
            TV k10 = TL.Splat(kernel[5]), k11 = TL.Splat(kernel[6]), k12 = TL.Splat(kernel[7]), k13 = TL.Splat(kernel[8]), k14 = TL.Splat(kernel[9]);
            TV k20 = TL.Splat(kernel[10]), k21 = TL.Splat(kernel[11]), k22 = TL.Splat(kernel[12]), k23 = TL.Splat(kernel[13]), k24 = TL.Splat(kernel[14]);
            TV k30 = TL.Splat(kernel[15]), k31 = TL.Splat(kernel[16]), k32 = TL.Splat(kernel[17]), k33 = TL.Splat(kernel[18]), k34 = TL.Splat(kernel[19]);
            TV k40 = TL.Splat(kernel[20]), k41 = TL.Splat(kernel[21]), k42 = TL.Splat(kernel[22]), k43 = TL.Splat(kernel[23]), k44 = TL.Splat(kernel[24]);
            TV kv = TL.Splat(kappa);
            int step = TL.Count;
            for (; i + step <= n; i += step)
            {
                // Two chains (g's taps, x's) so that the multiply-adds overlap.
                TV a = TL.Fma(w0, TL.Load(g0 + i + 1), kv);
                a = TL.Fma(w1, TL.Load(g0 + i), a);
                a = TL.Fma(w2, TL.Load(g0 + i - 1), a);
                a = TL.Fma(w3, TL.Load(g1 + i + 1), a);
                a = TL.Fma(w4, TL.Load(g1 + i), a);
                a = TL.Fma(w5, TL.Load(g1 + i - 1), a);
                a = TL.Fma(w6, TL.Load(g2 + i + 1), a);
                a = TL.Fma(w7, TL.Load(g2 + i), a);
                a = TL.Fma(w8, TL.Load(g2 + i - 1), a);
                TV c = TL.Multiply(k00, TL.Load(x0 + i - 2));
                c = TL.Fma(k01, TL.Load(x0 + i - 1), c);
                c = TL.Fma(k02, TL.Load(x0 + i), c);
                c = TL.Fma(k03, TL.Load(x0 + i + 1), c);
                c = TL.Fma(k04, TL.Load(x0 + i + 2), c);
                c = TL.Fma(k10, TL.Load(x1 + i - 2), c);
                c = TL.Fma(k11, TL.Load(x1 + i - 1), c);
                c = TL.Fma(k12, TL.Load(x1 + i), c);
                c = TL.Fma(k13, TL.Load(x1 + i + 1), c);
                c = TL.Fma(k14, TL.Load(x1 + i + 2), c);
                c = TL.Fma(k20, TL.Load(x2 + i - 2), c);
                c = TL.Fma(k21, TL.Load(x2 + i - 1), c);
                c = TL.Fma(k22, TL.Load(x2 + i), c);
                c = TL.Fma(k23, TL.Load(x2 + i + 1), c);
                c = TL.Fma(k24, TL.Load(x2 + i + 2), c);
                c = TL.Fma(k30, TL.Load(x3 + i - 2), c);
                c = TL.Fma(k31, TL.Load(x3 + i - 1), c);
                c = TL.Fma(k32, TL.Load(x3 + i), c);
                c = TL.Fma(k33, TL.Load(x3 + i + 1), c);
                c = TL.Fma(k34, TL.Load(x3 + i + 2), c);
                c = TL.Fma(k40, TL.Load(x4 + i - 2), c);
                c = TL.Fma(k41, TL.Load(x4 + i - 1), c);
                c = TL.Fma(k42, TL.Load(x4 + i), c);
                c = TL.Fma(k43, TL.Load(x4 + i + 1), c);
                c = TL.Fma(k44, TL.Load(x4 + i + 2), c);
                TL.Store(dx + i, TL.Subtract(a, c));
            }

            return i;
        }
    }

    /// <summary>partial[j] += sum over positions u of x[u] x[u + d_j] (the 13 lags of <see cref="LagIndex"/>), partial[13] += sum of x[u].</summary>
    private readonly struct LagLoop(float* x, int rowStride, float* partial) : IWidthLoop
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

            float* r1 = x + rowStride, r2 = x + (2 * rowStride);
            TV s0 = TL.Zero, s1 = TL.Zero, s2 = TL.Zero, s3 = TL.Zero, s4 = TL.Zero, s5 = TL.Zero, s6 = TL.Zero;
            TV s7 = TL.Zero, s8 = TL.Zero, s9 = TL.Zero, s10 = TL.Zero, s11 = TL.Zero, s12 = TL.Zero, sx = TL.Zero;
            int step = TL.Count;
            for (; i + step <= n; i += step)
            {
                TV v = TL.Load(x + i);
                sx = TL.Add(sx, v);
                s0 = TL.Fma(v, v, s0);
                s1 = TL.Fma(v, TL.Load(x + i + 1), s1);
                s2 = TL.Fma(v, TL.Load(x + i + 2), s2);
                s3 = TL.Fma(v, TL.Load(r1 + i - 2), s3);
                s4 = TL.Fma(v, TL.Load(r1 + i - 1), s4);
                s5 = TL.Fma(v, TL.Load(r1 + i), s5);
                s6 = TL.Fma(v, TL.Load(r1 + i + 1), s6);
                s7 = TL.Fma(v, TL.Load(r1 + i + 2), s7);
                s8 = TL.Fma(v, TL.Load(r2 + i - 2), s8);
                s9 = TL.Fma(v, TL.Load(r2 + i - 1), s9);
                s10 = TL.Fma(v, TL.Load(r2 + i), s10);
                s11 = TL.Fma(v, TL.Load(r2 + i + 1), s11);
                s12 = TL.Fma(v, TL.Load(r2 + i + 2), s12);
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
            partial[9] += TL.Sum(s9);
            partial[10] += TL.Sum(s10);
            partial[11] += TL.Sum(s11);
            partial[12] += TL.Sum(s12);
            partial[13] += TL.Sum(sx);
            return i;
        }
    }

    /// <summary>dx[p] += sum over e in -2..2 of r[e + 2] x[p + e] - k along one row.</summary>
    private readonly struct RowFixLoop(float* x, float* r, float k, float* dx) : IWidthLoop
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

            TV r0 = TL.Splat(r[0]), r1 = TL.Splat(r[1]), r2 = TL.Splat(r[2]), r3 = TL.Splat(r[3]), r4 = TL.Splat(r[4]), kv = TL.Splat(k);
            int step = TL.Count;
            for (; i + step <= n; i += step)
            {
                TV s = TL.Subtract(TL.Load(dx + i), kv);
                s = TL.Fma(r0, TL.Load(x + i - 2), s);
                s = TL.Fma(r1, TL.Load(x + i - 1), s);
                s = TL.Fma(r2, TL.Load(x + i), s);
                s = TL.Fma(r3, TL.Load(x + i + 1), s);
                s = TL.Fma(r4, TL.Load(x + i + 2), s);
                TL.Store(dx + i, s);
            }

            return i;
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
}
