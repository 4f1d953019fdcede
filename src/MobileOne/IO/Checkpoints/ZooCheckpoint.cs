using MobileOne.Models;
using MobileOne.Models.Zoo;
using MobileOne.Tensors;

namespace MobileOne.IO.Checkpoints;

/// <summary>
/// Loads the zoo families (RepVGG, ResNet, MobileNet V1/V2) from checkpoints in timm's names. The family comes from
/// the names, the classifier width and input channels from the first convolution's and the classifier's shapes, and
/// the variant is the registry entry whose complete list of names and shapes equals the file's (compared before
/// anything is allocated; the file must hold every tensor with the right shape and nothing else).
/// </summary>
public static class ZooCheckpoint
{
    private const int MaxListedDifferences = 3;

    /// <summary>
    /// The zoo family a checkpoint's timm names belong to ("repvgg", "resnet", "mobilenetv1", "mobilenetv2"), or null
    /// (MobileOne, or nothing known). Fused RepVGG and fused MobileOne both name every block reparam_conv: RepVGG's first
    /// stage block is a dense 3x3, MobileOne's a depthwise one.
    /// </summary>
    public static string? DetectFamily(IReadOnlyDictionary<string, int[]> shapes)
    {
        if (shapes.ContainsKey("conv1.weight") && shapes.ContainsKey("layer1.0.conv1.weight"))
        {
            return "resnet";
        }

        if (shapes.ContainsKey("conv_stem.weight"))
        {
            return shapes.Keys.Any(k => k.EndsWith(".conv_pwl.weight", StringComparison.Ordinal)) ? "mobilenetv2" : "mobilenetv1";
        }

        if (shapes.ContainsKey("stem.conv_1x1.conv.weight"))
        {
            return "repvgg";
        }

        return shapes.ContainsKey("stem.reparam_conv.weight")
            && shapes.TryGetValue("stages.0.0.reparam_conv.weight", out int[]? first) && first.Length == 4 && first[1] > 1 && first[2] == 3
            ? "repvgg"
            : null;
    }

    /// <summary>
    /// A file in DingXiaoH/RepVGG's names as the same tensors in timm's names (the file itself unchanged), or the file as
    /// it is, with the layout it was in.
    /// </summary>
    public static (TensorFile File, KeyLayout Layout) InTimmNames(TensorFile file, string path = "(tensor file)")
    {
        if (!RepVggNames.IsOfficial(file.Tensors.Keys))
        {
            return (file, KeyLayout.Timm);
        }

        var renamed = new TensorFile();
        foreach (var (key, tensor) in file.Tensors)
        {
            string timm = RepVggNames.ToTimm(key);
            if (!renamed.Tensors.TryAdd(timm, tensor))
            {
                throw new CheckpointException(path, $"names the same parameter as another key ('{timm}' in timm's names).", key);
            }
        }

        return (renamed, KeyLayout.RepVggOfficial);
    }

    /// <summary>Builds the zoo network <paramref name="file"/> holds (call when <see cref="DetectFamily"/> found a family).</summary>
    public static LoadedClassifier FromTensorFile(TensorFile file, string path, CheckpointFormat format)
    {
        var (named, layout) = InTimmNames(file, path);
        return FromTimmNames(named, layout, Shapes(named), path, format);
    }

    /// <summary>The name -> shape map of a tensor file (what family detection and variant matching read).</summary>
    internal static Dictionary<string, int[]> Shapes(TensorFile file) =>
        file.Tensors.ToDictionary(kv => kv.Key, kv => kv.Value.Shape, StringComparer.Ordinal);

