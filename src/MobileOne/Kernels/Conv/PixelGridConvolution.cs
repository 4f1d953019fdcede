using System.Runtime.Intrinsics;
using MobileOne.Kernels.Gemm;
using MobileOne.Kernels.Depthwise;

namespace MobileOne.Kernels.Conv;

/// <summary>
/// What im2col and im2win share: both lay each output pixel's reduction out as one row of a <see cref="PixelGrid"/>
/// (taps in <see cref="TapOrder"/>, channels innermost) and multiply those rows with the weights packed in the same
/// order, as GEMM panels or, for depthwise layers, tap vectors. They differ only in how a band's grid is built.
/// </summary>
internal abstract unsafe class PixelGridConvolution : ConvolutionKernel
{
    private readonly PanelWeights? panels;
    private readonly DepthwiseTapWeights? depthwise;
    private readonly ReductionLoop loop;

    private protected PixelGridConvolution(ConvAlgorithm algorithm, in ConvGeometry g, ReadOnlySpan<float> weightOihw, ReadOnlySpan<float> bias, Isa isa, TapOrder order)
        : base(algorithm, g, isa)
    {
        int taps = g.KernelHeight * g.KernelWidth;
        if (ConvolutionKernels.IsDepthwise(g))
        {
            depthwise = new DepthwiseTapWeights(weightOihw, bias, g.InChannels, g.KernelHeight, g.KernelWidth, g.InChannels, order);
            loop = new ReductionLoop(1, 0, 0, taps, g.InChannels, 1, 0);
        }
        else
        {
            panels = new PanelWeights(weightOihw, bias, g, isa, order);
            loop = g.Groups == 1
                ? ReductionLoop.Contiguous(taps * g.InChannels)
                : new ReductionLoop(1, 0, 0, taps, g.InChannels, g.InChannelsPerGroup, g.InChannelsPerGroup);
        }
    }

    public override long PackedWeightFloats => panels?.Floats ?? depthwise!.Floats;

    /// <summary>The <paramref name="pixels"/> output pixels of <paramref name="grid"/> into <paramref name="band"/> (NHWC).</summary>
    private protected void Multiply(in PixelGrid grid, int pixels, float* band, bool relu)
    {
        switch (InstructionSet)
        {
            case Kernels.Isa.Avx512: Multiply<Vector512<float>, Lanes512>(grid, pixels, band, relu); break;
            case Kernels.Isa.Avx2: Multiply<Vector256<float>, Lanes256>(grid, pixels, band, relu); break;
            default: Multiply<float, Lanes1>(grid, pixels, band, relu); break;
        }
    }

    private void Multiply<TV, TL>(in PixelGrid grid, int pixels, float* band, bool relu)
        where TV : struct
        where TL : struct, ILanes<TV>
    {
        ConvGeometry g = Geometry;
        if (depthwise is not null)
        {
            PixelKernels.Depthwise<TV, TL>(grid, pixels, depthwise, g.InChannels, loop, band, relu);
        }
        else
        {
            PixelKernels.Gemm<TV, TL>(grid, pixels, panels!, loop, g.InChannelsPerGroup, band, g.OutChannels, relu);
        }
    }
}
