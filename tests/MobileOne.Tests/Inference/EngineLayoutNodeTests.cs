using MobileOne.Graph;
using MobileOne.Inference;
using MobileOne.Kernels;
using MobileOne.Kernels.Conv;
using MobileOne.Models;
using MobileOne.Tests.Graph;

namespace MobileOne.Tests.Inference;

/// <summary>
/// Softmax, Concat and Pad on the engine against <see cref="GraphReference"/>: channel counts that are not multiples
/// of 16 (so the NHWC values carry padding channels that the next convolution's patches read), an asymmetric pad on
/// the caller's input, a concat read by a dense KxK convolution, and a softmax over large logits (which overflows
/// exp without the max subtracted).
/// </summary>
public class EngineLayoutNodeTests
{
    [Theory]
    [IsaData(IsaLevel.Avx512, 1, ConvAlgorithm.Auto)]
    [IsaData(IsaLevel.Avx2, 2, ConvAlgorithm.Auto)]
    [IsaData(IsaLevel.Scalar, 1, ConvAlgorithm.Auto)]
    [IsaData(IsaLevel.Avx2, 2, ConvAlgorithm.Im2Col)]
    public void Pad_concat_and_softmax_match_the_float64_reference(IsaLevel isa, int threads, ConvAlgorithm algorithm)
    {
        var graph = Graph(out int features);
        var input = EngineTestSupport.RandomInput(new Random(3), 2, 3, 13, 10);
        using var model = CompiledModel.Compile(graph, new InferenceOptions { Isa = isa, Threads = threads, ConvAlgorithm = algorithm });
        var expected = GraphReference.EvaluateAll(graph, input);
        EngineTestSupport.AssertClose(expected[graph.Output].Select(v => (float)v).ToArray(), model.Run(input).Data, $"{isa} x{threads} {algorithm}");

        // The probabilities of each image sum to 1 and the feature-map softmax is checked on its own.
        var probabilities = model.Run(input).Data;
        Assert.All(probabilities.Chunk(10), row => Assert.Equal(1.0, row.Sum(v => (double)v), 5));
        graph.Output = features;
        using var featureModel = CompiledModel.Compile(graph, new InferenceOptions { Isa = isa, Threads = threads, ConvAlgorithm = algorithm });
        EngineTestSupport.AssertClose(expected[features].Select(v => (float)v).ToArray(), featureModel.Run(input).Data, $"feature softmax {isa}");
    }

    [Fact]
    public void Large_logits_give_finite_probabilities()
    {
        var g = new LayerGraph(2);
        int x = g.Add(new GlobalAveragePoolNode("pool", LayerGraph.Input));
        // Logits 200, 50 and 150: exp overflows float32 above 88, not float64 (the reference).
        x = g.Add(new LinearNode("fc", x, 2, 3, [100, 0, 0, 50, 75, 0], [100, 0, 75]));
        g.Add(new SoftmaxNode("probs", x));
        using var model = CompiledModel.Compile(g);
        var input = new MobileOne.Tensors.Tensor([1, 2, 1, 1], [1, 1]);
        var p = model.Run(input).Data;
        Assert.All(p, v => Assert.True(float.IsFinite(v)));
        EngineTestSupport.AssertClose(GraphReference.Evaluate(g, input).Select(v => (float)v).ToArray(), p, "large logits");
    }

    [Fact]
    public void The_new_nodes_add_no_parameters_or_multiply_accumulates()
    {
        var graph = Graph(out _);
        var convs = graph.Nodes.Where(n => n is ConvNode or LinearNode).ToList();
        Assert.Equal(convs.Sum(n => n.Parameters), graph.Parameters());
        var shapes = graph.InferShapes(13, 10);
        long macs = graph.Nodes.Select((n, i) => n switch
        {
            ConvNode c => (long)c.OutChannels * (c.InChannels / c.Groups) * c.KernelHeight * c.KernelWidth * shapes[i + 1].Height * shapes[i + 1].Width,
            LinearNode l => (long)l.InFeatures * l.OutFeatures,
            _ => 0,
        }).Sum();
        Assert.Equal(macs, graph.MultiplyAccumulates(13, 10));
        Assert.Equal(new ValueShape(3, 14, 13), shapes[1]);
    }

    [Fact]
    public void Concat_of_different_sizes_is_refused_by_name()
    {
        var g = new LayerGraph(3);
        int a = g.Add(ConvNode.Square("a", LayerGraph.Input, 3, 4, 3, 1, 1, 1, Random(108, 1), null));
        int b = g.Add(ConvNode.Square("b", LayerGraph.Input, 3, 4, 3, 2, 1, 1, Random(108, 2), null));
        g.Add(new ConcatNode("cat", [a, b]));
        var e = Assert.Throws<ArgumentException>(() => g.InferShapes(8, 8));
        Assert.Contains("Node cat: concatenated values must have one height and width", e.Message);
    }

    /// <summary>
    /// Input -> asymmetric pad -> conv (5) ; conv (13) ; concat (18, plus the 5 again) -> 3x3 conv -> softmax over
    /// channels (the feature value) -> pool -> fc -> softmax.
    /// </summary>
    private static LayerGraph Graph(out int features)
    {
        var g = new LayerGraph(3);
        int padded = g.Add(new PadNode("pad", LayerGraph.Input, 0, 2, 1, 1));
        int a = g.Add(ConvNode.Square("a", padded, 3, 5, 3, 1, 1, 1, Random(5 * 3 * 9, 1), Random(5, 2)));
        a = g.Add(new ActivationNode("a.act", a, ActivationKind.Relu));
        int b = g.Add(ConvNode.Square("b", padded, 3, 13, 1, 1, 0, 1, Random(13 * 3, 3), Random(13, 4)));
        int cat = g.Add(new ConcatNode("cat", [a, b, a]));
        int c = g.Add(ConvNode.Square("c", cat, 23, 6, 3, 1, 1, 1, Random(6 * 23 * 9, 5), Random(6, 6)));
        features = g.Add(new SoftmaxNode("c.softmax", c));
        int pooled = g.Add(new GlobalAveragePoolNode("pool", features));
        int logits = g.Add(new LinearNode("fc", pooled, 6, 10, Random(60, 7).Select(v => v * 20).ToArray(), Random(10, 8)));
        g.Add(new SoftmaxNode("probs", logits));
        return g;
    }

    private static float[] Random(int n, int seed)
    {
        var v = new float[n];
        WeightInit.FillNormal(new Random(seed), v, 0, 0.5);
        return v;
    }
}
