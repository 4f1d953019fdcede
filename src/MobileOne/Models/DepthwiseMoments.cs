using System.Buffers;
using MobileOne.Kernels;
using MobileOne.Kernels.Depthwise;
using MobileOne.Nn;
using MobileOne.Tensors;

namespace MobileOne.Models;

/// <summary>
/// The training passes of a 3x3 depthwise block at stride 1 or 2 (k 3x3 conv+BN branches, the 1x1 scale branch and the BN
/// skip) computed per channel from the input's patch moments instead of the branch outputs. Every branch reads the
/// same 3x3 patch p of a pixel (the scale branch and the skip its centre), so branch b's output is w_b . p, its batch
/// mean w_b . m and its variance w_b^T C w_b, with m and C the mean and covariance of the channel's patches over the
/// batch. The block's output is one convolution with W = sum_b scale_b w_b (plus a per-channel constant). Backward
/// needs only the cross sums G = sum g (p - m) of the output gradient g: branch b's BatchNorm sum is w_b . G, its
/// weight gradient scale_b (G - q_b P C w_b), and the input gradient is the transposed convolution of
/// W (g - mean g) - Q (p - m) per pixel, with Q = sum_b scale_b q_b w_b w_b^T.
/// </summary>
/// <remarks>
/// The same function and gradients as the branch passes, in exact arithmetic; every branch keeps its own weights
/// and BatchNorm (statistics, running averages, gradients), and nothing is fused into what is trained or saved.
/// Each channel is visited once forward and once backward, its planes held in a <see cref="PatchStack"/> (stride 1),
/// as pixels over the images in a <see cref="SmallPlanePatches"/> (2x2 and 4x4 inputs at stride 1; at stride 2 inputs
/// of up to 16 pixels, and of up to 256 from 64 images up: the patch moments from the plane's own sums and products,
/// nothing done for the padding) or its patches in a <see cref="StridedPatches"/> (the other stride-2 inputs), each
/// of which fits the cache, where the branch passes write
/// k + 1 branch outputs and read them back about six times. On the patch stack and the small planes the moments are
/// taken of the input minus the channel's mean, and the zero padding's share (which that shift turns into -mean) is
/// added exactly from pixel counts (and on the stack rectangle sums), so large means do not cancel the variances; on
/// the strided patches every patch row is centred by its own mean before the products are taken.
/// </remarks>
internal sealed class DepthwiseMoments
{
    private PatchStack? stack;
    private StridedPatches? strided;
    private SmallPlanePatches? smallPlanes;
    private bool stridedUsed;
    private bool smallUsed;
    private double[] patchMean = [];
    private double[] patchCovariance = [];
    private double[] covarianceTimesKernels = [];

    /// <summary>The forward's branch kernels and centre taps (<see cref="BranchKernels"/>, <see cref="CentreWeights"/>), which the backward reads again.</summary>
    private double[] kernels = [];
    private double[] centres = [];
    private float[] combined = [];

    /// <summary>On small planes, the forward's input in lanes, which the backward reads again: <see cref="ownLanes"/>, or a CHWN input itself.</summary>
    private float[] inputLanes = [];

    /// <summary>The buffer an NCHW input is transposed into on small planes.</summary>
    private float[] ownLanes = [];

    /// <summary>
    /// Whether a block of this geometry has these passes: 3x3 depthwise, padding 1, stride 1 with output planes of
    /// more than one pixel, or stride 2 (<see cref="StridedPatches"/>). (On a 1x1 plane at stride 1 every branch is its
    /// centre tap times x, scale-invariant under BatchNorm, so its weight gradient is eps-small and both ways of
    /// computing it are mostly rounding; the branch passes keep that case.)
    /// </summary>
    public static bool Applies(BlockSpec spec, int outHeight, int outWidth) =>
        spec.IsDepthwise && spec.KernelSize == 3 && spec.Padding == 1 && (spec.Stride == 2 || (spec.Stride == 1 && (long)outHeight * outWidth > 1));

