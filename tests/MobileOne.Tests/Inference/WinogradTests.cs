using MobileOne.Graph;
using MobileOne.Inference;
using MobileOne.Kernels;
using MobileOne.Kernels.Conv;
using MobileOne.Tests.Graph;

namespace MobileOne.Tests.Inference;

/// <summary>
/// The engine's Winograd F(2x2, 3x3) path for dense 3x3 stride-1 convolutions, against the float64 definition of the
/// graph (<see cref="GraphReference"/>): odd and even sizes (overhanging last tiles), paddings 0..2, channel counts that
/// are not multiples of 16, several images, branches that accumulate, residual adds and activations in the epilogue.
/// </summary>
public class WinogradTests
{
    [Fact]
    public void Filter_transform_equals_g_times_kernel_times_g_transposed()
    {
        // One 3x3 kernel (o = 1, i = 2 of a 2 x 3 weight) against the product written out with G's rows.
        var rng = new Random(3);
        var weight = Enumerable.Range(0, 2 * 3 * 9).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();
        var u = Winograd.TransformFilters(weight, 2, 3, 16);
        double[,] gm = { { 1, 0, 0 }, { 0.5, 0.5, 0.5 }, { 0.5, -0.5, 0.5 }, { 0, 0, 1 } };
        for (int r = 0; r < 4; r++)
        {
            for (int c = 0; c < 4; c++)
            {
                double expected = 0;
                for (int y = 0; y < 3; y++)
                {
                    for (int x = 0; x < 3; x++)
                    {
                        expected += gm[r, y] * weight[(((1 * 3) + 2) * 9) + (3 * y) + x] * gm[c, x];
                    }
                }

                Assert.Equal(expected, u[(4 * r) + c][(1 * 16) + 2], 6);
            }
        }

        // Padded input channels get zero columns.
        Assert.All(Enumerable.Range(0, 16), e => Assert.Equal(0f, u[e][(1 * 16) + 3]));
    }

    [Theory]
    [IsaData(IsaLevel.Avx512, 1)]
    [IsaData(IsaLevel.Avx512, 3)]
    [IsaData(IsaLevel.Avx2, 2)]
    [IsaData(IsaLevel.Scalar, 1)]
    public void Three_by_three_stride_one_layers_match_the_float64_definition(IsaLevel isa, int threads)
    {
        var rng = new Random(11);
        var graph = WinogradGraph(rng, inChannels: 5);
        using var model = CompiledModel.Compile(graph, new InferenceOptions { Isa = isa, Threads = threads });
        var layers = model.DescribeLayers(9, 9);
        string Algorithm(string name) => layers.Single(l => l.Layer.Name == name).Layer.Algorithm;
        Assert.StartsWith("winograd-f2x2-3x3", Algorithm("pad1"), StringComparison.Ordinal);
        Assert.StartsWith("winograd-f2x2-3x3", Algorithm("pad0"), StringComparison.Ordinal);
        Assert.StartsWith("winograd-f2x2-3x3", Algorithm("pad2"), StringComparison.Ordinal);
        Assert.Contains("accumulate", Algorithm("branch.b"), StringComparison.Ordinal);
        Assert.Contains("residual", Algorithm("res"), StringComparison.Ordinal);

        // The stem reads the caller's NCHW input through its own kernel, not Winograd.
        Assert.DoesNotContain("winograd", Algorithm("stem"), StringComparison.Ordinal);
        // Small inputs on several threads split the products by element; 2 x 40 x 33 (800 tiles) by tiles.
        foreach (var (batch, h, w) in new[] { (1, 9, 9), (2, 16, 11), (3, 14, 14), (1, 31, 6), (2, 40, 33) })
        {
            var input = EngineTestSupport.RandomInput(rng, batch, 5, h, w);
            var expected = GraphReference.Evaluate(graph, input).Select(v => (float)v).ToArray();
            EngineTestSupport.AssertClose(expected, model.Run(input).Data, $"{isa} x{threads} batch {batch} {h}x{w}");
        }
    }

