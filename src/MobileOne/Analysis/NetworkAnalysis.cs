using MobileOne.Models;
using MobileOne.Reparam;

namespace MobileOne.Analysis;

/// <summary>What <see cref="NetworkAnalysis"/> measures, and how much it may spend.</summary>
public sealed record AnalysisOptions
{
    /// <summary>Input height and width the convolution matrices are built for.</summary>
    public int Size { get; init; } = 32;

    /// <summary>Dense singular values only for matrices of at most this many entries (else null).</summary>
    public long MaxDenseEntries { get; init; } = 1L << 20;

    /// <summary>Also multiply a random input by the stored matrix and compare with the library's convolution.</summary>
    public bool VerifyMatrix { get; init; }

    /// <summary>Seed of the random vectors (power iteration, the matrix check).</summary>
    public int Seed { get; init; }

    /// <summary>
    /// For train-time blocks, also the spectrum of each of the k convolution branches on its own (BN folded), to set
    /// beside the reparameterized kernel's: what fusing does to the operator. Costs k more spectra per block.
    /// </summary>
    public bool BranchSpectra { get; init; }
}

/// <summary>One convolution of the fused model, at the analysed input size.</summary>
public sealed record LayerAnalysis(
    string Layer,
    int[] KernelShape,
    int Stride,
    int Padding,
    int Groups,
    int InHeight,
    int InWidth,
    int OutHeight,
    int OutWidth,
    long MatrixRows,
    long MatrixColumns,
    long MatrixNonZeros,
    double SpectralNorm,
    double? SmallestSingularValue,
    int? EffectiveRank90,
    int? EffectiveRank99,
    double OrthogonalityDeviation,
    int Branches,
    double? BranchSimilarityMean,
    double? BranchSimilarityMax,
    double? MatrixMaxAbsDiff,
    IReadOnlyList<BranchSpectrum>? BranchSpectra = null);

/// <summary>
/// One convolution branch of a train-time block on its own, BN folded, as a matrix at the analysed input size:
/// spectral norm and (where dense singular values are affordable) effective rank at 90 and 99% energy.
/// </summary>
public sealed record BranchSpectrum(double SpectralNorm, int? EffectiveRank90, int? EffectiveRank99);

/// <summary>
/// The presenter's matrix view of a MobileOne network, one row per convolution of its fused form (each block's
/// reparameterized kernel; squeeze-excite's 1x1 layers on pooled vectors and the classifier are not convolutions
/// over the image and are left out): the convolution matrix's size, spectral norm, smallest singular value and
/// effective rank at 90 and 99% energy (where dense is affordable), OCNN's orthogonality deviation, and for a
/// train-time network the similarity between each block's k convolution branches (cosine of their BN-folded
/// kernels, mean and maximum over pairs).
/// </summary>
public static class NetworkAnalysis
{
    /// <summary>One row per block of <paramref name="network"/> (each block fused first, its branches compared when it is train-time), at <paramref name="options"/>' input size.</summary>
    public static IReadOnlyList<LayerAnalysis> Analyze(MobileOneNetwork network, AnalysisOptions options)
    {
        ArgumentNullException.ThrowIfNull(network);
        ArgumentNullException.ThrowIfNull(options);
        if (options.Size < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.Size, "The input size must be positive.");
        }

