using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using MobileOne.Tensors;

namespace MobileOne.IO.Safetensors;

/// <summary>
/// Reads safetensors checkpoints (https://github.com/huggingface/safetensors): a single
/// <c>.safetensors</c> file or a Hugging Face sharded checkpoint through its <c>*.safetensors.index.json</c>.
/// Reading validates everything the header claims before any tensor bytes are used, with the rules of the
/// reference implementation: the header is a UTF-8 JSON object, every entry has a known dtype, a shape of
/// non-negative integers and data offsets whose length matches the shape, and the entries tile the data
/// section exactly (no overlaps, no holes, no trailing bytes). Every failure is a
/// <see cref="CheckpointException"/> that names the file and, where one is involved, the tensor key.
/// </summary>
public static class SafetensorsReader
{
    private const int ReadBufferSize = 1 << 16;

    /// <summary>
    /// Reads a <c>.safetensors</c> file, or the sharded checkpoint that a <c>.json</c> index describes.
    /// Tensors come back in file order (by data offset); <c>__metadata__</c> goes to <see cref="TensorFile.Metadata"/>.
    /// </summary>
    public static TensorFile Read(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        return path.EndsWith(".json", StringComparison.OrdinalIgnoreCase) ? ReadIndex(path) : ReadFile(path);
    }

    /// <summary>
    /// A cheap sniff of the first bytes of a file (pass up to 16): a plausible header length followed by
    /// the start of a JSON object. It does not prove the file is valid; <see cref="Read"/> checks that.
    /// </summary>
    public static bool LooksLikeSafetensors(ReadOnlySpan<byte> first16Bytes)
    {
        if (first16Bytes.Length < 9)
        {
            return false;
        }

        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(first16Bytes);
        if (headerLength < 2 || headerLength > SafetensorsFormat.MaxHeaderBytes)
        {
            return false;
        }

        ReadOnlySpan<byte> header = first16Bytes[8..Math.Min(first16Bytes.Length, 16)];
        int i = 0;
        while (i < header.Length && SafetensorsFormat.IsJsonWhitespace(header[i]))
        {
            i++;
        }

        if (i == header.Length || header[i] != (byte)'{')
        {
            return false;
        }

        for (i++; i < header.Length; i++)
        {
            if (!SafetensorsFormat.IsJsonWhitespace(header[i]))
            {
                return header[i] is (byte)'"' or (byte)'}';
            }
        }

        return true;
    }

    private static TensorFile ReadFile(string path)
    {
        using FileStream stream = OpenForRead(path);
        long length = stream.Length;
        if (length == 0)
        {
            throw new CheckpointException(path, "the file is empty (0 bytes); a safetensors file starts with an 8-byte header length.");
        }

        if (length < 8)
        {
            throw new CheckpointException(
                path, $"the file is truncated: it has {length} bytes, fewer than the 8-byte header length a safetensors file starts with.");
        }

        Span<byte> prefix = stackalloc byte[8];
        ReadExactly(stream, path, prefix);
        ulong declared = BinaryPrimitives.ReadUInt64LittleEndian(prefix);
        long rest = length - 8;
        if (declared > (ulong)rest)
        {
            throw new CheckpointException(
                path,
                $"the header length field says {declared} bytes, but only {rest} bytes follow it; " +
                "the file is truncated or is not a safetensors file.");
        }

        if (declared > SafetensorsFormat.MaxHeaderBytes)
        {
            throw new CheckpointException(
                path, $"the header length {declared} bytes exceeds the safetensors limit of {SafetensorsFormat.MaxHeaderBytes} bytes.");
        }

        if (declared < 2)
        {
            throw new CheckpointException(path, $"the header length is {declared} bytes, too short for a JSON object.");
        }

        var header = new byte[(int)declared];
        ReadExactly(stream, path, header);
        long dataLength = rest - (long)declared;

        var metadata = new OrderedDictionary<string, string>(StringComparer.Ordinal);
        List<Entry> entries = ParseHeader(path, header, dataLength, metadata);

        var file = new TensorFile();
        foreach (var (k, v) in metadata)
        {
            file.Metadata.Add(k, v);
        }

        // Entries are sorted and tile the data section, so the stream is read front to back once,
        // straight into each tensor's own array.
        foreach (Entry e in entries)
        {
            byte[] data = GC.AllocateUninitializedArray<byte>((int)(e.End - e.Begin));
            ReadExactly(stream, path, data, e.Name);
            file.Tensors.Add(e.Name, new StoredTensor(e.DType, e.Shape, data));
        }

        return file;
    }

