using MobileOne.Graph;
using MobileOne.Inference;
using MobileOne.Kernels;
using MobileOne.Models;
using MobileOne.Tensors;

namespace MobileOne.Studies;

/// <summary>The activation at every activation site of the study network (the paper's Table 3 rows).</summary>
public enum StudyActivation
{
    /// <summary>ReLU.</summary>
    Relu,
    /// <summary>GELU.</summary>
    Gelu,
    /// <summary>SiLU (swish).</summary>
    Silu,
    /// <summary>Dynamic shift-max (MicroNet).</summary>
    DynamicShiftMax,
    /// <summary>DyReLU-A (one coefficient set per layer).</summary>
    DyReluA,
    /// <summary>DyReLU-B (coefficients per channel).</summary>
    DyReluB,
}

/// <summary>What a study network is built with: the activation, squeeze-excite on the depthwise layers, residual adds.</summary>
public sealed record StudyConfig(StudyActivation Activation, bool SqueezeExcite = false, bool Skip = false);

/// <summary>One variant of a study: its name on the command line and in the JSON rows, and the network it builds.</summary>
public sealed record StudyVariant(string Study, string Name, StudyConfig Config);

/// <summary>What a layer of the study network is: the stem, a depthwise or pointwise layer of a block, the head's 1x1.</summary>
public enum StudyLayerKind
{
    /// <summary>The stem convolution.</summary>
    Stem,
    /// <summary>A block's depthwise convolution.</summary>
    Depthwise,
    /// <summary>A block's pointwise convolution.</summary>
    Pointwise,
    /// <summary>The head's 1x1 convolution.</summary>
    Head,
}

/// <summary>
/// One convolution of the study network. <see cref="Block"/> is the depthwise-separable block it belongs to (-1 for
/// the stem and the head); <see cref="Residual"/> marks the pointwise layer whose block adds its input back in the
/// <c>skip</c> variant.
/// </summary>
public sealed record StudyLayer(string Name, StudyLayerKind Kind, int Block, int InChannels, int OutChannels, int Kernel, int Stride, bool Residual)
{
    /// <summary>Convolution groups (the channels for a depthwise layer).</summary>
    public int Groups => Kind == StudyLayerKind.Depthwise ? InChannels : 1;
}

/// <summary>
/// The 30-layer convolutional network of the paper's activation and block studies (MobileOne, Vasu et al., CVPR 2023,
/// Tables 3 and 4). The paper does not give its layers; this one is a MobileNet-like stack (docs/studies.md gives the
/// reasons): a 3x3 stride-2 stem, 14 depthwise-separable blocks (depthwise 3x3 + pointwise 1x1) whose widths double
/// from 32 to 512 exactly where the depthwise layer has stride 2, a 1x1 head convolution to 1024, global average pooling
/// and a 1000-way linear classifier: 1 + 28 + 1 = 30 convolutions, each followed by the variant's activation.
/// <para>Emitted as deployed: BatchNorm is already folded into every convolution, so the counts are those of the network
/// a phone would run and both engines see the same convolutions. The folded statistics are measured, as training would
/// leave them: each convolution in turn is normalized per channel over a random calibration batch (then shifted by a
/// small random beta), so every variant keeps its values near unit scale through 30 layers. Without that, a
/// near-linear activation (dynamic shift-max starts as the identity) grows the values to 1e11 at the logits, where the
/// saturating hyper functions turn float32 rounding into different coefficients and no two engines agree.</para>
/// </summary>
public static class StudyNetwork
{
    /// <summary>The network's name in the study rows.</summary>
    public const string Name = "conv30";

    /// <summary>The activation study's name.</summary>
    public const string ActivationsStudy = "activations";
    /// <summary>The block study's name.</summary>
    public const string BlocksStudy = "blocks";

    /// <summary>Squeeze-excite reduces to channels / 16, as MobileOne's own SE (rd_ratio 0.0625).</summary>
    public const int SqueezeExciteReduction = 16;

    /// <summary>DyReLU's hyper function reduces to channels / 4 (the DyReLU reference implementation's default); K = 2 pieces.</summary>
    public const int DyReluReduction = 4;

    /// <summary>DyReLU's K: pieces of the piecewise-linear function.</summary>
    public const int DyReluPieces = 2;

