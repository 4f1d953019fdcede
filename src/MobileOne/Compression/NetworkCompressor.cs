using MobileOne.Graph;
using MobileOne.Models;
using MobileOne.Reparam;

namespace MobileOne.Compression;

/// <summary>Which convolutions <see cref="NetworkCompressor"/> considers.</summary>
public enum CompressionLayers
{
    /// <summary>Only 1x1 convolutions with groups 1 (MobileOne's pointwise blocks).</summary>
    Pointwise,

    /// <summary>Every convolution with groups 1 (1x1 and dense KxK, e.g. the stem); depthwise and grouped ones stay dense.</summary>
    All,
}

/// <summary>What <see cref="NetworkCompressor.Compress"/> does.</summary>
public sealed record CompressionOptions
{
    /// <summary>Rank rule: the fewest singular values of W whose squares hold this fraction of sum sigma^2 (used unless <see cref="RankRatio"/> is set).</summary>
    public double Energy { get; init; } = 0.9;

    /// <summary>Rank rule: this fraction of the full rank min(out, in kh kw), rounded, at least 1; overrides <see cref="Energy"/>.</summary>
    public double? RankRatio { get; init; }

    /// <summary>#S / #W: the fraction of W's entries the sparse part holds (rounded to a count).</summary>
    public double Sparsity { get; init; }

    /// <summary>Which convolutions are considered.</summary>
    public CompressionLayers Layers { get; init; } = CompressionLayers.Pointwise;

    /// <summary>The alternation's iteration limit and tolerance.</summary>
    public LowRankSparseOptions Alternation { get; init; } = new();

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> for a value outside its range.</summary>
    public void Validate()
    {
        if (!(Energy > 0 && Energy <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(Energy), Energy, "The energy is a fraction in (0, 1].");
        }

        if (RankRatio is double r && !(r > 0 && r <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(RankRatio), r, "The rank ratio is a fraction in (0, 1].");
        }

        if (!(Sparsity >= 0 && Sparsity < 1))
        {
            throw new ArgumentOutOfRangeException(nameof(Sparsity), Sparsity, "The sparsity is a fraction in [0, 1).");
        }
    }
}

/// <summary>
/// One considered layer of a compression (the seed's Table 3 row): #W, #L/#W, #S/#W and the rate, with whether it was
/// deployed compressed or kept dense because the factors would not be smaller.
/// </summary>
/// <param name="Layer">The convolution's node name.</param>
/// <param name="Shape">out x in x kh x kw.</param>
/// <param name="Weights">#W.</param>
/// <param name="Rank">r of the decomposition (kept dense layers: the rank that was tried).</param>
/// <param name="FullRank">min(out, in kh kw).</param>
/// <param name="LowRankWeights">#L = r (out + in kh kw) of the decomposition.</param>
/// <param name="SparseWeights">#S: stored sparse values.</param>
/// <param name="StoredWords">32-bit words the deployed layer stores (weights only, bias excluded): #W when dense, else
/// #L + #S values + #S column indices + out + 1 row starts (the row starts and indices only when #S &gt; 0).</param>
/// <param name="RelativeError">||W - L - S||_F / ||W||_F of the decomposition (0 for a layer kept dense).</param>
/// <param name="Iterations">Alternations run (0 for a layer kept dense: it is not decomposed).</param>
/// <param name="Compressed">Whether the layer is deployed as L + S.</param>
public sealed record LayerCompression(
    string Layer, string Shape, long Weights, int Rank, int FullRank, long LowRankWeights, long SparseWeights, long StoredWords,
    double RelativeError, int Iterations, bool Compressed)
{
    /// <summary>#L/#W of the deployed layer (0 when kept dense).</summary>
    public double LowRankFraction => Compressed ? (double)LowRankWeights / Weights : 0;

    /// <summary>#S/#W of the deployed layer (0 when kept dense).</summary>
    public double SparseFraction => Compressed ? (double)SparseWeights / Weights : 0;

    /// <summary>R = #W / stored words: how many times smaller the layer's weights are (1 when kept dense).</summary>
    public double Rate => (double)Weights / StoredWords;
}

