namespace MobileOne.Kernels.Gemm;

/// <summary>
/// How one output pixel's reduction is laid out in memory: <see cref="OuterCount"/> x <see cref="InnerCount"/>
/// contiguous segments of <see cref="SegmentLength"/> values. The three algorithms differ exactly here:
/// im2col and im2win (groups 1) read one segment of Kh*Kw*C; the direct kernel reads a segment of Kw*C per
/// kernel row, <see cref="OuterStrideA"/> = W*C apart in the image; grouped layers read C_in/g values per tap.
/// A strides are in floats; B strides are in reduction steps (rows of the packed weights, or depthwise taps),
/// so one loop serves every panel width.
/// </summary>
internal readonly record struct ReductionLoop(
    int OuterCount,
    nint OuterStrideA,
    nint OuterStrideB,
    int InnerCount,
    nint InnerStrideA,
    nint InnerStrideB,
    int SegmentLength)
{
    public static ReductionLoop Contiguous(int length) => new(1, 0, 0, 1, 0, 0, length);
}
