using MobileOne.Kernels;
using MobileOne.Kernels.Conv;

namespace MobileOne.Inference;

/// <summary>Settings of a compiled model: threads, convolution algorithm and instruction set.</summary>
public sealed record InferenceOptions
{
    /// <summary>Threads that cooperate on one inference (the calling thread included).</summary>
    public int Threads { get; init; } = 1;

    /// <summary>The algorithm for general (dense, non-pointwise) convolutions; Auto picks per layer.</summary>
    public ConvAlgorithm ConvAlgorithm { get; init; } = ConvAlgorithm.Auto;

    /// <summary>The instruction set of the kernels; Auto takes the best the CPU has.</summary>
    public IsaLevel Isa { get; init; } = IsaLevel.Auto;
}
