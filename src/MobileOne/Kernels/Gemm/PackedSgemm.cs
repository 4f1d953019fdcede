using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace MobileOne.Kernels.Gemm;

/// <summary>
/// Single-precision GEMM for the training passes: C = (accumulate ? C : 0) + A * B over <see cref="MatrixView"/>s,
/// so NCHW activations, transposed weights and batched pixel columns are read in place.
/// Operands are packed into MR x KC and KC x NR panels and multiplied 8 x 32 at a time by the library's one
/// microkernel (<see cref="GemmTile"/>, at the widest width <see cref="Lanes.Level"/> allows). Every element of C is accumulated over k in ascending order
/// starting from its old value (or zero) whatever the ISA, tile position or thread split along M and N, so those
/// never change a bit. Only very deep products (weight gradients, k = batch * pixels) are split along k across
/// threads; their partial sums are added in thread order, so a result depends on the thread count but not on
/// scheduling.
/// </summary>
public static unsafe class PackedSgemm
{
    /// <summary>Rows of an A panel and of a microkernel tile (8): A is packed k-major with 8 rows interleaved.</summary>
    public const int MR = InterleavedReduction.Rows;
    /// <summary>Columns of a B panel and of a microkernel tile (32 floats).</summary>
    public const int NR = 32;
    private const int KC = 256;

    /// <summary>Depth block for very deep products (weight gradients): fewer reloads of C, panels still fit L1/L2.</summary>
    private const int DeepKC = 512;
    private const int NC = 256;
    private const long MinParallelMacs = 1L << 17;

    [ThreadStatic]
    private static float[]? packA;

    [ThreadStatic]
    private static float[]? packB;

    /// <summary>Below this many floats per batch run an operand is copied dense before the product (see <see cref="IsFragmented"/>).</summary>
    internal const int ShortRun = 64;

    /// <summary>Rows copied together in a dense copy, segment by segment (see <see cref="CopyRuns"/>).</summary>
    private const int CopyRowBlock = 16;

    [ThreadStatic]
    private static float[]? denseA;

    [ThreadStatic]
    private static float[]? denseB;

    [ThreadStatic]
    private static float[]? denseC;

    /// <summary>C[M x N] = (accumulate ? C : 0) + A[M x K] * B[K x N].</summary>
    public static void Multiply(in MatrixView a, in MatrixView b, in MatrixView c, bool accumulate)
    {
        int m = c.Rows, n = c.Cols, k = a.Cols;
        if (a.Rows != m || b.Cols != n || b.Rows != k)
        {
            throw new ArgumentException($"GEMM shapes do not agree: A {a.Rows}x{a.Cols}, B {b.Rows}x{b.Cols}, C {c.Rows}x{c.Cols}.");
        }

        if (m == 0 || n == 0)
        {
            return;
        }

        if (c.ColStride != 1 && c.RowStride == 1)
        {
            // A column-major C (e.g. 1x1 planes) is a row-major C^T = B^T A^T: tiles then store contiguously.
            Multiply(b.Transposed(), a.Transposed(), c.Transposed(), accumulate);
            return;
        }

        if (k == 0)
        {
            if (!accumulate)
            {
                Clear(c, 0, m, 0, n);
            }

            return;
        }

        if (IsFragmented(a) || IsFragmented(b) || IsFragmented(c))
        {
            MultiplyDense(a, b, c, accumulate);
            return;
        }

        int threads = ComputeThreads.Count;
        long macs = (long)m * n * k;
        int mPanels = (m + MR - 1) / MR, nPanels = (n + NR - 1) / NR;
        if (threads == 1 || macs < MinParallelMacs)
        {
            Compute(a, b, c, accumulate, 0, m, 0, n, 0, k);
            return;
        }

        var (av, bv, cv) = (a, b, c);
        if (k >= 4 * Math.Max(m, n) && k >= 2 * KC)
        {
            SplitK(av, bv, cv, accumulate, threads);
        }
        else if (nPanels >= mPanels)
        {
            int parts = Math.Min(threads, nPanels);
            ComputeThreads.Run(parts, p =>
            {
                var (s, e) = ComputeThreads.Range(nPanels, parts, p);
                Compute(av, bv, cv, accumulate, 0, m, s * NR, Math.Min(n, e * NR), 0, k);
            });
        }
        else
        {
            int parts = Math.Min(threads, mPanels);
            ComputeThreads.Run(parts, p =>
            {
                var (s, e) = ComputeThreads.Range(mPanels, parts, p);
                Compute(av, bv, cv, accumulate, s * MR, Math.Min(m, e * MR), 0, n, 0, k);
            });
        }
    }

