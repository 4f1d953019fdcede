using MobileOne.Graph;
using MobileOne.Inference;
using MobileOne.IO;
using MobileOne.IO.Safetensors;
using MobileOne.Kernels;
using MobileOne.Tensors;

namespace MobileOne.Tests.Inference;

/// <summary>
/// The graph engine on families other than MobileOne: RepVGG-A0 (train-time branches and fused), ResNet-18,
/// MobileNet-V1 and MobileNet-V2 are written here as layer graphs straight from timm's checkpoints in
/// ../shared/fixtures/zoo, and their logits on the engine are compared with timm's float64 references. They exercise what MobileOne does not: a 7x7
/// stem, max pooling, strided 1x1 shortcuts, residual adds after BatchNorm, ReLU6, inverted residuals. The builders
/// are test fixtures that follow timm's module definitions; the model zoo will check its own networks against the
/// same references.
/// </summary>
public sealed class ZooGraphParityTests
{
    private const double BatchNormEps = 1e-5;

    private static readonly Lazy<TensorFile> References = new(() => SafetensorsReader.Read(Zoo("zoo_reference.safetensors")));

    [Theory]
    [IsaData(IsaLevel.Avx512, "repvgg_a0_timm")]
    [IsaData(IsaLevel.Avx512, "repvgg_a0_timm_fused")]
    [IsaData(IsaLevel.Avx512, "resnet18_timm")]
    [IsaData(IsaLevel.Avx512, "mobilenetv2_100_timm")]
    [IsaData(IsaLevel.Avx512, "mobilenetv1_100_timm")]
    [IsaData(IsaLevel.Avx2, "repvgg_a0_timm")]
    [IsaData(IsaLevel.Avx2, "resnet18_timm")]
    [IsaData(IsaLevel.Avx2, "mobilenetv2_100_timm")]
    public void Timm_zoo_graphs_match_the_float64_reference_on_the_engine(IsaLevel isa, string model)
    {
        var weights = SafetensorsReader.Read(Zoo(model + ".safetensors"));
        var graph = model switch
        {
            "repvgg_a0_timm" or "repvgg_a0_timm_fused" => RepVggA0(weights),
            "resnet18_timm" => ResNet18(weights),
            "mobilenetv1_100_timm" => MobileNetV1(weights),
            _ => MobileNetV2(weights),
        };
        string reference = model == "repvgg_a0_timm_fused" ? "repvgg_a0_timm.logits_fused_224" : model + ".logits_224";
        var input = References.Value.Tensors["input_224"].ToTensor();
        var expected = References.Value.Tensors[reference].ToTensor();
        using var engine = CompiledModel.Compile(graph, new InferenceOptions { Isa = isa, Threads = 2 });
        var logits = engine.Run(input);
        Assert.Equal(expected.Shape, logits.Shape);
        EngineTestSupport.AssertClose(expected.Data, logits.Data, $"{model} on {isa}");
    }

    /// <summary>timm's repvgg_a0: stages of 2, 4, 14, 1 blocks (widths 48, 96, 192, 1280), every stage starting at stride 2.</summary>
    private static LayerGraph RepVggA0(TensorFile w)
    {
        var g = new LayerGraph(3);
        int x = RepVggBlock(g, w, "stem.", LayerGraph.Input, stride: 2);
        int[] depths = [2, 4, 14, 1];
        for (int s = 0; s < depths.Length; s++)
        {
            for (int b = 0; b < depths[s]; b++)
            {
                x = RepVggBlock(g, w, $"stages.{s}.{b}.", x, b == 0 ? 2 : 1);
            }
        }

        return Head(g, w, "head.fc", x);
    }

    /// <summary>timm's RepVggBlock: conv_1x1 + conv_kxk (+ the identity BatchNorm at stride 1 with equal widths), then ReLU; or its reparam_conv.</summary>
    private static int RepVggBlock(LayerGraph g, TensorFile w, string prefix, int x, int stride)
    {
        int sum;
        if (w.Tensors.ContainsKey(prefix + "reparam_conv.weight"))
        {
            sum = Conv(g, w, prefix + "reparam_conv", x, stride, bias: true);
        }
        else
        {
            var branches = new List<int>
            {
                ConvBn(g, w, prefix + "conv_1x1.conv", prefix + "conv_1x1.bn", x, stride),
                ConvBn(g, w, prefix + "conv_kxk.conv", prefix + "conv_kxk.bn", x, stride),
            };
            if (w.Tensors.ContainsKey(prefix + "identity.weight"))
            {
                branches.Add(Bn(g, w, prefix + "identity", x));
            }

            sum = g.Add(new AddNode(prefix + "add", [.. branches]));
        }

        return g.Add(new ActivationNode(prefix + "act", sum, ActivationKind.Relu));
    }

    /// <summary>timm's resnet18: 7x7/2 stem, 3x3/2 max pool, BasicBlocks (2 per stage) with 1x1/2 shortcuts where the shape changes.</summary>
    private static LayerGraph ResNet18(TensorFile w)
    {
        var g = new LayerGraph(3);
        int x = Relu(g, "act1", ConvBn(g, w, "conv1", "bn1", LayerGraph.Input, stride: 2));
        x = g.Add(new PoolNode("maxpool", x, PoolKind.Max, 3, 2, 1));
        for (int s = 1; s <= 4; s++)
        {
            for (int b = 0; b < 2; b++)
            {
                string p = $"layer{s}.{b}.";
                int stride = s > 1 && b == 0 ? 2 : 1;
                int y = Relu(g, p + "act1", ConvBn(g, w, p + "conv1", p + "bn1", x, stride));
                y = ConvBn(g, w, p + "conv2", p + "bn2", y, 1);
                int shortcut = w.Tensors.ContainsKey(p + "downsample.0.weight") ? ConvBn(g, w, p + "downsample.0", p + "downsample.1", x, stride) : x;
                x = Relu(g, p + "act2", g.Add(new AddNode(p + "add", [y, shortcut])));
            }
        }

        return Head(g, w, "fc", x);
    }