    private static FileStream OpenForRead(string path)
    {
        if (Directory.Exists(path))
        {
            throw new CheckpointException(path, "is a directory, not a safetensors file.");
        }

        if (!File.Exists(path))
        {
            throw new CheckpointException(path, "the file does not exist.");
        }

        try
        {
            return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, ReadBufferSize, FileOptions.SequentialScan);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new CheckpointException(path, "the file does not exist.", inner: e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CheckpointException(path, $"the file cannot be opened: {e.Message}", inner: e);
        }
    }

    private static void ReadExactly(Stream stream, string path, Span<byte> buffer, string? key = null)
    {
        try
        {
            stream.ReadExactly(buffer);
        }
        catch (EndOfStreamException e)
        {
            throw new CheckpointException(path, "the file ended early; was it changed while being read?", key, e);
        }
        catch (IOException e)
        {
            throw new CheckpointException(path, $"reading failed: {e.Message}", key, e);
        }
    }

    private sealed record Entry(string Name, DType DType, int[] Shape, long Begin, long End, int Index);

    /// <summary>Validates a header and returns its tensor entries sorted by data offset.</summary>
    private static List<Entry> ParseHeader(string path, byte[] header, long dataLength, OrderedDictionary<string, string> metadata)
    {
        if (!System.Text.Unicode.Utf8.IsValid(header))
        {
            throw new CheckpointException(
                path, $"the header is not valid UTF-8 (first bad byte at header offset {FirstInvalidUtf8(header)}).");
        }

        CheckJsonSize(path, header, isIndex: false);

        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(header);
        }
        catch (JsonException e)
        {
            throw new CheckpointException(path, $"the header is not valid JSON: {e.Message}", inner: e);
        }

        var entries = new List<Entry>();
        using (doc)
        {
            JsonElement root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw new CheckpointException(
                    path,
                    $"the header is {SafetensorsFormat.Describe(root.ValueKind)}, expected a JSON object mapping tensor names to " +
                    "{\"dtype\", \"shape\", \"data_offsets\"} entries.");
            }