    /// <summary>Width of the column blocks <see cref="MultiplyGram"/> computes (one B panel).</summary>
    private const int GramTile = NR;

    /// <summary>
    /// C[n x n] = A A^T for A of n x k (a Gram matrix, e.g. a batch's channel covariance S = Xc Xc^T): each block of
    /// 32 columns is multiplied from its diagonal down (its B panel packed once, as in <see cref="Multiply"/>), about
    /// half the work from n = 128 up, and the rest mirrored. Each element is the same FMA chain as
    /// <see cref="Multiply"/> on one thread (x_i x_j and x_j x_i round alike), so the result is symmetric bit for
    /// bit; threads take column blocks in snake order (0 1 1 0 0 1 ...) so their shares of rows even out, never k.
    /// </summary>
    public static void MultiplyGram(in MatrixView a, in MatrixView c)
    {
        int n = a.Rows, k = a.Cols;
        if (c.Rows != n || c.Cols != n)
        {
            throw new ArgumentException($"A Gram product of A {a.Rows}x{a.Cols} is {n}x{n}; C is {c.Rows}x{c.Cols}.");
        }

        // Below about 2^25 multiply-adds two threads did better splitting the whole product (128 x 128 x 1024:
        // 1.23x the time of Multiply; 256 x 256 x 3136: 0.79x; one thread 0.62-0.78x at every size measured).
        bool small = ComputeThreads.Count > 1 && (long)n * n * k < 1L << 25;
        if (n <= GramTile || k == 0 || small || c.ColStride != 1 || c.ColsBatched || c.RowsBatched || IsFragmented(a))
        {
            Multiply(a, a.Transposed(), c, accumulate: false);
            return;
        }

        int blocks = (n + GramTile - 1) / GramTile;
        int parts = Math.Min(ComputeThreads.Count, blocks);
        var (av, cv) = (a, c);
        ComputeThreads.Run(parts, p =>
        {
            var bv = av.Transposed();
            for (int j = 0; j < blocks; j++)
            {
                int lane = j % parts, owner = (j / parts) % 2 == 0 ? lane : parts - 1 - lane;
                if (owner == p)
                {
                    Compute(av, bv, cv, false, j * GramTile, n, j * GramTile, Math.Min(n, (j + 1) * GramTile), 0, k);
                }
            }
        });

        // The tiles above the diagonal from their mirror images below it.
        ComputeThreads.For(n, (r0, r1) =>
        {
            for (int i = r0; i < r1; i++)
            {
                float* rowStart = cv.Data + cv.RowOffset(i);
                for (int j = ((i / GramTile) + 1) * GramTile; j < n; j++)
                {
                    rowStart[j] = cv.Data[cv.RowOffset(j) + i];
                }
            }
        });
    }

    /// <summary>
    /// Whether a view's batches break its unit-stride dimension into runs shorter than <see cref="ShortRun"/> floats:
    /// the pixels of 2x2 .. 7x7 NCHW planes, where packing would copy a few floats at a time and every C tile
    /// would straddle images (the edge path). Such operands are made dense first, a pass over memory that the
    /// product's k or m work repays many times.
    /// </summary>
    private static bool IsFragmented(in MatrixView v) =>
        (v.ColsBatched && v.ColStride == 1 && v.ColsPerBatch < ShortRun) || (v.RowsBatched && v.RowStride == 1 && v.RowsPerBatch < ShortRun);

    /// <summary>
    /// The product over dense copies of the fragmented operands; C's copy goes back afterwards. Each copy keeps the
    /// view's unit-stride dimension contiguous, and the arithmetic per element is unchanged (k ascending from C's old
    /// value), so results equal the strided product bit for bit.
    /// </summary>
    private static void MultiplyDense(in MatrixView a, in MatrixView b, in MatrixView c, bool accumulate)
    {
        fixed (float* ap = IsFragmented(a) ? Scratch(ref denseA, (long)a.Rows * a.Cols) : null)
        fixed (float* bp = IsFragmented(b) ? Scratch(ref denseB, (long)b.Rows * b.Cols) : null)
        fixed (float* cp = IsFragmented(c) ? Scratch(ref denseC, (long)c.Rows * c.Cols) : null)
        {
            var da = ap is null ? a : Densify(a, ap, copy: true);
            var db = bp is null ? b : Densify(b, bp, copy: true);
            var dc = cp is null ? c : Densify(c, cp, copy: accumulate);
            Multiply(da, db, dc, accumulate);
            if (cp is not null)
            {
                CopyRuns(dc, c);
            }
        }
    }