    /// <summary>
    /// Dynamic shift-max as in MicroNet's released configurations: J = 2 (the channel and its shift by one group),
    /// K = 2 (max of two), Lambda = 2 (their ACT_MAX 2.0), hyper function reduced to channels / 8 (at least 4), and
    /// G = 4 groups, so the partner of channel i is channel (i + C/4) mod C.
    /// </summary>
    public const int ShiftMaxGroups = 4;

    /// <summary>Dynamic shift-max's J.</summary>
    public const int ShiftMaxJ = 2;
    /// <summary>Dynamic shift-max's K.</summary>
    public const int ShiftMaxK = 2;
    /// <summary>Dynamic shift-max's lambda.</summary>
    public const double ShiftMaxLambda = 2.0;
    /// <summary>Dynamic shift-max's hyper-function reduction.</summary>
    public const int ShiftMaxReduction = 8;

    /// <summary>Channels of the head's 1x1 convolution.</summary>
    public const int HeadChannels = 1024;
    /// <summary>Classes of the study network's classifier.</summary>
    public const int DefaultClasses = 1000;

    /// <summary>The paper's Table 3 rows, in its order.</summary>
    public static IReadOnlyList<StudyVariant> Activations { get; } =
    [
        new(ActivationsStudy, "relu", new StudyConfig(StudyActivation.Relu)),
        new(ActivationsStudy, "gelu", new StudyConfig(StudyActivation.Gelu)),
        new(ActivationsStudy, "se-relu", new StudyConfig(StudyActivation.Relu, SqueezeExcite: true)),
        new(ActivationsStudy, "silu", new StudyConfig(StudyActivation.Silu)),
        new(ActivationsStudy, "dynamic-shift-max", new StudyConfig(StudyActivation.DynamicShiftMax)),
        new(ActivationsStudy, "dyrelu-a", new StudyConfig(StudyActivation.DyReluA)),
        new(ActivationsStudy, "dyrelu-b", new StudyConfig(StudyActivation.DyReluB)),
    ];

    /// <summary>The paper's Table 4 rows, cumulative as there ("+ Squeeze-Excite", then "+ Skip Connections" on top).</summary>
    public static IReadOnlyList<StudyVariant> Blocks { get; } =
    [
        new(BlocksStudy, "baseline", new StudyConfig(StudyActivation.Relu)),
        new(BlocksStudy, "se", new StudyConfig(StudyActivation.Relu, SqueezeExcite: true)),
        new(BlocksStudy, "skip", new StudyConfig(StudyActivation.Relu, SqueezeExcite: true, Skip: true)),
    ];

    /// <summary>The paper's iPhone 12 latency in ms for each variant (MobileOne, Tables 3 and 4).</summary>
    public static double? PaperIphone12Ms(string study, string variant) => (study, variant) switch
    {
        (ActivationsStudy, "relu") => 1.53,
        (ActivationsStudy, "gelu") => 1.63,
        (ActivationsStudy, "se-relu") => 2.10,
        (ActivationsStudy, "silu") => 2.54,
        (ActivationsStudy, "dynamic-shift-max") => 57.04,
        (ActivationsStudy, "dyrelu-a") => 273.49,
        (ActivationsStudy, "dyrelu-b") => 242.14,
        (BlocksStudy, "baseline") => 1.53,
        (BlocksStudy, "se") => 2.10,
        (BlocksStudy, "skip") => 2.62,
        _ => null,
    };

    /// <summary>The variants of a study by its name (activations, blocks).</summary>
    public static IReadOnlyList<StudyVariant> Variants(string study) => study switch
    {
        ActivationsStudy => Activations,
        BlocksStudy => Blocks,
        _ => throw new ArgumentException($"Unknown study '{study}'; expected {ActivationsStudy} or {BlocksStudy}."),
    };

    /// <summary>
    /// The 30 convolutions in order. Stages (resolution at 224: 112, 56, 28, 14, 7) have 1, 2, 2, 6 and 3 blocks; the
    /// first block of stages 2-5 has a stride-2 depthwise layer and a pointwise layer that doubles the width, every
    /// other block keeps its shape (and so can carry a residual add).
    /// </summary>
    public static IReadOnlyList<StudyLayer> Layers { get; } = BuildLayers();

