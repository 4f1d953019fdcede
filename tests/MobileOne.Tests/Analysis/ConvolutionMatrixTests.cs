using System.Text.Json.Nodes;
using MobileOne.Analysis;
using MobileOne.Graph;
using MobileOne.Models;
using MobileOne.Reparam;
using MobileOne.Tensors;
using MobileOne.Tests.Cli;
using MobileOne.Tests.Graph;

namespace MobileOne.Tests.Analysis;

public class ConvolutionMatrixTests
{
    // in, out, kernel h/w, stride h/w, pad h/w, groups, dilation h/w, height, width
    public static IEnumerable<object[]> Cases =>
    [
        [3, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 6, 5],
        [3, 4, 3, 3, 2, 2, 1, 1, 1, 1, 1, 7, 6],
        [4, 6, 3, 3, 1, 1, 0, 0, 2, 1, 1, 5, 5],
        [4, 4, 3, 3, 2, 2, 1, 1, 4, 1, 1, 6, 6],
        [2, 3, 1, 1, 1, 1, 0, 0, 1, 1, 1, 4, 3],
        [2, 2, 3, 3, 1, 1, 2, 2, 2, 2, 2, 6, 7],
        [1, 2, 2, 3, 1, 2, 1, 0, 1, 1, 1, 5, 6],
    ];

