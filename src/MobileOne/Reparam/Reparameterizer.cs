using MobileOne.Models;
using MobileOne.Models.Zoo;

namespace MobileOne.Reparam;

/// <summary>Turns a train-time network into its fused inference form (timm's reparameterize_model).</summary>
public static class Reparameterizer
{
    /// <summary>
    /// A new fused network of any re-parameterizable family (MobileOne, RepVGG); the input is left untouched. Other
    /// families have no fused form and are refused.
    /// </summary>
    public static ClassifierNetwork Fuse(ClassifierNetwork network) => network switch
    {
        MobileOneNetwork mobileOne => Fuse(mobileOne),
        ZooNetwork zoo => RepVggFusion.Fuse(zoo),
        _ => throw new ArgumentException($"{network.Architecture} has no fused form.", nameof(network)),
    };

    /// <summary>A new fused network; the input is left untouched. A fused input is copied.</summary>
    public static MobileOneNetwork Fuse(MobileOneNetwork network)
    {
        ArgumentNullException.ThrowIfNull(network);
        var fused = MobileOneNetwork.Create(network.Config, fused: true);
        foreach (var ((_, source), (_, target)) in network.Blocks().Zip(fused.Blocks()))
        {
            var kernel = BlockFusion.Fuse(source);
            kernel.WeightTensor().Data.CopyTo(target.ReparamConv!.Weight.Value.Data, 0);
            kernel.BiasTensor().Data.CopyTo(target.ReparamConv!.Bias!.Value.Data, 0);
            if (source.Attn is not null)
            {
                target.Attn!.CopyStateFrom(source.Attn);
            }
        }

        fused.Head.CopyStateFrom(network.Head);
        return fused;
    }
}