    /// <summary>
    /// Whether these passes are faster than the branch passes for <paramref name="batch"/> output planes of
    /// <paramref name="height"/> x <paramref name="width"/>. At stride 1: from 16 pixels (4x4) up, and 2x2 planes where
    /// <see cref="SmallPlanePatches"/> takes them (whole groups of 16 images, AVX-512). On one block (k = 4, forward +
    /// backward, one thread, Zen 5, best of 7; docs/benchmarks.md) the patch stacks take 0.45x the branch passes' time
    /// at 4x4 (128 channels, batch 64), 0.20x at 8x8, 0.72x at 14x14 (batch 16), 0.48x at 28x28 and 56x56; at 2x2 (256
    /// channels) the stacks' fixed cost per channel and pass (about 4 microseconds, more than a 2x2 channel's whole
    /// work) made a whole S0 step at 32x32 slower (18.7 ms against 14.7 ms for the nine 2x2 blocks), and
    /// <see cref="SmallPlanePatches"/>, which does no work on the padding, is what brings them in. At stride 2 it is
    /// the other way round (<c>tools/training/strided_block_bench.fsx</c>, same conditions): 0.59x-0.94x the branch
    /// passes' time for outputs of 1x1 to 8x8 (S0 at 32x32, batch 64) and for 7x7 (batch 16), but 1.12x-1.31x for
    /// 14x14 to 56x56, where the nine patch rows of a channel (nine times its output) no longer stay in the cache; so
    /// output planes of up to 64 pixels. (The stride-1 ratios predate the planes-in-a-row stack's per-position moments
    /// and input gradient, which made those blocks 0.55-0.7x as long again.)
    /// </summary>
    public static bool Pays(int stride, int batch, int height, int width) =>
        stride == 2 ? (long)height * width <= 64 : (long)height * width >= 16 || TakesSmallPlanes(stride, batch, height, width);

    /// <summary>
    /// Floating-point operations of the forward pass: per stack position (padded output position, or output position
    /// at stride 2) 54 products and 9 for the convolution, or with planes in a row at stride 1 13 lag products and 9
    /// (<see cref="PatchStack.Moments"/>); on <see cref="SmallPlanePatches"/>, those it does.
    /// </summary>
    public static double ForwardFlops(int channels, int batch, int height, int width, int stride) =>
        TakesSmallPlanes(stride, batch, height, width)
            ? channels * SmallPlanePatches.ForwardFlops(batch, height, width, stride)
            : 2.0 * (PlanesInARow(stride, height, width) ? 22 : 63) * channels * (double)batch * Positions(height, width, stride);

    /// <summary>Whether the passes run on a <see cref="PatchStack"/> with planes in a row (its per-position moments and input gradient).</summary>
    private static bool PlanesInARow(int stride, int height, int width) => stride == 1 && !StackInLanes(height, width);

    /// <summary>The stride-1 stack's layout for these planes: <see cref="LayoutOverride"/> when set, else <see cref="ImagesInLanes"/>.</summary>
    private static bool StackInLanes(int height, int width) => LayoutOverride ?? ImagesInLanes(height, width);

    /// <summary>
    /// Floating-point operations of the backward pass: per stack position 9 cross sums and 9 x 11 for the input
    /// gradient, or with planes in a row at stride 1 9 and 9 + 25 (<see cref="PatchStack.InputGradient"/>); on
    /// <see cref="SmallPlanePatches"/>, those it does.
    /// </summary>
    public static double BackwardFlops(int channels, int batch, int height, int width, int stride) =>
        TakesSmallPlanes(stride, batch, height, width)
            ? channels * SmallPlanePatches.BackwardFlops(batch, height, width, stride)
            : 2.0 * (PlanesInARow(stride, height, width) ? 43 : 108) * channels * (double)batch * Positions(height, width, stride);

    /// <summary>Stack positions per image for an input of <paramref name="height"/> x <paramref name="width"/>: the padded output plane at stride 1, the output plane at stride 2.</summary>
    private static double Positions(int height, int width, int stride) =>
        stride == 2 ? (double)(((height - 1) / 2) + 1) * (((width - 1) / 2) + 1) : (height + 2.0) * (width + 2);

    /// <summary>
    /// Whether the passes run on <see cref="SmallPlanePatches"/> for an input of this geometry: at stride 1 images in
    /// lanes where the layout moves them; at stride 2 inputs of up to 16 pixels, and larger ones from 64 images up.
    /// One block, forward + backward, k = 4, one thread, against <see cref="StridedPatches"/> (both builds at once,
    /// docs/benchmarks.md): 2x2 and 4x4 inputs 0.3-0.5x at batch 64 and 0.7x (4x4) at batch 16; 8x8 0.6-0.7x and
    /// 16x16 0.85-0.9x at batch 64, 14x14 0.75x; but 8x8 1.1x and 14x14 1.5x at batch 16, where one vector of
    /// images per pixel leaves too little work per list entry.
    /// </summary>
    internal static bool TakesSmallPlanes(int stride, int batch, int height, int width) =>
        (stride == 2 ? (long)height * width <= 16 || batch >= 64 : StackInLanes(height, width))
        && SmallPlanePatches.Supports(batch, height, width, stride);

