using MobileOne.Kernels;

namespace MobileOne.Models.Zoo;

/// <summary>
/// timm's ResNet (He et al. 2016, torchvision's layout): a 7x7/2 stem, a 3x3/2 max pool and four stages of basic
/// blocks (two 3x3 convolutions) or bottlenecks (1x1, 3x3, 1x1 with 4x expansion, stride on the 3x3), with a 1x1
/// strided shortcut where the shape changes; ReLU after each residual add. Initialised as timm does: Kaiming's
/// normal (fan-out) for every convolution, the last BatchNorm of each block at gamma 0 (zero_init_last),
/// PyTorch's default nn.Linear for fc.
/// </summary>
public static class ResNet
{
    /// <summary>The variants: blocks per stage and whether they are bottlenecks.</summary>
    public static IReadOnlyDictionary<string, (int[] Depths, bool Bottleneck)> Variants { get; } = new Dictionary<string, (int[], bool)>
    {
        ["resnet18"] = ([2, 2, 2, 2], false),
        ["resnet34"] = ([3, 4, 6, 3], false),
        ["resnet50"] = ([3, 4, 6, 3], true),
    };

    /// <summary>The network <paramref name="architecture"/> (a key of <see cref="Variants"/>), zero weights until initialised.</summary>
    public static ZooNetwork Create(string architecture, int numClasses = 1000, int inChans = 3)
    {
        var b = new NetworkBuilder(architecture, inChans, groupedFanOut: false);
        Write(b, architecture, numClasses);
        return b.Build();
    }

    /// <summary>The state names and shapes of <see cref="Create"/>'s network, without allocating it.</summary>
    public static IReadOnlyList<(string Name, int[] Shape)> StateShapes(string architecture, int numClasses = 1000, int inChans = 3)
    {
        var b = new NetworkBuilder(architecture, inChans, groupedFanOut: false, allocate: false);
        Write(b, architecture, numClasses);
        return b.StateShapes;
    }

    private static void Write(NetworkBuilder b, string architecture, int numClasses)
    {
        var (depths, bottleneck) = Variants[architecture];
        int x = b.Activation("act1", b.ConvBn("conv1", "bn1", NetworkBuilder.Input, 64, 7, stride: 2), ActivationKind.Relu);
        x = b.MaxPool("maxpool", x, 3, 2, 1);
        int expansion = bottleneck ? 4 : 1;
        for (int s = 0; s < depths.Length; s++)
        {
            int planes = 64 << s;
            for (int i = 0; i < depths[s]; i++)
            {
                string p = $"layer{s + 1}.{i}.";
                int stride = s > 0 && i == 0 ? 2 : 1;
                x = bottleneck ? Bottleneck(b, p, x, planes, expansion, stride) : BasicBlock(b, p, x, planes, stride);
            }
        }

        int fanIn = b.Channels(x);
        double bound = 1 / Math.Sqrt(fanIn);
        b.Head("global_pool", "fc", x, numClasses, new LayerInit(string.Empty, Uniform: true, 0, bound, 0, bound));
    }

    private static int BasicBlock(NetworkBuilder b, string p, int x, int planes, int stride)
    {
        int y = b.Activation(p + "act1", b.ConvBn(p + "conv1", p + "bn1", x, planes, 3, stride), ActivationKind.Relu);
        y = b.ConvBn(p + "conv2", p + "bn2", y, planes, 3);
        b.SetInit(p + "bn2", LayerInit.Constant(string.Empty, 0));
        return b.Activation(p + "act2", b.Sum(p + "add", y, Shortcut(b, p, x, planes, stride)), ActivationKind.Relu);
    }

    private static int Bottleneck(NetworkBuilder b, string p, int x, int planes, int expansion, int stride)
    {
        int y = b.Activation(p + "act1", b.ConvBn(p + "conv1", p + "bn1", x, planes, 1), ActivationKind.Relu);
        y = b.Activation(p + "act2", b.ConvBn(p + "conv2", p + "bn2", y, planes, 3, stride), ActivationKind.Relu);
        y = b.ConvBn(p + "conv3", p + "bn3", y, planes * expansion, 1);
        b.SetInit(p + "bn3", LayerInit.Constant(string.Empty, 0));
        return b.Activation(p + "act3", b.Sum(p + "add", y, Shortcut(b, p, x, planes * expansion, stride)), ActivationKind.Relu);
    }

    // timm registers downsample after the block's convolutions, so its state follows theirs.
    private static int Shortcut(NetworkBuilder b, string p, int x, int outChannels, int stride) =>
        stride != 1 || b.Channels(x) != outChannels
            ? b.ConvBn(p + "downsample.0", p + "downsample.1", x, outChannels, 1, stride)
            : x;
}
