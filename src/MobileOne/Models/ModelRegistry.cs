using MobileOne.Models.Zoo;

namespace MobileOne.Models;

/// <summary>
/// timm's default pretrained configuration of an architecture: what its published weights expect at evaluation
/// (input side, centre-crop fraction, resize filter, normalization) and the tag of those weights.
/// </summary>
/// <param name="Tag">timm's pretrained tag (e.g. "a1_in1k"; "untrained" where timm publishes no weights).</param>
/// <param name="InputSize">Side of the square input.</param>
/// <param name="CropPct">Fraction of the resized shorter side kept by the centre crop.</param>
/// <param name="Interpolation">"bilinear" or "bicubic".</param>
/// <param name="Mean">Per-channel mean subtracted after scaling to [0, 1].</param>
/// <param name="Std">Per-channel standard deviation divided by.</param>
public sealed record PretrainedConfig(string Tag, int InputSize, double CropPct, string Interpolation, IReadOnlyList<double> Mean, IReadOnlyList<double> Std)
{
    /// <summary>ImageNet's per-channel mean (timm's IMAGENET_DEFAULT_MEAN).</summary>
    public static IReadOnlyList<double> ImageNetMean { get; } = [0.485, 0.456, 0.406];

    /// <summary>ImageNet's per-channel standard deviation (timm's IMAGENET_DEFAULT_STD).</summary>
    public static IReadOnlyList<double> ImageNetStd { get; } = [0.229, 0.224, 0.225];

    internal static IReadOnlyList<double> Half { get; } = [0.5, 0.5, 0.5];
}

/// <summary>One architecture of the model zoo.</summary>
/// <param name="Name">timm's model name.</param>
/// <param name="Family">"mobileone", "repvgg", "resnet", "mobilenetv1" or "mobilenetv2".</param>
/// <param name="Pretrained">timm's default pretrained configuration.</param>
/// <param name="Reparameterizable">Whether the family has a deploy (fused) form.</param>
public sealed record ModelEntry(string Name, string Family, PretrainedConfig Pretrained, bool Reparameterizable)
{
    /// <summary>
    /// The network with timm's initialisation drawn from <paramref name="seed"/>: train-time, or in its deploy form
    /// when <paramref name="fused"/> (only for re-parameterizable families; the deploy weights are then drawn directly,
    /// use the Reparam fusions to fuse a trained network).
    /// </summary>
    public ClassifierNetwork Create(int numClasses = 1000, int inChans = 3, bool fused = false, int seed = 0)
    {
        if (fused && !Reparameterizable)
        {
            throw new ArgumentException($"{Name} has no fused form: only MobileOne and RepVGG are re-parameterizable.", nameof(fused));
        }

        switch (Family)
        {
            case "mobileone":
                var config = MobileOneConfig.ByName(Name["mobileone_".Length..]).WithHead(numClasses, inChans);
                var mobileOne = MobileOneNetwork.Create(config, fused);
                WeightInit.Initialize(mobileOne, seed);
                return mobileOne;
            default:
                var zoo = CreateUninitialized(numClasses, inChans, fused);
                zoo.Initialize(seed);
                return zoo;
        }
    }

    /// <summary>A zoo network with zero weights, for a checkpoint to fill (MobileOne checkpoints have their own loader).</summary>
    internal ZooNetwork CreateUninitialized(int numClasses, int inChans, bool fused) => Family switch
    {
        "mobileone" => throw new InvalidOperationException("MobileOne networks are built from their inferred configuration."),
        "repvgg" => RepVgg.Create(Name, numClasses, inChans, fused),
        "resnet" => ResNet.Create(Name, numClasses, inChans),
        _ => MobileNet.Create(Name, numClasses, inChans),
    };

    /// <summary>
    /// The state names and shapes of a zoo network (not MobileOne, whose architecture is inferred from the shapes
    /// instead), in timm's order, without allocating anything: what a checkpoint is matched against.
    /// </summary>
    public IReadOnlyList<(string Name, int[] Shape)> ZooStateShapes(int numClasses, int inChans, bool fused) => Family switch
    {
        "mobileone" => throw new InvalidOperationException("MobileOne's architecture is inferred from a checkpoint's shapes (ConfigInference)."),
        "repvgg" => RepVgg.StateShapes(Name, numClasses, inChans, fused),
        "resnet" => ResNet.StateShapes(Name, numClasses, inChans),
        _ => MobileNet.StateShapes(Name, numClasses, inChans),
    };
}

