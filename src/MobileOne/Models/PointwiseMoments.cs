using MobileOne.Kernels;
using MobileOne.Kernels.Gemm;
using MobileOne.Nn;
using MobileOne.Tensors;

namespace MobileOne.Models;

/// <summary>
/// The training passes of a block of k 1x1 conv+BN branches (and a BN skip) over one input, computed from the input's
/// moments instead of the k branch outputs. A 1x1 branch's output is W_b x per pixel, so its batch mean is W_b m and
/// its variance the diagonal of W_b S W_b^T / P, with m the input's channel means, Xc = x - m and S = Xc Xc^T over
/// the P pixels of the batch. The block's output is then one product, (sum_b diag(scale_b) W_b + diag(scale_skip)) Xc
/// + sum of the BN biases, and the backward pass needs only A = G Xc^T for the centred output gradient G: the BN
/// gradient sums are the rows of A against W_b, each weight gradient is diag(scale_b) (A - diag(q_b) W_b S), and the
/// input gradient is W_eff^T G - M Xc with M = sum_b W_b^T diag(scale_b q_b) W_b (+ the skip's diagonal).
/// </summary>
/// <remarks>
/// This is the same function and the same gradients as the k branch passes, in exact arithmetic; every branch keeps
/// its own weights and BatchNorm (statistics, running averages, gradients); nothing is fused into the saved model. It
/// replaces 3k products of size Cout x Cin x P with about 4 + Cin / Cout, plus 2k small Cout x Cin x Cin ones, and
/// no branch output is written or read: worth it when P is large against Cin (<see cref="Pays"/>), as at 224x224.
/// </remarks>
internal sealed class PointwiseMoments
{
    private readonly ActivationBuffer centred = new();
    private readonly ActivationBuffer scratch = new();
    private readonly ActivationBuffer outputRows = new();
    private readonly ActivationBuffer inputRows = new();
    private double[] inputMean = [];
    private double[] inputVariance = [];
    private long pixels;
    private int savedBatch;
    private int savedPlane;
    private int savedInChannels;

    /// <summary>Whether the moment passes (<see cref="ForwardFlops"/> + <see cref="BackwardFlops"/>) cost less than 0.7 of the branch passes (3k products of Cout x Cin x P) for this block and batch.</summary>
    public static bool Pays(int inChannels, int outChannels, int branches, long pixels)
    {
        double branchPasses = 3.0 * 2.0 * branches * outChannels * inChannels * pixels;
        return ForwardFlops(inChannels, outChannels, branches, pixels) + BackwardFlops(inChannels, outChannels, branches, pixels) < 0.7 * branchPasses;
    }

    /// <summary>Floating-point operations of the forward products (S, the k products W_b S, W_eff Xc): profiles and <see cref="Pays"/>.</summary>
    public static double ForwardFlops(int inChannels, int outChannels, int branches, long pixels) =>
        2.0 * (((double)inChannels * inChannels * pixels) + ((double)branches * outChannels * inChannels * inChannels) + ((double)outChannels * inChannels * pixels));

    /// <summary>Floating-point operations of the backward products (A, the k products for M, W_eff^T G, M Xc): profiles and <see cref="Pays"/>.</summary>
    public static double BackwardFlops(int inChannels, int outChannels, int branches, long pixels) =>
        2.0 * (((double)outChannels * inChannels * pixels) + ((double)branches * outChannels * inChannels * inChannels) + ((double)(outChannels + inChannels) * inChannels * pixels));

