using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace MobileOne.Kernels;

/// <summary>
/// The transpose of a dense row-major matrix in 16 x 16 blocks, each moved by in-register permutes: how a batch moves
/// between NCHW (a batch x (channels x pixels) matrix) and the layouts that hold a channel's pixels of all images
/// together, pixel by pixel ((channels x pixels) x batch): images in lanes for the small-plane depthwise passes
/// (<see cref="Depthwise.SmallPlanePatches"/>), one row per channel for the stacked pointwise products on small planes
/// and the pointwise moment passes. Between two blocks that both work in that layout (CHWN) training hands the batch on
/// as it is instead.
/// A block reads and writes 16 whole cache lines; moving one 2x2 channel at a time read a quarter of each line (the
/// other three channels' pixels) and wrote partial lines 4 KB apart, which cost more than the channel's moments.
/// </summary>
internal static unsafe class MatrixTranspose
{
    // Stage k of the 16 x 16 transpose swaps bit k of the row with bit k of the lane: rows a and a | 2^k (bit k of a
    // clear) become their Low and High permutes.
    private static readonly Vector512<int> Low0 = StageLow(0), High0 = StageHigh(0), Low1 = StageLow(1), High1 = StageHigh(1);
    private static readonly Vector512<int> Low2 = StageLow(2), High2 = StageHigh(2), Low3 = StageLow(3), High3 = StageHigh(3);

    /// <summary>
    /// destination = source^T for a row-major <paramref name="rows"/> x <paramref name="cols"/> matrix:
    /// destination[j * rows + i] = source[i * cols + j]. Whole 16 x 16 blocks by permutes (AVX-512), the edges (and
    /// everything without AVX-512) element by element. The workers split the longer side's 16-wide bands: back to
    /// NCHW a batch of 64 images is only four bands of columns.
    /// </summary>
    public static void Transpose(float* source, int rows, int cols, float* destination)
    {
        nint from = (nint)source, to = (nint)destination;
        int strips = (cols + 15) / 16, bands = (rows + 15) / 16;
        if (strips >= bands)
        {
            ComputeThreads.For(strips, (s0, s1) => TransposeBlocks((float*)from, rows, cols, (float*)to, 0, rows, s0, s1), minPerPart: 4);
        }
        else
        {
            ComputeThreads.For(bands, (b0, b1) => TransposeBlocks((float*)from, rows, cols, (float*)to, b0 * 16, Math.Min(rows, b1 * 16), 0, strips), minPerPart: 4);
        }
    }

    /// <summary>Rows [<paramref name="r0"/>, <paramref name="r1"/>) of the column strips [<paramref name="s0"/>, <paramref name="s1"/>) (16 columns each, the last maybe fewer).</summary>
    private static void TransposeBlocks(float* source, int rows, int cols, float* destination, int r0, int r1, int s0, int s1)
    {
        bool permutes = Lanes.Use512 && Avx512F.IsSupported;
        for (int s = s0; s < s1; s++)
        {
            int j0 = s * 16, width = Math.Min(16, cols - j0);
            int i0 = r0;
            if (width == 16 && permutes)
            {
                for (; i0 + 16 <= r1; i0 += 16)
                {
                    Block16(source + ((long)i0 * cols) + j0, cols, destination + ((long)j0 * rows) + i0, rows);
                }
            }

            for (int j = j0; j < j0 + width; j++)
            {
                for (int i = i0; i < r1; i++)
                {
                    destination[((long)j * rows) + i] = source[((long)i * cols) + j];
                }
            }
        }
    }