    /// <summary>A dense view over <paramref name="dense"/> with the layout of <paramref name="v"/>'s unit stride (row-major when columns are contiguous), filled from v when <paramref name="copy"/>.</summary>
    private static MatrixView Densify(in MatrixView v, float* dense, bool copy)
    {
        var d = v.ColStride == 1 ? MatrixView.RowMajor(dense, v.Rows, v.Cols, v.Cols) : MatrixView.RowMajor(dense, v.Cols, v.Rows, v.Rows).Transposed();
        if (copy)
        {
            CopyRuns(v, d);
        }

        return d;
    }

    /// <summary>to = from, element for element, copying along the unit-stride dimension both share.</summary>
    private static void CopyRuns(in MatrixView from, in MatrixView to)
    {
        if (from.ColStride == 1 && to.ColStride == 1)
        {
            if (!from.ColsBatched || !to.ColsBatched)
            {
                // One side dense: the other's column batches are equal segments at a fixed distance (an image of an
                // NCHW tensor). Rows go in blocks, segment by segment inside a block, so the batched side is read or
                // written a block of consecutive channels at a time instead of one plane-sized piece per image per row.
                var batched = from.ColsBatched ? from : to;
                int per = batched.ColsPerBatch, segments = from.Cols / per, done = segments * per;
                long batchStride = batched.ColBatchStride;
                var (fs, ts) = from.ColsBatched ? (batchStride, (long)per) : (per, batchStride);
                var (src, dst) = (from, to);
                int blocks = (from.Rows + CopyRowBlock - 1) / CopyRowBlock;

                // Blocks of rows split over the workers: a copy on one thread would be the serial part of every
                // product over small planes.
                ComputeThreads.For(blocks, (b0, b1) =>
                {
                    float** fromRows = stackalloc float*[CopyRowBlock];
                    float** toRows = stackalloc float*[CopyRowBlock];
                    for (int r0 = b0 * CopyRowBlock; r0 < Math.Min(src.Rows, b1 * CopyRowBlock); r0 += CopyRowBlock)
                    {
                        int r1 = Math.Min(src.Rows, r0 + CopyRowBlock);
                        for (int r = r0; r < r1; r++)
                        {
                            fromRows[r - r0] = src.Data + src.RowOffset(r);
                            toRows[r - r0] = dst.Data + dst.RowOffset(r);
                        }

                        for (int seg = 0; seg < segments; seg++)
                        {
                            CopySegments(fromRows, seg * fs, toRows, seg * ts, r1 - r0, per);
                        }

                        for (int r = r0; r < r1 && done < src.Cols; r++)
                        {
                            new ReadOnlySpan<float>(src.Data + src.RowOffset(r) + src.ColOffset(done), src.Cols - done)
                                .CopyTo(new Span<float>(dst.Data + dst.RowOffset(r) + dst.ColOffset(done), src.Cols - done));
                        }
                    }
                }, minPerPart: Math.Max(1, (1 << 14) / Math.Max(1, CopyRowBlock * from.Cols)));

                return;
            }

            for (int r = 0; r < from.Rows; r++)
            {
                long fromRow = from.RowOffset(r), toRow = to.RowOffset(r);
                for (int j = 0; j < from.Cols;)
                {
                    int run = Math.Min(Math.Min(from.ColRun(j), to.ColRun(j)), from.Cols - j);
                    new ReadOnlySpan<float>(from.Data + fromRow + from.ColOffset(j), run).CopyTo(new Span<float>(to.Data + toRow + to.ColOffset(j), run));
                    j += run;
                }
            }

            return;
        }

        CopyRuns(from.Transposed(), to.Transposed());
    }

    /// <summary>Copies <paramref name="length"/> floats from fromRows[i] + fromOffset to toRows[i] + toOffset for each of <paramref name="rows"/> rows.</summary>
    private static void CopySegments(float** fromRows, long fromOffset, float** toRows, long toOffset, int rows, int length)
    {
        for (int i = 0; i < rows; i++)
        {
            CopyRun(fromRows[i] + fromOffset, 1, toRows[i] + toOffset, 1, length);
        }
    }