/// <summary>Every architecture the project builds, by timm's name (<c>mobileone models</c> lists them).</summary>
public static class ModelRegistry
{
    private static readonly PretrainedConfig Bilinear875 = new("rvgg_in1k", 224, 0.875, "bilinear", PretrainedConfig.ImageNetMean, PretrainedConfig.ImageNetStd);

    /// <summary>The entries in listing order: MobileOne, RepVGG, ResNet, MobileNet V1, MobileNet V2.</summary>
    public static IReadOnlyList<ModelEntry> All { get; } =
    [
        .. MobileOneConfig.Variants.Select(v => new ModelEntry(
            "mobileone_" + v.Name, "mobileone",
            new PretrainedConfig("apple_in1k", 224, v.Name == "s0" ? 0.875 : 0.9, "bilinear", PretrainedConfig.ImageNetMean, PretrainedConfig.ImageNetStd), true)),
        .. RepVgg.Variants.Keys.Select(n => new ModelEntry(n, "repvgg", Bilinear875, true)),
        .. ResNet.Variants.Keys.Select(n => new ModelEntry(
            n, "resnet", new PretrainedConfig("a1_in1k", 224, 0.95, "bicubic", PretrainedConfig.ImageNetMean, PretrainedConfig.ImageNetStd), false)),
        .. MobileNet.Variants.Select(v => new ModelEntry(
            v.Key, v.Value.Version == 1 ? "mobilenetv1" : "mobilenetv2", MobileNetPretrained(v.Key), false)),
    ];

    /// <summary>The entry named <paramref name="name"/> (timm's name, case-insensitive), or null.</summary>
    public static ModelEntry? Find(string name) =>
        All.FirstOrDefault(e => string.Equals(e.Name, name, StringComparison.OrdinalIgnoreCase));

    /// <summary>
    /// The evaluation preprocessing of an architecture: its entry's, or for a custom MobileOne the one S1..S4 share
    /// (timm's MobileOne crop_pct 0.9).
    /// </summary>
    public static PretrainedConfig PretrainedFor(string architecture) =>
        Find(architecture)?.Pretrained
        ?? (architecture.StartsWith("mobileone_", StringComparison.Ordinal) ? Get("mobileone_s1").Pretrained : throw new ArgumentException($"Unknown architecture '{architecture}'.", nameof(architecture)));

    /// <summary>The entry named <paramref name="name"/>; an unknown name is an error that lists the known ones.</summary>
    public static ModelEntry Get(string name) =>
        Find(name) ?? throw new ArgumentException($"Unknown model '{name}'; expected one of: {string.Join(", ", All.Select(e => e.Name))}.", nameof(name));

    // timm's tags: V1 was trained with the 0.5 mean/std of its ra4 recipe (0.9 crop at width 1.25); of V2 only
    // 050, 100 and 140 have published weights.
    private static PretrainedConfig MobileNetPretrained(string name) => name switch
    {
        "mobilenetv1_100" => new("ra4_e3600_r224_in1k", 224, 0.875, "bicubic", PretrainedConfig.Half, PretrainedConfig.Half),
        "mobilenetv1_125" => new("ra4_e3600_r224_in1k", 224, 0.9, "bicubic", PretrainedConfig.Half, PretrainedConfig.Half),
        "mobilenetv2_050" => new("lamb_in1k", 224, 0.875, "bicubic", PretrainedConfig.ImageNetMean, PretrainedConfig.ImageNetStd),
        "mobilenetv2_100" or "mobilenetv2_140" => new("ra_in1k", 224, 0.875, "bicubic", PretrainedConfig.ImageNetMean, PretrainedConfig.ImageNetStd),
        _ => new("untrained", 224, 0.875, "bicubic", PretrainedConfig.ImageNetMean, PretrainedConfig.ImageNetStd),
    };
}
