using MobileOne.Graph;
using MobileOne.Kernels.Gemm;
using MobileOne.Kernels;
using MobileOne.Kernels.Engine;
using MobileOne.Kernels.Depthwise;

namespace MobileOne.Inference;

/// <summary>
/// A step that computes one engine operation. The epilogue runs on the pixels and channels the share has just
/// written (still in cache): the residual add, then any activation the kernel did not apply itself.
/// </summary>
internal abstract unsafe class OpStep(EngineOp op, int index) : EngineStep
{
    public EngineOp Op => op;

    /// <summary>Position of the operation in the program (indexes the per-operation arrays of <see cref="ShapePlan"/>).</summary>
    public int Index => index;

    /// <summary>Whether the kernel applies the activation itself: ReLU with no residual to add first.</summary>
    protected bool NativeRelu => op.Activation == ActivationKind.Relu && op.Residual < 0;

    /// <summary>Residual add and activation for pixels [p0, p1) of all images and channels [c0, c1) of the output.</summary>
    protected void Epilogue(RunState s, long p0, long p1, int c0, int c1, bool activationDone)
    {
        var o = s.Layout(op.Output);
        c1 = Math.Min(c1, o.Channels);
        if (p1 <= p0 || c1 <= c0)
        {
            return;
        }

        float* y = s.Value(op.Output) + (p0 * o.Stride) + c0;
        if (op.Residual >= 0)
        {
            var r = s.Layout(op.Residual);
            ChannelOps.AddRows(s.Isa, y, o.Stride, s.Value(op.Residual) + (p0 * r.Stride) + c0, r.Stride, p1 - p0, c1 - c0);
        }

        if (!activationDone)
        {
            Activations.ApplyRows(op.Activation, y, p1 - p0, o.Stride, c1 - c0, s.Isa);
        }
    }

    protected void Epilogue(RunState s, long p0, long p1, bool activationDone) => Epilogue(s, p0, p1, 0, int.MaxValue, activationDone);

    protected int GemmFlags(bool accumulate) => (accumulate ? GemmEpilogue.Accumulate : 0) | (NativeRelu ? GemmEpilogue.Relu : 0);
}

/// <summary>A step that writes whole output rows (of all images): shares split the rows.</summary>
internal interface IRowStep
{
    EngineOp Op { get; }

    /// <summary>Output rows [r0, r1) of all images (row r is row r % height of image r / height), epilogue included.</summary>
    void RunRows(RunState s, long r0, long r1);
}

/// <summary>NCHW input to NHWC with the value's channel stride (padding channels zeroed); rows of all images split between shares.</summary>
internal sealed unsafe class InputLayoutStep(EngineOp op, int index) : OpStep(op, index)
{
    public override void Run(RunState s, int share)
    {
        var o = s.Layout(Op.Output);
        int h = o.Height, w = o.Width, channels = o.Channels;
        (long r0, long r1) = s.Share((long)s.Shape.Batch * h, share);
        float* src = s.Input, dst = s.Value(Op.Output);
        long plane = (long)h * w;
        for (long r = r0; r < r1; r++)
        {
            long n = r / h;
            long y = r - (n * h);
            float* image = src + (n * channels * plane) + (y * w);
            float* row = dst + (r * w * o.Stride);
            for (int x = 0; x < w; x++)
            {
                float* pixel = row + ((long)x * o.Stride);
                for (int c = 0; c < channels; c++)
                {
                    pixel[c] = image[(c * plane) + x];
                }

                for (int c = channels; c < o.Stride; c++)
                {
                    pixel[c] = 0f;
                }
            }
        }

        Epilogue(s, r0 * w, r1 * w, activationDone: false);
    }
}

/// <summary>
/// A dense convolution of the caller's NCHW input run as GEMMs against packed weights. Output pixels whose receptive
/// field lies inside the image read the input directly (an indirect GEMM through a per-shape table of tap offsets);
/// the border pixels (and the scalar path) gather their patches into the share's scratch first.
/// </summary>
internal sealed unsafe class StemStep(EngineOp op, int index, PackedPanels weights) : OpStep(op, index)
{
    public const int Chunk = 96;

    public PackedPanels Weights => weights;

    /// <summary>offsets[ci * k * k + ky * k + kx] = ci * H * W + ky * W + kx: where tap k of a pixel sits relative to its first tap.</summary>
    public static int[] TapOffsets(int inChannels, int kernel, int height, int width)
    {
        var offsets = new int[inChannels * kernel * kernel];
        for (int ci = 0; ci < inChannels; ci++)
        {
            for (int ky = 0; ky < kernel; ky++)
            {
                for (int kx = 0; kx < kernel; kx++)
                {
                    offsets[(((ci * kernel) + ky) * kernel) + kx] = (ci * height * width) + (ky * width) + kx;
                }
            }
        }

        return offsets;
    }