    /// <summary>
    /// pre = sum_b BN_b(W_b x) + BN_skip(x), the ReLU applied when <paramref name="relu"/>; every BatchNorm prepares
    /// its statistics (training mode) from the moments. Keeps Xc, S and W_eff for <see cref="Backward"/>. The input
    /// and the output may each be NCHW or CHWN (<see cref="ActivationLayout"/>).
    /// </summary>
    public unsafe void Forward(Tensor x, ActivationLayout inLayout, IReadOnlyList<ConvBn> branches, BatchNorm2d? skip, Tensor pre, ActivationLayout outLayout, bool relu)
    {
        var (n, cin, height, width) = inLayout.Dims(x);
        int plane = height * width, cout = outLayout.Dims(pre).Channels, k = branches.Count;
        pixels = (long)n * plane;
        inputMean = inputMean.Length == cin ? inputMean : new double[cin];
        inputVariance = inputVariance.Length == cin ? inputVariance : new double[cin];
        // Xc is kept as dense channel rows in CHWN order (each row a channel's pixels, images innermost), so small
        // planes never fragment the products and a CHWN input or output needs no transpose; the products do not
        // depend on the order of the pixels within a row.
        float[] xc = centred.GetFlat((long)cin * pixels);
        bool outChwn = outLayout == ActivationLayout.Chwn;
        float[] rows = outChwn ? [] : outputRows.GetFlat((long)cout * pixels);
        (savedBatch, savedPlane, savedInChannels) = (n, plane, cin);
        float[] buffers = scratch.GetFlat(BufferSize(cin, cout, k));
        var negMean = new float[cin];
        var bias = new float[cout];
        var mean = new double[cout];
        var variance = new double[cout];
        fixed (float* xp = x.Data)
        fixed (float* xcp = xc)
        fixed (float* rp = rows)
        fixed (float* bp = buffers)
        fixed (float* nmp = negMean)
        fixed (double* mp = inputMean)
        fixed (double* vp = inputVariance)
        fixed (float* biasp = bias)
        fixed (float* prep = pre.Data)
        {
            bool inChwn = inLayout == ActivationLayout.Chwn;
            float* xRows = inChwn ? xp : xcp;
            if (!inChwn)
            {
                MatrixTranspose.Transpose(xp, n, cin * plane, xcp);
            }

            BatchNormTraining.Statistics(xRows, 1, cin, (int)pixels, (long)cin * pixels, mp, vp);
            for (int i = 0; i < cin; i++)
            {
                negMean[i] = (float)-inputMean[i];
            }

            ShiftRows(xRows, xcp, cin, pixels, nmp, relu: false);
            var xcView = MatrixView.RowMajor(xcp, cin, (int)pixels, pixels);
            float* s = Sigma(bp), weff = EffectiveWeight(bp, cin), products = Products(bp, cin, cout);
            PackedSgemm.MultiplyGram(xcView, MatrixView.RowMajor(s, cin, cin, cin));

            // Each branch: B_b = W_b S; mean W_b m and variance rowdot(W_b, B_b) / P prepare its BatchNorm.
            new Span<float>(weff, cout * cin).Clear();
            for (int b = 0; b < k; b++)
            {
                fixed (float* w = branches[b].Conv.Weight.Value.Data)
                {
                    float* bb = products + ((long)b * cout * cin);
                    PackedSgemm.Multiply(MatrixView.RowMajor(w, cout, cin, cin), MatrixView.RowMajor(s, cin, cin, cin), MatrixView.RowMajor(bb, cout, cin, cin), accumulate: false);
                    nint wAt = (nint)w, bbAt = (nint)bb, meanAt = (nint)mp;
                    ComputeThreads.For(cout, (c0, c1) =>
                    {
                        for (int c = c0; c < c1; c++)
                        {
                            float* wr = (float*)wAt + ((long)c * cin);
                            mean[c] = Elementwise.DotDouble(wr, (double*)meanAt, cin);
                            variance[c] = Math.Max(0.0, Elementwise.DotDouble(wr, (float*)bbAt + ((long)c * cin), cin) / pixels);
                        }
                    }, minPerPart: 16);

                    var bn = branches[b].Bn;
                    bn.PrepareFromMoments(mean, variance, pixels);
                    float[] scale = bn.Scale.ToArray(), beta = bn.Bias.Value.Data;
                    nint weffAt = (nint)weff;
                    ComputeThreads.For(cout, (c0, c1) =>
                    {
                        for (int c = c0; c < c1; c++)
                        {
                            Elementwise.AddScaled((float*)weffAt + ((long)c * cin), (float*)wAt + ((long)c * cin), scale[c], cin);
                        }
                    }, minPerPart: 16);
                    for (int c = 0; c < cout; c++)
                    {
                        bias[c] += beta[c];
                    }
                }
            }

            if (skip is not null)
            {
                // The skip normalizes x itself: its moments are the input's.
                skip.PrepareFromMoments(inputMean, inputVariance, pixels);
                var scale = skip.Scale;
                float[] beta = skip.Bias.Value.Data;
                for (int c = 0; c < cout; c++)
                {
                    weff[((long)c * cin) + c] += scale[c];
                    bias[c] += beta[c];
                }
            }

            float* outRows = outChwn ? prep : rp;
            PackedSgemm.Multiply(MatrixView.RowMajor(weff, cout, cin, cin), xcView, MatrixView.RowMajor(outRows, cout, (int)pixels, pixels), accumulate: false);
            ShiftRows(outRows, outRows, cout, pixels, biasp, relu);
            if (!outChwn)
            {
                MatrixTranspose.Transpose(rp, cout * plane, n, prep);
            }
        }
    }