    private static List<StudyLayer> BuildLayers()
    {
        var layers = new List<StudyLayer> { new("stem", StudyLayerKind.Stem, -1, 3, 32, 3, 2, false) };
        (int Width, int Blocks)[] stages = [(32, 1), (64, 2), (128, 2), (256, 6), (512, 3)];
        int channels = 32, block = 0;
        for (int s = 0; s < stages.Length; s++)
        {
            var (width, count) = stages[s];
            for (int b = 0; b < count; b++, block++)
            {
                int stride = b == 0 && s > 0 ? 2 : 1;
                bool sameShape = stride == 1 && channels == width;
                layers.Add(new($"blocks.{block}.dw", StudyLayerKind.Depthwise, block, channels, channels, 3, stride, false));
                layers.Add(new($"blocks.{block}.pw", StudyLayerKind.Pointwise, block, channels, width, 1, 1, sameShape));
                channels = width;
            }
        }

        layers.Add(new("head", StudyLayerKind.Head, -1, channels, HeadChannels, 1, 1, false));
        return layers;
    }

    /// <summary>
    /// The network of <paramref name="config"/> as a layer graph with seeded random weights, BatchNorm statistics measured
    /// and folded (see the class remarks). The raw draws are the same in every variant for a seed; the folded statistics
    /// differ as the activations between the convolutions do.
    /// </summary>
    public static LayerGraph Build(StudyConfig config, int seed = 0, int numClasses = DefaultClasses)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (!Enum.IsDefined(config.Activation))
        {
            throw new ArgumentOutOfRangeException(nameof(config), config.Activation, "Unknown study activation.");
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(numClasses, 1);

        // Two generators: the convolutions draw from one whatever the variant, the hyper functions from the other.
        var convRng = new Random(seed);
        var hyperRng = new Random(seed + 1);
        var calibrationRng = new Random(seed + 2);
        var calibration = new Tensor(CalibrationBatch, 3, CalibrationSize, CalibrationSize);
        WeightInit.FillNormal(calibrationRng, calibration.Data, 0, 1);
        var graph = new LayerGraph(3);
        int x = LayerGraph.Input;
        int blockInput = x;
        foreach (var layer in Layers)
        {
            if (layer.Kind == StudyLayerKind.Depthwise)
            {
                blockInput = x;
            }

            int fanIn = layer.InChannels / layer.Groups * layer.Kernel * layer.Kernel;
            var weight = new float[(long)layer.OutChannels * fanIn];
            var bias = new float[layer.OutChannels];

            // Raw draws at He scale; Calibrate then folds measured BatchNorm statistics into them.
            WeightInit.FillNormal(convRng, weight, 0, Math.Sqrt(2.0 / fanIn));
            WeightInit.FillNormal(convRng, bias, 0, 0.1);
            var conv = ConvNode.Square(layer.Name + ".conv", x, layer.InChannels, layer.OutChannels, layer.Kernel, layer.Stride, layer.Kernel / 2, layer.Groups, weight, bias);
            x = graph.Add(conv);
            Calibrate(graph, conv, calibration, calibrationRng);

            if (config.SqueezeExcite && layer.Kind == StudyLayerKind.Depthwise)
            {
                // MobileNetV3 / MnasNet place SE on the depthwise output; MobileOne's order is SE, then the activation.
                x = graph.Add(SqueezeExcite(hyperRng, layer.Name + ".se", x, layer.OutChannels));
            }

            if (config.Skip && layer.Residual)
            {
                // ResNet-style: the block input is added before the block's last activation.
                x = graph.Add(new AddNode(layer.Name + ".add", [x, blockInput]));
            }

            x = graph.Add(Activation(config.Activation, hyperRng, layer.Name + ".act", x, layer.OutChannels));
        }

        x = graph.Add(new GlobalAveragePoolNode("pool", x));
        var fc = new float[(long)numClasses * HeadChannels];
        var fcBias = new float[numClasses];
        WeightInit.FillNormal(convRng, fc, 0, Math.Sqrt(1.0 / HeadChannels));
        graph.Add(new LinearNode("fc", x, HeadChannels, numClasses, fc, fcBias));
        return graph;
    }

    /// <summary>
    /// Calibration batch: 4 images of 96x96 give the last stage (3x3) 36 values per channel; with 8 (2 of 64x64) some
    /// channels' variances were so underestimated that the logits at 224 reached the thousands.
    /// </summary>
    private const int CalibrationBatch = 4;

