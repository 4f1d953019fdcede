namespace MobileOne.Kernels.Conv;

/// <summary>Creates a prepacked convolution kernel for one layer.</summary>
public static class ConvolutionKernels
{
    /// <summary>
    /// Packs <paramref name="weightOihw"/> ([C_out][C_in/g][Kh][Kw]) and <paramref name="bias"/> (C_out floats,
    /// or empty for none) for <paramref name="algorithm"/>; <see cref="ConvAlgorithm.Auto"/> resolves with
    /// <see cref="Choose"/>. Uses the best instruction set the CPU runs.
    /// </summary>
    public static IConvolutionKernel Create(ConvAlgorithm algorithm, ConvGeometry geometry, ReadOnlySpan<float> weightOihw, ReadOnlySpan<float> bias) =>
        Create(algorithm, geometry, weightOihw, bias, IsaLevel.Auto);

    /// <summary>
    /// As above with an instruction set: AVX-512 runs Vector512, AVX2 Vector256; one the CPU lacks throws
    /// <see cref="NotSupportedException"/>, as the engine does.
    /// </summary>
    public static ConvolutionKernel Create(ConvAlgorithm algorithm, ConvGeometry geometry, ReadOnlySpan<float> weightOihw, ReadOnlySpan<float> bias, IsaLevel isa) =>
        Create(algorithm, geometry, weightOihw, bias, Isa.Resolve(isa, "Convolution ISA", nameof(isa)));

    internal static ConvolutionKernel Create(ConvAlgorithm algorithm, ConvGeometry geometry, ReadOnlySpan<float> weightOihw, ReadOnlySpan<float> bias, Isa isa)
    {
        geometry.Validate();
        long expected = (long)geometry.OutChannels * geometry.PatchSize;
        if (weightOihw.Length != expected)
        {
            throw new ArgumentException(
                $"Convolution weight has {weightOihw.Length} floats; [{geometry.OutChannels}][{geometry.InChannelsPerGroup}][{geometry.KernelHeight}][{geometry.KernelWidth}] (OIHW) needs {expected}.",
                nameof(weightOihw));
        }

        if (!bias.IsEmpty && bias.Length != geometry.OutChannels)
        {
            throw new ArgumentException($"Convolution bias has {bias.Length} floats; expected {geometry.OutChannels} (one per output channel) or none.", nameof(bias));
        }

        // AVX-512, AVX2 and scalar paths: 128-bit vectors alone run as scalar.
        Isa resolved = isa.Engine;
        return (algorithm == ConvAlgorithm.Auto ? Choose(geometry) : algorithm) switch
        {
            ConvAlgorithm.Direct => new DirectConvolution(geometry, weightOihw, bias, resolved),
            ConvAlgorithm.Im2Col => new Im2ColConvolution(geometry, weightOihw, bias, resolved),
            ConvAlgorithm.Im2Win => new Im2WinConvolution(geometry, weightOihw, bias, resolved),
            _ => throw new ArgumentException($"Unknown convolution algorithm {(int)algorithm}; expected Auto, Direct, Im2Col or Im2Win.", nameof(algorithm)),
        };
    }

    /// <summary>
    /// The algorithm <see cref="ConvAlgorithm.Auto"/> runs, from bench-conv's measurements at batch 1
    /// (docs/conv-algorithms.md): im2col for 1x1 layers (no unfold at stride 1 without padding: the image is
    /// the GEMM operand, and its tiles run across output rows), direct for everything else (dense, grouped and
    /// depthwise KxK): it needs no workspace, pays for no transform, and with its edge columns tiled down the
    /// image it matched or beat im2win and im2col on every stem and dense 3x3 layer measured but one.
    /// </summary>
    public static ConvAlgorithm Choose(in ConvGeometry geometry) =>
        geometry.KernelHeight == 1 && geometry.KernelWidth == 1 ? ConvAlgorithm.Im2Col : ConvAlgorithm.Direct;

    /// <summary>One input and one output channel per group (<see cref="ConvGeometry.IsDepthwise"/> with any C).</summary>
    internal static bool IsDepthwise(in ConvGeometry g) => g.InChannelsPerGroup == 1 && g.OutChannelsPerGroup == 1;

    internal static int CheckRows(int outputRows, in ConvGeometry g) =>
        outputRows >= 0 && outputRows <= g.OutHeight
            ? outputRows
            : throw new ArgumentException($"A band has 0 to {g.OutHeight} output rows; got {outputRows}.", nameof(outputRows));
}
