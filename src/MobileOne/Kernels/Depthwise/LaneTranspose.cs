using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace MobileOne.Kernels.Depthwise;

/// <summary>
/// Moves one channel of a batch between NCHW planes of 4 or 16 pixels and images in lanes (each pixel's images
/// contiguous, as <see cref="SmallPlanePatches"/> holds them) by in-register transposes of 16 images at a time:
/// two-source permutes instead of one float per load and store. A 4x4 channel of 64 images is 1,024 scalar moves
/// otherwise, about as long as the channel's moments.
/// </summary>
internal static unsafe class LaneTranspose
{
    /// <summary>[k]: the permutes of stage k of the 16 x 16 transpose, which swaps bit k of the row with bit k of the lane.</summary>
    private static readonly Vector512<int>[] StageLow = new Vector512<int>[4], StageHigh = new Vector512<int>[4];

    // The 4-pixel planes: images 0-7 and 8-15 interleaved by pixel pairs, then pixels gathered (see ToLanes4).
    private static readonly Vector512<int> PairsLow, PairsHigh, EvenPixels, OddPixels;

    // FromLanes4: the inverse permutes.
    private static readonly Vector512<int> InterleaveLow, InterleaveHigh, PlanesLow, PlanesHigh;

    static LaneTranspose()
    {
        for (int k = 0; k < 4; k++)
        {
            int bit = 1 << k;
            StageLow[k] = Index(j => (j & bit) == 0 ? j : 16 + (j ^ bit));
            StageHigh[k] = Index(j => (j & bit) == 0 ? j | bit : 16 + j);
        }

        // W_g (g = 0, 1) holds images 4g..4g+3 as [4m + p] = image (4g + m), pixel p. Pixels 0-1 of images 0-7 as [2i + s]:
        PairsLow = Index(j => (j / 2 / 4 * 16) + (j / 2 % 4 * 4) + (j % 2));
        PairsHigh = Index(j => (j / 2 / 4 * 16) + (j / 2 % 4 * 4) + 2 + (j % 2));
        // Pixel s of images 0-15 from two [2i + s] vectors (images 0-7, then 8-15).
        EvenPixels = Index(j => j < 8 ? 2 * j : 16 + (2 * (j - 8)));
        OddPixels = Index(j => j < 8 ? (2 * j) + 1 : 16 + (2 * (j - 8)) + 1);

        // From pixel vectors P_s, P_t (16 images each): [2i + u] = P_(s or t)[i] for images 0-7, then 8-15.
        InterleaveLow = Index(j => ((j % 2) * 16) + (j / 2));
        InterleaveHigh = Index(j => ((j % 2) * 16) + 8 + (j / 2));
        // From A = [2i + u] of pixels 0-1 and B = [2i + u] of pixels 2-3 (images 0-7 or 8-15): [4m + p] for 4 images.
        PlanesLow = Index(j => ((j % 4) < 2 ? 0 : 16) + (2 * (j / 4)) + (j % 2));
        PlanesHigh = Index(j => ((j % 4) < 2 ? 0 : 16) + 8 + (2 * (j / 4)) + (j % 2));
    }

    /// <summary>Whether planes of <paramref name="plane"/> pixels over <paramref name="batch"/> images move this way: AVX-512, 4 or 16 pixels, whole groups of 16 images.</summary>
    public static bool Supports(int plane, int batch) =>
        Lanes.Use512 && Avx512F.IsSupported && batch % 16 == 0 && (plane == 4 || plane == 16);

