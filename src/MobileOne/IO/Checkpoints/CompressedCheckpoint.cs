using System.Buffers.Binary;
using MobileOne.Compression;
using MobileOne.Graph;
using MobileOne.Tensors;

namespace MobileOne.IO.Checkpoints;

/// <summary>
/// Safetensors checkpoints of a <see cref="CompressedNetwork"/>: the fused MobileOne's tensors in timm's names, except
/// that each compressed convolution X (e.g. <c>stages.1.1.reparam_conv</c>) has no <c>X.weight</c> / <c>X.bias</c> but
/// <c>X.lowrank.0.weight</c> [r, in, kh, kw] (the KxK convolution to r channels), <c>X.lowrank.1.weight</c>
/// [out, r, 1, 1] and <c>X.lowrank.1.bias</c> [out] (the 1x1 convolution with the layer's bias) and, when S has
/// entries, <c>X.sparse.indices</c> (I64 [nnz], ascending row-major indices into the [out, in kh kw] matrix) and
/// <c>X.sparse.values</c> (F32 [nnz]). The metadata entry <see cref="MetadataKey"/> = <see cref="MetadataValue"/>
/// marks the file, so loaders never mistake it for an incomplete fused checkpoint.
/// </summary>
public static class CompressedCheckpoint
{
    /// <summary>The metadata key that marks a compressed checkpoint.</summary>
    public const string MetadataKey = "mobileone.compression";

    /// <summary>The marker's value for this layout (version 1).</summary>
    public const string MetadataValue = "lowrank-sparse-1";

    /// <summary>
    /// Most float values the dense view of a file's compressed layers may hold, over all of them (2^27, 512 MB):
    /// loading builds each compressed layer's dense weight shape (zeros) to infer and check the architecture, and a
    /// rank-1 pair of factors declares out x in values from out + in stored ones, so without a bound a small file could
    /// ask for gigabytes. MobileOne-S4 fused has 14.8 M parameters in all, 9 times below.
    /// </summary>
    public const long MaxDenseElements = 1L << 27;

    private const string IndicesSuffix = ".indices";
    private const string ValuesSuffix = ".values";

    /// <summary>Whether the file carries the compression marker.</summary>
    public static bool IsCompressed(TensorFile file)
    {
        ArgumentNullException.ThrowIfNull(file);
        return file.Metadata.ContainsKey(MetadataKey);
    }

    /// <summary>The checkpoint of <paramref name="network"/> (see the class summary for the keys).</summary>
    public static TensorFile ToTensorFile(CompressedNetwork network)
    {
        ArgumentNullException.ThrowIfNull(network);
        var file = new TensorFile();
        foreach (var entry in network.State())
        {
            file.Tensors.Add(entry.Name, entry.Kind == Nn.StateKind.Counter ? StoredTensor.FromInt64((long)entry.Value.Data[0]) : StoredTensor.FromTensor(entry.Value));
        }

        foreach (var layer in network.Layers.Where(l => l.SparseIndices.Length > 0))
        {
            var bytes = new byte[layer.SparseIndices.Length * 8L];
            for (int e = 0; e < layer.SparseIndices.Length; e++)
            {
                BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(e * 8), layer.SparseIndices[e]);
            }

            file.Tensors.Add(layer.Name + CompressedConv.SparseSuffix + IndicesSuffix, new StoredTensor(DType.I64, [layer.SparseIndices.Length], bytes));
        }

