using System.Text.RegularExpressions;
using MobileOne.Models;
using MobileOne.Tensors;

namespace MobileOne.IO.Checkpoints;

/// <summary>
/// Reads the architecture off the tensor shapes of a checkpoint in timm names: in_chans and stem width
/// from the stem kernel, units and widths per stage from the block indices and pointwise kernels, k from
/// the number of conv branches, SE units from which blocks carry attn, num_classes from the classifier.
/// Whatever does not fit this pattern is reported by key; the full shape check happens when loading.
/// </summary>
/// <remarks>
/// Names and shapes are untrusted: one key with a large block index, or one small tensor with a large
/// output width, can describe a network of billions of parameters. Before anything is built, the declared
/// architecture is checked against the file: it may have no more blocks than the file has tensors, and
/// its convolution and classifier weights alone may need no more values than the file holds (it must
/// hold every one of them), so building the network costs no more than the file's own size allows.
/// </remarks>
internal static partial class ConfigInference
{
    public static MobileOneConfig Infer(IReadOnlyDictionary<string, int[]> shapes, bool fused, string path)
    {
        string stemKey = fused ? "stem.reparam_conv.weight" : "stem.conv_kxk.0.conv.weight";
        int[] stem = Require(shapes, stemKey, path, rank: 4);
        int stemChannels = stem[0], inChans = stem[1];

        int k = 1;
        if (!fused)
        {
            k = 0;
            while (shapes.ContainsKey($"stages.0.0.conv_kxk.{k}.conv.weight"))
            {
                k++;
            }

            if (k == 0)
            {
                throw new CheckpointException(path, "is missing the first stage's conv branches.", "stages.0.0.conv_kxk.0.conv.weight");
            }
        }

        var blockCounts = new int[MobileOneConfig.StageCount];
        foreach (string key in shapes.Keys)
        {
            var m = StageBlock().Match(key);
            if (!m.Success)
            {
                continue;
            }

            if (!int.TryParse(m.Groups[1].ValueSpan, out int stage) || stage >= MobileOneConfig.StageCount)
            {
                throw new CheckpointException(path, $"belongs to stage index {m.Groups[1].Value}, but MobileOne has {MobileOneConfig.StageCount} stages (0 to {MobileOneConfig.StageCount - 1}).", key);
            }

            // Blocks are numbered from 0 without gaps and each has at least one tensor, so an index at or
            // beyond the file's tensor count cannot be real; refusing it here keeps a crafted index from
            // sizing the network.
            if (!int.TryParse(m.Groups[2].ValueSpan, out int block) || block >= shapes.Count)
            {
                throw new CheckpointException(path, $"has block index {m.Groups[2].Value}, but the file holds only {shapes.Count} tensors and every block needs at least one.", key);
            }

            blockCounts[stage] = Math.Max(blockCounts[stage], block + 1);
        }

        var units = new int[MobileOneConfig.StageCount];
        var channels = new int[MobileOneConfig.StageCount];
        var seUnits = new int[MobileOneConfig.StageCount];
        string conv = fused ? "reparam_conv.weight" : "conv_kxk.0.conv.weight";
        for (int s = 0; s < MobileOneConfig.StageCount; s++)
        {
            if (blockCounts[s] == 0)
            {
                throw new CheckpointException(path, $"has no blocks for stage {s + 1}.", $"stages.{s}.0.{conv}");
            }

            if (blockCounts[s] % 2 != 0)
            {
                throw new CheckpointException(path, $"stage {s + 1} has {blockCounts[s]} blocks; MobileOne stages hold depthwise+pointwise pairs.", $"stages.{s}.{blockCounts[s] - 1}.{conv}");
            }

            units[s] = blockCounts[s] / 2;
            channels[s] = Require(shapes, $"stages.{s}.{blockCounts[s] - 1}.{conv}", path, rank: 4)[0];

            // SE sits on the last units of a stage; count the trailing run and insist nothing precedes it.
            int trailing = 0;
            while (trailing < units[s] && shapes.ContainsKey($"stages.{s}.{2 * (units[s] - 1 - trailing)}.attn.fc1.weight"))
            {
                trailing++;
            }

            for (int u = 0; u < units[s] - trailing; u++)
            {
                string se = $"stages.{s}.{2 * u}.attn.fc1.weight";
                if (shapes.ContainsKey(se))
                {
                    throw new CheckpointException(path, $"squeeze-excite in unit {u + 1} of stage {s + 1} is not part of the trailing SE units MobileOne allows.", se);
                }
            }

            seUnits[s] = trailing;
        }

        int[] head = Require(shapes, "head.fc.weight", path, rank: 2);
        var config = new MobileOneConfig("custom", stemChannels, units, channels, seUnits, k, head[0], inChans);
        CheckAgainstFile(config, fused, shapes, path, blockCounts, conv);
        return config with { Name = config.MatchVariantName(ignoreBranches: fused) };
    }

    /// <summary>
    /// The values the network's convolution kernels and classifier need (a lower bound of its parameter
    /// count: BatchNorm and squeeze-excite come on top), computed from the configuration without building it.
    /// </summary>
    public static double MinimumWeights(MobileOneConfig config, bool fused)
    {
        double total = ConvWeights(config.StemSpec, fused) + ((double)config.NumClasses * config.FeatureChannels);
        foreach (var (_, _, spec) in config.StageBlocks())
        {
            total += ConvWeights(spec, fused);
        }

        return total;
    }

    private static double ConvWeights(BlockSpec spec, bool fused) =>
        (double)spec.OutChannels * (spec.InChannels / spec.Groups) * spec.KernelSize * spec.KernelSize * (fused ? 1 : spec.NumConvBranches);

    private static void CheckAgainstFile(MobileOneConfig config, bool fused, IReadOnlyDictionary<string, int[]> shapes, string path, int[] blockCounts, string conv)
    {
        double held = 0;
        foreach (int[] shape in shapes.Values)
        {
            double n = 1;
            foreach (int d in shape)
            {
                n *= d;
            }

            held += n;
        }

        double needed = MinimumWeights(config, fused);
        if (needed > held)
        {
            // Name the stage that implies the most weights: its last block's kernel declared the width.
            var perStage = new double[MobileOneConfig.StageCount];
            foreach (var (stage, _, spec) in config.StageBlocks())
            {
                perStage[stage] += ConvWeights(spec, fused);
            }

            int widest = Array.IndexOf(perStage, perStage.Max());
            throw new CheckpointException(
                path,
                $"declares a network ({config}) whose convolution and classifier weights alone need {needed:0} values, " +
                $"but the file holds only {held:0}; refused before building it.",
                $"stages.{widest}.{blockCounts[widest] - 1}.{conv}");
        }
    }

    private static int[] Require(IReadOnlyDictionary<string, int[]> shapes, string key, string path, int rank)
    {
        if (!shapes.TryGetValue(key, out int[]? shape))
        {
            throw new CheckpointException(path, "is missing; cannot infer the MobileOne configuration without it.", key);
        }

        if (shape.Length != rank || shape.Any(d => d <= 0))
        {
            throw new CheckpointException(path, $"has shape {Tensor.FormatShape(shape)}; expected a non-empty tensor of rank {rank}.", key);
        }

        return shape;
    }

    [GeneratedRegex(@"^stages\.([0-9]+)\.([0-9]+)\.")]
    private static partial Regex StageBlock();
}
