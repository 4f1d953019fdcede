namespace MobileOne.Kernels.Conv;

/// <summary>
/// One convolution layer with its weights prepacked, run over NHWC images one output-row band at a time so
/// a caller can split an image across threads (each band with its own workspace).
/// </summary>
public interface IConvolutionKernel
{
    /// <summary>The algorithm this kernel runs; never <see cref="ConvAlgorithm.Auto"/>, which is resolved when the kernel is created.</summary>
    ConvAlgorithm Algorithm { get; }

    /// <summary>The layer's shape; <see cref="ConvGeometry.Batch"/> is ignored (one image per call).</summary>
    ConvGeometry Geometry { get; }

    /// <summary>Scratch floats <see cref="Run"/> needs for a band of <paramref name="outputRows"/> output rows.</summary>
    long WorkspaceFloats(int outputRows);

    /// <summary>
    /// Computes output rows [<paramref name="outRowStart"/>, <paramref name="outRowEnd"/>) of one image, bias
    /// added and optionally ReLU applied. <paramref name="imageNhwc"/> is the whole input [H][W][C_in] and
    /// <paramref name="outputNhwc"/> the whole output [Ho][Wo][C_out]; only the band's rows are written.
    /// Allocates nothing.
    /// </summary>
    void Run(ReadOnlySpan<float> imageNhwc, Span<float> outputNhwc, Span<float> workspace, int outRowStart, int outRowEnd, bool relu);
}
