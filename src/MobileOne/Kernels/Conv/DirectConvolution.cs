using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using MobileOne.Kernels.Gemm;
using MobileOne.Kernels.Depthwise;

namespace MobileOne.Kernels.Conv;

/// <summary>
/// Direct convolution in NHWC: no copy of the input. Runs of up to 6 output pixels go through the microkernel,
/// which walks the kernel taps straight through the image (one contiguous run of Kw*C_in floats per kernel row
/// when groups is 1), vectorized over output channels. A tile's pixels must share which taps fall inside the
/// image, so: kernel rows in the padding are dropped for a whole output row; the interior of a row (every
/// kernel column inside) goes in 6-pixel tiles along the row; and the columns left over (the edge columns
/// with clipped kernel columns, and the interior's last &lt;6) go in 6-pixel tiles down the column, over the
/// rows whose kernel rows are all inside. Only the few top and bottom rows are left with a shorter tail tile
/// and one-pixel edge tiles. The hot path never tests bounds, and a pixel's sum order depends only on its taps.
/// </summary>
internal sealed unsafe class DirectConvolution : ConvolutionKernel
{
    private const int BlockBytes = 256 * 1024;

    private readonly PanelWeights? panels;
    private readonly DepthwiseTapWeights? depthwise;

    // Output columns whose whole window lies inside the image: [interiorStart, interiorEnd); the first
    // tiledEnd - interiorStart of them are whole 6-pixel tiles along the row.
    private readonly int interiorStart;
    private readonly int interiorEnd;
    private readonly int tiledEnd;

    // Output rows whose kernel rows all lie inside the image: [fullRowStart, fullRowEnd).
    private readonly int fullRowStart;
    private readonly int fullRowEnd;

    // Output rows per block in the dense path, a multiple of 6 whose input rows take about BlockBytes.
    private readonly int rowsPerBlock;

    public DirectConvolution(in ConvGeometry g, ReadOnlySpan<float> weightOihw, ReadOnlySpan<float> bias, Isa isa)
        : base(ConvAlgorithm.Direct, g, isa)
    {
        if (ConvolutionKernels.IsDepthwise(g))
        {
            depthwise = new DepthwiseTapWeights(weightOihw, bias, g.InChannels, g.KernelHeight, g.KernelWidth, g.InChannels, TapOrder.RowMajor);
        }
        else
        {
            panels = new PanelWeights(weightOihw, bias, g, isa, TapOrder.RowMajor);
        }

        (interiorStart, interiorEnd) = Inside(g.OutWidth, g.InWidth, g.KernelWidth, g.StrideW, g.PadW);
        tiledEnd = interiorStart + ((interiorEnd - interiorStart) / 6 * 6);
        (fullRowStart, fullRowEnd) = Inside(g.OutHeight, g.InHeight, g.KernelHeight, g.StrideH, g.PadH);
        long inputRowBytes = 4L * g.InWidth * g.InChannels;
        long rows = ((BlockBytes / inputRowBytes) - g.KernelHeight) / g.StrideH / 6 * 6;
        rowsPerBlock = (int)Math.Clamp(rows, 6, Math.Max(6, g.OutHeight));
    }

    public override long PackedWeightFloats => panels?.Floats ?? depthwise!.Floats;

    public override long WorkspaceFloats(int outputRows)
    {
        ConvolutionKernels.CheckRows(outputRows, Geometry);
        return 0;
    }

    private protected override void RunBand(float* image, float* output, float* workspace, int rowStart, int rowEnd, bool relu)
    {
        ConvGeometry g = Geometry;
        if (depthwise is not null)
        {
            // A depthwise layer's direct convolution is the library's depthwise kernel, the one the engine runs.
            var rows = new DepthwiseKernel.Geometry(g.InHeight, g.InWidth, g.OutWidth, g.KernelHeight, g.KernelWidth, g.StrideH, g.StrideW, g.PadH, g.PadW, 1, 1);
            DepthwiseKernel.Rows(InstructionSet, image, g.InChannels, depthwise, rows, rowStart, rowEnd - rowStart, output + ((nint)rowStart * g.OutWidth * g.OutChannels), g.OutChannels, accumulate: false, relu);
            return;
        }

        switch (InstructionSet)
        {
            case Kernels.Isa.Avx512: RunRows<Vector512<float>, Lanes512>(image, output, rowStart, rowEnd, relu); break;
            case Kernels.Isa.Avx2: RunRows<Vector256<float>, Lanes256>(image, output, rowStart, rowEnd, relu); break;
            default: RunRows<float, Lanes1>(image, output, rowStart, rowEnd, relu); break;
        }
    }