        file.Metadata["format"] = "pt";
        file.Metadata[MetadataKey] = MetadataValue;
        return file;
    }

    /// <summary>Writes <paramref name="network"/> to a .safetensors file (atomically; with the input size it was trained at, when given); other formats cannot carry the marker.</summary>
    public static void Save(CompressedNetwork network, string path, int? inputSize = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
        {
            throw new CheckpointException(path, "a compressed network is saved as .safetensors (its metadata marks the file as compressed; torch.save files carry no metadata).");
        }

        var file = ToTensorFile(network);
        InputSizeRecord.Write(file, network.InChans, inputSize);
        CheckpointFile.Write(path, file, CheckpointFormat.Safetensors);
    }

    /// <summary>
    /// The compressed network a marked tensor file holds: the fused MobileOne is inferred and loaded as any fused
    /// checkpoint (every other tensor checked by name and shape), then each compressed layer's factors and sparse
    /// part are checked against that layer's geometry. Throws <see cref="CheckpointException"/> naming the key.
    /// </summary>
    public static LoadedClassifier FromTensorFile(TensorFile file, string path, CheckpointFormat format)
    {
        ArgumentNullException.ThrowIfNull(file);
        if (!file.Metadata.TryGetValue(MetadataKey, out string? marker) || marker != MetadataValue)
        {
            throw new CheckpointException(path, $"has compression marker '{marker}'; this version reads '{MetadataValue}'.");
        }

        const string reduceKey = CompressedConv.ReduceSuffix + ".weight";
        var names = file.Tensors.Keys.Where(k => k.EndsWith(reduceKey, StringComparison.Ordinal)).Select(k => k[..^reduceKey.Length]).ToList();

        // The dense view: every tensor that is not a compressed layer's, plus a zero weight of each compressed
        // layer's dense shape and its bias, so the fused architecture is inferred and checked as usual.
        var parts = new HashSet<string>(StringComparer.Ordinal);
        var dense = new TensorFile();
        var shapes = new Dictionary<string, (int[] Reduce, int[] Expand)>(StringComparer.Ordinal);
        long denseElements = 0;
        foreach (string name in names)
        {
            var reduce = Require(file, path, name + reduceKey);
            var expand = Require(file, path, name + CompressedConv.ExpandSuffix + ".weight");
            var bias = Require(file, path, name + CompressedConv.ExpandSuffix + ".bias");
            if (reduce.Shape.Length != 4 || reduce.Shape.Any(d => d < 1))
            {
                throw new CheckpointException(path, $"has shape {Tensor.FormatShape(reduce.Shape)}; the KxK factor is [r, in, kh, kw] with r at least 1.", name + reduceKey);
            }

            if (expand.Shape.Length != 4 || expand.Shape[0] < 1 || expand.Shape[1] != reduce.Shape[0] || expand.Shape[2] != 1 || expand.Shape[3] != 1)
            {
                throw new CheckpointException(path, $"has shape {Tensor.FormatShape(expand.Shape)}; with {name + reduceKey} of shape {Tensor.FormatShape(reduce.Shape)} it must be [out, {reduce.Shape[0]}, 1, 1].", name + CompressedConv.ExpandSuffix + ".weight");
            }

            denseElements += (long)expand.Shape[0] * reduce.Shape[1] * reduce.Shape[2] * reduce.Shape[3];
            if (denseElements > MaxDenseElements)
            {
                throw new CheckpointException(path, $"declares compressed layers whose dense weights would hold more than {MaxDenseElements} values in all (this one is {expand.Shape[0]} x {reduce.Shape[1]} x {reduce.Shape[2]} x {reduce.Shape[3]}); no MobileOne is that large.", name + reduceKey);
            }

            shapes[name] = (reduce.Shape, expand.Shape);
            dense.Tensors.Add(name + ".weight", new StoredTensor(DType.F32, [expand.Shape[0], reduce.Shape[1], reduce.Shape[2], reduce.Shape[3]], new byte[4L * expand.Shape[0] * reduce.Shape[1] * reduce.Shape[2] * reduce.Shape[3]]));
            dense.Tensors.Add(name + ".bias", bias);
            parts.UnionWith([name + reduceKey, name + CompressedConv.ExpandSuffix + ".weight", name + CompressedConv.ExpandSuffix + ".bias",
                name + CompressedConv.SparseSuffix + IndicesSuffix, name + CompressedConv.SparseSuffix + ValuesSuffix]);
        }

        foreach (var (key, tensor) in file.Tensors.Where(kv => !parts.Contains(kv.Key)))
        {
            dense.Tensors.Add(key, tensor);
        }

        LoadedModel loaded;
        try
        {
            loaded = ModelCheckpoint.FromTensorFile(dense, path, format);
        }
        catch (CheckpointException e) when (e.Key is not null && e.Key.EndsWith(".weight", StringComparison.Ordinal) && shapes.ContainsKey(e.Key[..^".weight".Length]))
        {
            // The dense weight is synthesized from the factors: quote the factor the file holds.
            throw new CheckpointException(path, "does not fit the inferred architecture: " + e.Problem, e.Key[..^".weight".Length] + reduceKey, e);
        }
        catch (CheckpointException e) when (e.Key is not null && e.Key.EndsWith(".bias", StringComparison.Ordinal) && shapes.ContainsKey(e.Key[..^".bias".Length]))
        {
            // The dense view holds the file's bias under the dense layer's name: quote it as the file does.
            throw new CheckpointException(path, e.Problem, e.Key[..^".bias".Length] + CompressedConv.ExpandSuffix + ".bias", e);
        }

        if (!loaded.Info.Fused)
        {
            throw new CheckpointException(path, "is marked compressed but holds a train-time MobileOne; compression works on the fused network.");
        }

        var convs = loaded.Network.ToGraph().Nodes.OfType<ConvNode>().ToDictionary(c => c.Name, StringComparer.Ordinal);
        var layers = new List<CompressedConv>();
        foreach (string name in names)
        {
            if (!convs.TryGetValue(name, out var conv) || conv.Groups != 1 || conv.DilationH != 1 || conv.DilationW != 1)
            {
                throw new CheckpointException(path, $"names {name}, which is not a convolution with groups 1 of the inferred {loaded.Info.Variant} model.", name + reduceKey);
            }

            int rank = shapes[name].Reduce[0];
            var (indices, values) = Sparse(file, path, name, conv.OutChannels * (long)conv.InChannels * conv.KernelHeight * conv.KernelWidth);
            layers.Add(new CompressedConv(
                name, conv.InChannels, conv.OutChannels, conv.KernelHeight, conv.KernelWidth, conv.StrideH, conv.StrideW, conv.PadH, conv.PadW, rank,
                Floats(file, path, name + reduceKey), Floats(file, path, name + CompressedConv.ExpandSuffix + ".weight"), conv.Bias!, indices, values));
        }

        return new LoadedClassifier(new CompressedNetwork(loaded.Network, layers), path, format, Fused: false);
    }

    private static StoredTensor Require(TensorFile file, string path, string key) =>
        file.Tensors.TryGetValue(key, out var tensor) ? tensor : throw new CheckpointException(path, "is missing; a compressed layer needs both factors and the bias.", key);

    private static float[] Floats(TensorFile file, string path, string key)
    {
        var stored = file.Tensors[key];
        if (!DTypeInfo.IsFloatingPoint(stored.DType))
        {
            throw new CheckpointException(path, $"is a {stored.DType} tensor; expected floating point.", key);
        }

        var values = stored.ToTensor().Data;
        int bad = Array.FindIndex(values, v => !float.IsFinite(v));
        return bad < 0 ? values : throw new CheckpointException(path, $"holds a non-finite value at element {bad}; weights must be finite.", key);
    }

    private static (int[] Indices, float[] Values) Sparse(TensorFile file, string path, string name, long entries)
    {
        string indicesKey = name + CompressedConv.SparseSuffix + IndicesSuffix, valuesKey = name + CompressedConv.SparseSuffix + ValuesSuffix;
        bool hasIndices = file.Tensors.TryGetValue(indicesKey, out var stored), hasValues = file.Tensors.ContainsKey(valuesKey);
        if (!hasIndices && !hasValues)
        {
            return ([], []);
        }

        if (!hasIndices || !hasValues)
        {
            throw new CheckpointException(path, "is present without its partner; a sparse part needs both indices and values.", hasIndices ? indicesKey : valuesKey);
        }

        if (DTypeInfo.IsFloatingPoint(stored!.DType) || stored.Shape.Length != 1)
        {
            throw new CheckpointException(path, $"must be a 1-d integer tensor; it is {stored.DType} {Tensor.FormatShape(stored.Shape)}.", indicesKey);
        }

        var values = Floats(file, path, valuesKey);
        var raw = stored.ToInt64();
        if (raw.Length != values.Length)
        {
            throw new CheckpointException(path, $"has {raw.Length} indices but {valuesKey} has {values.Length} values.", indicesKey);
        }

        var indices = new int[raw.Length];
        for (int e = 0; e < raw.Length; e++)
        {
            if (raw[e] < 0 || raw[e] >= entries || (e > 0 && raw[e] <= raw[e - 1]))
            {
                throw new CheckpointException(path, $"holds index {raw[e]} at {e}: indices must ascend within [0, {entries}).", indicesKey);
            }

            indices[e] = (int)raw[e];
        }

        return (indices, values);
    }
}