    public override void Run(RunState s, int share)
    {
        var c = Op.Conv!;
        var i = s.Layout(Op.Reads[0]);
        var o = s.Layout(Op.Output);
        long plane = (long)o.Height * o.Width;
        (long p0, long p1) = s.Share(s.Shape.Batch * plane, share);
        int flags = GemmFlags(Op.Accumulate);
        if (s.Isa == Isa.Scalar)
        {
            Gathered(s, share, p0, p1, flags);
            Epilogue(s, p0, p1, NativeRelu);
            return;
        }

        int k = c.KernelH, stride = c.StrideH, pad = c.PadH;
        int xlo = Math.Min(o.Width, (pad + stride - 1) / stride);
        int xhi = i.Width + pad >= k ? Math.Min(o.Width, ((i.Width - k + pad) / stride) + 1) : 0;
        xhi = Math.Max(xhi, xlo);
        float* output = s.Value(Op.Output);
        fixed (int* offsets = s.Shape.StemOffsets[Index])
        {
            for (long p = p0; p < p1;)
            {
                long n = p / plane;
                int rem = (int)(p - (n * plane));
                int oy = rem / o.Width, ox = rem - (oy * o.Width);
                long rowEnd = Math.Min(p1, p + (o.Width - ox));
                int iy0 = (oy * stride) - pad;
                if (iy0 < 0 || iy0 + k > i.Height)
                {
                    Gathered(s, share, p, rowEnd, flags);
                    p = rowEnd;
                    continue;
                }

                int oxEnd = ox + (int)(rowEnd - p);
                int a = Math.Clamp(xlo, ox, oxEnd), b = Math.Clamp(xhi, a, oxEnd);
                Gathered(s, share, p, p + (a - ox), flags);
                if (b > a)
                {
                    float* first = s.Input + (n * c.InChannels * i.Height * i.Width) + ((long)iy0 * i.Width) + ((a * stride) - pad);
                    float* dst = output + ((p + (a - ox)) * o.Stride);
                    PackedGemm.RunGathered(s.Isa, first, stride, b - a, weights, offsets, dst, o.Stride, flags);
                }

                Gathered(s, share, p + (b - ox), rowEnd, flags);
                p = rowEnd;
            }
        }

        Epilogue(s, p0, p1, NativeRelu);
    }

    private void Gathered(RunState s, int share, long p0, long p1, int flags)
    {
        var c = Op.Conv!;
        var i = s.Layout(Op.Reads[0]);
        var o = s.Layout(Op.Output);
        float* scratch = s.Scratch(share);
        float* output = s.Value(Op.Output);
        int k = weights.K;
        for (long p = p0; p < p1; p += Chunk)
        {
            int count = (int)Math.Min(Chunk, p1 - p);
            StemPatches.Gather(s.Input, c.InChannels, i.Height, i.Width, c.KernelH, c.StrideH, c.PadH, o.Height, o.Width, p, count, scratch);
            PackedGemm.Run(s.Isa, scratch, k, count, weights, 0, weights.PanelCount, 0, k, output + (p * o.Stride), o.Stride, flags);
        }
    }
}

/// <summary>
/// A dense KxK convolution of an NHWC value: each chunk of output pixels gathers its patches ([ky][kx][channel
/// stride], zeros outside the image) into the share's scratch and runs the packed GEMM, whose weights are laid out
/// the same way (zero rows for padded channels).
/// </summary>
internal sealed unsafe class PatchGemmStep(EngineOp op, int index, PackedPanels weights) : OpStep(op, index)
{
    /// <summary>Most output pixels gathered at once (the share's scratch holds that many patches); chunks are multiples of 6 rows up to it.</summary>
    public const int Chunk = 60;

    /// <summary>
    /// K block of the gathered patch GEMM when <c>MOBILEONE_ENGINE_PATCH_KBLOCK</c> sets one (0: none); otherwise
    /// <see cref="AutoKBlock"/>. Each block of k runs over all row tiles of the chunk and all panels of the share
    /// before the next; bias enters with the first block, ReLU after the last, so every output is the same chain in
    /// k order whatever the block.
    /// </summary>
    public static int? KBlock { get; } =
        int.TryParse(Environment.GetEnvironmentVariable("MOBILEONE_ENGINE_PATCH_KBLOCK"), System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out int kb) ? kb : null;

    /// <summary>
    /// No blocks up to K = 2048; above, equal blocks of at most 1536 (a multiple of 16). A 64-column panel of
    /// K = 4608 (3x3 over 512 channels, resnet's layer4) is 1.2 MB, more than L2, so without blocks every 6-row tile
    /// streams it from L3 again; in blocks of 1536 (393 KB) the later tiles read it from L2. Measured on resnet18 at
    /// one thread, alternating with the unblocked build: 7x7 layers 0.85-0.93x with blocks of 1536 against
    /// 0.93-0.96x without; smaller blocks are slower (128: +3-9% at 14x14, 64: +15-25%, 32: +25-45%: the
    /// accumulators reloaded per block and the extra tile calls cost more than the panel block in L1 saves).
    /// </summary>
    public static int AutoKBlock(int k)
    {
        if (k <= 2048)
        {
            return k;
        }

        int blocks = (k + 1535) / 1536;
        return Math.Min(k, (((k + blocks - 1) / blocks) + 15) / 16 * 16);
    }

    public PackedPanels Weights => weights;

    /// <summary>Output widths from which the interior pixels of a row are read in place rather than gathered.</summary>
    public const int DirectWidth = 24;