    private static void SplitK(MatrixView a, MatrixView b, MatrixView c, bool accumulate, int threads)
    {
        int m = c.Rows, n = c.Cols, k = a.Cols;
        int blocks = (k + KC - 1) / KC;
        int parts = Math.Min(threads, blocks);
        long size = (long)m * n;
        var partials = new float[parts - 1][];
        for (int i = 0; i < partials.Length; i++)
        {
            partials[i] = ArrayPool<float>.Shared.Rent((int)size);
        }

        try
        {
            ComputeThreads.Run(parts, p =>
            {
                var (s, e) = ComputeThreads.Range(blocks, parts, p);
                int k0 = s * KC, k1 = Math.Min(k, e * KC);
                if (p == 0)
                {
                    Compute(a, b, c, accumulate, 0, m, 0, n, k0, k1);
                    return;
                }

                fixed (float* part = partials[p - 1])
                {
                    Compute(a, b, MatrixView.RowMajor(part, m, n, n), false, 0, m, 0, n, k0, k1);
                }
            });

            // Partial sums join C in thread order, one row range per part, so the result is fixed for a thread count.
            ComputeThreads.For(m, (r0, r1) =>
            {
                for (int i = 0; i < partials.Length; i++)
                {
                    fixed (float* part = partials[i])
                    {
                        for (int r = r0; r < r1; r++)
                        {
                            AddRow(c, r, part + ((long)r * n), n);
                        }
                    }
                }
            });
        }
        finally
        {
            foreach (var p in partials)
            {
                ArrayPool<float>.Shared.Return(p);
            }
        }
    }

    private static void AddRow(in MatrixView c, int r, float* src, int n)
    {
        long rowOff = c.RowOffset(r);
        for (int j = 0; j < n;)
        {
            int run = Math.Min(c.ColRun(j), n - j);
            float* dst = c.Data + rowOff + c.ColOffset(j);
            if (c.ColStride == 1)
            {
                Elementwise.Add(new Span<float>(dst, run), new ReadOnlySpan<float>(src + j, run));
            }
            else
            {
                for (int t = 0; t < run; t++)
                {
                    dst[t * c.ColStride] += src[j + t];
                }
            }

            j += run;
        }
    }

    private static void Clear(in MatrixView c, int r0, int r1, int j0, int j1)
    {
        for (int r = r0; r < r1; r++)
        {
            long rowOff = c.RowOffset(r);
            for (int j = j0; j < j1;)
            {
                int run = Math.Min(c.ColRun(j), j1 - j);
                float* dst = c.Data + rowOff + c.ColOffset(j);
                for (int t = 0; t < run; t++)
                {
                    dst[t * c.ColStride] = 0f;
                }

                j += run;
            }
        }
    }

    /// <summary>One thread's share: rows [m0, m1), columns [n0, n1), depth [k0, k1).</summary>
    private static void Compute(in MatrixView a, in MatrixView b, in MatrixView c, bool accumulate, int m0, int m1, int n0, int n1, int k0, int k1)
    {
        int mc = m1 - m0;
        if (mc <= 0 || n1 <= n0)
        {
            return;
        }

        if (k1 <= k0)
        {
            if (!accumulate)
            {
                Clear(c, m0, m1, n0, n1);
            }

            return;
        }

        int mPadded = (mc + MR - 1) / MR * MR;
        int kcBlock = k1 - k0 >= 8 * DeepKC ? DeepKC : KC;

        // A with k contiguous and evenly spaced rows (weights, an output gradient's rows, channel rows) is read in
        // place: its tile rows are sequential streams that stay in L1 across the B panels, so packing them would
        // only copy every element once more. Other layouts, and a ragged last panel, are packed.
        bool inPlaceA = a.ColStride == 1 && !a.ColsBatched && !a.RowsBatched && mc % MR == 0;
        float[]? aBuf = inPlaceA ? null : Scratch(ref packA, (long)mPadded * kcBlock);
        float[] bBuf = Scratch(ref packB, (long)kcBlock * NC);
        var kernel = inPlaceA ? RowsKernel() : Kernel();
        fixed (float* ap = aBuf)
        fixed (float* bp = bBuf)
        {
            float* tile = stackalloc float[MR * NR];
            long lda = inPlaceA ? a.RowStride : MR;
            for (int pc = k0; pc < k1; pc += kcBlock)
            {
                int kc = Math.Min(kcBlock, k1 - pc);
                bool load = accumulate || pc > k0;
                if (!inPlaceA)
                {
                    PackA(a, m0, mc, pc, kc, ap);
                }

                for (int jc = n0; jc < n1; jc += NC)
                {
                    int nc = Math.Min(NC, n1 - jc);
                    PackB(b, pc, kc, jc, nc, bp);
                    for (int ir = 0; ir < mc; ir += MR)
                    {
                        int mr = Math.Min(MR, mc - ir);
                        int row = m0 + ir;
                        float* aPanel = inPlaceA ? a.Data + a.RowOffset(row) + a.ColOffset(pc) : ap + ((long)ir * kc);
                        bool rowsUniform = mr == MR && c.RowRun(row) >= MR;
                        long rowOff = c.RowOffset(row);
                        for (int jr = 0; jr < nc; jr += NR)
                        {
                            int nr = Math.Min(NR, nc - jr);
                            int col = jc + jr;
                            float* bPanel = bp + ((long)jr * kc);
                            if (rowsUniform && nr == NR && c.ColStride == 1 && c.ColRun(col) >= NR)
                            {
                                kernel(kc, aPanel, lda, bPanel, c.Data + rowOff + c.ColOffset(col), c.RowStride, load);
                            }
                            else
                            {
                                EdgeTile(kernel, kc, aPanel, lda, bPanel, c, row, mr, col, nr, load, tile);
                            }
                        }
                    }
                }
            }
        }
    }

