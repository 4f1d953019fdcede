using System.Runtime.CompilerServices;

namespace MobileOne.Kernels.Gemm;

/// <summary>How a tile reads A[r, k] from row r's pointer: the reduction index of step k.</summary>
internal unsafe interface IReductionIndex
{
    static abstract nint Index(int* offsets, nint k);
}

/// <summary>A[r, k] = row_r[k]: NHWC pixel rows, im2col / im2win rows, direct reads of one image row.</summary>
internal readonly unsafe struct ContiguousReduction : IReductionIndex
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static nint Index(int* offsets, nint k) => k;
}

/// <summary>A[r, k] = row_r[offsets[k]]: a convolution read straight from the image through a table of tap offsets.</summary>
internal readonly unsafe struct GatheredReduction : IReductionIndex
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static nint Index(int* offsets, nint k) => offsets[k];
}

/// <summary>A[r, k] = row_r[k * 8]: an A panel packed k-major, 8 rows interleaved (the strided GEMM's packing).</summary>
internal readonly unsafe struct InterleavedReduction : IReductionIndex
{
    public const int Rows = 8;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static nint Index(int* offsets, nint k) => k * Rows;
}

/// <summary>What a tile does before and after its products (bits of the <c>flags</c> argument).</summary>
internal static class GemmEpilogue
{
    /// <summary>Start from C's values instead of the bias (a later block of k, or a branch added to an earlier one).</summary>
    public const int Accumulate = 1;

    /// <summary>max(x, 0) before the store.</summary>
    public const int Relu = 2;
}

