using MobileOne.Models;
using MobileOne.Nn;
using MobileOne.Tensors;

namespace MobileOne.IO.Checkpoints;

/// <summary>What a checkpoint turned out to be.</summary>
public sealed record CheckpointInfo(string Path, CheckpointFormat Format, KeyScheme Scheme, MobileOneConfig Config)
{
    /// <summary>Whether the blocks are fused (reparam_conv) rather than train-time branches.</summary>
    public bool Fused => Scheme.Fused;

    /// <summary>The variant's name ("s0".."s4", or a custom description).</summary>
    public string Variant => Config.Name;
}

/// <summary>A network built from a checkpoint, with what the checkpoint turned out to be.</summary>
/// <param name="Network">The network, train-time or fused as the file holds it, with every tensor loaded.</param>
/// <param name="Info">Format, key scheme and the architecture read from the file.</param>
public sealed record LoadedModel(MobileOneNetwork Network, CheckpointInfo Info);

/// <summary>
/// Loads a MobileOne network from any supported checkpoint (format, key scheme, variant, num_classes and
/// in_chans all detected) and saves one in timm's or Apple's names. Every tensor of the model must be in the
/// file with the right shape, and every tensor of the file must belong to the model. Weights must be finite
/// and BatchNorm running variances non-negative: either would silently turn every output into NaN, so the
/// file is refused with the tensor's name.
/// </summary>
public static class ModelCheckpoint
{
    private const int MaxListedKeys = 12;

    /// <summary>Loads a MobileOne checkpoint: Apple or timm names, fused or not, safetensors (also sharded) or torch.save; the architecture is inferred from the shapes. Throws <see cref="CheckpointException"/> naming the file and key for anything it cannot load.</summary>
    public static LoadedModel Load(string path)
    {
        var (file, format) = CheckpointFile.Read(path);
        return FromTensorFile(file, path, format);
    }

    /// <summary>
    /// Loads a classifier of any family: a zoo network (RepVGG, ResNet, MobileNet V1/V2 in timm's names, variant
    /// matched by <see cref="ZooCheckpoint"/>) or a MobileOne network (as <see cref="Load"/>).
    /// </summary>
    public static LoadedClassifier LoadClassifier(string path)
    {
        var (file, format) = CheckpointFile.Read(path);
        return ClassifierFromTensorFile(file, path, format);
    }

    /// <summary>The classifier of any family a tensor file holds (see <see cref="LoadClassifier"/>), with the input size it records.</summary>
    public static LoadedClassifier ClassifierFromTensorFile(TensorFile file, string path, CheckpointFormat format)
    {
        var loaded = Classifier(file, path, format);
        return loaded with { InputSize = InputSizeRecord.Read(file, path, loaded.Network.InChans) };
    }

    private static LoadedClassifier Classifier(TensorFile file, string path, CheckpointFormat format)
    {
        if (CompressedCheckpoint.IsCompressed(file))
        {
            return CompressedCheckpoint.FromTensorFile(file, path, format);
        }

        var (named, layout) = ZooCheckpoint.InTimmNames(file, path);
        var shapes = ZooCheckpoint.Shapes(named);
        if (ZooCheckpoint.DetectFamily(shapes) is not null)
        {
            return ZooCheckpoint.FromTimmNames(named, layout, shapes, path, format);
        }

        var loaded = FromTensorFile(file, path, format);
        return new LoadedClassifier(loaded.Network, path, format, loaded.Info.Fused, loaded.Info);
    }

