using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace MobileOne.Kernels.Engine;

/// <summary>
/// AVX-512 GEMM over packed panels: C[rows, panel columns] = bias + A[rows, k] * B[k, panel].
/// A is pixels x input channels (NHWC rows, or the stem's patch rows), B a <see cref="PackedPanels"/> panel.
/// The register tile is up to 8 rows x 4 zmm (64 columns): 6 x 64 for full panels (24 accumulators, as
/// MLAS does), 8 rows for narrower panels, so every tile keeps at least 8 independent FMA chains in flight
/// and at most 24 of the 32 zmm as accumulators. Per k step a tile loads its panel row once (1-4 zmm)
/// and broadcasts one A value per row: 10 loads for 24 FMAs in the 6 x 64 tile.
/// Every output element is one FMA chain in k order starting from its bias, whichever tile computes it,
/// so results do not depend on how rows are split between threads.
/// The unrolled tile and row bodies are printed by the scripts in Generators/.
/// </summary>
internal static unsafe class GemmAvx512
{
    public const int Accumulate = 1;
    public const int Relu = 2;

    private static readonly delegate*<float*, nint, float*, nint, float*, float*, nint, int, int, void>[] Tiles =
    [
        null, &Tile<D1, D1>, &Tile<D2, D1>, &Tile<D3, D1>, &Tile<D4, D1>, &Tile<D5, D1>, &Tile<D6, D1>, &Tile<D7, D1>, &Tile<D8, D1>,
        null, &Tile<D1, D2>, &Tile<D2, D2>, &Tile<D3, D2>, &Tile<D4, D2>, &Tile<D5, D2>, &Tile<D6, D2>, &Tile<D7, D2>, &Tile<D8, D2>,
        null, &Tile<D1, D3>, &Tile<D2, D3>, &Tile<D3, D3>, &Tile<D4, D3>, &Tile<D5, D3>, &Tile<D6, D3>, &Tile<D7, D3>, &Tile<D8, D3>,
        null, &Tile<D1, D4>, &Tile<D2, D4>, &Tile<D3, D4>, &Tile<D4, D4>, &Tile<D5, D4>, &Tile<D6, D4>, &Tile<D7, D4>, &Tile<D8, D4>,
    ];

    /// <summary>Tile rows for a panel of 1..4 vectors.</summary>
    public static int TileRows(int vectors) => vectors == 4 ? 6 : 8;

    /// <summary>
    /// Computes rows [0, rows) of C for panels [panelStart, panelEnd), over k in [kStart, kStart + kLength).
    /// <paramref name="a"/> points at row 0, column 0 of A; <paramref name="c"/> at row 0, column 0 of C.
    /// </summary>
    public static void Run(float* a, nint lda, int rows, PackedPanels b, int panelStart, int panelEnd, int kStart, int kLength, float* c, nint ldc, int flags)
    {
        for (int p = panelStart; p < panelEnd; p++)
        {
            int width = b.Width(p);
            int vectors = width / 16;
            int tileRows = TileRows(vectors);
            float* bp = b.Panel(p) + ((long)kStart * width);
            float* bias = b.Bias + (p * PackedPanels.PanelWidth);
            float* cp = c + (p * PackedPanels.PanelWidth);
            float* ap = a + kStart;
            var full = Tiles[((vectors - 1) * 9) + tileRows];
            int r = 0;
            for (; r + tileRows <= rows; r += tileRows)
            {
                full(ap + (r * lda), lda, bp, width, bias, cp + (r * ldc), ldc, kLength, flags);
            }

            if (r < rows)
            {
                Tiles[((vectors - 1) * 9) + (rows - r)](ap + (r * lda), lda, bp, width, bias, cp + (r * ldc), ldc, kLength, flags);
            }
        }
    }


    private static readonly delegate*<float*, nint, float*, nint, float*, float*, nint, int, int, int*, void>[] IndirectTiles =
    [
        null, &TileIndirect<D1, D1>, &TileIndirect<D2, D1>, &TileIndirect<D3, D1>, &TileIndirect<D4, D1>, &TileIndirect<D5, D1>, &TileIndirect<D6, D1>, &TileIndirect<D7, D1>, &TileIndirect<D8, D1>,
        null, &TileIndirect<D1, D2>, &TileIndirect<D2, D2>, &TileIndirect<D3, D2>, &TileIndirect<D4, D2>, &TileIndirect<D5, D2>, &TileIndirect<D6, D2>, &TileIndirect<D7, D2>, &TileIndirect<D8, D2>,
        null, &TileIndirect<D1, D3>, &TileIndirect<D2, D3>, &TileIndirect<D3, D3>, &TileIndirect<D4, D3>, &TileIndirect<D5, D3>, &TileIndirect<D6, D3>, &TileIndirect<D7, D3>, &TileIndirect<D8, D3>,
        null, &TileIndirect<D1, D4>, &TileIndirect<D2, D4>, &TileIndirect<D3, D4>, &TileIndirect<D4, D4>, &TileIndirect<D5, D4>, &TileIndirect<D6, D4>, &TileIndirect<D7, D4>, &TileIndirect<D8, D4>,
    ];

