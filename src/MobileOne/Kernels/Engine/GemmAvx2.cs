using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace MobileOne.Kernels.Engine;

/// <summary>
/// AVX2+FMA GEMM over the same packed panels as <see cref="GemmAvx512"/>: with 16 ymm registers the tile is
/// 6 rows x 16 columns (12 accumulators, 2 panel loads and 6 broadcasts per k step), run over each
/// 16-column slice of a panel in turn; the A rows of a tile (6 x k floats) stay in L1 across the slices.
/// Same accumulation order as the AVX-512 path (bias, then k in order, fused multiply-add).
/// The unrolled tile and row bodies are printed by the scripts in Generators/.
/// </summary>
internal static unsafe class GemmAvx2
{
    private const int MaxRows = 6;

    private static readonly delegate*<float*, nint, float*, nint, float*, float*, nint, int, int, void>[] Tiles =
    [
        null, &Tile<D1>, &Tile<D2>, &Tile<D3>, &Tile<D4>, &Tile<D5>, &Tile<D6>,
    ];

    public static void Run(float* a, nint lda, int rows, PackedPanels b, int panelStart, int panelEnd, int kStart, int kLength, float* c, nint ldc, int flags)
    {
        for (int p = panelStart; p < panelEnd; p++)
        {
            int width = b.Width(p);
            float* panel = b.Panel(p) + ((long)kStart * width);
            float* ap = a + kStart;
            for (int s = 0; s < width; s += 16)
            {
                float* bp = panel + s;
                float* bias = b.Bias + (p * PackedPanels.PanelWidth) + s;
                float* cp = c + (p * PackedPanels.PanelWidth) + s;
                int r = 0;
                for (; r + MaxRows <= rows; r += MaxRows)
                {
                    Tile<D6>(ap + (r * lda), lda, bp, width, bias, cp + (r * ldc), ldc, kLength, flags);
                }

                if (r < rows)
                {
                    Tiles[rows - r](ap + (r * lda), lda, bp, width, bias, cp + (r * ldc), ldc, kLength, flags);
                }
            }
        }
    }


    private static readonly delegate*<float*, nint, float*, nint, float*, float*, nint, int, int, int*, void>[] IndirectTiles =
    [
        null, &TileIndirect<D1>, &TileIndirect<D2>, &TileIndirect<D3>, &TileIndirect<D4>, &TileIndirect<D5>, &TileIndirect<D6>,
    ];

