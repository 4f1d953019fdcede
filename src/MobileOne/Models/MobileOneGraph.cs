using MobileOne.Graph;
using MobileOne.Kernels;
using MobileOne.Nn;

namespace MobileOne.Models;

/// <summary>
/// A MobileOne network as a <see cref="LayerGraph"/>, in the form it is in: a train-time network emits every branch
/// (k conv+BN branches, the 1x1 conv+BN scale branch, the BN skip) and their sum; a fused one emits one convolution
/// per block. Node names are timm's state prefixes, so a layer can be found in a checkpoint by its name.
/// The graph refers to the network's arrays (no copy): compile or export it before changing the network.
/// </summary>
public static class MobileOneGraph
{
    /// <summary>The network as a layer graph, in the form it is in (train-time branches or fused), with its head.</summary>
    /// <param name="network">The network; the graph refers to its weight arrays.</param>
    /// <param name="features">Adds taps for timm's feature maps: the stem output ("stem") and each stage's output ("stage1".."stage4").</param>
    public static LayerGraph ToGraph(this MobileOneNetwork network, bool features = false)
    {
        ArgumentNullException.ThrowIfNull(network);
        var graph = new LayerGraph(network.Config.InChans);
        int x = EmitBlock(graph, "stem.", network.Stem, LayerGraph.Input);
        if (features)
        {
            graph.AddTap("stem", x);
        }

        for (int s = 0; s < network.Stages.Count; s++)
        {
            for (int b = 0; b < network.Stages[s].Count; b++)
            {
                x = EmitBlock(graph, $"stages.{s}.{b}.", network.Stages[s][b], x);
            }

            if (features)
            {
                graph.AddTap($"stage{s + 1}", x);
            }
        }

        int pooled = graph.Add(new GlobalAveragePoolNode("head.global_pool", x));
        var head = network.Head;
        graph.Add(new LinearNode("head.fc", pooled, head.InFeatures, head.OutFeatures, head.Weight.Value.Data, head.Bias.Value.Data));
        return graph;
    }

    /// <summary>
    /// The backbone without its head, for detection and segmentation: the stem and the stages up to the deepest one
    /// asked for, with one tap per requested stride named as timm's <c>feature_info</c> modules ("stem" at stride 2,
    /// "stages.0".."stages.3" at strides 4, 8, 16, 32), in the order of <paramref name="strides"/>' sorted values.
    /// The graph's output is the deepest stage's output; <see cref="FeatureInfo(MobileOneNetwork)"/> lists what each
    /// tap holds. <see cref="Inference.FeatureExtractor"/> compiles it.
    /// </summary>
    /// <param name="network">A train-time or fused network; the graph emits it in the form it is in.</param>
    /// <param name="strides">The strides to return (each one of the network's <see cref="FeatureInfo(MobileOneNetwork)"/>
    /// strides); null for 4, 8, 16, 32 (timm's <c>features_only</c> with <c>out_indices=(1, 2, 3, 4)</c>).</param>
    public static LayerGraph ToFeatureGraph(this MobileOneNetwork network, IReadOnlyList<int>? strides = null)
    {
        ArgumentNullException.ThrowIfNull(network);
        var info = network.FeatureInfo();
        var wanted = (strides ?? DefaultFeatureStrides).Distinct().Order().ToArray();
        if (wanted.Length == 0)
        {
            throw new ArgumentException("At least one feature stride is needed.", nameof(strides));
        }

        foreach (int stride in wanted)
        {
            if (!info.Any(f => f.Stride == stride))
            {
                throw new ArgumentException(
                    $"The network has no feature map at stride {stride}; its strides are {string.Join(", ", info.Select(f => f.Stride))}.",
                    nameof(strides));
            }
        }

        int deepest = info.Last(f => f.Stride == wanted[^1]).Index;
        var graph = new LayerGraph(network.Config.InChans);
        int x = EmitBlock(graph, "stem.", network.Stem, LayerGraph.Input);
        AddFeatureTap(graph, info[0], wanted, x);
        for (int s = 0; s < deepest; s++)
        {
            for (int b = 0; b < network.Stages[s].Count; b++)
            {
                x = EmitBlock(graph, $"stages.{s}.{b}.", network.Stages[s][b], x);
            }

            AddFeatureTap(graph, info[s + 1], wanted, x);
        }

        return graph;
    }

    /// <summary>The strides a <see cref="ToFeatureGraph"/> returns by default: 4, 8, 16, 32 (the four stages).</summary>
    public static IReadOnlyList<int> DefaultFeatureStrides { get; } = [4, 8, 16, 32];