        var rows = new List<LayerAnalysis>();
        int h = options.Size, w = options.Size;
        foreach (var (prefix, block) in network.Blocks())
        {
            var spec = block.Spec;
            var fused = BlockFusion.Fuse(block);
            var matrix = new ConvolutionMatrix(
                fused.Weight, spec.OutChannels, spec.InChannels, spec.KernelSize, spec.KernelSize, h, w,
                spec.Stride, spec.Stride, spec.Padding, spec.Padding, spec.Groups);
            double[]? singular = OperatorSpectrum.SingularValues(matrix, options.MaxDenseEntries);
            var (branches, mean, max) = BranchSimilarity(block);
            rows.Add(new LayerAnalysis(
                prefix.TrimEnd('.') + (block.IsFused ? ".reparam_conv" : string.Empty),
                fused.Shape,
                spec.Stride,
                spec.Padding,
                spec.Groups,
                h,
                w,
                matrix.OutHeight,
                matrix.OutWidth,
                matrix.Rows,
                matrix.Columns,
                matrix.CountNonZeros(),
                singular is null ? OperatorSpectrum.SpectralNorm(matrix, seed: options.Seed) : (singular.Length > 0 ? singular[0] : 0),
                singular is null ? null : (singular.Length > 0 ? singular[^1] : 0),
                singular is null ? null : OperatorSpectrum.EffectiveRank(singular, 0.90),
                singular is null ? null : OperatorSpectrum.EffectiveRank(singular, 0.99),
                KernelOrthogonality.Deviation(fused.Weight, spec.OutChannels, spec.InChannels / spec.Groups, spec.KernelSize, spec.KernelSize, spec.Stride, spec.Stride, spec.Groups),
                branches,
                mean,
                max,
                options.VerifyMatrix ? MatrixCheck.MaxAbsDiff(matrix, fused, options.Seed) : null,
                options.BranchSpectra && !block.IsFused ? BranchSpectra(block, h, w, options) : null));
            (h, w) = (matrix.OutHeight, matrix.OutWidth);
        }

        return rows;
    }

    /// <summary>The spectrum of each of a train-time block's k convolution branches (BN folded) at an h x w input.</summary>
    public static IReadOnlyList<BranchSpectrum> BranchSpectra(MobileOneBlock block, int h, int w, AnalysisOptions options)
    {
        ArgumentNullException.ThrowIfNull(block);
        ArgumentNullException.ThrowIfNull(options);
        var spec = block.Spec;
        return BranchDiversity.FoldedKernels(block).Select(kernel =>
        {
            var matrix = new ConvolutionMatrix(
                kernel, spec.OutChannels, spec.InChannels, spec.KernelSize, spec.KernelSize, h, w,
                spec.Stride, spec.Stride, spec.Padding, spec.Padding, spec.Groups);
            double[]? singular = OperatorSpectrum.SingularValues(matrix, options.MaxDenseEntries);
            return singular is null
                ? new BranchSpectrum(OperatorSpectrum.SpectralNorm(matrix, seed: options.Seed), null, null)
                : new BranchSpectrum(singular.Length > 0 ? singular[0] : 0, OperatorSpectrum.EffectiveRank(singular, 0.90), OperatorSpectrum.EffectiveRank(singular, 0.99));
        }).ToArray();
    }

    /// <summary>
    /// Cosine similarity between the BN-folded kernels of a block's k convolution branches, over all pairs: mean and
    /// maximum (null for a fused block or a single branch, where there is nothing to compare).
    /// </summary>
    public static (int Branches, double? Mean, double? Max) BranchSimilarity(MobileOneBlock block)
    {
        ArgumentNullException.ThrowIfNull(block);
        if (block.IsFused)
        {
            return (1, null, null);
        }

        var kernels = BranchDiversity.FoldedKernels(block);
        if (kernels.Length < 2)
        {
            return (kernels.Length, null, null);
        }

        double total = 0, max = double.NegativeInfinity;
        int pairs = 0;
        for (int i = 0; i < kernels.Length; i++)
        {
            for (int j = i + 1; j < kernels.Length; j++)
            {
                double cos = Cosine(kernels[i], kernels[j]);
                total += cos;
                max = Math.Max(max, cos);
                pairs++;
            }
        }

        return (kernels.Length, total / pairs, max);
    }

    /// <summary>&lt;a, b&gt; / (|a| |b|); 0 when either is zero.</summary>
    public static double Cosine(ReadOnlySpan<double> a, ReadOnlySpan<double> b)
    {
        double dot = 0, aa = 0, bb = 0;
        for (int i = 0; i < a.Length; i++)
        {
            dot += a[i] * b[i];
            aa += a[i] * a[i];
            bb += b[i] * b[i];
        }

        return aa == 0 || bb == 0 ? 0 : dot / Math.Sqrt(aa * bb);
    }
}
