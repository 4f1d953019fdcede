using System.Globalization;

namespace MobileOne.IO;

/// <summary>
/// The input size a model was trained at, as its files record it: metadata <see cref="Key"/> = "C,H,W" (timm's
/// pretrained_cfg input_size, e.g. "1,48,48"), in a safetensors checkpoint's <c>__metadata__</c> and an ONNX model's
/// metadata_props. eval, predict, serve and info take it as their default size. One reading and one writing for both
/// formats, so a file refused by one is refused by the other with the same words.
/// </summary>
public static class InputSizeRecord
{
    /// <summary>The metadata key.</summary>
    public const string Key = "input_size";

    /// <summary>Largest side recorded: a 4096 x 4096 RGB input is 200 MB of floats per image before the engine's buffers (also the CLI's --img-size limit).</summary>
    public const int MaxSize = 4096;

    /// <summary>The record of a square input of side <paramref name="size"/> (1..<see cref="MaxSize"/>) for <paramref name="inChans"/> channels.</summary>
    public static string Format(int inChans, int size)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(size, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(size, MaxSize);
        return string.Create(CultureInfo.InvariantCulture, $"{inChans},{size},{size}");
    }

    /// <summary>The side of the square input a checkpoint's metadata records, or null when it records none (see <see cref="Parse"/>).</summary>
    public static int? Read(TensorFile file, string path, int inChans)
    {
        ArgumentNullException.ThrowIfNull(file);
        return file.Metadata.TryGetValue(Key, out string? text) ? Parse(text, path, inChans) : null;
    }

    /// <summary>Records a square input of side <paramref name="size"/> in a checkpoint's metadata, when given.</summary>
    public static void Write(TensorFile file, int inChans, int? size)
    {
        ArgumentNullException.ThrowIfNull(file);
        if (size is int side)
        {
            file.Metadata[Key] = Format(inChans, side);
        }
    }

    /// <summary>
    /// The side of the square input <paramref name="text"/> records. Anything but "C,H,W" with C =
    /// <paramref name="inChans"/> and H = W in 1..<see cref="MaxSize"/> is refused with <paramref name="path"/> and the key.
    /// </summary>
    public static int Parse(string text, string path, int inChans)
    {
        ArgumentNullException.ThrowIfNull(text);
        var dims = text.Split(',').Select(part => int.TryParse(part.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out int v) ? v : 0).ToArray();
        if (dims.Length != 3 || dims[0] != inChans || dims[1] != dims[2] || dims[1] < 1 || dims[1] > MaxSize)
        {
            // A hostile file may hold megabytes here: the message quotes its start.
            string shown = text.Length <= 40 ? text : text[..40] + "...";
            throw new CheckpointException(
                path,
                $"has metadata {Key} '{shown}'; expected 'C,H,W' for a square input, C = {inChans} (the model's in_chans) and H = W from 1 to {MaxSize}, e.g. '{inChans},224,224'.",
                Key);
        }

        return dims[1];
    }
}