/// <summary>
/// Compresses a MobileOne: fuses it (a train-time network is reparameterized first), then decomposes each considered
/// convolution's GEMM matrix W [out, in kh kw] as L + S (<see cref="LowRankSparse"/>), with the rank from the
/// spectrum of W itself (before any sparse part is taken out) or from the rank ratio, and keeps a layer dense where
/// the stored words of L + S would not be fewer than #W. Depthwise convolutions always stay dense: their GEMM
/// matrix is one row of kh kw entries per channel (block-diagonal over channels), so a rank-r factor of the
/// per-channel 1 x 9 row saves nothing and there is no cross-channel matrix to factor.
/// </summary>
public static class NetworkCompressor
{
    /// <summary>Compresses <paramref name="network"/>; <paramref name="progress"/> gets each layer's row as it is done.</summary>
    public static (CompressedNetwork Network, IReadOnlyList<LayerCompression> Layers) Compress(
        MobileOneNetwork network, CompressionOptions options, Action<LayerCompression>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(network);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var fused = network.IsFused ? network : (MobileOneNetwork)Reparameterizer.Fuse(network);
        var rows = new List<LayerCompression>();
        var compressed = new List<CompressedConv>();
        foreach (var conv in fused.ToGraph().Nodes.OfType<ConvNode>().Where(c => Considered(c, options.Layers)))
        {
            var (row, layer) = CompressLayer(conv, options);
            rows.Add(row);
            if (layer is not null)
            {
                compressed.Add(layer);
            }

            progress?.Invoke(row);
        }

        return (new CompressedNetwork(fused, compressed), rows);
    }

    /// <summary>Whether a convolution is a candidate: groups 1, undilated, and 1x1 unless <paramref name="layers"/> is All.</summary>
    public static bool Considered(ConvNode conv, CompressionLayers layers)
    {
        ArgumentNullException.ThrowIfNull(conv);
        bool dense = conv.Groups == 1 && conv.DilationH == 1 && conv.DilationW == 1;
        return dense && (layers == CompressionLayers.All || (conv.KernelHeight == 1 && conv.KernelWidth == 1));
    }

    /// <summary>One convolution's decomposition and, when it is smaller than the dense weight, its compressed form.</summary>
    public static (LayerCompression Row, CompressedConv? Layer) CompressLayer(ConvNode conv, CompressionOptions options)
    {
        ArgumentNullException.ThrowIfNull(conv);
        ArgumentNullException.ThrowIfNull(options);
        int rows = conv.OutChannels, columns = conv.InChannels * conv.KernelHeight * conv.KernelWidth;
        int rank = options.RankRatio is double ratio
            ? LowRankSparse.RankForRatio(rows, columns, ratio)
            : Math.Max(1, LowRankSparse.RankForEnergy(LowRankSparse.SingularValues(conv.Weight, rows, columns), options.Energy));
        int sparse = (int)Math.Round(options.Sparsity * rows * columns, MidpointRounding.AwayFromZero);

        // Whether L + S is smaller follows from the rank and the sparse count alone, so a layer that stays dense is not
        // decomposed: its SVDs (up to --iterations of them with a sparse part) were thrown away.
        long weights = (long)rows * columns, lowRank = (long)rank * (rows + columns);
        long words = lowRank + (sparse > 0 ? (2L * sparse) + rows + 1 : 0);
        string shape = $"{rows}x{conv.InChannels}x{conv.KernelHeight}x{conv.KernelWidth}";
        if (words >= weights)
        {
            return (new LayerCompression(conv.Name, shape, weights, rank, Math.Min(rows, columns), lowRank, sparse, weights, 0, 0, false), null);
        }

        var result = LowRankSparse.Decompose(conv.Weight, rows, columns, rank, sparse, options.Alternation);
        var row = new LayerCompression(
            conv.Name, shape, weights, rank, Math.Min(rows, columns), result.LowRankWeights, sparse, words, result.RelativeError, result.Errors.Count, true);
        return (row, CompressedConv.FromDecomposition(conv, result));
    }
}
