using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace MobileOne.Kernels.Gemm;

/// <summary>
/// The engine's GEMM over <see cref="PackedPanels"/>: C[rows, panel columns] = bias + A[rows, k] * B[k, panel], A being
/// pixels x input channels (NHWC rows, or the stem's patch rows), run on the library's one microkernel
/// (<see cref="GemmTile"/>). Tile shapes per width: AVX-512 takes a whole panel (1-4 zmm) with 8 rows, or 6 rows for
/// full 64-column panels (24 accumulators, as MLAS does); AVX2's 16 ymm take 16-column slices of 6 rows (12
/// accumulators), each slice over all rows before the next so its weights stay in L1; the scalar path takes 4 x 4.
/// The flag bits are <see cref="GemmEpilogue"/>'s.
/// </summary>
internal static unsafe class PackedGemm
{
    /// <summary>
    /// Rows [0, rows) of C for panels [panelStart, panelEnd), over k in [kStart, kStart + kLength).
    /// <paramref name="a"/> points at row 0, column 0 of A; <paramref name="c"/> at row 0, column 0 of C.
    /// </summary>
    public static void Run(Isa isa, float* a, nint lda, int rows, PackedPanels b, int panelStart, int panelEnd, int kStart, int kLength, float* c, nint ldc, int flags)
    {
        if (rows <= 0 || panelStart >= panelEnd || kLength <= 0)
        {
            return;
        }

        var loop = ReductionLoop.Contiguous(kLength);
        switch (isa)
        {
            case Isa.Avx512:
                Panels<Vector512<float>, Lanes512, ContiguousReduction>(a + kStart, lda, null, rows, b, panelStart, panelEnd, kStart, loop, c, ldc, flags);
                break;
            case Isa.Avx2:
                Panels<Vector256<float>, Lanes256, ContiguousReduction>(a + kStart, lda, null, rows, b, panelStart, panelEnd, kStart, loop, c, ldc, flags);
                break;
            default:
                Panels<float, Lanes1, ContiguousReduction>(a + kStart, lda, null, rows, b, panelStart, panelEnd, kStart, loop, c, ldc, flags);
                break;
        }
    }

    /// <summary>
    /// Rows [0, rows) of C for panels [panelStart, panelEnd) over k in [kStart, kStart + loop's length), A's row r read
    /// through <paramref name="loop"/> from <c>a + r * lda</c>: segments of a convolution's taps read in place from an
    /// NHWC image (A[r, segment j, i] = a[r * lda + j's offset + i]), so no patch is gathered.
    /// </summary>
    public static void RunLoop(Isa isa, float* a, nint lda, int rows, PackedPanels b, int panelStart, int panelEnd, int kStart, in ReductionLoop loop, float* c, nint ldc, int flags)
    {
        if (rows <= 0 || panelStart >= panelEnd)
        {
            return;
        }

        switch (isa)
        {
            case Isa.Avx512:
                Panels<Vector512<float>, Lanes512, ContiguousReduction>(a, lda, null, rows, b, panelStart, panelEnd, kStart, loop, c, ldc, flags);
                break;
            case Isa.Avx2:
                Panels<Vector256<float>, Lanes256, ContiguousReduction>(a, lda, null, rows, b, panelStart, panelEnd, kStart, loop, c, ldc, flags);
                break;
            default:
                Panels<float, Lanes1, ContiguousReduction>(a, lda, null, rows, b, panelStart, panelEnd, kStart, loop, c, ldc, flags);
                break;
        }
    }

    /// <summary>
    /// A GEMM whose A is never materialized: A[r, k] = a[r * lda + offsets[k]]. The stem uses it for interior
    /// output pixels, with a = the first pixel's receptive field in the NCHW input, lda = the stride and
    /// offsets[k] = ci * H * W + ky * W + kx: a direct convolution with the GEMM's register tile.
    /// </summary>
    public static void RunGathered(Isa isa, float* a, nint lda, int rows, PackedPanels b, int* offsets, float* c, nint ldc, int flags)
    {
        if (rows <= 0)
        {
            return;
        }

        var loop = ReductionLoop.Contiguous(b.K);
        switch (isa)
        {
            case Isa.Avx512:
                Panels<Vector512<float>, Lanes512, GatheredReduction>(a, lda, offsets, rows, b, 0, b.PanelCount, 0, loop, c, ldc, flags);
                break;
            case Isa.Avx2:
                Panels<Vector256<float>, Lanes256, GatheredReduction>(a, lda, offsets, rows, b, 0, b.PanelCount, 0, loop, c, ldc, flags);
                break;
            default:
                Panels<float, Lanes1, GatheredReduction>(a, lda, offsets, rows, b, 0, b.PanelCount, 0, loop, c, ldc, flags);
                break;
        }
    }

    /// <summary>
    /// The full product with K split into blocks of <paramref name="kBlock"/>: bias enters with the first block,
    /// ReLU is applied after the last, so the accumulation order per output is the same for any block size.
    /// </summary>
    public static void RunBlocked(Isa isa, float* a, nint lda, int rows, PackedPanels b, int panelStart, int panelEnd, int kBlock, float* c, nint ldc, bool relu)
    {
        int k = b.K;
        if (kBlock <= 0 || kBlock >= k)
        {
            Run(isa, a, lda, rows, b, panelStart, panelEnd, 0, k, c, ldc, relu ? GemmEpilogue.Relu : 0);
            return;
        }

        for (int k0 = 0; k0 < k; k0 += kBlock)
        {
            int len = Math.Min(kBlock, k - k0);
            int flags = (k0 > 0 ? GemmEpilogue.Accumulate : 0) | (relu && k0 + len == k ? GemmEpilogue.Relu : 0);
            Run(isa, a, lda, rows, b, panelStart, panelEnd, k0, len, c, ldc, flags);
        }
    }

