using System.Globalization;
using System.Text;

namespace MobileOne.IO.PyTorch;

/// <summary>
/// Writes tensors as a PyTorch checkpoint that <c>torch.load</c> (PyTorch 1.13 to 2.x, including
/// <c>weights_only=True</c>) reads back as a <c>collections.OrderedDict</c> of CPU tensors, in the
/// order of <see cref="TensorFile.Tensors"/>.
/// </summary>
/// <remarks>
/// The layout follows torch.save's zip format: <c>&lt;stem&gt;/data.pkl</c> (pickle protocol 2),
/// one uncompressed record <c>&lt;stem&gt;/data/&lt;i&gt;</c> per tensor aligned to 64 bytes,
/// <c>&lt;stem&gt;/byteorder</c> ("little") and <c>&lt;stem&gt;/version</c> ("3"). Every tensor gets its own
/// contiguous storage. <see cref="TensorFile.Metadata"/> has no place in a state dict and is not written.
/// The file is written through <see cref="AtomicFile"/>, so a failure leaves any existing file as it was.
/// </remarks>
internal static class PyTorchCheckpointWriter
{
    private const string DefaultStem = "archive";

    public static void Write(string path, TensorFile file)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(file);
        string stem = ArchiveStem(path);
        AtomicFile.Write(path, stream => WriteArchive(path, stream, file, stem, forceZip64: false));
    }

    /// <summary>The zip's top folder: the file name without its last extension, as torch.save names it.</summary>
    internal static string ArchiveStem(string path)
    {
        string stem = Path.GetFileNameWithoutExtension(path);
        bool plain = stem.Length > 0 && stem.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-' or '.');
        return plain ? stem : DefaultStem;
    }

    internal static void WriteArchive(string path, Stream stream, TensorFile file, string stem, bool forceZip64)
    {
        var tensors = file.Tensors.ToList();
        byte[] pickle = BuildPickle(path, tensors);

        var zip = new AlignedZipWriter(stream, forceZip64);
        zip.Add(stem + "/data.pkl", pickle);
        zip.Add(stem + "/byteorder", "little"u8);
        for (int i = 0; i < tensors.Count; i++)
        {
            zip.Add(stem + "/data/" + i.ToString(CultureInfo.InvariantCulture), tensors[i].Value.Data);
        }

        zip.Add(stem + "/version", Encoding.ASCII.GetBytes("3\n"));
        zip.Finish();
    }

    private static byte[] BuildPickle(string path, List<KeyValuePair<string, StoredTensor>> tensors)
    {
        const int Batch = 1000; // SETITEMS batch size, as Python's pickler uses
        var p = new PickleWriter();
        p.Global("collections", "OrderedDict");
        p.EmptyTuple();
        p.Reduce();
        for (int i = 0; i < tensors.Count; i++)
        {
            if (i % Batch == 0)
            {
                p.Mark();
            }

            var (key, tensor) = tensors[i];
            WriteTensor(p, path, key, tensor, i);

            if (i % Batch == Batch - 1 || i == tensors.Count - 1)
            {
                p.SetItems();
            }
        }

        p.Stop();
        return p.ToArray();
    }

    private static void WriteTensor(PickleWriter p, string path, string key, StoredTensor? tensor, int index)
    {
        if (tensor is null)
        {
            throw new CheckpointException(path, "has no tensor (null).", key);
        }

        int[] shape = tensor.Shape;
        var size = new long[shape.Length];
        var stride = new long[shape.Length];
        long step = 1;
        for (int d = shape.Length - 1; d >= 0; d--)
        {
            if (shape[d] < 0)
            {
                throw new CheckpointException(path, $"has a negative dimension in shape [{string.Join(", ", shape)}].", key);
            }

            size[d] = shape[d];
            stride[d] = step;
            step *= Math.Max(shape[d], 1); // torch's contiguous strides treat empty dimensions as 1
        }

        // Shape is a mutable array, so check it still agrees with the bytes.
        long numel = StoredTensor.ElementCount(shape);
        if (numel * DTypeInfo.SizeOf(tensor.DType) != tensor.Data.Length)
        {
            throw new CheckpointException(path,
                $"has shape [{string.Join(", ", shape)}] of {tensor.DType}, which needs {numel * DTypeInfo.SizeOf(tensor.DType)} bytes, but holds {tensor.Data.Length}.", key);
        }

        p.String(key);
        p.Global("torch._utils", "_rebuild_tensor_v2");
        p.Mark();
        {
            // Persistent id: ('storage', torch.<X>Storage, '<index>', 'cpu', numel)
            p.Mark();
            p.String("storage", memoize: true);
            p.Global("torch", TorchTypes.StorageName(tensor.DType));
            p.String(index.ToString(CultureInfo.InvariantCulture));
            p.String("cpu", memoize: true);
            p.Int(numel);
            p.TupleFromMark();
            p.BinPersId();

            p.Int(0); // storage offset
            p.IntTuple(size);
            p.IntTuple(stride);
            p.Bool(false); // requires_grad
            p.Global("collections", "OrderedDict"); // backward hooks: an empty OrderedDict
            p.EmptyTuple();
            p.Reduce();
        }

        p.TupleFromMark();
        p.Reduce();
    }
}