    /// <summary>
    /// pre = sum_b BN_b(conv_b(x)) + BN_scale(s x) + BN_skip(x), the ReLU applied when <paramref name="relu"/>; every
    /// BatchNorm prepares its statistics (training mode) from the moments. Keeps the moments for <see cref="Backward"/>.
    /// On small planes (<see cref="TakesSmallPlanes"/>) the input and the output may each be CHWN, which is their lanes.
    /// </summary>
    public unsafe void Forward(Tensor x, ActivationLayout inLayout, IReadOnlyList<ConvBn> branches, ConvBn? scaleBranch, BatchNorm2d? skip, Tensor pre, ActivationLayout outLayout, bool relu, int stride)
    {
        var (n, channels, h, w) = inLayout.Dims(x);
        int k = branches.Count;
        bool inChwn = inLayout == ActivationLayout.Chwn, outChwn = outLayout == ActivationLayout.Chwn;
        smallUsed = TakesSmallPlanes(stride, n, h, w);
        if ((inChwn || outChwn) && !smallUsed)
        {
            throw new InvalidOperationException("Only the depthwise passes on small planes take or give CHWN.");
        }

        stridedUsed = stride == 2 && !smallUsed;
        var small = smallUsed ? Small(n, h, w, stride) : null;
        var (layout, patches) = stridedUsed ? (null, Strided(n, h, w)) : (small is null ? Layout(n, h, w) : null, (StridedPatches?)null);
        PatchPasses? passes = (PatchPasses?)patches ?? layout;
        int total = small?.Total ?? passes!.Total, outTotal = small?.OutTotal ?? total;
        patchMean = Resize(patchMean, channels * 9);
        patchCovariance = Resize(patchCovariance, channels * 81);
        combined = Resize(combined, channels * 9);
        covarianceTimesKernels = Resize(covarianceTimesKernels, channels * k * 9);
        var norms = Norms(branches, scaleBranch, skip);
        var means = new double[norms.Count * channels];
        var variances = new double[norms.Count * channels];
        var constants = new float[channels];
        var (_, _, outHeight, outWidth) = outLayout.Dims(pre);
        double pixels = (double)n * outHeight * outWidth;
        kernels = BranchKernels(branches, channels);
        centres = CentreWeights(scaleBranch, norms.Count, k, channels);

        // On small planes an NCHW batch moves into lanes and back in one transpose each way (whole cache lines); a CHWN
        // input or output is its lanes already. The input in lanes stays for the backward.
        ownLanes = small is null || inChwn ? ownLanes : Resize(ownLanes, channels * total);
        inputLanes = small is null ? [] : inChwn ? x.Data : ownLanes;
        float[] xLanes = inputLanes;
        bool rentsOutput = small is not null && !outChwn;
        float[] yLanes = rentsOutput ? ArrayPool<float>.Shared.Rent(channels * outTotal) : outChwn ? pre.Data : [];
        try
        {
            fixed (float* xp = x.Data)
            fixed (float* yp = pre.Data)
            fixed (float* xlp = xLanes)
            fixed (float* ylp = yLanes)
            {
                nint xAt = (nint)xp, yAt = (nint)yp, xlAt = (nint)xlp, ylAt = (nint)ylp;
                if (small is not null && !inChwn)
                {
                    small.ToLanes(xp, channels, small.Pixels, xlp);
                }

                ComputeThreads.For(channels, (c0, c1) =>
                {
                    int buffers = small is not null ? total : (2 * total) + (patches is null ? layout!.PlaneSize : 4 * patches.OutWidth);
                    float[] rented = ArrayPool<float>.Shared.Rent(buffers);
                    var sums = new double[9];
                    var products = new double[81];
                    var integral = new double[layout is not null ? (h + 1) * (w + 1) : 0];
                    var edge = new double[81];
                    try
                    {
                        fixed (float* buffersAt = rented)
                        fixed (double* sp = sums)
                        fixed (double* pp = products)
                        fixed (double* ip = integral)
                        fixed (double* mp = patchMean)
                        fixed (double* cp = patchCovariance)
                        fixed (double* cwp = covarianceTimesKernels)
                        fixed (double* kp = kernels)
                        fixed (double* centreAt = centres)
                        fixed (double* meanAt = means)
                        fixed (double* varianceAt = variances)
                        fixed (float* wp = combined)
                        {
                            float* xs = buffersAt, ys = buffersAt + total, scratch = small is not null ? buffersAt : buffersAt + (2 * total);
                            for (int c = c0; c < c1; c++)
                            {
                                double* m = mp + (c * 9), cov = cp + (c * 81);
                                if (small is not null)
                                {
                                    xs = (float*)xlAt + ((long)c * total);
                                    ys = (float*)ylAt + ((long)c * outTotal);
                                    small.PatchMoments(xs, scratch, m, cov);
                                }
                                else if (patches is not null)
                                {
                                    // Centred patch rows: their products are the covariance (the sums are rounding).
                                    patches.GatherCentred((float*)xAt, channels, c, xs, m, computeMeans: true, scratch);
                                    patches.Moments(xs, sp, pp);
                                    for (int a = 0; a < 9; a++)
                                    {
                                        for (int b = 0; b < 9; b++)
                                        {
                                            cov[(a * 9) + b] = (products[(a * 9) + b] - (sums[a] * sums[b] / pixels)) / pixels;
                                        }
                                    }
                                }
                                else
                                {
                                    // Moments of z = x - mean (zero borders), then the borders' part, which is exact: with
                                    // v_a(o) = 1 where tap a of o's window is inside the plane, p = z-patch + mean v, so
                                    // P m_a = sum z_a + mean n_a and P E[p_a p_b] = sum z_a z_b + mean (t_ab + t_ba) + mean^2 n_ab,
                                    // t_ab the sum of z_a where v_b = 1 (a rectangle of the summed planes) and n the counts.
                                    layout!.Gather((float*)xAt, channels, c, xs);
                                    float mu = (float)(layout.Sum(xs) / pixels);
                                    layout.AddAtOutputs(xs, -mu);
                                    layout.Moments(xs, sp, pp);
                                    layout.PlaneIntegral(xs, scratch, ip);
                                    layout.AddAtOutputs(xs, mu);
                                    double[] counts = layout.PairCounts;
                                    var corners = layout.PairCorners;
                                    for (int ab = 0; ab < 81; ab++)
                                    {
                                        var (plus, minusRow, minusCol, plusCorner) = corners[ab];
                                        edge[ab] = integral[plus] - integral[minusRow] - integral[minusCol] + integral[plusCorner];
                                    }

                                    for (int a = 0; a < 9; a++)
                                    {
                                        m[a] = (sums[a] + (mu * counts[a * 10])) / pixels;
                                    }

                                    double perPixel = 1.0 / pixels;
                                    for (int a = 0; a < 9; a++)
                                    {
                                        double za = sums[a] * perPixel, na = counts[a * 10] * perPixel;
                                        for (int b = a; b < 9; b++)
                                        {
                                            double zb = sums[b] * perPixel, nb = counts[b * 10] * perPixel;
                                            double zz = (products[(a * 9) + b] * perPixel) - (za * zb);
                                            double zv = (((edge[(a * 9) + b] + edge[(b * 9) + a]) * perPixel) - (za * nb)) - (zb * na);
                                            double vv = (counts[(a * 9) + b] * perPixel) - (na * nb);
                                            double value = zz + (mu * zv) + ((double)mu * mu * vv);
                                            cov[(a * 9) + b] = value;
                                            cov[(b * 9) + a] = value;
                                        }
                                    }
                                }

                                constants[c] = CombineBranches(
                                    c, channels, k, norms, m, cov, kp + (c * k * 9), centreAt, cwp + (c * k * 9), meanAt, varianceAt, wp + (c * 9));
                                float* wc = wp + (c * 9);
                                if (small is not null)
                                {
                                    small.Correlate(xs, wc, ys);
                                    Elementwise.Shift(ys, ys, outTotal, constants[c], relu);
                                    continue;
                                }

                                passes!.Correlate(xs, wc, ys);
                                if (patches is not null)
                                {
                                    // The patches were centred: W p = W (p - m) + W m.
                                    double constant = constants[c];
                                    for (int a = 0; a < 9; a++)
                                    {
                                        constant += wc[a] * m[a];
                                    }

                                    patches.ScatterOutput(ys, (float)constant, relu, (float*)yAt, channels, c);
                                }
                                else
                                {
                                    layout!.Scatter(ys, constants[c], relu, (float*)yAt, channels, c);
                                }
                            }
                        }
                    }
                    finally
                    {
                        ArrayPool<float>.Shared.Return(rented);
                    }
                }, minPerPart: 2);
                if (rentsOutput)
                {
                    small!.FromLanes(ylp, channels, small.OutPixels, yp);
                }
            }
        }
        finally
        {
            if (rentsOutput)
            {
                ArrayPool<float>.Shared.Return(yLanes);
            }
        }

        for (int j = 0; j < norms.Count; j++)
        {
            norms[j].PrepareFromMoments(means.AsSpan(j * channels, channels), variances.AsSpan(j * channels, channels), (long)pixels);
        }
    }

