using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace MobileOne.Kernels.Depthwise;

/// <summary>
/// One channel of a 3x3, padding-1 depthwise layer over a batch of small input planes (2x2 or 4x4 at stride 1, up to
/// 256 pixels at stride 2), held as the plane's pixels over the images (pixel-major, 16 images per vector, no
/// padding). Every entry of a 3x3 patch is one of the plane's pixels or a padding zero, so the patch moments follow
/// from the plane's own sums and second moments (16 x 16 at most; on larger planes each pair of taps multiplies the
/// pixels under it directly), and the convolution, the cross sums and the input gradient are maps between pixels
/// applied to all images at once, read from lists built once per geometry: nothing is stored or computed for the
/// padding (three quarters of a padded 2x2 plane, more than half of a 4x4 one), and at stride 2 no patch rows are
/// gathered or scattered. The same sums as <see cref="PatchStack"/> (stride 1) and <see cref="StridedPatches"/>
/// (stride 2), in a different order.
/// </summary>
internal sealed unsafe class SmallPlanePatches
{
    /// <summary>Output o's taps in the plane: entries [validStart[o], validStart[o + 1]) of validTap (t) and validPixel (the pixel under it).</summary>
    private readonly int[] validStart, validTap, validPixel;

    /// <summary>Tap pair (a, b), a &lt;= b, at 9a + b: entries [pairStart[9a + b], pairStart[9a + b + 1]) of pairA and pairB, the pixels under a and b of every output whose taps a and b are both in the plane.</summary>
    private readonly int[] pairStart, pairA, pairB;

    /// <summary>Tap t's outputs in the plane: entries [tapStart[t], tapStart[t + 1]) of tapOutput (o) and tapPixel (the pixel under t of o).</summary>
    private readonly int[] tapStart, tapOutput, tapPixel;

    /// <summary>
    /// The input gradient's terms at pixel p. Of g: entries [gradStart[p], gradStart[p + 1]) of gradOutput (o) and
    /// gradTap (t), the (output, tap) pairs with p under t of o. Of x: entries [mapStart[p], mapStart[p + 1]) of
    /// mapPixel (p'), each the sum of q[9t + t'] over the (o, t, t') with p under t and p' under t' of o, listed as
    /// entries [qStart[e], qStart[e + 1]) of qIndex (9t + t').
    /// </summary>
    private readonly int[] gradStart, gradOutput, gradTap, mapStart, mapPixel, qStart, qIndex;

    /// <summary>The counts behind <see cref="ForwardFlops"/> and <see cref="BackwardFlops"/> per geometry (the profile asks on every pass).</summary>
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<(int Height, int Width, int Stride), (double Taps, double Pairs, double Maps)> CountsByGeometry = new();