    /// <summary>See <see cref="GemmAvx512.RunIndirect"/>.</summary>
    public static void RunIndirect(float* a, nint lda, int rows, PackedPanels b, int* offsets, float* c, nint ldc, int flags)
    {
        for (int p = 0; p < b.PanelCount; p++)
        {
            int width = b.Width(p);
            float* panel = b.Panel(p);
            for (int s = 0; s < width; s += 16)
            {
                float* bp = panel + s;
                float* bias = b.Bias + (p * PackedPanels.PanelWidth) + s;
                float* cp = c + (p * PackedPanels.PanelWidth) + s;
                int r = 0;
                for (; r + MaxRows <= rows; r += MaxRows)
                {
                    TileIndirect<D6>(a + (r * lda), lda, bp, width, bias, cp + (r * ldc), ldc, b.K, flags, offsets);
                }

                if (r < rows)
                {
                    IndirectTiles[rows - r](a + (r * lda), lda, bp, width, bias, cp + (r * ldc), ldc, b.K, flags, offsets);
                }
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void TileIndirect<TRows>(float* a, nint lda, float* b, nint ldb, float* bias, float* c, nint ldc, int k, int flags, int* offsets)
        where TRows : struct, IDim
    {
        Vector256<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default, c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        nint o1 = lda, o2 = 2 * lda, o3 = 3 * lda, o4 = 4 * lda, o5 = 5 * lda;
        if ((flags & GemmAvx512.Accumulate) == 0)
        {
            var init0 = Vector256.Load(bias);
            var init1 = Vector256.Load(bias + 8);
            c00 = init0;
            c01 = init1;
            if (TRows.Value > 1)
            {
                c10 = init0;
                c11 = init1;
            }
            if (TRows.Value > 2)
            {
                c20 = init0;
                c21 = init1;
            }
            if (TRows.Value > 3)
            {
                c30 = init0;
                c31 = init1;
            }
            if (TRows.Value > 4)
            {
                c40 = init0;
                c41 = init1;
            }
            if (TRows.Value > 5)
            {
                c50 = init0;
                c51 = init1;
            }
        }
        else
        {
            {
                c00 = Vector256.Load(c + (0 * ldc));
                c01 = Vector256.Load(c + (0 * ldc) + 8);
            }
            if (TRows.Value > 1)
            {
                c10 = Vector256.Load(c + (1 * ldc));
                c11 = Vector256.Load(c + (1 * ldc) + 8);
            }
            if (TRows.Value > 2)
            {
                c20 = Vector256.Load(c + (2 * ldc));
                c21 = Vector256.Load(c + (2 * ldc) + 8);
            }
            if (TRows.Value > 3)
            {
                c30 = Vector256.Load(c + (3 * ldc));
                c31 = Vector256.Load(c + (3 * ldc) + 8);
            }
            if (TRows.Value > 4)
            {
                c40 = Vector256.Load(c + (4 * ldc));
                c41 = Vector256.Load(c + (4 * ldc) + 8);
            }
            if (TRows.Value > 5)
            {
                c50 = Vector256.Load(c + (5 * ldc));
                c51 = Vector256.Load(c + (5 * ldc) + 8);
            }
        }

        for (int kk = 0; kk < k; kk++)
        {
            float* ak = a + offsets[kk];
            var b0 = Vector256.Load(b);
            var b1 = Vector256.Load(b + 8);
            {
                var x = Vector256.Create(ak[0]);
                c00 = Fma.MultiplyAdd(x, b0, c00);
                c01 = Fma.MultiplyAdd(x, b1, c01);
            }
            if (TRows.Value > 1)
            {
                var x = Vector256.Create(ak[o1]);
                c10 = Fma.MultiplyAdd(x, b0, c10);
                c11 = Fma.MultiplyAdd(x, b1, c11);
            }
            if (TRows.Value > 2)
            {
                var x = Vector256.Create(ak[o2]);
                c20 = Fma.MultiplyAdd(x, b0, c20);
                c21 = Fma.MultiplyAdd(x, b1, c21);
            }
            if (TRows.Value > 3)
            {
                var x = Vector256.Create(ak[o3]);
                c30 = Fma.MultiplyAdd(x, b0, c30);
                c31 = Fma.MultiplyAdd(x, b1, c31);
            }
            if (TRows.Value > 4)
            {
                var x = Vector256.Create(ak[o4]);
                c40 = Fma.MultiplyAdd(x, b0, c40);
                c41 = Fma.MultiplyAdd(x, b1, c41);
            }
            if (TRows.Value > 5)
            {
                var x = Vector256.Create(ak[o5]);
                c50 = Fma.MultiplyAdd(x, b0, c50);
                c51 = Fma.MultiplyAdd(x, b1, c51);
            }

            b += ldb;
        }

        if ((flags & GemmAvx512.Relu) != 0)
        {
            var zero = Vector256<float>.Zero;
            {
                c00 = Vector256.Max(c00, zero);
                c01 = Vector256.Max(c01, zero);
            }
            if (TRows.Value > 1)
            {
                c10 = Vector256.Max(c10, zero);
                c11 = Vector256.Max(c11, zero);
            }
            if (TRows.Value > 2)
            {
                c20 = Vector256.Max(c20, zero);
                c21 = Vector256.Max(c21, zero);
            }
            if (TRows.Value > 3)
            {
                c30 = Vector256.Max(c30, zero);
                c31 = Vector256.Max(c31, zero);
            }
            if (TRows.Value > 4)
            {
                c40 = Vector256.Max(c40, zero);
                c41 = Vector256.Max(c41, zero);
            }
            if (TRows.Value > 5)
            {
                c50 = Vector256.Max(c50, zero);
                c51 = Vector256.Max(c51, zero);
            }
        }

        {
            c00.Store(c + (0 * ldc));
            c01.Store(c + (0 * ldc) + 8);
        }

        if (TRows.Value > 1)
        {
            c10.Store(c + (1 * ldc));
            c11.Store(c + (1 * ldc) + 8);
        }

        if (TRows.Value > 2)
        {
            c20.Store(c + (2 * ldc));
            c21.Store(c + (2 * ldc) + 8);
        }

        if (TRows.Value > 3)
        {
            c30.Store(c + (3 * ldc));
            c31.Store(c + (3 * ldc) + 8);
        }

        if (TRows.Value > 4)
        {
            c40.Store(c + (4 * ldc));
            c41.Store(c + (4 * ldc) + 8);
        }

        if (TRows.Value > 5)
        {
            c50.Store(c + (5 * ldc));
            c51.Store(c + (5 * ldc) + 8);
        }
    }


    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile<TRows>(float* a, nint lda, float* b, nint ldb, float* bias, float* c, nint ldc, int k, int flags)
        where TRows : struct, IDim
    {
        Vector256<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default, c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        nint o1 = lda, o2 = 2 * lda, o3 = 3 * lda, o4 = 4 * lda, o5 = 5 * lda;
        if ((flags & GemmAvx512.Accumulate) == 0)
        {
            var init0 = Vector256.Load(bias);
            var init1 = Vector256.Load(bias + 8);
            c00 = init0;
            c01 = init1;
            if (TRows.Value > 1)
            {
                c10 = init0;
                c11 = init1;
            }
            if (TRows.Value > 2)
            {
                c20 = init0;
                c21 = init1;
            }
            if (TRows.Value > 3)
            {
                c30 = init0;
                c31 = init1;
            }
            if (TRows.Value > 4)
            {
                c40 = init0;
                c41 = init1;
            }
            if (TRows.Value > 5)
            {
                c50 = init0;
                c51 = init1;
            }
        }
        else
        {
            {
                c00 = Vector256.Load(c + (0 * ldc));
                c01 = Vector256.Load(c + (0 * ldc) + 8);
            }
            if (TRows.Value > 1)
            {
                c10 = Vector256.Load(c + (1 * ldc));
                c11 = Vector256.Load(c + (1 * ldc) + 8);
            }
            if (TRows.Value > 2)
            {
                c20 = Vector256.Load(c + (2 * ldc));
                c21 = Vector256.Load(c + (2 * ldc) + 8);
            }
            if (TRows.Value > 3)
            {
                c30 = Vector256.Load(c + (3 * ldc));
                c31 = Vector256.Load(c + (3 * ldc) + 8);
            }
            if (TRows.Value > 4)
            {
                c40 = Vector256.Load(c + (4 * ldc));
                c41 = Vector256.Load(c + (4 * ldc) + 8);
            }
            if (TRows.Value > 5)
            {
                c50 = Vector256.Load(c + (5 * ldc));
                c51 = Vector256.Load(c + (5 * ldc) + 8);
            }
        }
        
        for (int kk = 0; kk < k; kk++)
        {
            var b0 = Vector256.Load(b);
            var b1 = Vector256.Load(b + 8);
            {
                var x = Vector256.Create(a[0]);
                c00 = Fma.MultiplyAdd(x, b0, c00);
                c01 = Fma.MultiplyAdd(x, b1, c01);
            }
            if (TRows.Value > 1)
            {
                var x = Vector256.Create(a[o1]);
                c10 = Fma.MultiplyAdd(x, b0, c10);
                c11 = Fma.MultiplyAdd(x, b1, c11);
            }
            if (TRows.Value > 2)
            {
                var x = Vector256.Create(a[o2]);
                c20 = Fma.MultiplyAdd(x, b0, c20);
                c21 = Fma.MultiplyAdd(x, b1, c21);
            }
            if (TRows.Value > 3)
            {
                var x = Vector256.Create(a[o3]);
                c30 = Fma.MultiplyAdd(x, b0, c30);
                c31 = Fma.MultiplyAdd(x, b1, c31);
            }
            if (TRows.Value > 4)
            {
                var x = Vector256.Create(a[o4]);
                c40 = Fma.MultiplyAdd(x, b0, c40);
                c41 = Fma.MultiplyAdd(x, b1, c41);
            }
            if (TRows.Value > 5)
            {
                var x = Vector256.Create(a[o5]);
                c50 = Fma.MultiplyAdd(x, b0, c50);
                c51 = Fma.MultiplyAdd(x, b1, c51);
            }
        
            a++;
            b += ldb;
        }
        
        if ((flags & GemmAvx512.Relu) != 0)
        {
            var zero = Vector256<float>.Zero;
            {
                c00 = Vector256.Max(c00, zero);
                c01 = Vector256.Max(c01, zero);
            }
            if (TRows.Value > 1)
            {
                c10 = Vector256.Max(c10, zero);
                c11 = Vector256.Max(c11, zero);
            }
            if (TRows.Value > 2)
            {
                c20 = Vector256.Max(c20, zero);
                c21 = Vector256.Max(c21, zero);
            }
            if (TRows.Value > 3)
            {
                c30 = Vector256.Max(c30, zero);
                c31 = Vector256.Max(c31, zero);
            }
            if (TRows.Value > 4)
            {
                c40 = Vector256.Max(c40, zero);
                c41 = Vector256.Max(c41, zero);
            }
            if (TRows.Value > 5)
            {
                c50 = Vector256.Max(c50, zero);
                c51 = Vector256.Max(c51, zero);
            }
        }
        
        {
            c00.Store(c + (0 * ldc));
            c01.Store(c + (0 * ldc) + 8);
        }
        
        if (TRows.Value > 1)
        {
            c10.Store(c + (1 * ldc));
            c11.Store(c + (1 * ldc) + 8);
        }
        
        if (TRows.Value > 2)
        {
            c20.Store(c + (2 * ldc));
            c21.Store(c + (2 * ldc) + 8);
        }
        
        if (TRows.Value > 3)
        {
            c30.Store(c + (3 * ldc));
            c31.Store(c + (3 * ldc) + 8);
        }
        
        if (TRows.Value > 4)
        {
            c40.Store(c + (4 * ldc));
            c41.Store(c + (4 * ldc) + 8);
        }
        
        if (TRows.Value > 5)
        {
            c50.Store(c + (5 * ldc));
            c51.Store(c + (5 * ldc) + 8);
        }
    }
}