    private static void EdgeTile(
        delegate*<int, float*, long, float*, float*, long, bool, void> kernel,
        int kc, float* aPanel, long lda, float* bPanel, in MatrixView c, int row, int mr, int col, int nr, bool load, float* tile)
    {
        // The same micro-kernel on a copy of the tile, so edge elements see exactly the arithmetic of full tiles.
        long cs = c.ColStride;
        if (load)
        {
            for (int r = 0; r < mr; r++)
            {
                long rowOff = c.RowOffset(row + r);
                for (int j = 0; j < nr;)
                {
                    int run = Math.Min(c.ColRun(col + j), nr - j);
                    CopyRun(c.Data + rowOff + c.ColOffset(col + j), cs, tile + (r * NR) + j, 1, run);
                    j += run;
                }
            }
        }

        kernel(kc, aPanel, lda, bPanel, tile, NR, load);
        for (int r = 0; r < mr; r++)
        {
            long rowOff = c.RowOffset(row + r);
            for (int j = 0; j < nr;)
            {
                int run = Math.Min(c.ColRun(col + j), nr - j);
                CopyRun(tile + (r * NR) + j, 1, c.Data + rowOff + c.ColOffset(col + j), cs, run);
                j += run;
            }
        }
    }

    /// <summary>Copies a short run of floats between strided locations (vector moves for unit strides).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void CopyRun(float* src, long srcStride, float* dst, long dstStride, int count)
    {
        if (srcStride == 1 && dstStride == 1)
        {
            int t = 0;
            for (; t + 8 <= count; t += 8)
            {
                Vector256.Store(Vector256.Load(src + t), dst + t);
            }

            if (t + 4 <= count)
            {
                Vector128.Store(Vector128.Load(src + t), dst + t);
                t += 4;
            }

            for (; t < count; t++)
            {
                dst[t] = src[t];
            }

            return;
        }

        for (int t = 0; t < count; t++)
        {
            dst[t * dstStride] = src[t * srcStride];
        }
    }

