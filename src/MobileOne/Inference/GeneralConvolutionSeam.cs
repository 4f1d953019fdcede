using MobileOne.Kernels;
using MobileOne.Kernels.Conv;

namespace MobileOne.Inference;

/// <summary>
/// What the engine needs from a general NHWC convolution (the direct / im2col / im2win algorithms selected by
/// <see cref="InferenceOptions.ConvAlgorithm"/>): the same members as <c>MobileOne.Kernels.Conv.IConvolutionKernel</c>.
/// </summary>
internal interface IGeneralConvolution
{
    /// <summary>Scratch floats needed for a band of that many output rows.</summary>
    long WorkspaceFloats(int outputRows);

    /// <summary>Writes output rows [outRowStart, outRowEnd) of one NHWC image (bias included; ReLU if asked); allocation-free.</summary>
    void Run(ReadOnlySpan<float> imageNhwc, Span<float> outputNhwc, Span<float> workspace, int outRowStart, int outRowEnd, bool relu);
}

/// <summary>Creates a general convolution kernel; the weight is OIHW, the geometry's Batch is ignored.</summary>
internal delegate IGeneralConvolution GeneralConvolutionFactory(ConvAlgorithm algorithm, ConvGeometry geometry, ReadOnlySpan<float> weightOihw, ReadOnlySpan<float> bias);

/// <summary>
/// SEAM, to be connected when src/MobileOne/Kernels/Conv (ConvolutionKernels, IConvolutionKernel) lands:
/// replace the body of <see cref="Create"/> with
/// <c>return new ConvolutionKernelAdapter(ConvolutionKernels.Create(algorithm, geometry, weightOihw, bias));</c>
/// where the adapter forwards <c>WorkspaceFloats</c> and <c>Run</c> one to one (or let IConvolutionKernel
/// extend IGeneralConvolution). Tests pass their own factory to the internal CompiledModel.Compile overload to
/// check the engine's plumbing (partitioning, workspaces, ReLU and squeeze-excite around the call).
/// </summary>
internal static class GeneralConvolutions
{
    public static IGeneralConvolution Create(ConvAlgorithm algorithm, ConvGeometry geometry, ReadOnlySpan<float> weightOihw, ReadOnlySpan<float> bias)
    {
        throw new NotSupportedException(
            $"InferenceOptions.ConvAlgorithm = {algorithm} needs the general convolution kernels (MobileOne.Kernels.Conv.ConvolutionKernels), which this build does not contain yet; use ConvAlgorithm.Auto.");
    }
}
