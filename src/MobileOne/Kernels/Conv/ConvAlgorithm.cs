namespace MobileOne.Kernels.Conv;

/// <summary>How a general convolution is computed; <see cref="Auto"/> lets the engine pick per layer.</summary>
public enum ConvAlgorithm
{
    /// <summary>Pick per layer with <see cref="ConvolutionKernels.Choose"/>: im2col for 1x1 layers, direct for the rest.</summary>
    Auto,
    /// <see cref="DirectConvolution"/>: taps read straight from the NHWC image, no copy and no workspace.
    Direct,
    /// <see cref="Im2ColConvolution"/>: a band unfolded into one patch row per output pixel ([ky][kx][C_in]), then a GEMM.
    Im2Col,
    /// <see cref="Im2WinConvolution"/>: the input rows of each output row stored column-interleaved, so neighbouring windows overlap instead of being copied.
    Im2Win,
}