    /// <summary>Output positions [start, end) along one axis whose whole kernel window lies inside the input.</summary>
    private static (int Start, int End) Inside(int outSize, int inSize, int kernel, int stride, int pad)
    {
        int start = Math.Min(outSize, (pad + stride - 1) / stride);
        int lastInside = inSize - kernel + pad;
        int end = lastInside < 0 ? start : Math.Clamp((lastInside / stride) + 1, start, outSize);
        return (start, end);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void RunRows<TV, TL>(float* image, float* output, int rowStart, int rowEnd, bool relu)
        where TV : struct
        where TL : struct, ILanes<TV>
    {
        ConvGeometry g = Geometry;
        // Panels inside row blocks: one panel's weights serve a whole block of output rows before the next
        // panel is read, while the block's input rows (about L2-sized) are read once per panel.
        for (int blockStart = rowStart; blockStart < rowEnd; blockStart += rowsPerBlock)
        {
            int blockEnd = Math.Min(rowEnd, blockStart + rowsPerBlock);
            for (int grp = 0; grp < g.Groups; grp++)
            {
                for (int panel = 0; panel < panels!.Panels; panel++)
                {
                    switch (panels.PanelVectors(panel))
                    {
                        case 1: DenseBlock<TV, TL, D1>(image, output, blockStart, blockEnd, grp, panel, relu); break;
                        case 2: DenseBlock<TV, TL, D2>(image, output, blockStart, blockEnd, grp, panel, relu); break;
                        case 3: DenseBlock<TV, TL, D3>(image, output, blockStart, blockEnd, grp, panel, relu); break;
                        default: DenseBlock<TV, TL, D4>(image, output, blockStart, blockEnd, grp, panel, relu); break;
                    }
                }
            }
        }
    }

    /// <summary>Offset of the first image row output row <paramref name="oy"/> reads, and its kernel rows inside the image.</summary>
    private (nint InRow, int Ky0, int KyCount) InputRows(int oy)
    {
        ConvGeometry g = Geometry;
        int iyTop = (oy * g.StrideH) - g.PadH;
        int ky0 = Math.Max(0, -iyTop);
        int kyCount = Math.Max(0, Math.Min(g.KernelHeight, g.InHeight - iyTop) - ky0);
        return ((nint)(iyTop + ky0) * g.InWidth * g.InChannels, ky0, kyCount);
    }

    /// <summary>Kernel columns inside the image for output column <paramref name="ox"/>, and the image column of the first.</summary>
    private (int Kx0, int KxCount, int Ix) InputColumns(int ox)
    {
        ConvGeometry g = Geometry;
        int ixLeft = (ox * g.StrideW) - g.PadW;
        int kx0 = Math.Max(0, -ixLeft);
        int kxCount = Math.Max(0, Math.Min(g.KernelWidth, g.InWidth - ixLeft) - kx0);
        return (kx0, kxCount, ixLeft + kx0);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void DenseBlock<TV, TL, TCols>(float* image, float* output, int blockStart, int blockEnd, int grp, int panel, bool relu)
        where TV : struct
        where TL : struct, ILanes<TV>
        where TCols : struct, IDim
    {
        ConvGeometry g = Geometry;
        PanelWeights w = panels!;
        int c = g.InChannels, cg = g.InChannelsPerGroup, kw = g.KernelWidth, sw = g.StrideW, wo = g.OutWidth;
        nint ldb = w.PanelWidth(panel);
        int valid = w.PanelColumns(panel);
        nint ldc = g.OutChannels;
        nint aOffset = (nint)grp * cg;
        nint imageRow = (nint)g.InWidth * c;
        nint kernelRow = (nint)kw * cg;
        float* bias = w.Bias(grp, panel);
        float* b = w.Weights(grp, panel);
        float* outBlock = output + (grp * w.OutPerGroup) + (panel * w.PanelFloats);
        float** rows = stackalloc float*[6];
        int fullStart = Math.Clamp(fullRowStart, blockStart, blockEnd), fullEnd = Math.Clamp(fullRowEnd, fullStart, blockEnd);

        for (int oy = blockStart; oy < blockEnd; oy++)
        {
            var (inRow, ky0, kyCount) = InputRows(oy);
            float* inputRow = image + inRow;
            float* bRows = b + (ky0 * kernelRow * ldb);
            float* outRow = outBlock + ((nint)oy * wo * ldc);
            var loop = Loop(kyCount, kw, imageRow, kernelRow, c, cg);
            for (int ox = interiorStart; ox < tiledEnd; ox += 6)
            {
                for (int r = 0; r < 6; r++)
                {
                    rows[r] = inputRow + ((nint)(((ox + r) * sw) - g.PadW) * c);
                }

                GemmTile.Run<TV, TL, D6, TCols, ContiguousReduction>(rows, aOffset, 0, null, bRows, ldb, loop, bias, outRow + (ox * ldc), ldc, valid, relu ? GemmEpilogue.Relu : 0);
            }

            if (oy >= fullStart && oy < fullEnd)
            {
                continue;
            }

            // A top or bottom row: the interior's last pixels as one shorter tile, the edges one pixel at a time.
            if (tiledEnd < interiorEnd)
            {
                for (int r = 0; r < interiorEnd - tiledEnd; r++)
                {
                    rows[r] = inputRow + ((nint)(((tiledEnd + r) * sw) - g.PadW) * c);
                }

                GemmTile.Rows<TV, TL, TCols, ContiguousReduction>(interiorEnd - tiledEnd, rows, aOffset, 0, null, bRows, ldb, loop, bias, outRow + (tiledEnd * ldc), ldc, valid, relu ? GemmEpilogue.Relu : 0);
            }

            for (int ox = 0; ox < wo; ox++)
            {
                if (ox == interiorStart && interiorEnd > interiorStart)
                {
                    ox = interiorEnd - 1;
                    continue;
                }

                var (kx0, kxCount, ix) = InputColumns(ox);
                rows[0] = inputRow + ((nint)ix * c);
                var edge = Loop(kyCount, kxCount, imageRow, kernelRow, c, cg);
                GemmTile.Run<TV, TL, D1, TCols, ContiguousReduction>(rows, aOffset, 0, null, bRows + (kx0 * cg * ldb), ldb, edge, bias, outRow + (ox * ldc), ldc, valid, relu ? GemmEpilogue.Relu : 0);
            }
        }

        // The other columns of the rows with every kernel row inside, 6 pixels down a column at a time:
        // consecutive rows' outputs are Wo*C_out apart, so the microkernel's row stride covers them.
        nint columnStride = (nint)wo * ldc;
        for (int ox = 0; ox < wo && fullStart < fullEnd; ox++)
        {
            if (ox == interiorStart && tiledEnd > interiorStart)
            {
                ox = tiledEnd - 1;
                continue;
            }

            var (kx0, kxCount, ix) = InputColumns(ox);
            var loop = Loop(g.KernelHeight, kxCount, imageRow, kernelRow, c, cg);
            float* bColumn = b + (kx0 * cg * ldb);
            for (int oy = fullStart; oy < fullEnd; oy += 6)
            {
                int count = Math.Min(6, fullEnd - oy);
                for (int r = 0; r < count; r++)
                {
                    rows[r] = image + InputRows(oy + r).InRow + ((nint)ix * c);
                }

                float* target = outBlock + ((((nint)oy * wo) + ox) * ldc);
                if (count == 6)
                {
                    GemmTile.Run<TV, TL, D6, TCols, ContiguousReduction>(rows, aOffset, 0, null, bColumn, ldb, loop, bias, target, columnStride, valid, relu ? GemmEpilogue.Relu : 0);
                }
                else
                {
                    GemmTile.Rows<TV, TL, TCols, ContiguousReduction>(count, rows, aOffset, 0, null, bColumn, ldb, loop, bias, target, columnStride, valid, relu ? GemmEpilogue.Relu : 0);
                }
            }
        }
    }

    /// <summary>
    /// The reduction of one pixel whose window has <paramref name="kyCount"/> kernel rows and
    /// <paramref name="kxCount"/> kernel columns inside the image: with groups 1 each kernel row is one run of
    /// kxCount*C_in floats; otherwise C_in/g floats per tap, C_in apart.
    /// </summary>
    private static ReductionLoop Loop(int kyCount, int kxCount, nint imageRow, nint kernelRow, int c, int cg) =>
        c == cg
            ? new ReductionLoop(kyCount, imageRow, kernelRow, 1, 0, 0, kxCount * c)
            : new ReductionLoop(kyCount, imageRow, kernelRow, kxCount, c, cg, cg);
}
