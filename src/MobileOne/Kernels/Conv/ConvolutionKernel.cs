namespace MobileOne.Kernels.Conv;

/// <summary>
/// What every algorithm shares: argument checks with messages that say what was expected, pinning the spans
/// once per call, and the memory accounting the benchmark reports. Subclasses see raw pointers only.
/// </summary>
public abstract unsafe class ConvolutionKernel : IConvolutionKernel
{
    private protected ConvolutionKernel(ConvAlgorithm algorithm, ConvGeometry geometry, Isa isa)
    {
        Algorithm = algorithm;
        Geometry = geometry;
        InstructionSet = isa;
    }

    /// <inheritdoc/>
    public ConvAlgorithm Algorithm { get; }

    /// <inheritdoc/>
    public ConvGeometry Geometry { get; }

    /// <summary>The instruction set the kernel was packed for and runs with (Auto resolved).</summary>
    public IsaLevel Isa => InstructionSet.Level;

    /// <summary>AVX-512 (Vector512), AVX2 (Vector256) or scalar.</summary>
    private protected Kernels.Isa InstructionSet { get; }

    /// <summary>Floats of the kernel's own copy of the weights and bias, in its packed layout (padding included).</summary>
    public abstract long PackedWeightFloats { get; }

    /// <inheritdoc/>
    public abstract long WorkspaceFloats(int outputRows);

    /// <summary>
    /// Computes output rows [<paramref name="outRowStart"/>, <paramref name="outRowEnd"/>) of one NHWC image, as
    /// <see cref="IConvolutionKernel.Run"/> says, after checking every span's length and the band against <see cref="Geometry"/>
    /// (an <see cref="ArgumentException"/> says what was expected). The calling thread does all the work.
    /// </summary>
    public void Run(ReadOnlySpan<float> imageNhwc, Span<float> outputNhwc, Span<float> workspace, int outRowStart, int outRowEnd, bool relu)
    {
        ConvGeometry g = Geometry;
        long inputFloats = (long)g.InHeight * g.InWidth * g.InChannels;
        long outputFloats = (long)g.OutHeight * g.OutWidth * g.OutChannels;
        if (imageNhwc.Length < inputFloats)
        {
            throw new ArgumentException(
                $"{Algorithm} convolution: the input image has {imageNhwc.Length} floats; {g.InHeight}x{g.InWidth}x{g.InChannels} (NHWC) needs {inputFloats}.",
                nameof(imageNhwc));
        }

        if (outputNhwc.Length < outputFloats)
        {
            throw new ArgumentException(
                $"{Algorithm} convolution: the output has {outputNhwc.Length} floats; {g.OutHeight}x{g.OutWidth}x{g.OutChannels} (NHWC) needs {outputFloats}.",
                nameof(outputNhwc));
        }

        if (outRowStart < 0 || outRowEnd > g.OutHeight || outRowStart > outRowEnd)
        {
            throw new ArgumentException(
                $"{Algorithm} convolution: output rows [{outRowStart}, {outRowEnd}) are not a band of [0, {g.OutHeight}).", nameof(outRowStart));
        }

        long needed = WorkspaceFloats(outRowEnd - outRowStart);
        if (workspace.Length < needed)
        {
            throw new ArgumentException(
                $"{Algorithm} convolution: the workspace has {workspace.Length} floats; {outRowEnd - outRowStart} output rows need {needed}.",
                nameof(workspace));
        }

        if (outRowStart == outRowEnd)
        {
            return;
        }

        fixed (float* image = imageNhwc)
        fixed (float* output = outputNhwc)
        fixed (float* scratch = workspace)
        {
            RunBand(image, output, scratch, outRowStart, outRowEnd, relu);
        }
    }

    private protected abstract void RunBand(float* image, float* output, float* workspace, int rowStart, int rowEnd, bool relu);
}