    /// <summary>The layout of <paramref name="batch"/> input planes of <paramref name="height"/> x <paramref name="width"/> at <paramref name="stride"/> (<see cref="Supports"/> must hold).</summary>
    public SmallPlanePatches(int batch, int height, int width, int stride = 1)
    {
        if (!Supports(batch, height, width, stride))
        {
            throw new ArgumentException($"SmallPlanePatches needs 2x2 or 4x4 input planes at stride 1 or planes of 2 to {MaxStridedPixels} pixels at stride 2, whole groups of 16 images and AVX-512; got {batch} images of {height}x{width} at stride {stride}.");
        }

        (Batch, Height, Width, Pixels, Stride) = (batch, height, width, height * width, stride);
        (OutHeight, OutWidth) = (OutSize(height, stride), OutSize(width, stride));
        OutPixels = OutHeight * OutWidth;
        var taps = Taps(height, width, stride);

        // The lists the passes walk instead of testing every tap of every output.
        validStart = new int[OutPixels + 1];
        var tapsIn = new List<int>();
        var pixelsIn = new List<int>();
        for (int o = 0; o < OutPixels; o++)
        {
            validStart[o] = tapsIn.Count;
            for (int t = 0; t < 9; t++)
            {
                if (taps[(o * 9) + t] >= 0)
                {
                    tapsIn.Add(t);
                    pixelsIn.Add(taps[(o * 9) + t]);
                }
            }
        }

        validStart[OutPixels] = tapsIn.Count;
        (validTap, validPixel) = (tapsIn.ToArray(), pixelsIn.ToArray());
        tapStart = new int[10];
        var outputsOf = new List<int>();
        var pixelsOf = new List<int>();
        for (int t = 0; t < 9; t++)
        {
            tapStart[t] = outputsOf.Count;
            for (int o = 0; o < OutPixels; o++)
            {
                if (taps[(o * 9) + t] >= 0)
                {
                    outputsOf.Add(o);
                    pixelsOf.Add(taps[(o * 9) + t]);
                }
            }
        }

        tapStart[9] = outputsOf.Count;
        (tapOutput, tapPixel) = (outputsOf.ToArray(), pixelsOf.ToArray());

        gradStart = new int[Pixels + 1];
        mapStart = new int[Pixels + 1];
        var gradOutputs = new List<int>();
        var gradTaps = new List<int>();
        var mapPixels = new List<int>();
        var qStarts = new List<int>();
        var qIndices = new List<int>();
        for (int p = 0; p < Pixels; p++)
        {
            gradStart[p] = gradOutputs.Count;
            mapStart[p] = mapPixels.Count;
            var byPixel = new SortedDictionary<int, List<int>>();
            for (int o = 0; o < OutPixels; o++)
            {
                for (int t = 0; t < 9; t++)
                {
                    if (taps[(o * 9) + t] != p)
                    {
                        continue;
                    }

                    gradOutputs.Add(o);
                    gradTaps.Add(t);
                    for (int u = 0; u < 9; u++)
                    {
                        int other = taps[(o * 9) + u];
                        if (other >= 0)
                        {
                            if (!byPixel.TryGetValue(other, out var list))
                            {
                                byPixel[other] = list = [];
                            }

                            list.Add((9 * t) + u);
                        }
                    }
                }
            }

            foreach (var (other, list) in byPixel)
            {
                mapPixels.Add(other);
                qStarts.Add(qIndices.Count);
                qIndices.AddRange(list);
            }
        }

        gradStart[Pixels] = gradOutputs.Count;
        mapStart[Pixels] = mapPixels.Count;
        qStarts.Add(qIndices.Count);
        (gradOutput, gradTap, mapPixel, qStart, qIndex) = (gradOutputs.ToArray(), gradTaps.ToArray(), mapPixels.ToArray(), qStarts.ToArray(), qIndices.ToArray());
        pairStart = new int[82];
        var underA = new List<int>();
        var underB = new List<int>();
        for (int ab = 0; ab < 81; ab++)
        {
            pairStart[ab] = underA.Count;
            int a = ab / 9, b = ab % 9;
            for (int o = 0; o < OutPixels && a <= b; o++)
            {
                int pa = taps[(o * 9) + a], pb = taps[(o * 9) + b];
                if (pa >= 0 && pb >= 0)
                {
                    underA.Add(pa);
                    underB.Add(pb);
                }
            }
        }

        pairStart[81] = underA.Count;
        (pairA, pairB) = (underA.ToArray(), underB.ToArray());
    }

    /// <summary>Planes of up to this many pixels take their patch moments from the pixels' second moments (Pixels^2 products per image); larger ones from the tap pairs' products.</summary>
    private const int MaxPixelMoments = 16;

    /// <summary>Largest input plane at stride 2 (the lists grow with the plane; 16x16 is S0's largest stride-2 depthwise input at 32x32).</summary>
    private const int MaxStridedPixels = 256;

    /// <summary>
    /// Whether these passes run for <paramref name="batch"/> input planes of <paramref name="height"/> x
    /// <paramref name="width"/> at <paramref name="stride"/>: AVX-512 (the images-in-lanes layout and its transposes),
    /// whole groups of 16 images, and 2x2 or 4x4 planes at stride 1 or planes of 2 to 256 pixels at stride 2.
    /// </summary>
    public static bool Supports(int batch, int height, int width, int stride = 1) =>
        Lanes.Use512 && Avx512F.IsSupported && batch > 0 && batch % 16 == 0
        && (stride == 1
            ? (height == 2 && width == 2) || (height == 4 && width == 4)
            : stride == 2 && height >= 1 && width >= 1 && (long)height * width is >= 2 and <= MaxStridedPixels);

