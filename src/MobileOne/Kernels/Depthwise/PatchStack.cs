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