    /// <summary>
    /// From <paramref name="gradPre"/> (dL/dpre in <paramref name="outLayout"/>; read, not changed) accumulates every
    /// branch's weight gradient and every BatchNorm's parameter gradients, and writes the input gradient to
    /// <paramref name="gradInput"/> (in <paramref name="inLayout"/>) when given.
    /// </summary>
    public unsafe void Backward(Tensor gradPre, ActivationLayout outLayout, IReadOnlyList<ConvBn> branches, BatchNorm2d? skip, Tensor? gradInput, ActivationLayout inLayout)
    {
        var (gradImages, cout, gradHeight, gradWidth) = outLayout.Dims(gradPre);
        int n = savedBatch, plane = savedPlane, k = branches.Count;
        if (n == 0 || gradImages != n || gradHeight * gradWidth != plane)
        {
            throw new InvalidOperationException("PointwiseMoments.Backward needs the Forward of the same batch first.");
        }

        int cin = savedInChannels;
        float[] xc = centred.GetFlat((long)cin * pixels);
        float[] rows = outputRows.GetFlat((long)cout * pixels);
        bool inChwn = inLayout == ActivationLayout.Chwn;
        float[] dxRows = inChwn ? [] : inputRows.GetFlat((long)cin * pixels);
        float[] buffers = scratch.GetFlat(BufferSize(cin, cout, k));
        var gradMean = new double[cout];
        var gradVariance = new double[cout];
        var sumDy = new double[cout];
        var sumDyX = new double[cout];
        var negGradMean = new float[cout];
        fixed (float* gp = gradPre.Data)
        fixed (float* xcp = xc)
        fixed (float* grp = rows)
        fixed (float* dxrp = dxRows)
        fixed (float* bp = buffers)
        fixed (float* ngp = negGradMean)
        fixed (double* gmp = gradMean)
        fixed (double* gvp = gradVariance)
        {
            bool outChwn = outLayout == ActivationLayout.Chwn;
            float* gRows = outChwn ? gp : grp;
            if (!outChwn)
            {
                MatrixTranspose.Transpose(gp, n, cout * plane, grp);
            }

            BatchNormTraining.Statistics(gRows, 1, cout, (int)pixels, (long)cout * pixels, gmp, gvp);
            for (int c = 0; c < cout; c++)
            {
                sumDy[c] = gradMean[c] * pixels;
                negGradMean[c] = (float)-gradMean[c];
            }

            ShiftRows(gRows, grp, cout, pixels, ngp, relu: false);
            var gView = MatrixView.RowMajor(grp, cout, (int)pixels, pixels);
            var xcView = MatrixView.RowMajor(xcp, cin, (int)pixels, pixels);
            float* s = Sigma(bp), weff = EffectiveWeight(bp, cin), products = Products(bp, cin, cout), a = Cross(bp, cin, cout, k), m = Correction(bp, cin, cout, k);
            PackedSgemm.Multiply(gView, xcView.Transposed(), MatrixView.RowMajor(a, cout, cin, cin), accumulate: false);
            new Span<float>(m, cin * cin).Clear();
            float* coefficient = Coefficients(bp, cin, cout, k);
            for (int b = 0; b < k; b++)
            {
                var bn = branches[b].Bn;
                float[] w = branches[b].Conv.Weight.Value.Data, grad = branches[b].Conv.Weight.EnsureGrad().Data;
                fixed (float* wp = w)
                fixed (float* gwp = grad)
                {
                    nint wAt = (nint)wp, gradAt = (nint)gwp, bbAt = (nint)(products + ((long)b * cout * cin)), aAt = (nint)a, coefAt = (nint)coefficient;
                    ComputeThreads.For(cout, (c0, c1) =>
                    {
                        for (int c = c0; c < c1; c++)
                        {
                            sumDyX[c] = Elementwise.DotDouble((float*)wAt + ((long)c * cin), (float*)aAt + ((long)c * cin), cin);
                        }
                    }, minPerPart: 16);

                    bn.PrepareGradient(sumDy, sumDyX);
                    float[] scale = bn.Scale.ToArray();
                    ComputeThreads.For(cout, (c0, c1) =>
                    {
                        for (int c = c0; c < c1; c++)
                        {
                            // q = dgamma * invStd / P: the part of the gradient along the normalized output.
                            // The weight gradient is scale (A - q B_b); the correction's coefficient scale q W_b.
                            double inv = bn.InvStd(c);
                            float q = (float)(sumDyX[c] * inv * inv / pixels);
                            float sc = scale[c];
                            long row = (long)c * cin;
                            Elementwise.AddScaled((float*)gradAt + row, (float*)aAt + row, sc, cin);
                            Elementwise.AddScaled((float*)gradAt + row, (float*)bbAt + row, -(sc * q), cin);
                            Elementwise.ScaleShift((float*)wAt + row, (float*)coefAt + row, cin, sc * q, -0f);
                        }
                    }, minPerPart: 16);

                    // M += (diag(scale q) W_b)^T W_b.
                    PackedSgemm.Multiply(MatrixView.RowMajor(coefficient, cout, cin, cin).Transposed(), MatrixView.RowMajor(wp, cout, cin, cin), MatrixView.RowMajor(m, cin, cin, cin), accumulate: true);
                }
            }

            if (skip is not null)
            {
                for (int c = 0; c < cout; c++)
                {
                    sumDyX[c] = a[((long)c * cin) + c];
                }

                skip.PrepareGradient(sumDy, sumDyX);
                var scale = skip.Scale;
                for (int c = 0; c < cout; c++)
                {
                    double inv = skip.InvStd(c);
                    m[((long)c * cin) + c] += scale[c] * (float)(sumDyX[c] * inv * inv / pixels);
                }
            }

            if (gradInput is not null)
            {
                fixed (float* dxp = gradInput.Data)
                {
                    var dxView = MatrixView.RowMajor(inChwn ? dxp : dxrp, cin, (int)pixels, pixels);
                    for (long i = 0; i < (long)cin * cin; i++)
                    {
                        m[i] = -m[i];
                    }

                    PackedSgemm.Multiply(MatrixView.RowMajor(weff, cout, cin, cin).Transposed(), gView, dxView, accumulate: false);
                    PackedSgemm.Multiply(MatrixView.RowMajor(m, cin, cin, cin), xcView, dxView, accumulate: true);
                    if (!inChwn)
                    {
                        MatrixTranspose.Transpose(dxrp, cin * plane, n, dxp);
                    }
                }
            }
        }
    }