    public override void Run(RunState s, int share)
    {
        var c = Op.Conv!;
        var i = s.Layout(Op.Reads[0]);
        var o = s.Layout(Op.Output);
        long plane = (long)o.Height * o.Width;
        var (p0, p1, panel0, panel1) = Partition(s.Shape.Batch * plane, weights, s.Shares, share);

        // Interior pixels (whole receptive field inside the image) of wide rows: the tile reads each tap's channels
        // straight from the NHWC input, its rows strideW * channel stride apart (a ReductionLoop over ky, kx and the
        // channels), so only border pixels are gathered. Gathering cost 5-15% of a 56x56 / 28x28 layer; narrower rows
        // keep the gathered path, whose chunks span rows and make full tiles.
        int xlo = Math.Min(o.Width, (c.PadW + c.StrideW - 1) / c.StrideW);
        int xhi = i.Width + c.PadW >= c.KernelW ? Math.Min(o.Width, ((i.Width - c.KernelW + c.PadW) / c.StrideW) + 1) : 0;
        xhi = Math.Max(xhi, xlo);
        bool direct = xhi - xlo >= DirectWidth && c.DilationH == 1 && c.DilationW == 1;
        if (!direct)
        {
            Gathered(s, share, p0, p1, panel0, panel1);
            return;
        }

        // Border pixels are gathered in runs of consecutive pixels (a row's right border and the next row's left
        // border are neighbours), computed after the interior they surround; every pixel is computed once.
        long pending = p0;
        for (long p = p0; p < p1;)
        {
            long n = p / plane;
            int rem = (int)(p - (n * plane));
            int oy = rem / o.Width, ox = rem - (oy * o.Width);
            long rowEnd = Math.Min(p1, p + (o.Width - ox));
            int iy0 = (oy * c.StrideH) - c.PadH;
            if (iy0 >= 0 && iy0 + c.KernelH <= i.Height)
            {
                int oxEnd = ox + (int)(rowEnd - p);
                int a = Math.Clamp(xlo, ox, oxEnd), b = Math.Clamp(xhi, a, oxEnd);
                if (b > a)
                {
                    long ia = p + (a - ox);
                    Gathered(s, share, pending, ia, panel0, panel1);
                    Interior(s, n, iy0, a, b - a, ia, panel0, panel1);
                    pending = ia + (b - a);
                }
            }

            p = rowEnd;
        }

        Gathered(s, share, pending, p1, panel0, panel1);
    }

    /// <summary>Output pixels [first, first + count) of image n, output columns from ox on, all inside the image: read in place.</summary>
    private void Interior(RunState s, long n, int iy0, int ox, int count, long first, int panel0, int panel1)
    {
        var c = Op.Conv!;
        var i = s.Layout(Op.Reads[0]);
        var o = s.Layout(Op.Output);
        int cs = i.Stride;
        float* a = s.Value(Op.Reads[0]) + (((n * i.Height * i.Width) + ((long)iy0 * i.Width) + ((ox * c.StrideW) - c.PadW)) * cs);
        float* outRows = s.Value(Op.Output) + (first * o.Stride);
        var loop = new ReductionLoop(c.KernelH, (nint)i.Width * cs, (nint)c.KernelW * cs, c.KernelW, cs, cs, cs);
        PackedGemm.RunLoop(s.Isa, a, (nint)c.StrideW * cs, count, weights, panel0, panel1, 0, loop, outRows, o.Stride, GemmFlags(Op.Accumulate));
        Epilogue(s, first, first + count, panel0 * PackedPanels.PanelWidth, panel1 * PackedPanels.PanelWidth, NativeRelu);
    }

    /// <summary>Output pixels [p0, p1) through gathered patches, in chunks, epilogue included.</summary>
    private void Gathered(RunState s, int share, long p0, long p1, int panel0, int panel1)
    {
        if (p1 <= p0)
        {
            return;
        }

        var c = Op.Conv!;
        var i = s.Layout(Op.Reads[0]);
        var o = s.Layout(Op.Output);
        long plane = (long)o.Height * o.Width;
        float* scratch = s.Scratch(share), input = s.Value(Op.Reads[0]), output = s.Value(Op.Output);
        int patch = c.KernelH * c.KernelW * i.Stride;
        int lda = PatchStride(patch);
        int k = weights.K;
        int block = KBlock is int fixedBlock ? (fixedBlock <= 0 || fixedBlock >= k ? k : fixedBlock) : AutoKBlock(k);

        int chunk = ShareGrid.EvenChunk(p1 - p0, Chunk);
        for (long p = p0; p < p1; p += chunk)
        {
            int count = (int)Math.Min(chunk, p1 - p);
            for (int j = 0; j < count; j++)
            {
                long pixel = p + j;
                long n = pixel / plane;
                int rem = (int)(pixel - (n * plane));
                int oy = rem / o.Width, ox = rem - (oy * o.Width);
                float* dst = scratch + ((long)j * lda);
                float* image = input + (n * i.Height * i.Width * i.Stride);
                for (int ky = 0; ky < c.KernelH; ky++)
                {
                    int iy = (oy * c.StrideH) - c.PadH + ky;
                    for (int kx = 0; kx < c.KernelW; kx++, dst += i.Stride)
                    {
                        int ix = (ox * c.StrideW) - c.PadW + kx;
                        if (iy < 0 || iy >= i.Height || ix < 0 || ix >= i.Width)
                        {
                            new Span<float>(dst, i.Stride).Clear();
                        }
                        else
                        {
                            Buffer.MemoryCopy(image + ((((long)iy * i.Width) + ix) * i.Stride), dst, i.Stride * sizeof(float), i.Stride * sizeof(float));
                        }
                    }
                }
            }

            float* outRows = output + (p * o.Stride);
            for (int k0 = 0; k0 < k; k0 += block)
            {
                int len = Math.Min(block, k - k0);
                int flags = (k0 > 0 || Op.Accumulate ? GemmEpilogue.Accumulate : 0) | (NativeRelu && k0 + len == k ? GemmEpilogue.Relu : 0);
                PackedGemm.Run(s.Isa, scratch, lda, count, weights, panel0, panel1, k0, len, outRows, o.Stride, flags);
            }

            // The residual add / other activation on the chunk just written, while it is in L1/L2 (after the whole
            // share it came back from L3: 0.8 MB at 56x56x64).
            Epilogue(s, p, p + count, panel0 * PackedPanels.PanelWidth, panel1 * PackedPanels.PanelWidth, NativeRelu);
        }
    }

    /// <summary>
    /// Floats between gathered patches: the patch rounded to an odd number of cache lines, so the rows of a chunk
    /// fall in different L1 sets (4608 floats = 288 lines would put every other row of a chunk in the same set).
    /// </summary>
    public static int PatchStride(int patch)
    {
        int lines = (patch + 15) / 16;
        return (lines | 1) * 16;
    }