    /// <summary>
    /// Floating-point operations of one channel's forward pass: the input pixels' second moments (Pixels^2 products
    /// per image) and the convolution (one product per tap in the plane).
    /// </summary>
    public static double ForwardFlops(int batch, int height, int width, int stride = 1)
    {
        var (taps, pairs, _) = Counts(height, width, stride);
        return 2.0 * batch * (((long)height * width <= MaxPixelMoments ? (double)height * width * height * width : pairs) + taps);
    }

    /// <summary>Floating-point operations of one channel's backward pass: the cross sums (one product per tap in the plane) and the input gradient (its g terms, one per tap in the plane, and its x terms, one per pair of pixels sharing a window), per image.</summary>
    public static double BackwardFlops(int batch, int height, int width, int stride = 1)
    {
        var (taps, _, maps) = Counts(height, width, stride);
        return 2.0 * batch * ((2.0 * taps) + maps);
    }

    public int Batch { get; }

    /// <summary>Input height.</summary>
    public int Height { get; }

    /// <summary>Input width.</summary>
    public int Width { get; }

    public int Stride { get; }

    public int OutHeight { get; }

    public int OutWidth { get; }

    /// <summary>Input pixels: Height x Width.</summary>
    public int Pixels { get; }

    /// <summary>Output pixels: OutHeight x OutWidth.</summary>
    public int OutPixels { get; }

    /// <summary>Floats of one channel's input in lanes (the input and its gradient): Pixels x Batch.</summary>
    public int Total => Pixels * Batch;

    /// <summary>Floats of one channel's output in lanes (the output and its gradient): OutPixels x Batch.</summary>
    public int OutTotal => OutPixels * Batch;

    /// <summary>Floats of the <c>maps</c> scratch of <see cref="InputGradient"/>.</summary>
    public int MapsLength => mapPixel.Length + gradOutput.Length + Pixels;

    /// <summary>
    /// The whole batch of NCHW <paramref name="nchw"/> (planes of <paramref name="pixels"/>: <see cref="Pixels"/> for
    /// an input, <see cref="OutPixels"/> for an output) in lanes: channel c's buffer starts at lanes + c * pixels *
    /// Batch and holds lanes[(c * pixels + p) * Batch + i] = image i, channel c, pixel p.
    /// </summary>
    public void ToLanes(float* nchw, int channels, int pixels, float* lanes) => MatrixTranspose.Transpose(nchw, Batch, channels * pixels, lanes);

    /// <summary>NCHW <paramref name="nchw"/> from the lanes of all its <paramref name="channels"/> (the inverse of <see cref="ToLanes"/>).</summary>
    public void FromLanes(float* lanes, int channels, int pixels, float* nchw) => MatrixTranspose.Transpose(lanes, channels * pixels, Batch, nchw);

    private static int OutSize(int size, int stride) => ((size - 1) / stride) + 1;

    /// <summary>[9o + t]: the input pixel under tap t (row-major in the 3x3 window) of output o's window, or -1 in the padding.</summary>
    private static int[] Taps(int height, int width, int stride)
    {
        int outHeight = OutSize(height, stride), outWidth = OutSize(width, stride);
        var taps = new int[outHeight * outWidth * 9];
        for (int o = 0; o < outHeight * outWidth; o++)
        {
            for (int t = 0; t < 9; t++)
            {
                int r = ((o / outWidth) * stride) + (t / 3) - 1, col = ((o % outWidth) * stride) + (t % 3) - 1;
                taps[(o * 9) + t] = r >= 0 && r < height && col >= 0 && col < width ? (r * width) + col : -1;
            }
        }

        return taps;
    }

    /// <summary>
    /// Per geometry (kept in <see cref="CountsByGeometry"/>), the lengths of the lists the passes walk: the taps in
    /// the plane, the pair lists' entries and the input gradient's x terms (pairs of pixels sharing a window). Read
    /// from the lists of one group of 16 images, which the batch's own layout repeats per group.
    /// </summary>
    private static (double Taps, double Pairs, double Maps) Counts(int height, int width, int stride) =>
        CountsByGeometry.GetOrAdd((height, width, stride), key =>
        {
            var lists = new SmallPlanePatches(16, key.Height, key.Width, key.Stride);
            return (lists.tapOutput.Length, lists.pairA.Length, lists.mapPixel.Length);
        });

