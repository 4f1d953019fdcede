namespace MobileOne.IO.Checkpoints;

/// <summary>The file formats checkpoints are read from and written to.</summary>
public enum CheckpointFormat
{
    /// <summary>A single .safetensors file.</summary>
    Safetensors,

    /// <summary>A *.safetensors.index.json naming several shards.</summary>
    SafetensorsSharded,

    /// <summary>A torch.save zip archive (.pth, .pth.tar, .pt).</summary>
    PyTorch,
}

/// <summary>Names and file extensions of <see cref="CheckpointFormat"/>.</summary>
public static class CheckpointFormats
{
    /// <summary>A short name of <paramref name="format"/> for messages and reports.</summary>
    public static string Name(CheckpointFormat format) => format switch
    {
        CheckpointFormat.Safetensors => "safetensors",
        CheckpointFormat.SafetensorsSharded => "safetensors-sharded",
        CheckpointFormat.PyTorch => "pytorch",
        _ => format.ToString(),
    };

    /// <summary>The format a path's extension asks for when writing.</summary>
    public static CheckpointFormat ForOutputPath(string path)
    {
        string lower = path.ToLowerInvariant();
        if (lower.EndsWith(".safetensors", StringComparison.Ordinal))
        {
            return CheckpointFormat.Safetensors;
        }

        if (lower.EndsWith(".pth", StringComparison.Ordinal) || lower.EndsWith(".pt", StringComparison.Ordinal)
            || lower.EndsWith(".pth.tar", StringComparison.Ordinal) || lower.EndsWith(".bin", StringComparison.Ordinal))
        {
            return CheckpointFormat.PyTorch;
        }

        throw new CheckpointException(path, "has an unknown extension; write to .safetensors, .pth, .pth.tar or .pt.");
    }
}
