using System.Runtime.CompilerServices;

namespace MobileOne.Kernels.Conv;

/// <summary>
/// im2col + GEMM in NHWC. The patch matrix of a band has one row per output pixel, [ky][kx][C_in]: Kh runs of
/// Kw*C_in values that are contiguous in the image, so the unfold is Kh copies per pixel (plus zeros at the
/// border). A group's patch is its C_in/g slice of every tap. The GEMM multiplies those rows with the packed
/// [K][C_out/g] panels in 6-pixel x up-to-64-channel register tiles. A 1x1, stride-1, unpadded layer skips
/// the unfold: the image already is the patch matrix.
/// </summary>
internal sealed unsafe class Im2ColConvolution : PixelGridConvolution
{
    private readonly bool imageIsPatchMatrix;
    private readonly int patchLength;

    public Im2ColConvolution(in ConvGeometry g, ReadOnlySpan<float> weightOihw, ReadOnlySpan<float> bias, Isa isa)
        : base(ConvAlgorithm.Im2Col, g, weightOihw, bias, isa, TapOrder.RowMajor)
    {
        patchLength = g.KernelHeight * g.KernelWidth * g.InChannels;
        imageIsPatchMatrix = g.IsPointwiseIdentityLayout;
    }

    public override long WorkspaceFloats(int outputRows)
    {
        long rows = ConvolutionKernels.CheckRows(outputRows, Geometry);
        return imageIsPatchMatrix ? 0 : rows * Geometry.OutWidth * patchLength;
    }

    private protected override void RunBand(float* image, float* output, float* workspace, int rowStart, int rowEnd, bool relu)
    {
        ConvGeometry g = Geometry;
        int wo = g.OutWidth;
        PixelGrid grid;
        if (imageIsPatchMatrix)
        {
            grid = new PixelGrid(image + ((nint)rowStart * wo * g.InChannels), wo, (nint)wo * g.InChannels, g.InChannels);
        }
        else
        {
            Unfold(image, workspace, rowStart, rowEnd);
            grid = new PixelGrid(workspace, wo, (nint)wo * patchLength, patchLength);
        }

        int pixels = (rowEnd - rowStart) * wo;
        float* band = output + ((nint)rowStart * wo * g.OutChannels);
        Multiply(grid, pixels, band, relu);
    }

    /// <summary>Patch rows for output rows [rowStart, rowEnd): per kernel row one contiguous run of the image, zeros outside it.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Unfold(float* image, float* patches, int rowStart, int rowEnd)
    {
        ConvGeometry g = Geometry;
        int c = g.InChannels, h = g.InHeight, w = g.InWidth, kh = g.KernelHeight, kw = g.KernelWidth, wo = g.OutWidth;
        nint run = (nint)kw * c;
        float* dst = patches;
        for (int oy = rowStart; oy < rowEnd; oy++)
        {
            for (int ox = 0; ox < wo; ox++)
            {
                int ix0 = (ox * g.StrideW) - g.PadW;
                int kx0 = Math.Max(0, -ix0), kx1 = Math.Min(kw, w - ix0);
                for (int ky = 0; ky < kh; ky++, dst += run)
                {
                    int iy = (oy * g.StrideH) - g.PadH + ky;
                    if ((uint)iy >= (uint)h || kx1 <= kx0)
                    {
                        Transform.Clear(dst, run);
                        continue;
                    }

                    Transform.Clear(dst, (nint)kx0 * c);
                    Transform.Copy(image + ((((nint)iy * w) + ix0 + kx0) * c), dst + ((nint)kx0 * c), (nint)(kx1 - kx0) * c);
                    Transform.Clear(dst + ((nint)kx1 * c), (nint)(kw - kx1) * c);
                }
            }
        }
    }
}