    /// <summary>
    /// Channel c's BatchNorm moments (mean m and covariance C of its patches) into every BatchNorm's batch mean and
    /// variance (<paramref name="means"/>, <paramref name="variances"/>, [j * channels + c]) and affine form; writes
    /// the combined kernel W = sum_j scale_j w_j to <paramref name="combinedKernel"/> and C w_b of each conv branch to
    /// <paramref name="covarianceTimesKernel"/> ([9b + a], for its weight gradient); returns the combined constant.
    /// The scale branch and the skip see the patch's centre only (times the scale weight, or 1).
    /// </summary>
    private static unsafe float CombineBranches(
        int c, int channels, int k, List<BatchNorm2d> norms, double* m, double* cov, double* kernels, double* centres,
        double* covarianceTimesKernel, double* means, double* variances, float* combinedKernel)
    {
        var wc = stackalloc double[9];
        for (int a = 0; a < 9; a++)
        {
            wc[a] = 0;
        }

        double constant = 0;
        for (int j = 0; j < norms.Count; j++)
        {
            double mean = 0, variance = 0;
            double* wj = kernels + (j * 9);
            if (j < k)
            {
                double* cw = covarianceTimesKernel + (j * 9);
                for (int a = 0; a < 9; a++)
                {
                    double* row = cov + (a * 9);
                    double dot = (row[0] * wj[0]) + (row[1] * wj[1]) + (row[2] * wj[2]) + (row[3] * wj[3]) + (row[4] * wj[4])
                        + (row[5] * wj[5]) + (row[6] * wj[6]) + (row[7] * wj[7]) + (row[8] * wj[8]);
                    cw[a] = dot;
                    mean += wj[a] * m[a];
                    variance += wj[a] * dot;
                }
            }
            else
            {
                double centre = centres[((j - k) * channels) + c];
                mean = centre * m[4];
                variance = centre * centre * cov[40];
            }

            variance = Math.Max(0.0, variance);
            means[(j * channels) + c] = mean;
            variances[(j * channels) + c] = variance;
            var (scale, shift, _) = norms[j].TrainingAffine(c, mean, variance);
            if (j < k)
            {
                for (int a = 0; a < 9; a++)
                {
                    wc[a] += scale * wj[a];
                }
            }
            else
            {
                wc[4] += scale * centres[((j - k) * channels) + c];
            }

            constant += shift;
        }

        for (int a = 0; a < 9; a++)
        {
            combinedKernel[a] = (float)wc[a];
        }

        return (float)constant;
    }

