using MobileOne.Kernels.Engine;

namespace MobileOne.Inference;

/// <summary>NCHW input to dense NHWC, for the general convolution algorithms; rows of all images split between shares.</summary>
internal sealed unsafe class InputLayoutStep(int channels) : EngineStep
{
    public override void Run(RunState s, int share)
    {
        var shape = s.Shape;
        int h = shape.Height, w = shape.Width;
        (long r0, long r1) = s.Share((long)shape.Batch * h, share);
        float* src = s.Input, dst = s[Slot.InputNhwc];
        long plane = (long)h * w;
        for (long r = r0; r < r1; r++)
        {
            long n = r / h;
            long y = r - (n * h);
            float* image = src + (n * channels * plane) + (y * w);
            float* row = dst + (r * w * channels);
            for (int x = 0; x < w; x++)
            {
                for (int c = 0; c < channels; c++)
                {
                    row[(x * channels) + c] = image[(c * plane) + x];
                }
            }
        }
    }
}

/// <summary>
/// The stem, a dense convolution run as GEMMs against packed weights. Output pixels whose receptive field lies
/// inside the image read the NCHW input directly (an indirect GEMM through a per-shape table of tap offsets);
/// the border pixels (and the scalar path) gather their patches into the share's scratch first.
/// </summary>
internal sealed unsafe class StemStep(ConvLayer conv, PackedPanels weights, bool relu) : EngineStep
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
        var g = s.Shape.Convs[conv.Index];
        long plane = (long)g.OutH * g.OutW;
        (long p0, long p1) = s.Share(s.Shape.Batch * plane, share);
        if (s.Isa == EngineIsa.Scalar)
        {
            Gathered(s, g, share, p0, p1);
            return;
        }

        int k = conv.Kernel, stride = conv.Stride, pad = conv.Padding;
        int xlo = Math.Min(g.OutW, (pad + stride - 1) / stride);
        int xhi = g.InW + pad >= k ? Math.Min(g.OutW, ((g.InW - k + pad) / stride) + 1) : 0;
        xhi = Math.Max(xhi, xlo);
        float* output = s[g.Out];
        int flags = relu ? GemmAvx512.Relu : 0;
        fixed (int* offsets = s.Shape.StemOffsets)
        {
            for (long p = p0; p < p1;)
            {
                long n = p / plane;
                int rem = (int)(p - (n * plane));
                int oy = rem / g.OutW, ox = rem - (oy * g.OutW);
                long rowEnd = Math.Min(p1, p + (g.OutW - ox));
                int iy0 = (oy * stride) - pad;
                if (iy0 < 0 || iy0 + k > g.InH)
                {
                    Gathered(s, g, share, p, rowEnd);
                    p = rowEnd;
                    continue;
                }

                int oxEnd = ox + (int)(rowEnd - p);
                int a = Math.Clamp(xlo, ox, oxEnd), b = Math.Clamp(xhi, a, oxEnd);
                Gathered(s, g, share, p, p + (a - ox));
                if (b > a)
                {
                    float* first = s.Input + (n * conv.InChannels * g.InH * g.InW) + ((long)iy0 * g.InW) + ((a * stride) - pad);
                    float* c = output + ((p + (a - ox)) * g.OutCs);
                    if (s.Isa == EngineIsa.Avx512)
                    {
                        GemmAvx512.RunIndirect(first, stride, b - a, weights, offsets, c, g.OutCs, flags);
                    }
                    else
                    {
                        GemmAvx2.RunIndirect(first, stride, b - a, weights, offsets, c, g.OutCs, flags);
                    }
                }

                Gathered(s, g, share, p + (b - ox), rowEnd);
                p = rowEnd;
            }
        }
    }

    private void Gathered(RunState s, ConvShape g, int share, long p0, long p1)
    {
        float* scratch = s.Scratch(share);
        float* output = s[g.Out];
        int k = weights.K;
        for (long p = p0; p < p1; p += Chunk)
        {
            int count = (int)Math.Min(Chunk, p1 - p);
            StemPatches.Gather(s.Input, conv.InChannels, g.InH, g.InW, conv.Kernel, conv.Stride, conv.Padding, g.OutH, g.OutW, p, count, scratch);
            PackedGemm.Run(s.Isa, scratch, k, count, weights, 0, weights.PanelCount, 0, k, output + (p * g.OutCs), g.OutCs, relu ? GemmAvx512.Relu : 0);
        }
    }
}

/// <summary>Depthwise 3x3: output rows of all images split between shares.</summary>
internal sealed unsafe class DepthwiseStep(ConvLayer conv, DepthwiseWeights weights, bool relu) : EngineStep
{
    public ConvLayer Conv => conv;