/// <summary>
/// The register-blocked GEMM microkernel of the whole library: C[r, 0..TCols*W) = init + sum_k A[r, k] * B[k, 0..TCols*W)
/// for TRows (up to 8) rows at once, W = the lanes of <c>TV</c>. The training GEMM (<see cref="PackedSgemm"/>),
/// the engine's panel GEMM (<see cref="PackedGemm"/>: pointwise layers, the stem, patch convolutions, the classifier) and the
/// general convolutions (direct, im2col, im2win) all run it; they differ only in how A's rows are addressed
/// (<see cref="IReductionIndex"/>; a pointer per row, or the first row and a row stride, which measured up to a
/// third faster on small-k GEMMs than building a pointer table per tile; the <see cref="ReductionLoop"/> of segments) and which
/// tile shapes they pick. B is a packed panel of <c>ldb</c> floats per k. Per k the tile loads TCols vectors of B
/// and broadcasts one A value per row: 6 x 4 Vector512 accumulators give 24 FMAs for 4 loads and 6 broadcasts.
/// The epilogue: init is the bias, C (<see cref="GemmEpilogue.Accumulate"/>) or zero (a null bias); then ReLU if asked.
/// Every output is one fused multiply-add chain in k order from its init, whatever the tile shape, width or thread
/// split, so where a value is computed never changes its bits. Written once as a generic method: the JIT
/// specializes it per width and shape (the type arguments fold to constants and unused accumulators disappear).
/// </summary>
internal static unsafe class GemmTile
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Run<TV, TL, TRows, TCols, TIndex>(
        float** rows, nint aOffset, nint rowStride, int* offsets, float* b, nint ldb, in ReductionLoop loop, float* bias, float* c, nint ldc, int validColumns, int flags)
        where TV : struct
        where TL : struct, ILanes<TV>
        where TRows : struct, IDim
        where TCols : struct, IDim
        where TIndex : struct, IReductionIndex
    {
        int w = TL.Count;
        TV z = TL.Zero;
        TV c00 = z, c01 = z, c02 = z, c03 = z, c10 = z, c11 = z, c12 = z, c13 = z, c20 = z, c21 = z, c22 = z, c23 = z, c30 = z, c31 = z, c32 = z, c33 = z, c40 = z, c41 = z, c42 = z, c43 = z, c50 = z, c51 = z, c52 = z, c53 = z, c60 = z, c61 = z, c62 = z, c63 = z, c70 = z, c71 = z, c72 = z, c73 = z;
        if ((flags & GemmEpilogue.Accumulate) != 0)
        {
            // Accumulating tiles always cover whole vectors (engine panels are padded; the strided GEMM copies edges).
            {
                float* row = c + (0 * ldc);
                c00 = TL.Load(row + (0 * w));
                if (TCols.Value > 1) c01 = TL.Load(row + (1 * w));
                if (TCols.Value > 2) c02 = TL.Load(row + (2 * w));
                if (TCols.Value > 3) c03 = TL.Load(row + (3 * w));
            }

            if (TRows.Value > 1) {
                float* row = c + (1 * ldc);
                c10 = TL.Load(row + (0 * w));
                if (TCols.Value > 1) c11 = TL.Load(row + (1 * w));
                if (TCols.Value > 2) c12 = TL.Load(row + (2 * w));
                if (TCols.Value > 3) c13 = TL.Load(row + (3 * w));
            }

            if (TRows.Value > 2) {
                float* row = c + (2 * ldc);
                c20 = TL.Load(row + (0 * w));
                if (TCols.Value > 1) c21 = TL.Load(row + (1 * w));
                if (TCols.Value > 2) c22 = TL.Load(row + (2 * w));
                if (TCols.Value > 3) c23 = TL.Load(row + (3 * w));
            }

            if (TRows.Value > 3) {
                float* row = c + (3 * ldc);
                c30 = TL.Load(row + (0 * w));
                if (TCols.Value > 1) c31 = TL.Load(row + (1 * w));
                if (TCols.Value > 2) c32 = TL.Load(row + (2 * w));
                if (TCols.Value > 3) c33 = TL.Load(row + (3 * w));
            }

            if (TRows.Value > 4) {
                float* row = c + (4 * ldc);
                c40 = TL.Load(row + (0 * w));
                if (TCols.Value > 1) c41 = TL.Load(row + (1 * w));
                if (TCols.Value > 2) c42 = TL.Load(row + (2 * w));
                if (TCols.Value > 3) c43 = TL.Load(row + (3 * w));
            }

            if (TRows.Value > 5) {
                float* row = c + (5 * ldc);
                c50 = TL.Load(row + (0 * w));
                if (TCols.Value > 1) c51 = TL.Load(row + (1 * w));
                if (TCols.Value > 2) c52 = TL.Load(row + (2 * w));
                if (TCols.Value > 3) c53 = TL.Load(row + (3 * w));
            }

            if (TRows.Value > 6) {
                float* row = c + (6 * ldc);
                c60 = TL.Load(row + (0 * w));
                if (TCols.Value > 1) c61 = TL.Load(row + (1 * w));
                if (TCols.Value > 2) c62 = TL.Load(row + (2 * w));
                if (TCols.Value > 3) c63 = TL.Load(row + (3 * w));
            }

            if (TRows.Value > 7) {
                float* row = c + (7 * ldc);
                c70 = TL.Load(row + (0 * w));
                if (TCols.Value > 1) c71 = TL.Load(row + (1 * w));
                if (TCols.Value > 2) c72 = TL.Load(row + (2 * w));
                if (TCols.Value > 3) c73 = TL.Load(row + (3 * w));
            }
        }
        else if (bias != null)
        {
            TV bias0 = TL.Load(bias);
            TV bias1 = TCols.Value > 1 ? TL.Load(bias + w) : z;
            TV bias2 = TCols.Value > 2 ? TL.Load(bias + (2 * w)) : z;
            TV bias3 = TCols.Value > 3 ? TL.Load(bias + (3 * w)) : z;
            c00 = bias0; c01 = bias1; c02 = bias2; c03 = bias3;
            c10 = bias0; c11 = bias1; c12 = bias2; c13 = bias3;
            c20 = bias0; c21 = bias1; c22 = bias2; c23 = bias3;
            c30 = bias0; c31 = bias1; c32 = bias2; c33 = bias3;
            c40 = bias0; c41 = bias1; c42 = bias2; c43 = bias3;
            c50 = bias0; c51 = bias1; c52 = bias2; c53 = bias3;
            c60 = bias0; c61 = bias1; c62 = bias2; c63 = bias3;
            c70 = bias0; c71 = bias1; c72 = bias2; c73 = bias3;
        }

        // Rows beyond TRows alias row 0 so every pointer is valid; their sums are never stored.
        // Row r at rows[r], or (rowStride != 0) at rows[0] + r * rowStride: equally spaced rows need no pointer table.
        float* a0 = rows[0] + aOffset;
        float* a1 = TRows.Value > 1 ? RowPointer(rows, a0, rowStride, 1, aOffset) : a0;
        float* a2 = TRows.Value > 2 ? RowPointer(rows, a0, rowStride, 2, aOffset) : a0;
        float* a3 = TRows.Value > 3 ? RowPointer(rows, a0, rowStride, 3, aOffset) : a0;
        float* a4 = TRows.Value > 4 ? RowPointer(rows, a0, rowStride, 4, aOffset) : a0;
        float* a5 = TRows.Value > 5 ? RowPointer(rows, a0, rowStride, 5, aOffset) : a0;
        float* a6 = TRows.Value > 6 ? RowPointer(rows, a0, rowStride, 6, aOffset) : a0;
        float* a7 = TRows.Value > 7 ? RowPointer(rows, a0, rowStride, 7, aOffset) : a0;
        nint segment = loop.SegmentLength;
        for (int o = 0; o < loop.OuterCount; o++)
        {
            for (int i = 0; i < loop.InnerCount; i++)
            {
                nint offA = (o * loop.OuterStrideA) + (i * loop.InnerStrideA);
                float* pb = b + (((o * loop.OuterStrideB) + (i * loop.InnerStrideB)) * ldb);
                float* p0 = a0 + offA;
                float* p1 = a1 + offA;
                float* p2 = a2 + offA;
                float* p3 = a3 + offA;
                float* p4 = a4 + offA;
                float* p5 = a5 + offA;
                float* p6 = a6 + offA;
                float* p7 = a7 + offA;
                for (nint k = 0; k < segment; k++)
                {
                    nint ix = TIndex.Index(offsets, k);
                    TV b0 = TL.Load(pb);
                    TV b1 = TCols.Value > 1 ? TL.Load(pb + w) : z;
                    TV b2 = TCols.Value > 2 ? TL.Load(pb + (2 * w)) : z;
                    TV b3 = TCols.Value > 3 ? TL.Load(pb + (3 * w)) : z;
                    TV x;
                    x = TL.Splat(p0[ix]);
                    c00 = TL.Fma(x, b0, c00);
                    if (TCols.Value > 1) c01 = TL.Fma(x, b1, c01);
                    if (TCols.Value > 2) c02 = TL.Fma(x, b2, c02);
                    if (TCols.Value > 3) c03 = TL.Fma(x, b3, c03);

                    if (TRows.Value > 1)
                    {
                        x = TL.Splat(p1[ix]);
                        c10 = TL.Fma(x, b0, c10);
                        if (TCols.Value > 1) c11 = TL.Fma(x, b1, c11);
                        if (TCols.Value > 2) c12 = TL.Fma(x, b2, c12);
                        if (TCols.Value > 3) c13 = TL.Fma(x, b3, c13);
                    }

                    if (TRows.Value > 2)
                    {
                        x = TL.Splat(p2[ix]);
                        c20 = TL.Fma(x, b0, c20);
                        if (TCols.Value > 1) c21 = TL.Fma(x, b1, c21);
                        if (TCols.Value > 2) c22 = TL.Fma(x, b2, c22);
                        if (TCols.Value > 3) c23 = TL.Fma(x, b3, c23);
                    }

                    if (TRows.Value > 3)
                    {
                        x = TL.Splat(p3[ix]);
                        c30 = TL.Fma(x, b0, c30);
                        if (TCols.Value > 1) c31 = TL.Fma(x, b1, c31);
                        if (TCols.Value > 2) c32 = TL.Fma(x, b2, c32);
                        if (TCols.Value > 3) c33 = TL.Fma(x, b3, c33);
                    }

                    if (TRows.Value > 4)
                    {
                        x = TL.Splat(p4[ix]);
                        c40 = TL.Fma(x, b0, c40);
                        if (TCols.Value > 1) c41 = TL.Fma(x, b1, c41);
                        if (TCols.Value > 2) c42 = TL.Fma(x, b2, c42);
                        if (TCols.Value > 3) c43 = TL.Fma(x, b3, c43);
                    }

                    if (TRows.Value > 5)
                    {
                        x = TL.Splat(p5[ix]);
                        c50 = TL.Fma(x, b0, c50);
                        if (TCols.Value > 1) c51 = TL.Fma(x, b1, c51);
                        if (TCols.Value > 2) c52 = TL.Fma(x, b2, c52);
                        if (TCols.Value > 3) c53 = TL.Fma(x, b3, c53);
                    }

                    if (TRows.Value > 6)
                    {
                        x = TL.Splat(p6[ix]);
                        c60 = TL.Fma(x, b0, c60);
                        if (TCols.Value > 1) c61 = TL.Fma(x, b1, c61);
                        if (TCols.Value > 2) c62 = TL.Fma(x, b2, c62);
                        if (TCols.Value > 3) c63 = TL.Fma(x, b3, c63);
                    }

                    if (TRows.Value > 7)
                    {
                        x = TL.Splat(p7[ix]);
                        c70 = TL.Fma(x, b0, c70);
                        if (TCols.Value > 1) c71 = TL.Fma(x, b1, c71);
                        if (TCols.Value > 2) c72 = TL.Fma(x, b2, c72);
                        if (TCols.Value > 3) c73 = TL.Fma(x, b3, c73);
                    }

                    pb += ldb;
                }
            }
        }

        bool relu = (flags & GemmEpilogue.Relu) != 0;
        StoreRow<TV, TL, TCols>(c, c00, c01, c02, c03, validColumns, relu);
        if (TRows.Value > 1)
        {
            StoreRow<TV, TL, TCols>(c + (1 * ldc), c10, c11, c12, c13, validColumns, relu);
        }

        if (TRows.Value > 2)
        {
            StoreRow<TV, TL, TCols>(c + (2 * ldc), c20, c21, c22, c23, validColumns, relu);
        }

        if (TRows.Value > 3)
        {
            StoreRow<TV, TL, TCols>(c + (3 * ldc), c30, c31, c32, c33, validColumns, relu);
        }

        if (TRows.Value > 4)
        {
            StoreRow<TV, TL, TCols>(c + (4 * ldc), c40, c41, c42, c43, validColumns, relu);
        }

        if (TRows.Value > 5)
        {
            StoreRow<TV, TL, TCols>(c + (5 * ldc), c50, c51, c52, c53, validColumns, relu);
        }

        if (TRows.Value > 6)
        {
            StoreRow<TV, TL, TCols>(c + (6 * ldc), c60, c61, c62, c63, validColumns, relu);
        }

        if (TRows.Value > 7)
        {
            StoreRow<TV, TL, TCols>(c + (7 * ldc), c70, c71, c72, c73, validColumns, relu);
        }
    }

    /// <summary>A run-time tile shape (rows 1-8, vectors 1-4) as the microkernel's type arguments.</summary>
    public static void Shape<TV, TL, TIndex>(
        int rows, int vectors, float** a, nint aOffset, nint rowStride, int* offsets, float* b, nint ldb, in ReductionLoop loop, float* bias, float* c, nint ldc, int validColumns, int flags)
        where TV : struct
        where TL : struct, ILanes<TV>
        where TIndex : struct, IReductionIndex
    {
        switch (vectors)
        {
            case 1: Rows<TV, TL, D1, TIndex>(rows, a, aOffset, rowStride, offsets, b, ldb, loop, bias, c, ldc, validColumns, flags); break;
            case 2: Rows<TV, TL, D2, TIndex>(rows, a, aOffset, rowStride, offsets, b, ldb, loop, bias, c, ldc, validColumns, flags); break;
            case 3: Rows<TV, TL, D3, TIndex>(rows, a, aOffset, rowStride, offsets, b, ldb, loop, bias, c, ldc, validColumns, flags); break;
            default: Rows<TV, TL, D4, TIndex>(rows, a, aOffset, rowStride, offsets, b, ldb, loop, bias, c, ldc, validColumns, flags); break;
        }
    }

    public static void Rows<TV, TL, TCols, TIndex>(
        int rows, float** a, nint aOffset, nint rowStride, int* offsets, float* b, nint ldb, in ReductionLoop loop, float* bias, float* c, nint ldc, int validColumns, int flags)
        where TV : struct
        where TL : struct, ILanes<TV>
        where TCols : struct, IDim
        where TIndex : struct, IReductionIndex
    {
        switch (rows)
        {
            case 1: Run<TV, TL, D1, TCols, TIndex>(a, aOffset, rowStride, offsets, b, ldb, loop, bias, c, ldc, validColumns, flags); break;
            case 2: Run<TV, TL, D2, TCols, TIndex>(a, aOffset, rowStride, offsets, b, ldb, loop, bias, c, ldc, validColumns, flags); break;
            case 3: Run<TV, TL, D3, TCols, TIndex>(a, aOffset, rowStride, offsets, b, ldb, loop, bias, c, ldc, validColumns, flags); break;
            case 4: Run<TV, TL, D4, TCols, TIndex>(a, aOffset, rowStride, offsets, b, ldb, loop, bias, c, ldc, validColumns, flags); break;
            case 5: Run<TV, TL, D5, TCols, TIndex>(a, aOffset, rowStride, offsets, b, ldb, loop, bias, c, ldc, validColumns, flags); break;
            case 6: Run<TV, TL, D6, TCols, TIndex>(a, aOffset, rowStride, offsets, b, ldb, loop, bias, c, ldc, validColumns, flags); break;
            case 7: Run<TV, TL, D7, TCols, TIndex>(a, aOffset, rowStride, offsets, b, ldb, loop, bias, c, ldc, validColumns, flags); break;
            default: Run<TV, TL, D8, TCols, TIndex>(a, aOffset, rowStride, offsets, b, ldb, loop, bias, c, ldc, validColumns, flags); break;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float* RowPointer(float** rows, float* first, nint rowStride, int r, nint aOffset) =>
        rowStride != 0 ? first + (r * rowStride) : rows[r] + aOffset;

    /// <summary>Writes one pixel's TCols vectors; the last may be partial so no other pixel's channels are touched.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void StoreRow<TV, TL, TCols>(float* c, TV v0, TV v1, TV v2, TV v3, int validColumns, bool relu)
        where TV : struct
        where TL : struct, ILanes<TV>
        where TCols : struct, IDim
    {
        if (relu)
        {
            v0 = TL.Relu(v0);
            v1 = TL.Relu(v1);
            v2 = TL.Relu(v2);
            v3 = TL.Relu(v3);
        }

        int w = TL.Count;
        int full = TCols.Value * w == validColumns ? TCols.Value : TCols.Value - 1;
        StoreVector<TV, TL>(c, v0, 0, full, validColumns);
        if (TCols.Value > 1)
        {
            StoreVector<TV, TL>(c + w, v1, 1, full, validColumns - w);
        }

        if (TCols.Value > 2)
        {
            StoreVector<TV, TL>(c + (2 * w), v2, 2, full, validColumns - (2 * w));
        }

        if (TCols.Value > 3)
        {
            StoreVector<TV, TL>(c + (3 * w), v3, 3, full, validColumns - (3 * w));
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreVector<TV, TL>(float* c, TV v, int index, int full, int remaining)
        where TV : struct
        where TL : struct, ILanes<TV>
    {
        if (index < full)
        {
            TL.Store(c, v);
        }
        else
        {
            TL.StoreFirst(c, v, remaining);
        }
    }
}