    /// <summary>
    /// From <paramref name="gradPre"/> (dL/dpre; read, not changed) and the block's input <paramref name="x"/> (the
    /// Forward's), accumulates every branch's weight gradient and every BatchNorm's parameter gradients, and writes
    /// the input gradient to <paramref name="gradInput"/> when given.
    /// </summary>
    public unsafe void Backward(Tensor x, ActivationLayout inLayout, Tensor gradPre, ActivationLayout outLayout, IReadOnlyList<ConvBn> branches, ConvBn? scaleBranch, BatchNorm2d? skip, Tensor? gradInput)
    {
        var (n, channels, h, w) = inLayout.Dims(x);
        int k = branches.Count;
        bool inChwn = inLayout == ActivationLayout.Chwn, outChwn = outLayout == ActivationLayout.Chwn;
        var small = smallUsed ? smallPlanes : null;
        var (layout, patches) = stridedUsed ? (null, strided) : (smallUsed ? null : stack, (StridedPatches?)null);
        bool matches = stridedUsed
            ? patches is not null && patches.Batch == n && patches.Height == h && patches.Width == w && gradPre.HasShape(n, channels, patches.OutHeight, patches.OutWidth)
            : smallUsed
                ? small is not null && small.Batch == n && small.Height == h && small.Width == w && gradPre.HasShape(outLayout.Shape(n, channels, small.OutHeight, small.OutWidth))
                : layout is not null && layout.Batch == n && layout.Height == h && layout.Width == w && gradPre.HasShape(x.Shape);
        if (!matches || patchMean.Length != channels * 9 || kernels.Length != channels * k * 9
            || (smallUsed && inputLanes.Length != channels * small!.Total) || ((inChwn || outChwn) && !smallUsed))
        {
            throw new InvalidOperationException("DepthwiseMoments.Backward needs the Forward of the same batch first.");
        }

        PatchPasses? passes = (PatchPasses?)patches ?? layout;
        int total = small?.Total ?? passes!.Total, outTotal = small?.OutTotal ?? total;
        var norms = Norms(branches, scaleBranch, skip);
        int count = norms.Count;
        var sumDy = new double[channels];
        var sumDyX = new double[count * channels];
        var (_, _, outHeight, outWidth) = outLayout.Dims(gradPre);
        double pixels = (double)n * outHeight * outWidth;
        var scaleAndInvStd = new double[2 * count * channels];
        for (int j = 0; j < count; j++)
        {
            var scale = norms[j].Scale;
            for (int c = 0; c < channels; c++)
            {
                scaleAndInvStd[(((j * channels) + c) * 2) + 0] = scale[c];
                scaleAndInvStd[(((j * channels) + c) * 2) + 1] = norms[j].InvStd(c);
            }
        }

        // [(c * k + b) * 9 + a]: the conv branches' weight gradients, added to theirs after the pass.
        var kernelGrads = new float[channels * k * 9];
        float[] scaleGrad = scaleBranch?.Conv.Weight.EnsureGrad().Data ?? [];
        float[] xLanes = inputLanes;
        // A CHWN gradient is its lanes.
        bool rentsGradient = small is not null && !outChwn, rentsInputGradient = small is not null && gradInput is not null && !inChwn;
        float[] gLanes = rentsGradient ? ArrayPool<float>.Shared.Rent(channels * outTotal) : outChwn ? gradPre.Data : [];
        float[] dxLanes = rentsInputGradient ? ArrayPool<float>.Shared.Rent(channels * total) : inChwn && gradInput is not null ? gradInput.Data : [];
        try
        {
            fixed (float* xp = x.Data)
            fixed (float* gp = gradPre.Data)
            fixed (float* dxp = gradInput is null ? null : gradInput.Data)
            fixed (float* xlp = xLanes)
            fixed (float* glp = gLanes)
            fixed (float* dxlp = dxLanes)
            {
                nint xAt = (nint)xp, gAt = (nint)gp, dxAt = (nint)dxp, xlAt = (nint)xlp, glAt = (nint)glp, dxlAt = (nint)dxlp;
                if (rentsGradient)
                {
                    small!.ToLanes(gp, channels, small.OutPixels, glp);
                }

                ComputeThreads.For(channels, (c0, c1) =>
                {
                    float[] rented = ArrayPool<float>.Shared.Rent(small is not null ? small.MapsLength : (3 * total) + (patches is null ? 0 : 4 * patches.OutWidth));
                    try
                    {
                        fixed (float* buffers = rented)
                        fixed (double* mp = patchMean)
                        fixed (double* cp = patchCovariance)
                        fixed (double* cwp = covarianceTimesKernels)
                        fixed (double* kp = kernels)
                        fixed (double* centreAt = centres)
                        fixed (double* scaleAt = scaleAndInvStd)
                        fixed (double* sumDyXAt = sumDyX)
                        fixed (float* gradAt = kernelGrads)
                        fixed (float* wp = combined)
                        {
                            float* xs = buffers, gs = buffers + total, dxs = buffers + (2 * total), scratch = small is not null ? buffers : buffers + (3 * total);
                            var cross = stackalloc double[9];
                            var centred = stackalloc double[9];
                            var q = stackalloc double[81];
                            var qf = stackalloc float[81];
                            var kf = stackalloc float[9];
                            double sumG;
                            for (int c = c0; c < c1; c++)
                            {
                                if (small is not null)
                                {
                                    xs = (float*)xlAt + ((long)c * total);
                                    gs = (float*)glAt + ((long)c * outTotal);
                                    dxs = (float*)dxlAt + ((long)c * total);
                                    small.Cross(gs, xs, &sumG, cross);
                                }
                                else if (patches is not null)
                                {
                                    patches.GatherCentred((float*)xAt, channels, c, xs, mp + (c * 9), computeMeans: false, scratch);
                                    patches.GatherOutput((float*)gAt, channels, c, gs);
                                    patches.Cross(gs, xs, &sumG, cross);
                                }
                                else
                                {
                                    layout!.Gather((float*)xAt, channels, c, xs);
                                    layout.Gather((float*)gAt, channels, c, gs);
                                    layout.Cross(gs, xs, &sumG, cross);
                                }

                                sumDy[c] = sumG;

                                // G = sum g (p - m): the strided patches are centred already (their m counts as 0).
                                double* m = mp + (c * 9);
                                double mScale = patches is null ? 1.0 : 0.0;
                                for (int a = 0; a < 9; a++)
                                {
                                    centred[a] = cross[a] - (mScale * m[a] * sumG);
                                }

                                double scaleGradient = BranchGradients(
                                    c, channels, k, count, pixels, norms, centred, cp + (c * 81), kp + (c * k * 9), centreAt,
                                    cwp + (c * k * 9), scaleAt, sumDyXAt, gradAt + (c * k * 9), q, scaleBranch is not null);
                                if (scaleBranch is not null)
                                {
                                    scaleGrad[c] += (float)scaleGradient;
                                }

                                if (dxAt == 0)
                                {
                                    continue;
                                }

                                double meanG = sumG / pixels;
                                float* wc = wp + (c * 9);
                                for (int a = 0; a < 9; a++)
                                {
                                    double qm = 0;
                                    for (int b = 0; b < 9; b++)
                                    {
                                        qm += q[(a * 9) + b] * mScale * m[b];
                                        qf[(a * 9) + b] = (float)q[(a * 9) + b];
                                    }

                                    kf[a] = (float)(qm - (wc[a] * meanG));
                                }

                                if (small is not null)
                                {
                                    small.InputGradient(gs, xs, wc, qf, kf, scratch, dxs);
                                    continue;
                                }

                                passes!.InputGradient(gs, xs, wc, qf, kf, dxs);
                                if (patches is not null)
                                {
                                    patches.ScatterInputGradient(dxs, (float*)dxAt, channels, c, scratch);
                                }
                                else
                                {
                                    layout!.Scatter(dxs, 0f, relu: false, (float*)dxAt, channels, c);
                                }
                            }
                        }
                    }
                    finally
                    {
                        ArrayPool<float>.Shared.Return(rented);
                    }
                }, minPerPart: 2);
                if (rentsInputGradient)
                {
                    small!.FromLanes(dxlp, channels, small.Pixels, dxp);
                }
            }
        }
        finally
        {
            if (rentsGradient)
            {
                ArrayPool<float>.Shared.Return(gLanes);
            }

            if (rentsInputGradient)
            {
                ArrayPool<float>.Shared.Return(dxLanes);
            }
        }

        for (int b = 0; b < k; b++)
        {
            float[] grad = branches[b].Conv.Weight.EnsureGrad().Data;
            for (int c = 0; c < channels; c++)
            {
                for (int a = 0; a < 9; a++)
                {
                    grad[(c * 9) + a] += kernelGrads[(((c * k) + b) * 9) + a];
                }
            }
        }

        for (int j = 0; j < count; j++)
        {
            norms[j].PrepareGradient(sumDy, sumDyX.AsSpan(j * channels, channels));
        }
    }