    /// <summary>
    /// Shares as a grid of pixel groups x panel groups, like <see cref="PointwiseStep.Partition"/>, but costed for
    /// gathered patches: per unit of K a share costs its multiply-adds (rows x columns), plus about 8 for each patch
    /// row it gathers (a copy per float: every panel group gathers the same rows again) and about 4 for each weight
    /// column it streams. At 7x7 (49 pixels, 512 channels, 8 shares) each share then takes all pixels of one panel
    /// rather than 6 pixels against all 9.4 MB of weights.
    /// </summary>
    public static (long R0, long R1, int P0, int P1) Partition(long rows, PackedPanels b, int shares, int share) =>
        ShareGrid.Split(rows, b, shares, share, static (rowsEach, columns, _, _) => (((double)rowsEach * columns) + (8.0 * rowsEach) + (4.0 * columns), 0));

    /// <summary>OIHW weights reordered to [out][ky][kx][in padded to <paramref name="inStride"/>] rows for <see cref="PackedPanels"/>.</summary>
    public static float[] PatchOrder(ConvParams c, int inStride)
    {
        var rows = new float[(long)c.OutChannels * c.KernelH * c.KernelW * inStride];
        for (int oc = 0; oc < c.OutChannels; oc++)
        {
            for (int ci = 0; ci < c.InChannels; ci++)
            {
                for (int ky = 0; ky < c.KernelH; ky++)
                {
                    for (int kx = 0; kx < c.KernelW; kx++)
                    {
                        long dst = ((((long)oc * c.KernelH) + ky) * c.KernelW + kx) * inStride + ci;
                        rows[dst] = c.Weight[(((((long)oc * c.InChannels) + ci) * c.KernelH) + ky) * c.KernelW + kx];
                    }
                }
            }
        }

        return rows;
    }
}

/// <summary>
/// A step that computes whole output rows: shares split the rows of all images, and each run of rows inside one
/// image goes to <see cref="ImageRows"/>; the epilogue follows on exactly those rows.
/// </summary>
internal abstract unsafe class RowStep(EngineOp op, int index) : OpStep(op, index), IRowStep
{
    /// <summary>Whether the kernel applies the activation itself (then the epilogue only adds a residual).</summary>
    protected abstract bool ActivationInKernel { get; }

    public override void Run(RunState s, int share)
    {
        var o = s.Layout(Op.Output);
        (long r0, long r1) = s.Share((long)s.Shape.Batch * o.Height, share);
        RunRows(s, r0, r1);
    }

    public void RunRows(RunState s, long r0, long r1)
    {
        var i = s.Layout(Op.Reads[0]);
        var o = s.Layout(Op.Output);
        float* input = s.Value(Op.Reads[0]), output = s.Value(Op.Output);
        long inImage = (long)i.Height * i.Width * i.Stride;
        for (long r = r0; r < r1;)
        {
            long n = r / o.Height;
            int oy = (int)(r - (n * o.Height));
            int count = (int)Math.Min(o.Height - oy, r1 - r);
            ImageRows(s, i, o, input + (n * inImage), oy, count, output + (r * o.Width * o.Stride));
            r += count;
        }

        Epilogue(s, r0 * o.Width, r1 * o.Width, ActivationInKernel);
    }

    /// <summary>Output rows [oy, oy + count) of the image starting at <paramref name="image"/>, written from <paramref name="output"/> on.</summary>
    protected abstract void ImageRows(RunState s, ValueLayout i, ValueLayout o, float* image, int oy, int count, float* output);
}

/// <summary>Depthwise convolution of any geometry (and the per-channel affine maps of unfused BatchNorms); can accumulate.</summary>
internal sealed unsafe class DepthwiseStep(EngineOp op, int index, DepthwiseTapWeights weights) : RowStep(op, index)
{
    protected override bool ActivationInKernel => NativeRelu;

    protected override void ImageRows(RunState s, ValueLayout i, ValueLayout o, float* image, int oy, int count, float* output)
    {
        var c = Op.Conv!;
        var g = new DepthwiseKernel.Geometry(i.Height, i.Width, o.Width, c.KernelH, c.KernelW, c.StrideH, c.StrideW, c.PadH, c.PadW, c.DilationH, c.DilationW);
        DepthwiseKernel.Rows(s.Isa, image, i.Stride, weights, g, oy, count, output, o.Stride, Op.Accumulate, NativeRelu);
    }
}

/// <summary>
/// Pointwise 1x1 as a GEMM: rows = pixels of all images, columns = output channels. Shares are a static grid of row
/// ranges x panel ranges chosen per shape (see <see cref="Partition"/>).
/// </summary>
internal sealed unsafe class PointwiseStep(EngineOp op, int index, PackedPanels weights, int kBlock) : OpStep(op, index)
{
    public PackedPanels Weights => weights;

    public override void Run(RunState s, int share)
    {
        long rows = s.Layout(Op.Output).Pixels(s.Shape.Batch);
        var (r0, r1, p0, p1) = Partition(rows, weights, s.Shares, share);
        RunPixels(s, r0, r1, p0, p1);
    }

