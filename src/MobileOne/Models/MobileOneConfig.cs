using System.Globalization;

namespace MobileOne.Models;

/// <summary>
/// The architecture of a MobileOne network: a stride-2 3x3 stem block, four stages of units (each a
/// depthwise 3x3 block then a pointwise 1x1 block, the first unit of a stage with stride 2), global
/// average pooling and a linear classifier. The named variants S0..S4 follow Apple's and timm's tables.
/// </summary>
public sealed record MobileOneConfig
{
    /// <summary>MobileOne has four stages after the stem.</summary>
    public const int StageCount = 4;

    private static readonly int[] BaseStageChannels = [64, 128, 256, 512];
    private static readonly int[] DefaultUnits = [2, 8, 10, 1];

    /// <summary>A configuration; throws <see cref="ArgumentException"/> when the sizes make no network.</summary>
    public MobileOneConfig(
        string name,
        int stemChannels,
        IReadOnlyList<int> stageUnits,
        IReadOnlyList<int> stageChannels,
        IReadOnlyList<int> seUnits,
        int numConvBranches,
        int numClasses = 1000,
        int inChans = 3)
    {
        Name = name;
        StemChannels = stemChannels;
        StageUnits = stageUnits.ToArray();
        StageChannels = stageChannels.ToArray();
        SeUnits = seUnits.ToArray();
        NumConvBranches = numConvBranches;
        NumClasses = numClasses;
        InChans = inChans;
        Validate();
    }

    /// <summary>"s0".."s4" for the published variants, "custom" otherwise.</summary>
    public string Name { get; init; }

    /// <summary>Channels of the stem.</summary>
    public int StemChannels { get; init; }

    /// <summary>Units (depthwise + pointwise block pairs) per stage.</summary>
    public IReadOnlyList<int> StageUnits { get; init; }

    /// <summary>Output channels of each stage.</summary>
    public IReadOnlyList<int> StageChannels { get; init; }

    /// <summary>How many of the last units of each stage carry squeeze-excite on both their blocks.</summary>
    public IReadOnlyList<int> SeUnits { get; init; }

    /// <summary>k: conv+BN branches per block in stages 1-4 (the stem always has one).</summary>
    public int NumConvBranches { get; init; }

    /// <summary>Classes of the classifier head.</summary>
    public int NumClasses { get; init; }

    /// <summary>Channels of the input images.</summary>
    public int InChans { get; init; }

    /// <summary>Channels the head reads (the last stage's).</summary>
    public int FeatureChannels => StageChannels[^1];

    /// <summary>MobileOne-S0 (k=4 branches), as timm's mobileone_s0.</summary>
    public static MobileOneConfig S0 { get; } = FromWidths("s0", [0.75, 1.0, 1.0, 2.0], numConvBranches: 4);

    /// <summary>MobileOne-S1, as timm's mobileone_s1.</summary>
    public static MobileOneConfig S1 { get; } = FromWidths("s1", [1.5, 1.5, 2.0, 2.5], numConvBranches: 1);

    /// <summary>MobileOne-S2, as timm's mobileone_s2.</summary>
    public static MobileOneConfig S2 { get; } = FromWidths("s2", [1.5, 2.0, 2.5, 4.0], numConvBranches: 1);

    /// <summary>MobileOne-S3, as timm's mobileone_s3.</summary>
    public static MobileOneConfig S3 { get; } = FromWidths("s3", [2.0, 2.5, 3.0, 4.0], numConvBranches: 1);

    /// <summary>MobileOne-S4 (squeeze-excite in the last stages), as timm's mobileone_s4.</summary>
    public static MobileOneConfig S4 { get; } = FromWidths("s4", [3.0, 3.5, 3.5, 4.0], numConvBranches: 1, seUnits: [0, 0, 5, 1]);

    /// <summary>S0..S4.</summary>
    public static IReadOnlyList<MobileOneConfig> Variants { get; } = [S0, S1, S2, S3, S4];