    /// <summary>
    /// timm's <c>feature_info</c> of a MobileOne: the stem and each stage's output with its channels and its stride
    /// (reduction) relative to the input.
    /// </summary>
    public static IReadOnlyList<FeatureMapInfo> FeatureInfo(this MobileOneNetwork network)
    {
        ArgumentNullException.ThrowIfNull(network);
        var list = new List<FeatureMapInfo>();
        int stride = network.Stem.Spec.Stride;
        list.Add(new FeatureMapInfo(0, "stem", network.Stem.Spec.OutChannels, stride));
        for (int s = 0; s < network.Stages.Count; s++)
        {
            foreach (var block in network.Stages[s])
            {
                stride *= block.Spec.Stride;
            }

            list.Add(new FeatureMapInfo(s + 1, $"stages.{s}", network.Stages[s][^1].Spec.OutChannels, stride));
        }

        return list;
    }

    private static void AddFeatureTap(LayerGraph graph, FeatureMapInfo info, int[] wanted, int value)
    {
        if (wanted.Contains(info.Stride))
        {
            graph.AddTap(info.Module, value);
        }
    }

    /// <summary>Emits one block reading value <paramref name="x"/>; returns the block's output value.</summary>
    public static int EmitBlock(LayerGraph graph, string prefix, MobileOneBlock block, int x)
    {
        int sum;
        if (block.ReparamConv is { } fused)
        {
            sum = graph.Add(Conv(prefix + "reparam_conv", x, fused));
        }
        else
        {
            // timm's summation order (scale branch, conv branches, skip): the engine adds them into one buffer in
            // graph order, so float rounding follows the reference implementation's.
            var branches = new List<int>();
            if (block.ConvScale is { } scale)
            {
                branches.Add(EmitConvBn(graph, prefix + "conv_scale", x, scale));
            }

            for (int i = 0; i < block.ConvKxk.Count; i++)
            {
                branches.Add(EmitConvBn(graph, $"{prefix}conv_kxk.{i}", x, block.ConvKxk[i]));
            }

            if (block.Identity is { } identity)
            {
                branches.Add(graph.Add(Norm(prefix + "identity", x, identity)));
            }

            sum = branches.Count == 1 ? branches[0] : graph.Add(new AddNode(prefix + "add", branches.ToArray()));
        }

        if (block.Attn is { } attn)
        {
            sum = graph.Add(new SqueezeExciteNode(
                prefix + "attn",
                sum,
                attn.Channels,
                attn.ReducedChannels,
                attn.Reduce.Weight.Value.Data,
                attn.Reduce.Bias!.Value.Data,
                attn.Expand.Weight.Value.Data,
                attn.Expand.Bias!.Value.Data));
        }

        return graph.Add(new ActivationNode(prefix + "act", sum, ActivationKind.Relu));
    }

    private static int EmitConvBn(LayerGraph graph, string prefix, int x, ConvBn branch)
    {
        int conv = graph.Add(Conv(prefix + ".conv", x, branch.Conv));
        return graph.Add(Norm(prefix + ".bn", conv, branch.Bn));
    }

    private static ConvNode Conv(string name, int x, Conv2d conv) =>
        ConvNode.Square(name, x, conv.InChannels, conv.OutChannels, conv.KernelSize, conv.Stride, conv.Padding, conv.Groups, conv.Weight.Value.Data, conv.Bias?.Value.Data);

    private static BatchNormNode Norm(string name, int x, BatchNorm2d bn) =>
        new(name, x, bn.Channels, bn.Weight.Value.Data, bn.Bias.Value.Data, bn.RunningMean.Data, bn.RunningVar.Data, bn.Eps);
}

/// <summary>One feature map of a backbone, as timm's <c>feature_info</c> describes it.</summary>
/// <param name="Index">Position in <see cref="MobileOneGraph.FeatureInfo"/>: 0 the stem, 1..4 the stages.</param>
/// <param name="Module">timm's module name: "stem" or "stages.0".."stages.3".</param>
/// <param name="Channels">Channels of the map (timm's <c>num_chs</c>).</param>
/// <param name="Stride">How much smaller than the input the map is (timm's <c>reduction</c>): an H x W input gives
/// ceil(H / stride) x ceil(W / stride) for the 3x3, padding 1 convolutions of MobileOne.</param>
public sealed record FeatureMapInfo(int Index, string Module, int Channels, int Stride);