    /// <summary>Packs rows [m0, m0 + mc) x depth [k0, k0 + kc) of A into MR-row panels laid out [k][r], zero-padded.</summary>
    private static void PackA(in MatrixView a, int m0, int mc, int k0, int kc, float* dst)
    {
        float** rowPtr = stackalloc float*[MR];
        if (a.RowStride == 1 && a.RowRun(m0) >= mc && mc % MR == 0)
        {
            // Rows contiguous (a transposed weight): each depth holds all mc rows in one run. Eight depths go to
            // every panel in turn, so the reads walk along those runs and each panel receives 8 x MR floats (whole
            // cache lines) at once; panel by panel, the depths' reads fell a row stride apart, onto a few L1 sets.
            float* origin = a.Data + a.RowOffset(m0);
            for (int kk = 0; kk < kc; kk += 8)
            {
                int count = Math.Min(8, kc - kk);
                for (int t = 0; t < count; t++)
                {
                    rowPtr[t] = origin + a.ColOffset(k0 + kk + t);
                }

                for (int p = 0; p < mc; p += MR)
                {
                    float* d = dst + ((long)p * kc) + ((long)kk * MR);
                    for (int t = 0; t < count; t++)
                    {
                        Vector256.Store(Vector256.Load(rowPtr[t] + p), d + (t * MR));
                    }
                }
            }

            return;
        }

        for (int p = 0; p < mc; p += MR)
        {
            int rows = Math.Min(MR, mc - p);
            float* d = dst + ((long)p * kc);
            int row0 = m0 + p;
            if (rows == MR && a.RowStride == 1 && a.RowRun(row0) >= MR)
            {
                float* src = a.Data + a.RowOffset(row0);
                for (int kk = 0; kk < kc;)
                {
                    int col = k0 + kk;
                    int run = Math.Min(a.ColRun(col), kc - kk);
                    float* s = src + a.ColOffset(col);
                    long cs = a.ColStride;
                    for (int t = 0; t < run; t++)
                    {
                        Vector256.Store(Vector256.Load(s + (t * cs)), d + ((long)(kk + t) * MR));
                    }

                    kk += run;
                }

                continue;
            }

            if (rows == MR && a.ColStride == 1 && Avx.IsSupported)
            {
                // Row-major A (e.g. an output gradient, k = pixels): 8 rows x 8 depths per register transpose.
                for (int r = 0; r < MR; r++)
                {
                    rowPtr[r] = a.Data + a.RowOffset(row0 + r);
                }

                for (int kk = 0; kk < kc;)
                {
                    int col = k0 + kk;
                    int run = Math.Min(a.ColRun(col), kc - kk);
                    long colOff = a.ColOffset(col);
                    int t = 0;
                    for (; t + 8 <= run; t += 8)
                    {
                        Transpose8x8(rowPtr, colOff + t, d + ((long)(kk + t) * MR), MR);
                    }

                    for (; t < run; t++)
                    {
                        for (int r = 0; r < MR; r++)
                        {
                            d[((long)(kk + t) * MR) + r] = rowPtr[r][colOff + t];
                        }
                    }

                    kk += run;
                }

                continue;
            }

            for (int r = 0; r < MR; r++)
            {
                if (r >= rows)
                {
                    for (int kk = 0; kk < kc; kk++)
                    {
                        d[(kk * MR) + r] = 0f;
                    }

                    continue;
                }

                float* rowp = a.Data + a.RowOffset(row0 + r);
                long cs = a.ColStride;
                for (int kk = 0; kk < kc;)
                {
                    int col = k0 + kk;
                    int run = Math.Min(a.ColRun(col), kc - kk);
                    float* s = rowp + a.ColOffset(col);
                    float* dd = d + ((long)kk * MR) + r;
                    for (int t = 0; t < run; t++)
                    {
                        dd[t * MR] = s[t * cs];
                    }

                    kk += run;
                }
            }
        }
    }