    /// <summary>
    /// to[j * toStride + i] = from[i * fromStride + j] for a 16 x 16 block: 16 rows loaded, four permute stages, 16
    /// rows stored, every row in a register (a loop over rows in memory stored and reloaded them at every stage).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Block16(float* from, long fromStride, float* to, long toStride)
    {
        var r0 = Vector512.Load(from);
        var r1 = Vector512.Load(from + (1 * fromStride));
        var r2 = Vector512.Load(from + (2 * fromStride));
        var r3 = Vector512.Load(from + (3 * fromStride));
        var r4 = Vector512.Load(from + (4 * fromStride));
        var r5 = Vector512.Load(from + (5 * fromStride));
        var r6 = Vector512.Load(from + (6 * fromStride));
        var r7 = Vector512.Load(from + (7 * fromStride));
        var r8 = Vector512.Load(from + (8 * fromStride));
        var r9 = Vector512.Load(from + (9 * fromStride));
        var r10 = Vector512.Load(from + (10 * fromStride));
        var r11 = Vector512.Load(from + (11 * fromStride));
        var r12 = Vector512.Load(from + (12 * fromStride));
        var r13 = Vector512.Load(from + (13 * fromStride));
        var r14 = Vector512.Load(from + (14 * fromStride));
        var r15 = Vector512.Load(from + (15 * fromStride));
        (r0, r1) = (Avx512F.PermuteVar16x32x2(r0, Low0, r1), Avx512F.PermuteVar16x32x2(r0, High0, r1));
        (r2, r3) = (Avx512F.PermuteVar16x32x2(r2, Low0, r3), Avx512F.PermuteVar16x32x2(r2, High0, r3));
        (r4, r5) = (Avx512F.PermuteVar16x32x2(r4, Low0, r5), Avx512F.PermuteVar16x32x2(r4, High0, r5));
        (r6, r7) = (Avx512F.PermuteVar16x32x2(r6, Low0, r7), Avx512F.PermuteVar16x32x2(r6, High0, r7));
        (r8, r9) = (Avx512F.PermuteVar16x32x2(r8, Low0, r9), Avx512F.PermuteVar16x32x2(r8, High0, r9));
        (r10, r11) = (Avx512F.PermuteVar16x32x2(r10, Low0, r11), Avx512F.PermuteVar16x32x2(r10, High0, r11));
        (r12, r13) = (Avx512F.PermuteVar16x32x2(r12, Low0, r13), Avx512F.PermuteVar16x32x2(r12, High0, r13));
        (r14, r15) = (Avx512F.PermuteVar16x32x2(r14, Low0, r15), Avx512F.PermuteVar16x32x2(r14, High0, r15));
        (r0, r2) = (Avx512F.PermuteVar16x32x2(r0, Low1, r2), Avx512F.PermuteVar16x32x2(r0, High1, r2));
        (r1, r3) = (Avx512F.PermuteVar16x32x2(r1, Low1, r3), Avx512F.PermuteVar16x32x2(r1, High1, r3));
        (r4, r6) = (Avx512F.PermuteVar16x32x2(r4, Low1, r6), Avx512F.PermuteVar16x32x2(r4, High1, r6));
        (r5, r7) = (Avx512F.PermuteVar16x32x2(r5, Low1, r7), Avx512F.PermuteVar16x32x2(r5, High1, r7));
        (r8, r10) = (Avx512F.PermuteVar16x32x2(r8, Low1, r10), Avx512F.PermuteVar16x32x2(r8, High1, r10));
        (r9, r11) = (Avx512F.PermuteVar16x32x2(r9, Low1, r11), Avx512F.PermuteVar16x32x2(r9, High1, r11));
        (r12, r14) = (Avx512F.PermuteVar16x32x2(r12, Low1, r14), Avx512F.PermuteVar16x32x2(r12, High1, r14));
        (r13, r15) = (Avx512F.PermuteVar16x32x2(r13, Low1, r15), Avx512F.PermuteVar16x32x2(r13, High1, r15));
        (r0, r4) = (Avx512F.PermuteVar16x32x2(r0, Low2, r4), Avx512F.PermuteVar16x32x2(r0, High2, r4));
        (r1, r5) = (Avx512F.PermuteVar16x32x2(r1, Low2, r5), Avx512F.PermuteVar16x32x2(r1, High2, r5));
        (r2, r6) = (Avx512F.PermuteVar16x32x2(r2, Low2, r6), Avx512F.PermuteVar16x32x2(r2, High2, r6));
        (r3, r7) = (Avx512F.PermuteVar16x32x2(r3, Low2, r7), Avx512F.PermuteVar16x32x2(r3, High2, r7));
        (r8, r12) = (Avx512F.PermuteVar16x32x2(r8, Low2, r12), Avx512F.PermuteVar16x32x2(r8, High2, r12));
        (r9, r13) = (Avx512F.PermuteVar16x32x2(r9, Low2, r13), Avx512F.PermuteVar16x32x2(r9, High2, r13));
        (r10, r14) = (Avx512F.PermuteVar16x32x2(r10, Low2, r14), Avx512F.PermuteVar16x32x2(r10, High2, r14));
        (r11, r15) = (Avx512F.PermuteVar16x32x2(r11, Low2, r15), Avx512F.PermuteVar16x32x2(r11, High2, r15));
        (r0, r8) = (Avx512F.PermuteVar16x32x2(r0, Low3, r8), Avx512F.PermuteVar16x32x2(r0, High3, r8));
        (r1, r9) = (Avx512F.PermuteVar16x32x2(r1, Low3, r9), Avx512F.PermuteVar16x32x2(r1, High3, r9));
        (r2, r10) = (Avx512F.PermuteVar16x32x2(r2, Low3, r10), Avx512F.PermuteVar16x32x2(r2, High3, r10));
        (r3, r11) = (Avx512F.PermuteVar16x32x2(r3, Low3, r11), Avx512F.PermuteVar16x32x2(r3, High3, r11));
        (r4, r12) = (Avx512F.PermuteVar16x32x2(r4, Low3, r12), Avx512F.PermuteVar16x32x2(r4, High3, r12));
        (r5, r13) = (Avx512F.PermuteVar16x32x2(r5, Low3, r13), Avx512F.PermuteVar16x32x2(r5, High3, r13));
        (r6, r14) = (Avx512F.PermuteVar16x32x2(r6, Low3, r14), Avx512F.PermuteVar16x32x2(r6, High3, r14));
        (r7, r15) = (Avx512F.PermuteVar16x32x2(r7, Low3, r15), Avx512F.PermuteVar16x32x2(r7, High3, r15));
        r0.Store(to);
        r1.Store(to + (1 * toStride));
        r2.Store(to + (2 * toStride));
        r3.Store(to + (3 * toStride));
        r4.Store(to + (4 * toStride));
        r5.Store(to + (5 * toStride));
        r6.Store(to + (6 * toStride));
        r7.Store(to + (7 * toStride));
        r8.Store(to + (8 * toStride));
        r9.Store(to + (9 * toStride));
        r10.Store(to + (10 * toStride));
        r11.Store(to + (11 * toStride));
        r12.Store(to + (12 * toStride));
        r13.Store(to + (13 * toStride));
        r14.Store(to + (14 * toStride));
        r15.Store(to + (15 * toStride));
    }

    private static Vector512<int> StageLow(int k) => Index(j => (j & (1 << k)) == 0 ? j : 16 + (j ^ (1 << k)));

    private static Vector512<int> StageHigh(int k) => Index(j => (j & (1 << k)) == 0 ? j | (1 << k) : 16 + j);

    private static Vector512<int> Index(Func<int, int> lane)
    {
        var values = new int[16];
        for (int j = 0; j < 16; j++)
        {
            values[j] = lane(j);
        }

        return Vector512.Create(values);
    }
}
