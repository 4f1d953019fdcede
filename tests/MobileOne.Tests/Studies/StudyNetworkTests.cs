using MobileOne.Graph;
using MobileOne.Inference;
using MobileOne.IO.Onnx;
using MobileOne.Studies;
using MobileOne.Tests.Graph;
using MobileOne.Tests.Inference;
using MobileOne.Tests.IO.Onnx;

namespace MobileOne.Tests.Studies;

/// <summary>
/// The 30-layer study network: its layers, shapes and counts against a hand count, and every variant on the engine and
/// on ONNX Runtime against the float64 evaluation of the graph (<see cref="GraphReference"/>), which computes DyReLU and
/// dynamic shift-max from the papers' formulas.
/// </summary>
public class StudyNetworkTests
{
    public static TheoryData<string, string> AllVariants()
    {
        var data = new TheoryData<string, string>();
        foreach (var v in StudyNetwork.Activations.Concat(StudyNetwork.Blocks))
        {
            data.Add(v.Study, v.Name);
        }

        return data;
    }

    private static StudyConfig Config(string study, string variant) => StudyNetwork.Variants(study).Single(v => v.Name == variant).Config;

    [Fact]
    public void The_network_has_30_convolutions_stem_14_depthwise_separable_blocks_and_a_head()
    {
        var layers = StudyNetwork.Layers;
        Assert.Equal(30, layers.Count);
        Assert.Equal(StudyLayerKind.Stem, layers[0].Kind);
        Assert.Equal(StudyLayerKind.Head, layers[^1].Kind);
        Assert.Equal(14, layers.Count(l => l.Kind == StudyLayerKind.Depthwise));
        Assert.Equal(14, layers.Count(l => l.Kind == StudyLayerKind.Pointwise));

        // Widths double exactly at the stride-2 depthwise layers: 32 -> 64 -> 128 -> 256 -> 512, then the 1024 head.
        for (int i = 1; i < layers.Count - 1; i += 2)
        {
            var (dw, pw) = (layers[i], layers[i + 1]);
            Assert.Equal(StudyLayerKind.Depthwise, dw.Kind);
            Assert.Equal(StudyLayerKind.Pointwise, pw.Kind);
            Assert.Equal(dw.Stride == 2 ? 2 * dw.InChannels : dw.InChannels, pw.OutChannels);
            Assert.Equal(dw.Stride == 1 && pw.InChannels == pw.OutChannels, pw.Residual);
        }

        Assert.Equal([1, 2, 2, 2, 2], layers.Where(l => l.Kind == StudyLayerKind.Depthwise).Select(l => l.Stride).Where(s => s == 2).Prepend(1).ToArray());
        Assert.Equal(10, layers.Count(l => l.Residual));
        Assert.Equal(new[] { 32, 64, 128, 256, 512 }, layers.Where(l => l.Kind == StudyLayerKind.Pointwise).Select(l => l.OutChannels).Distinct().ToArray());

        var graph = StudyNetwork.Build(new StudyConfig(StudyActivation.Relu));
        Assert.Equal(30, graph.Nodes.OfType<ConvNode>().Count());
        Assert.Equal(30, graph.Nodes.OfType<ActivationNode>().Count());
        Assert.Single(graph.Nodes.OfType<GlobalAveragePoolNode>());
        Assert.Single(graph.Nodes.OfType<LinearNode>());
        Assert.Empty(graph.Nodes.OfType<BatchNormNode>());
        var at224 = graph.InferShapes(224, 224);
        Assert.Equal(new ValueShape(32, 112, 112), at224[1]);
        Assert.Equal(new ValueShape(1024, 7, 7), at224[graph.Nodes.Count - 2]);
        Assert.Equal(new ValueShape(1000, 1, 1), at224[graph.Output]);
        var at32 = graph.InferShapes(32, 32);
        Assert.Equal(new ValueShape(32, 16, 16), at32[1]);
        Assert.Equal(new ValueShape(1024, 1, 1), at32[graph.Nodes.Count - 2]);
    }

    [Fact]
    public void Macs_and_parameters_match_a_hand_count_at_32x32()
    {
        // At 32x32 the stages run at 16, 8, 4, 2 and 1 pixels a side. Per image:
        //   stem 3x3/2 3->32 @16:        32*27*256 = 221184 MACs, 32*27 + 32 = 896 params
        //   block 0  dw 32 @16 + pw 32->32:     73728 + 262144 MACs,   320 + 1056 params
        //   block 1  dw 32 /2 @8 + pw 32->64:   18432 + 131072,        320 + 2112
        //   block 2  dw 64 @8 + pw 64->64:      36864 + 262144,        640 + 4160
        //   block 3  dw 64 /2 @4 + pw 64->128:   9216 + 131072,        640 + 8320
        //   block 4  dw 128 @4 + pw 128->128:   18432 + 262144,       1280 + 16512
        //   block 5  dw 128 /2 @2 + pw ->256:    4608 + 131072,       1280 + 33024
        //   blocks 6-10 dw 256 @2 + pw 256->256: 5 x (9216 + 262144), 5 x (2560 + 65792)
        //   block 11 dw 256 /2 @1 + pw ->512:    2304 + 131072,       2560 + 131584
        //   blocks 12-13 dw 512 @1 + pw 512->512: 2 x (4608 + 262144), 2 x (5120 + 262656)
        //   head 1x1 512->1024 @1: 524288, 525312; fc 1024->1000: 1024000, 1025000
        const long Macs = 5_134_080, Params = 2_632_328;
        var baseline = StudyNetwork.Build(new StudyConfig(StudyActivation.Relu));
        Assert.Equal(Macs, baseline.MultiplyAccumulates(32, 32));
        Assert.Equal(Params, baseline.Parameters());

        // Squeeze-excite on the 14 depthwise outputs (C -> C/16 -> C): 2 C R MACs and 2 C R + R + C parameters each.
        int[] dwChannels = [32, 32, 64, 64, 128, 128, 256, 256, 256, 256, 256, 256, 512, 512];
        long seMacs = dwChannels.Sum(c => 2L * c * (c / 16));
        long seParams = dwChannels.Sum(c => (2L * c * (c / 16)) + (c / 16) + c);
        Assert.Equal(120_064, seMacs);
        var se = StudyNetwork.Build(Config("blocks", "se"));
        Assert.Equal(Macs + seMacs, se.MultiplyAccumulates(32, 32));
        Assert.Equal(Params + seParams, se.Parameters());

        // Skip connections add values, not multiply-accumulates or parameters.
        var skip = StudyNetwork.Build(Config("blocks", "skip"));
        Assert.Equal(Macs + seMacs, skip.MultiplyAccumulates(32, 32));
        Assert.Equal(Params + seParams, skip.Parameters());
        Assert.Equal(10, skip.Nodes.OfType<AddNode>().Count());

        // The pointwise activations only change the work between the convolutions.
        Assert.Equal(Macs, StudyNetwork.Build(new StudyConfig(StudyActivation.Gelu)).MultiplyAccumulates(32, 32));
        Assert.Equal(Params, StudyNetwork.Build(new StudyConfig(StudyActivation.Silu)).Parameters());
    }

