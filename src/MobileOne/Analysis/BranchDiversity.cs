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
    /// (one array per vector, same lengths) the gradient is written there. Computed from the vectors' Gram matrix by
    /// <see cref="FromGram"/>.
    /// </summary>
    public static double MeanSquaredCosine(IReadOnlyList<double[]> vectors, IReadOnlyList<double[]>? gradients = null)
    {
        ArgumentNullException.ThrowIfNull(vectors);
        int k = vectors.Count;
        if (gradients is not null && (gradients.Count != k || gradients.Where((g, i) => g.Length != vectors[i].Length).Any()))
        {
            throw new ArgumentException("One gradient array per vector, of the vector's length.", nameof(gradients));
        }

        var gram = new double[k, k];
        for (int i = 0; i < k; i++)
        {
            for (int j = i; j < k; j++)
            {
                gram[i, j] = gram[j, i] = Dot(vectors[i], vectors[j]);
            }
        }

        var c = gradients is null ? null : new double[k, k];
        double value = FromGram(gram, c);
        if (gradients is not null)
        {
            for (int i = 0; i < k; i++)
            {
                var g = gradients[i];
                Array.Clear(g);
                for (int j = 0; j < k; j++)
                {
                    for (int e = 0; e < g.Length; e++)
                    {
                        g[e] += c![i, j] * vectors[j][e];
                    }
                }
            }
        }

        return value;
    }

    /// <summary>
    /// The mean squared cosine over pairs from the Gram matrix G_ij = &lt;x_i, x_j&gt; of k vectors, and, when
    /// <paramref name="coefficients"/> is given (k x k), the gradient as combinations of the vectors:
    /// dD/dx_i = sum_j C_ij x_j. From d cos_ij^2 / d x_i = 2 cos_ij (x_j / (|x_i| |x_j|) - cos_ij x_i / |x_i|^2), divided by the
    /// number of pairs. A pair with a zero vector has cosine 0 and no gradient.
    /// </summary>
    public static double FromGram(double[,] gram, double[,]? coefficients)
    {
        ArgumentNullException.ThrowIfNull(gram);
        int k = gram.GetLength(0);
        if (coefficients is not null)
        {
            Array.Clear(coefficients);
        }

        if (k < 2)
        {
            return 0;
        }

        int pairs = k * (k - 1) / 2;
        double total = 0;
        for (int i = 0; i < k; i++)
        {
            for (int j = i + 1; j < k; j++)
            {
                if (gram[i, i] == 0 || gram[j, j] == 0)
                {
                    continue;
                }

                double inv = 1 / Math.Sqrt(gram[i, i] * gram[j, j]);
                double cos = gram[i, j] * inv;
                total += cos * cos;
                if (coefficients is not null)
                {
                    double scale = 2 * cos / pairs;
                    coefficients[i, j] += scale * inv;
                    coefficients[j, i] += scale * inv;
                    coefficients[i, i] -= scale * cos / gram[i, i];
                    coefficients[j, j] -= scale * cos / gram[j, j];
                }
            }
        }

        return total / pairs;
    }

    /// <summary>
    /// The block's penalty D on its BN-folded branch kernels (0 for a fused block or a single branch): the Gram matrix
    /// of F_i = t_i W_i (t_o = gamma_o / std_o, std_o = sqrt(running_var_o + eps), per output channel) is summed channel
    /// by channel from the float32 weights, without forming F. With gradient arrays (one per branch, at least the
    /// convolution weight's length and the BatchNorm's channel count) the gradient is written to their first elements,
    /// chained through the fold: dD/dF_i = sum_j C_ij F_j, dD/dW[o, x] = t_o dD/dF[o, x] and
    /// dD/dgamma[o] = sum_x dD/dF[o, x] W[o, x] / std_o.
    /// </summary>
    public static double Penalty(MobileOneBlock block, IReadOnlyList<double[]>? weightGradients = null, IReadOnlyList<double[]>? gammaGradients = null)
    {
        ArgumentNullException.ThrowIfNull(block);
        if ((weightGradients is null) != (gammaGradients is null))
        {
            throw new ArgumentException("Pass both gradient lists or neither.");
        }

        if (block.IsFused || block.ConvKxk.Count < 2)
        {
            return 0;
        }

        var branches = block.ConvKxk;
        int k = branches.Count;
        int channels = branches[0].Bn.Channels;
        int perChannel = branches[0].Conv.Weight.Value.Length / channels;
        var weights = branches.Select(b => b.Conv.Weight.Value.Data).ToArray();
        var scales = new double[k, channels];
        var stds = new double[k, channels];
        for (int b = 0; b < k; b++)
        {
            var bn = BatchNormStats.From(branches[b].Bn);
            for (int o = 0; o < channels; o++)
            {
                stds[b, o] = bn.Std(o);
                scales[b, o] = bn.Gamma[o] / stds[b, o];
            }
        }

        var gram = new double[k, k];
        for (int i = 0; i < k; i++)
        {
            for (int j = i; j < k; j++)
            {
                double sum = 0;
                for (int o = 0; o < channels; o++)
                {
                    sum += scales[i, o] * scales[j, o] * Dot(weights[i].AsSpan(o * perChannel, perChannel), weights[j].AsSpan(o * perChannel, perChannel));
                }

                gram[i, j] = gram[j, i] = sum;
            }
        }

        if (weightGradients is null)
        {
            return FromGram(gram, null);
        }

        if (weightGradients.Count != k || gammaGradients!.Count != k)
        {
            throw new ArgumentException($"The block has {k} branches; got {weightGradients.Count} weight and {gammaGradients!.Count} gamma gradients.");
        }

        var c = new double[k, k];
        double value = FromGram(gram, c);
        for (int i = 0; i < k; i++)
        {
            double[] dw = weightGradients[i], dgamma = gammaGradients[i];
            if (dw.Length < weights[i].Length || dgamma.Length < channels)
            {
                throw new ArgumentException($"Branch {i}: room for {dw.Length} weight and {dgamma.Length} gamma gradients; it has {weights[i].Length} and {channels}.");
            }

            for (int o = 0; o < channels; o++)
            {
                // dD/dF_i on this channel's row: sum_j C_ij t_j W_j.
                double gammaSum = 0;
                for (int x = o * perChannel; x < (o + 1) * perChannel; x++)
                {
                    double df = 0;
                    for (int j = 0; j < k; j++)
                    {
                        df += c[i, j] * scales[j, o] * weights[j][x];
                    }

                    dw[x] = scales[i, o] * df;
                    gammaSum += df * weights[i][x];
                }

                dgamma[o] = gammaSum / stds[i, o];
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

    private static double Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        double s = 0;
        for (int i = 0; i < a.Length; i++)
        {
            s += (double)a[i] * b[i];
        }

        return s;
    }
}
