using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace MobileOne.Kernels.Conv;

/// <summary>
/// Direct convolution in NHWC: no copy of the input. For each output row and each run of up to 6 output
/// pixels the microkernel walks the kernel taps straight through the image (one contiguous run of Kw*C_in
/// floats per kernel row when groups is 1), vectorized over output channels. Kernel rows that fall in the
/// padding are skipped for the whole output row; pixels whose window crosses the left or right edge are
/// computed one at a time with their columns clipped, so the hot path never tests bounds.
/// </summary>
internal sealed unsafe class DirectConvolution : ConvolutionKernel
{
    private readonly PanelWeights? panels;
    private readonly DepthwiseWeights? depthwise;

    // Output columns whose whole window lies inside the image: [interiorStart, interiorEnd).
    private readonly int interiorStart;
    private readonly int interiorEnd;

    public DirectConvolution(in ConvGeometry g, ReadOnlySpan<float> weightOihw, ReadOnlySpan<float> bias, SimdWidth width)
        : base(ConvAlgorithm.Direct, g, width)
    {
        if (ConvolutionKernels.IsDepthwise(g))
        {
            depthwise = new DepthwiseWeights(weightOihw, bias, g, TapOrder.RowMajor);
        }
        else
        {
            panels = new PanelWeights(weightOihw, bias, g, width, TapOrder.RowMajor);
        }

        interiorStart = Math.Min(g.OutWidth, (g.PadW + g.StrideW - 1) / g.StrideW);
        int lastInside = g.InWidth - g.KernelWidth + g.PadW;
        interiorEnd = lastInside < 0 ? interiorStart : Math.Clamp((lastInside / g.StrideW) + 1, interiorStart, g.OutWidth);
    }

    public override long PackedWeightFloats => panels?.Floats ?? depthwise!.Floats;

    public override long WorkspaceFloats(int outputRows)
    {
        ConvolutionKernels.CheckRows(outputRows, Geometry);
        return 0;
    }

