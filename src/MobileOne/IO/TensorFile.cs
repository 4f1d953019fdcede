namespace MobileOne.IO;

/// <summary>
/// The contents of a checkpoint file: named tensors in file order plus string metadata.
/// Format readers produce it and format writers consume it; key schemes map it to a model.
/// </summary>
public sealed class TensorFile
{
    /// <summary>An empty file.</summary>
    public TensorFile()
    {
    }

    /// <summary>A file holding <paramref name="tensors"/> in the given order, with optional string <paramref name="metadata"/>.</summary>
    public TensorFile(IEnumerable<KeyValuePair<string, StoredTensor>> tensors, IEnumerable<KeyValuePair<string, string>>? metadata = null)
    {
        foreach (var (k, v) in tensors)
        {
            Tensors.Add(k, v);
        }

        if (metadata is not null)
        {
            foreach (var (k, v) in metadata)
            {
                Metadata.Add(k, v);
            }
        }
    }

    /// <summary>Tensors by name; insertion order is the order they were read or will be written.</summary>
    public OrderedDictionary<string, StoredTensor> Tensors { get; } = new(StringComparer.Ordinal);

    /// <summary>String metadata (safetensors' __metadata__), in insertion order.</summary>
    public OrderedDictionary<string, string> Metadata { get; } = new(StringComparer.Ordinal);
}