    /// <summary>Whether the step may be fused with the pointwise layer after it (squeeze-excite needs a barrier).</summary>
    public bool Fusable => conv.SqueezeExcite is null;

    public override void Run(RunState s, int share)
    {
        var g = s.Shape.Convs[conv.Index];
        (long r0, long r1) = s.Share((long)s.Shape.Batch * g.OutH, share);
        RunRows(s, r0, r1);
    }

    /// <summary>Output rows [r0, r1) of all images (row r is row r % OutH of image r / OutH).</summary>
    public void RunRows(RunState s, long r0, long r1)
    {
        var g = s.Shape.Convs[conv.Index];
        float* input = s[g.In], output = s[g.Out], zero = s[Slot.ZeroRow];
        long inImage = (long)g.InH * g.InW * g.InCs;
        for (long r = r0; r < r1;)
        {
            long n = r / g.OutH;
            int oy = (int)(r - (n * g.OutH));
            int count = (int)Math.Min(g.OutH - oy, r1 - r);
            Depthwise3x3.Rows(s.Isa, input + (n * inImage), g.InH, g.InW, g.InCs, zero, weights, conv.Stride, oy, count, output + (r * g.OutW * g.OutCs), g.OutW, g.OutCs, relu);
            r += count;
        }
    }
}

/// <summary>
/// Pointwise 1x1 as a GEMM: rows = pixels of all images, columns = output channels. Shares are a static
/// grid of row ranges x panel ranges chosen per shape (see <see cref="Partition"/>).
/// </summary>
internal sealed unsafe class PointwiseStep(ConvLayer conv, PackedPanels weights, bool relu, int kBlock) : EngineStep
{
    public PackedPanels Weights => weights;

    public ConvLayer Conv => conv;

    public override void Run(RunState s, int share)
    {
        var g = s.Shape.Convs[conv.Index];
        long rows = (long)s.Shape.Batch * g.OutH * g.OutW;
        var (r0, r1, p0, p1) = Partition(rows, weights, s.Shares, share);
        RunPixels(s, r0, r1, p0, p1);
    }

    /// <summary>GEMM rows (pixels of all images) [r0, r1) for panels [p0, p1).</summary>
    public void RunPixels(RunState s, long r0, long r1, int p0, int p1)
    {
        var g = s.Shape.Convs[conv.Index];
        float* input = s[g.In] + (r0 * g.InCs);
        float* output = s[g.Out] + (r0 * g.OutCs);
        PackedGemm.RunBlocked(s.Isa, input, g.InCs, (int)(r1 - r0), weights, p0, p1, kBlock, output, g.OutCs, relu);
    }

    /// <summary>
    /// Splits shares into a grid of row groups x panel groups: the grid with the smallest largest share of
    /// work (in 16-column x 1-row units), and among equals the one that moves fewer A and B bytes per share.
    /// Depends only on the shape and the share count, so every run uses the same partition.
    /// </summary>
    public static (long R0, long R1, int P0, int P1) Partition(long rows, PackedPanels b, int shares, int share)
    {
        int bestPanelGroups = 1;
        double bestWork = double.MaxValue, bestTraffic = double.MaxValue;
        for (int pg = 1; pg <= shares; pg++)
        {
            if (shares % pg != 0 || pg > b.PanelCount)
            {
                continue;
            }

            int rg = shares / pg;
            long rowsEach = (rows + rg - 1) / rg;
            int panelsEach = (b.PanelCount + pg - 1) / pg;
            double work = (double)rowsEach * Math.Min(panelsEach * PackedPanels.PanelWidth, b.PaddedN);
            double traffic = ((double)rowsEach * b.K) + ((double)panelsEach * PackedPanels.PanelWidth * b.K);
            if (work < bestWork * 0.999 || (work <= bestWork * 1.001 && traffic < bestTraffic))
            {
                bestWork = work;
                bestTraffic = traffic;
                bestPanelGroups = pg;
            }
        }

        int rowGroups = shares / bestPanelGroups;
        int rowGroup = share / bestPanelGroups, panelGroup = share % bestPanelGroups;
        long r0 = rows * rowGroup / rowGroups, r1 = rows * (rowGroup + 1) / rowGroups;
        int p0 = b.PanelCount * panelGroup / bestPanelGroups, p1 = b.PanelCount * (panelGroup + 1) / bestPanelGroups;
        return (r0, r1, p0, p1);
    }
}

