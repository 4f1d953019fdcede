using System.Runtime.CompilerServices;

namespace MobileOne.Kernels.Conv;

/// <summary>
/// im2win (Lu et al., HPEC 2022) in NHWC. For each output row the Kh input rows it reads are stored
/// column-interleaved: window row [x][ky][C_in] over the Wp = (Wo-1)*Sw + Kw padded input columns, zeros for
/// padding. Output pixel ox's window is then the single contiguous run of Kw*Kh*C_in floats starting at
/// column ox*Sw, and neighbouring windows overlap instead of being copied Kw times as im2col does, so the
/// buffer is Ho*Wp*Kh*C_in floats against im2col's Ho*Wo*Kh*Kw*C_in. The filter is packed in the same
/// [kx][ky][C_in] order and the windows are multiplied with the same register-tiled GEMM kernel as im2col.
/// </summary>
internal sealed unsafe class Im2WinConvolution : PixelGridConvolution
{
    private readonly int paddedColumns;
    private readonly nint windowRow;

    public Im2WinConvolution(in ConvGeometry g, ReadOnlySpan<float> weightOihw, ReadOnlySpan<float> bias, Isa isa)
        : base(ConvAlgorithm.Im2Win, g, weightOihw, bias, isa, TapOrder.ColumnMajor)
    {
        paddedColumns = ((g.OutWidth - 1) * g.StrideW) + g.KernelWidth;
        windowRow = (nint)paddedColumns * g.KernelHeight * g.InChannels;
    }

    public override long WorkspaceFloats(int outputRows) => ConvolutionKernels.CheckRows(outputRows, Geometry) * windowRow;

    private protected override void RunBand(float* image, float* output, float* workspace, int rowStart, int rowEnd, bool relu)
    {
        ConvGeometry g = Geometry;
        BuildWindows(image, workspace, rowStart, rowEnd);
        var grid = new PixelGrid(workspace, g.OutWidth, windowRow, (nint)g.StrideW * g.KernelHeight * g.InChannels);
        int pixels = (rowEnd - rowStart) * g.OutWidth;
        float* band = output + ((nint)rowStart * g.OutWidth * g.OutChannels);
        Multiply(grid, pixels, band, relu);
    }

    /// <summary>
    /// Window rows for output rows [rowStart, rowEnd), written in order: column, kernel row, channel. Padding
    /// columns are whole runs of zeros; inside the image each (column, kernel row) is one C_in-float copy.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void BuildWindows(float* image, float* windows, int rowStart, int rowEnd)
    {
        ConvGeometry g = Geometry;
        int c = g.InChannels, h = g.InHeight, kh = g.KernelHeight;
        nint column = (nint)kh * c, imageRow = (nint)g.InWidth * c;

        // Columns [inStart, inEnd) of the window row hold image columns [inStart - PadW, inEnd - PadW).
        int inStart = Math.Min(g.PadW, paddedColumns), inEnd = Math.Min(paddedColumns, g.PadW + g.InWidth);
        float* dst = windows;
        for (int oy = rowStart; oy < rowEnd; oy++, dst += windowRow)
        {
            Transform.Clear(dst, inStart * column);
            Transform.Clear(dst + (inEnd * column), (paddedColumns - inEnd) * column);
            int iyTop = (oy * g.StrideH) - g.PadH;
            for (int ky = 0; ky < kh; ky++)
            {
                int iy = iyTop + ky;
                float* d = dst + (inStart * column) + ((nint)ky * c);
                if ((uint)iy >= (uint)h)
                {
                    for (int x = inStart; x < inEnd; x++, d += column)
                    {
                        Transform.Clear(d, c);
                    }

                    continue;
                }

                Transform.CopyRuns(image + (iy * imageRow), c, d, column, c, inEnd - inStart);
            }
        }
    }
}
