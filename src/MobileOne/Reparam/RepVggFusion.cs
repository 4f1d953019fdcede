using MobileOne.Models;
using MobileOne.Models.Zoo;
using MobileOne.Nn;

namespace MobileOne.Reparam;

/// <summary>
/// Reparameterizes a train-time RepVGG (timm's names) into its deploy form, as RepVggBlock.reparameterize does:
/// each block's 3x3 conv + BN and 1x1 conv + BN folded, the 1x1 kernel centred in the 3x3, the identity BatchNorm
/// written as an identity kernel and folded, all summed in double precision into reparam_conv; the classifier copied.
/// </summary>
internal static class RepVggFusion
{
    private const string Reparam = "reparam_conv";

    public static ZooNetwork Fuse(ZooNetwork network)
    {
        var entry = ModelRegistry.Get(network.Architecture);
        if (entry.Family != "repvgg")
        {
            throw new ArgumentException($"{network.Architecture} has no fused form: only MobileOne and RepVGG are re-parameterizable.", nameof(network));
        }

        var fused = entry.CreateUninitialized(network.NumClasses, network.InChans, fused: true);
        if (network.IsFused)
        {
            fused.CopyStateFrom(network);
            return fused;
        }

        var layers = network.Operations.Where(o => o.Layer is not null).ToDictionary(o => o.Name, o => o.Layer!);
        foreach (var op in fused.Operations)
        {
            if (op is ConvOp target && op.Name.EndsWith(Reparam, StringComparison.Ordinal))
            {
                string block = op.Name[..^Reparam.Length];
                var kernel = FusedKernel.Zero(target.Conv.Weight.Shape);
                kernel.AddCentered(Fold(layers, block + "conv_kxk"));
                kernel.AddCentered(Fold(layers, block + "conv_1x1"));
                if (layers.TryGetValue(block + "identity", out var identity))
                {
                    var bn = (BatchNorm2d)identity;
                    int groups = target.Conv.Groups;
                    kernel.AddCentered(BatchNormFolding.Fold(
                        BlockFusion.IdentityKernel(bn.Channels, groups), [bn.Channels, bn.Channels / groups, 1, 1], BatchNormStats.From(bn)));
                }

                kernel.WeightTensor().Data.CopyTo(target.Conv.Weight.Value.Data, 0);
                kernel.BiasTensor().Data.CopyTo(target.Conv.Bias!.Value.Data, 0);
            }
            else if (op.Layer is { } layer)
            {
                layer.CopyStateFrom(layers[op.Name]);
            }
        }

        return fused;
    }

    private static FusedKernel Fold(Dictionary<string, Module> layers, string branch)
    {
        var conv = (Conv2d)layers[branch + ".conv"];
        return BatchNormFolding.Fold(conv.Weight.Value.Data, conv.Weight.Shape, BatchNormStats.From((BatchNorm2d)layers[branch + ".bn"]));
    }
}
