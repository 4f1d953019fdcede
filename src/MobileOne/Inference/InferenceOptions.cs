using MobileOne.Kernels.Conv;

namespace MobileOne.Inference;

/// <summary>Instruction set the engine's kernels use; Auto picks the best the CPU supports.</summary>
public enum IsaLevel
{
    Auto,
    Avx512,
    Avx2,
    Scalar,
}

public sealed record InferenceOptions
{
    /// <summary>Threads that cooperate on one inference (the calling thread included).</summary>
    public int Threads { get; init; } = 1;

    public ConvAlgorithm ConvAlgorithm { get; init; } = ConvAlgorithm.Auto;

    public IsaLevel Isa { get; init; } = IsaLevel.Auto;
}
