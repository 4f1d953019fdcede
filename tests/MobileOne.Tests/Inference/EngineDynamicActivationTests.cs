using MobileOne.Graph;
using MobileOne.Inference;
using MobileOne.IO.Onnx;
using MobileOne.Kernels;
using MobileOne.Tensors;
using MobileOne.Tests.Graph;

namespace MobileOne.Tests.Inference;

/// <summary>
/// DyReLU (A and B) and dynamic shift-max: the engine against the float64 <see cref="GraphReference"/>, and tiny
/// hand-computed cases that pin the definitions (coefficient order, initialization, normalization, shift).
/// </summary>
public class EngineDynamicActivationTests
{
    private static readonly double Ln3 = Math.Log(3);

    [Theory]
    [IsaData(IsaLevel.Avx512, 1)]
    [IsaData(IsaLevel.Avx512, 3)]
    [IsaData(IsaLevel.Avx2, 1)]
    [IsaData(IsaLevel.Avx2, 3)]
    [IsaData(IsaLevel.Scalar, 1)]
    [IsaData(IsaLevel.Scalar, 3)]
    public void A_graph_with_dynamic_activations_matches_the_float64_definition(IsaLevel isa, int threads)
    {
        var graph = DynamicGraph(new Random(11), inChannels: 4);
        using var model = CompiledModel.Compile(graph, new InferenceOptions { Isa = isa, Threads = threads });
        var rng = new Random(12);
        foreach (var (batch, h, w) in new[] { (2, 9, 9), (3, 5, 7), (1, 1, 1) })
        {
            var input = EngineTestSupport.RandomInput(rng, batch, 4, h, w);
            var expected = GraphReference.Evaluate(graph, input);
            EngineTestSupport.AssertClose(expected.Select(v => (float)v).ToArray(), model.Run(input).Data, $"{isa} x{threads} batch {batch} {h}x{w}");
        }
    }

    [Fact]
    public void Dynamic_activations_whose_outputs_are_the_graph_output_match_per_element()
    {
        // Spatial outputs expose every element of each dynamic node (no pooling to average errors away).
        var rng = new Random(21);
        var input = EngineTestSupport.RandomInput(rng, 2, 4, 6, 5);
        foreach (var node in new GraphNode[]
        {
            DyRelu(rng, "a", 1, 8, 3, DyReluKind.A, 2),
            DyRelu(rng, "b", 1, 8, 3, DyReluKind.B, 3),
            ShiftMax(rng, "m", 1, 8, 4, 2, 2, 3),
            ShiftMax(rng, "m3", 1, 8, 2, 3, 2, 5),
        })
        {
            var graph = new LayerGraph(4);
            graph.Add(ConvNode.Square("conv", LayerGraph.Input, 4, 8, 3, 1, 1, 1, Random(rng, 8 * 4 * 9), Random(rng, 8)));
            graph.Add(node);
            var expected = GraphReference.Evaluate(graph, input).Select(v => (float)v).ToArray();
            foreach (int threads in new[] { 1, 3 })
            {
                using var model = CompiledModel.Compile(graph, new InferenceOptions { Threads = threads });
                EngineTestSupport.AssertClose(expected, model.Run(input).Data, $"{node.Name} x{threads}");
            }
        }
    }

    [Fact]
    public void DyRelu_with_zero_fc2_is_relu_and_a_known_bias_gives_a_leaky_slope()
    {
        // W2 = 0: theta = 2 sigmoid(b2) - 1. b2 = 0 gives the initial coefficients a = (1, 0), b = (0, 0): ReLU.
        // b2 = ln 3 on a^1 gives sigmoid = 3/4, theta = 1/2, a^1 = 0.5: y = max(x, 0.5 x).
        // b2 = ln 3 on b^0 gives b^0 = lambdaB / 2 = 0.25: y = max(x + 0.25, 0).
        var x = new float[] { -2f, -0.5f, 0f, 1.5f, 3f, -1f, 0.25f, -4f };
        var cases = new (DyReluKind Kind, int Index, float[] Expected)[]
        {
            (DyReluKind.A, -1, x.Select(v => Math.Max(v, 0f)).ToArray()),
            (DyReluKind.A, 1, x.Select(v => Math.Max(v, 0.5f * v)).ToArray()),
            (DyReluKind.A, 2, x.Select(v => Math.Max(v + 0.25f, 0f)).ToArray()),

            // DyReLU-B: channel 1's a^1 (output 1 * 2K + 1 = 5); channel 0 stays ReLU.
            (DyReluKind.B, 5, x.Select((v, i) => i < 4 ? Math.Max(v, 0f) : Math.Max(v, 0.5f * v)).ToArray()),
        };
        foreach (var (kind, index, expected) in cases)
        {
            int coefficients = kind == DyReluKind.A ? 4 : 8;
            var b2 = new float[coefficients];
            if (index >= 0)
            {
                b2[index] = (float)Ln3;
            }

            var graph = new LayerGraph(2);
            graph.Add(new DyReluNode("dy", LayerGraph.Input, 2, 3, kind, 2, Random(new Random(1), 6), Random(new Random(2), 3), new float[coefficients * 3], b2));
            var input = new Tensor([1, 2, 2, 2], x);
            AssertHand(expected, GraphReference.Evaluate(graph, input), $"reference DyReLU-{kind} {index}");
            foreach (int threads in new[] { 1, 3 })
            {
                using var model = CompiledModel.Compile(graph, new InferenceOptions { Threads = threads });
                AssertHand(expected, model.Run(input).Data.Select(v => (double)v).ToArray(), $"engine DyReLU-{kind} {index} x{threads}");
            }
        }
    }