    /// <summary>
    /// Builds a configuration the way Apple's MobileOne(...) constructor does: stage channels int(base * w),
    /// stem channels min(64, int(64 * w0)).
    /// </summary>
    public static MobileOneConfig FromWidths(
        string name,
        IReadOnlyList<double> widthMultipliers,
        int numConvBranches,
        IReadOnlyList<int>? stageUnits = null,
        IReadOnlyList<int>? seUnits = null,
        int numClasses = 1000,
        int inChans = 3)
    {
        if (widthMultipliers.Count != StageCount)
        {
            throw new ArgumentException($"Expected {StageCount} width multipliers, got {widthMultipliers.Count}.");
        }

        var channels = new int[StageCount];
        for (int s = 0; s < StageCount; s++)
        {
            if (!(widthMultipliers[s] > 0))
            {
                throw new ArgumentException($"Width multiplier {widthMultipliers[s].ToString(CultureInfo.InvariantCulture)} of stage {s + 1} must be positive.");
            }

            channels[s] = (int)(BaseStageChannels[s] * widthMultipliers[s]);
        }

        int stem = Math.Min(64, (int)(64 * widthMultipliers[0]));
        return new MobileOneConfig(name, stem, stageUnits ?? DefaultUnits, channels, seUnits ?? [0, 0, 0, 0], numConvBranches, numClasses, inChans);
    }

    /// <summary>The variant named "s0".."s4" (case-insensitive); throws <see cref="ArgumentException"/> for other names.</summary>
    public static MobileOneConfig ByName(string name) =>
        Variants.FirstOrDefault(v => string.Equals(v.Name, name, StringComparison.OrdinalIgnoreCase))
        ?? throw new ArgumentException($"Unknown MobileOne variant '{name}'; expected one of s0, s1, s2, s3, s4.");

    /// <summary>
    /// Parses "s0".."s4", optionally followed by overrides, or a custom description, e.g.
    /// "s0,classes=10,in_chans=1" or "units=1/2/2/1,widths=0.5/0.5/0.5/0.5,k=2,se=0/0/1/1,classes=10".
    /// Keys: units, widths, k, se, classes, in_chans. Unset keys default to S0's values.
    /// </summary>
    public static MobileOneConfig Parse(string text)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(text);
        string[] parts = text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        int first = 0;
        var baseConfig = S0;
        bool named = parts.Length > 0 && !parts[0].Contains('=');
        if (named)
        {
            baseConfig = ByName(parts[0]);
            first = 1;
        }

        IReadOnlyList<int> units = baseConfig.StageUnits, se = baseConfig.SeUnits;
        IReadOnlyList<double>? widths = null;
        int k = baseConfig.NumConvBranches, classes = baseConfig.NumClasses, inChans = baseConfig.InChans;
        bool backboneChanged = false;
        foreach (string part in parts.Skip(first))
        {
            int eq = part.IndexOf('=');
            if (eq <= 0)
            {
                throw new ArgumentException($"Model description '{text}': '{part}' is not key=value (keys: units, widths, k, se, classes, in_chans).");
            }

            string key = part[..eq].Trim().ToLowerInvariant(), value = part[(eq + 1)..].Trim();
            switch (key)
            {
                case "units": units = ParseList(value, key, text, int.Parse); backboneChanged = true; break;
                case "widths": widths = ParseList(value, key, text, v => double.Parse(v, CultureInfo.InvariantCulture)); backboneChanged = true; break;
                case "se": se = ParseList(value, key, text, int.Parse); backboneChanged = true; break;
                case "k": k = ParseInt(value, key, text); backboneChanged = true; break;
                case "classes" or "num_classes": classes = ParseInt(value, key, text); break;
                case "in_chans": inChans = ParseInt(value, key, text); break;
                default: throw new ArgumentException($"Model description '{text}': unknown key '{key}' (keys: units, widths, k, se, classes, in_chans).");
            }
        }

        if (!backboneChanged)
        {
            return baseConfig.WithHead(classes, inChans);
        }

        widths ??= named ? null : [0.75, 1.0, 1.0, 2.0];
        if (widths is null)
        {
            // Overrides of a named variant keep its widths.
            var custom = new MobileOneConfig("custom", baseConfig.StemChannels, units, baseConfig.StageChannels, se, k, classes, inChans);
            return custom with { Name = custom.MatchVariantName(ignoreBranches: false) };
        }

