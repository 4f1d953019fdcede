using MobileOne.Kernels;

namespace MobileOne.Models.Zoo;

/// <summary>
/// timm's MobileNet V1 and V2 (its efficientnet builder): a 3x3/2 stem, depthwise-separable blocks (V1: depthwise
/// 3x3 and pointwise, both with ReLU6, no skip) or inverted residuals (V2: expand 1x1, depthwise 3x3, project 1x1
/// without activation; a skip at stride 1 with equal widths), V2's 1x1 head to 1280 features, a linear classifier.
/// Widths are the paper's times the channel multiplier, rounded as timm rounds (to a multiple of 8, never below
/// 90% of the product); the stem is rounded too, V2's head only grows. Initialised as timm's
/// <c>_init_weight_goog</c>: N(0, sqrt(2 / fan_out)) with the fan-out divided by the groups, BatchNorm gamma 1,
/// the classifier U(-1/sqrt(classes), 1/sqrt(classes)) with zero bias.
/// </summary>
public static class MobileNet
{
    /// <summary>The variants: version and channel multiplier.</summary>
    public static IReadOnlyDictionary<string, (int Version, double Multiplier)> Variants { get; } = new Dictionary<string, (int, double)>
    {
        ["mobilenetv1_100"] = (1, 1.0),
        ["mobilenetv1_125"] = (1, 1.25),
        ["mobilenetv2_035"] = (2, 0.35),
        ["mobilenetv2_050"] = (2, 0.5),
        ["mobilenetv2_075"] = (2, 0.75),
        ["mobilenetv2_100"] = (2, 1.0),
        ["mobilenetv2_140"] = (2, 1.4),
    };

    // (repeats, stride, channels) per stage; V2 adds the expansion ratio (1 marks the depthwise-separable first block).
    private static readonly (int Repeats, int Stride, int Channels)[] V1Stages = [(1, 1, 64), (2, 2, 128), (2, 2, 256), (6, 2, 512), (2, 2, 1024)];
    private static readonly (int Repeats, int Stride, int Expansion, int Channels)[] V2Stages =
        [(1, 1, 1, 16), (2, 2, 6, 24), (3, 2, 6, 32), (4, 2, 6, 64), (3, 1, 6, 96), (3, 2, 6, 160), (1, 1, 6, 320)];

    /// <summary>timm's make_divisible: the nearest multiple of <paramref name="divisor"/> (at least one), raised by one step when below 90% of <paramref name="value"/>.</summary>
    public static int MakeDivisible(double value, int divisor = 8)
    {
        int rounded = Math.Max(divisor, (int)(value + (divisor / 2.0)) / divisor * divisor);
        return rounded < 0.9 * value ? rounded + divisor : rounded;
    }

    /// <summary>The network <paramref name="architecture"/> (a key of <see cref="Variants"/>), zero weights until initialised.</summary>
    public static ZooNetwork Create(string architecture, int numClasses = 1000, int inChans = 3)
    {
        var b = new NetworkBuilder(architecture, inChans, groupedFanOut: true);
        Write(b, architecture, numClasses);
        return b.Build();
    }

    /// <summary>The state names and shapes of <see cref="Create"/>'s network, without allocating it.</summary>
    public static IReadOnlyList<(string Name, int[] Shape)> StateShapes(string architecture, int numClasses = 1000, int inChans = 3)
    {
        var b = new NetworkBuilder(architecture, inChans, groupedFanOut: true, allocate: false);
        Write(b, architecture, numClasses);
        return b.StateShapes;
    }

    private static void Write(NetworkBuilder b, string architecture, int numClasses)
    {
        var (version, multiplier) = Variants[architecture];
        int Round(int channels) => MakeDivisible(channels * multiplier);
        int x = Relu6(b, "bn1.act", b.ConvBn("conv_stem", "bn1", NetworkBuilder.Input, Round(32), 3, stride: 2));
        if (version == 1)
        {
            for (int s = 0; s < V1Stages.Length; s++)
            {
                for (int i = 0; i < V1Stages[s].Repeats; i++)
                {
                    x = SeparableBlock(b, $"blocks.{s}.{i}.", x, Round(V1Stages[s].Channels), i == 0 ? V1Stages[s].Stride : 1, pointwiseAct: true);
                }
            }
        }
        else
        {
            for (int s = 0; s < V2Stages.Length; s++)
            {
                var (repeats, stride, expansion, channels) = V2Stages[s];
                for (int i = 0; i < repeats; i++)
                {
                    string p = $"blocks.{s}.{i}.";
                    x = expansion == 1
                        ? SeparableBlock(b, p, x, Round(channels), i == 0 ? stride : 1, pointwiseAct: false)
                        : InvertedResidual(b, p, x, Round(channels), i == 0 ? stride : 1, expansion);
                }
            }

            x = Relu6(b, "bn2.act", b.ConvBn("conv_head", "bn2", x, Math.Max(1280, Round(1280)), 1));
        }

        double bound = 1 / Math.Sqrt(numClasses);
        b.Head("global_pool", "classifier", x, numClasses, new LayerInit(string.Empty, Uniform: true, 0, bound));
    }

    /// <summary>timm's DepthwiseSeparableConv: depthwise 3x3 + BN + ReLU6, pointwise + BN (+ ReLU6 in V1's 'dsa'); V1's has no skip.</summary>
    private static int SeparableBlock(NetworkBuilder b, string p, int x, int outChannels, int stride, bool pointwiseAct)
    {
        int inChannels = b.Channels(x);
        int y = Relu6(b, p + "bn1.act", b.ConvBn(p + "conv_dw", p + "bn1", x, inChannels, 3, stride, groups: inChannels));
        y = b.ConvBn(p + "conv_pw", p + "bn2", y, outChannels, 1);
        if (pointwiseAct)
        {
            return Relu6(b, p + "bn2.act", y);
        }

        return stride == 1 && inChannels == outChannels ? b.Sum(p + "add", y, x) : y;
    }

    /// <summary>timm's InvertedResidual: expand to make_divisible(in * ratio), depthwise, project; skip at stride 1 with equal widths.</summary>
    private static int InvertedResidual(NetworkBuilder b, string p, int x, int outChannels, int stride, int expansion)
    {
        int inChannels = b.Channels(x), mid = MakeDivisible(inChannels * expansion);
        int y = Relu6(b, p + "bn1.act", b.ConvBn(p + "conv_pw", p + "bn1", x, mid, 1));
        y = Relu6(b, p + "bn2.act", b.ConvBn(p + "conv_dw", p + "bn2", y, mid, 3, stride, groups: mid));
        y = b.ConvBn(p + "conv_pwl", p + "bn3", y, outChannels, 1);
        return stride == 1 && inChannels == outChannels ? b.Sum(p + "add", y, x) : y;
    }

    private static int Relu6(NetworkBuilder b, string name, int x) => b.Activation(name, x, ActivationKind.Relu6);
}
