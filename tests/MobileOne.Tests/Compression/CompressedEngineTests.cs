using MobileOne.Compression;
using MobileOne.Graph;
using MobileOne.Inference;
using MobileOne.IO.Checkpoints;
using MobileOne.Kernels;
using MobileOne.Models;
using MobileOne.Tests.Inference;

namespace MobileOne.Tests.Compression;

/// <summary>
/// The sparse convolution kernel against a float64 dense convolution of the same weight, and compressed layers and
/// networks on the engine against float64 references of L + S and against the dense fused model.
/// </summary>
public class CompressedEngineTests
{
    [Theory]
    [InlineData(1, 1, 0, false)]
    [InlineData(3, 1, 1, false)]
    [InlineData(3, 2, 1, false)]
    [InlineData(3, 2, 1, true)]
    public unsafe void The_sparse_kernel_equals_a_dense_float64_convolution_of_its_weight(int k, int stride, int pad, bool accumulate)
    {
        const int n = 2, c = 5, h = 7, w = 19, o = 9, inStride = 8, outStride = 16;
        var rng = new Random(k * 10 + stride);
        var x = Reference.RandomArray(rng, n * c * h * w);

        // About a third of the weights stored, the rest zero; entry order is the CSR order (ascending per row).
        var weight = new float[o * c * k * k];
        var indices = new List<int>();
        for (int i = 0; i < weight.Length; i++)
        {
            if (rng.NextDouble() < 0.33)
            {
                weight[i] = (float)((rng.NextDouble() * 2) - 1);
                indices.Add(i);
            }
        }

        var (starts, columns) = SparseConvNode.FromFlatIndices(indices.ToArray(), o, c * k * k);
        var kernel = new SparseConvolution(c, o, k, k, stride, stride, pad, pad, starts, columns, indices.Select(i => weight[i]).ToArray());
        int ho = ((h + (2 * pad) - k) / stride) + 1, wo = ((w + (2 * pad) - k) / stride) + 1;

        // Rows of 19 pixels: blocks of SparseConvolution.Block interior pixels and single border pixels both run.
        // NHWC input with a padded channel stride (padding holds garbage the kernel must not read).
        var input = new float[n * h * w * inStride];
        Array.Fill(input, float.NaN);
        for (int b = 0; b < n; b++)
        {
            for (int ci = 0; ci < c; ci++)
            {
                for (int p = 0; p < h * w; p++)
                {
                    input[(((b * h * w) + p) * inStride) + ci] = x[(((b * c) + ci) * h * w) + p];
                }
            }
        }

        var output = new float[n * ho * wo * outStride];
        Array.Fill(output, accumulate ? 0.5f : float.NaN);
        long pixels = (long)n * ho * wo;
        fixed (float* pi = input, po = output)
        {
            // Two calls that split the pixels unevenly, as two shares would.
            kernel.Run(pi, h, w, inStride, po, ho, wo, outStride, 0, pixels / 3, accumulate);
            kernel.Run(pi, h, w, inStride, po, ho, wo, outStride, pixels / 3, pixels, accumulate);
        }

        var expected = Reference.Conv2d(x, n, c, h, w, weight, o, k, stride, pad, 1, null);
        double worst = 0;
        for (int b = 0; b < n; b++)
        {
            for (int oc = 0; oc < o; oc++)
            {
                for (int p = 0; p < ho * wo; p++)
                {
                    double want = expected[(((b * o) + oc) * ho * wo) + p] + (accumulate ? 0.5 : 0);
                    worst = Math.Max(worst, Math.Abs(output[(((b * ho * wo) + p) * outStride) + oc] - want));
                }
            }
        }

        Assert.True(worst < 1e-5, $"max diff {worst:e3}");
        if (!accumulate)
        {
            Assert.All(Enumerable.Range(0, (int)pixels), p => Assert.All(Enumerable.Range(o, outStride - o), ch => Assert.Equal(0f, output[(p * outStride) + ch])));
        }
    }

