namespace MobileOne.Inference;

/// <summary>What a step of the compiled plan computes.</summary>
public enum EngineLayerKind
{
    /// <summary>NCHW input to NHWC (only with a general convolution algorithm; the stem kernel reads NCHW itself).</summary>
    InputLayout,

    /// <summary>The dense stem convolution, run as a GEMM over gathered patches.</summary>
    Stem,

    /// <summary>Depthwise 3x3 convolution (stride 1 or 2).</summary>
    Depthwise,

    /// <summary>Pointwise 1x1 convolution, a GEMM with pixels as rows.</summary>
    Pointwise,

    /// <summary>A convolution run by a general algorithm (direct, im2col, im2win).</summary>
    Convolution,

    /// <summary>Squeeze-excite: channel means, the gate, and the gated ReLU.</summary>
    SqueezeExcite,

    GlobalAveragePool,

    Linear,
}

/// <summary>One layer of a compiled plan, in execution order.</summary>
/// <param name="Name">timm's prefix of the layer ("stem", "stages.1.0", "stages.2.9.attn", "head.fc").</param>
/// <param name="Algorithm">The kernel that runs it ("gemm-6x64", "depthwise-3x3", "im2col", ...).</param>
public sealed record EngineLayer(string Name, EngineLayerKind Kind, int InChannels, int OutChannels, int KernelSize, int Stride, string Algorithm);

/// <summary>A layer with the sizes it sees for one input resolution.</summary>
/// <param name="MultiplyAccumulates">Per image.</param>
public sealed record EngineLayerShape(EngineLayer Layer, int InHeight, int InWidth, int OutHeight, int OutWidth, long MultiplyAccumulates);
