using MobileOne.Analysis;
using MobileOne.Models;

namespace MobileOne.Tests.Analysis;

/// <summary>
/// The two branch penalties of `train --ortho-reg` and `--branch-diversity`: values against textbook definitions
/// written here (OCNN's self-convolution over a zero-padded copy; folding and cosines by hand), and gradients against
/// central finite differences (h = 1e-6) of those definitions in double, like every backward in GradientCheckTests.
/// </summary>
public class BranchPenaltyTests
{
    public static TheoryData<int, int, int, int, int, int> Kernels => new()
    {
        // out, in per group, kernel H, kernel W, stride, groups
        { 4, 3, 3, 3, 1, 1 },   // dense 3x3 (every shift)
        { 5, 2, 3, 3, 2, 1 },   // dense 3x3 stride 2: padding 2, shifts -2, 0, 2
        { 3, 2, 5, 5, 2, 1 },   // 5x5 stride 2: padding 4
        { 4, 1, 3, 3, 1, 4 },   // depthwise 3x3: each filter against a delta
        { 6, 1, 3, 3, 2, 6 },   // depthwise 3x3 stride 2
        { 6, 2, 3, 3, 1, 2 },   // grouped 3x3: two groups of 3 kernels
        { 3, 5, 1, 1, 1, 1 },   // 1x1, rows <= row length: K K^T
        { 7, 3, 1, 1, 1, 1 },   // 1x1, more rows than columns: K^T K + (m - n)
        { 3, 37, 1, 1, 1, 1 },  // long rows: vector loop and tail
        { 40, 9, 1, 1, 1, 1 },  // many rows, short ones
        { 8, 2, 1, 1, 1, 2 },   // grouped 1x1
        { 4, 1, 1, 1, 1, 4 },   // depthwise 1x1 (a scale branch): (w^2 - 1)^2 per channel
        { 3, 2, 1, 2, 2, 1 },   // 1x2 stride 2: no padding, one shift
    };

    [Theory]
    [MemberData(nameof(Kernels))]
    public void Orthogonality_penalty_is_the_self_convolution_distance_and_the_deviation_squared(int outChannels, int inPerGroup, int kh, int kw, int stride, int groups)
    {
        var weight = Random(new Random((outChannels * 100) + (kh * 10) + groups), outChannels * inPerGroup * kh * kw, 0.6);
        double penalty = KernelOrthogonality.Penalty(weight, outChannels, inPerGroup, kh, kw, stride, stride, groups, default);
        double expected = SelfConvolutionDistance(weight, outChannels, inPerGroup, kh, kw, stride, groups);
        Assert.Equal(expected, penalty, expected * 1e-12);
        double deviation = KernelOrthogonality.Deviation(weight, outChannels, inPerGroup, kh, kw, stride, stride, groups);
        Assert.Equal(penalty, deviation * deviation, penalty * 1e-12);
    }

    [Theory]
    [MemberData(nameof(Kernels))]
    public void Orthogonality_penalty_gradient_matches_finite_differences(int outChannels, int inPerGroup, int kh, int kw, int stride, int groups)
    {
        var weight = Random(new Random((outChannels * 100) + (kh * 10) + groups + 1), outChannels * inPerGroup * kh * kw, 0.6);
        var gradient = new double[weight.Length];
        double value = KernelOrthogonality.Penalty(weight, outChannels, inPerGroup, kh, kw, stride, stride, groups, gradient);
        Assert.Equal(KernelOrthogonality.Penalty(weight, outChannels, inPerGroup, kh, kw, stride, stride, groups, default), value);
        var numeric = FiniteDifferences(weight, w => SelfConvolutionDistance(w, outChannels, inPerGroup, kh, kw, stride, groups));
        AssertClose(numeric, gradient, 1e-6);
    }

    [Fact]
    public void Orthogonality_gradient_vanishes_at_an_orthogonal_kernel_and_rejects_a_wrong_length()
    {
        double c = Math.Cos(0.4), s = Math.Sin(0.4);
        var gradient = new double[4];
        Assert.Equal(0, KernelOrthogonality.Penalty([c, -s, s, c], 2, 2, 1, 1, 1, 1, 1, gradient), 1e-15);
        Assert.All(gradient, g => Assert.Equal(0, g, 1e-14));
        var e = Assert.Throws<ArgumentException>(() => KernelOrthogonality.Penalty([c, -s, s, c], 2, 2, 1, 1, 1, 1, 1, new double[3]));
        Assert.Contains("The gradient has 3 elements; the kernel has 4", e.Message);
    }