    [Theory]
    [InlineData(1, 1, 0, 1)]
    [InlineData(1, 1, 0, 2)]
    [InlineData(3, 2, 1, 1)]
    [InlineData(3, 2, 1, 2)]
    public void A_compressed_layer_on_the_engine_equals_a_float64_convolution_of_L_plus_S(int k, int stride, int pad, int threads)
    {
        const int n = 2, c = 24, h = 9, w = 9, o = 20;
        var rng = new Random(11);
        var dense = ConvNode.Square("layer", LayerGraph.Input, c, o, k, stride, pad, 1, Reference.RandomArray(rng, o * c * k * k), Reference.RandomArray(rng, o));
        var decomposition = LowRankSparse.Decompose(dense.Weight, o, c * k * k, rank: 4, sparseEntries: o * c * k * k / 10);
        var layer = CompressedConv.FromDecomposition(dense, decomposition);
        Assert.NotEmpty(layer.SparseValues);

        var original = new LayerGraph(c);
        original.Add(new ActivationNode("act", original.Add(dense), ActivationKind.Relu));
        var graph = CompressedGraph.Replace(original, new Dictionary<string, CompressedConv> { ["layer"] = layer });
        Assert.Contains(graph.Nodes, node => node is SparseConvNode);

        var x = Reference.RandomArray(rng, n * c * h * w);
        using var model = CompiledModel.Compile(graph, new InferenceOptions { Threads = threads });
        var actual = model.Run(new Tensors.Tensor([n, c, h, w], x)).Data;
        var expected = Reference.Conv2d(x, n, c, h, w, layer.DenseWeight(), o, k, stride, pad, 1, Array.ConvertAll(layer.Bias, v => (double)v)).Select(v => Math.Max(v, 0)).ToArray();
        double diff = Reference.MaxAbsDiff(actual, expected);
        Assert.True(diff < 1e-4, $"max diff {diff:e3}");
    }

    [Fact]
    public void Full_rank_factors_without_a_sparse_part_run_like_the_dense_fused_S0()
    {
        var fused = ModelCheckpoint.Load(Fixtures.Path("mobileone_s0_timm_fused.safetensors")).Network;
        var layers = fused.ToGraph().Nodes.OfType<ConvNode>().Where(c => NetworkCompressor.Considered(c, CompressionLayers.All)).Select(c =>
        {
            int rows = c.OutChannels, columns = c.InChannels * c.KernelHeight * c.KernelWidth;
            return CompressedConv.FromDecomposition(c, LowRankSparse.Decompose(c.Weight, rows, columns, Math.Min(rows, columns), 0));
        }).ToList();
        var compressed = new CompressedNetwork(fused, layers);
        Assert.Equal(22, compressed.Layers.Count);

        var input = EngineTestSupport.RandomInput(new Random(5), 2, 3, 64, 64);
        using var denseModel = CompiledModel.Compile(fused);
        using var compressedModel = CompiledModel.Compile(compressed);
        EngineTestSupport.AssertClose(denseModel.Run(input).Data, compressedModel.Run(input).Data, "full-rank factors vs dense");
    }

    [Fact]
    public void A_compressed_S0_on_the_engine_equals_the_dense_network_holding_L_plus_S()
    {
        var fused = ModelCheckpoint.Load(Fixtures.Path("mobileone_s0_timm_fused.safetensors")).Network;
        var options = new CompressionOptions { RankRatio = 0.25, Sparsity = 0.02, Alternation = new LowRankSparseOptions { MaxIterations = 2 } };
        var (compressed, rows) = NetworkCompressor.Compress(fused, options);
        Assert.Equal(21, rows.Count);
        Assert.All(rows, r => Assert.True(r.Compressed));

        // The reference: the same fused network with each compressed layer's dense weight set to L + S (summed in double).
        var reference = ModelCheckpoint.Load(Fixtures.Path("mobileone_s0_timm_fused.safetensors")).Network;
        var referenceConvs = reference.ToGraph().Nodes.OfType<ConvNode>().ToDictionary(c => c.Name);
        foreach (var layer in compressed.Layers)
        {
            Array.Copy(Array.ConvertAll(layer.DenseWeight(), v => (float)v), referenceConvs[layer.Name].Weight, layer.DenseWeights);
        }

        var input = EngineTestSupport.RandomInput(new Random(6), 1, 3, 64, 64);
        using var referenceModel = CompiledModel.Compile(reference);
        using var compressedModel = CompiledModel.Compile(compressed);
        EngineTestSupport.AssertClose(referenceModel.Run(input).Data, compressedModel.Run(input).Data, "compressed vs dense L + S");
        Assert.True(compressed.ToGraph().Parameters() < fused.ToGraph().Parameters());
    }
}