    /// <summary>
    /// <see cref="FromTensorFile"/> for a file already in timm's names (<see cref="InTimmNames"/>), with its shapes:
    /// the caller that detected the family passes what it computed instead of renaming and mapping again.
    /// </summary>
    internal static LoadedClassifier FromTimmNames(TensorFile file, KeyLayout layout, Dictionary<string, int[]> shapes, string path, CheckpointFormat format)
    {
        string family = DetectFamily(shapes) ?? throw new CheckpointException(path, "holds none of the model families this project knows (MobileOne, RepVGG, ResNet, MobileNet V1/V2 in timm's names).");
        bool fused = shapes.Keys.Any(k => k.EndsWith(".reparam_conv.weight", StringComparison.Ordinal));
        var (firstConv, classifier) = family switch
        {
            "resnet" => ("conv1.weight", "fc.weight"),
            "repvgg" => (fused ? "stem.reparam_conv.weight" : "stem.conv_kxk.conv.weight", "head.fc.weight"),
            _ => ("conv_stem.weight", "classifier.weight"),
        };
        int inChans = Dimension(shapes, path, firstConv, rank: 4, axis: 1);
        int numClasses = Dimension(shapes, path, classifier, rank: 2, axis: 0);

        ModelEntry? match = null;
        var nearest = (Entry: (ModelEntry?)null, Differences: new List<string>());
        foreach (var entry in ModelRegistry.All.Where(e => e.Family == family))
        {
            var differences = Differences(entry.ZooStateShapes(numClasses, inChans, fused), shapes);
            if (differences.Count == 0)
            {
                match = entry;
                break;
            }

            if (nearest.Entry is null || differences.Count < nearest.Differences.Count)
            {
                nearest = (entry, differences);
            }
        }

        if (match is null)
        {
            var d = nearest.Differences;
            throw new CheckpointException(
                path,
                $"is a {family} checkpoint{(fused ? " (fused)" : string.Empty)} but matches no variant; the closest, {nearest.Entry!.Name}, differs in {d.Count} tensor(s): "
                + string.Join("; ", d.Take(MaxListedDifferences)) + (d.Count > MaxListedDifferences ? $"; and {d.Count - MaxListedDifferences} more" : string.Empty) + ".");
        }

        var network = match.CreateUninitialized(numClasses, inChans, fused);
        foreach (var entry in network.State())
        {
            ModelCheckpoint.Assign(entry, file.Tensors[entry.Name], path, entry.Name, match.Name);
        }

        return new LoadedClassifier(network, path, format, fused) { Layout = layout };
    }

    private static int Dimension(Dictionary<string, int[]> shapes, string path, string key, int rank, int axis)
    {
        if (!shapes.TryGetValue(key, out int[]? shape))
        {
            throw new CheckpointException(path, "is missing; the family's names require it.", key);
        }

        if (shape.Length != rank || shape[axis] <= 0)
        {
            throw new CheckpointException(path, $"has shape {Tensor.FormatShape(shape)}; expected a {rank}-d weight.", key);
        }

        return shape[axis];
    }

    private static List<string> Differences(IReadOnlyList<(string Name, int[] Shape)> expected, Dictionary<string, int[]> shapes)
    {
        var differences = new List<string>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (name, shape) in expected)
        {
            seen.Add(name);
            if (!shapes.TryGetValue(name, out int[]? held))
            {
                differences.Add($"'{name}' missing");
            }
            else if (!held.AsSpan().SequenceEqual(shape))
            {
                differences.Add($"'{name}' is {Tensor.FormatShape(held)}, expected {Tensor.FormatShape(shape)}");
            }
        }

        differences.AddRange(shapes.Keys.Where(k => !seen.Contains(k)).Order(StringComparer.Ordinal).Select(k => $"'{k}' unexpected"));
        return differences;
    }
}

/// <summary>A classifier of any family built from a checkpoint.</summary>
/// <param name="Network">The network, train-time or fused as the file holds it, every tensor loaded.</param>
/// <param name="Path">The file.</param>
/// <param name="Format">Its format.</param>
/// <param name="Fused">Whether its re-parameterizable blocks are fused.</param>
/// <param name="MobileOneInfo">For a MobileOne file, its key scheme and inferred configuration.</param>
public sealed record LoadedClassifier(ClassifierNetwork Network, string Path, CheckpointFormat Format, bool Fused, CheckpointInfo? MobileOneInfo = null)
{
    /// <summary>The MobileOne network, when the file holds one.</summary>
    public MobileOneNetwork? MobileOne => Network as MobileOneNetwork;

    /// <summary>Whose names the file used.</summary>
    public KeyLayout Layout { get; init; } = MobileOneInfo?.Scheme.Layout ?? KeyLayout.Timm;

    /// <summary>The side of the square input the file records it was trained at (<see cref="InputSizeRecord"/>), or null.</summary>
    public int? InputSize { get; init; }
}
