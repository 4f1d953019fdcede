using MobileOne.Models;
using MobileOne.Nn;

namespace MobileOne.Reparam;

/// <summary>
/// Reparameterizes one train-time MobileOne block into a single convolution with bias:
/// every conv+BN branch folded, the 1x1 scale branch zero-padded to the centre of the KxK kernel, the
/// BN skip written as a (grouped) identity kernel and folded, then all summed.
/// </summary>
internal static class BlockFusion
{
    public static FusedKernel Fuse(MobileOneBlock block)
    {
        ArgumentNullException.ThrowIfNull(block);
        if (block.IsFused)
        {
            var conv = block.ReparamConv!;
            return new FusedKernel(
                conv.Weight.Shape,
                Array.ConvertAll(conv.Weight.Value.Data, v => (double)v),
                Array.ConvertAll(conv.Bias!.Value.Data, v => (double)v));
        }

        var spec = block.Spec;
        var total = FusedKernel.Zero([spec.OutChannels, spec.InChannels / spec.Groups, spec.KernelSize, spec.KernelSize]);
        foreach (var branch in block.ConvKxk)
        {
            total.AddCentered(FoldBranch(branch));
        }

        if (block.ConvScale is not null)
        {
            total.AddCentered(FoldBranch(block.ConvScale));
        }

        if (block.Identity is not null)
        {
            var identity = IdentityKernel(spec.InChannels, spec.Groups);
            total.AddCentered(BatchNormFolding.Fold(identity, [spec.InChannels, spec.InChannels / spec.Groups, 1, 1], BatchNormStats.From(block.Identity)));
        }

        return total;
    }

    /// <summary>
    /// The 1x1 kernel that copies each channel to itself under grouping: weight[c, c mod (C/groups)] = 1.
    /// Placed at the centre of a KxK kernel it is the skip connection.
    /// </summary>
    public static float[] IdentityKernel(int channels, int groups)
    {
        int perGroup = channels / groups;
        var kernel = new float[channels * perGroup];
        for (int c = 0; c < channels; c++)
        {
            kernel[(c * perGroup) + (c % perGroup)] = 1f;
        }

        return kernel;
    }

    /// <summary>One conv + BN branch folded into a kernel and bias (the branch as it acts at inference).</summary>
    public static FusedKernel FoldBranch(ConvBn branch) =>
        BatchNormFolding.Fold(branch.Conv.Weight.Value.Data, branch.Conv.Weight.Shape, BatchNormStats.From(branch.Bn));
}