    /// <summary>
    /// The mean (9) and covariance (9 x 9) of the channel's 3x3 patches (padding zeros included) over the batch's
    /// output positions. <paramref name="scratch"/> holds <see cref="Total"/> floats. The pixels are centred by the
    /// channel mean first and the mean's share of every moment is added exactly, as <c>DepthwiseMoments</c> does on a
    /// <see cref="PatchStack"/>, so large means do not cancel the variances.
    /// </summary>
    public void PatchMoments(float* lanes, float* scratch, double* mean, double* covariance)
    {
        int pixels = Pixels;
        double positionsTotal = (double)OutTotal;
        float mu = (float)(PatchPasses.Sum(lanes, Total) / Total);

        // z = x - mu: the sum of each pixel over the images and, on planes of up to 16 pixels, the pixels' second
        // moments; on larger planes (stride 2) each pair of taps takes its products straight from z (ListDot over the pair lists).
        var sums = stackalloc double[pixels];
        bool fromPixels = pixels <= MaxPixelMoments;
        var second = stackalloc double[fromPixels ? pixels * pixels : 0];
        if (pixels == 16)
        {
            SecondMoments16(lanes, mu, scratch, sums, second);
        }
        else
        {
            // The shift and each pixel's sum in one pass (a call per pixel cost more than the sum on 256 pixels).
            var shift = Vector512.Create(-mu);
            for (int p = 0; p < pixels; p++)
            {
                float* from = lanes + ((long)p * Batch), to = scratch + ((long)p * Batch);
                double total = 0;
                for (int start = 0; start < Batch; start += PatchPasses.Block)
                {
                    var sum = Vector512<float>.Zero;
                    for (int i = start; i < Math.Min(Batch, start + PatchPasses.Block); i += 16)
                    {
                        var z = Vector512.Load(from + i) + shift;
                        z.Store(to + i);
                        sum += z;
                    }

                    total += Vector512.Sum(sum);
                }

                sums[p] = total;
            }

            for (int p = 0; p < pixels && fromPixels; p++)
            {
                float* zp = scratch + ((long)p * Batch);
                for (int q = p; q < pixels; q++)
                {
                    second[(p * pixels) + q] = second[(q * pixels) + p] = Dot(zp, scratch + ((long)q * Batch), Batch);
                }
            }
        }

        // Per pair of taps (a, b): over the outputs whose taps a and b both fall in the plane, the z sums under a
        // (t_ab), the second moments (zz_ab) and the count; a = b gives the single-tap sums and counts.
        var za = stackalloc double[9];
        var na = stackalloc double[9];
        double perPosition = 1.0 / positionsTotal;
        for (int a = 0; a < 9; a++)
        {
            double z = 0;
            int start = pairStart[(a * 9) + a], end = pairStart[(a * 9) + a + 1];
            for (int e = start; e < end; e++)
            {
                z += sums[pairA[e]];
            }

            za[a] = z * perPosition;
            na[a] = (double)(end - start) * Batch * perPosition;
            mean[a] = za[a] + (mu * na[a]);
        }

        for (int a = 0; a < 9; a++)
        {
            for (int b = a; b < 9; b++)
            {
                int start = pairStart[(a * 9) + b], end = pairStart[(a * 9) + b + 1];
                double zz = fromPixels ? 0 : ListDot(scratch, pairA, scratch, pairB, start, end), tab = 0, tba = 0;
                for (int e = start; e < end; e++)
                {
                    int pa = pairA[e], pb = pairB[e];
                    if (fromPixels)
                    {
                        zz += second[(pa * pixels) + pb];
                    }

                    tab += sums[pa];
                    tba += sums[pb];
                }

                double zzTerm = (zz * perPosition) - (za[a] * za[b]);
                double zvTerm = ((tab + tba) * perPosition) - (za[a] * na[b]) - (za[b] * na[a]);
                double vvTerm = ((double)(end - start) * Batch * perPosition) - (na[a] * na[b]);
                double value = zzTerm + (mu * zvTerm) + ((double)mu * mu * vvTerm);
                covariance[(a * 9) + b] = value;
                covariance[(b * 9) + a] = value;
            }
        }
    }