            var seen = new HashSet<string>(StringComparer.Ordinal);
            try
            {
                foreach (JsonProperty p in root.EnumerateObject())
                {
                    string name = p.Name;
                    if (!seen.Add(name))
                    {
                        throw new CheckpointException(path, "the header lists this key twice.", name);
                    }

                    if (name == SafetensorsFormat.MetadataKey)
                    {
                        ParseMetadata(path, p.Value, metadata);
                    }
                    else
                    {
                        entries.Add(ParseEntry(path, name, p.Value, dataLength, entries.Count));
                    }
                }
            }
            catch (InvalidOperationException e)
            {
                // System.Text.Json refuses strings whose escapes decode to invalid UTF-16 (a lone \ud800).
                throw new CheckpointException(path, $"the header holds a string that is not valid text: {e.Message}", inner: e);
            }
        }

        entries.Sort(static (a, b) =>
        {
            int c = a.Begin.CompareTo(b.Begin);
            if (c == 0)
            {
                c = a.End.CompareTo(b.End);
            }

            return c != 0 ? c : a.Index.CompareTo(b.Index);
        });

        long position = 0;
        Entry? previous = null;
        foreach (Entry e in entries)
        {
            if (e.Begin < position)
            {
                throw new CheckpointException(
                    path,
                    $"data_offsets [{e.Begin}, {e.End}] overlap those of '{previous!.Name}' [{previous.Begin}, {previous.End}].",
                    e.Name);
            }

            if (e.Begin > position)
            {
                throw new CheckpointException(
                    path,
                    $"data_offsets [{e.Begin}, {e.End}] leave bytes [{position}, {e.Begin}) of the data section unused; " +
                    "a safetensors data section must not have holes.",
                    e.Name);
            }

            position = e.End;
            previous = e;
        }

        if (position != dataLength)
        {
            throw new CheckpointException(
                path,
                $"the data section holds {dataLength} bytes but the tensors cover only the first {position}; " +
                $"{dataLength - position} bytes at the end belong to no tensor.");
        }

        return entries;
    }

    /// <summary>
    /// Counts the JSON values of a header (and its entries) or of a sharded checkpoint's index without allocating,
    /// before either is parsed into a document (12 bytes a value and more; a header's entries and tensors several
    /// hundred bytes each): the 100 MB either may have can hold 50 million values or over a million entries, while a
    /// header of <see cref="SafetensorsFormat.MaxTensors"/> entries, or an index's <c>weight_map</c> of that many
    /// tensors, needs a few values each.
    /// </summary>
    private static void CheckJsonSize(string path, ReadOnlySpan<byte> json, bool isIndex)
    {
        var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = 64 });
        long entries = 0, tokens = 0;
        try
        {
            while (reader.Read())
            {
                if (++tokens > SafetensorsFormat.MaxHeaderTokens)
                {
                    throw new CheckpointException(
                        path,
                        isIndex
                            ? $"the index holds more than {SafetensorsFormat.MaxHeaderTokens} JSON values; a weight_map of {SafetensorsFormat.MaxTensors} " +
                              "tensors needs far fewer, so it is refused before being parsed."
                            : $"the header holds more than {SafetensorsFormat.MaxHeaderTokens} JSON values; a header of {SafetensorsFormat.MaxTensors} " +
                              "entries needs far fewer, so it is refused before being parsed.");
                }

                if (!isIndex && reader.TokenType == JsonTokenType.PropertyName && reader.CurrentDepth == 1 && ++entries > SafetensorsFormat.MaxTensors)
                {
                    throw new CheckpointException(
                        path,
                        $"the header lists more than {SafetensorsFormat.MaxTensors} tensors, the most this reader accepts " +
                        "(checkpoints hold a few thousand); refused before being parsed.",
                        reader.GetString());
                }
            }
        }
        catch (JsonException)
        {
            // Malformed JSON is reported, with its position, by the full parse that follows.
        }
    }

    private static void ParseMetadata(string path, JsonElement value, OrderedDictionary<string, string> metadata)
    {
        string key = SafetensorsFormat.MetadataKey;
        if (value.ValueKind == JsonValueKind.Null)
        {
            return;
        }

        if (value.ValueKind != JsonValueKind.Object)
        {
            throw new CheckpointException(
                path, $"the metadata block is {SafetensorsFormat.Describe(value.ValueKind)}, expected an object of strings.", key);
        }

        foreach (JsonProperty p in value.EnumerateObject())
        {
            if (p.Value.ValueKind != JsonValueKind.String)
            {
                throw new CheckpointException(
                    path,
                    $"metadata entry '{p.Name}' is {SafetensorsFormat.Describe(p.Value.ValueKind)}; metadata values must be strings.",
                    key);
            }

            if (!metadata.TryAdd(p.Name, p.Value.GetString()!))
            {
                throw new CheckpointException(path, $"metadata entry '{p.Name}' appears twice.", key);
            }
        }
    }

    private static Entry ParseEntry(string path, string name, JsonElement value, long dataLength, int index)
    {
        if (value.ValueKind != JsonValueKind.Object)
        {
            throw new CheckpointException(
                path,
                $"the entry is {SafetensorsFormat.Describe(value.ValueKind)} ({SafetensorsFormat.Clip(value.GetRawText())}), " +
                "expected an object with dtype, shape and data_offsets.",
                name);
        }

        // A header can hold hundreds of thousands of entries, so the common path allocates nothing per
        // entry beyond the entry itself: names are compared in place, and JSON text is quoted only on failure.
        JsonElement? dtypeEl = null, shapeEl = null, offsetsEl = null;
        foreach (JsonProperty p in value.EnumerateObject())
        {
            // Unknown fields are ignored, as the reference implementation's serde derive does.
            if (p.NameEquals("dtype"u8))
            {
                dtypeEl = Once(dtypeEl, p);
            }
            else if (p.NameEquals("shape"u8))
            {
                shapeEl = Once(shapeEl, p);
            }
            else if (p.NameEquals("data_offsets"u8))
            {
                offsetsEl = Once(offsetsEl, p);
            }
        }

        if (dtypeEl is null || shapeEl is null || offsetsEl is null)
        {
            string[] missing = new[] { ("dtype", dtypeEl), ("shape", shapeEl), ("data_offsets", offsetsEl) }
                .Where(f => f.Item2 is null).Select(f => f.Item1).ToArray();
            throw new CheckpointException(
                path,
                $"the entry lacks {string.Join(" and ", missing)}; every tensor entry needs dtype, shape and data_offsets.",
                name);
        }

        // dtype
        JsonElement d = dtypeEl!.Value;
        if (d.ValueKind != JsonValueKind.String)
        {
            throw new CheckpointException(
                path, $"dtype is {SafetensorsFormat.Describe(d.ValueKind)} ({SafetensorsFormat.Clip(d.GetRawText())}), expected a string such as \"F32\".", name);
        }

        string dtypeName = d.GetString()!;
        if (!DTypeInfo.TryParseSafetensorsName(dtypeName, out DType dtype))
        {
            throw new CheckpointException(
                path, $"unknown dtype '{dtypeName}'; supported dtypes are {SafetensorsFormat.SupportedDTypes}.", name);
        }

        // shape
        JsonElement s = shapeEl!.Value;
        if (s.ValueKind != JsonValueKind.Array)
        {
            throw new CheckpointException(
                path, $"shape is {SafetensorsFormat.Describe(s.ValueKind)} ({SafetensorsFormat.Clip(s.GetRawText())}), expected an array of dimensions.", name);
        }

        var shape = new int[s.GetArrayLength()];
        int axis = 0;
        foreach (JsonElement dim in s.EnumerateArray())
        {
            string? problem = ReadNonNegativeInteger(dim, out long v);
            if (problem is null && v > int.MaxValue)
            {
                problem = $"is larger than {int.MaxValue}, the largest dimension this reader supports";
            }

            if (problem is not null)
            {
                throw new CheckpointException(path, $"shape {SafetensorsFormat.Clip(s.GetRawText())}: dimension {axis} {problem}.", name);
            }

            shape[axis++] = (int)v;
        }

        // data_offsets
        JsonElement o = offsetsEl!.Value;
        string OffsetsText() => SafetensorsFormat.Clip(o.GetRawText());
        if (o.ValueKind != JsonValueKind.Array || o.GetArrayLength() != 2)
        {
            throw new CheckpointException(path, $"data_offsets is {OffsetsText()}, expected [begin, end].", name);
        }

        string? badBegin = ReadNonNegativeInteger(o[0], out long begin);
        string? badEnd = ReadNonNegativeInteger(o[1], out long end);
        string? bad = badBegin ?? badEnd;
        if (bad is not null)
        {
            throw new CheckpointException(path, $"data_offsets {OffsetsText()}: an offset {bad}.", name);
        }

        if (begin > end)
        {
            throw new CheckpointException(
                path, $"data_offsets [{begin}, {end}] are reversed: begin {begin} is after end {end}.", name);
        }

        if (end > dataLength)
        {
            throw new CheckpointException(
                path,
                $"data_offsets [{begin}, {end}] run past the end of the data section, which holds {dataLength} bytes " +
                "(is the file truncated?).",
                name);
        }

        long actual = end - begin;
        int size = DTypeInfo.SizeOf(dtype);
        long expected = size;
        foreach (int dim in shape)
        {
            // Both factors are non-negative; stop before overflowing 64 bits.
            if (dim != 0 && expected > long.MaxValue / dim)
            {
                throw new CheckpointException(path, $"shape {Tensor.FormatShape(shape)} has more elements than fit in 64 bits.", name);
            }

            expected *= dim;
        }

        if (expected != actual)
        {
            throw new CheckpointException(
                path,
                $"shape {Tensor.FormatShape(shape)} with dtype {dtypeName} needs {expected} bytes " +
                $"({size} per element), but data_offsets [{begin}, {end}] span {actual} bytes.",
                name);
        }

        if (actual > Array.MaxLength)
        {
            throw new CheckpointException(
                path, $"the tensor holds {actual} bytes, more than the {Array.MaxLength} bytes one tensor can have in this reader.", name);
        }

        return new Entry(name, dtype, shape, begin, end, index);

        JsonElement Once(JsonElement? existing, JsonProperty p) =>
            existing is null ? p.Value : throw new CheckpointException(path, $"the entry lists {p.Name} twice.", name);
    }

    /// <summary>Returns null and the value for a JSON integer &gt;= 0, else what is wrong with it.</summary>
    private static string? ReadNonNegativeInteger(JsonElement e, out long value)
    {
        value = 0;
        if (e.ValueKind != JsonValueKind.Number)
        {
            return $"is {SafetensorsFormat.Describe(e.ValueKind)} ({SafetensorsFormat.Clip(e.GetRawText())}), not an integer";
        }

        // TryGetInt64 refuses fractions and exponents ("1.0", "1e3"), so a plain non-negative integer needs no text.
        if (e.TryGetInt64(out value) && value >= 0)
        {
            return null;
        }

        string raw = e.GetRawText();
        if (raw.AsSpan().IndexOfAny('.', 'e', 'E') >= 0)
        {
            return $"is {raw}, not an integer";
        }

        if (!e.TryGetInt64(out value))
        {
            return $"is {raw}, too large";
        }

        return value < 0 ? $"is {raw}, negative" : null;
    }

    private static int FirstInvalidUtf8(ReadOnlySpan<byte> bytes)
    {
        int i = 0;
        while (i < bytes.Length)
        {
            if (Rune.DecodeFromUtf8(bytes[i..], out _, out int consumed) != System.Buffers.OperationStatus.Done)
            {
                return i;
            }

            i += consumed;
        }

        return i;
    }

    // ---- sharded checkpoints ------------------------------------------------------------------

    private static TensorFile ReadIndex(string indexPath)
    {
        if (Directory.Exists(indexPath))
        {
            throw new CheckpointException(indexPath, "is a directory, not a safetensors index file.");
        }

        if (!File.Exists(indexPath))
        {
            throw new CheckpointException(indexPath, "the index file does not exist.");
        }

        byte[] bytes;
        try
        {
            long length = new FileInfo(indexPath).Length;
            if (length > SafetensorsFormat.MaxHeaderBytes)
            {
                throw new CheckpointException(indexPath, $"the index file has {length} bytes, more than the {SafetensorsFormat.MaxHeaderBytes} a safetensors header may have.");
            }

            bytes = File.ReadAllBytes(indexPath);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CheckpointException(indexPath, $"the index file cannot be read: {e.Message}", inner: e);
        }

        ReadOnlyMemory<byte> json = bytes;
        if (json.Span.StartsWith((ReadOnlySpan<byte>)[0xEF, 0xBB, 0xBF]))
        {
            json = json[3..];
        }

        CheckJsonSize(indexPath, json.Span, isIndex: true);
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json);
        }
        catch (JsonException e)
        {
            throw new CheckpointException(indexPath, $"the index is not valid JSON: {e.Message}", inner: e);
        }

        var weightMap = new OrderedDictionary<string, string>(StringComparer.Ordinal);
        var indexMetadata = new OrderedDictionary<string, string>(StringComparer.Ordinal);
        using (doc)
        {
            JsonElement root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw new CheckpointException(
                    indexPath, $"the index is {SafetensorsFormat.Describe(root.ValueKind)}, expected a JSON object with a \"weight_map\".");
            }

            if (!root.TryGetProperty("weight_map", out JsonElement map))
            {
                throw new CheckpointException(
                    indexPath, "the index has no \"weight_map\" (the object mapping each tensor name to its shard file).");
            }

            if (map.ValueKind != JsonValueKind.Object)
            {
                throw new CheckpointException(
                    indexPath, $"\"weight_map\" is {SafetensorsFormat.Describe(map.ValueKind)}, expected an object mapping tensor names to shard files.");
            }

            try
            {
                foreach (JsonProperty p in map.EnumerateObject())
                {
                    if (p.Value.ValueKind != JsonValueKind.String || string.IsNullOrEmpty(p.Value.GetString()))
                    {
                        throw new CheckpointException(
                            indexPath,
                            $"weight_map gives {SafetensorsFormat.Clip(p.Value.GetRawText())} as the shard; expected a file name.",
                            p.Name);
                    }

                    if (!weightMap.TryAdd(p.Name, p.Value.GetString()!))
                    {
                        throw new CheckpointException(indexPath, "weight_map lists this tensor twice.", p.Name);
                    }

                    // Every tensor read must be listed here, so this also bounds what all shards together may hold.
                    if (weightMap.Count > SafetensorsFormat.MaxTensors)
                    {
                        throw new CheckpointException(indexPath, $"weight_map lists more than {SafetensorsFormat.MaxTensors} tensors, the most this reader accepts.", p.Name);
                    }
                }

                // Hugging Face puts {"total_size": <bytes>} here; string entries are kept as metadata, others ignored.
                if (root.TryGetProperty("metadata", out JsonElement meta) && meta.ValueKind != JsonValueKind.Null)
                {
                    if (meta.ValueKind != JsonValueKind.Object)
                    {
                        throw new CheckpointException(
                            indexPath, $"\"metadata\" is {SafetensorsFormat.Describe(meta.ValueKind)}, expected an object.");
                    }

                    foreach (JsonProperty p in meta.EnumerateObject())
                    {
                        if (p.Value.ValueKind == JsonValueKind.String)
                        {
                            indexMetadata[p.Name] = p.Value.GetString()!;
                        }
                    }
                }
            }
            catch (InvalidOperationException e)
            {
                throw new CheckpointException(indexPath, $"the index holds a string that is not valid text: {e.Message}", inner: e);
            }
        }

        string folder = Path.GetDirectoryName(Path.GetFullPath(indexPath)) ?? ".";

        // Shards in name order (model-00001-of-00003 first), each with the tensors the index gives it.
        var shards = new SortedDictionary<string, List<string>>(StringComparer.Ordinal);
        foreach (var (tensor, shard) in weightMap)
        {
            if (!shards.TryGetValue(shard, out List<string>? names))
            {
                shards.Add(shard, names = []);
            }

            names.Add(tensor);
        }

        // Check every shard exists before reading any: a missing shard should not cost a long read first.
        var shardPaths = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (shard, names) in shards)
        {
            string full = ResolveShard(indexPath, folder, shard, names[0]);
            if (!File.Exists(full))
            {
                throw new CheckpointException(
                    indexPath,
                    $"weight_map assigns {names.Count} tensor(s) to shard '{shard}', but {full} " +
                    (Directory.Exists(full) ? "is a directory." : "does not exist."),
                    names[0]);
            }

            shardPaths.Add(shard, full);
        }

        var result = new TensorFile();
        var metadataSource = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (shard, names) in shards)
        {
            string shardPath = shardPaths[shard];
            TensorFile part = ReadFile(shardPath);
            foreach (var (name, tensor) in part.Tensors)
            {
                if (!weightMap.TryGetValue(name, out string? assigned))
                {
                    throw new CheckpointException(
                        shardPath, $"the shard holds this tensor, but the index {indexPath} does not list it.", name);
                }

                if (!result.Tensors.TryAdd(name, tensor))
                {
                    throw new CheckpointException(
                        shardPath, $"the tensor appears in two shards, '{assigned}' and '{shard}'.", name);
                }

                if (assigned != shard)
                {
                    throw new CheckpointException(
                        shardPath,
                        $"the tensor appears in shard '{shard}', but the index {indexPath} assigns it to shard '{assigned}'; " +
                        "a tensor must be in exactly one shard.",
                        name);
                }
            }

            foreach (string name in names)
            {
                if (!part.Tensors.ContainsKey(name))
                {
                    throw new CheckpointException(
                        indexPath, $"the index assigns this tensor to shard '{shard}', but {shardPath} does not hold it.", name);
                }
            }

            foreach (var (k, v) in part.Metadata)
            {
                MergeMetadata(result, metadataSource, k, v, shardPath);
            }
        }

        foreach (var (k, v) in indexMetadata)
        {
            MergeMetadata(result, metadataSource, k, v, indexPath);
        }

        return result;
    }

    private static void MergeMetadata(TensorFile result, Dictionary<string, string> source, string key, string value, string from)
    {
        if (result.Metadata.TryGetValue(key, out string? existing))
        {
            if (existing != value)
            {
                throw new CheckpointException(
                    from,
                    $"metadata '{key}' is '{SafetensorsFormat.Clip(value)}' here but '{SafetensorsFormat.Clip(existing)}' in {source[key]}.",
                    SafetensorsFormat.MetadataKey);
            }

            return;
        }

        result.Metadata.Add(key, value);
        source.Add(key, from);
    }

    private static string ResolveShard(string indexPath, string folder, string shard, string firstTensor)
    {
        // JSON can spell a NUL ("\u0000"); no file name holds one, and the path functions throw on it.
        if (shard.Contains('\0', StringComparison.Ordinal))
        {
            throw new CheckpointException(
                indexPath,
                $"weight_map names shard '{shard.Replace("\0", "\\0", StringComparison.Ordinal)}', which holds a NUL character; no file name can.",
                firstTensor);
        }

        string full = Path.GetFullPath(Path.Combine(folder, shard));
        string root = Path.TrimEndingDirectorySeparator(folder) + Path.DirectorySeparatorChar;
        if (Path.IsPathRooted(shard) || !full.StartsWith(root, StringComparison.Ordinal))
        {
            throw new CheckpointException(
                indexPath,
                $"weight_map names shard '{shard}', which is not a file inside the index's folder {folder}.",
                firstTensor);
        }

        // A shard may be a symbolic link, or sit in a linked folder: what is read is the final target, and it
        // must be inside the index's folder too, or an index could read any file on the machine. One layout
        // links outside on purpose: the Hugging Face cache, whose <repo>/snapshots/<revision>/<file> links to
        // <repo>/blobs/<hash>; targets in that blobs folder are accepted when the index sits in a snapshot.
        string real, realFolder;
        try
        {
            real = RealPath(full);
            realFolder = RealPath(folder);
        }
        catch (IOException e)
        {
            throw new CheckpointException(indexPath, $"weight_map names shard '{shard}', whose links cannot be resolved: {e.Message}", firstTensor, e);
        }

        if (!IsInside(real, realFolder) && !IsInHuggingFaceBlobs(real, realFolder))
        {
            throw new CheckpointException(
                indexPath,
                $"weight_map names shard '{shard}', a link to {real}, which is outside the index's folder {realFolder}; refused.",
                firstTensor);
        }

        return full;
    }

    private static bool IsInside(string path, string folder) =>
        path.StartsWith(Path.TrimEndingDirectorySeparator(folder) + Path.DirectorySeparatorChar, StringComparison.Ordinal);

    private static bool IsInHuggingFaceBlobs(string path, string folder)
    {
        string? snapshots = Path.GetDirectoryName(Path.TrimEndingDirectorySeparator(folder));
        if (snapshots is null || Path.GetFileName(snapshots) != "snapshots")
        {
            return false;
        }

        string? repo = Path.GetDirectoryName(snapshots);
        return repo is not null && IsInside(path, Path.Combine(repo, "blobs"));
    }

    /// <summary>The absolute path with every symbolic link resolved, component by component (as realpath(3) does).</summary>
    internal static string RealPath(string path)
    {
        int hops = 0;
        return Resolve(Path.GetFullPath(path), ref hops);
    }

    private static string Resolve(string full, ref int hops)
    {
        const int MaxLinkHops = 40; // Linux's own limit before ELOOP.
        string root = Path.GetPathRoot(full) ?? string.Empty;
        string current = root;
        foreach (string part in full[root.Length..].Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries))
        {
            string next = Path.Join(current, part);
            string? target = new FileInfo(next).LinkTarget;
            if (target is null)
            {
                current = next;
                continue;
            }

            if (++hops > MaxLinkHops)
            {
                throw new IOException($"more than {MaxLinkHops} symbolic links in {full}");
            }

            // A relative target is relative to the folder holding the link.
            current = Resolve(Path.GetFullPath(target, current), ref hops);
        }

        return current;
    }
}
