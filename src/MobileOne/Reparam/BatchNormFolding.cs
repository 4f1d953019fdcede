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
/// W' = W * gamma / std (per output channel) and b' = beta - mean * gamma / std. Computed in double:
/// the result is then within one float32 rounding of the exact fold.
/// </summary>
internal static class BatchNormFolding
{
    /// <summary>Folds <paramref name="bn"/> into an OIHW kernel whose first dimension is the BN's channels.</summary>
    public static FusedKernel Fold(ReadOnlySpan<float> kernel, int[] kernelShape, BatchNormStats bn)
    {
        int outChannels = kernelShape[0];
        if (bn.Channels != outChannels || kernel.Length % outChannels != 0)
        {
            throw new ArgumentException($"BatchNorm over {bn.Channels} channels cannot fold into a kernel with {outChannels} output channels.");
        }

        int perChannel = kernel.Length / outChannels;
        var weight = new double[kernel.Length];
        var bias = new double[outChannels];
        for (int o = 0; o < outChannels; o++)
        {
            double t = bn.Gamma[o] / bn.Std(o);
            for (int i = 0; i < perChannel; i++)
            {
                weight[(o * perChannel) + i] = kernel[(o * perChannel) + i] * t;
            }

            bias[o] = bn.Beta[o] - (bn.Mean[o] * t);
        }

        return new FusedKernel(kernelShape, weight, bias);
    }
}