    /// <summary>Builds the network a tensor file holds (<paramref name="path"/> and <paramref name="format"/> are reported in <see cref="CheckpointInfo"/> and messages).</summary>
    public static LoadedModel FromTensorFile(TensorFile file, string path, CheckpointFormat format)
    {
        if (CompressedCheckpoint.IsCompressed(file))
        {
            throw new CheckpointException(path, "holds a compressed (low-rank + sparse) MobileOne: it runs on the engine (eval, forward, bench, export) but is not a trainable MobileOne network (fine-tuning compressed layers is not supported yet; docs/ideas.md).");
        }

        var scheme = KeyNames.Detect(file.Tensors.Keys, out string? problem);
        if (problem is not null)
        {
            throw new CheckpointException(path, problem + ".");
        }

        // Canonical (timm) name -> file name, so errors can quote the key as the file spells it.
        var fileKeyOf = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (string key in file.Tensors.Keys)
        {
            string canonical = KeyNames.ToTimm(key, scheme.Layout);
            if (!fileKeyOf.TryAdd(canonical, key))
            {
                throw new CheckpointException(path, $"names the same parameter as '{fileKeyOf[canonical]}'.", key);
            }
        }

        var shapes = fileKeyOf.ToDictionary(kv => kv.Key, kv => file.Tensors[kv.Value].Shape, StringComparer.Ordinal);
        MobileOneConfig config;
        try
        {
            config = ConfigInference.Infer(shapes, scheme.Fused, path);
        }
        catch (ArgumentException e)
        {
            throw new CheckpointException(path, "does not describe a valid MobileOne: " + e.Message);
        }
        catch (CheckpointException e) when (e.Key is not null && AsTheFileSpellsIt(e.Key, fileKeyOf, scheme.Layout) is var fileKey && fileKey != e.Key)
        {
            // Inference works on timm's names; quote the key as the file spells it, or, for a key the file
            // lacks (the stem, the classifier), as a file in its layout would.
            throw new CheckpointException(path, e.Problem, fileKey, e);
        }

        var network = MobileOneNetwork.Create(config, scheme.Fused);
        var used = new HashSet<string>(StringComparer.Ordinal);
        var missing = new List<string>();
        foreach (var entry in network.State())
        {
            if (!fileKeyOf.TryGetValue(entry.Name, out string? fileKey))
            {
                missing.Add(KeyNames.ToLayout(entry.Name, scheme.Layout));
                continue;
            }

            used.Add(entry.Name);
            Assign(entry, file.Tensors[fileKey], path, fileKey, $"{config.Name} model ({config})");
        }

        if (missing.Count > 0)
        {
            throw new CheckpointException(path, $"is missing {missing.Count} tensor(s) the inferred {config.Name} model needs: {ListKeys(missing)}.");
        }

        var unexpected = fileKeyOf.Where(kv => !used.Contains(kv.Key)).Select(kv => kv.Value).ToList();
        if (unexpected.Count > 0)
        {
            throw new CheckpointException(path, $"has {unexpected.Count} tensor(s) that do not belong to the inferred {config.Name} model: {ListKeys(unexpected)}.");
        }

        return new LoadedModel(network, new CheckpointInfo(path, format, scheme, config));
    }

    /// <summary>
    /// The network's state as a checkpoint in the chosen names: float tensors as F32 (or the given dtype), counters as
    /// I64; <paramref name="inputSize"/>, when given, recorded (<see cref="InputSizeRecord"/>).
    /// </summary>
    public static TensorFile ToTensorFile(ClassifierNetwork network, KeyLayout layout, DType floatType = DType.F32, int? inputSize = null)
    {
        ArgumentNullException.ThrowIfNull(network);
        var file = StateFile(network, layout, floatType);
        InputSizeRecord.Write(file, network.InChans, inputSize);
        return file;
    }

