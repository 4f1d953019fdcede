using MobileOne.Kernels;

namespace MobileOne.Models.Zoo;

/// <summary>
/// timm's RepVGG (Ding et al. 2021; byobnet's 'rep' blocks): a RepVGG block as stem (3x3/2), then four stages whose
/// first block has stride 2. A train-time block sums a 3x3 conv + BN, a 1x1 conv + BN and, at stride 1 with equal
/// widths, a BatchNorm of its input, then applies ReLU; the deploy form is one 3x3 convolution with bias
/// (reparam_conv). Widths are (64, 128, 256, 512) times the variant's factors; no final 1x1 convolution. Initialised
/// as timm: N(0, sqrt(2 / fan_out)) convolutions (fan-out divided by the groups), every block BatchNorm's gamma
/// N(0.1, 0.1) and beta N(0, 0.1) (RepVggBlock.init_weights), the classifier N(0, 0.01) with zero bias.
/// </summary>
public static class RepVgg
{
    /// <summary>The variants: blocks per stage, width factors per stage and stem width.</summary>
    public static IReadOnlyDictionary<string, (int[] Depths, double[] WidthFactors, int StemWidth)> Variants { get; } =
        new Dictionary<string, (int[], double[], int)>
        {
            ["repvgg_a0"] = ([2, 4, 14, 1], [0.75, 0.75, 0.75, 2.5], 48),
            ["repvgg_a1"] = ([2, 4, 14, 1], [1, 1, 1, 2.5], 64),
            ["repvgg_a2"] = ([2, 4, 14, 1], [1.5, 1.5, 1.5, 2.75], 64),
            ["repvgg_b0"] = ([4, 6, 16, 1], [1, 1, 1, 2.5], 64),
            ["repvgg_b1"] = ([4, 6, 16, 1], [2, 2, 2, 4], 64),
        };

    /// <summary>
    /// The network <paramref name="architecture"/> (a key of <see cref="Variants"/>), train-time or in its deploy form,
    /// zero weights until initialised (or fused from a train-time network by Reparam.RepVggFusion).
    /// </summary>
    public static ZooNetwork Create(string architecture, int numClasses = 1000, int inChans = 3, bool fused = false)
    {
        var b = new NetworkBuilder(architecture, inChans, groupedFanOut: true);
        Write(b, architecture, numClasses, fused);
        return b.Build(fused);
    }

    /// <summary>The state names and shapes of <see cref="Create"/>'s network, without allocating it.</summary>
    public static IReadOnlyList<(string Name, int[] Shape)> StateShapes(string architecture, int numClasses = 1000, int inChans = 3, bool fused = false)
    {
        var b = new NetworkBuilder(architecture, inChans, groupedFanOut: true, allocate: false);
        Write(b, architecture, numClasses, fused);
        return b.StateShapes;
    }

    private static void Write(NetworkBuilder b, string architecture, int numClasses, bool fused)
    {
        var (depths, factors, stemWidth) = Variants[architecture];
        int x = Block(b, "stem.", NetworkBuilder.Input, stemWidth, 2, fused);
        for (int s = 0; s < depths.Length; s++)
        {
            int width = (int)((64 << s) * factors[s]);
            for (int i = 0; i < depths[s]; i++)
            {
                x = Block(b, $"stages.{s}.{i}.", x, width, i == 0 ? 2 : 1, fused);
            }
        }

        b.Head("head.global_pool", "head.fc", x, numClasses, new LayerInit(string.Empty, Uniform: false, 0, 0.01));
    }

    /// <summary>One block; timm registers identity, conv_kxk, conv_1x1 in that order.</summary>
    private static int Block(NetworkBuilder b, string p, int x, int outChannels, int stride, bool fused)
    {
        int sum;
        if (fused)
        {
            sum = b.Conv(p + "reparam_conv", x, outChannels, 3, stride, bias: true);
        }
        else
        {
            var branches = new List<int>();
            if (stride == 1 && b.Channels(x) == outChannels)
            {
                branches.Add(BlockBatchNorm(b, p + "identity", x));
            }

            branches.Add(BlockBatchNorm(b, p + "conv_kxk.bn", b.Conv(p + "conv_kxk.conv", x, outChannels, 3, stride)));
            branches.Add(BlockBatchNorm(b, p + "conv_1x1.bn", b.Conv(p + "conv_1x1.conv", x, outChannels, 1, stride)));
            sum = b.Sum(p + "add", [.. branches]);
        }

        return b.Activation(p + "act", sum, ActivationKind.Relu);
    }

    private static int BlockBatchNorm(NetworkBuilder b, string name, int x)
    {
        int y = b.BatchNorm(name, x);
        b.SetInit(name, new LayerInit(name, Uniform: false, 0.1, 0.1, 0, 0.1));
        return y;
    }
}