    [Fact]
    public void Shift_max_with_zero_fc2_is_the_identity_and_a_saturated_bias_adds_the_shifted_group()
    {
        // C = 4, G = 2 groups (shift by 2 channels), J = 2, K = 2. W2 = 0: a = init + (2 hsigmoid(b2) - 1).
        // b2 = 0: hsigmoid = 1/2, a^k = (1, 0): y = x. b2 = 3 on a^0_{i,1} (outputs (0 J + 1) C + i = 4..7):
        // hsigmoid = 1, a^0_{i,1} = 1: y_i = max(x_i + x_{(i + 2) mod 4}, x_i).
        var x = new float[] { 1f, -2f, 0.5f, 3f };
        var shifted = x.Select((v, i) => Math.Max(v + x[(i + 2) % 4], v)).ToArray();
        foreach (var (saturate, expected) in new[] { (false, x), (true, shifted) })
        {
            var b2 = new float[16];
            if (saturate)
            {
                for (int i = 0; i < 4; i++)
                {
                    b2[4 + i] = 3f;
                }
            }

            var graph = new LayerGraph(4);
            graph.Add(new DynamicShiftMaxNode("dsm", LayerGraph.Input, 4, 2, 2, 2, 3, Random(new Random(1), 12), Random(new Random(2), 3), new float[16 * 3], b2));
            var input = new Tensor([1, 4, 1, 1], x);
            AssertHand(expected, GraphReference.Evaluate(graph, input), $"reference shift-max saturate={saturate}");
            foreach (int threads in new[] { 1, 3 })
            {
                using var model = CompiledModel.Compile(graph, new InferenceOptions { Threads = threads });
                AssertHand(expected, model.Run(input).Data.Select(v => (double)v).ToArray(), $"engine shift-max saturate={saturate} x{threads}");
            }
        }
    }

    [Fact]
    public void Layers_describe_the_dynamic_activations_and_count_their_multiply_accumulates()
    {
        var graph = DynamicGraph(new Random(11), inChannels: 4);
        using var model = CompiledModel.Compile(graph);
        var layers = model.DescribeLayers(9, 9);
        Assert.Contains(layers, l => l.Layer.Name == "dyrelu.a" && l.Layer.Algorithm == "dyrelu-a-k2-scalar");
        Assert.Contains(layers, l => l.Layer.Name == "dyrelu.b" && l.Layer.Algorithm == "dyrelu-b-k2-scalar");
        Assert.Contains(layers, l => l.Layer.Name == "shiftmax" && l.Layer.Algorithm == "dynamic-shift-max-j2-k2-scalar");
        var shiftMax = layers.Single(l => l.Layer.Name == "shiftmax");
        Assert.Equal((12L * 4) + (2L * 2 * 12 * 4) + (2L * 2 * 12 * 5 * 5), shiftMax.MultiplyAccumulates);
    }

    [Fact]
    public void Invalid_dynamic_activation_nodes_are_rejected()
    {
        var g = new LayerGraph(6);
        Assert.Throws<ArgumentException>(() => g.Add(new DynamicShiftMaxNode("m", LayerGraph.Input, 6, 4, 2, 2, 2, new float[12], new float[2], new float[48], new float[24])));
        Assert.Throws<ArgumentException>(() => g.Add(new DyReluNode("d", LayerGraph.Input, 6, 2, DyReluKind.B, 2, new float[12], new float[2], new float[8], new float[4])));
    }