/// <summary>
/// A depthwise layer and the pointwise layer after it as one step: each share computes its depthwise output rows
/// and then the pointwise GEMM over exactly those pixels, which only that share has written, so the barrier
/// between the two layers (and a trip of the rows through L2) disappears. Used when the rows split evenly.
/// </summary>
internal sealed unsafe class DepthwisePointwiseStep(DepthwiseStep depthwise, PointwiseStep pointwise) : EngineStep
{
    public override void Run(RunState s, int share)
    {
        var g = s.Shape.Convs[depthwise.Conv.Index];
        (long r0, long r1) = s.Share((long)s.Shape.Batch * g.OutH, share);
        depthwise.RunRows(s, r0, r1);
        pointwise.RunPixels(s, r0 * g.OutW, r1 * g.OutW, 0, pointwise.Weights.PanelCount);
    }
}

/// <summary>A convolution through a general algorithm (direct / im2col / im2win), output rows split between shares.</summary>
internal sealed unsafe class GeneralConvStep(ConvLayer conv, bool relu) : EngineStep
{
    public override void Run(RunState s, int share)
    {
        var g = s.Shape.Convs[conv.Index];
        var kernel = s.Shape.General![conv.Index];
        (long r0, long r1) = s.Share((long)s.Shape.Batch * g.OutH, share);
        long inImage = (long)g.InH * g.InW * g.InCs, outImage = (long)g.OutH * g.OutW * g.OutCs;
        float* input = s[g.In], output = s[g.Out];
        var workspace = new Span<float>(s.Workspace(share), (int)s.Shape.WorkspacePerShare);
        for (long r = r0; r < r1;)
        {
            long n = r / g.OutH;
            int start = (int)(r - (n * g.OutH));
            int end = (int)Math.Min(g.OutH, r1 - (n * g.OutH));
            kernel.Run(
                new ReadOnlySpan<float>(input + (n * inImage), (int)inImage),
                new Span<float>(output + (n * outImage), (int)outImage),
                workspace,
                start,
                end,
                relu);
            r = (n * g.OutH) + end;
        }
    }
}

/// <summary>Squeeze: per image and channel, the mean over pixels of the convolution's output (before ReLU).</summary>
internal sealed unsafe class SqueezeMeanStep(ConvLayer conv) : EngineStep
{
    public override void Run(RunState s, int share)
    {
        var g = s.Shape.Convs[conv.Index];
        ChannelMeansShare(s, share, s[g.Out], g.OutH * g.OutW, g.OutCs, s[Slot.SeMean], s.Shape.SeStride);
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
internal sealed unsafe class ExciteGateStep(ConvLayer conv) : EngineStep
{
    public override void Run(RunState s, int share)
    {
        var g = s.Shape.Convs[conv.Index];
        (long n0, long n1) = s.Share(s.Shape.Batch, share);
        float* hidden = s[Slot.SeHidden] + (share * s.Shape.HiddenStride);
        for (long n = n0; n < n1; n++)
        {
            long off = n * s.Shape.SeStride;
            conv.SqueezeExcite!.Gate(s.Isa, s[Slot.SeMean] + off, hidden, s[Slot.SeGate] + off, g.OutCs);
        }
    }
}

/// <summary>Scales every pixel by its image's gate and applies the block's ReLU, pixels split between shares.</summary>
internal sealed unsafe class GateReluStep(ConvLayer conv) : EngineStep
{
    public override void Run(RunState s, int share)
    {
        var g = s.Shape.Convs[conv.Index];
        long plane = (long)g.OutH * g.OutW;
        (long p0, long p1) = s.Share(s.Shape.Batch * plane, share);
        float* output = s[g.Out];
        for (long p = p0; p < p1;)
        {
            long n = p / plane;
            long end = Math.Min(p1, (n + 1) * plane);
            ChannelOps.GateRelu(s.Isa, output + (p * g.OutCs), (int)(end - p), g.OutCs, g.OutCs, s[Slot.SeGate] + (n * s.Shape.SeStride), relu: true);
            p = end;
        }
    }
}

/// <summary>Global average pooling of the last activation into [batch, features].</summary>
internal sealed unsafe class PoolStep(ConvLayer last) : EngineStep
{
    public override void Run(RunState s, int share)
    {
        var g = s.Shape.Convs[last.Index];
        SqueezeMeanStep.ChannelMeansShare(s, share, s[g.Out], g.OutH * g.OutW, g.OutCs, s[Slot.Pooled], s.Shape.PooledStride);
    }
}

/// <summary>The classifier: a GEMM with the images as rows, panels split between shares.</summary>
internal sealed unsafe class LinearStep(PackedPanels weights) : EngineStep
{
    public PackedPanels Weights => weights;

    public override void Run(RunState s, int share)
    {
        (long p0, long p1) = s.Share(weights.PanelCount, share);
        PackedGemm.Run(s.Isa, s[Slot.Pooled], s.Shape.PooledStride, s.Shape.Batch, weights, (int)p0, (int)p1, 0, weights.K, s[Slot.Logits], weights.PaddedN, 0);
    }
}