    /// <summary>
    /// timm's mobilenetv2_100: 3x3/2 stem, a depthwise-separable block, then inverted residuals (expand 1x1, ReLU6,
    /// depthwise 3x3, ReLU6, project 1x1; residual at stride 1 with equal widths) with the paper's strides, a 1x1 head to 1280.
    /// </summary>
    private static LayerGraph MobileNetV2(TensorFile w)
    {
        var g = new LayerGraph(3);
        int x = Relu6(g, "bn1.act", ConvBn(g, w, "conv_stem", "bn1", LayerGraph.Input, stride: 2));
        x = Relu6(g, "blocks.0.0.bn1.act", ConvBn(g, w, "blocks.0.0.conv_dw", "blocks.0.0.bn1", x, 1));
        x = ConvBn(g, w, "blocks.0.0.conv_pw", "blocks.0.0.bn2", x, 1);
        (int Blocks, int Stride)[] stages = [(2, 2), (3, 2), (4, 2), (3, 1), (3, 2), (1, 1)];
        for (int s = 0; s < stages.Length; s++)
        {
            for (int b = 0; b < stages[s].Blocks; b++)
            {
                string p = $"blocks.{s + 1}.{b}.";
                int stride = b == 0 ? stages[s].Stride : 1;
                int y = Relu6(g, p + "bn1.act", ConvBn(g, w, p + "conv_pw", p + "bn1", x, 1));
                y = Relu6(g, p + "bn2.act", ConvBn(g, w, p + "conv_dw", p + "bn2", y, stride));
                y = ConvBn(g, w, p + "conv_pwl", p + "bn3", y, 1);
                x = stride == 1 && g.ChannelsOf(x) == g.ChannelsOf(y) ? g.Add(new AddNode(p + "add", [y, x])) : y;
            }
        }

        x = Relu6(g, "bn2.act", ConvBn(g, w, "conv_head", "bn2", x, 1));
        return Head(g, w, "classifier", x);
    }

    /// <summary>timm's mobilenetv1_100: 3x3/2 stem, then depthwise-separable blocks without skips (depthwise 3x3, ReLU6, pointwise, ReLU6; timm's 'dsa'), stages of 1, 2, 2, 6, 2.</summary>
    private static LayerGraph MobileNetV1(TensorFile w)
    {
        var g = new LayerGraph(3);
        int x = Relu6(g, "bn1.act", ConvBn(g, w, "conv_stem", "bn1", LayerGraph.Input, stride: 2));
        (int Blocks, int Stride)[] stages = [(1, 1), (2, 2), (2, 2), (6, 2), (2, 2)];
        for (int s = 0; s < stages.Length; s++)
        {
            for (int b = 0; b < stages[s].Blocks; b++)
            {
                string p = $"blocks.{s}.{b}.";
                x = Relu6(g, p + "bn1.act", ConvBn(g, w, p + "conv_dw", p + "bn1", x, b == 0 ? stages[s].Stride : 1));
                x = Relu6(g, p + "bn2.act", ConvBn(g, w, p + "conv_pw", p + "bn2", x, 1));
            }
        }

        return Head(g, w, "classifier", x);
    }

    private static LayerGraph Head(LayerGraph g, TensorFile w, string fc, int x)
    {
        int pooled = g.Add(new GlobalAveragePoolNode("global_pool", x));
        var weight = w.Tensors[fc + ".weight"];
        g.Add(new LinearNode(fc, pooled, weight.Shape[1], weight.Shape[0], Data(w, fc + ".weight"), Data(w, fc + ".bias")));
        return g;
    }

    /// <summary>A convolution with PyTorch's symmetric padding (k - 1) / 2; grouped when the weight has one input channel per group.</summary>
    private static int Conv(LayerGraph g, TensorFile w, string name, int x, int stride, bool bias)
    {
        int[] shape = w.Tensors[name + ".weight"].Shape;
        int inChannels = g.ChannelsOf(x), groups = inChannels / shape[1], k = shape[2];
        return g.Add(ConvNode.Square(name, x, inChannels, shape[0], k, stride, (k - 1) / 2, groups, Data(w, name + ".weight"), bias ? Data(w, name + ".bias") : null));
    }

    private static int ConvBn(LayerGraph g, TensorFile w, string conv, string bn, int x, int stride) =>
        Bn(g, w, bn, Conv(g, w, conv, x, stride, bias: false));

    private static int Bn(LayerGraph g, TensorFile w, string name, int x) =>
        g.Add(new BatchNormNode(name, x, g.ChannelsOf(x), Data(w, name + ".weight"), Data(w, name + ".bias"), Data(w, name + ".running_mean"), Data(w, name + ".running_var"), BatchNormEps));

    private static int Relu(LayerGraph g, string name, int x) => g.Add(new ActivationNode(name, x, ActivationKind.Relu));

    private static int Relu6(LayerGraph g, string name, int x) => g.Add(new ActivationNode(name, x, ActivationKind.Relu6));

    private static float[] Data(TensorFile w, string key) => w.Tensors[key].ToTensor().Data;

    private static string Zoo(string name) => Fixtures.Path(Path.Combine("zoo", name));
}
