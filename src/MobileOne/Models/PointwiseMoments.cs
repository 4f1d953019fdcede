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
    private double[] inputMean = [];
    private double[] inputVariance = [];
    private long pixels;
    private Tensor? savedCentred;

    /// <summary>Whether the moment passes cost less than 0.7 of the branch passes for this block and batch.</summary>
    public static bool Pays(int inChannels, int outChannels, int branches, long pixels)
    {
        double cin = inChannels, cout = outChannels;
        double branchPasses = 3.0 * branches * cout * cin * pixels;
        double momentPasses = (cin * cin * pixels) + (2 * cout * cin * pixels) + ((cout + cin) * cin * pixels) + (2.0 * branches * cout * cin * cin);
        return momentPasses < 0.7 * branchPasses;
    }

    /// <summary>Floating-point operations of the forward products (S, the k products W_b S, W_eff Xc), for profiles.</summary>
    public static double ForwardFlops(int inChannels, int outChannels, int branches, long pixels) =>
        2.0 * (((double)inChannels * inChannels * pixels) + ((double)branches * outChannels * inChannels * inChannels) + ((double)outChannels * inChannels * pixels));

    /// <summary>Floating-point operations of the backward products (A, the k products for M, W_eff^T G, M Xc), for profiles.</summary>
    public static double BackwardFlops(int inChannels, int outChannels, int branches, long pixels) =>
        2.0 * (((double)outChannels * inChannels * pixels) + ((double)branches * outChannels * inChannels * inChannels) + ((double)(outChannels + inChannels) * inChannels * pixels));

    /// <summary>
    /// pre = sum_b BN_b(W_b x) + BN_skip(x), the ReLU applied when <paramref name="relu"/>; every BatchNorm prepares
    /// its statistics (training mode) from the moments. Keeps Xc, S and W_eff for <see cref="Backward"/>.
    /// </summary>
    public unsafe void Forward(Tensor x, IReadOnlyList<ConvBn> branches, BatchNorm2d? skip, Tensor pre, bool relu)
    {
        int n = x.Dim(0), cin = x.Dim(1), plane = x.Dim(2) * x.Dim(3), cout = pre.Dim(1), k = branches.Count;
        pixels = (long)n * plane;
        inputMean = inputMean.Length == cin ? inputMean : new double[cin];
        inputVariance = inputVariance.Length == cin ? inputVariance : new double[cin];
        var xc = centred.Get(x.Shape);
        savedCentred = xc;
        float[] buffers = scratch.GetFlat(BufferSize(cin, cout, k));
        var ones = new float[Math.Max(cin, cout)];
        Array.Fill(ones, 1f);
        var negMean = new float[cin];
        var bias = new float[cout];
        var mean = new double[cout];
        var variance = new double[cout];
        fixed (float* xp = x.Data)
        fixed (float* xcp = xc.Data)
        fixed (float* bp = buffers)
        fixed (float* op = ones)
        fixed (float* nmp = negMean)
        fixed (double* mp = inputMean)
        fixed (double* vp = inputVariance)
        fixed (float* biasp = bias)
        fixed (float* prep = pre.Data)
        {
            BatchNormTraining.Statistics(xp, n, cin, plane, (long)cin * plane, mp, vp);
            for (int i = 0; i < cin; i++)
            {
                negMean[i] = (float)-inputMean[i];
            }

            BatchNormTraining.Affine(xp, xcp, n, cin, plane, op, nmp);
            var xcView = MatrixView.ChannelsByPixels(xcp, cin, n, plane, (long)cin * plane);
            float* s = Sigma(bp), weff = EffectiveWeight(bp, cin), products = Products(bp, cin, cout);
            PackedSgemm.Multiply(xcView, xcView.Transposed(), MatrixView.RowMajor(s, cin, cin, cin), accumulate: false);

            // Each branch: B_b = W_b S; mean W_b m and variance rowdot(W_b, B_b) / P prepare its BatchNorm.
            new Span<float>(weff, cout * cin).Clear();
            for (int b = 0; b < k; b++)
            {
                fixed (float* w = branches[b].Conv.Weight.Value.Data)
                {
                    float* bb = products + ((long)b * cout * cin);
                    PackedSgemm.Multiply(MatrixView.RowMajor(w, cout, cin, cin), MatrixView.RowMajor(s, cin, cin, cin), MatrixView.RowMajor(bb, cout, cin, cin), accumulate: false);
                    for (int c = 0; c < cout; c++)
                    {
                        double mu = 0, v = 0;
                        for (int i = 0; i < cin; i++)
                        {
                            mu += (double)w[((long)c * cin) + i] * inputMean[i];
                            v += (double)w[((long)c * cin) + i] * bb[((long)c * cin) + i];
                        }

                        mean[c] = mu;
                        variance[c] = Math.Max(0.0, v / pixels);
                    }

                    var bn = branches[b].Bn;
                    bn.PrepareFromMoments(mean, variance, pixels);
                    var scale = bn.Scale;
                    float[] beta = bn.Bias.Value.Data;
                    for (int c = 0; c < cout; c++)
                    {
                        float sc = scale[c];
                        float* row = weff + ((long)c * cin);
                        float* wr = w + ((long)c * cin);
                        for (int i = 0; i < cin; i++)
                        {
                            row[i] += sc * wr[i];
                        }

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

            PackedSgemm.Multiply(MatrixView.RowMajor(weff, cout, cin, cin), xcView, MatrixView.ChannelsByPixels(prep, cout, n, plane, (long)cout * plane), accumulate: false);
            nint input = (nint)prep;
            BatchNormTraining.BranchSum([input], op, biasp, prep, n, cout, plane, relu);
        }
    }

    /// <summary>
    /// From <paramref name="gradPre"/> (dL/dpre; centred in place) accumulates every branch's weight gradient and every
    /// BatchNorm's parameter gradients, and writes the input gradient to <paramref name="gradInput"/> when given.
    /// </summary>
    public unsafe void Backward(Tensor gradPre, IReadOnlyList<ConvBn> branches, BatchNorm2d? skip, Tensor? gradInput)
    {
        var xc = savedCentred ?? throw new InvalidOperationException("PointwiseMoments.Backward needs its Forward first.");
        int n = xc.Dim(0), cin = xc.Dim(1), plane = xc.Dim(2) * xc.Dim(3), cout = gradPre.Dim(1), k = branches.Count;
        float[] buffers = scratch.GetFlat(BufferSize(cin, cout, k));
        var gradMean = new double[cout];
        var gradVariance = new double[cout];
        var sumDy = new double[cout];
        var sumDyX = new double[cout];
        var ones = new float[cout];
        Array.Fill(ones, 1f);
        var negGradMean = new float[cout];
        fixed (float* gp = gradPre.Data)
        fixed (float* xcp = xc.Data)
        fixed (float* bp = buffers)
        fixed (float* op = ones)
        fixed (float* ngp = negGradMean)
        fixed (double* gmp = gradMean)
        fixed (double* gvp = gradVariance)
        {
            BatchNormTraining.Statistics(gp, n, cout, plane, (long)cout * plane, gmp, gvp);
            for (int c = 0; c < cout; c++)
            {
                sumDy[c] = gradMean[c] * pixels;
                negGradMean[c] = (float)-gradMean[c];
            }

            BatchNormTraining.Affine(gp, gp, n, cout, plane, op, ngp);
            var gView = MatrixView.ChannelsByPixels(gp, cout, n, plane, (long)cout * plane);
            var xcView = MatrixView.ChannelsByPixels(xcp, cin, n, plane, (long)cin * plane);
            float* s = Sigma(bp), weff = EffectiveWeight(bp, cin), products = Products(bp, cin, cout), a = Cross(bp, cin, cout, k), m = Correction(bp, cin, cout, k);
            PackedSgemm.Multiply(gView, xcView.Transposed(), MatrixView.RowMajor(a, cout, cin, cin), accumulate: false);
            new Span<float>(m, cin * cin).Clear();
            float* coefficient = Coefficients(bp, cin, cout, k);
            for (int b = 0; b < k; b++)
            {
                var bn = branches[b].Bn;
                float[] w = branches[b].Conv.Weight.Value.Data, grad = branches[b].Conv.Weight.EnsureGrad().Data;
                float* bb = products + ((long)b * cout * cin);
                for (int c = 0; c < cout; c++)
                {
                    double dot = 0;
                    for (int i = 0; i < cin; i++)
                    {
                        dot += (double)w[(c * cin) + i] * a[((long)c * cin) + i];
                    }

                    sumDyX[c] = dot;
                }

                bn.PrepareGradient(sumDy, sumDyX);
                var scale = bn.Scale;
                for (int c = 0; c < cout; c++)
                {
                    // q = dgamma * invStd / P: the part of the gradient along the normalized output.
                    double inv = bn.InvStd(c);
                    float q = (float)(sumDyX[c] * inv * inv / pixels);
                    float sc = scale[c];
                    for (int i = 0; i < cin; i++)
                    {
                        int at = (c * cin) + i;
                        grad[at] += sc * (a[at] - (q * bb[at]));
                        coefficient[at] = sc * q * w[at];
                    }
                }

                // M += (diag(scale q) W_b)^T W_b.
                fixed (float* wp = w)
                {
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
                    var dxView = MatrixView.ChannelsByPixels(dxp, cin, n, plane, (long)cin * plane);
                    for (long i = 0; i < (long)cin * cin; i++)
                    {
                        m[i] = -m[i];
                    }

                    PackedSgemm.Multiply(MatrixView.RowMajor(weff, cout, cin, cin).Transposed(), gView, dxView, accumulate: false);
                    PackedSgemm.Multiply(MatrixView.RowMajor(m, cin, cin, cin), xcView, dxView, accumulate: true);
                }
            }
        }
    }

    /// <summary>Drops the saved centred input and the scratch.</summary>
    public void Release()
    {
        centred.Release();
        scratch.Release();
        savedCentred = null;
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
