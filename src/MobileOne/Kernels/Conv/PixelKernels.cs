using System.Runtime.CompilerServices;
using MobileOne.Kernels.Gemm;
using MobileOne.Kernels.Depthwise;

namespace MobileOne.Kernels.Conv;

/// <summary>Runs the microkernels over every pixel of a band laid out as a <see cref="PixelGrid"/> (im2col, im2win).</summary>
internal static unsafe class PixelKernels
{
    /// <summary>
    /// Dense or grouped: for each group and output-channel panel, 6-pixel tiles over the band. Panels are the
    /// outer loop so a panel (up to K x 64 floats) stays in L2 while the patch rows stream past it.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Gemm<TV, TL>(in PixelGrid grid, int pixels, PanelWeights weights, in ReductionLoop loop, int inPerGroup, float* output, int outChannels, bool relu)
        where TV : struct
        where TL : struct, ILanes<TV>
    {
        for (int grp = 0; grp < weights.Groups; grp++)
        {
            for (int panel = 0; panel < weights.Panels; panel++)
            {
                float* b = weights.Weights(grp, panel);
                float* bias = weights.Bias(grp, panel);
                float* c = output + (grp * weights.OutPerGroup) + (panel * weights.PanelFloats);
                nint ldb = weights.PanelWidth(panel);
                int valid = weights.PanelColumns(panel);
                nint aOffset = (nint)grp * inPerGroup;
                switch (weights.PanelVectors(panel))
                {
                    case 1: GemmPanel<TV, TL, D1>(grid, pixels, aOffset, b, ldb, loop, bias, c, outChannels, valid, relu); break;
                    case 2: GemmPanel<TV, TL, D2>(grid, pixels, aOffset, b, ldb, loop, bias, c, outChannels, valid, relu); break;
                    case 3: GemmPanel<TV, TL, D3>(grid, pixels, aOffset, b, ldb, loop, bias, c, outChannels, valid, relu); break;
                    default: GemmPanel<TV, TL, D4>(grid, pixels, aOffset, b, ldb, loop, bias, c, outChannels, valid, relu); break;
                }
            }
        }
    }

    /// <summary>Depthwise: the grid holds all channels of each tap side by side; taps step by C.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Depthwise<TV, TL>(in PixelGrid grid, int pixels, DepthwiseTapWeights weights, int channels, in ReductionLoop taps, float* output, bool relu)
        where TV : struct
        where TL : struct, ILanes<TV>
    {
        float** rows = stackalloc float*[6];
        int row = 0, col = 0;
        for (int p = 0; p < pixels; p += 6)
        {
            int count = Math.Min(6, pixels - p);
            Fill(grid, rows, count, ref row, ref col);
            TileDispatch.DepthwiseAllChannels<TV, TL>(count, rows, weights.Weights, channels, taps, weights.Bias, output + ((nint)p * channels), relu);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void GemmPanel<TV, TL, TCols>(
        in PixelGrid grid, int pixels, nint aOffset, float* b, nint ldb, in ReductionLoop loop, float* bias, float* c, nint ldc, int valid, bool relu)
        where TV : struct
        where TL : struct, ILanes<TV>
        where TCols : struct, IDim
    {
        float** rows = stackalloc float*[6];
        int row = 0, col = 0;
        int p = 0;
        for (; p + 6 <= pixels; p += 6)
        {
            Fill(grid, rows, 6, ref row, ref col);
            GemmTile.Run<TV, TL, D6, TCols, ContiguousReduction>(rows, aOffset, 0, null, b, ldb, loop, bias, c + (p * ldc), ldc, valid, relu ? GemmEpilogue.Relu : 0);
        }

        if (p < pixels)
        {
            Fill(grid, rows, pixels - p, ref row, ref col);
            GemmTile.Rows<TV, TL, TCols, ContiguousReduction>(pixels - p, rows, aOffset, 0, null, b, ldb, loop, bias, c + (p * ldc), ldc, valid, relu ? GemmEpilogue.Relu : 0);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Fill(in PixelGrid grid, float** rows, int count, ref int row, ref int col)
    {
        for (int r = 0; r < count; r++)
        {
            rows[r] = grid.Start + (row * grid.RowStride) + (col * grid.ColumnStride);
            if (++col == grid.Columns)
            {
                col = 0;
                row++;
            }
        }
    }
}