    [Fact]
    public void Mean_squared_cosine_is_zero_for_orthogonal_and_one_for_parallel_vectors()
    {
        Assert.Equal(0, BranchDiversity.MeanSquaredCosine([[1, 0, 0], [0, 2, 0], [0, 0, -3]]));
        Assert.Equal(1, BranchDiversity.MeanSquaredCosine([[1, 2, 3], [-2, -4, -6]]), 1e-15);
        // Pairs (a, b), (a, c), (b, c) with cosines 1, 0, 0: mean 1/3.
        Assert.Equal(1.0 / 3, BranchDiversity.MeanSquaredCosine([[1, 1], [2, 2], [1, -1]]), 1e-15);
        Assert.Equal(0, BranchDiversity.MeanSquaredCosine([[1, 2]]));
        Assert.Equal(0, BranchDiversity.MeanSquaredCosine([[0, 0], [1, 2]]));
    }

    [Theory]
    [InlineData(2, 5)]
    [InlineData(3, 7)]
    [InlineData(4, 18)]
    public void Mean_squared_cosine_gradient_matches_finite_differences(int k, int length)
    {
        var rng = new Random((k * 10) + length);
        var vectors = Enumerable.Range(0, k).Select(_ => Random(rng, length, 1)).ToArray();
        vectors[^1][0] += 2 * vectors[0][0];   // some similarity, so the gradient is not tiny
        var gradients = vectors.Select(v => new double[v.Length]).ToArray();
        double value = BranchDiversity.MeanSquaredCosine(vectors, gradients);
        Assert.Equal(TextbookMeanSquaredCosine(vectors), value, 1e-14);
        for (int i = 0; i < k; i++)
        {
            int which = i;
            var numeric = FiniteDifferences(vectors[i], v =>
            {
                var copy = vectors.ToArray();
                copy[which] = v;
                return TextbookMeanSquaredCosine(copy);
            });
            AssertClose(numeric, gradients[i], 1e-7);
        }
    }

    [Theory]
    [InlineData(8, 8, 3, 1, 8, 3)]    // depthwise 3x3, k = 3
    [InlineData(6, 4, 1, 1, 1, 2)]    // pointwise, k = 2
    [InlineData(4, 6, 3, 2, 2, 4)]    // grouped 3x3 stride 2, k = 4
    public void Block_diversity_gradient_through_the_batchnorm_fold_matches_finite_differences(int cin, int cout, int kernel, int stride, int groups, int k)
    {
        var block = MobileOneBlock.CreateTrainTime(new BlockSpec(cin, cout, kernel, stride, kernel / 2, groups, k, 0));
        var rng = new Random((cin * 100) + (kernel * 10) + k);

        // Dyadic values are exact in float32, so the double reference sees exactly the block's parameters.
        foreach (var branch in block.ConvKxk)
        {
            var w = branch.Conv.Weight.Value.Data;
            for (int i = 0; i < w.Length; i++)
            {
                w[i] = rng.Next(-512, 513) / 1024f;
            }

            w[0] += 0.5f;   // a shared component: branches not orthogonal
            for (int o = 0; o < cout; o++)
            {
                branch.Bn.Weight.Value.Data[o] = rng.Next(256, 1536) / 1024f;
                branch.Bn.RunningVar.Data[o] = rng.Next(128, 2048) / 1024f;
                branch.Bn.Bias.Value.Data[o] = rng.Next(-512, 512) / 1024f;
            }
        }

        double[][] weights = block.ConvKxk.Select(b => b.Conv.Weight.Value.Data.Select(v => (double)v).ToArray()).ToArray();
        double[][] gammas = block.ConvKxk.Select(b => b.Bn.Weight.Value.Data.Select(v => (double)v).ToArray()).ToArray();
        double[][] variances = block.ConvKxk.Select(b => b.Bn.RunningVar.Data.Select(v => (double)v).ToArray()).ToArray();
        double eps = block.ConvKxk[0].Bn.Eps;
        double Reference(double[][] w, double[][] g) => TextbookMeanSquaredCosine(w.Select((wb, b) => Fold(wb, g[b], variances[b], eps)).ToArray());

        var dw = block.ConvKxk.Select(b => new double[b.Conv.Weight.Value.Length]).ToArray();
        var dgamma = block.ConvKxk.Select(_ => new double[cout]).ToArray();
        double value = BranchDiversity.Penalty(block, dw, dgamma);
        Assert.Equal(Reference(weights, gammas), value, 1e-12);
        Assert.Equal(value, BranchDiversity.Penalty(block));
        if (k == 2)
        {
            // One pair: the penalty is the square of the cosine `analyze` reports.
            double cos = NetworkAnalysis.BranchSimilarity(block).Mean!.Value;
            Assert.Equal(cos * cos, value, 1e-12);
        }

        for (int b = 0; b < k; b++)
        {
            int which = b;
            AssertClose(FiniteDifferences(weights[b], w => Reference(weights.Select((x, i) => i == which ? w : x).ToArray(), gammas)), dw[b], 1e-7);
            AssertClose(FiniteDifferences(gammas[b], g => Reference(weights, gammas.Select((x, i) => i == which ? g : x).ToArray())), dgamma[b], 1e-7);
        }
    }

