namespace MobileOne.Kernels;

/// <summary>
/// The shape arithmetic of a 2-D convolution over NCHW input with an OIHW weight, in one place so every
/// kernel (forward now, backward later) agrees on output sizes and group slicing.
/// </summary>
public readonly record struct ConvGeometry(
    int Batch,
    int InChannels,
    int InHeight,
    int InWidth,
    int OutChannels,
    int KernelHeight,
    int KernelWidth,
    int StrideH,
    int StrideW,
    int PadH,
    int PadW,
    int Groups)
{
    /// <summary>Output rows: (InHeight + 2 * PadH - KernelHeight) / StrideH + 1, rounded down.</summary>
    public int OutHeight => ((InHeight + (2 * PadH) - KernelHeight) / StrideH) + 1;

    /// <summary>Output columns: (InWidth + 2 * PadW - KernelWidth) / StrideW + 1, rounded down.</summary>
    public int OutWidth => ((InWidth + (2 * PadW) - KernelWidth) / StrideW) + 1;

    /// <summary>Input channels each group reads: C_in / g.</summary>
    public int InChannelsPerGroup => InChannels / Groups;

    /// <summary>Output channels each group writes: C_out / g.</summary>
    public int OutChannelsPerGroup => OutChannels / Groups;

    /// <summary>Rows of the patch matrix for one group: C_in/g * Kh * Kw.</summary>
    public int PatchSize => InChannelsPerGroup * KernelHeight * KernelWidth;

    /// <summary>Pixels of one output channel: OutHeight * OutWidth.</summary>
    public int OutPlane => OutHeight * OutWidth;

    /// <summary>Pixels of one input channel: InHeight * InWidth.</summary>
    public int InPlane => InHeight * InWidth;

    /// <summary>One input and one output channel per group with g = C_in = C_out: the layers <see cref="Depthwise.DepthwiseConvolution"/> runs.</summary>
    public bool IsDepthwise => Groups == InChannels && Groups == OutChannels;

    /// <summary>A 1x1, stride 1, unpadded convolution reads the input as the GEMM operand directly.</summary>
    public bool IsPointwiseIdentityLayout =>
        KernelHeight == 1 && KernelWidth == 1 && StrideH == 1 && StrideW == 1 && PadH == 0 && PadW == 0;

    /// <summary>Multiply-adds of the forward pass over the whole batch: Batch * C_out * <see cref="PatchSize"/> * <see cref="OutPlane"/>.</summary>
    public long MultiplyAccumulates => (long)Batch * OutChannels * PatchSize * OutPlane;

    /// <summary>A geometry with a square kernel and the same stride and padding along both axes (the input may be any height and width).</summary>
    public static ConvGeometry Square(int batch, int inChannels, int height, int width, int outChannels, int kernel, int stride, int padding, int groups) =>
        new(batch, inChannels, height, width, outChannels, kernel, kernel, stride, stride, padding, padding, groups);

    /// <summary>Throws with a description of what is inconsistent; kernels rely on these facts.</summary>
    public void Validate()
    {
        if (Batch < 0 || InChannels <= 0 || InHeight <= 0 || InWidth <= 0 || OutChannels <= 0)
        {
            throw new ArgumentException($"Convolution sizes must be positive (batch {Batch}, channels {InChannels}->{OutChannels}, input {InHeight}x{InWidth}).");
        }

        if (KernelHeight <= 0 || KernelWidth <= 0 || StrideH <= 0 || StrideW <= 0 || PadH < 0 || PadW < 0)
        {
            throw new ArgumentException($"Invalid kernel {KernelHeight}x{KernelWidth}, stride {StrideH}x{StrideW} or padding {PadH}x{PadW}.");
        }

        if (Groups <= 0 || InChannels % Groups != 0 || OutChannels % Groups != 0)
        {
            throw new ArgumentException($"Groups {Groups} must divide both input channels {InChannels} and output channels {OutChannels}.");
        }

        if (InHeight + (2 * PadH) < KernelHeight || InWidth + (2 * PadW) < KernelWidth)
        {
            throw new ArgumentException($"Input {InHeight}x{InWidth} with padding {PadH}x{PadW} is smaller than the kernel {KernelHeight}x{KernelWidth}.");
        }
    }
}
