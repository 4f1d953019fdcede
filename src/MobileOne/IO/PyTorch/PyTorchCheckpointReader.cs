using System.IO.Compression;
using System.Text;

namespace MobileOne.IO.PyTorch;

/// <summary>
/// Reads the state dict out of a PyTorch checkpoint written by <c>torch.save</c> (the zip format of
/// PyTorch 1.6 and later), without running any of the pickle: only tensors and plain containers are
/// accepted, and any other Python global is refused before anything is built.
/// </summary>
/// <remarks>
/// The top-level object may be a state dict (a dict or OrderedDict of name to tensor) or a training
/// checkpoint dict holding one under <c>state_dict</c>, <c>model</c> or <c>state_dict_ema</c> (first
/// match in that order); other entries (epoch, optimizer, ...) are ignored, as are non-tensor values
/// inside the state dict. A <c>module.</c> prefix (DataParallel) is stripped when every key has it.
/// Tensors come back contiguous, row-major and little-endian, with the storage's dtype.
/// </remarks>
internal static class PyTorchCheckpointReader
{
    /// <summary>Checkpoint entries that hold the state dict, in order of preference.</summary>
    public static IReadOnlyList<string> StateDictKeys { get; } = ["state_dict", "model", "state_dict_ema"];

    private const string LegacyProblem =
        "is a legacy (pre-1.6, non-zip) PyTorch checkpoint; re-save it with " +
        "torch.save(..., _use_new_zipfile_serialization=True) or convert it with a recent PyTorch.";