    /// <summary>output[o] = sum over taps t in the plane of w[t] * x[pixel under t], every output pixel o, in lanes.</summary>
    public void Correlate(float* lanes, float* w, float* output)
    {
        for (int o = 0; o < OutPixels; o++)
        {
            int start = validStart[o], end = validStart[o + 1];
            for (int i = 0; i < Batch; i += 16)
            {
                var acc = Vector512<float>.Zero;
                for (int e = start; e < end; e++)
                {
                    acc = Vector512.FusedMultiplyAdd(Vector512.Create(w[validTap[e]]), Vector512.Load(lanes + ((long)validPixel[e] * Batch) + i), acc);
                }

                acc.Store(output + ((long)o * Batch) + i);
            }
        }
    }

    /// <summary>
    /// The cross sums of an output gradient g with the input x (both in lanes): <paramref name="sumG"/> = sum of g,
    /// <paramref name="cross"/>[t] = sum over outputs o and images of g[o] * x[pixel under tap t of o] (0 in the padding).
    /// </summary>
    public void Cross(float* g, float* x, double* sumG, double* cross)
    {
        *sumG = PatchPasses.Sum(g, OutTotal);
        new Span<double>(cross, 9).Clear();

        // Tap by tap, 64 images at a time in four independent vector sums over the tap's outputs (a float sum of at
        // most 9 x 4 products per lane), folded into double per group: one reduction per tap and group instead of a
        // dot product, with its reduction, per output and tap.
        for (int t = 0; t < 9; t++)
        {
            cross[t] = ListDot(g, tapOutput, x, tapPixel, tapStart[t], tapStart[t + 1]);
        }
    }

    /// <summary>
    /// The input gradient in lanes: dx[p] = sum over the (output o, tap t) pairs with pixel p under tap t of o of
    /// w[t] * g[o] + k[t] - sum over taps t' in the plane of q[9t + t'] * x[pixel under t' of o]: the
    /// <see cref="PatchPasses.InputGradient"/> of a padded stack, read back at the plane's pixels. Per channel the x
    /// terms are first summed into one coefficient per pair of pixels that share a window, then every pixel takes its
    /// g terms, x terms and constant over all images; pixel pairs that share no window cost nothing.
    /// <paramref name="maps"/> holds <see cref="MapsLength"/> floats.
    /// </summary>
    public void InputGradient(float* g, float* x, float* w, float* q, float* k, float* maps, float* dx)
    {
        int pixels = Pixels;
        float* ofX = maps, ofG = maps + mapPixel.Length, constant = ofG + gradOutput.Length;
        for (int e = 0; e < mapPixel.Length; e++)
        {
            float sum = 0;
            for (int j = qStart[e]; j < qStart[e + 1]; j++)
            {
                sum += q[qIndex[j]];
            }

            ofX[e] = -sum;
        }

        for (int p = 0; p < pixels; p++)
        {
            float sum = 0;
            for (int e = gradStart[p]; e < gradStart[p + 1]; e++)
            {
                ofG[e] = w[gradTap[e]];
                sum += k[gradTap[e]];
            }

            constant[p] = sum;
        }

        // Eight independent sums per pixel (its g and x terms, four vectors of images each) so that the products do
        // not wait on one another; then single vectors for a remainder of fewer than 64 images.
        for (int p = 0; p < pixels; p++)
        {
            int g0At = gradStart[p], g1At = gradStart[p + 1], x0At = mapStart[p], x1At = mapStart[p + 1];
            int i = 0;
            for (; i + 64 <= Batch; i += 64)
            {
                Vector512<float> a0 = Vector512.Create(constant[p]), a1 = a0, a2 = a0, a3 = a0, b0 = Vector512<float>.Zero, b1 = b0, b2 = b0, b3 = b0;
                for (int e = g0At; e < g1At; e++)
                {
                    var weight = Vector512.Create(ofG[e]);
                    float* go = g + ((long)gradOutput[e] * Batch) + i;
                    a0 = Vector512.FusedMultiplyAdd(weight, Vector512.Load(go), a0);
                    a1 = Vector512.FusedMultiplyAdd(weight, Vector512.Load(go + 16), a1);
                    a2 = Vector512.FusedMultiplyAdd(weight, Vector512.Load(go + 32), a2);
                    a3 = Vector512.FusedMultiplyAdd(weight, Vector512.Load(go + 48), a3);
                }

                for (int e = x0At; e < x1At; e++)
                {
                    var weight = Vector512.Create(ofX[e]);
                    float* xo = x + ((long)mapPixel[e] * Batch) + i;
                    b0 = Vector512.FusedMultiplyAdd(weight, Vector512.Load(xo), b0);
                    b1 = Vector512.FusedMultiplyAdd(weight, Vector512.Load(xo + 16), b1);
                    b2 = Vector512.FusedMultiplyAdd(weight, Vector512.Load(xo + 32), b2);
                    b3 = Vector512.FusedMultiplyAdd(weight, Vector512.Load(xo + 48), b3);
                }

                float* d = dx + ((long)p * Batch) + i;
                (a0 + b0).Store(d);
                (a1 + b1).Store(d + 16);
                (a2 + b2).Store(d + 32);
                (a3 + b3).Store(d + 48);
            }

            for (; i < Batch; i += 16)
            {
                Vector512<float> accG = Vector512.Create(constant[p]), accX = Vector512<float>.Zero;
                for (int e = g0At; e < g1At; e++)
                {
                    accG = Vector512.FusedMultiplyAdd(Vector512.Create(ofG[e]), Vector512.Load(g + ((long)gradOutput[e] * Batch) + i), accG);
                }

                for (int e = x0At; e < x1At; e++)
                {
                    accX = Vector512.FusedMultiplyAdd(Vector512.Create(ofX[e]), Vector512.Load(x + ((long)mapPixel[e] * Batch) + i), accX);
                }

                (accG + accX).Store(dx + ((long)p * Batch) + i);
            }
        }
    }

