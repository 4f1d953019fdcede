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