    [Theory]
    [InlineData(13)]
    [InlineData(17)]
    public void The_onnx_decomposition_runs_in_onnxruntime_like_the_float64_definition(int opset)
    {
        // Every value of the graph on its own (the graph returning it), so an error in one node cannot hide behind pooling.
        var graph = DynamicGraph(new Random(11), inChannels: 4);
        graph.Add(ShiftMax(new Random(13), "shiftmax3", 5, 12, 4, 3, 3, 5));
        var input = EngineTestSupport.RandomInput(new Random(14), 2, 4, 9, 7);
        var expected = GraphReference.EvaluateAll(graph, input);
        for (int value = 1; value <= graph.Nodes.Count; value++)
        {
            if (graph.Nodes[value - 1] is GlobalAveragePoolNode or LinearNode)
            {
                continue;
            }

            graph.Output = value;
            using var ort = MobileOne.Tests.IO.Onnx.OrtHarness.FromBytes(OnnxExporter.ToBytes(graph, opset));
            var actual = ort.Run(input);
            EngineTestSupport.AssertClose(expected[value].Select(v => (float)v).ToArray(), actual.Data, $"opset {opset} value {value} ({graph.Nodes[value - 1].Name})");
        }
    }

    /// <summary>conv -> DyReLU-A -> conv -> DyReLU-B -> dynamic shift-max -> global pool -> linear, random weights.</summary>
    internal static LayerGraph DynamicGraph(Random rng, int inChannels)
    {
        var g = new LayerGraph(inChannels);
        int conv1 = g.Add(ConvNode.Square("conv1", LayerGraph.Input, inChannels, 8, 3, 1, 1, 1, Random(rng, 8 * inChannels * 9), Random(rng, 8)));
        int a = g.Add(DyRelu(rng, "dyrelu.a", conv1, 8, 3, DyReluKind.A, 2));
        int conv2 = g.Add(ConvNode.Square("conv2", a, 8, 12, 3, 2, 1, 1, Random(rng, 12 * 8 * 9), Random(rng, 12)));
        int b = g.Add(DyRelu(rng, "dyrelu.b", conv2, 12, 4, DyReluKind.B, 2));
        int m = g.Add(ShiftMax(rng, "shiftmax", b, 12, 3, 2, 2, 4));

        // 40 channels: whole vectors on both widths plus a tail, and shift-max partners that wrap inside a vector.
        int conv3 = g.Add(ConvNode.Square("conv3", m, 12, 40, 1, 1, 0, 1, Random(rng, 40 * 12), Random(rng, 40)));
        int wide = g.Add(DyRelu(rng, "dyrelu.wide", conv3, 40, 5, DyReluKind.B, 3));
        int shifted = g.Add(ShiftMax(rng, "shiftmax.wide", wide, 40, 4, 3, 2, 5));
        int pooled = g.Add(new GlobalAveragePoolNode("pool", shifted));
        g.Add(new LinearNode("fc", pooled, 40, 5, Random(rng, 40 * 5), Random(rng, 5)));
        return g;
    }

    private static DyReluNode DyRelu(Random rng, string name, int input, int channels, int reduced, DyReluKind kind, int k)
    {
        int outputs = kind == DyReluKind.A ? 2 * k : 2 * k * channels;
        return new DyReluNode(name, input, channels, reduced, kind, k, Random(rng, reduced * channels), Random(rng, reduced), Random(rng, outputs * reduced, 0, 1.5), Random(rng, outputs));
    }

    private static DynamicShiftMaxNode ShiftMax(Random rng, string name, int input, int channels, int groups, int j, int k, int reduced)
    {
        int outputs = k * j * channels;
        return new DynamicShiftMaxNode(name, input, channels, groups, j, k, reduced, Random(rng, reduced * channels), Random(rng, reduced), Random(rng, outputs * reduced, 0, 1.5), Random(rng, outputs));
    }

    private static void AssertHand(float[] expected, double[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-6 * Math.Max(1, Math.Abs(expected[i])), $"{what}: element {i} is {actual[i]}, expected {expected[i]}");
        }
    }

    private static float[] Random(Random rng, int n, double center = 0, double spread = 0.5) =>
        Enumerable.Range(0, n).Select(_ => (float)(center + ((rng.NextDouble() * 2) - 1) * spread)).ToArray();
}
