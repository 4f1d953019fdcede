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
    /// its statistics (training mode) from the moments. Keeps Xc, S and W_eff for <see cref="Backward"/>.
    /// </summary>
    public unsafe void Forward(Tensor x, IReadOnlyList<ConvBn> branches, BatchNorm2d? skip, Tensor pre, bool relu)
    {
        int n = x.Dim(0), cin = x.Dim(1), plane = x.Dim(2) * x.Dim(3), cout = pre.Dim(1), k = branches.Count;
        pixels = (long)n * plane;
        inputMean = inputMean.Length == cin ? inputMean : new double[cin];
        inputVariance = inputVariance.Length == cin ? inputVariance : new double[cin];
        // Xc is kept as a dense [channels x pixels] matrix (not NCHW), so small planes never fragment the products.
        float[] xc = centred.GetFlat((long)cin * pixels);
        float[] rows = outputRows.GetFlat((long)cout * pixels);
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
            BatchNormTraining.Statistics(xp, n, cin, plane, (long)cin * plane, mp, vp);
            for (int i = 0; i < cin; i++)
            {
                negMean[i] = (float)-inputMean[i];
            }

            ToRows(xp, xcp, n, cin, plane, nmp);
            var xcView = MatrixView.RowMajor(xcp, cin, (int)pixels, pixels);
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

            PackedSgemm.Multiply(MatrixView.RowMajor(weff, cout, cin, cin), xcView, MatrixView.RowMajor(rp, cout, (int)pixels, pixels), accumulate: false);
            FromRows(rp, prep, n, cout, plane, biasp, relu);
        }
    }

    /// <summary>
    /// From <paramref name="gradPre"/> (dL/dpre; read, not changed) accumulates every branch's weight gradient and every
    /// BatchNorm's parameter gradients, and writes the input gradient to <paramref name="gradInput"/> when given.
    /// </summary>
    public unsafe void Backward(Tensor gradPre, IReadOnlyList<ConvBn> branches, BatchNorm2d? skip, Tensor? gradInput)
    {
        int n = savedBatch, plane = savedPlane, cout = gradPre.Dim(1), k = branches.Count;
        if (n == 0 || gradPre.Dim(0) != n || gradPre.Dim(2) * gradPre.Dim(3) != plane)
        {
            throw new InvalidOperationException("PointwiseMoments.Backward needs the Forward of the same batch first.");
        }

        int cin = savedInChannels;
        float[] xc = centred.GetFlat((long)cin * pixels);
        float[] rows = outputRows.GetFlat((long)cout * pixels);
        float[] dxRows = inputRows.GetFlat((long)cin * pixels);
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
            BatchNormTraining.Statistics(gp, n, cout, plane, (long)cout * plane, gmp, gvp);
            for (int c = 0; c < cout; c++)
            {
                sumDy[c] = gradMean[c] * pixels;
                negGradMean[c] = (float)-gradMean[c];
            }

            ToRows(gp, grp, n, cout, plane, ngp);
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
                    var dxView = MatrixView.RowMajor(dxrp, cin, (int)pixels, pixels);
                    for (long i = 0; i < (long)cin * cin; i++)
                    {
                        m[i] = -m[i];
                    }

                    PackedSgemm.Multiply(MatrixView.RowMajor(weff, cout, cin, cin).Transposed(), gView, dxView, accumulate: false);
                    PackedSgemm.Multiply(MatrixView.RowMajor(m, cin, cin, cin), xcView, dxView, accumulate: true);
                    FromRows(dxrp, dxp, n, cin, plane, null, relu: false);
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

    /// <summary>rows[c][i * plane + p] = nchw[i][c][p] + add[c]: an NCHW tensor as a dense [channels x pixels] matrix, shifted per channel.</summary>
    private static unsafe void ToRows(float* nchw, float* rows, int n, int channels, int plane, float* add)
    {
        nint src = (nint)nchw, dst = (nint)rows, shift = (nint)add;
        long pixels = (long)n * plane;
        ComputeThreads.For(channels, (c0, c1) =>
        {
            for (int c = c0; c < c1; c++)
            {
                float a = ((float*)shift)[c];
                Elementwise.ShiftRuns((float*)src + ((long)c * plane), (long)channels * plane, (float*)dst + (c * pixels), plane, n, plane, a, relu: false);
            }
        });
    }

    /// <summary>nchw[i][c][p] = rows[c][i * plane + p] + add[c] (add may be null), with the ReLU when asked: the inverse of <see cref="ToRows"/>.</summary>
    private static unsafe void FromRows(float* rows, float* nchw, int n, int channels, int plane, float* add, bool relu)
    {
        nint src = (nint)rows, dst = (nint)nchw, shift = (nint)add;
        long pixels = (long)n * plane;
        ComputeThreads.For(channels, (c0, c1) =>
        {
            for (int c = c0; c < c1; c++)
            {
                float a = shift == 0 ? 0f : ((float*)shift)[c];
                Elementwise.ShiftRuns((float*)src + (c * pixels), plane, (float*)dst + ((long)c * plane), (long)channels * plane, n, plane, a, relu);
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
