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
/// The general NHWC kernels of <see cref="ConvolutionKernels"/> (direct, im2col, im2win) behind the engine's
/// interface. Tests pass their own factory to the internal CompiledModel.Compile overload to check the engine's
/// plumbing (partitioning, workspaces, ReLU and squeeze-excite around the call).
/// </summary>
internal static class GeneralConvolutions
{
    /// <summary>A kernel for the engine's instruction set.</summary>
    public static IGeneralConvolution Create(ConvAlgorithm algorithm, ConvGeometry geometry, ReadOnlySpan<float> weightOihw, ReadOnlySpan<float> bias, Isa isa) =>
        new KernelAdapter(ConvolutionKernels.Create(algorithm, geometry, weightOihw, bias, isa));

    private sealed class KernelAdapter(IConvolutionKernel kernel) : IGeneralConvolution
    {
        public long WorkspaceFloats(int outputRows) => kernel.WorkspaceFloats(outputRows);

        public void Run(ReadOnlySpan<float> imageNhwc, Span<float> outputNhwc, Span<float> workspace, int outRowStart, int outRowEnd, bool relu) =>
            kernel.Run(imageNhwc, outputNhwc, workspace, outRowStart, outRowEnd, relu);
    }
}