    private protected override void RunBand(float* image, float* output, float* workspace, int rowStart, int rowEnd, bool relu)
    {
        switch (Width)
        {
            case SimdWidth.Vector512: RunRows<Vector512<float>, Vector512Ops>(image, output, rowStart, rowEnd, relu); break;
            case SimdWidth.Vector256: RunRows<Vector256<float>, Vector256Ops>(image, output, rowStart, rowEnd, relu); break;
            default: RunRows<float, ScalarOps>(image, output, rowStart, rowEnd, relu); break;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void RunRows<TVec, TOps>(float* image, float* output, int rowStart, int rowEnd, bool relu)
        where TVec : struct
        where TOps : struct, IVectorOps<TVec>
    {
        ConvGeometry g = Geometry;
        for (int oy = rowStart; oy < rowEnd; oy++)
        {
            int iyTop = (oy * g.StrideH) - g.PadH;
            int ky0 = Math.Max(0, -iyTop);
            int kyCount = Math.Max(0, Math.Min(g.KernelHeight, g.InHeight - iyTop) - ky0);
            float* outRow = output + ((nint)oy * g.OutWidth * g.OutChannels);

            // The first image row any kernel tap of this output row reads.
            float* inRow = image + ((nint)(iyTop + ky0) * g.InWidth * g.InChannels);
            if (depthwise is not null)
            {
                DepthwiseRow<TVec, TOps>(inRow, ky0, kyCount, outRow, relu);
                continue;
            }

            for (int grp = 0; grp < g.Groups; grp++)
            {
                for (int panel = 0; panel < panels!.Panels; panel++)
                {
                    switch (panels.PanelVectors(panel))
                    {
                        case 1: DenseRow<TVec, TOps, N1>(inRow, ky0, kyCount, grp, panel, outRow, relu); break;
                        case 2: DenseRow<TVec, TOps, N2>(inRow, ky0, kyCount, grp, panel, outRow, relu); break;
                        case 3: DenseRow<TVec, TOps, N3>(inRow, ky0, kyCount, grp, panel, outRow, relu); break;
                        default: DenseRow<TVec, TOps, N4>(inRow, ky0, kyCount, grp, panel, outRow, relu); break;
                    }
                }
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void DenseRow<TVec, TOps, TCols>(float* inRow, int ky0, int kyCount, int grp, int panel, float* outRow, bool relu)
        where TVec : struct
        where TOps : struct, IVectorOps<TVec>
        where TCols : struct, IConst
    {
        ConvGeometry g = Geometry;
        PanelWeights w = panels!;
        int c = g.InChannels, cg = g.InChannelsPerGroup, kw = g.KernelWidth, sw = g.StrideW;
        nint ldb = w.PanelWidth(panel);
        int valid = w.PanelColumns(panel);
        nint ldc = g.OutChannels;
        nint aOffset = (nint)grp * cg;
        float* bias = w.Bias(grp, panel);
        float* b = w.Weights(grp, panel) + ((nint)ky0 * kw * cg * ldb);
        float* c0 = outRow + (grp * w.OutPerGroup) + (panel * w.PanelFloats);
        nint imageRow = (nint)g.InWidth * c;
        float** rows = stackalloc float*[6];

        // Interior pixels: every kernel column is inside the image.
        var loop = g.Groups == 1
            ? new ReductionLoop(kyCount, imageRow, kw * cg, 1, 0, 0, kw * c)
            : new ReductionLoop(kyCount, imageRow, kw * cg, kw, c, cg, cg);
        int ox = interiorStart;
        for (; ox + 6 <= interiorEnd; ox += 6)
        {
            for (int r = 0; r < 6; r++)
            {
                rows[r] = inRow + ((nint)(((ox + r) * sw) - g.PadW) * c);
            }

            GemmTile.Run<TVec, TOps, N6, TCols>(rows, aOffset, b, ldb, loop, bias, c0 + (ox * ldc), ldc, valid, relu);
        }

        if (ox < interiorEnd)
        {
            for (int r = 0; r < interiorEnd - ox; r++)
            {
                rows[r] = inRow + ((nint)(((ox + r) * sw) - g.PadW) * c);
            }

            TileDispatch.GemmRows<TVec, TOps, TCols>(interiorEnd - ox, rows, aOffset, b, ldb, loop, bias, c0 + (ox * ldc), ldc, valid, relu);
        }

        // Edge pixels, one at a time with the kernel columns that fall inside the image.
        for (ox = 0; ox < g.OutWidth; ox++)
        {
            if (ox >= interiorStart && ox < interiorEnd)
            {
                ox = interiorEnd - 1;
                continue;
            }

            int ix0 = (ox * sw) - g.PadW;
            int kx0 = Math.Max(0, -ix0);
            int kxCount = Math.Max(0, Math.Min(kw, g.InWidth - ix0) - kx0);
            var edge = g.Groups == 1
                ? new ReductionLoop(kyCount, imageRow, kw * cg, 1, 0, 0, kxCount * c)
                : new ReductionLoop(kyCount, imageRow, kw * cg, kxCount, c, cg, cg);
            rows[0] = inRow + ((nint)(ix0 + kx0) * c);
            GemmTile.Run<TVec, TOps, N1, TCols>(rows, aOffset, b + ((nint)kx0 * cg * ldb), ldb, edge, bias, c0 + (ox * ldc), ldc, valid, relu);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void DepthwiseRow<TVec, TOps>(float* inRow, int ky0, int kyCount, float* outRow, bool relu)
        where TVec : struct
        where TOps : struct, IVectorOps<TVec>
    {
        ConvGeometry g = Geometry;
        DepthwiseWeights w = depthwise!;
        int c = g.InChannels, kw = g.KernelWidth, sw = g.StrideW;
        nint imageRow = (nint)g.InWidth * c;
        float* weights = w.Weights + ((nint)ky0 * kw * c);
        float** rows = stackalloc float*[6];
        var taps = new ReductionLoop(kyCount, imageRow, kw, kw, c, 1, 0);
        for (int ox = interiorStart; ox < interiorEnd; ox += 6)
        {
            int count = Math.Min(6, interiorEnd - ox);
            for (int r = 0; r < count; r++)
            {
                rows[r] = inRow + ((nint)(((ox + r) * sw) - g.PadW) * c);
            }

            TileDispatch.DepthwiseAllChannels<TVec, TOps>(count, rows, weights, c, taps, w.Bias, outRow + ((nint)ox * c), relu);
        }

        for (int ox = 0; ox < g.OutWidth; ox++)
        {
            if (ox >= interiorStart && ox < interiorEnd)
            {
                ox = interiorEnd - 1;
                continue;
            }

            int ix0 = (ox * sw) - g.PadW;
            int kx0 = Math.Max(0, -ix0);
            int kxCount = Math.Max(0, Math.Min(kw, g.InWidth - ix0) - kx0);
            var edge = new ReductionLoop(kyCount, imageRow, kw, kxCount, c, 1, 0);
            rows[0] = inRow + ((nint)(ix0 + kx0) * c);
            TileDispatch.DepthwiseAllChannels<TVec, TOps>(1, rows, weights + ((nint)kx0 * c), c, edge, w.Bias, outRow + ((nint)ox * c), relu);
        }
    }
}