    [Fact]
    public void Dynamic_variants_replace_every_activation_with_the_documented_node()
    {
        var dsm = StudyNetwork.Build(new StudyConfig(StudyActivation.DynamicShiftMax));
        var shiftMax = dsm.Nodes.OfType<DynamicShiftMaxNode>().ToList();
        Assert.Equal(30, shiftMax.Count);
        Assert.Empty(dsm.Nodes.OfType<ActivationNode>());
        Assert.All(shiftMax, n =>
        {
            Assert.Equal((4, 2, 2, 2.0), (n.Groups, n.J, n.K, n.Lambda));
            Assert.Equal(Math.Max(4, n.Channels / 8), n.Reduced);
        });

        foreach (var (activation, kind) in new[] { (StudyActivation.DyReluA, DyReluKind.A), (StudyActivation.DyReluB, DyReluKind.B) })
        {
            var nodes = StudyNetwork.Build(new StudyConfig(activation)).Nodes.OfType<DyReluNode>().ToList();
            Assert.Equal(30, nodes.Count);
            Assert.All(nodes, n => Assert.Equal((kind, 2, n.Channels / 4, 1.0, 0.5), (n.Kind, n.K, n.Reduced, n.LambdaA, n.LambdaB)));
        }

        // SE sits between each depthwise convolution and its activation.
        var se = StudyNetwork.Build(Config("activations", "se-relu"));
        var seNodes = se.Nodes.Select((n, i) => (n, i)).Where(p => p.n is SqueezeExciteNode).ToList();
        Assert.Equal(14, seNodes.Count);
        Assert.All(seNodes, p =>
        {
            Assert.True(se.Nodes[p.i - 1] is ConvNode { IsDepthwise: true });
            Assert.True(se.Nodes[p.i + 1] is ActivationNode { Activation: MobileOne.Kernels.ActivationKind.Relu });
        });
    }

    [Fact]
    public void Building_is_deterministic_for_a_seed()
    {
        var a = StudyNetwork.Build(Config("activations", "dyrelu-b"), seed: 3);
        var b = StudyNetwork.Build(Config("activations", "dyrelu-b"), seed: 3);
        var c = StudyNetwork.Build(Config("activations", "dyrelu-b"), seed: 4);
        var convs = (LayerGraph g) => g.Nodes.OfType<ConvNode>().SelectMany(n => n.Weight.Concat(n.Bias!)).ToArray();
        Assert.Equal(convs(a), convs(b));
        Assert.NotEqual(convs(a), convs(c));
    }

    [Theory]
    [MemberData(nameof(AllVariants))]
    public void Every_variant_on_both_engines_matches_the_float64_graph_at_32x32(string study, string variant)
    {
        var graph = StudyNetwork.Build(Config(study, variant));
        var input = EngineTestSupport.RandomInput(new Random(7), 2, 3, 32, 32);
        var all = GraphReference.EvaluateAll(graph, input);
        var expected = all[graph.Output].Select(v => (float)v).ToArray();

        // Calibration keeps every variant near unit scale (the property that lets engines agree at all).
        Assert.InRange(Reference.MaxAbs(expected), 0.05, 100);
        foreach (int threads in new[] { 1, 2 })
        {
            using var model = CompiledModel.Compile(graph, new InferenceOptions { Threads = threads });
            EngineTestSupport.AssertClose(expected, model.Run(input).Data, $"{study} {variant} managed x{threads}");
        }

        using var ort = OrtHarness.FromBytes(OnnxExporter.ToBytes(graph));
        EngineTestSupport.AssertClose(expected, ort.Run(input).Data, $"{study} {variant} onnxruntime");
    }

    [Fact]
    public void The_paper_numbers_are_the_tables_3_and_4_values()
    {
        Assert.Equal(
            new double?[] { 1.53, 1.63, 2.10, 2.54, 57.04, 273.49, 242.14 },
            StudyNetwork.Activations.Select(v => StudyNetwork.PaperIphone12Ms(v.Study, v.Name)).ToArray());
        Assert.Equal(new double?[] { 1.53, 2.10, 2.62 }, StudyNetwork.Blocks.Select(v => StudyNetwork.PaperIphone12Ms(v.Study, v.Name)).ToArray());
        Assert.Throws<ArgumentException>(() => StudyNetwork.Variants("flops-latency"));
    }
}