    /// <summary>
    /// sum over the list entries e in [<paramref name="start"/>, <paramref name="end"/>) of the dot product over the
    /// images of a[rowsA[e]] and b[rowsB[e]] (pixels in lanes): 64 images at a time in four vector sums over the
    /// entries, folded into double per group (a float sum of at most a few hundred products per lane).
    /// </summary>
    private double ListDot(float* a, int[] rowsA, float* b, int[] rowsB, int start, int end)
    {
        double total = 0;
        int i = 0;
        for (; i + 64 <= Batch; i += 64)
        {
            Vector512<float> s0 = Vector512<float>.Zero, s1 = s0, s2 = s0, s3 = s0;
            for (int e = start; e < end; e++)
            {
                float* pa = a + ((long)rowsA[e] * Batch) + i, pb = b + ((long)rowsB[e] * Batch) + i;
                s0 = Vector512.FusedMultiplyAdd(Vector512.Load(pa), Vector512.Load(pb), s0);
                s1 = Vector512.FusedMultiplyAdd(Vector512.Load(pa + 16), Vector512.Load(pb + 16), s1);
                s2 = Vector512.FusedMultiplyAdd(Vector512.Load(pa + 32), Vector512.Load(pb + 32), s2);
                s3 = Vector512.FusedMultiplyAdd(Vector512.Load(pa + 48), Vector512.Load(pb + 48), s3);
            }

            total += Vector512.Sum((s0 + s1) + (s2 + s3));
        }

        for (; i < Batch; i += 16)
        {
            var sum = Vector512<float>.Zero;
            for (int e = start; e < end; e++)
            {
                sum = Vector512.FusedMultiplyAdd(Vector512.Load(a + ((long)rowsA[e] * Batch) + i), Vector512.Load(b + ((long)rowsB[e] * Batch) + i), sum);
            }

            total += Vector512.Sum(sum);
        }

        return total;
    }