    /// <summary>
    /// Channel c's share of every BatchNorm's sum (<paramref name="sumDyX"/>, [j * channels + c]: w_j . G) and of the
    /// conv branches' weight gradients (scale_b (G - q_b P C w_b), C w_b from the forward pass, written to
    /// <paramref name="kernelGrads"/> [9b + a]); builds Q = sum_j scale_j q_j w_j w_j^T in <paramref name="q"/> (9 x 9)
    /// and returns the scale branch's weight gradient (0 without one).
    /// </summary>
    private static unsafe double BranchGradients(
        int c, int channels, int k, int count, double pixels, List<BatchNorm2d> norms, double* centred, double* cov, double* kernels,
        double* centres, double* covarianceTimesKernel, double* scaleAndInvStd, double* sumDyX, float* kernelGrads, double* q, bool hasScaleBranch)
    {
        // coefficient_j = scale_j q_j; Q is symmetric: its upper triangle, copied to the lower.
        var coefficient = stackalloc double[count];
        double scaleGradient = 0, centreQ = 0;
        for (int j = 0; j < count; j++)
        {
            double* wj = kernels + (j * 9);
            double dot = 0;
            double centre = j < k ? 0 : centres[((j - k) * channels) + c];
            if (j < k)
            {
                for (int a = 0; a < 9; a++)
                {
                    dot += wj[a] * centred[a];
                }
            }
            else
            {
                dot = centre * centred[4];
            }

            sumDyX[(j * channels) + c] = dot;
            double scale = scaleAndInvStd[(((j * channels) + c) * 2) + 0], inv = scaleAndInvStd[(((j * channels) + c) * 2) + 1];
            double qj = dot * inv * inv / pixels;
            coefficient[j] = scale * qj;
            if (j < k)
            {
                double* cw = covarianceTimesKernel + (j * 9);
                float* grad = kernelGrads + (j * 9);
                for (int a = 0; a < 9; a++)
                {
                    grad[a] = (float)(scale * (centred[a] - (qj * pixels * cw[a])));
                }

                continue;
            }

            if (hasScaleBranch && j == k)
            {
                // BatchNorm is scale invariant: the direct difference is eps-small, the identity exact.
                scaleGradient = norms[j].ScaleInvariantWeightGradient(c, dot, centre)
                    ?? (scale * (centred[4] - (qj * pixels * cov[40] * centre)));
            }

            centreQ += scale * qj * centre * centre;
        }

        for (int a = 0; a < 9; a++)
        {
            for (int b = a; b < 9; b++)
            {
                double sum = 0;
                for (int j = 0; j < k; j++)
                {
                    sum += coefficient[j] * kernels[(j * 9) + a] * kernels[(j * 9) + b];
                }

                if (a == 4 && b == 4)
                {
                    sum += centreQ;
                }

                q[(a * 9) + b] = q[(b * 9) + a] = sum;
            }
        }

        return scaleGradient;
    }

