using MobileOne.Models;
using MobileOne.Reparam;

namespace MobileOne.Analysis;

/// <summary>
/// How alike the k convolution branches of a train-time block are, on the kernels `analyze` compares: each branch's
/// BN-folded kernel F_i = W_i * gamma_i / sqrt(running_var_i + eps) (per output channel, flattened). `analyze` reports
/// the mean and maximum cosine over pairs; the training penalty (`--branch-diversity`) is the mean over pairs i &lt; j of
/// the squared cosine, D = mean cos^2(F_i, F_j), in [0, 1]: zero when the branches are mutually orthogonal, 1 when all
/// are parallel. Squared, so that it pushes branches apart in direction without rewarding anti-parallel ones (the plain
/// cosine's minimum makes branches cancel each other in the sum). The gradient goes to each branch's convolution weight
/// and BatchNorm gamma; the running variance is a buffer and is held fixed.
/// </summary>
public static class BranchDiversity
{
    /// <summary>The BN-folded kernels of a block's k convolution branches (conv_kxk.0..k-1); empty for a fused block.</summary>
    public static double[][] FoldedKernels(MobileOneBlock block)
    {
        ArgumentNullException.ThrowIfNull(block);
        return block.IsFused ? [] : block.ConvKxk.Select(b => BlockFusion.FoldBranch(b).Weight).ToArray();
    }

    /// <summary>
    /// Mean over pairs i &lt; j of cos^2(x_i, x_j) (0 for fewer than two vectors). With <paramref name="gradients"/>
    /// (one array per vector, same lengths) the gradient is written there: d cos^2 / d x_i = 2 cos (x_j / (|x_i| |x_j|)
    /// - cos x_i / |x_i|^2), divided by the number of pairs. A pair with a zero vector has cosine 0 and no gradient.
    /// </summary>
    public static double MeanSquaredCosine(IReadOnlyList<double[]> vectors, IReadOnlyList<double[]>? gradients = null)
    {
        ArgumentNullException.ThrowIfNull(vectors);
        int k = vectors.Count;
        if (gradients is not null)
        {
            if (gradients.Count != k || gradients.Where((g, i) => g.Length != vectors[i].Length).Any())
            {
                throw new ArgumentException("One gradient array per vector, of the vector's length.", nameof(gradients));
            }

            foreach (var g in gradients)
            {
                Array.Clear(g);
            }
        }

        if (k < 2)
        {
            return 0;
        }

        var norms2 = vectors.Select(v => Dot(v, v)).ToArray();
        int pairs = k * (k - 1) / 2;
        double total = 0;
        for (int i = 0; i < k; i++)
        {
            for (int j = i + 1; j < k; j++)
            {
                if (norms2[i] == 0 || norms2[j] == 0)
                {
                    continue;
                }

                double dot = Dot(vectors[i], vectors[j]);
                double inv = 1 / Math.Sqrt(norms2[i] * norms2[j]);
                double cos = dot * inv;
                total += cos * cos;
                if (gradients is null)
                {
                    continue;
                }

                double scale = 2 * cos / pairs;
                double[] xi = vectors[i], xj = vectors[j], gi = gradients[i], gj = gradients[j];
                double ci = cos / norms2[i], cj = cos / norms2[j];
                for (int e = 0; e < xi.Length; e++)
                {
                    gi[e] += scale * ((xj[e] * inv) - (ci * xi[e]));
                    gj[e] += scale * ((xi[e] * inv) - (cj * xj[e]));
                }
            }
        }

        return total / pairs;
    }

    /// <summary>
    /// The block's penalty D on its BN-folded branch kernels (0 for a fused block or a single branch). With gradient
    /// arrays (one per branch: the convolution weight's length and the BatchNorm's channel count) the gradient is
    /// written there, chained through the fold: dD/dW[o, x] = t_o dD/dF[o, x] and dD/dgamma[o] = sum_x dD/dF[o, x] W[o, x] / std_o,
    /// with std_o = sqrt(running_var_o + eps) and t_o = gamma_o / std_o.
    /// </summary>
    public static double Penalty(MobileOneBlock block, IReadOnlyList<double[]>? weightGradients = null, IReadOnlyList<double[]>? gammaGradients = null)
    {
        var kernels = FoldedKernels(block);
        if ((weightGradients is null) != (gammaGradients is null))
        {
            throw new ArgumentException("Pass both gradient lists or neither.");
        }

        if (weightGradients is null)
        {
            return MeanSquaredCosine(kernels);
        }

        if (weightGradients.Count != kernels.Length || gammaGradients!.Count != kernels.Length)
        {
            throw new ArgumentException($"The block has {kernels.Length} branches; got {weightGradients.Count} weight and {gammaGradients!.Count} gamma gradients.");
        }

        var folded = kernels.Select(f => new double[f.Length]).ToArray();
        double value = MeanSquaredCosine(kernels, folded);
        for (int b = 0; b < kernels.Length; b++)
        {
            var branch = block.ConvKxk[b];
            var w = branch.Conv.Weight.Value.Data;
            var bn = BatchNormStats.From(branch.Bn);
            double[] dw = weightGradients[b], dgamma = gammaGradients[b];
            if (dw.Length != w.Length || dgamma.Length != bn.Channels)
            {
                throw new ArgumentException($"Branch {b}: gradients of {dw.Length} weights and {dgamma.Length} gammas; it has {w.Length} and {bn.Channels}.");
            }

            int perChannel = w.Length / bn.Channels;
            for (int o = 0; o < bn.Channels; o++)
            {
                double std = Math.Sqrt(bn.Var[o] + bn.Eps);
                double t = bn.Gamma[o] / std, sum = 0;
                for (int x = o * perChannel; x < (o + 1) * perChannel; x++)
                {
                    dw[x] = t * folded[b][x];
                    sum += folded[b][x] * w[x];
                }

                dgamma[o] = sum / std;
            }
        }

        return value;
    }

    private static double Dot(double[] a, double[] b)
    {
        double s = 0;
        for (int i = 0; i < a.Length; i++)
        {
            s += a[i] * b[i];
        }

        return s;
    }
}