    /// <summary>GEMM rows (pixels of all images) [r0, r1) for panels [p0, p1), epilogue included.</summary>
    public void RunPixels(RunState s, long r0, long r1, int p0, int p1)
    {
        var i = s.Layout(Op.Reads[0]);
        var o = s.Layout(Op.Output);
        int k = weights.K;
        int block = kBlock <= 0 || kBlock >= k ? k : kBlock;

        // With an epilogue pass (a residual, or an activation the GEMM cannot apply) the rows go in groups whose
        // output (about 128 KB) is still in L2 when the pass reads it back, provided the weights are small enough
        // (512 KB) to be read again from L2 per group; otherwise one group, the epilogue after the whole share.
        long group = r1 - r0;
        bool pass = Op.Residual >= 0 || (Op.Activation != ActivationKind.None && !NativeRelu);
        if (pass && (long)weights.PaddedN * k <= 128 * 1024)
        {
            int columns = Math.Min(p1 * PackedPanels.PanelWidth, weights.PaddedN) - (p0 * PackedPanels.PanelWidth);
            group = Math.Max(48, (32 * 1024 / Math.Max(columns, 1)) / 6 * 6);
        }

        for (long g0 = r0; g0 < r1; g0 += group)
        {
            long g1 = Math.Min(r1, g0 + group);
            float* input = s.Value(Op.Reads[0]) + (g0 * i.Stride);
            float* output = s.Value(Op.Output) + (g0 * o.Stride);
            int rows = (int)(g1 - g0);

            // K in blocks: the bias (or the accumulated value) enters with the first block, ReLU after the last, so the
            // accumulation order per output is the same for any block size.
            for (int k0 = 0; k0 < k; k0 += block)
            {
                int len = Math.Min(block, k - k0);
                int flags = (k0 > 0 || Op.Accumulate ? GemmEpilogue.Accumulate : 0) | (NativeRelu && k0 + len == k ? GemmEpilogue.Relu : 0);
                PackedGemm.Run(s.Isa, input, i.Stride, rows, weights, p0, p1, k0, len, output, o.Stride, flags);
            }

            Epilogue(s, g0, g1, p0 * PackedPanels.PanelWidth, p1 * PackedPanels.PanelWidth, NativeRelu);
        }
    }

    /// <summary>
    /// Splits shares into a grid of row groups x panel groups: the grid with the smallest largest share of work (in
    /// 16-column x 1-row units), and among equals the one that moves fewer A and B bytes per share. Depends only on
    /// the shape and the share count, so every run uses the same partition.
    /// </summary>
    public static (long R0, long R1, int P0, int P1) Partition(long rows, PackedPanels b, int shares, int share) =>
        ShareGrid.Split(
            rows, b, shares, share,
            static (rowsEach, columns, panelsEach, k) => ((double)rowsEach * columns, ((double)rowsEach * k) + ((double)panelsEach * PackedPanels.PanelWidth * k)));
}

/// <summary>
/// A depthwise step and the pointwise step that reads its output as one step: each share computes its depthwise output
/// rows and then the pointwise GEMM over exactly those pixels, which only that share has written, so the barrier
/// between the two layers (and a trip of the rows through L2) disappears. Used when the rows split evenly.
/// </summary>
internal sealed class DepthwisePointwiseStep(IRowStep depthwise, PointwiseStep pointwise) : EngineStep
{
    public override void Run(RunState s, int share)
    {
        var o = s.Layout(depthwise.Op.Output);
        (long r0, long r1) = s.Share((long)s.Shape.Batch * o.Height, share);
        depthwise.RunRows(s, r0, r1);
        pointwise.RunPixels(s, r0 * o.Width, r1 * o.Width, 0, pointwise.Weights.PanelCount);
    }
}

/// <summary>A convolution through a general algorithm (direct / im2col / im2win), output rows split between shares.</summary>
internal sealed unsafe class GeneralConvStep(EngineOp op, int index) : OpStep(op, index)
{
    public override void Run(RunState s, int share)
    {
        var i = s.Layout(Op.Reads[0]);
        var o = s.Layout(Op.Output);
        var kernel = s.Shape.General[Index]!;
        (long r0, long r1) = s.Share((long)s.Shape.Batch * o.Height, share);
        long inImage = (long)i.Height * i.Width * i.Stride, outImage = (long)o.Height * o.Width * o.Stride;
        float* input = s.Value(Op.Reads[0]), output = s.Value(Op.Output);
        var workspace = new Span<float>(s.Workspace(share), (int)s.Shape.WorkspacePerShare);
        for (long r = r0; r < r1;)
        {
            long n = r / o.Height;
            int start = (int)(r - (n * o.Height));
            int end = (int)Math.Min(o.Height, r1 - (n * o.Height));
            kernel.Run(
                new ReadOnlySpan<float>(input + (n * inImage), (int)inImage),
                new Span<float>(output + (n * outImage), (int)outImage),
                workspace,
                start,
                end,
                NativeRelu);
            r = (n * o.Height) + end;
        }

        Epilogue(s, r0 * o.Width, r1 * o.Width, NativeRelu);
    }
}

/// <summary>The sum of two or more values (in place when the output is the first input); pixels split between shares.</summary>
internal sealed unsafe class AddStep(EngineOp op, int index) : OpStep(op, index)
{
    public override void Run(RunState s, int share)
    {
        var o = s.Layout(Op.Output);
        (long p0, long p1) = s.Share(o.Pixels(s.Shape.Batch), share);
        float* y = s.Value(Op.Output) + (p0 * o.Stride);
        int first = 0;
        if (Op.Reads[0] != Op.Output)
        {
            var a = s.Layout(Op.Reads[0]);
            ChannelOps.CopyRows(y, o.Stride, s.Value(Op.Reads[0]) + (p0 * a.Stride), a.Stride, p1 - p0, o.Stride);
        }

        for (int k = first + 1; k < Op.Reads.Length; k++)
        {
            var b = s.Layout(Op.Reads[k]);
            ChannelOps.AddRows(s.Isa, y, o.Stride, s.Value(Op.Reads[k]) + (p0 * b.Stride), b.Stride, p1 - p0, o.Channels);
        }

        Epilogue(s, p0, p1, activationDone: false);
    }
}