    /// <summary>
    /// A GEMM whose A is never materialized: A[r, k] = a[r * lda + offsets[k]]. The stem uses it for interior
    /// output pixels, with a = the first pixel's receptive field in the NCHW input, lda = the stride and
    /// offsets[k] = ci * H * W + ky * W + kx: a direct convolution with the GEMM's register tile.
    /// </summary>
    public static void RunIndirect(float* a, nint lda, int rows, PackedPanels b, int* offsets, float* c, nint ldc, int flags)
    {
        for (int p = 0; p < b.PanelCount; p++)
        {
            int width = b.Width(p);
            int vectors = width / 16;
            int tileRows = TileRows(vectors);
            float* bp = b.Panel(p);
            float* bias = b.Bias + (p * PackedPanels.PanelWidth);
            float* cp = c + (p * PackedPanels.PanelWidth);
            var full = IndirectTiles[((vectors - 1) * 9) + tileRows];
            int r = 0;
            for (; r + tileRows <= rows; r += tileRows)
            {
                full(a + (r * lda), lda, bp, width, bias, cp + (r * ldc), ldc, b.K, flags, offsets);
            }

            if (r < rows)
            {
                IndirectTiles[((vectors - 1) * 9) + (rows - r)](a + (r * lda), lda, bp, width, bias, cp + (r * ldc), ldc, b.K, flags, offsets);
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void TileIndirect<TRows, TVecs>(float* a, nint lda, float* b, nint ldb, float* bias, float* c, nint ldc, int k, int flags, int* offsets)
        where TRows : struct, IDim
        where TVecs : struct, IDim
    {
        Vector512<float> c00 = default, c01 = default, c02 = default, c03 = default, c10 = default, c11 = default, c12 = default, c13 = default, c20 = default, c21 = default, c22 = default, c23 = default, c30 = default, c31 = default, c32 = default, c33 = default, c40 = default, c41 = default, c42 = default, c43 = default, c50 = default, c51 = default, c52 = default, c53 = default, c60 = default, c61 = default, c62 = default, c63 = default, c70 = default, c71 = default, c72 = default, c73 = default;
        nint o1 = lda, o2 = 2 * lda, o3 = 3 * lda, o4 = 4 * lda, o5 = 5 * lda, o6 = 6 * lda, o7 = 7 * lda;
        if ((flags & Accumulate) == 0)
        {
            {
                var init = Vector512.Load(bias + 0);
                c00 = init;
                if (TRows.Value > 1) c10 = init;
                if (TRows.Value > 2) c20 = init;
                if (TRows.Value > 3) c30 = init;
                if (TRows.Value > 4) c40 = init;
                if (TRows.Value > 5) c50 = init;
                if (TRows.Value > 6) c60 = init;
                if (TRows.Value > 7) c70 = init;
            }
            if (TVecs.Value > 1)
            {
                var init = Vector512.Load(bias + 16);
                c01 = init;
                if (TRows.Value > 1) c11 = init;
                if (TRows.Value > 2) c21 = init;
                if (TRows.Value > 3) c31 = init;
                if (TRows.Value > 4) c41 = init;
                if (TRows.Value > 5) c51 = init;
                if (TRows.Value > 6) c61 = init;
                if (TRows.Value > 7) c71 = init;
            }
            if (TVecs.Value > 2)
            {
                var init = Vector512.Load(bias + 32);
                c02 = init;
                if (TRows.Value > 1) c12 = init;
                if (TRows.Value > 2) c22 = init;
                if (TRows.Value > 3) c32 = init;
                if (TRows.Value > 4) c42 = init;
                if (TRows.Value > 5) c52 = init;
                if (TRows.Value > 6) c62 = init;
                if (TRows.Value > 7) c72 = init;
            }
            if (TVecs.Value > 3)
            {
                var init = Vector512.Load(bias + 48);
                c03 = init;
                if (TRows.Value > 1) c13 = init;
                if (TRows.Value > 2) c23 = init;
                if (TRows.Value > 3) c33 = init;
                if (TRows.Value > 4) c43 = init;
                if (TRows.Value > 5) c53 = init;
                if (TRows.Value > 6) c63 = init;
                if (TRows.Value > 7) c73 = init;
            }
        }
        else
        {
            {
                float* row = c + (0 * ldc);
                c00 = Vector512.Load(row + 0);
                if (TVecs.Value > 1) c01 = Vector512.Load(row + 16);
                if (TVecs.Value > 2) c02 = Vector512.Load(row + 32);
                if (TVecs.Value > 3) c03 = Vector512.Load(row + 48);
            }
            if (TRows.Value > 1)
            {
                float* row = c + (1 * ldc);
                c10 = Vector512.Load(row + 0);
                if (TVecs.Value > 1) c11 = Vector512.Load(row + 16);
                if (TVecs.Value > 2) c12 = Vector512.Load(row + 32);
                if (TVecs.Value > 3) c13 = Vector512.Load(row + 48);
            }
            if (TRows.Value > 2)
            {
                float* row = c + (2 * ldc);
                c20 = Vector512.Load(row + 0);
                if (TVecs.Value > 1) c21 = Vector512.Load(row + 16);
                if (TVecs.Value > 2) c22 = Vector512.Load(row + 32);
                if (TVecs.Value > 3) c23 = Vector512.Load(row + 48);
            }
            if (TRows.Value > 3)
            {
                float* row = c + (3 * ldc);
                c30 = Vector512.Load(row + 0);
                if (TVecs.Value > 1) c31 = Vector512.Load(row + 16);
                if (TVecs.Value > 2) c32 = Vector512.Load(row + 32);
                if (TVecs.Value > 3) c33 = Vector512.Load(row + 48);
            }
            if (TRows.Value > 4)
            {
                float* row = c + (4 * ldc);
                c40 = Vector512.Load(row + 0);
                if (TVecs.Value > 1) c41 = Vector512.Load(row + 16);
                if (TVecs.Value > 2) c42 = Vector512.Load(row + 32);
                if (TVecs.Value > 3) c43 = Vector512.Load(row + 48);
            }
            if (TRows.Value > 5)
            {
                float* row = c + (5 * ldc);
                c50 = Vector512.Load(row + 0);
                if (TVecs.Value > 1) c51 = Vector512.Load(row + 16);
                if (TVecs.Value > 2) c52 = Vector512.Load(row + 32);
                if (TVecs.Value > 3) c53 = Vector512.Load(row + 48);
            }
            if (TRows.Value > 6)
            {
                float* row = c + (6 * ldc);
                c60 = Vector512.Load(row + 0);
                if (TVecs.Value > 1) c61 = Vector512.Load(row + 16);
                if (TVecs.Value > 2) c62 = Vector512.Load(row + 32);
                if (TVecs.Value > 3) c63 = Vector512.Load(row + 48);
            }
            if (TRows.Value > 7)
            {
                float* row = c + (7 * ldc);
                c70 = Vector512.Load(row + 0);
                if (TVecs.Value > 1) c71 = Vector512.Load(row + 16);
                if (TVecs.Value > 2) c72 = Vector512.Load(row + 32);
                if (TVecs.Value > 3) c73 = Vector512.Load(row + 48);
            }
        }

        for (int kk = 0; kk < k; kk++)
        {
            float* ak = a + offsets[kk];
            var b0 = Vector512.Load(b);
            var b1 = TVecs.Value > 1 ? Vector512.Load(b + 16) : default;
            var b2 = TVecs.Value > 2 ? Vector512.Load(b + 32) : default;
            var b3 = TVecs.Value > 3 ? Vector512.Load(b + 48) : default;
            {
                var x = Vector512.Create(ak[0]);
                c00 = Avx512F.FusedMultiplyAdd(x, b0, c00);
                if (TVecs.Value > 1) c01 = Avx512F.FusedMultiplyAdd(x, b1, c01);
                if (TVecs.Value > 2) c02 = Avx512F.FusedMultiplyAdd(x, b2, c02);
                if (TVecs.Value > 3) c03 = Avx512F.FusedMultiplyAdd(x, b3, c03);
            }
            if (TRows.Value > 1)
            {
                var x = Vector512.Create(ak[o1]);
                c10 = Avx512F.FusedMultiplyAdd(x, b0, c10);
                if (TVecs.Value > 1) c11 = Avx512F.FusedMultiplyAdd(x, b1, c11);
                if (TVecs.Value > 2) c12 = Avx512F.FusedMultiplyAdd(x, b2, c12);
                if (TVecs.Value > 3) c13 = Avx512F.FusedMultiplyAdd(x, b3, c13);
            }
            if (TRows.Value > 2)
            {
                var x = Vector512.Create(ak[o2]);
                c20 = Avx512F.FusedMultiplyAdd(x, b0, c20);
                if (TVecs.Value > 1) c21 = Avx512F.FusedMultiplyAdd(x, b1, c21);
                if (TVecs.Value > 2) c22 = Avx512F.FusedMultiplyAdd(x, b2, c22);
                if (TVecs.Value > 3) c23 = Avx512F.FusedMultiplyAdd(x, b3, c23);
            }
            if (TRows.Value > 3)
            {
                var x = Vector512.Create(ak[o3]);
                c30 = Avx512F.FusedMultiplyAdd(x, b0, c30);
                if (TVecs.Value > 1) c31 = Avx512F.FusedMultiplyAdd(x, b1, c31);
                if (TVecs.Value > 2) c32 = Avx512F.FusedMultiplyAdd(x, b2, c32);
                if (TVecs.Value > 3) c33 = Avx512F.FusedMultiplyAdd(x, b3, c33);
            }
            if (TRows.Value > 4)
            {
                var x = Vector512.Create(ak[o4]);
                c40 = Avx512F.FusedMultiplyAdd(x, b0, c40);
                if (TVecs.Value > 1) c41 = Avx512F.FusedMultiplyAdd(x, b1, c41);
                if (TVecs.Value > 2) c42 = Avx512F.FusedMultiplyAdd(x, b2, c42);
                if (TVecs.Value > 3) c43 = Avx512F.FusedMultiplyAdd(x, b3, c43);
            }
            if (TRows.Value > 5)
            {
                var x = Vector512.Create(ak[o5]);
                c50 = Avx512F.FusedMultiplyAdd(x, b0, c50);
                if (TVecs.Value > 1) c51 = Avx512F.FusedMultiplyAdd(x, b1, c51);
                if (TVecs.Value > 2) c52 = Avx512F.FusedMultiplyAdd(x, b2, c52);
                if (TVecs.Value > 3) c53 = Avx512F.FusedMultiplyAdd(x, b3, c53);
            }
            if (TRows.Value > 6)
            {
                var x = Vector512.Create(ak[o6]);
                c60 = Avx512F.FusedMultiplyAdd(x, b0, c60);
                if (TVecs.Value > 1) c61 = Avx512F.FusedMultiplyAdd(x, b1, c61);
                if (TVecs.Value > 2) c62 = Avx512F.FusedMultiplyAdd(x, b2, c62);
                if (TVecs.Value > 3) c63 = Avx512F.FusedMultiplyAdd(x, b3, c63);
            }
            if (TRows.Value > 7)
            {
                var x = Vector512.Create(ak[o7]);
                c70 = Avx512F.FusedMultiplyAdd(x, b0, c70);
                if (TVecs.Value > 1) c71 = Avx512F.FusedMultiplyAdd(x, b1, c71);
                if (TVecs.Value > 2) c72 = Avx512F.FusedMultiplyAdd(x, b2, c72);
                if (TVecs.Value > 3) c73 = Avx512F.FusedMultiplyAdd(x, b3, c73);
            }

            b += ldb;
        }

        if ((flags & Relu) != 0)
        {
            var zero = Vector512<float>.Zero;
            c00 = Vector512.Max(c00, zero);
            if (TVecs.Value > 1) c01 = Vector512.Max(c01, zero);
            if (TVecs.Value > 2) c02 = Vector512.Max(c02, zero);
            if (TVecs.Value > 3) c03 = Vector512.Max(c03, zero);
            if (TRows.Value > 1) c10 = Vector512.Max(c10, zero);
            if (TRows.Value > 1 && TVecs.Value > 1) c11 = Vector512.Max(c11, zero);
            if (TRows.Value > 1 && TVecs.Value > 2) c12 = Vector512.Max(c12, zero);
            if (TRows.Value > 1 && TVecs.Value > 3) c13 = Vector512.Max(c13, zero);
            if (TRows.Value > 2) c20 = Vector512.Max(c20, zero);
            if (TRows.Value > 2 && TVecs.Value > 1) c21 = Vector512.Max(c21, zero);
            if (TRows.Value > 2 && TVecs.Value > 2) c22 = Vector512.Max(c22, zero);
            if (TRows.Value > 2 && TVecs.Value > 3) c23 = Vector512.Max(c23, zero);
            if (TRows.Value > 3) c30 = Vector512.Max(c30, zero);
            if (TRows.Value > 3 && TVecs.Value > 1) c31 = Vector512.Max(c31, zero);
            if (TRows.Value > 3 && TVecs.Value > 2) c32 = Vector512.Max(c32, zero);
            if (TRows.Value > 3 && TVecs.Value > 3) c33 = Vector512.Max(c33, zero);
            if (TRows.Value > 4) c40 = Vector512.Max(c40, zero);
            if (TRows.Value > 4 && TVecs.Value > 1) c41 = Vector512.Max(c41, zero);
            if (TRows.Value > 4 && TVecs.Value > 2) c42 = Vector512.Max(c42, zero);
            if (TRows.Value > 4 && TVecs.Value > 3) c43 = Vector512.Max(c43, zero);
            if (TRows.Value > 5) c50 = Vector512.Max(c50, zero);
            if (TRows.Value > 5 && TVecs.Value > 1) c51 = Vector512.Max(c51, zero);
            if (TRows.Value > 5 && TVecs.Value > 2) c52 = Vector512.Max(c52, zero);
            if (TRows.Value > 5 && TVecs.Value > 3) c53 = Vector512.Max(c53, zero);
            if (TRows.Value > 6) c60 = Vector512.Max(c60, zero);
            if (TRows.Value > 6 && TVecs.Value > 1) c61 = Vector512.Max(c61, zero);
            if (TRows.Value > 6 && TVecs.Value > 2) c62 = Vector512.Max(c62, zero);
            if (TRows.Value > 6 && TVecs.Value > 3) c63 = Vector512.Max(c63, zero);
            if (TRows.Value > 7) c70 = Vector512.Max(c70, zero);
            if (TRows.Value > 7 && TVecs.Value > 1) c71 = Vector512.Max(c71, zero);
            if (TRows.Value > 7 && TVecs.Value > 2) c72 = Vector512.Max(c72, zero);
            if (TRows.Value > 7 && TVecs.Value > 3) c73 = Vector512.Max(c73, zero);
        }

        {
            float* row = c + (0 * ldc);
            c00.Store(row + 0);
            if (TVecs.Value > 1) c01.Store(row + 16);
            if (TVecs.Value > 2) c02.Store(row + 32);
            if (TVecs.Value > 3) c03.Store(row + 48);
        }

        if (TRows.Value > 1)

        {
            float* row = c + (1 * ldc);
            c10.Store(row + 0);
            if (TVecs.Value > 1) c11.Store(row + 16);
            if (TVecs.Value > 2) c12.Store(row + 32);
            if (TVecs.Value > 3) c13.Store(row + 48);
        }

        if (TRows.Value > 2)

        {
            float* row = c + (2 * ldc);
            c20.Store(row + 0);
            if (TVecs.Value > 1) c21.Store(row + 16);
            if (TVecs.Value > 2) c22.Store(row + 32);
            if (TVecs.Value > 3) c23.Store(row + 48);
        }

        if (TRows.Value > 3)

        {
            float* row = c + (3 * ldc);
            c30.Store(row + 0);
            if (TVecs.Value > 1) c31.Store(row + 16);
            if (TVecs.Value > 2) c32.Store(row + 32);
            if (TVecs.Value > 3) c33.Store(row + 48);
        }

        if (TRows.Value > 4)

        {
            float* row = c + (4 * ldc);
            c40.Store(row + 0);
            if (TVecs.Value > 1) c41.Store(row + 16);
            if (TVecs.Value > 2) c42.Store(row + 32);
            if (TVecs.Value > 3) c43.Store(row + 48);
        }

        if (TRows.Value > 5)

        {
            float* row = c + (5 * ldc);
            c50.Store(row + 0);
            if (TVecs.Value > 1) c51.Store(row + 16);
            if (TVecs.Value > 2) c52.Store(row + 32);
            if (TVecs.Value > 3) c53.Store(row + 48);
        }

        if (TRows.Value > 6)

        {
            float* row = c + (6 * ldc);
            c60.Store(row + 0);
            if (TVecs.Value > 1) c61.Store(row + 16);
            if (TVecs.Value > 2) c62.Store(row + 32);
            if (TVecs.Value > 3) c63.Store(row + 48);
        }

        if (TRows.Value > 7)

        {
            float* row = c + (7 * ldc);
            c70.Store(row + 0);
            if (TVecs.Value > 1) c71.Store(row + 16);
            if (TVecs.Value > 2) c72.Store(row + 32);
            if (TVecs.Value > 3) c73.Store(row + 48);
        }
    }


    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile<TRows, TVecs>(float* a, nint lda, float* b, nint ldb, float* bias, float* c, nint ldc, int k, int flags)
        where TRows : struct, IDim
        where TVecs : struct, IDim
    {
        Vector512<float> c00 = default, c01 = default, c02 = default, c03 = default, c10 = default, c11 = default, c12 = default, c13 = default, c20 = default, c21 = default, c22 = default, c23 = default, c30 = default, c31 = default, c32 = default, c33 = default, c40 = default, c41 = default, c42 = default, c43 = default, c50 = default, c51 = default, c52 = default, c53 = default, c60 = default, c61 = default, c62 = default, c63 = default, c70 = default, c71 = default, c72 = default, c73 = default;
        nint o1 = lda, o2 = 2 * lda, o3 = 3 * lda, o4 = 4 * lda, o5 = 5 * lda, o6 = 6 * lda, o7 = 7 * lda;
        if ((flags & Accumulate) == 0)
        {
            {
                var init = Vector512.Load(bias + 0);
                c00 = init;
                if (TRows.Value > 1) c10 = init;
                if (TRows.Value > 2) c20 = init;
                if (TRows.Value > 3) c30 = init;
                if (TRows.Value > 4) c40 = init;
                if (TRows.Value > 5) c50 = init;
                if (TRows.Value > 6) c60 = init;
                if (TRows.Value > 7) c70 = init;
            }
            if (TVecs.Value > 1)
            {
                var init = Vector512.Load(bias + 16);
                c01 = init;
                if (TRows.Value > 1) c11 = init;
                if (TRows.Value > 2) c21 = init;
                if (TRows.Value > 3) c31 = init;
                if (TRows.Value > 4) c41 = init;
                if (TRows.Value > 5) c51 = init;
                if (TRows.Value > 6) c61 = init;
                if (TRows.Value > 7) c71 = init;
            }
            if (TVecs.Value > 2)
            {
                var init = Vector512.Load(bias + 32);
                c02 = init;
                if (TRows.Value > 1) c12 = init;
                if (TRows.Value > 2) c22 = init;
                if (TRows.Value > 3) c32 = init;
                if (TRows.Value > 4) c42 = init;
                if (TRows.Value > 5) c52 = init;
                if (TRows.Value > 6) c62 = init;
                if (TRows.Value > 7) c72 = init;
            }
            if (TVecs.Value > 3)
            {
                var init = Vector512.Load(bias + 48);
                c03 = init;
                if (TRows.Value > 1) c13 = init;
                if (TRows.Value > 2) c23 = init;
                if (TRows.Value > 3) c33 = init;
                if (TRows.Value > 4) c43 = init;
                if (TRows.Value > 5) c53 = init;
                if (TRows.Value > 6) c63 = init;
                if (TRows.Value > 7) c73 = init;
            }
        }
        else
        {
            {
                float* row = c + (0 * ldc);
                c00 = Vector512.Load(row + 0);
                if (TVecs.Value > 1) c01 = Vector512.Load(row + 16);
                if (TVecs.Value > 2) c02 = Vector512.Load(row + 32);
                if (TVecs.Value > 3) c03 = Vector512.Load(row + 48);
            }
            if (TRows.Value > 1)
            {
                float* row = c + (1 * ldc);
                c10 = Vector512.Load(row + 0);
                if (TVecs.Value > 1) c11 = Vector512.Load(row + 16);
                if (TVecs.Value > 2) c12 = Vector512.Load(row + 32);
                if (TVecs.Value > 3) c13 = Vector512.Load(row + 48);
            }
            if (TRows.Value > 2)
            {
                float* row = c + (2 * ldc);
                c20 = Vector512.Load(row + 0);
                if (TVecs.Value > 1) c21 = Vector512.Load(row + 16);
                if (TVecs.Value > 2) c22 = Vector512.Load(row + 32);
                if (TVecs.Value > 3) c23 = Vector512.Load(row + 48);
            }
            if (TRows.Value > 3)
            {
                float* row = c + (3 * ldc);
                c30 = Vector512.Load(row + 0);
                if (TVecs.Value > 1) c31 = Vector512.Load(row + 16);
                if (TVecs.Value > 2) c32 = Vector512.Load(row + 32);
                if (TVecs.Value > 3) c33 = Vector512.Load(row + 48);
            }
            if (TRows.Value > 4)
            {
                float* row = c + (4 * ldc);
                c40 = Vector512.Load(row + 0);
                if (TVecs.Value > 1) c41 = Vector512.Load(row + 16);
                if (TVecs.Value > 2) c42 = Vector512.Load(row + 32);
                if (TVecs.Value > 3) c43 = Vector512.Load(row + 48);
            }
            if (TRows.Value > 5)
            {
                float* row = c + (5 * ldc);
                c50 = Vector512.Load(row + 0);
                if (TVecs.Value > 1) c51 = Vector512.Load(row + 16);
                if (TVecs.Value > 2) c52 = Vector512.Load(row + 32);
                if (TVecs.Value > 3) c53 = Vector512.Load(row + 48);
            }
            if (TRows.Value > 6)
            {
                float* row = c + (6 * ldc);
                c60 = Vector512.Load(row + 0);
                if (TVecs.Value > 1) c61 = Vector512.Load(row + 16);
                if (TVecs.Value > 2) c62 = Vector512.Load(row + 32);
                if (TVecs.Value > 3) c63 = Vector512.Load(row + 48);
            }
            if (TRows.Value > 7)
            {
                float* row = c + (7 * ldc);
                c70 = Vector512.Load(row + 0);
                if (TVecs.Value > 1) c71 = Vector512.Load(row + 16);
                if (TVecs.Value > 2) c72 = Vector512.Load(row + 32);
                if (TVecs.Value > 3) c73 = Vector512.Load(row + 48);
            }
        }
        
        for (int kk = 0; kk < k; kk++)
        {
            var b0 = Vector512.Load(b);
            var b1 = TVecs.Value > 1 ? Vector512.Load(b + 16) : default;
            var b2 = TVecs.Value > 2 ? Vector512.Load(b + 32) : default;
            var b3 = TVecs.Value > 3 ? Vector512.Load(b + 48) : default;
            {
                var x = Vector512.Create(a[0]);
                c00 = Avx512F.FusedMultiplyAdd(x, b0, c00);
                if (TVecs.Value > 1) c01 = Avx512F.FusedMultiplyAdd(x, b1, c01);
                if (TVecs.Value > 2) c02 = Avx512F.FusedMultiplyAdd(x, b2, c02);
                if (TVecs.Value > 3) c03 = Avx512F.FusedMultiplyAdd(x, b3, c03);
            }
            if (TRows.Value > 1)
            {
                var x = Vector512.Create(a[o1]);
                c10 = Avx512F.FusedMultiplyAdd(x, b0, c10);
                if (TVecs.Value > 1) c11 = Avx512F.FusedMultiplyAdd(x, b1, c11);
                if (TVecs.Value > 2) c12 = Avx512F.FusedMultiplyAdd(x, b2, c12);
                if (TVecs.Value > 3) c13 = Avx512F.FusedMultiplyAdd(x, b3, c13);
            }
            if (TRows.Value > 2)
            {
                var x = Vector512.Create(a[o2]);
                c20 = Avx512F.FusedMultiplyAdd(x, b0, c20);
                if (TVecs.Value > 1) c21 = Avx512F.FusedMultiplyAdd(x, b1, c21);
                if (TVecs.Value > 2) c22 = Avx512F.FusedMultiplyAdd(x, b2, c22);
                if (TVecs.Value > 3) c23 = Avx512F.FusedMultiplyAdd(x, b3, c23);
            }
            if (TRows.Value > 3)
            {
                var x = Vector512.Create(a[o3]);
                c30 = Avx512F.FusedMultiplyAdd(x, b0, c30);
                if (TVecs.Value > 1) c31 = Avx512F.FusedMultiplyAdd(x, b1, c31);
                if (TVecs.Value > 2) c32 = Avx512F.FusedMultiplyAdd(x, b2, c32);
                if (TVecs.Value > 3) c33 = Avx512F.FusedMultiplyAdd(x, b3, c33);
            }
            if (TRows.Value > 4)
            {
                var x = Vector512.Create(a[o4]);
                c40 = Avx512F.FusedMultiplyAdd(x, b0, c40);
                if (TVecs.Value > 1) c41 = Avx512F.FusedMultiplyAdd(x, b1, c41);
                if (TVecs.Value > 2) c42 = Avx512F.FusedMultiplyAdd(x, b2, c42);
                if (TVecs.Value > 3) c43 = Avx512F.FusedMultiplyAdd(x, b3, c43);
            }
            if (TRows.Value > 5)
            {
                var x = Vector512.Create(a[o5]);
                c50 = Avx512F.FusedMultiplyAdd(x, b0, c50);
                if (TVecs.Value > 1) c51 = Avx512F.FusedMultiplyAdd(x, b1, c51);
                if (TVecs.Value > 2) c52 = Avx512F.FusedMultiplyAdd(x, b2, c52);
                if (TVecs.Value > 3) c53 = Avx512F.FusedMultiplyAdd(x, b3, c53);
            }
            if (TRows.Value > 6)
            {
                var x = Vector512.Create(a[o6]);
                c60 = Avx512F.FusedMultiplyAdd(x, b0, c60);
                if (TVecs.Value > 1) c61 = Avx512F.FusedMultiplyAdd(x, b1, c61);
                if (TVecs.Value > 2) c62 = Avx512F.FusedMultiplyAdd(x, b2, c62);
                if (TVecs.Value > 3) c63 = Avx512F.FusedMultiplyAdd(x, b3, c63);
            }
            if (TRows.Value > 7)
            {
                var x = Vector512.Create(a[o7]);
                c70 = Avx512F.FusedMultiplyAdd(x, b0, c70);
                if (TVecs.Value > 1) c71 = Avx512F.FusedMultiplyAdd(x, b1, c71);
                if (TVecs.Value > 2) c72 = Avx512F.FusedMultiplyAdd(x, b2, c72);
                if (TVecs.Value > 3) c73 = Avx512F.FusedMultiplyAdd(x, b3, c73);
            }
        
            a++;
            b += ldb;
        }
        
        if ((flags & Relu) != 0)
        {
            var zero = Vector512<float>.Zero;
            c00 = Vector512.Max(c00, zero);
            if (TVecs.Value > 1) c01 = Vector512.Max(c01, zero);
            if (TVecs.Value > 2) c02 = Vector512.Max(c02, zero);
            if (TVecs.Value > 3) c03 = Vector512.Max(c03, zero);
            if (TRows.Value > 1) c10 = Vector512.Max(c10, zero);
            if (TRows.Value > 1 && TVecs.Value > 1) c11 = Vector512.Max(c11, zero);
            if (TRows.Value > 1 && TVecs.Value > 2) c12 = Vector512.Max(c12, zero);
            if (TRows.Value > 1 && TVecs.Value > 3) c13 = Vector512.Max(c13, zero);
            if (TRows.Value > 2) c20 = Vector512.Max(c20, zero);
            if (TRows.Value > 2 && TVecs.Value > 1) c21 = Vector512.Max(c21, zero);
            if (TRows.Value > 2 && TVecs.Value > 2) c22 = Vector512.Max(c22, zero);
            if (TRows.Value > 2 && TVecs.Value > 3) c23 = Vector512.Max(c23, zero);
            if (TRows.Value > 3) c30 = Vector512.Max(c30, zero);
            if (TRows.Value > 3 && TVecs.Value > 1) c31 = Vector512.Max(c31, zero);
            if (TRows.Value > 3 && TVecs.Value > 2) c32 = Vector512.Max(c32, zero);
            if (TRows.Value > 3 && TVecs.Value > 3) c33 = Vector512.Max(c33, zero);
            if (TRows.Value > 4) c40 = Vector512.Max(c40, zero);
            if (TRows.Value > 4 && TVecs.Value > 1) c41 = Vector512.Max(c41, zero);
            if (TRows.Value > 4 && TVecs.Value > 2) c42 = Vector512.Max(c42, zero);
            if (TRows.Value > 4 && TVecs.Value > 3) c43 = Vector512.Max(c43, zero);
            if (TRows.Value > 5) c50 = Vector512.Max(c50, zero);
            if (TRows.Value > 5 && TVecs.Value > 1) c51 = Vector512.Max(c51, zero);
            if (TRows.Value > 5 && TVecs.Value > 2) c52 = Vector512.Max(c52, zero);
            if (TRows.Value > 5 && TVecs.Value > 3) c53 = Vector512.Max(c53, zero);
            if (TRows.Value > 6) c60 = Vector512.Max(c60, zero);
            if (TRows.Value > 6 && TVecs.Value > 1) c61 = Vector512.Max(c61, zero);
            if (TRows.Value > 6 && TVecs.Value > 2) c62 = Vector512.Max(c62, zero);
            if (TRows.Value > 6 && TVecs.Value > 3) c63 = Vector512.Max(c63, zero);
            if (TRows.Value > 7) c70 = Vector512.Max(c70, zero);
            if (TRows.Value > 7 && TVecs.Value > 1) c71 = Vector512.Max(c71, zero);
            if (TRows.Value > 7 && TVecs.Value > 2) c72 = Vector512.Max(c72, zero);
            if (TRows.Value > 7 && TVecs.Value > 3) c73 = Vector512.Max(c73, zero);
        }
        
        {
            float* row = c + (0 * ldc);
            c00.Store(row + 0);
            if (TVecs.Value > 1) c01.Store(row + 16);
            if (TVecs.Value > 2) c02.Store(row + 32);
            if (TVecs.Value > 3) c03.Store(row + 48);
        }
        
        if (TRows.Value > 1)
        {
            float* row = c + (1 * ldc);
            c10.Store(row + 0);
            if (TVecs.Value > 1) c11.Store(row + 16);
            if (TVecs.Value > 2) c12.Store(row + 32);
            if (TVecs.Value > 3) c13.Store(row + 48);
        }
        
        if (TRows.Value > 2)
        {
            float* row = c + (2 * ldc);
            c20.Store(row + 0);
            if (TVecs.Value > 1) c21.Store(row + 16);
            if (TVecs.Value > 2) c22.Store(row + 32);
            if (TVecs.Value > 3) c23.Store(row + 48);
        }
        
        if (TRows.Value > 3)
        {
            float* row = c + (3 * ldc);
            c30.Store(row + 0);
            if (TVecs.Value > 1) c31.Store(row + 16);
            if (TVecs.Value > 2) c32.Store(row + 32);
            if (TVecs.Value > 3) c33.Store(row + 48);
        }
        
        if (TRows.Value > 4)
        {
            float* row = c + (4 * ldc);
            c40.Store(row + 0);
            if (TVecs.Value > 1) c41.Store(row + 16);
            if (TVecs.Value > 2) c42.Store(row + 32);
            if (TVecs.Value > 3) c43.Store(row + 48);
        }
        
        if (TRows.Value > 5)
        {
            float* row = c + (5 * ldc);
            c50.Store(row + 0);
            if (TVecs.Value > 1) c51.Store(row + 16);
            if (TVecs.Value > 2) c52.Store(row + 32);
            if (TVecs.Value > 3) c53.Store(row + 48);
        }
        
        if (TRows.Value > 6)
        {
            float* row = c + (6 * ldc);
            c60.Store(row + 0);
            if (TVecs.Value > 1) c61.Store(row + 16);
            if (TVecs.Value > 2) c62.Store(row + 32);
            if (TVecs.Value > 3) c63.Store(row + 48);
        }
        
        if (TRows.Value > 7)
        {
            float* row = c + (7 * ldc);
            c70.Store(row + 0);
            if (TVecs.Value > 1) c71.Store(row + 16);
            if (TVecs.Value > 2) c72.Store(row + 32);
            if (TVecs.Value > 3) c73.Store(row + 48);
        }
    }

}