    /// <summary>
    /// stack[positions[p] + i] = planes[i * imageStride + p] for the <paramref name="batch"/> images and the plane's
    /// pixels p (<see cref="Supports"/> must hold).
    /// </summary>
    public static void ToLanes(float* planes, long imageStride, int plane, int batch, int* positions, float* stack)
    {
        var rows = stackalloc Vector512<float>[16];
        for (int i0 = 0; i0 < batch; i0 += 16)
        {
            float* src = planes + (i0 * imageStride);
            if (plane == 16)
            {
                for (int i = 0; i < 16; i++)
                {
                    rows[i] = Vector512.Load(src + (i * imageStride));
                }

                Transpose16(rows);
            }
            else
            {
                for (int g = 0; g < 4; g++)
                {
                    float* s = src + (4 * g * imageStride);
                    rows[8 + g] = Vector512.Create(
                        Vector256.Create(Vector128.Load(s), Vector128.Load(s + imageStride)),
                        Vector256.Create(Vector128.Load(s + (2 * imageStride)), Vector128.Load(s + (3 * imageStride))));
                }

                // Pixels (0, 1) and (2, 3) of images 0-7 and 8-15 as [2i + s], then each pixel over the 16 images.
                Vector512<float> low01 = Avx512F.PermuteVar16x32x2(rows[8], PairsLow, rows[9]), low23 = Avx512F.PermuteVar16x32x2(rows[8], PairsHigh, rows[9]);
                Vector512<float> high01 = Avx512F.PermuteVar16x32x2(rows[10], PairsLow, rows[11]), high23 = Avx512F.PermuteVar16x32x2(rows[10], PairsHigh, rows[11]);
                rows[0] = Avx512F.PermuteVar16x32x2(low01, EvenPixels, high01);
                rows[1] = Avx512F.PermuteVar16x32x2(low01, OddPixels, high01);
                rows[2] = Avx512F.PermuteVar16x32x2(low23, EvenPixels, high23);
                rows[3] = Avx512F.PermuteVar16x32x2(low23, OddPixels, high23);
            }

            for (int p = 0; p < plane; p++)
            {
                rows[p].Store(stack + positions[p] + i0);
            }
        }
    }

    /// <summary>
    /// planes[i * imageStride + p] = stack[positions[p] + i] + <paramref name="add"/>, then max with 0 when
    /// <paramref name="relu"/>: the inverse of <see cref="ToLanes"/>.
    /// </summary>
    public static void FromLanes(float* stack, int* positions, int plane, int batch, float add, bool relu, float* planes, long imageStride)
    {
        var rows = stackalloc Vector512<float>[16];
        var shift = Vector512.Create(add);
        for (int i0 = 0; i0 < batch; i0 += 16)
        {
            for (int p = 0; p < plane; p++)
            {
                var v = Vector512.Load(stack + positions[p] + i0) + shift;
                rows[p] = relu ? Vector512.Max(v, Vector512<float>.Zero) : v;
            }

            float* dst = planes + (i0 * imageStride);
            if (plane == 16)
            {
                Transpose16(rows);
                for (int i = 0; i < 16; i++)
                {
                    rows[i].Store(dst + (i * imageStride));
                }

                continue;
            }

            Vector512<float> low01 = Avx512F.PermuteVar16x32x2(rows[0], InterleaveLow, rows[1]), high01 = Avx512F.PermuteVar16x32x2(rows[0], InterleaveHigh, rows[1]);
            Vector512<float> low23 = Avx512F.PermuteVar16x32x2(rows[2], InterleaveLow, rows[3]), high23 = Avx512F.PermuteVar16x32x2(rows[2], InterleaveHigh, rows[3]);
            // [4m + p] for images 0-3, 4-7 (from the low pairs), 8-11, 12-15 (from the high ones).
            Span<Vector512<float>> groups = [
                Avx512F.PermuteVar16x32x2(low01, PlanesLow, low23), Avx512F.PermuteVar16x32x2(low01, PlanesHigh, low23),
                Avx512F.PermuteVar16x32x2(high01, PlanesLow, high23), Avx512F.PermuteVar16x32x2(high01, PlanesHigh, high23)];
            for (int g = 0; g < 4; g++)
            {
                float* d = dst + (4 * g * imageStride);
                Vector512<float> v = groups[g];
                v.GetLower().GetLower().Store(d);
                v.GetLower().GetUpper().Store(d + imageStride);
                v.GetUpper().GetLower().Store(d + (2 * imageStride));
                v.GetUpper().GetUpper().Store(d + (3 * imageStride));
            }
        }
    }

    /// <summary>rows[i][j] becomes rows[j][i]: four stages, stage k swapping bit k of the row index with bit k of the lane.</summary>
    private static void Transpose16(Vector512<float>* rows)
    {
        for (int k = 0; k < 4; k++)
        {
            int bit = 1 << k;
            Vector512<int> low = StageLow[k], high = StageHigh[k];
            for (int a = 0; a < 16; a++)
            {
                if ((a & bit) != 0)
                {
                    continue;
                }

                Vector512<float> ra = rows[a], rb = rows[a | bit];
                rows[a] = Avx512F.PermuteVar16x32x2(ra, low, rb);
                rows[a | bit] = Avx512F.PermuteVar16x32x2(ra, high, rb);
            }
        }
    }

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