    private const int CalibrationSize = 96;

    /// <summary>
    /// Folds measured BatchNorm statistics into the convolution that is the graph's last node: its output over the
    /// calibration batch (run on the engine, with the layers before it already calibrated) gives a mean and variance
    /// per channel, and the weights and bias become those of conv followed by BN(gamma 1, beta uniform in [-0.1, 0.1]).
    /// Called as each convolution is added, so every compile sees only the layers up to it.
    /// </summary>
    private static void Calibrate(LayerGraph graph, ConvNode conv, Tensor input, Random rng)
    {
        Tensor y;
        using (var model = CompiledModel.Compile(graph))
        {
            y = model.Run(input);
        }

        var moments = WeightInit.ChannelMoments(y);
        int channels = moments.Length;
        int perChannel = conv.Weight.Length / channels;
        for (int c = 0; c < channels; c++)
        {
            var (mean, variance) = moments[c];
            double scale = 1 / Math.Sqrt(variance + 1e-5);
            double beta = (rng.NextDouble() * 0.2) - 0.1;
            var weights = conv.Weight.AsSpan(c * perChannel, perChannel);
            for (int i = 0; i < weights.Length; i++)
            {
                weights[i] = (float)(weights[i] * scale);
            }

            conv.Bias![c] = (float)(((conv.Bias[c] - mean) * scale) + beta);
        }
    }

    private static SqueezeExciteNode SqueezeExcite(Random rng, string name, int input, int channels)
    {
        int reduced = Math.Max(1, channels / SqueezeExciteReduction);
        var (w1, b1, w2, b2) = HyperWeights(rng, channels, reduced, channels);
        return new SqueezeExciteNode(name, input, channels, reduced, w1, b1, w2, b2);
    }

    private static GraphNode Activation(StudyActivation activation, Random rng, string name, int input, int channels)
    {
        switch (activation)
        {
            case StudyActivation.Relu:
                return new ActivationNode(name, input, ActivationKind.Relu);
            case StudyActivation.Gelu:
                return new ActivationNode(name, input, ActivationKind.Gelu);
            case StudyActivation.Silu:
                return new ActivationNode(name, input, ActivationKind.Silu);
            case StudyActivation.DyReluA:
            case StudyActivation.DyReluB:
            {
                var kind = activation == StudyActivation.DyReluA ? DyReluKind.A : DyReluKind.B;
                int reduced = Math.Max(1, channels / DyReluReduction);
                int outputs = kind == DyReluKind.A ? 2 * DyReluPieces : 2 * DyReluPieces * channels;
                var (w1, b1, w2, b2) = HyperWeights(rng, channels, reduced, outputs);
                return new DyReluNode(name, input, channels, reduced, kind, DyReluPieces, w1, b1, w2, b2);
            }

            case StudyActivation.DynamicShiftMax:
            {
                int reduced = Math.Max(4, channels / ShiftMaxReduction);
                var (w1, b1, w2, b2) = HyperWeights(rng, channels, reduced, ShiftMaxK * ShiftMaxJ * channels);
                return new DynamicShiftMaxNode(name, input, channels, ShiftMaxGroups, ShiftMaxJ, ShiftMaxK, reduced, w1, b1, w2, b2, ShiftMaxLambda);
            }

            default:
                throw new ArgumentOutOfRangeException(nameof(activation), activation, null);
        }
    }

    /// <summary>
    /// A hyper function's two FCs: fan-in scaled first layer, a small second layer, so the dynamic coefficients spread
    /// around their initial values (the tests see a real nonlinearity) without driving 30 layers off scale.
    /// </summary>
    private static (float[] W1, float[] B1, float[] W2, float[] B2) HyperWeights(Random rng, int channels, int reduced, int outputs)
    {
        var w1 = new float[(long)reduced * channels];
        var b1 = new float[reduced];
        var w2 = new float[(long)outputs * reduced];
        var b2 = new float[outputs];
        WeightInit.FillNormal(rng, w1, 0, Math.Sqrt(1.0 / channels));
        WeightInit.FillNormal(rng, b1, 0, 0.1);
        WeightInit.FillNormal(rng, w2, 0, 0.1 * Math.Sqrt(1.0 / reduced));
        WeightInit.FillNormal(rng, b2, 0, 0.1);
        return (w1, b1, w2, b2);
    }
}
