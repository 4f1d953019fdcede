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
public static partial class ConfigInference
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

            int stage = int.Parse(m.Groups[1].Value);
            int block = int.Parse(m.Groups[2].Value);
            if (stage >= MobileOneConfig.StageCount)
            {
                throw new CheckpointException(path, $"belongs to stage {stage + 1}, but MobileOne has {MobileOneConfig.StageCount} stages.", key);
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
        return config with { Name = config.MatchVariantName(ignoreBranches: fused) };
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