/// <summary>A sparse (CSR) convolution of an NHWC value; pixels of all images split between shares.</summary>
internal sealed unsafe class SparseConvStep(EngineOp op, int index, SparseConvolution kernel) : OpStep(op, index)
{
    public override void Run(RunState s, int share)
    {
        var i = s.Layout(Op.Reads[0]);
        var o = s.Layout(Op.Output);
        (long p0, long p1) = s.Share(o.Pixels(s.Shape.Batch), share);
        kernel.Run(s.Value(Op.Reads[0]), i.Height, i.Width, i.Stride, s.Value(Op.Output), o.Height, o.Width, o.Stride, p0, p1, Op.Accumulate);
        Epilogue(s, p0, p1, activationDone: false);
    }
}

/// <summary>An activation into a new value (when its input has other readers); pixels split between shares.</summary>
internal sealed unsafe class ActivationStep(EngineOp op, int index) : OpStep(op, index)
{
    public override void Run(RunState s, int share)
    {
        var o = s.Layout(Op.Output);
        var a = s.Layout(Op.Reads[0]);
        (long p0, long p1) = s.Share(o.Pixels(s.Shape.Batch), share);
        ChannelOps.CopyRows(s.Value(Op.Output) + (p0 * o.Stride), o.Stride, s.Value(Op.Reads[0]) + (p0 * a.Stride), a.Stride, p1 - p0, Math.Min(a.Stride, o.Stride));
        Epilogue(s, p0, p1, activationDone: false);
    }
}

/// <summary>Squeeze: per image and channel, the mean over pixels of the input (units are image x 64-channel groups).</summary>
internal sealed unsafe class SqueezeMeanStep(EngineOp op, int index) : OpStep(op, index)
{
    public override void Run(RunState s, int share)
    {
        var i = s.Layout(Op.Reads[0]);
        ChannelMeansShare(s, share, s.Value(Op.Reads[0]), i.Height * i.Width, i.Stride, s[Region.SeMean], s.Shape.SeStride);
    }

    /// <summary>Units are (image, 64-channel group) pairs, split contiguously between shares.</summary>
    public static void ChannelMeansShare(RunState s, int share, float* x, int plane, int cs, float* means, int meanStride)
    {
        int groups = (cs + 63) / 64;
        (long u0, long u1) = s.Share((long)s.Shape.Batch * groups, share);
        float scale = 1f / plane;
        for (long u = u0; u < u1; u++)
        {
            long n = u / groups;
            int c0 = (int)(u - (n * groups)) * 64;
            ChannelOps.ChannelMeans(s.Isa, x + (n * plane * cs), plane, cs, c0, Math.Min(cs, c0 + 64), scale, means + (n * meanStride));
        }
    }
}

/// <summary>Excite: the gate of each image from its channel means (images split between shares).</summary>
internal sealed unsafe class ExciteGateStep(EngineOp op, int index, SqueezeExciteWeights weights) : OpStep(op, index)
{
    public override void Run(RunState s, int share)
    {
        var o = s.Layout(Op.Output);
        (long n0, long n1) = s.Share(s.Shape.Batch, share);
        float* hidden = s[Region.SeHidden] + (share * s.Shape.HiddenStride);
        for (long n = n0; n < n1; n++)
        {
            long off = n * s.Shape.SeStride;
            weights.Gate(s.Isa, s[Region.SeMean] + off, hidden, s[Region.SeGate] + off, o.Stride);
        }
    }
}

/// <summary>Scales every pixel by its image's gate (copying the input first when it is not gated in place), then the epilogue.</summary>
internal sealed unsafe class GateStep(EngineOp op, int index) : OpStep(op, index)
{
    public override void Run(RunState s, int share)
    {
        var o = s.Layout(Op.Output);
        var a = s.Layout(Op.Reads[0]);
        long plane = (long)o.Height * o.Width;
        (long p0, long p1) = s.Share(s.Shape.Batch * plane, share);
        float* output = s.Value(Op.Output);
        if (Op.Reads[0] != Op.Output)
        {
            ChannelOps.CopyRows(output + (p0 * o.Stride), o.Stride, s.Value(Op.Reads[0]) + (p0 * a.Stride), a.Stride, p1 - p0, o.Stride);
        }

        for (long p = p0; p < p1;)
        {
            long n = p / plane;
            long end = Math.Min(p1, (n + 1) * plane);
            ChannelOps.GateRelu(s.Isa, output + (p * o.Stride), (int)(end - p), o.Stride, o.Stride, s[Region.SeGate] + (n * s.Shape.SeStride), NativeRelu);
            p = end;
        }

        Epilogue(s, p0, p1, NativeRelu);
    }
}

/// <summary>Global average pooling into a [channels, 1, 1] value; units are (image, 64-channel group) pairs.</summary>
internal sealed unsafe class GlobalPoolStep(EngineOp op, int index) : OpStep(op, index)
{
    public override void Run(RunState s, int share)
    {
        var i = s.Layout(Op.Reads[0]);
        var o = s.Layout(Op.Output);
        int groups = (i.Stride + 63) / 64;
        (long u0, long u1) = s.Share((long)s.Shape.Batch * groups, share);
        float* x = s.Value(Op.Reads[0]), means = s.Value(Op.Output);
        int plane = i.Height * i.Width;
        for (long u = u0; u < u1; u++)
        {
            long n = u / groups;
            int c0 = (int)(u - (n * groups)) * 64, c1 = Math.Min(i.Stride, c0 + 64);
            ChannelOps.ChannelMeans(s.Isa, x + (n * plane * i.Stride), plane, i.Stride, c0, c1, 1f / plane, means + (n * o.Stride));

            // The epilogue covers exactly the channels this unit wrote: another share may own the image's other groups.
            Epilogue(s, n, n + 1, c0, c1, activationDone: false);
        }
    }
}