    // A legacy file starts by pickling the magic number 0x1950a86a20f9469cfc6c: LONG1, 10 bytes, little-endian.
    // With protocol 2 it directly follows PROTO; higher protocols put a FRAME opcode in between.
    private static readonly byte[] LegacyMagic = [0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

    /// <summary>
    /// The largest data.pkl accepted. A state dict's pickle is about 100 bytes per tensor (a few hundred KB
    /// for the largest models); training checkpoints with optimizer state stay within a few MB.
    /// </summary>
    public const long MaxPickleBytes = 256L << 20;

    /// <summary>
    /// The most a deflated record may expand (declared size over stored size). torch.save stores records
    /// uncompressed (ratio 1); a re-zipped checkpoint of float weights deflates to about 1.1; deflate itself
    /// can reach 1032, which is how a small file would declare gigabytes. Checked before inflating.
    /// </summary>
    public const long MaxCompressionRatio = 100;

    /// <summary>Records up to this size are exempt from the ratio (a small zero tensor may deflate very well).</summary>
    public const long CompressionRatioExemptBytes = 64 << 10;

    /// <summary>
    /// How many times its storage a view may copy out. PyTorch shares a storage between views; this reader
    /// copies every tensor out contiguously, so a stride-0 (expanded) view of one element declaring a huge
    /// shape would allocate far more than the file holds. Views may read at most this many elements per
    /// element of their storage, and all tensors together at most this many bytes per byte of the storages
    /// they read (tied weights, a few slices).
    /// </summary>
    public const long MaxViewAmplification = 4;

    public static TensorFile Read(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (Directory.Exists(path))
        {
            throw new CheckpointException(path, "is a directory, not a PyTorch checkpoint file.");
        }

        if (!File.Exists(path))
        {
            throw new CheckpointException(path, "does not exist.");
        }

        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.RandomAccess);
            return ReadStream(path, stream);
        }
        catch (IOException ex)
        {
            throw new CheckpointException(path, $"could not be read: {ex.Message}", inner: ex);
        }
        catch (InvalidDataException ex)
        {
            throw new CheckpointException(path, $"is a corrupt zip archive: {ex.Message}", inner: ex);
        }
        catch (UnauthorizedAccessException ex)
        {
            throw new CheckpointException(path, $"could not be opened: {ex.Message}", inner: ex);
        }
    }

    private static TensorFile ReadStream(string path, FileStream stream)
    {
        CheckSignature(path, stream);

        ZipArchive archive;
        try
        {
            archive = new ZipArchive(stream, ZipArchiveMode.Read, leaveOpen: true);
        }
        catch (InvalidDataException ex)
        {
            throw new CheckpointException(path, $"is not a readable zip archive (it may be truncated or corrupt): {ex.Message}", inner: ex);
        }

        using (archive)
        {
            var reader = new ArchiveReader(path, archive);
            return reader.Read();
        }
    }

    private static void CheckSignature(string path, FileStream stream)
    {
        if (stream.Length == 0)
        {
            throw new CheckpointException(path, "is empty (0 bytes); expected a PyTorch checkpoint.");
        }

        var head = new byte[(int)Math.Min(stream.Length, 512)];
        stream.ReadExactly(head);
        stream.Position = 0;

        // A zip starts with a local file header, or with the end record when it holds no entries.
        if (head.AsSpan().StartsWith("PK\x03\x04"u8) || head.AsSpan().StartsWith("PK\x05\x06"u8))
        {
            return;
        }

        bool legacyPickle = head[0] == 0x80 && head.AsSpan(0, Math.Min(head.Length, 32)).IndexOf(LegacyMagic) is >= 2 and <= 12;
        bool tar = head.Length >= 262 && head.AsSpan(257, 5).SequenceEqual("ustar"u8);
        if (legacyPickle || tar)
        {
            throw new CheckpointException(path, LegacyProblem);
        }

        if (head.Length >= 2 && head[0] == 0x80 && head[1] <= 5)
        {
            throw new CheckpointException(path,
                "is a bare pickle stream, not a PyTorch zip checkpoint; re-save the object with torch.save (PyTorch 1.6 or later).");
        }

        string start = Convert.ToHexString(head, 0, Math.Min(head.Length, 8));
        throw new CheckpointException(path, $"is not a PyTorch checkpoint: it is not a zip archive (it starts with bytes {start}).");
    }

    private sealed class ArchiveReader(string path, ZipArchive archive)
    {
        private readonly Dictionary<string, byte[]> storages = new(StringComparer.Ordinal);
        private readonly HashSet<string> countedStorages = new(StringComparer.Ordinal);
        private long storageBytes;
        private long outputBytes;
        private string prefix = "";
        private bool bigEndian;

        public TensorFile Read()
        {
            ZipArchiveEntry pickleEntry = FindPickle();
            this.prefix = pickleEntry.FullName[..^"data.pkl".Length];
            if (archive.GetEntry(this.prefix + "constants.pkl") is not null ||
                archive.Entries.Any(e => e.FullName.StartsWith(this.prefix + "code/", StringComparison.Ordinal)))
            {
                throw new CheckpointException(path,
                    "is a TorchScript archive (torch.jit.save), not a torch.save checkpoint; in Python, load it with " +
                    "torch.jit.load and save its state_dict() with torch.save.");
            }

            bigEndian = ReadByteOrder();

            byte[] pickle = ReadEntry(pickleEntry, MaxPickleBytes, "data.pkl");
            object? root;
            try
            {
                root = RestrictedUnpickler.Load(pickle);
            }
            catch (UnpicklingException ex)
            {
                throw new CheckpointException(path, ex.Message, inner: ex);
            }

            var tensors = new List<KeyValuePair<string, TensorRef>>();
            foreach (var (key, value) in SelectStateDict(root).Items)
            {
                if (key is not string name)
                {
                    throw new CheckpointException(path, $"has a state dict key that is a {PickleDescribe.TypeName(key)} ({key}), not a string.");
                }

                if (value is TensorRef tensor)
                {
                    tensors.Add(new(name, tensor));
                }
            }

            const string DataParallelPrefix = "module.";
            bool strip = tensors.Count > 0 && tensors.TrueForAll(t => t.Key.StartsWith(DataParallelPrefix, StringComparison.Ordinal));
            var file = new TensorFile();
            foreach (var (name, tensor) in tensors)
            {
                string key = strip ? name[DataParallelPrefix.Length..] : name;
                if (!file.Tensors.TryAdd(key, Materialize(key, tensor)))
                {
                    throw new CheckpointException(path, "appears twice in the state dict.", key);
                }
            }

            return file;
        }

        private ZipArchiveEntry FindPickle()
        {
            var found = archive.Entries
                .Where(e => e.FullName.EndsWith("/data.pkl", StringComparison.Ordinal) && e.FullName.IndexOf('/') == e.FullName.Length - "/data.pkl".Length)
                .ToList();
            return found.Count switch
            {
                1 => found[0],
                0 => throw new CheckpointException(path,
                    "is a zip archive but not a PyTorch checkpoint: it has no '<folder>/data.pkl' entry " +
                    $"(entries: {Describe(archive.Entries.Select(e => e.FullName))})."),
                _ => throw new CheckpointException(path,
                    $"holds several PyTorch pickles ({Describe(found.Select(e => e.FullName))}); expected exactly one '<folder>/data.pkl'."),
            };
        }

        private bool ReadByteOrder()
        {
            ZipArchiveEntry? entry = archive.GetEntry(this.prefix + "byteorder");
            if (entry is null)
            {
                return false;
            }

            string order = Encoding.ASCII.GetString(ReadEntry(entry, 64, "byteorder")).Trim();
            return order switch
            {
                "little" => false,
                "big" => true,
                _ => throw new CheckpointException(path, $"has byteorder '{order}'; expected 'little' or 'big'."),
            };
        }

        private PyDict SelectStateDict(object? root)
        {
            if (root is not PyDict top)
            {
                throw new CheckpointException(path,
                    $"holds a {PickleDescribe.TypeName(root)} at the top level, not a state dict (a dict of name to tensor).");
            }

            foreach (string name in StateDictKeys)
            {
                if (top.TryGetValue(name, out object? inner) && inner is PyDict dict)
                {
                    if (dict.Count > 0 && !dict.Items.Any(kv => kv.Value is TensorRef))
                    {
                        throw new CheckpointException(path,
                            $"has a '{name}' entry that holds no tensors (its keys: {Describe(dict.Items.Select(kv => kv.Key?.ToString() ?? "None"))}).");
                    }

                    return dict;
                }
            }

            if (top.Count > 0 && !top.Items.Any(kv => kv.Value is TensorRef))
            {
                throw new CheckpointException(path,
                    $"holds no tensors at the top level and no dict under {string.Join(", ", StateDictKeys.Select(k => $"'{k}'"))} " +
                    $"(top-level keys: {Describe(top.Items.Select(kv => kv.Key?.ToString() ?? "None"))}).");
            }

            return top;
        }

        private StoredTensor Materialize(string key, TensorRef tensor)
        {
            StorageRef storage = tensor.Storage;
            DType dtype = storage.DType;
            int elementSize = DTypeInfo.SizeOf(dtype);
            int rank = tensor.Size.Length;
            var shape = new int[rank];
            long numel = 1;
            try
            {
                for (int d = 0; d < rank; d++)
                {
                    long size = tensor.Size[d];
                    if (size < 0 || size > int.MaxValue)
                    {
                        throw Problem(key, $"has dimension {d} of size {size}, which is out of range.");
                    }

                    shape[d] = (int)size;
                    numel = checked(numel * size);
                }

                long byteCount = checked(numel * elementSize);
                if (byteCount > Array.MaxLength)
                {
                    throw Problem(key, $"holds {byteCount} bytes, more than one array can hold.");
                }

                if (numel == 0)
                {
                    return new StoredTensor(dtype, shape, []);
                }

                if (tensor.Offset < 0)
                {
                    throw Problem(key, $"has a negative storage offset {tensor.Offset}.");
                }

                long last = tensor.Offset;
                for (int d = 0; d < rank; d++)
                {
                    if (tensor.Stride[d] < 0)
                    {
                        throw Problem(key, $"has a negative stride {tensor.Stride[d]} in dimension {d}.");
                    }

                    last = checked(last + ((tensor.Size[d] - 1) * tensor.Stride[d]));
                }

                if (last >= storage.Numel)
                {
                    throw Problem(key,
                        $"is a view (offset {tensor.Offset}, size {Format(tensor.Size)}, stride {Format(tensor.Stride)}) that reaches element {last}, " +
                        $"but its storage '{storage.Key}' holds only {storage.Numel} elements.");
                }

                // Everything below allocates; first make sure the file really holds what the view would copy out.
                // checked: a storage declaring 2^61 elements or more would wrap the bound and be refused with a wrong message.
                if (numel > checked(MaxViewAmplification * storage.Numel))
                {
                    throw Problem(key,
                        $"is a view of {numel} elements (size {Format(tensor.Size)}, stride {Format(tensor.Stride)}) over storage '{storage.Key}' of only {storage.Numel}; " +
                        $"a view may read at most {MaxViewAmplification} elements per stored element (it is copied out), so the file is refused.");
                }

                if (countedStorages.Add(storage.Key))
                {
                    storageBytes += checked(storage.Numel * elementSize);
                }

                if (outputBytes + byteCount > checked(MaxViewAmplification * storageBytes))
                {
                    throw Problem(key,
                        $"would bring the tensors read so far to {outputBytes + byteCount} bytes from only {storageBytes} bytes of storage records; " +
                        $"views may copy out at most {MaxViewAmplification} times what the file stores, so the file is refused.");
                }

                byte[] data = LoadStorage(key, storage, elementSize);
                outputBytes += byteCount;
                var output = new byte[byteCount];
                Gather(data, output, tensor, elementSize, numel);
                if (bigEndian && elementSize > 1)
                {
                    SwapBytes(output, elementSize);
                }

                return new StoredTensor(dtype, shape, output);
            }
            catch (OverflowException)
            {
                throw Problem(key, $"has a size {Format(tensor.Size)} or stride {Format(tensor.Stride)} too large to address.");
            }
        }

        private byte[] LoadStorage(string key, StorageRef storage, int elementSize)
        {
            long needed = checked(storage.Numel * elementSize);
            if (this.storages.TryGetValue(storage.Key, out byte[]? cached) && cached.Length >= needed)
            {
                return cached;
            }

            string record = this.prefix + "data/" + storage.Key;
            ZipArchiveEntry entry = archive.GetEntry(record)
                ?? throw Problem(key, $"needs storage record '{record}', which is missing from the archive.");

            // torch.save writes each storage whole, so the record's size must be exactly what the pickle declares
            // for it. Checked against the zip directory before anything is inflated or allocated.
            if (entry.Length < needed)
            {
                throw Problem(key,
                    $"needs {needed} bytes ({storage.Numel} x {storage.DType}) from storage record '{record}', which holds only {entry.Length}; the file is truncated or corrupt.");
            }

            if (entry.Length != needed)
            {
                throw Problem(key,
                    $"declares storage '{storage.Key}' as {storage.Numel} x {storage.DType} = {needed} bytes, but record '{record}' holds {entry.Length}; " +
                    "torch.save writes each storage whole, so the file is corrupt or crafted.");
            }

            if (needed > Array.MaxLength)
            {
                throw Problem(key, $"needs storage record '{record}' of {needed} bytes, more than one array can hold.");
            }

            CheckCompression(entry, key);

            var data = new byte[needed];
            try
            {
                using Stream s = entry.Open();
                s.ReadExactly(data);
            }
            catch (Exception ex) when (ex is InvalidDataException or EndOfStreamException or IOException)
            {
                throw new CheckpointException(path, $"could not read storage record '{record}' (truncated or corrupt): {ex.Message}", key, ex);
            }

            // The record holds exactly the storage, so its CRC can be checked (neither ZipArchive nor
            // PyTorch's own reader does).
            CheckCrc(entry, data, key);

            this.storages[storage.Key] = data;
            return data;
        }

        private byte[] ReadEntry(ZipArchiveEntry entry, long limit, string what)
        {
            if (entry.Length > limit)
            {
                throw new CheckpointException(path, $"has a '{entry.FullName}' record of {entry.Length} bytes, more than the {limit} this reader accepts for {what}.");
            }

            CheckCompression(entry, key: null);

            var data = new byte[entry.Length];
            try
            {
                using Stream s = entry.Open();
                s.ReadExactly(data);
            }
            catch (Exception ex) when (ex is InvalidDataException or EndOfStreamException or IOException)
            {
                throw new CheckpointException(path, $"could not read '{entry.FullName}' (truncated or corrupt): {ex.Message}", inner: ex);
            }

            CheckCrc(entry, data, key: null);
            return data;
        }

        // A deflated record declares its inflated size in the zip directory; a zip bomb declares (and holds)
        // gigabytes in kilobytes. Refuse a ratio no checkpoint has before allocating or inflating anything.
        private void CheckCompression(ZipArchiveEntry entry, string? key)
        {
            if (entry.Length > CompressionRatioExemptBytes && entry.Length > MaxCompressionRatio * entry.CompressedLength)
            {
                throw new CheckpointException(path,
                    $"record '{entry.FullName}' declares {entry.Length} bytes compressed into {entry.CompressedLength}, a ratio above the " +
                    $"{MaxCompressionRatio}:1 this reader accepts (torch.save stores records uncompressed); refused before inflating it.", key);
            }
        }

        private void CheckCrc(ZipArchiveEntry entry, byte[] data, string? key)
        {
            uint actual = Crc32.Compute(data);
            if (actual != entry.Crc32)
            {
                throw new CheckpointException(path,
                    $"record '{entry.FullName}' fails its CRC-32 check (stored {entry.Crc32:x8}, computed {actual:x8}); the file is corrupt.", key);
            }
        }

        private CheckpointException Problem(string key, string problem) => new(path, problem, key);
    }

    // Copies the strided view into a contiguous row-major buffer. Bounds were checked by the caller.
    private static void Gather(byte[] storage, byte[] output, TensorRef tensor, int elementSize, long numel)
    {
        long[] size = tensor.Size;
        long[] stride = tensor.Stride;
        int rank = size.Length;
        if (IsContiguous(size, stride))
        {
            Array.Copy(storage, tensor.Offset * elementSize, output, 0, numel * elementSize);
            return;
        }

        // Odometer over the index space; the innermost dimension is copied element by element.
        var index = new long[rank];
        long src = tensor.Offset;
        for (long n = 0; n < numel; n++)
        {
            Array.Copy(storage, src * elementSize, output, n * elementSize, elementSize);
            for (int d = rank - 1; d >= 0; d--)
            {
                src += stride[d];
                if (++index[d] < size[d])
                {
                    break;
                }

                src -= stride[d] * size[d];
                index[d] = 0;
            }
        }
    }

    private static bool IsContiguous(long[] size, long[] stride)
    {
        long expected = 1;
        for (int d = size.Length - 1; d >= 0; d--)
        {
            if (size[d] != 1 && stride[d] != expected)
            {
                return false;
            }

            expected *= size[d];
        }

        return true;
    }

    private static void SwapBytes(byte[] data, int elementSize)
    {
        Span<byte> span = data;
        for (int i = 0; i < span.Length; i += elementSize)
        {
            span.Slice(i, elementSize).Reverse();
        }
    }

    private static string Format(long[] values) => "[" + string.Join(", ", values) + "]";

    private static string Describe(IEnumerable<string> names)
    {
        var list = names.Take(11).ToList();
        return list.Count == 0 ? "none" : string.Join(", ", list.Take(10)) + (list.Count > 10 ? ", ..." : "");
    }
}