    [Theory]
    [InlineData(7, 512)]
    [InlineData(14, 96)]
    public void Wide_layers_at_small_sizes_match_the_float64_definition(int size, int channels)
    {
        // ResNet's and RepVGG's last stages: K = 512 input channels split into panels and shares.
        var rng = new Random(size);
        var g = new LayerGraph(channels);
        int pre = g.Add(ConvNode.Square("pre", LayerGraph.Input, channels, channels, 1, 1, 0, 1, Random(rng, channels * channels), Random(rng, channels)));
        int conv = g.Add(ConvNode.Square("conv", pre, channels, channels, 3, 1, 1, 1, Random(rng, channels * channels * 9, 0.05), Random(rng, channels)));
        g.Add(new ActivationNode("act", conv, ActivationKind.Relu));
        var input = EngineTestSupport.RandomInput(rng, 2, channels, size, size);
        var expected = GraphReference.Evaluate(g, input).Select(v => (float)v).ToArray();
        foreach (int threads in new[] { 1, 2 })
        {
            using var model = CompiledModel.Compile(g, new InferenceOptions { Threads = threads });
            EngineTestSupport.AssertClose(expected, model.Run(input).Data, $"{size}x{size}x{channels} x{threads}");
        }
    }

    [Fact]
    public void Few_tiles_per_share_split_the_products_by_element_and_many_by_tiles()
    {
        Assert.False(WinogradStep.SplitsElements(shares: 1, tiles: 16, inStride: 512, outStride: 512));
        Assert.True(WinogradStep.SplitsElements(shares: 8, tiles: 49, inStride: 192, outStride: 192));
        Assert.True(WinogradStep.SplitsElements(shares: 8, tiles: 16, inStride: 512, outStride: 512));
        Assert.False(WinogradStep.SplitsElements(shares: 8, tiles: 784, inStride: 64, outStride: 64));

        // A batch large enough to need more than 16 MB of transformed values goes per tile whatever the tile count.
        Assert.False(WinogradStep.SplitsElements(shares: 64, tiles: 1000, inStride: 512, outStride: 512));
    }

    /// <summary>
    /// stem (3x3 on the NCHW input) -> 3x3 pad 1 (ReLU) -> 3x3 pad 0 -> 3x3 pad 2 with SiLU -> two 3x3 branches summed (the second
    /// accumulates) -> 3x3 with a residual add and ReLU6 -> pool -> linear.
    /// </summary>
    private static LayerGraph WinogradGraph(Random rng, int inChannels)
    {
        var g = new LayerGraph(inChannels);
        int stem = g.Add(ConvNode.Square("stem", LayerGraph.Input, inChannels, 20, 3, 1, 1, 1, Random(rng, 20 * inChannels * 9), Random(rng, 20)));
        int pad1 = g.Add(ConvNode.Square("pad1", stem, 20, 24, 3, 1, 1, 1, Random(rng, 24 * 20 * 9), Random(rng, 24)));
        int relu = g.Add(new ActivationNode("pad1.act", pad1, ActivationKind.Relu));
        int pad0 = g.Add(ConvNode.Square("pad0", relu, 24, 17, 3, 1, 0, 1, Random(rng, 17 * 24 * 9), Random(rng, 17)));
        int pad2 = g.Add(ConvNode.Square("pad2", pad0, 17, 33, 3, 1, 2, 1, Random(rng, 33 * 17 * 9), Random(rng, 33)));
        int silu = g.Add(new ActivationNode("pad2.act", pad2, ActivationKind.Silu));
        int a = g.Add(ConvNode.Square("branch.a", silu, 33, 32, 3, 1, 1, 1, Random(rng, 32 * 33 * 9), Random(rng, 32)));
        int b = g.Add(ConvNode.Square("branch.b", silu, 33, 32, 3, 1, 1, 1, Random(rng, 32 * 33 * 9), Random(rng, 32)));
        int sum = g.Add(new AddNode("branch.sum", [a, b]));
        int res = g.Add(ConvNode.Square("res", sum, 32, 32, 3, 1, 1, 1, Random(rng, 32 * 32 * 9), Random(rng, 32)));
        int add = g.Add(new AddNode("res.add", [res, sum]));
        int relu6 = g.Add(new ActivationNode("res.act", add, ActivationKind.Relu6));
        int pooled = g.Add(new GlobalAveragePoolNode("pool", relu6));
        g.Add(new LinearNode("fc", pooled, 32, 7, Random(rng, 32 * 7), Random(rng, 7)));
        return g;
    }

    private static float[] Random(Random rng, int n, double spread = 0.5) =>
        Enumerable.Range(0, n).Select(_ => (float)((rng.NextDouble() - 0.5) * 2 * spread)).ToArray();
}