/// <summary>Max or average pooling over NHWC rows (output rows of all images split between shares).</summary>
internal sealed unsafe class PoolStep(EngineOp op, int index) : OpStep(op, index)
{
    public override void Run(RunState s, int share)
    {
        var pool = Op.Pool!;
        var i = s.Layout(Op.Reads[0]);
        var o = s.Layout(Op.Output);
        (long r0, long r1) = s.Share((long)s.Shape.Batch * o.Height, share);
        float* input = s.Value(Op.Reads[0]), output = s.Value(Op.Output);
        bool max = pool.Kind == PoolKind.Max;
        for (long r = r0; r < r1; r++)
        {
            long n = r / o.Height;
            int oy = (int)(r - (n * o.Height));
            int y0 = (oy * pool.Stride) - pool.Padding, y1 = Math.Min(y0 + pool.Kernel, i.Height);
            int yStart = Math.Max(y0, 0);
            float* image = input + (n * i.Height * i.Width * i.Stride);
            for (int ox = 0; ox < o.Width; ox++)
            {
                int x0 = (ox * pool.Stride) - pool.Padding, x1 = Math.Min(x0 + pool.Kernel, i.Width);
                int xStart = Math.Max(x0, 0);
                float* dst = output + ((((r * o.Width) + ox)) * o.Stride);
                // PyTorch's divisor: with count_include_pad the window clipped to the padded input, else the taps inside.
                float divisor = pool.CountIncludePad
                    ? (Math.Min(x0 + pool.Kernel, i.Width + pool.Padding) - x0) * (Math.Min(y0 + pool.Kernel, i.Height + pool.Padding) - y0)
                    : (x1 - xStart) * (y1 - yStart);
                ChannelOps.PoolPixel(s.Isa, image, (nint)i.Width * i.Stride, i.Stride, yStart, y1, xStart, x1, o.Stride, max, divisor, dst);
            }
        }

        Epilogue(s, r0 * o.Width, r1 * o.Width, activationDone: false);
    }
}

/// <summary>A fully connected layer: a GEMM with the images as rows, panels split between shares.</summary>
internal sealed unsafe class LinearStep(EngineOp op, int index, PackedPanels weights) : OpStep(op, index)
{
    public PackedPanels Weights => weights;

    public override void Run(RunState s, int share)
    {
        var i = s.Layout(Op.Reads[0]);
        var o = s.Layout(Op.Output);
        (long p0, long p1) = s.Share(weights.PanelCount, share);
        PackedGemm.Run(s.Isa, s.Value(Op.Reads[0]), i.Stride, s.Shape.Batch, weights, (int)p0, (int)p1, 0, weights.K, s.Value(Op.Output), o.Stride, GemmFlags(accumulate: false));
        Epilogue(s, 0, s.Shape.Batch, (int)p0 * PackedPanels.PanelWidth, (int)p1 * PackedPanels.PanelWidth, NativeRelu);
    }
}

/// <summary>
/// The hyper function of a dynamic activation (<see cref="DyReluNode"/>, <see cref="DynamicShiftMaxNode"/>) for each
/// image from its channel means: ReLU(W1 m + b1), then W2 h + b2 normalized into the coefficients (images split
/// between shares; scalar, no allocation).
/// </summary>
internal sealed unsafe class DynamicCoefficientStep(EngineOp op, int index) : OpStep(op, index)
{
    public override void Run(RunState s, int share)
    {
        var node = Op.Dynamic!;
        (int channels, int reduced, float[] w1, float[] b1, float[] w2, float[] b2, int outputs) = node switch
        {
            DyReluNode d => (d.Channels, d.Reduced, d.ReduceWeight, d.ReduceBias, d.ExpandWeight, d.ExpandBias, d.Coefficients),
            DynamicShiftMaxNode m => (m.Channels, m.Reduced, m.ReduceWeight, m.ReduceBias, m.ExpandWeight, m.ExpandBias, m.Coefficients),
            _ => throw new InvalidOperationException($"Operation {Op.Name} is not a dynamic activation."),
        };

        (long n0, long n1) = s.Share(s.Shape.Batch, share);
        float* hidden = s[Region.SeHidden] + (share * s.Shape.HiddenStride);
        for (long n = n0; n < n1; n++)
        {
            float* mean = s[Region.SeMean] + (n * s.Shape.SeStride);
            float* coef = s[Region.DynCoef] + (n * s.Shape.CoefStride);
            for (int r = 0; r < reduced; r++)
            {
                float total = b1[r];
                int row = r * channels;
                for (int c = 0; c < channels; c++)
                {
                    total += w1[row + c] * mean[c];
                }

                hidden[r] = MathF.Max(total, 0f);
            }

            for (int o = 0; o < outputs; o++)
            {
                float z = b2[o];
                int row = o * reduced;
                for (int r = 0; r < reduced; r++)
                {
                    z += w2[row + r] * hidden[r];
                }

                coef[CoefficientIndex(node, o)] = Normalize(node, o, z);
            }
        }
    }

    /// <summary>
    /// Where FC2 output <paramref name="o"/> is stored: DyReLU-B's outputs are per channel, [c][2K] in FC2's order,
    /// and are stored slot-major, [2K][c], so the apply kernel loads a vector of channels' coefficients at once.
    /// </summary>
    private static int CoefficientIndex(GraphNode node, int o)
    {
        if (node is DyReluNode { Kind: DyReluKind.B } d)
        {
            int slots = 2 * d.K;
            return ((o % slots) * d.Channels) + (o / slots);
        }

        return o;
    }