    /// <summary>Rows of accumulators per tile for a slice of <paramref name="vectors"/> vectors: what the register file holds.</summary>
    private static int TileRows<TV, TL>(int vectors)
        where TV : struct
        where TL : struct, ILanes<TV>
    {
        if (TL.Count == 16)
        {
            // 32 zmm: 8 x 1-3 vectors, or 6 x 4 = 24 accumulators + 4 weight vectors + a broadcast.
            return vectors == 4 ? 6 : 8;
        }

        // 16 ymm: 6 x 2 = 12 accumulators; scalar: 4 x 4 of the 16 xmm.
        return TL.Count == 1 ? 4 : 6;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Panels<TV, TL, TIndex>(
        float* a, nint lda, int* offsets, int rows, PackedPanels b, int panelStart, int panelEnd, int kStart, in ReductionLoop loop, float* c, nint ldc, int flags)
        where TV : struct
        where TL : struct, ILanes<TV>
        where TIndex : struct, IReductionIndex
    {
        // A zero row stride would mean "read a table of row pointers" to the tile, and there is none here.
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(lda);
        for (int p = panelStart; p < panelEnd; p++)
        {
            int width = b.Width(p);
            int vectors = Math.Min(TL.MaxColumnVectors, width / TL.Count);
            int sliceWidth = vectors * TL.Count;
            float* panel = b.Panel(p) + ((long)kStart * width);
            for (int s = 0; s < width; s += sliceWidth)
            {
                float* bias = b.Bias + (p * PackedPanels.PanelWidth) + s;
                float* cs = c + (p * PackedPanels.PanelWidth) + s;

                // The tile shape is chosen once per slice; the row tiles below it are one specialized loop.
                switch (vectors)
                {
                    case 1: Slice<TV, TL, D1, TIndex>(a, lda, offsets, rows, panel + s, width, loop, bias, cs, ldc, flags); break;
                    case 2: Slice<TV, TL, D2, TIndex>(a, lda, offsets, rows, panel + s, width, loop, bias, cs, ldc, flags); break;
                    case 3: Slice<TV, TL, D3, TIndex>(a, lda, offsets, rows, panel + s, width, loop, bias, cs, ldc, flags); break;
                    default: Slice<TV, TL, D4, TIndex>(a, lda, offsets, rows, panel + s, width, loop, bias, cs, ldc, flags); break;
                }
            }
        }
    }

    /// <summary>All rows of one slice of TCols vectors: full tiles of <see cref="TileRows"/> rows, then the remainder.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Slice<TV, TL, TCols, TIndex>(
        float* a, nint lda, int* offsets, int rows, float* b, nint ldb, in ReductionLoop loop, float* bias, float* c, nint ldc, int flags)
        where TV : struct
        where TL : struct, ILanes<TV>
        where TCols : struct, IDim
        where TIndex : struct, IReductionIndex
    {
        int tileRows = TileRows<TV, TL>(TCols.Value);
        int validColumns = TCols.Value * TL.Count;

        // Rows are lda apart: the tile takes the first row and the stride (rowStride), so no pointer table is built
        // per tile (which measured up to a third slower on small-K products).
        float* first;
        float** rowPointers = &first;
        // A remainder of a row or two (49 = 8 x 6 + 1 pixels at 7x7) would run as a tile of 4-8 accumulators that
        // cannot hide the FMA latency while it streams the same weights as a full tile: the last full tile and the
        // remainder run as two balanced tiles instead (6 + 1 -> 4 + 3, 6 + 2 -> 4 + 4, 8 + 1 -> 5 + 4, 8 + 2 -> 5 + 5).
        int remainder = rows % tileRows;
        int fullEnd = rows - remainder;
        if (remainder > 0 && remainder * 3 <= tileRows && fullEnd >= tileRows)
        {
            fullEnd -= tileRows;
        }

        int r = 0;
        for (; r < fullEnd; r += tileRows)
        {
            first = a + (r * lda);
            float* tile = c + (r * ldc);
            if (tileRows == 8)
            {
                GemmTile.Run<TV, TL, D8, TCols, TIndex>(rowPointers, 0, lda, offsets, b, ldb, loop, bias, tile, ldc, validColumns, flags);
            }
            else if (tileRows == 6)
            {
                GemmTile.Run<TV, TL, D6, TCols, TIndex>(rowPointers, 0, lda, offsets, b, ldb, loop, bias, tile, ldc, validColumns, flags);
            }
            else
            {
                GemmTile.Run<TV, TL, D4, TCols, TIndex>(rowPointers, 0, lda, offsets, b, ldb, loop, bias, tile, ldc, validColumns, flags);
            }
        }

        if (rows - r > tileRows)
        {
            int head = (rows - r + 1) / 2;
            first = a + (r * lda);
            GemmTile.Rows<TV, TL, TCols, TIndex>(head, rowPointers, 0, lda, offsets, b, ldb, loop, bias, c + (r * ldc), ldc, validColumns, flags);
            r += head;
        }

        if (r < rows)
        {
            first = a + (r * lda);
            GemmTile.Rows<TV, TL, TCols, TIndex>(rows - r, rowPointers, 0, lda, offsets, b, ldb, loop, bias, c + (r * ldc), ldc, validColumns, flags);
        }
    }
}
