namespace MobileOne.IO.Checkpoints;

/// <summary>
/// Translates between DingXiaoH/RepVGG's names and timm's: stage0 = stem, stage{n}.{b} = stages.{n-1}.{b},
/// rbr_dense = conv_kxk, rbr_1x1 = conv_1x1, rbr_identity = identity, rbr_reparam = reparam_conv, linear = head.fc.
/// The conv/bn sub-names inside the branches are shared.
/// </summary>
internal static class RepVggNames
{
    private static readonly (string Official, string Timm)[] Parts =
    [
        (".rbr_dense.", ".conv_kxk."),
        (".rbr_1x1.", ".conv_1x1."),
        (".rbr_identity.", ".identity."),
        (".rbr_reparam.", ".reparam_conv."),
    ];

    /// <summary>Whether <paramref name="keys"/> are in the official names (the stem is stage0's dense branch or reparam).</summary>
    public static bool IsOfficial(IEnumerable<string> keys) =>
        keys.Any(k => k.StartsWith("stage0.rbr_dense.", StringComparison.Ordinal) || k.StartsWith("stage0.rbr_reparam.", StringComparison.Ordinal));

    /// <summary>The timm name of an official key; a key outside the scheme is returned unchanged (and will be reported as unexpected).</summary>
    public static string ToTimm(string key)
    {
        if (key.StartsWith("linear.", StringComparison.Ordinal))
        {
            return "head.fc." + key["linear.".Length..];
        }

        string prefix;
        string rest;
        if (key.StartsWith("stage0.", StringComparison.Ordinal))
        {
            (prefix, rest) = ("stem", key["stage0".Length..]);
        }
        else if (key.Length > 6 && key.StartsWith("stage", StringComparison.Ordinal) && key[5] is >= '1' and <= '4' && key[6] == '.')
        {
            (prefix, rest) = ($"stages.{key[5] - '1'}", key[6..]);
        }
        else
        {
            return key;
        }

        foreach (var (official, timm) in Parts)
        {
            int at = rest.IndexOf(official, StringComparison.Ordinal);
            if (at >= 0)
            {
                return prefix + rest[..at] + timm + rest[(at + official.Length)..];
            }
        }

        return key;
    }

    /// <summary>The official name of a timm RepVGG key.</summary>
    public static string ToOfficial(string key)
    {
        if (key.StartsWith("head.fc.", StringComparison.Ordinal))
        {
            return "linear." + key["head.fc.".Length..];
        }

        string prefix, rest;
        if (key.StartsWith("stem.", StringComparison.Ordinal))
        {
            (prefix, rest) = ("stage0", key["stem".Length..]);
        }
        else if (key.StartsWith("stages.", StringComparison.Ordinal) && key.Length > 8 && key[7] is >= '0' and <= '3' && key[8] == '.')
        {
            (prefix, rest) = ($"stage{key[7] - '0' + 1}", key[8..]);
        }
        else
        {
            return key;
        }

        foreach (var (official, timm) in Parts)
        {
            int at = rest.IndexOf(timm, StringComparison.Ordinal);
            if (at >= 0)
            {
                return prefix + rest[..at] + official + rest[(at + timm.Length)..];
            }
        }

        return key;
    }
}
