using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using System.Text.Json;
using MobileOne.Tensors;

namespace MobileOne.IO.Safetensors;

/// <summary>
/// Writes safetensors files byte for byte as the Rust/Python <c>safetensors</c> library does for the same
/// tensor order: an 8-byte little-endian header length N, a compact UTF-8 JSON header (serde_json
/// spelling, <c>__metadata__</c> first, then one {"dtype","shape","data_offsets"} entry per tensor) padded
/// with spaces so that N is a multiple of 8, then the tensors' bytes back to back. (The library itself
/// sorts tensors by dtype alignment, then name; this writer keeps the order of <see cref="TensorFile.Tensors"/>,
/// so a file read by <see cref="SafetensorsReader"/> is written back unchanged.) Every file goes through
/// <see cref="AtomicFile"/>, so a failed write leaves what was at the destination untouched.
/// </summary>
public static class SafetensorsWriter
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>Writes <paramref name="file"/> as one safetensors file.</summary>
    public static void Write(string path, TensorFile file) => Write(path, file, wrap: null);

    /// <summary>
    /// Writes a Hugging Face style sharded checkpoint: <c>prefix-00001-of-0000N.safetensors</c> shards next to
    /// <paramref name="indexPath"/> (which must be named <c>prefix.safetensors.index.json</c>), then the index
    /// {"metadata": {"total_size": bytes}, "weight_map": {tensor: shard}}. Tensors keep their order; a shard is
    /// closed before a tensor that would take it past <paramref name="maxShardBytes"/> of tensor data, and a
    /// tensor larger than that gets a shard of its own. Every shard carries the file's metadata. Each file is
    /// written atomically and the index last; shards left over from an earlier, larger write are not removed.
    /// </summary>
    public static void WriteSharded(string indexPath, TensorFile file, long maxShardBytes)
    {
        ArgumentException.ThrowIfNullOrEmpty(indexPath);
        ArgumentNullException.ThrowIfNull(file);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxShardBytes);
        string indexName = Path.GetFileName(indexPath);
        string suffix = SafetensorsFormat.IndexSuffix;
        if (indexName.Length <= suffix.Length || !indexName.EndsWith(suffix, StringComparison.Ordinal))
        {
            throw new ArgumentException(
                $"A sharded checkpoint's index must be named <prefix>{suffix} (e.g. model{suffix}); got '{indexName}'.", nameof(indexPath));
        }

        if (file.Tensors.Count == 0)
        {
            throw new ArgumentException("There is nothing to shard: the file has no tensors.", nameof(file));
        }

        string prefix = indexName[..^suffix.Length];
        string folder = Path.GetDirectoryName(Path.GetFullPath(indexPath)) ?? ".";

        var groups = new List<List<KeyValuePair<string, StoredTensor>>>();
        var current = new List<KeyValuePair<string, StoredTensor>>();
        long currentBytes = 0, totalBytes = 0;
        foreach (var kv in file.Tensors)
        {
            long size = kv.Value?.Data.Length ?? 0;
            if (current.Count > 0 && currentBytes + size > maxShardBytes)
            {
                groups.Add(current);
                current = [];
                currentBytes = 0;
            }

            current.Add(kv);
            currentBytes += size;
            totalBytes += size;
        }

        groups.Add(current);

        // Build (and so validate) every header before touching any file.
        var shards = new List<(string Path, byte[] Header, List<KeyValuePair<string, StoredTensor>> Tensors)>();
        var weightMap = new SortedDictionary<string, string>(StringComparer.Ordinal);
        for (int i = 0; i < groups.Count; i++)
        {
            string shardName = SafetensorsFormat.ShardFileName(prefix, i + 1, groups.Count);
            string shardPath = Path.Combine(folder, shardName);
            shards.Add((shardPath, BuildHeader(shardPath, groups[i], file.Metadata), groups[i]));
            foreach (var kv in groups[i])
            {
                weightMap.Add(kv.Key, shardName);
            }
        }

        byte[] index = BuildIndex(totalBytes, weightMap);
        foreach (var (shardPath, header, tensors) in shards)
        {
            WriteAtomically(shardPath, stream => WriteBody(stream, header, tensors), wrap: null);
        }

        WriteAtomically(indexPath, stream => stream.Write(index), wrap: null);
    }

    /// <summary>As <see cref="Write(string, TensorFile)"/>; <paramref name="wrap"/> lets tests interpose a failing stream.</summary>
    internal static void Write(string path, TensorFile file, Func<Stream, Stream>? wrap)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(file);
        var tensors = file.Tensors.ToList();
        byte[] header = BuildHeader(path, tensors, file.Metadata);
        WriteAtomically(path, stream => WriteBody(stream, header, tensors), wrap);
    }

    private static void WriteAtomically(string path, Action<Stream> body, Func<Stream, Stream>? wrap)
    {
        try
        {
            AtomicFile.Write(path, stream =>
            {
                Stream target = wrap is null ? stream : wrap(stream);
                body(target);
                target.Flush();
            });
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CheckpointException(path, $"writing failed, so the destination was left as it was: {e.Message}", inner: e);
        }
    }

    private static void WriteBody(Stream stream, byte[] header, List<KeyValuePair<string, StoredTensor>> tensors)
    {
        Span<byte> length = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)header.Length);
        stream.Write(length);
        stream.Write(header);
        foreach (var kv in tensors)
        {
            stream.Write(kv.Value.Data);
        }
    }

    /// <summary>The padded header bytes (without the length prefix); throws if any tensor or name is unusable.</summary>
    private static byte[] BuildHeader(
        string path, List<KeyValuePair<string, StoredTensor>> tensors, OrderedDictionary<string, string> metadata)
    {
        var sb = new StringBuilder(64 + (tensors.Count * 96));
        sb.Append('{');
        bool first = true;
        if (metadata.Count > 0)
        {
            sb.Append('"').Append(SafetensorsFormat.MetadataKey).Append("\":{");
            bool firstEntry = true;
            foreach (var (k, v) in metadata)
            {
                if (v is null || !SafetensorsFormat.IsValidUtf16(k) || !SafetensorsFormat.IsValidUtf16(v))
                {
                    throw new CheckpointException(
                        path, $"metadata entry '{k}' has a null value or text with an unpaired surrogate, which UTF-8 cannot hold.",
                        SafetensorsFormat.MetadataKey);
                }

                if (!firstEntry)
                {
                    sb.Append(',');
                }

                firstEntry = false;
                SafetensorsFormat.AppendJsonString(sb, k);
                sb.Append(':');
                SafetensorsFormat.AppendJsonString(sb, v);
            }

            sb.Append('}');
            first = false;
        }

        long offset = 0;
        foreach (var (name, tensor) in tensors)
        {
            long size = CheckTensor(path, name, tensor);
            if (!first)
            {
                sb.Append(',');
            }

            first = false;
            SafetensorsFormat.AppendJsonString(sb, name);
            sb.Append(":{\"dtype\":\"").Append(DTypeInfo.ToSafetensorsName(tensor.DType)).Append("\",\"shape\":[");
            for (int i = 0; i < tensor.Shape.Length; i++)
            {
                if (i > 0)
                {
                    sb.Append(',');
                }

                sb.Append(tensor.Shape[i].ToString(CultureInfo.InvariantCulture));
            }

            sb.Append("],\"data_offsets\":[")
                .Append(offset.ToString(CultureInfo.InvariantCulture))
                .Append(',')
                .Append((offset + size).ToString(CultureInfo.InvariantCulture))
                .Append("]}");
            offset += size;
        }

        sb.Append('}');

        // Pad with spaces so the data starts 8-byte aligned (8 + N is a multiple of 8), as the library does.
        int length = StrictUtf8.GetByteCount(sb.ToString());
        int padded = (length + 7) & ~7;
        if (padded > SafetensorsFormat.MaxHeaderBytes)
        {
            throw new CheckpointException(
                path, $"the header would be {padded} bytes, over the safetensors limit of {SafetensorsFormat.MaxHeaderBytes}.");
        }

        var header = new byte[padded];
        StrictUtf8.GetBytes(sb.ToString(), header);
        header.AsSpan(length).Fill((byte)' ');
        return header;
    }

    /// <summary>Checks what the header will claim against the tensor's bytes; returns the byte count.</summary>
    private static long CheckTensor(string path, string name, StoredTensor? tensor)
    {
        if (name == SafetensorsFormat.MetadataKey)
        {
            throw new CheckpointException(path, "this name is reserved for the metadata block and cannot name a tensor.", name);
        }

        if (!SafetensorsFormat.IsValidUtf16(name))
        {
            throw new CheckpointException(path, "the tensor name has an unpaired surrogate, which UTF-8 cannot hold.", name);
        }

        if (tensor is null)
        {
            throw new CheckpointException(path, "the tensor is null.", name);
        }

        if (!Enum.IsDefined(tensor.DType))
        {
            throw new CheckpointException(path, $"the tensor has an unknown dtype value {(int)tensor.DType}.", name);
        }

        // StoredTensor checked this when it was built, but its Shape array is mutable; check again so the
        // header never promises bytes the data section does not hold.
        long expected = DTypeInfo.SizeOf(tensor.DType);
        foreach (int dim in tensor.Shape)
        {
            if (dim < 0)
            {
                throw new CheckpointException(path, $"shape {Tensor.FormatShape(tensor.Shape)} has a negative dimension.", name);
            }

            if (dim != 0 && expected > long.MaxValue / dim)
            {
                throw new CheckpointException(path, $"shape {Tensor.FormatShape(tensor.Shape)} has more elements than fit in 64 bits.", name);
            }

            expected *= dim;
        }

        if (expected != tensor.Data.Length)
        {
            throw new CheckpointException(
                path,
                $"shape {Tensor.FormatShape(tensor.Shape)} with dtype {DTypeInfo.ToSafetensorsName(tensor.DType)} needs {expected} bytes, " +
                $"but the tensor holds {tensor.Data.Length} bytes (was its Shape array changed after it was built?).",
                name);
        }

        return expected;
    }

    /// <summary>The index as Hugging Face writes it: json.dumps(index, indent=2, sort_keys=True) + "\n".</summary>
    private static byte[] BuildIndex(long totalBytes, SortedDictionary<string, string> weightMap)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = true, NewLine = "\n" }))
        {
            w.WriteStartObject();
            w.WriteStartObject("metadata");
            w.WriteNumber("total_size", totalBytes);
            w.WriteEndObject();
            w.WriteStartObject("weight_map");
            foreach (var (tensor, shard) in weightMap)
            {
                w.WriteString(tensor, shard);
            }

            w.WriteEndObject();
            w.WriteEndObject();
        }

        ms.WriteByte((byte)'\n');
        return ms.ToArray();
    }
}
