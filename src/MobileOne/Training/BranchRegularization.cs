using MobileOne.Analysis;
using MobileOne.Models;
using MobileOne.Nn;

namespace MobileOne.Training;

/// <summary>The two branch penalties of a network, unweighted, at one moment.</summary>
/// <param name="Orthogonality">Sum over blocks and their k convolution branches of OCNN's ||Conv(W, W) - I_r0||_F^2 on the raw weight W (per group).</param>
/// <param name="Diversity">Sum over blocks with at least two branches of the mean squared cosine between the BN-folded branch kernels.</param>
public readonly record struct BranchPenalties(double Orthogonality, double Diversity);

/// <summary>
/// Penalties on the k parallel convolution branches (conv_kxk.0..k-1) of every train-time block, added to the loss as
/// OrthogonalityWeight * O + DiversityWeight * D (<see cref="BranchPenalties"/>): O is OCNN's convolutional
/// orthogonality loss (<see cref="KernelOrthogonality.Penalty"/>) of each branch's raw convolution weight, applied per
/// group (a depthwise branch: each channel's filter against a delta), summed as OCNN sums over layers; D is each
/// block's <see cref="BranchDiversity.Penalty"/>, summed over blocks. The 1x1 scale branch and the BatchNorm skip are
/// not penalized. Both are computed in double from the float32 weights; their gradients are added, scaled, to the
/// parameters' gradients.
/// </summary>
public sealed class BranchRegularization
{
    private double[] weight = [], gradient = [];
    private double[][] weightScratch = [], gammaScratch = [];

    /// <summary>Penalties weighted by <paramref name="orthogonalityWeight"/> and <paramref name="diversityWeight"/> (finite, &gt;= 0; 0 turns one off).</summary>
    public BranchRegularization(double orthogonalityWeight, double diversityWeight)
    {
        if (!double.IsFinite(orthogonalityWeight) || orthogonalityWeight < 0 || !double.IsFinite(diversityWeight) || diversityWeight < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(orthogonalityWeight), $"Penalty weights must be finite and >= 0; got {orthogonalityWeight} and {diversityWeight}.");
        }

        OrthogonalityWeight = orthogonalityWeight;
        DiversityWeight = diversityWeight;
    }

    /// <summary>Factor of the orthogonality penalty O in the loss; 0 skips computing it.</summary>
    public double OrthogonalityWeight { get; }

    /// <summary>Factor of the branch-diversity penalty D in the loss; 0 skips computing it.</summary>
    public double DiversityWeight { get; }

    /// <summary>Whether either weight is positive, so <see cref="AddGradients"/> has something to add.</summary>
    public bool IsActive => OrthogonalityWeight > 0 || DiversityWeight > 0;

    /// <summary>Both penalties of <paramref name="model"/> now, without gradients; NaN for a family without MobileOne's branches.</summary>
    public static BranchPenalties Measure(ClassifierNetwork model) => model is MobileOneNetwork mobileOne
        ? new BranchRegularization(0, 0).Compute(mobileOne, orthogonality: true, diversity: true, addGradients: false)
        : new BranchPenalties(double.NaN, double.NaN);

    /// <summary>
    /// The penalties whose weight is positive (the other is reported as 0), with weight * gradient added to the
    /// branches' <see cref="Parameter.Grad"/> (allocated if needed). Call after the network's backward, before clipping
    /// and the optimizer step.
    /// </summary>
    public BranchPenalties AddGradients(ClassifierNetwork model) => model is MobileOneNetwork mobileOne
        ? Compute(mobileOne, OrthogonalityWeight > 0, DiversityWeight > 0, addGradients: true)
        : throw new ArgumentException($"The branch penalties act on MobileOne's branches; {model.Architecture} has none.", nameof(model));

    private BranchPenalties Compute(MobileOneNetwork model, bool orthogonality, bool diversity, bool addGradients)
    {
        ArgumentNullException.ThrowIfNull(model);
        double o = 0, d = 0;
        foreach (var (_, block) in model.Blocks())
        {
            if (block.IsFused)
            {
                continue;
            }

            var spec = block.Spec;
            if (orthogonality)
            {
                foreach (var branch in block.ConvKxk)
                {
                    var p = branch.Conv.Weight;
                    int n = p.Value.Length;
                    var w = Scratch(ref weight, n);
                    var g = addGradients ? Scratch(ref gradient, n) : default;
                    for (int i = 0; i < n; i++)
                    {
                        w[i] = p.Value.Data[i];
                    }

                    o += KernelOrthogonality.Penalty(w, spec.OutChannels, spec.InChannels / spec.Groups, spec.KernelSize, spec.KernelSize, spec.Stride, spec.Stride, spec.Groups, g);
                    if (addGradients)
                    {
                        Add(p, g, OrthogonalityWeight);
                    }
                }
            }

            if (diversity && block.ConvKxk.Count > 1)
            {
                if (!addGradients)
                {
                    d += BranchDiversity.Penalty(block);
                    continue;
                }

                int k = block.ConvKxk.Count;
                var dw = Scratch(ref weightScratch, k, block.ConvKxk[0].Conv.Weight.Value.Length);
                var dgamma = Scratch(ref gammaScratch, k, block.ConvKxk[0].Bn.Channels);
                d += BranchDiversity.Penalty(block, dw, dgamma);
                for (int b = 0; b < k; b++)
                {
                    Add(block.ConvKxk[b].Conv.Weight, dw[b], DiversityWeight);
                    Add(block.ConvKxk[b].Bn.Weight, dgamma[b], DiversityWeight);
                }
            }
        }

        return new BranchPenalties(o, d);
    }

    private static Span<double> Scratch(ref double[] buffer, int length)
    {
        if (buffer.Length < length)
        {
            buffer = new double[length];
        }

        return buffer.AsSpan(0, length);
    }

    /// <summary>k arrays of at least <paramref name="length"/> elements, kept for the next block and step.</summary>
    private static double[][] Scratch(ref double[][] buffers, int k, int length)
    {
        if (buffers.Length < k || buffers[0].Length < length)
        {
            int count = Math.Max(k, buffers.Length), size = Math.Max(length, buffers.Length > 0 ? buffers[0].Length : 0);
            buffers = Enumerable.Range(0, count).Select(_ => new double[size]).ToArray();
        }

        return buffers.Length == k ? buffers : buffers[..k];
    }

    private static void Add(Parameter parameter, ReadOnlySpan<double> gradient, double scale)
    {
        var grad = parameter.EnsureGrad().Data;
        for (int i = 0; i < grad.Length; i++)
        {
            grad[i] = (float)(grad[i] + (scale * gradient[i]));
        }
    }
}