    /// <summary>Packs depth [k0, k0 + kc) x columns [n0, n0 + nc) of B into NR-column panels laid out [k][c], zero-padded.</summary>
    private static void PackB(in MatrixView b, int k0, int kc, int n0, int nc, float* dst)
    {
        float** colPtr = stackalloc float*[8];
        int firstPanel = 0;
        if (b.ColStride == 1 && b.ColRun(n0) >= nc)
        {
            // Row-major B with the columns in one run: eight depths go to every whole panel in turn, so the reads
            // walk along the rows and each panel receives 8 x NR floats (whole cache lines) at once; panel by panel,
            // the depths' reads fell a row apart, often on the same L1 sets.
            firstPanel = nc / NR * NR;
            for (int kk = 0; kk < kc; kk += 8)
            {
                int count = Math.Min(8, kc - kk);
                for (int t = 0; t < count; t++)
                {
                    colPtr[t] = b.Data + b.RowOffset(k0 + kk + t) + b.ColOffset(n0);
                }

                for (int q = 0; q < firstPanel; q += NR)
                {
                    float* d = dst + ((long)q * kc) + ((long)kk * NR);
                    for (int t = 0; t < count; t++)
                    {
                        float* s = colPtr[t] + q;
                        float* dd = d + (t * NR);
                        Vector256.Store(Vector256.Load(s), dd);
                        Vector256.Store(Vector256.Load(s + 8), dd + 8);
                        Vector256.Store(Vector256.Load(s + 16), dd + 16);
                        Vector256.Store(Vector256.Load(s + 24), dd + 24);
                    }
                }
            }
        }

        for (int q = firstPanel; q < nc; q += NR)
        {
            int cols = Math.Min(NR, nc - q);
            float* d = dst + ((long)q * kc);
            int col0 = n0 + q;
            if (b.ColStride == 1)
            {
                bool whole = cols == NR && b.ColRun(col0) >= NR;
                long colOff = b.ColOffset(col0);
                for (int kk = 0; kk < kc; kk++)
                {
                    float* rowp = b.Data + b.RowOffset(k0 + kk);
                    float* dd = d + ((long)kk * NR);
                    if (whole)
                    {
                        float* s = rowp + colOff;
                        Vector256.Store(Vector256.Load(s), dd);
                        Vector256.Store(Vector256.Load(s + 8), dd + 8);
                        Vector256.Store(Vector256.Load(s + 16), dd + 16);
                        Vector256.Store(Vector256.Load(s + 24), dd + 24);
                        continue;
                    }

                    int j = 0;
                    while (j < cols)
                    {
                        int run = Math.Min(b.ColRun(col0 + j), cols - j);
                        CopyRun(rowp + b.ColOffset(col0 + j), 1, dd + j, 1, run);
                        j += run;
                    }

                    for (; j < NR; j++)
                    {
                        dd[j] = 0f;
                    }
                }

                continue;
            }

            long rs = b.RowStride;
            if (rs == 1 && Avx.IsSupported)
            {
                // Columns contiguous in k (e.g. activations as B^T for a weight gradient): 8 x 8 register transposes.
                for (int c8 = 0; c8 < NR; c8 += 8)
                {
                    for (int c = 0; c < 8; c++)
                    {
                        // Missing columns read column c8 (any valid one) and are zeroed below.
                        colPtr[c] = b.Data + b.ColOffset(col0 + Math.Min(c8 + c, cols - 1));
                    }

                    for (int kk = 0; kk < kc;)
                    {
                        int row = k0 + kk;
                        int run = Math.Min(b.RowRun(row), kc - kk);
                        long rowOff = b.RowOffset(row);
                        int t = 0;
                        for (; t + 8 <= run; t += 8)
                        {
                            Transpose8x8(colPtr, rowOff + t, d + ((long)(kk + t) * NR) + c8, NR);
                        }

                        for (; t < run; t++)
                        {
                            for (int c = 0; c < 8; c++)
                            {
                                d[((long)(kk + t) * NR) + c8 + c] = colPtr[c][rowOff + t];
                            }
                        }

                        kk += run;
                    }
                }

                for (int c = cols; c < NR; c++)
                {
                    for (int kk = 0; kk < kc; kk++)
                    {
                        d[(kk * NR) + c] = 0f;
                    }
                }

                continue;
            }

            for (int c = 0; c < NR; c++)
            {
                if (c >= cols)
                {
                    for (int kk = 0; kk < kc; kk++)
                    {
                        d[(kk * NR) + c] = 0f;
                    }

                    continue;
                }

                float* colp = b.Data + b.ColOffset(col0 + c);
                for (int kk = 0; kk < kc;)
                {
                    int row = k0 + kk;
                    int run = Math.Min(b.RowRun(row), kc - kk);
                    float* s = colp + b.RowOffset(row);
                    float* dd = d + ((long)kk * NR) + c;
                    for (int t = 0; t < run; t++)
                    {
                        dd[t * NR] = s[t * rs];
                    }

                    kk += run;
                }
            }
        }
    }

    /// <summary>dst[i * dstStride + j] = src[j][offset + i] for an 8 x 8 block (8 source rows, 8 consecutive elements each).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Transpose8x8(float** src, long offset, float* dst, long dstStride)
    {
        var r0 = Avx.LoadVector256(src[0] + offset);
        var r1 = Avx.LoadVector256(src[1] + offset);
        var r2 = Avx.LoadVector256(src[2] + offset);
        var r3 = Avx.LoadVector256(src[3] + offset);
        var r4 = Avx.LoadVector256(src[4] + offset);
        var r5 = Avx.LoadVector256(src[5] + offset);
        var r6 = Avx.LoadVector256(src[6] + offset);
        var r7 = Avx.LoadVector256(src[7] + offset);
        var t0 = Avx.UnpackLow(r0, r1);
        var t1 = Avx.UnpackHigh(r0, r1);
        var t2 = Avx.UnpackLow(r2, r3);
        var t3 = Avx.UnpackHigh(r2, r3);
        var t4 = Avx.UnpackLow(r4, r5);
        var t5 = Avx.UnpackHigh(r4, r5);
        var t6 = Avx.UnpackLow(r6, r7);
        var t7 = Avx.UnpackHigh(r6, r7);
        var u0 = Avx.Shuffle(t0, t2, 0x44);
        var u1 = Avx.Shuffle(t0, t2, 0xEE);
        var u2 = Avx.Shuffle(t1, t3, 0x44);
        var u3 = Avx.Shuffle(t1, t3, 0xEE);
        var u4 = Avx.Shuffle(t4, t6, 0x44);
        var u5 = Avx.Shuffle(t4, t6, 0xEE);
        var u6 = Avx.Shuffle(t5, t7, 0x44);
        var u7 = Avx.Shuffle(t5, t7, 0xEE);
        Avx.Store(dst, Avx.Permute2x128(u0, u4, 0x20));
        Avx.Store(dst + dstStride, Avx.Permute2x128(u1, u5, 0x20));
        Avx.Store(dst + (2 * dstStride), Avx.Permute2x128(u2, u6, 0x20));
        Avx.Store(dst + (3 * dstStride), Avx.Permute2x128(u3, u7, 0x20));
        Avx.Store(dst + (4 * dstStride), Avx.Permute2x128(u0, u4, 0x31));
        Avx.Store(dst + (5 * dstStride), Avx.Permute2x128(u1, u5, 0x31));
        Avx.Store(dst + (6 * dstStride), Avx.Permute2x128(u2, u6, 0x31));
        Avx.Store(dst + (7 * dstStride), Avx.Permute2x128(u3, u7, 0x31));
    }