    /// <summary>Drops the saved moments.</summary>
    public void Release()
    {
        (stack, strided, smallPlanes) = (null, null, null);
        (patchMean, patchCovariance, combined, inputLanes, ownLanes, kernels, centres) = ([], [], [], [], [], [], []);
    }

    /// <summary>The BatchNorms in the order of the moments: the k conv branches, the scale branch, the skip.</summary>
    private static List<BatchNorm2d> Norms(IReadOnlyList<ConvBn> branches, ConvBn? scaleBranch, BatchNorm2d? skip)
    {
        var norms = branches.Select(b => b.Bn).ToList();
        if (scaleBranch is not null)
        {
            norms.Add(scaleBranch.Bn);
        }

        if (skip is not null)
        {
            norms.Add(skip);
        }

        return norms;
    }

    /// <summary>[(c * k + b) * 9 + a]: conv branch b's 3x3 kernel of channel c, tap a, in double.</summary>
    private static double[] BranchKernels(IReadOnlyList<ConvBn> branches, int channels)
    {
        int k = branches.Count;
        var kernels = new double[channels * k * 9];
        for (int b = 0; b < k; b++)
        {
            float[] weights = branches[b].Conv.Weight.Value.Data;
            for (int c = 0; c < channels; c++)
            {
                for (int a = 0; a < 9; a++)
                {
                    kernels[(((c * k) + b) * 9) + a] = weights[(c * 9) + a];
                }
            }
        }

        return kernels;
    }