        var config = FromWidths("custom", widths, k, units, se, classes, inChans);
        return config with { Name = config.MatchVariantName(ignoreBranches: false) };
    }

    private static int ParseInt(string value, string key, string text) =>
        int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out int v)
            ? v
            : throw new ArgumentException($"Model description '{text}': {key} must be an integer; got '{value}'.");

    private static T[] ParseList<T>(string value, string key, string text, Func<string, T> parse)
    {
        string[] items = value.Split('/', StringSplitOptions.TrimEntries);
        if (items.Length != StageCount)
        {
            throw new ArgumentException($"Model description '{text}': {key} needs {StageCount} values separated by '/'; got '{value}'.");
        }

        try
        {
            return items.Select(parse).ToArray();
        }
        catch (FormatException)
        {
            throw new ArgumentException($"Model description '{text}': {key} has a value that is not a number: '{value}'.");
        }
    }

    /// <summary>Stem, then each stage's blocks in order, with timm's stage and block indices.</summary>
    public IEnumerable<(int Stage, int Index, BlockSpec Spec)> StageBlocks()
    {
        int inPlanes = StemChannels;
        for (int s = 0; s < StageCount; s++)
        {
            int planes = StageChannels[s];
            for (int u = 0; u < StageUnits[s]; u++)
            {
                int stride = u == 0 ? 2 : 1;
                int se = u >= StageUnits[s] - SeUnits[s] ? 1 : 0;
                yield return (s, 2 * u, new BlockSpec(inPlanes, inPlanes, 3, stride, 1, inPlanes, NumConvBranches, se * SeWidth(inPlanes)));
                yield return (s, (2 * u) + 1, new BlockSpec(inPlanes, planes, 1, 1, 0, 1, NumConvBranches, se * SeWidth(planes)));
                inPlanes = planes;
            }
        }
    }

    /// <summary>The stem block: 3x3, stride 2.</summary>
    public BlockSpec StemSpec => new(InChans, StemChannels, 3, 2, 1, 1, 1, 0);

    /// <summary>The same architecture with another classifier or input channel count; renamed "custom" only if the backbone changed.</summary>
    public MobileOneConfig WithHead(int numClasses, int inChans) => this with { NumClasses = numClasses, InChans = inChans };

    /// <summary>The published variant with this backbone, or null. k is ignored when <paramref name="ignoreBranches"/> (a fused file cannot tell it).</summary>
    public string MatchVariantName(bool ignoreBranches)
    {
        foreach (var v in Variants)
        {
            if (v.StemChannels == StemChannels
                && v.StageUnits.SequenceEqual(StageUnits)
                && v.StageChannels.SequenceEqual(StageChannels)
                && v.SeUnits.SequenceEqual(SeUnits)
                && (ignoreBranches || v.NumConvBranches == NumConvBranches))
            {
                return v.Name;
            }
        }

        return "custom";
    }

    /// <summary>The description <see cref="Parse"/> reads back.</summary>
    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture,
            $"{Name}: stem {StemChannels}, units [{string.Join(",", StageUnits)}], channels [{string.Join(",", StageChannels)}], SE units [{string.Join(",", SeUnits)}], k={NumConvBranches}, classes {NumClasses}, in_chans {InChans}");

    private static int SeWidth(int channels) => Nn.SqueezeExcite.DefaultReducedChannels(channels);

    private void Validate()
    {
        if (StageUnits.Count != StageCount || StageChannels.Count != StageCount || SeUnits.Count != StageCount)
        {
            throw new ArgumentException($"A MobileOne configuration has {StageCount} stages: give 4 unit counts, 4 channel counts and 4 SE unit counts.");
        }

        for (int s = 0; s < StageCount; s++)
        {
            if (StageUnits[s] < 1)
            {
                throw new ArgumentException($"Stage {s + 1} needs at least one unit; got {StageUnits[s]}.");
            }

            if (StageChannels[s] < 1)
            {
                throw new ArgumentException($"Stage {s + 1} needs at least one channel; got {StageChannels[s]}.");
            }

            if (SeUnits[s] < 0 || SeUnits[s] > StageUnits[s])
            {
                throw new ArgumentException($"Stage {s + 1} has {StageUnits[s]} units; SE units must be between 0 and that, got {SeUnits[s]}.");
            }
        }

        if (StemChannels < 1 || NumConvBranches < 1 || NumClasses < 1 || InChans < 1)
        {
            throw new ArgumentException($"Stem channels, conv branches, num_classes and in_chans must be positive ({this}).");
        }
    }
}
