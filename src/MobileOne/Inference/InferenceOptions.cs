using MobileOne.Kernels;
using MobileOne.Kernels.Conv;

namespace MobileOne.Inference;

public sealed record InferenceOptions
{
    /// <summary>Threads that cooperate on one inference (the calling thread included).</summary>
    public int Threads { get; init; } = 1;

    public ConvAlgorithm ConvAlgorithm { get; init; } = ConvAlgorithm.Auto;

    public IsaLevel Isa { get; init; } = IsaLevel.Auto;
}
