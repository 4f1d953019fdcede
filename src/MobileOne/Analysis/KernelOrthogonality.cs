namespace MobileOne.Analysis;

/// <summary>
/// How far a convolution is from orthogonal, as "Orthogonal Convolutional Neural Networks" (Wang et al., CVPR 2020)
/// measures it: the rows of the convolution matrix are orthonormal (K K^T = I) exactly when the kernel convolved
/// with itself, Conv(K, K) with stride S and padding P = floor((k - 1) / S) * S, is the identity tensor I_r0 (1 at
/// the centre for o = o', 0 elsewhere). The deviation is ||Conv(K, K) - I_r0||_F, computed on the kernel alone,
/// so it does not depend on the input size. With groups, only kernels of the same group meet (other pairs read
/// disjoint input channels and are orthogonal by construction); a depthwise kernel is compared with a delta.
/// </summary>
public static class KernelOrthogonality
{
    /// <summary>The OCNN orthogonality deviation of a convolution's kernels (see the type's remarks).</summary>
    /// <param name="weight">OIHW: [outChannels, inChannels / groups, kernelH, kernelW].</param>
    /// <param name="outChannels">Output channels (O).</param>
    /// <param name="inChannelsPerGroup">Input channels each kernel reads (I / groups).</param>
    /// <param name="kernelH">Kernel height.</param>
    /// <param name="kernelW">Kernel width.</param>
    /// <param name="strideH">Vertical stride.</param>
    /// <param name="strideW">Horizontal stride.</param>
    /// <param name="groups">Convolution groups.</param>
    public static double Deviation(ReadOnlySpan<double> weight, int outChannels, int inChannelsPerGroup, int kernelH, int kernelW, int strideH, int strideW, int groups)
    {
        if (outChannels <= 0 || inChannelsPerGroup <= 0 || kernelH <= 0 || kernelW <= 0 || strideH <= 0 || strideW <= 0 || groups <= 0 || outChannels % groups != 0)
        {
            throw new ArgumentException($"Not a valid kernel: {outChannels} outputs in {groups} groups, {inChannelsPerGroup} inputs per group, {kernelH}x{kernelW}, stride {strideH}x{strideW}.");
        }

        if (weight.Length != (long)outChannels * inChannelsPerGroup * kernelH * kernelW)
        {
            throw new ArgumentException($"A [{outChannels}, {inChannelsPerGroup}, {kernelH}, {kernelW}] kernel has {(long)outChannels * inChannelsPerGroup * kernelH * kernelW} weights, not {weight.Length}.", nameof(weight));
        }

        int padH = (kernelH - 1) / strideH * strideH, padW = (kernelW - 1) / strideW * strideW;
        int shiftsH = (2 * padH / strideH) + 1, shiftsW = (2 * padW / strideW) + 1;
        int centreH = padH / strideH, centreW = padW / strideW;
        int perGroup = outChannels / groups;
        int kernelSize = inChannelsPerGroup * kernelH * kernelW;
        double squared = 0;
        for (int g = 0; g < groups; g++)
        {
            for (int a = g * perGroup; a < (g + 1) * perGroup; a++)
            {
                for (int b = g * perGroup; b < (g + 1) * perGroup; b++)
                {
                    for (int u = 0; u < shiftsH; u++)
                    {
                        for (int v = 0; v < shiftsW; v++)
                        {
                            // Kernel a moved by (u * S - P, v * S - P) against kernel b.
                            int dy = (u * strideH) - padH, dx = (v * strideW) - padW;
                            double sum = 0;
                            for (int c = 0; c < inChannelsPerGroup; c++)
                            {
                                for (int i = Math.Max(0, -dy); i < Math.Min(kernelH, kernelH - dy); i++)
                                {
                                    for (int j = Math.Max(0, -dx); j < Math.Min(kernelW, kernelW - dx); j++)
                                    {
                                        sum += weight[(a * kernelSize) + (((c * kernelH) + i + dy) * kernelW) + j + dx]
                                            * weight[(b * kernelSize) + (((c * kernelH) + i) * kernelW) + j];
                                    }
                                }
                            }

                            double target = a == b && u == centreH && v == centreW ? 1 : 0;
                            squared += (sum - target) * (sum - target);
                        }
                    }
                }
            }
        }

        return Math.Sqrt(squared);
    }
}