    private static float Normalize(GraphNode node, int o, float z)
    {
        if (node is DyReluNode d)
        {
            float theta = (2f / (1f + MathF.Exp(-z))) - 1f;
            int k = o % (2 * d.K);
            return k < d.K ? (k == 0 ? 1f : 0f) + ((float)d.LambdaA * theta) : (float)d.LambdaB * theta;
        }

        var m = (DynamicShiftMaxNode)node;
        int kj = o / m.Channels;
        float hsig = Math.Clamp(z + 3f, 0f, 6f) / 6f;
        return (float)DynamicShiftMaxNode.Init(kj / m.J, kj % m.J) + ((float)m.Lambda * ((2f * hsig) - 1f));
    }
}

/// <summary>
/// Applies a dynamic activation with each image's coefficients (pixels split between shares, channels as vector lanes;
/// padding channels zeroed), then the epilogue. The subclasses differ only in the per-pixel kernel.
/// </summary>
internal abstract unsafe class DynamicApplyStep(EngineOp op, int index) : OpStep(op, index)
{
    public override void Run(RunState s, int share)
    {
        var o = s.Layout(Op.Output);
        var a = s.Layout(Op.Reads[0]);
        long plane = (long)o.Height * o.Width;
        (long p0, long p1) = s.Share(s.Shape.Batch * plane, share);
        float* input = s.Value(Op.Reads[0]), output = s.Value(Op.Output);
        int channels = Channels;
        for (long p = p0; p < p1; p++)
        {
            float* coef = s[Region.DynCoef] + (p / plane * s.Shape.CoefStride);
            float* y = output + (p * o.Stride);
            Pixel(s.Isa, input + (p * a.Stride), y, coef);
            new Span<float>(y + channels, o.Stride - channels).Clear();
        }

        Epilogue(s, p0, p1, activationDone: false);
    }

    /// <summary>Channels of the activation (the value's stride may be larger: padding).</summary>
    protected abstract int Channels { get; }

    /// <summary>One pixel's <see cref="Channels"/> outputs from its inputs and its image's coefficients.</summary>
    protected abstract void Pixel(Isa isa, float* x, float* y, float* coef);
}

/// <summary>DyReLU: y_c = max_k (a^k_c x_c + b^k_c).</summary>
internal sealed unsafe class DyReluApplyStep(EngineOp op, int index) : DynamicApplyStep(op, index)
{
    private readonly DyReluNode node = (DyReluNode)op.Dynamic!;

    protected override int Channels => node.Channels;

    protected override void Pixel(Isa isa, float* x, float* y, float* coef) =>
        DynamicActivationKernels.DyRelu(isa, x, y, node.Channels, coef, node.K, node.Kind == DyReluKind.B);
}

/// <summary>Dynamic shift-max: y_i = max_k sum_j a^k_{i,j} x_{(i + j C/G) mod C}.</summary>
internal sealed unsafe class ShiftMaxApplyStep(EngineOp op, int index) : DynamicApplyStep(op, index)
{
    private readonly DynamicShiftMaxNode node = (DynamicShiftMaxNode)op.Dynamic!;

    protected override int Channels => node.Channels;

    protected override void Pixel(Isa isa, float* x, float* y, float* coef) =>
        DynamicActivationKernels.ShiftMax(isa, x, y, node.Channels, coef, node.K, node.J, node.GroupChannels);
}

/// <summary>
/// The split of a GEMM-shaped step's shares into a grid of row groups x panel groups (panel groups dividing the share
/// count): the grid whose cost is lowest, and among costs within 0.1% the one with the lower tie-break. Each step
/// supplies its own cost per share from the rows and columns it would get; the choice depends only on the shape and the
/// share count, so every run uses the same partition. The cost functions are static lambdas: no allocation per run.
/// </summary>
internal static class ShareGrid
{
    /// <summary>Share <paramref name="share"/>'s rows [R0, R1) and panels [P0, P1).</summary>
    public static (long R0, long R1, int P0, int P1) Split(
        long rows, PackedPanels b, int shares, int share, Func<long, int, int, int, (double Cost, double Tie)> cost)
    {
        int bestPanelGroups = 1;
        double bestCost = double.MaxValue, bestTie = double.MaxValue;
        for (int pg = 1; pg <= shares; pg++)
        {
            if (shares % pg != 0 || pg > b.PanelCount)
            {
                continue;
            }

            int rg = shares / pg;
            long rowsEach = (rows + rg - 1) / rg;
            int panelsEach = (b.PanelCount + pg - 1) / pg;
            var (c, tie) = cost(rowsEach, Math.Min(panelsEach * PackedPanels.PanelWidth, b.PaddedN), panelsEach, b.K);
            if (c < bestCost * 0.999 || (c <= bestCost * 1.001 && tie < bestTie))
            {
                bestCost = c;
                bestTie = tie;
                bestPanelGroups = pg;
            }
        }

        int rowGroups = shares / bestPanelGroups;
        int rowGroup = share / bestPanelGroups, panelGroup = share % bestPanelGroups;
        long r0 = rows * rowGroup / rowGroups, r1 = rows * (rowGroup + 1) / rowGroups;
        int p0 = b.PanelCount * panelGroup / bestPanelGroups, p1 = b.PanelCount * (panelGroup + 1) / bestPanelGroups;
        return (r0, r1, p0, p1);
    }

    /// <summary>
    /// Rows per chunk when a share's <paramref name="total"/> GEMM rows go through scratch in chunks of at most
    /// <paramref name="max"/>: all of them when they fit, else equal chunks rounded up to a multiple of 6 (the 64-column
    /// row tile). Fewer passes over the weights than fixed chunks, and no one-row chunk (49 pixels at 7x7: one chunk).
    /// </summary>
    public static int EvenChunk(long total, int max)
    {
        long chunks = (total + max - 1) / max;
        return chunks <= 1 ? (int)total : (int)Math.Min(max, ((((total + chunks - 1) / chunks) + 5) / 6) * 6);
    }
}