    /// <summary>Drops the saved centred input and the scratch.</summary>
    public void Release()
    {
        centred.Release();
        scratch.Release();
        outputRows.Release();
        inputRows.Release();
        (savedBatch, savedPlane, savedInChannels) = (0, 0, 0);
    }

    /// <summary>to[c][j] = from[c][j] + add[c] over <paramref name="channels"/> dense rows of <paramref name="length"/> floats (in place when to is from), with the ReLU when asked.</summary>
    private static unsafe void ShiftRows(float* from, float* to, int channels, long length, float* add, bool relu)
    {
        nint src = (nint)from, dst = (nint)to, shift = (nint)add;
        ComputeThreads.For(channels, (c0, c1) =>
        {
            for (int c = c0; c < c1; c++)
            {
                Elementwise.ShiftRuns((float*)src + (c * length), 0, (float*)dst + (c * length), 0, 1, (int)length, ((float*)shift)[c], relu);
            }
        });
    }

    // Scratch layout: S [cin x cin] | W_eff [cout x cin] | B_b [k x cout x cin] | A [cout x cin] | M [cin x cin] | diag(scale q) W_b [cout x cin].
    private static long BufferSize(int cin, int cout, int k) => (2L * cin * cin) + ((3L + k) * cout * cin);

    private static unsafe float* Sigma(float* b) => b;

    private static unsafe float* EffectiveWeight(float* b, int cin) => b + ((long)cin * cin);

    private static unsafe float* Products(float* b, int cin, int cout) => EffectiveWeight(b, cin) + ((long)cout * cin);

    private static unsafe float* Cross(float* b, int cin, int cout, int k) => Products(b, cin, cout) + ((long)k * cout * cin);

    private static unsafe float* Correction(float* b, int cin, int cout, int k) => Cross(b, cin, cout, k) + ((long)cout * cin);

    private static unsafe float* Coefficients(float* b, int cin, int cout, int k) => Correction(b, cin, cout, k) + ((long)cin * cin);
}
