namespace MobileOne.Inference;

/// <summary>What a step of the compiled plan computes.</summary>
public enum EngineLayerKind
{
    /// <summary>NCHW input to NHWC (only with a general convolution algorithm; the stem kernel reads NCHW itself).</summary>
    InputLayout,

    /// <summary>A dense convolution of the NCHW input, run as a GEMM over its patches.</summary>
    Stem,

    /// <summary>Depthwise convolution (the unrolled 3x3 kernel, or the any-size kernel that can accumulate).</summary>
    Depthwise,

    /// <summary>Pointwise 1x1 convolution, a GEMM with pixels as rows.</summary>
    Pointwise,

    /// <summary>A dense KxK convolution of an NHWC value (patch GEMM), or one run by a general algorithm (direct, im2col, im2win).</summary>
    Convolution,

    /// <summary>Squeeze-excite: channel means, the gate, and the gating with its epilogue.</summary>
    SqueezeExcite,

    /// <summary>A sum of values that no convolution could accumulate in its epilogue.</summary>
    Add,

    /// <summary>An activation whose input has other readers (otherwise it is an epilogue).</summary>
    Activation,

    /// <summary>Max pooling.</summary>
    MaxPool,

    /// <summary>Average pooling.</summary>
    AveragePool,

    /// <summary>Global average pooling.</summary>
    GlobalAveragePool,

    /// <summary>A fully connected layer (the classifier).</summary>
    Linear,

    /// <summary>Softmax over the channels of each pixel (a classifier's probabilities).</summary>
    Softmax,

    /// <summary>Values joined along channels.</summary>
    Concat,

    /// <summary>Zero padding of the borders that no convolution or pooling could take as its own padding.</summary>
    Pad,

    /// <summary>A convolution with a sparse (CSR) weight, the sparse part of a compressed layer (scalar kernel).</summary>
    SparseConvolution,
}

/// <summary>One layer of a compiled plan, in execution order.</summary>
/// <param name="Name">timm's prefix of the layer ("stem", "stages.1.0", "stages.2.9.attn", "head.fc").</param>
/// <param name="Kind">What the layer computes.</param>
/// <param name="InChannels">Channels it reads.</param>
/// <param name="OutChannels">Channels it writes.</param>
/// <param name="KernelSize">Kernel size of a convolution or pooling (1 otherwise).</param>
/// <param name="Stride">Stride of a convolution or pooling (1 otherwise).</param>
/// <param name="Algorithm">The kernel that runs it ("gemm-6x64", "depthwise-3x3", "im2col", ...).</param>
public sealed record EngineLayer(string Name, EngineLayerKind Kind, int InChannels, int OutChannels, int KernelSize, int Stride, string Algorithm);

/// <summary>A layer with the sizes it sees for one input resolution.</summary>
/// <param name="Layer">The plan's layer.</param>
/// <param name="InHeight">Input height.</param>
/// <param name="InWidth">Input width.</param>
/// <param name="OutHeight">Output height.</param>
/// <param name="OutWidth">Output width.</param>
/// <param name="MultiplyAccumulates">Per image.</param>
public sealed record EngineLayerShape(EngineLayer Layer, int InHeight, int InWidth, int OutHeight, int OutWidth, long MultiplyAccumulates);