    /// <summary>OCNN's definition: K[b] as an image (in channels x kH x kW) zero-padded by P, filtered by every K[a] of its group at stride S.</summary>
    private static double SelfConvolutionDistance(double[] weight, int outChannels, int inPerGroup, int kh, int kw, int stride, int groups)
    {
        int padH = (kh - 1) / stride * stride, padW = (kw - 1) / stride * stride;
        int ph = kh + (2 * padH), pw = kw + (2 * padW);
        int oh = ((ph - kh) / stride) + 1, ow = ((pw - kw) / stride) + 1;
        int perGroup = outChannels / groups, size = inPerGroup * kh * kw;
        double total = 0;
        for (int b = 0; b < outChannels; b++)
        {
            var image = new double[inPerGroup, ph, pw];
            for (int c = 0; c < inPerGroup; c++)
            {
                for (int i = 0; i < kh; i++)
                {
                    for (int j = 0; j < kw; j++)
                    {
                        image[c, i + padH, j + padW] = weight[(b * size) + (((c * kh) + i) * kw) + j];
                    }
                }
            }

            int group = b / perGroup;
            for (int a = group * perGroup; a < (group + 1) * perGroup; a++)
            {
                for (int y = 0; y < oh; y++)
                {
                    for (int x = 0; x < ow; x++)
                    {
                        double sum = 0;
                        for (int c = 0; c < inPerGroup; c++)
                        {
                            for (int i = 0; i < kh; i++)
                            {
                                for (int j = 0; j < kw; j++)
                                {
                                    sum += weight[(a * size) + (((c * kh) + i) * kw) + j] * image[c, (y * stride) + i, (x * stride) + j];
                                }
                            }
                        }

                        double target = a == b && y == oh / 2 && x == ow / 2 ? 1 : 0;
                        total += (sum - target) * (sum - target);
                    }
                }
            }
        }

        return total;
    }

    private static double TextbookMeanSquaredCosine(double[][] vectors)
    {
        double total = 0;
        int pairs = 0;
        for (int i = 0; i < vectors.Length; i++)
        {
            for (int j = i + 1; j < vectors.Length; j++)
            {
                double dot = vectors[i].Zip(vectors[j], (x, y) => x * y).Sum();
                double cos = dot / Math.Sqrt(vectors[i].Sum(x => x * x) * vectors[j].Sum(x => x * x));
                total += cos * cos;
                pairs++;
            }
        }

        return total / pairs;
    }

    private static double[] Fold(double[] weight, double[] gamma, double[] variance, double eps)
    {
        int per = weight.Length / gamma.Length;
        return weight.Select((w, i) => w * gamma[i / per] / Math.Sqrt(variance[i / per] + eps)).ToArray();
    }

    private static double[] FiniteDifferences(double[] x, Func<double[], double> f, double h = 1e-6)
    {
        var result = new double[x.Length];
        for (int i = 0; i < x.Length; i++)
        {
            var plus = (double[])x.Clone();
            var minus = (double[])x.Clone();
            plus[i] += h;
            minus[i] -= h;
            result[i] = (f(plus) - f(minus)) / (2 * h);
        }

        return result;
    }

    /// <summary>Each element within tolerance times the largest magnitude of the numeric gradient (and not all zero).</summary>
    private static void AssertClose(double[] numeric, double[] analytic, double tolerance)
    {
        double scale = numeric.Max(Math.Abs);
        Assert.True(scale > 0, "the gradient is zero everywhere: nothing was checked");
        for (int i = 0; i < numeric.Length; i++)
        {
            Assert.True(Math.Abs(numeric[i] - analytic[i]) <= tolerance * scale, $"element {i}: finite differences {numeric[i]}, analytic {analytic[i]} (scale {scale})");
        }
    }

    private static double[] Random(Random rng, int length, double scale) =>
        Enumerable.Range(0, length).Select(_ => scale * ((2 * rng.NextDouble()) - 1)).ToArray();
}
