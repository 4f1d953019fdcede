using System.Text.RegularExpressions;

namespace MobileOne.IO.Checkpoints;

/// <summary>Whose parameter names a checkpoint uses. Our canonical names are timm's; the authors' are mappings.</summary>
public enum KeyLayout
{
    /// <summary>timm's names: stem., stages.{s}.{b}.conv_kxk.{i}, conv_scale, identity, attn, head.fc.</summary>
    Timm,
    /// <summary>Apple's names (ml-mobileone): stage0..stage4, rbr_conv, rbr_scale, rbr_skip, se, linear. MobileOne only.</summary>
    Apple,
    /// <summary>DingXiaoH/RepVGG's names: stage0..stage4, rbr_dense, rbr_1x1, rbr_identity, rbr_reparam, linear. RepVGG only.</summary>
    RepVggOfficial,
}

/// <summary>The naming of a checkpoint: whose names, and whether the blocks are fused (reparam_conv).</summary>
public readonly record struct KeyScheme(KeyLayout Layout, bool Fused)
{
    /// <summary>"timm", "timm-fused", "apple", "apple-fused".</summary>
    public string Name => Layout switch
    {
        KeyLayout.Timm => "timm",
        KeyLayout.Apple => "apple",
        _ => "official",
    } + (Fused ? "-fused" : string.Empty);

    /// <inheritdoc cref="Name"/>
    public override string ToString() => Name;
}

/// <summary>
/// Translates between Apple's ml-mobileone names and timm's:
/// stage0 = stem, stage{n} = stages.{n-1}, rbr_conv = conv_kxk, rbr_scale = conv_scale, rbr_skip = identity,
/// se.reduce/expand = attn.fc1/fc2, linear = head.fc. Block indices and reparam_conv are shared.
/// </summary>
internal static partial class KeyNames
{
    private static readonly (string Apple, string Timm)[] BlockParts =
    [
        (".rbr_conv.", ".conv_kxk."),
        (".rbr_scale.", ".conv_scale."),
        (".rbr_skip.", ".identity."),
        (".se.reduce.", ".attn.fc1."),
        (".se.expand.", ".attn.fc2."),
    ];

    public static string AppleToTimm(string key)
    {
        string k;
        if (key.StartsWith("linear.", StringComparison.Ordinal))
        {
            return "head.fc." + key["linear.".Length..];
        }

        if (key.StartsWith("stage0.", StringComparison.Ordinal))
        {
            k = "stem." + key["stage0.".Length..];
        }
        else
        {
            // An index too large for int is left as written: the key then belongs to no parameter and is reported as such.
            var m = AppleStage().Match(key);
            k = m.Success && int.TryParse(m.Groups[1].ValueSpan, out int stage) ? $"stages.{stage - 1}." + key[m.Length..] : key;
        }

        foreach (var (apple, timm) in BlockParts)
        {
            k = k.Replace(apple, timm, StringComparison.Ordinal);
        }

        return k;
    }

    public static string TimmToApple(string key)
    {
        string k;
        if (key.StartsWith("head.fc.", StringComparison.Ordinal))
        {
            return "linear." + key["head.fc.".Length..];
        }

        if (key.StartsWith("stem.", StringComparison.Ordinal))
        {
            k = "stage0." + key["stem.".Length..];
        }
        else
        {
            var m = TimmStage().Match(key);
            k = m.Success && int.TryParse(m.Groups[1].ValueSpan, out int stage) && stage < int.MaxValue ? $"stage{stage + 1}." + key[m.Length..] : key;
        }

        foreach (var (apple, timm) in BlockParts)
        {
            k = k.Replace(timm, apple, StringComparison.Ordinal);
        }

        return k;
    }

    public static string ToLayout(string timmKey, KeyLayout layout) => layout == KeyLayout.Timm ? timmKey : TimmToApple(timmKey);

    public static string ToTimm(string key, KeyLayout layout) => layout == KeyLayout.Timm ? key : AppleToTimm(key);

    /// <summary>
    /// Decides the scheme from the names alone. Returns null with a reason when the names are neither
    /// or mix both, so the caller can report it against the file.
    /// </summary>
    public static KeyScheme Detect(IReadOnlyCollection<string> keys, out string? problem)
    {
        bool apple = keys.Any(k => k.StartsWith("stage0.", StringComparison.Ordinal) || k.StartsWith("linear.", StringComparison.Ordinal) || AppleStage().IsMatch(k));
        bool timm = keys.Any(k => k.StartsWith("stem.", StringComparison.Ordinal) || k.StartsWith("head.fc.", StringComparison.Ordinal) || TimmStage().IsMatch(k));
        bool fused = keys.Any(k => k.Contains(".reparam_conv.", StringComparison.Ordinal));
        bool unfused = keys.Any(k => k.Contains(".conv_kxk.", StringComparison.Ordinal) || k.Contains(".rbr_conv.", StringComparison.Ordinal));
        problem = null;
        if (apple == timm)
        {
            problem = apple
                ? "mixes Apple (stage0., linear.) and timm (stem., stages., head.fc.) parameter names"
                : "has no MobileOne parameter names (expected timm's stem./stages./head.fc. or Apple's stage0..stage4./linear.)";
        }
        else if (fused && unfused)
        {
            problem = "mixes fused (reparam_conv) and train-time (conv branches) blocks";
        }
        else if (!fused && !unfused)
        {
            problem = "has neither train-time conv branches nor fused reparam_conv weights";
        }

        return new KeyScheme(apple ? KeyLayout.Apple : KeyLayout.Timm, fused);
    }

    [GeneratedRegex(@"^stage([1-9][0-9]*)\.")]
    private static partial Regex AppleStage();

    [GeneratedRegex(@"^stages\.([0-9]+)\.")]
    private static partial Regex TimmStage();
}