    /// <summary>
    /// [(j - k) * channels + c]: the centre tap through which BatchNorm j >= k (the scale branch, then the skip) sees
    /// channel c's patch: the scale weight, or 1.
    /// </summary>
    private static double[] CentreWeights(ConvBn? scaleBranch, int count, int k, int channels)
    {
        var centres = new double[(count - k) * channels];
        for (int j = k; j < count; j++)
        {
            for (int c = 0; c < channels; c++)
            {
                centres[((j - k) * channels) + c] = j == k && scaleBranch is not null ? scaleBranch.Conv.Weight.Value.Data[c] : 1.0;
            }
        }

        return centres;
    }

    /// <summary>Tests: true or false forces the images-in-lanes or the planes-in-a-row layout; null lets <see cref="ImagesInLanes"/> decide.</summary>
    internal static bool? LayoutOverride { get; set; }

    /// <summary>
    /// The layout for planes of <paramref name="height"/> x <paramref name="width"/>: images in lanes up to 16 pixels
    /// (the branch passes' time at 2x2: 0.61x against 1.16x for planes in a row; 4x4, batch 256: 0.45x against 0.78x;
    /// 8x8: 0.28x against 0.20x; 14x14: 1.71x against 0.72x).
    /// </summary>
    public static bool ImagesInLanes(int height, int width) => (long)height * width <= 16;

    private StridedPatches Strided(int n, int h, int w)
    {
        if (strided is null || strided.Batch != n || strided.Height != h || strided.Width != w)
        {
            strided = new StridedPatches(n, h, w);
        }

        return strided;
    }

    private SmallPlanePatches Small(int n, int h, int w, int stride)
    {
        if (smallPlanes is null || smallPlanes.Batch != n || smallPlanes.Height != h || smallPlanes.Width != w || smallPlanes.Stride != stride)
        {
            smallPlanes = new SmallPlanePatches(n, h, w, stride);
        }

        return smallPlanes;
    }

    private PatchStack Layout(int n, int h, int w)
    {
        bool lanes = StackInLanes(h, w);
        if (stack is null || stack.Batch != n || stack.Height != h || stack.Width != w || stack.ImagesInLanes != lanes)
        {
            stack = new PatchStack(n, h, w, lanes);
        }

        return stack;
    }

    private static T[] Resize<T>(T[] array, int length) => array.Length == length ? array : new T[length];
}
