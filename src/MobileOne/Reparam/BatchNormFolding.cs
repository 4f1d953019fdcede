using MobileOne.Nn;

namespace MobileOne.Reparam;

/// <summary>BatchNorm statistics and affine terms, as the folding math needs them.</summary>
internal readonly record struct BatchNormStats(float[] Gamma, float[] Beta, float[] Mean, float[] Var, double Eps)
{
    public static BatchNormStats From(BatchNorm2d bn) =>
        new(bn.Weight.Value.Data, bn.Bias.Value.Data, bn.RunningMean.Data, bn.RunningVar.Data, bn.Eps);

    public int Channels => Gamma.Length;

    /// <summary>sqrt(var + eps) of channel <paramref name="channel"/>, in double: what the fold divides by.</summary>
    public double Std(int channel) => Math.Sqrt(Var[channel] + Eps);
}

/// <summary>
/// Folds an eval-mode BatchNorm into the convolution before it: with std = sqrt(var + eps),
/// W' = W * gamma / std (per output channel) and b' = (b - mean) * gamma / std + beta, b the convolution's bias
/// (0 when it has none). Computed in double: the result is then within one float32 rounding of the exact fold.
/// The one implementation: fusion (BlockFusion, RepVggFusion) and the engine's lowering of a graph both call it.
/// </summary>
internal static class BatchNormFolding
{
    /// <summary>Folds <paramref name="bn"/> into an OIHW kernel whose first dimension is the BN's channels.</summary>
    public static FusedKernel Fold(ReadOnlySpan<float> kernel, int[] kernelShape, BatchNormStats bn) =>
        Fold(kernel, kernelShape, bn, ReadOnlySpan<float>.Empty);

    /// <summary>
    /// Folds <paramref name="bn"/> into an OIHW kernel with a per-output-channel <paramref name="bias"/> (empty: none).
    /// A zero bias gives the same values as none: (0 - mean) * t + beta is beta - mean * t in IEEE arithmetic.
    /// </summary>
    public static FusedKernel Fold(ReadOnlySpan<float> kernel, int[] kernelShape, BatchNormStats bn, ReadOnlySpan<float> bias)
    {
        int outChannels = kernelShape[0];
        if (bn.Channels != outChannels || kernel.Length % outChannels != 0)
        {
            throw new ArgumentException($"BatchNorm over {bn.Channels} channels cannot fold into a kernel with {outChannels} output channels.");
        }

        if (!bias.IsEmpty && bias.Length != outChannels)
        {
            throw new ArgumentException($"A bias of {bias.Length} values cannot fold into a kernel with {outChannels} output channels.");
        }

        int perChannel = kernel.Length / outChannels;
        var weight = new double[kernel.Length];
        var foldedBias = new double[outChannels];
        for (int o = 0; o < outChannels; o++)
        {
            double t = bn.Gamma[o] / bn.Std(o);
            for (int i = 0; i < perChannel; i++)
            {
                weight[(o * perChannel) + i] = kernel[(o * perChannel) + i] * t;
            }

            foldedBias[o] = (((bias.IsEmpty ? 0.0 : bias[o]) - bn.Mean[o]) * t) + bn.Beta[o];
        }

        return new FusedKernel(kernelShape, weight, foldedBias);
    }
}
