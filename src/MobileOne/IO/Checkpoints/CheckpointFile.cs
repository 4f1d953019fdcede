using MobileOne.IO.PyTorch;
using MobileOne.IO.Safetensors;

namespace MobileOne.IO.Checkpoints;

/// <summary>Reads or writes a checkpoint in any supported container, chosen by content (reading) or extension (writing).</summary>
public static class CheckpointFile
{
    /// <summary>Reads every tensor of a checkpoint whatever its format (recognised by content: safetensors, sharded safetensors index, torch.save zip) and says which format it was.</summary>
    public static (TensorFile File, CheckpointFormat Format) Read(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (Directory.Exists(path))
        {
            throw new CheckpointException(path, "is a directory; expected a checkpoint file (.safetensors, .safetensors.index.json, .pth, .pth.tar or .pt).");
        }

        if (!File.Exists(path))
        {
            throw new CheckpointException(path, "does not exist.");
        }

        if (path.EndsWith(".index.json", StringComparison.OrdinalIgnoreCase))
        {
            return (SafetensorsReader.Read(path), CheckpointFormat.SafetensorsSharded);
        }

        Span<byte> head = stackalloc byte[512];
        int read;
        using (var stream = File.OpenRead(path))
        {
            read = stream.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
        }

        head = head[..read];
        if (read == 0)
        {
            throw new CheckpointException(path, "is empty (0 bytes); expected a checkpoint.");
        }

        // Safetensors first: its first byte is the low byte of the header's length, which is 0x80 (a pickle's PROTO
        // opcode) for one header length in 256. A torch.save file does not pass the check: its first eight bytes, read
        // as a little-endian length, exceed the largest header allowed, or its ninth is not the '{' a header opens with.
        if (SafetensorsReader.LooksLikeSafetensors(head))
        {
            return (SafetensorsReader.Read(path), CheckpointFormat.Safetensors);
        }

        bool zip = read >= 4 && head[0] == (byte)'P' && head[1] == (byte)'K' && head[2] == 3 && head[3] == 4;
        bool pickle = head[0] == 0x80;
        bool tar = read >= 262 && head.Slice(257, 5).SequenceEqual("ustar"u8);
        if (zip || pickle || tar)
        {
            return (PyTorchCheckpointReader.Read(path), CheckpointFormat.PyTorch);
        }

        if (path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
        {
            return (SafetensorsReader.Read(path), CheckpointFormat.Safetensors);
        }

        if (IsPyTorchExtension(path))
        {
            return (PyTorchCheckpointReader.Read(path), CheckpointFormat.PyTorch);
        }

        throw new CheckpointException(path, "is not a recognised checkpoint: expected safetensors, a sharded safetensors index (.index.json) or a torch.save zip (.pth, .pth.tar, .pt).");
    }

    /// <summary>Writes <paramref name="file"/> to <paramref name="path"/> in <paramref name="format"/> (atomically: temporary file and rename).</summary>
    public static void Write(string path, TensorFile file, CheckpointFormat format)
    {
        switch (format)
        {
            case CheckpointFormat.Safetensors:
                SafetensorsWriter.Write(path, file);
                break;
            case CheckpointFormat.PyTorch:
                PyTorchCheckpointWriter.Write(path, file);
                break;
            default:
                throw new CheckpointException(path, $"writing {CheckpointFormats.Name(format)} checkpoints is not supported; use .safetensors or .pth.");
        }
    }

    private static bool IsPyTorchExtension(string path)
    {
        string lower = path.ToLowerInvariant();
        return lower.EndsWith(".pth", StringComparison.Ordinal) || lower.EndsWith(".pt", StringComparison.Ordinal) || lower.EndsWith(".tar", StringComparison.Ordinal) || lower.EndsWith(".bin", StringComparison.Ordinal);
    }
}
