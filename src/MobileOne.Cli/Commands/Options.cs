using MobileOne.Inference;
using MobileOne.IO.Checkpoints;
using MobileOne.Kernels;
using MobileOne.Kernels.Conv;

namespace MobileOne.Cli.Commands;

/// <summary>Option checks with messages that name the option.</summary>
internal static class Options
{
    /// <summary>
    /// Loads the checkpoint a command classifies with. A `.onnx` file is refused by name first: the project exports
    /// ONNX but has no ONNX import yet, and the message says so rather than a checkpoint reader's complaint.
    /// </summary>
    public static LoadedClassifier LoadCheckpoint(string path, string command) =>
        string.Equals(Path.GetExtension(path), ".onnx", StringComparison.OrdinalIgnoreCase)
            ? throw new ArgumentException($"{path}: ONNX models are not supported by {command} yet; give a checkpoint (.safetensors, .pth, .pth.tar; timm or Apple names) instead.")
            : ModelCheckpoint.LoadClassifier(path);

    public static int Positive(int value, string option) =>
        value > 0 ? value : throw new ArgumentException($"{option} must be a positive integer; got {value}.");

    /// <summary>
    /// --scheme for a network: timm; apple (MobileOne); official, the authors' names (Apple's for MobileOne,
    /// DingXiaoH/RepVGG's for RepVGG).
    /// </summary>
    public static KeyLayout Scheme(string? value, Models.ClassifierNetwork network) => value?.ToLowerInvariant() switch
    {
        null or "timm" => KeyLayout.Timm,
        "apple" => KeyLayout.Apple,
        "official" => network is Models.MobileOneNetwork ? KeyLayout.Apple : KeyLayout.RepVggOfficial,
        _ => throw new ArgumentException($"--scheme must be 'timm', 'apple' or 'official'; got '{value}'."),
    };

    public static ConvAlgorithm ConvAlgorithm(string? value) => value?.ToLowerInvariant() switch
    {
        null or "auto" => Kernels.Conv.ConvAlgorithm.Auto,
        "direct" => Kernels.Conv.ConvAlgorithm.Direct,
        "im2col" => Kernels.Conv.ConvAlgorithm.Im2Col,
        "im2win" => Kernels.Conv.ConvAlgorithm.Im2Win,
        _ => throw new ArgumentException($"--conv-algo must be auto, direct, im2col or im2win; got '{value}'."),
    };

    public static IsaLevel Isa(string? value) => value?.ToLowerInvariant() switch
    {
        null or "auto" => IsaLevel.Auto,
        "avx512" => IsaLevel.Avx512,
        "avx2" => IsaLevel.Avx2,
        "scalar" => IsaLevel.Scalar,
        _ => throw new ArgumentException($"--isa must be auto, avx512, avx2 or scalar; got '{value}'."),
    };
}