    private static TensorFile StateFile(ClassifierNetwork network, KeyLayout layout, DType floatType)
    {
        if (network is Compression.CompressedNetwork compressed)
        {
            return layout == KeyLayout.Timm && floatType == DType.F32
                ? CompressedCheckpoint.ToTensorFile(compressed)
                : throw new ArgumentException("A compressed network is stored in timm's names as F32 (docs/ideas.md).", nameof(layout));
        }

        bool repVgg = network is not MobileOneNetwork && ModelRegistry.Find(network.Architecture)?.Family == "repvgg";
        if (layout == KeyLayout.Apple && network is not MobileOneNetwork)
        {
            throw new ArgumentException($"{network.Architecture}: Apple's names are MobileOne's; this family has timm's{(repVgg ? " and DingXiaoH/RepVGG's (official)" : string.Empty)}.", nameof(layout));
        }

        if (layout == KeyLayout.RepVggOfficial && !repVgg)
        {
            throw new ArgumentException($"{network.Architecture}: DingXiaoH/RepVGG's official names are RepVGG's only.", nameof(layout));
        }

        var file = new TensorFile();
        foreach (var entry in network.State())
        {
            var stored = entry.Kind == StateKind.Counter
                ? StoredTensor.FromInt64((long)entry.Value.Data[0])
                : StoredTensor.FromTensor(entry.Value, floatType);
            file.Tensors.Add(layout == KeyLayout.RepVggOfficial ? RepVggNames.ToOfficial(entry.Name) : KeyNames.ToLayout(entry.Name, layout), stored);
        }

        file.Metadata["format"] = "pt";
        return file;
    }

    /// <summary>
    /// Saves <paramref name="network"/> (train-time or fused) to <paramref name="path"/> in <paramref name="layout"/>'s
    /// names; the format follows the extension (.safetensors, or .pth/.pth.tar/.pt for torch.save) unless
    /// <paramref name="format"/> is given. <paramref name="inputSize"/>, the side of the input it was trained at, goes
    /// into a safetensors file's metadata (<see cref="InputSizeRecord"/>); a torch.save file cannot hold it.
    /// </summary>
    public static void Save(ClassifierNetwork network, string path, KeyLayout layout = KeyLayout.Timm, CheckpointFormat? format = null, int? inputSize = null)
    {
        var chosen = format ?? CheckpointFormats.ForOutputPath(path);
        if (network is Compression.CompressedNetwork && chosen != CheckpointFormat.Safetensors)
        {
            throw new CheckpointException(path, "a compressed network is saved as .safetensors (its metadata marks the file as compressed; torch.save files carry no metadata).");
        }

        CheckpointFile.Write(path, ToTensorFile(network, layout, inputSize: inputSize), chosen);
    }

    /// <summary>
    /// Copies one stored tensor into a state entry: the shape must match, counters must be integers and weights
    /// floating point, finite, and running variances non-negative (<paramref name="model"/> names the model in messages).
    /// </summary>
    internal static void Assign(StateEntry entry, StoredTensor stored, string path, string fileKey, string model)
    {
        if (!stored.Shape.AsSpan().SequenceEqual(entry.Value.Shape))
        {
            throw new CheckpointException(
                path,
                $"has shape {Tensor.FormatShape(stored.Shape)}, but the inferred {model} expects {entry.Value.ShapeString}.",
                fileKey);
        }

        if (entry.Kind == StateKind.Counter)
        {
            if (DTypeInfo.IsFloatingPoint(stored.DType))
            {
                throw new CheckpointException(path, $"is a {stored.DType} tensor; a batch counter must be an integer.", fileKey);
            }

            entry.Value.Data[0] = stored.ToInt64()[0];
            return;
        }

        if (!DTypeInfo.IsFloatingPoint(stored.DType))
        {
            throw new CheckpointException(path, $"is a {stored.DType} tensor; expected floating point (F32, F16, BF16 or F64).", fileKey);
        }

        float[] values = stored.ToTensor().Data;
        CheckValues(values, entry.Name, path, fileKey);
        values.CopyTo(entry.Value.Data, 0);
    }

    private static void CheckValues(float[] values, string name, string path, string fileKey)
    {
        bool variance = name.EndsWith(".running_var", StringComparison.Ordinal);
        for (int i = 0; i < values.Length; i++)
        {
            float v = values[i];
            if (!float.IsFinite(v))
            {
                throw new CheckpointException(path, $"holds {(float.IsNaN(v) ? "NaN" : v > 0 ? "+Inf" : "-Inf")} at element {i}; weights must be finite (the model's output would be NaN).", fileKey);
            }

            if (variance && v < 0)
            {
                throw new CheckpointException(path, $"holds the negative running variance {v.ToString(System.Globalization.CultureInfo.InvariantCulture)} at element {i}; a variance cannot be negative (normalizing by it gives NaN).", fileKey);
            }
        }
    }

    private static string AsTheFileSpellsIt(string timmKey, Dictionary<string, string> fileKeyOf, KeyLayout layout) =>
        fileKeyOf.TryGetValue(timmKey, out string? fileKey) ? fileKey : KeyNames.ToLayout(timmKey, layout);

    private static string ListKeys(List<string> keys) =>
        string.Join(", ", keys.Take(MaxListedKeys).Select(k => $"'{k}'")) + (keys.Count > MaxListedKeys ? $" and {keys.Count - MaxListedKeys} more" : string.Empty);
}
