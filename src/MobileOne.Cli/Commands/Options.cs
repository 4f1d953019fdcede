using MobileOne.Classification;
using MobileOne.Graph;
using MobileOne.Inference;
using MobileOne.IO.Checkpoints;
using MobileOne.Kernels;
using MobileOne.Kernels.Conv;

namespace MobileOne.Cli.Commands;

/// <summary>Option checks with messages that name the option.</summary>
internal static class Options
{
    /// <summary>
    /// Loads what predict and serve classify with: a checkpoint of any family (fused where it has a fused form, its
    /// architecture's pretrained preprocessing) or an ONNX classifier (run as it is, up to the logits when it ends in a
    /// softmax; timm's default preprocessing, 224, crop_pct 0.875, bilinear, ImageNet mean/std, or the Fashion-MNIST
    /// transform for 1 channel). Either is classified at the input size the file records, if any
    /// (<see cref="MobileOne.IO.InputSizeRecord"/>: train writes it).
    /// </summary>
    public static ClassifierModel LoadClassifierModel(string path)
    {
        if (string.Equals(Path.GetExtension(path), ".onnx", StringComparison.OrdinalIgnoreCase))
        {
            var (graph, recordedSize) = MobileOne.IO.Onnx.OnnxImporter.Read(path);

            // A classifier exported with its softmax returns probabilities, and predict and serve apply their own
            // softmax to logits: they read the logits before it (a second softmax would flatten the probabilities).
            if (graph.Producer(graph.Output) is SoftmaxNode softmax && graph.Producer(softmax.Input) is LinearNode)
            {
                graph.Output = softmax.Input;
            }

            var defaults = graph.InputChannels == 1 ? new ImagePreprocessing { Pipeline = InputPipeline.FashionMnist } : new ImagePreprocessing();
            return new ClassifierModel(path, Path.GetFileName(path), IsOnnx: true, FusedOnLoad: false, graph, AtSize(defaults, recordedSize));
        }

        var loaded = ModelCheckpoint.LoadClassifier(path);
        var network = loaded.Network;
        bool fuse = network.Reparameterizable && !network.IsFused;
        var deployed = fuse ? Reparam.Reparameterizer.Fuse(network) : network;
        return new ClassifierModel(
            path, loaded.MobileOne?.Config.Name ?? network.Architecture, IsOnnx: false, FusedOnLoad: fuse, deployed.ToGraph(),
            AtSize(ImagePreprocessing.ForModel(network), loaded.InputSize));

        static ImagePreprocessing AtSize(ImagePreprocessing defaults, int? recorded) => recorded is int size ? defaults with { Size = size } : defaults;
    }

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