    /// <summary>The micro-kernel for <see cref="Lanes.Level"/> on packed A panels: the library's tile at the widest width it has.</summary>
    private static delegate*<int, float*, long, float*, float*, long, bool, void> Kernel() =>
        Lanes.Use512 ? &Tile<Vector512<float>, Lanes512, InterleavedReduction>
        : Lanes.Use256 ? &Tile<Vector256<float>, Lanes256, InterleavedReduction>
        : Lanes.Use128 ? &Tile<Vector128<float>, Lanes128, InterleavedReduction>
        : &Tile<float, Lanes1, InterleavedReduction>;

    /// <summary>The same tile reading A in place: row r of the panel at a + r * lda, k contiguous.</summary>
    private static delegate*<int, float*, long, float*, float*, long, bool, void> RowsKernel() =>
        Lanes.Use512 ? &Tile<Vector512<float>, Lanes512, ContiguousReduction>
        : Lanes.Use256 ? &Tile<Vector256<float>, Lanes256, ContiguousReduction>
        : Lanes.Use128 ? &Tile<Vector128<float>, Lanes128, ContiguousReduction>
        : &Tile<float, Lanes1, ContiguousReduction>;

    private static float[] Scratch(ref float[]? cache, long size)
    {
        if (cache is null || cache.Length < size)
        {
            cache = GC.AllocateUninitializedArray<float>(checked((int)size), pinned: true);
        }

        return cache;
    }

    /// <summary>
    /// One MR x NR block of C from MR rows of A and an NR-column B panel, as the sub-tiles the register file holds:
    /// 8 rows x 2 zmm at once; 4 rows x 16 columns (2 ymm) or x 8 (2 xmm) per pass; 4 x 4 scalars. A is a packed
    /// panel (<see cref="InterleavedReduction"/>: row r at a + r, k stepping by MR; <paramref name="lda"/> is MR) or
    /// read in place (<see cref="ContiguousReduction"/>: row r at a + r * lda). Every element is one FMA chain over
    /// k, so neither the sub-tiling nor the A layout changes a bit.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile<TV, TL, TIndex>(int kc, float* a, long lda, float* b, float* c, long ldc, bool load)
        where TV : struct
        where TL : struct, ILanes<TV>
        where TIndex : struct, IReductionIndex
    {
        // Packed rows sit one float apart (k steps by MR); rows read in place sit lda apart.
        nint rowStride = typeof(TIndex) == typeof(InterleavedReduction) ? 1 : (nint)lda;
        int rowsPerTile = TL.Count == 16 ? MR : 4;
        int vectors = Math.Min(TL.MaxColumnVectors, NR / TL.Count);
        int sliceWidth = vectors * TL.Count;
        int flags = load ? GemmEpilogue.Accumulate : 0;
        var loop = ReductionLoop.Contiguous(kc);
        float* first;
        for (int r0 = 0; r0 < MR; r0 += rowsPerTile)
        {
            first = a + (r0 * rowStride);
            for (int s = 0; s < NR; s += sliceWidth)
            {
                GemmTile.Shape<TV, TL, TIndex>(
                    rowsPerTile, vectors, &first, 0, rowStride, null, b + s, NR, loop, null, c + (r0 * ldc) + s, (nint)ldc, sliceWidth, flags);
            }
        }
    }
}