    /// <summary>
    /// The pixel sums and 16 x 16 second moments of z = x - <paramref name="mu"/> over the batch's 4x4 planes, each
    /// plane one vector: per image, each pixel times the whole plane (outer products, no sums across lanes), in float
    /// blocks of up to 256 images added in double. <paramref name="scratch"/> holds 16 x min(Batch, 256) floats: a
    /// block's planes are turned out of the lanes there (16 x 16 transposes), then centred in place, so that the
    /// broadcasts of their pixels read settled memory (read back from a store just made, each waited on the store)
    /// and the 16 sums stay in registers.
    /// </summary>
    private void SecondMoments16(float* lanes, float mu, float* scratch, double* sums, double* second)
    {
        new Span<double>(sums, 16).Clear();
        new Span<double>(second, 256).Clear();
        var shift = Vector512.Create(-mu);
        var rows = stackalloc Vector512<float>[16];
        for (int start = 0; start < Batch; start += 256)
        {
            int count = Math.Min(256, Batch - start);
            for (int i = 0; i < count; i += 16)
            {
                MatrixTranspose.Block16(lanes + start + i, Batch, scratch + (16 * i), 16);
            }

            var total = Vector512<float>.Zero;
            for (int i = 0; i < count; i++)
            {
                var z = Vector512.Load(scratch + (16 * i)) + shift;
                z.Store(scratch + (16 * i));
                total += z;
            }

            Vector512<float> r0 = Vector512<float>.Zero, r1 = r0, r2 = r0, r3 = r0, r4 = r0, r5 = r0, r6 = r0, r7 = r0;
            Vector512<float> r8 = r0, r9 = r0, r10 = r0, r11 = r0, r12 = r0, r13 = r0, r14 = r0, r15 = r0;
            for (int i = 0; i < count; i++)
            {
                float* zi = scratch + (16 * i);
                var z = Vector512.Load(zi);
                r0 = Vector512.FusedMultiplyAdd(Vector512.Create(zi[0]), z, r0);
                r1 = Vector512.FusedMultiplyAdd(Vector512.Create(zi[1]), z, r1);
                r2 = Vector512.FusedMultiplyAdd(Vector512.Create(zi[2]), z, r2);
                r3 = Vector512.FusedMultiplyAdd(Vector512.Create(zi[3]), z, r3);
                r4 = Vector512.FusedMultiplyAdd(Vector512.Create(zi[4]), z, r4);
                r5 = Vector512.FusedMultiplyAdd(Vector512.Create(zi[5]), z, r5);
                r6 = Vector512.FusedMultiplyAdd(Vector512.Create(zi[6]), z, r6);
                r7 = Vector512.FusedMultiplyAdd(Vector512.Create(zi[7]), z, r7);
                r8 = Vector512.FusedMultiplyAdd(Vector512.Create(zi[8]), z, r8);
                r9 = Vector512.FusedMultiplyAdd(Vector512.Create(zi[9]), z, r9);
                r10 = Vector512.FusedMultiplyAdd(Vector512.Create(zi[10]), z, r10);
                r11 = Vector512.FusedMultiplyAdd(Vector512.Create(zi[11]), z, r11);
                r12 = Vector512.FusedMultiplyAdd(Vector512.Create(zi[12]), z, r12);
                r13 = Vector512.FusedMultiplyAdd(Vector512.Create(zi[13]), z, r13);
                r14 = Vector512.FusedMultiplyAdd(Vector512.Create(zi[14]), z, r14);
                r15 = Vector512.FusedMultiplyAdd(Vector512.Create(zi[15]), z, r15);
            }

            (rows[0], rows[1], rows[2], rows[3], rows[4], rows[5], rows[6], rows[7]) = (r0, r1, r2, r3, r4, r5, r6, r7);
            (rows[8], rows[9], rows[10], rows[11], rows[12], rows[13], rows[14], rows[15]) = (r8, r9, r10, r11, r12, r13, r14, r15);
            total.Store(scratch);
            for (int p = 0; p < 16; p++)
            {
                sums[p] += scratch[p];
            }

            for (int p = 0; p < 16; p++)
            {
                float* row = (float*)(rows + p);
                for (int q = 0; q < 16; q++)
                {
                    second[(p * 16) + q] += row[q];
                }
            }
        }
    }

    /// <summary>sum a[i] * b[i] over <paramref name="n"/> floats, in float blocks (<see cref="PatchPasses.Block"/> products) added in double.</summary>
    private static double Dot(float* a, float* b, int n)
    {
        double total = 0;
        for (int start = 0; start < n; start += PatchPasses.Block)
        {
            int length = Math.Min(PatchPasses.Block, n - start);
            total += Elementwise.Dot(new ReadOnlySpan<float>(a + start, length), new ReadOnlySpan<float>(b + start, length));
        }

        return total;
    }
}