    [Theory]
    [MemberData(nameof(Cases))]
    public void Matrix_times_the_input_is_the_convolution(int cin, int cout, int kh, int kw, int sh, int sw, int ph, int pw, int groups, int dh, int dw, int h, int w)
    {
        var rng = new Random(cin + (7 * cout) + (13 * kh) + (17 * sh) + (19 * groups) + (23 * dh));
        float[] weight = Random(rng, cout * (cin / groups) * kh * kw);
        float[] x = Random(rng, cin * h * w);
        var graph = new LayerGraph(cin);
        graph.Add(new ConvNode("conv", LayerGraph.Input, cin, cout, kh, kw, sh, sw, ph, pw, dh, dw, groups, weight, null));
        double[] expected = GraphReference.Evaluate(graph, new Tensor([1, cin, h, w], x));

        var k = new ConvolutionMatrix(Array.ConvertAll(weight, v => (double)v), cout, cin, kh, kw, h, w, sh, sw, ph, pw, groups, dh, dw);
        Assert.Equal(expected.Length, k.Rows);
        double[] input = Array.ConvertAll(x, v => (double)v);
        double[,] dense = k.ToDense();
        var fromDense = new double[k.Rows];
        for (int r = 0; r < k.Rows; r++)
        {
            for (int c = 0; c < k.Columns; c++)
            {
                fromDense[r] += dense[r, c] * input[c];
            }
        }

        var matrixFree = new double[k.Rows];
        k.Multiply(input, matrixFree);
        var sparse = new double[k.Rows];
        k.ToSparse().Multiply(input, sparse);
        for (int i = 0; i < expected.Length; i++)
        {
            Assert.Equal(expected[i], fromDense[i], 1e-9);
            Assert.Equal(expected[i], matrixFree[i], 1e-9);
            Assert.Equal(expected[i], sparse[i], 1e-9);
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Transposed_product_is_the_adjoint(int cin, int cout, int kh, int kw, int sh, int sw, int ph, int pw, int groups, int dh, int dw, int h, int w)
    {
        var rng = new Random(3);
        var k = new ConvolutionMatrix(RandomDouble(rng, cout * (cin / groups) * kh * kw), cout, cin, kh, kw, h, w, sh, sw, ph, pw, groups, dh, dw);
        double[] x = RandomDouble(rng, (int)k.Columns), y = RandomDouble(rng, (int)k.Rows);
        var kx = new double[k.Rows];
        var kty = new double[k.Columns];
        k.Multiply(x, kx);
        k.MultiplyTransposed(y, kty);
        Assert.Equal(Dot(kx, y), Dot(x, kty), 1e-10);
    }

    [Fact]
    public void At_stride_one_each_channel_block_is_doubly_block_toeplitz()
    {
        // One channel, 3x3 kernel, padding 1, 5x5 input: entry ((oy, ox), (iy, ix)) depends only on (iy - oy, ix - ox).
        var rng = new Random(5);
        double[] weight = RandomDouble(rng, 9);
        var dense = new ConvolutionMatrix(weight, 1, 1, 3, 3, 5, 5, padH: 1, padW: 1).ToDense();
        for (int oy = 0; oy < 5; oy++)
        {
            for (int ox = 0; ox < 5; ox++)
            {
                for (int iy = 0; iy < 5; iy++)
                {
                    for (int ix = 0; ix < 5; ix++)
                    {
                        int dy = iy - oy + 1, dx = ix - ox + 1;
                        double expected = dy is >= 0 and < 3 && dx is >= 0 and < 3 ? weight[(dy * 3) + dx] : 0;
                        Assert.Equal(expected, dense[(oy * 5) + ox, (iy * 5) + ix]);
                    }
                }
            }
        }
    }

    [Fact]
    public void Power_iteration_finds_the_largest_singular_value()
    {
        var rng = new Random(9);
        var k = new ConvolutionMatrix(RandomDouble(rng, 4 * 3 * 9), 4, 3, 3, 3, 6, 6, padH: 1, padW: 1);
        double[] singular = OperatorSpectrum.SingularValues(k)!;
        Assert.Equal(singular[0], OperatorSpectrum.SpectralNorm(k), singular[0] * 1e-6);
        Assert.True(singular.Zip(singular.Skip(1)).All(p => p.First >= p.Second));
        Assert.Null(OperatorSpectrum.SingularValues(k, maxEntries: 10));
    }

    [Fact]
    public void An_identity_convolution_has_unit_singular_values_full_rank_and_is_orthogonal()
    {
        // 3x3 kernels with 1 at the centre for o == c: the identity on 2 channels of 4x4.
        var weight = new double[2 * 2 * 9];
        weight[(0 * 18) + (0 * 9) + 4] = 1;
        weight[(1 * 18) + (1 * 9) + 4] = 1;
        var k = new ConvolutionMatrix(weight, 2, 2, 3, 3, 4, 4, padH: 1, padW: 1);
        double[] singular = OperatorSpectrum.SingularValues(k)!;
        Assert.All(singular, s => Assert.Equal(1, s, 1e-12));
        Assert.Equal(32, OperatorSpectrum.EffectiveRank(singular, 0.99));
        Assert.Equal(0, KernelOrthogonality.Deviation(weight, 2, 2, 3, 3, 1, 1, 1), 1e-12);
    }

    [Fact]
    public void Effective_rank_counts_the_values_that_hold_the_energy()
    {
        // sigma^2 = 9, 4, 1 of 14: 9/14 = 0.64, 13/14 = 0.93, 14/14 = 1.
        double[] singular = [3, 2, 1];
        Assert.Equal(1, OperatorSpectrum.EffectiveRank(singular, 0.5));
        Assert.Equal(2, OperatorSpectrum.EffectiveRank(singular, 0.9));
        Assert.Equal(3, OperatorSpectrum.EffectiveRank(singular, 0.99));
        Assert.Equal(0, OperatorSpectrum.EffectiveRank([0, 0], 0.9));
        Assert.Throws<ArgumentOutOfRangeException>(() => OperatorSpectrum.EffectiveRank(singular, 0));
    }

    [Fact]
    public void Orthogonality_deviation_is_the_distance_of_the_kernels_self_convolution_from_the_identity()
    {
        // A 1x3 kernel [1, 1, 1] convolved with itself at padding 2: [1, 2, 3, 2, 1] against [0, 0, 1, 0, 0].
        Assert.Equal(Math.Sqrt(1 + 4 + 4 + 4 + 1), KernelOrthogonality.Deviation([1, 1, 1], 1, 1, 1, 3, 1, 1, 1), 1e-12);

        // A rotation as a 1x1 convolution is orthogonal; scaled by 2 its self-product is 4 I: deviation 3 sqrt(2).
        double c = Math.Cos(0.3), s = Math.Sin(0.3);
        Assert.Equal(0, KernelOrthogonality.Deviation([c, -s, s, c], 2, 2, 1, 1, 1, 1, 1), 1e-12);
        Assert.Equal(3 * Math.Sqrt(2), KernelOrthogonality.Deviation([2 * c, -2 * s, 2 * s, 2 * c], 2, 2, 1, 1, 1, 1, 1), 1e-12);

        // Stride 2 on a 1x2 kernel [a, b]: padding 0, one shift; a^2 + b^2 = 1 is orthogonal.
        Assert.Equal(0, KernelOrthogonality.Deviation([0.6, 0.8], 1, 1, 1, 2, 1, 2, 1), 1e-12);

        // Groups: kernels of different groups never meet. Two depthwise deltas scaled by 1 and 3: sqrt(0 + 8^2).
        var depthwise = new double[2 * 9];
        depthwise[4] = 1;
        depthwise[9 + 4] = 3;
        Assert.Equal(8, KernelOrthogonality.Deviation(depthwise, 2, 1, 3, 3, 1, 1, 2), 1e-12);
    }

    [Fact]
    public void A_train_time_network_is_analysed_per_block_with_its_branch_similarity()
    {
        var config = MobileOneConfig.Parse("units=1/1/1/1,widths=0.25/0.25/0.25/0.25,k=2,classes=5");
        var network = MobileOneNetwork.Create(config);
        WeightInit.Initialize(network, 3);
        WeightInit.RandomizeBatchNorm(network, 4);
        var options = new AnalysisOptions { Size = 8, VerifyMatrix = true };

        var rows = NetworkAnalysis.Analyze(network, options);
        var fusedRows = NetworkAnalysis.Analyze(Reparameterizer.Fuse(network), options);

        Assert.Equal(network.Blocks().Count(), rows.Count);
        Assert.Equal(8, rows[0].InHeight);
        Assert.Equal(rows[0].OutHeight, rows[1].InHeight);
        for (int i = 0; i < rows.Count; i++)
        {
            Assert.True(rows[i].MatrixMaxAbsDiff < 1e-4, $"{rows[i].Layer}: stored matrix differs from the convolution by {rows[i].MatrixMaxAbsDiff}");
            Assert.Equal(rows[i].SpectralNorm, fusedRows[i].SpectralNorm, 1e-4 * rows[i].SpectralNorm);
            Assert.Equal(rows[i].OrthogonalityDeviation, fusedRows[i].OrthogonalityDeviation, 1e-4 * rows[i].OrthogonalityDeviation);
            Assert.Null(fusedRows[i].BranchSimilarityMean);
            if (i == 0)
            {
                Assert.Null(rows[i].BranchSimilarityMean); // the stem has one conv branch, as in timm
                continue;
            }

            Assert.Equal(2, rows[i].Branches);
            Assert.InRange(rows[i].BranchSimilarityMean!.Value, -1, 1);
            Assert.Equal(rows[i].BranchSimilarityMean, rows[i].BranchSimilarityMax);
        }

        // Identical branches are perfectly similar.
        var block = network.Blocks().Skip(1).First().Block;
        block.ConvKxk[0].Conv.Weight.Value.Data.CopyTo(block.ConvKxk[1].Conv.Weight.Value.Data, 0);
        block.ConvKxk[0].Bn.RunningVar.Data.CopyTo(block.ConvKxk[1].Bn.RunningVar.Data, 0);
        block.ConvKxk[0].Bn.Weight.Value.Data.CopyTo(block.ConvKxk[1].Bn.Weight.Value.Data, 0);
        Assert.Equal(1, NetworkAnalysis.BranchSimilarity(block).Mean!.Value, 1e-12);
    }

    [Fact]
    public void A_pointwise_branch_spectrum_is_its_kernel_matrix_spectrum()
    {
        // A 1x1 stride-1 convolution at h x w is kron(W, I_hw): its singular values are W's, each hw times. W's come
        // from MathNet's SVD of the BN-folded kernel, independently of the convolution matrix.
        var config = MobileOneConfig.Parse("units=1/1/1/1,widths=0.25/0.25/0.25/0.25,k=3,classes=5");
        var network = MobileOneNetwork.Create(config);
        WeightInit.Initialize(network, 5);
        WeightInit.RandomizeBatchNorm(network, 6);
        var (_, block) = network.Blocks().First(b => !b.Block.IsFused && b.Block.Spec.KernelSize == 1 && b.Block.Spec.Groups == 1);
        var options = new AnalysisOptions { Size = 3, MaxDenseEntries = 1L << 22 };
        var spectra = NetworkAnalysis.BranchSpectra(block, 3, 3, options);

        var kernels = BranchDiversity.FoldedKernels(block);
        Assert.Equal(3, spectra.Count);
        for (int i = 0; i < kernels.Length; i++)
        {
            var w = MathNet.Numerics.LinearAlgebra.Matrix<double>.Build.Dense(block.Spec.OutChannels, block.Spec.InChannels, (r, c) => kernels[i][(r * block.Spec.InChannels) + c]);
            double[] sigma = w.Svd(computeVectors: false).S.ToArray();
            Assert.Equal(sigma.Max(), spectra[i].SpectralNorm, 1e-9 * sigma.Max());
            var repeated = sigma.OrderByDescending(v => v).SelectMany(v => Enumerable.Repeat(v, 9)).ToArray();
            Assert.Equal(OperatorSpectrum.EffectiveRank(repeated, 0.90), spectra[i].EffectiveRank90);
            Assert.Equal(OperatorSpectrum.EffectiveRank(repeated, 0.99), spectra[i].EffectiveRank99);
        }

        // Without the option the rows carry none; with it every train-time block carries one per branch.
        Assert.All(NetworkAnalysis.Analyze(network, options), row => Assert.Null(row.BranchSpectra));
        var rows = NetworkAnalysis.Analyze(network, options with { BranchSpectra = true });
        Assert.All(rows.Skip(1), row => Assert.Equal(3, row.BranchSpectra!.Count));
    }

    [Fact]
    public void Analyze_prints_one_json_row_per_convolution_of_a_checkpoint()
    {
        var result = CliRunner.Run("analyze", Fixtures.Path("mobileone_s0_timm.safetensors"), "--size", "8", "--max-dense", "200000", "--verify-dbt", "--json");

        Assert.Equal(0, result.ExitCode);
        var rows = JsonNode.Parse(result.StdOut)!.AsArray();
        Assert.Equal(1 + (2 * (2 + 8 + 10 + 1)), rows.Count); // the stem, then a depthwise and a pointwise block per unit
        var stem = rows[0]!;
        Assert.Equal("stem", (string)stem["layer"]!);
        Assert.Equal(48L * 4 * 4, (long)stem["dbt_rows"]!);
        Assert.Equal(3L * 8 * 8, (long)stem["dbt_columns"]!);
        foreach (var row in rows)
        {
            Assert.True((double)row!["dbt_max_abs_diff"]! < 1e-3);
            Assert.True((double)row["spectral_norm"]! > 0);
            Assert.Equal((string)row["layer"]! == "stem" ? 1 : 4, (int)row["branches"]!); // timm's stem has one conv branch
        }

        var branches = JsonNode.Parse(CliRunner.Run("analyze", Fixtures.Path("mobileone_s0_timm.safetensors"), "--size", "4", "--max-dense", "0", "--branches", "--json").StdOut)!.AsArray();
        Assert.All(branches.Skip(1), row => Assert.Equal(4, row!["branch_spectral_norms"]!.AsArray().Count));
        Assert.All(branches.Skip(1), row => Assert.Null(row!["branch_effective_rank_90"]!.AsArray()[0])); // --max-dense 0: no dense SVD

        var bad = CliRunner.Run("analyze", Fixtures.Path("mobileone_s0_timm.safetensors"), "--size", "0");
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("--size", bad.StdErr);
    }

    private static float[] Random(Random rng, int n)
    {
        var v = new float[n];
        for (int i = 0; i < n; i++)
        {
            v[i] = (float)((2 * rng.NextDouble()) - 1);
        }

        return v;
    }

    private static double[] RandomDouble(Random rng, int n) => Array.ConvertAll(Random(rng, n), v => (double)v);

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
