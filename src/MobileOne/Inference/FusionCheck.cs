using MobileOne.Models;
using MobileOne.Reparam;
using MobileOne.Tensors;

namespace MobileOne.Inference;

/// <summary>Outcome of comparing a train-time network with its fused form on one input.</summary>
public sealed record FusionCheckResult(double MaxAbsDifference, double MaxAbsLogit, double Tolerance, int Batch, int ImageSize, int Seed)
{
    /// <summary>The largest difference relative to the largest logit (absolute when the logits are all zero).</summary>
    public double RelativeDifference => MaxAbsLogit > 0 ? MaxAbsDifference / MaxAbsLogit : MaxAbsDifference;

    /// <summary>Whether the difference is within the tolerance.</summary>
    public bool Passed => MaxAbsDifference <= Tolerance * Math.Max(1.0, MaxAbsLogit);
}

/// <summary>
/// Fuses a network and measures the largest logit difference on a seeded random normal input, both forms run
/// by the engine (the train-time one as its multi-branch graph). The tolerance is relative to the largest logit
/// magnitude (absolute when logits are below 1), because float32 fusion error scales with the activations.
/// </summary>
public static class FusionCheck
{
    /// <summary>The default relative tolerance, 1e-4.</summary>
    public const double DefaultTolerance = 1e-4;

    /// <summary>Fuses <paramref name="network"/>, runs both forms on a seeded batch x 3 x size x size normal input and compares the logits.</summary>
    public static FusionCheckResult Run(ClassifierNetwork network, int imageSize = 224, int batch = 2, int seed = 0, double tolerance = DefaultTolerance, int threads = 1)
    {
        ArgumentNullException.ThrowIfNull(network);
        if (!network.Reparameterizable)
        {
            throw new ArgumentException($"{network.Architecture} has no fused form: only MobileOne and RepVGG are re-parameterizable.");
        }

        if (network.IsFused)
        {
            throw new ArgumentException("The network is already fused; a fused-vs-unfused check needs the train-time (unfused) checkpoint.");
        }

        var input = new Tensor(batch, network.InChans, imageSize, imageSize);
        WeightInit.FillNormal(new Random(seed), input.Data, 0, 1);
        var options = new InferenceOptions { Threads = threads };
        using var unfusedEngine = CompiledModel.Compile(network, options);
        using var fusedEngine = CompiledModel.Compile(Reparameterizer.Fuse(network), options);
        var expected = unfusedEngine.Run(input);
        var actual = fusedEngine.Run(input);
        double maxDiff = 0, maxLogit = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            maxDiff = Math.Max(maxDiff, Math.Abs((double)expected.Data[i] - actual.Data[i]));
            maxLogit = Math.Max(maxLogit, Math.Abs(expected.Data[i]));
        }

        return new FusionCheckResult(maxDiff, maxLogit, tolerance, batch, imageSize, seed);
    }
}
