using MobileOne.Graph;

namespace MobileOne.Compression;

/// <summary>
/// One convolution W (groups 1, undilated) deployed as L + S: a KxK convolution to <see cref="Rank"/> channels
/// (<see cref="Reduce"/>, no bias), a 1x1 convolution back to the output channels (<see cref="Expand"/> with the
/// layer's bias), and, when S has entries, a sparse convolution of the same geometry reading the same input, added to
/// the 1x1's output. <see cref="Name"/> is the dense layer's name (e.g. stages.1.1.reparam_conv); the emitted nodes and
/// the checkpoint keys extend it (docs/ideas.md).
/// </summary>
/// <param name="Name">The dense convolution's node name.</param>
/// <param name="InChannels">Input channels.</param>
/// <param name="OutChannels">Output channels.</param>
/// <param name="KernelHeight">Kernel height.</param>
/// <param name="KernelWidth">Kernel width.</param>
/// <param name="StrideH">Vertical stride.</param>
/// <param name="StrideW">Horizontal stride.</param>
/// <param name="PadH">Vertical zero padding.</param>
/// <param name="PadW">Horizontal zero padding.</param>
/// <param name="Rank">r, the channels between the two convolutions.</param>
/// <param name="Reduce">V as an OIHW weight [r, in, kh, kw].</param>
/// <param name="Expand">U as an OIHW weight [out, r, 1, 1].</param>
/// <param name="Bias">The dense layer's bias [out].</param>
/// <param name="SparseIndices">S's entries as ascending row-major indices into W [out, in kh kw].</param>
/// <param name="SparseValues">S's values.</param>
public sealed record CompressedConv(
    string Name, int InChannels, int OutChannels, int KernelHeight, int KernelWidth, int StrideH, int StrideW, int PadH, int PadW,
    int Rank, float[] Reduce, float[] Expand, float[] Bias, int[] SparseIndices, float[] SparseValues)
{
    /// <summary>Node and key suffix of the KxK convolution to r channels.</summary>
    public const string ReduceSuffix = ".lowrank.0";

    /// <summary>Node and key suffix of the 1x1 convolution from r channels (with the bias).</summary>
    public const string ExpandSuffix = ".lowrank.1";

    /// <summary>Node and key suffix of the sparse part.</summary>
    public const string SparseSuffix = ".sparse";

    /// <summary>Node suffix of the sum of the 1x1's output and the sparse part.</summary>
    public const string AddSuffix = ".add";

    /// <summary>Columns of W: in kh kw.</summary>
    public int PatchSize => InChannels * KernelHeight * KernelWidth;

    /// <summary>#W: entries of the dense weight.</summary>
    public long DenseWeights => (long)OutChannels * PatchSize;

    /// <summary>
    /// The compressed form of <paramref name="conv"/> (groups 1, undilated) from a decomposition of its GEMM matrix:
    /// V becomes the KxK convolution to r channels, U the 1x1 convolution with the layer's bias.
    /// </summary>
    public static CompressedConv FromDecomposition(ConvNode conv, LowRankSparseResult result)
    {
        ArgumentNullException.ThrowIfNull(conv);
        ArgumentNullException.ThrowIfNull(result);
        if (conv.Groups != 1 || conv.DilationH != 1 || conv.DilationW != 1)
        {
            throw new ArgumentException($"Layer {conv.Name}: only convolutions with groups 1 and no dilation are compressed.", nameof(conv));
        }

        if (result.Rows != conv.OutChannels || result.Columns != conv.InChannels * conv.KernelHeight * conv.KernelWidth)
        {
            throw new ArgumentException($"Layer {conv.Name}: a {result.Rows} x {result.Columns} decomposition does not fit its {conv.OutChannels} x {conv.InChannels * conv.KernelHeight * conv.KernelWidth} matrix.", nameof(result));
        }

        return new CompressedConv(
            conv.Name, conv.InChannels, conv.OutChannels, conv.KernelHeight, conv.KernelWidth, conv.StrideH, conv.StrideW, conv.PadH, conv.PadW,
            result.Rank, result.Right, result.Left, conv.Bias is null ? new float[conv.OutChannels] : (float[])conv.Bias.Clone(), result.SparseIndices, result.SparseValues);
    }

    /// <summary>The nodes that replace the dense convolution, reading <paramref name="input"/>; returns the value that stands for its output.</summary>
    public int Emit(LayerGraph graph, int input)
    {
        ArgumentNullException.ThrowIfNull(graph);

        // The sparse part comes first so that its output is ready when the 1x1 runs: the engine then adds it in the
        // 1x1's epilogue (as a residual) instead of a separate add step.
        int sparse = -1;
        if (SparseValues.Length > 0)
        {
            var (starts, columns) = SparseConvNode.FromFlatIndices(SparseIndices, OutChannels, PatchSize);
            sparse = graph.Add(new SparseConvNode(Name + SparseSuffix, input, InChannels, OutChannels, KernelHeight, KernelWidth, StrideH, StrideW, PadH, PadW, starts, columns, SparseValues));
        }

        int reduced = graph.Add(new ConvNode(Name + ReduceSuffix, input, InChannels, Rank, KernelHeight, KernelWidth, StrideH, StrideW, PadH, PadW, 1, 1, 1, Reduce, null));
        int expanded = graph.Add(ConvNode.Square(Name + ExpandSuffix, reduced, Rank, OutChannels, 1, 1, 0, 1, Expand, Bias));
        return sparse < 0 ? expanded : graph.Add(new AddNode(Name + AddSuffix, [expanded, sparse]));
    }

    /// <summary>L + S as a dense OIHW weight [out, in, kh, kw], summed in double (the reference the engine is tested against).</summary>
    public double[] DenseWeight()
    {
        var w = new double[DenseWeights];
        int cols = PatchSize;
        for (int o = 0; o < OutChannels; o++)
        {
            for (int j = 0; j < cols; j++)
            {
                double sum = 0;
                for (int k = 0; k < Rank; k++)
                {
                    sum += (double)Expand[(o * Rank) + k] * Reduce[((long)k * cols) + j];
                }

                w[((long)o * cols) + j] = sum;
            }
        }

        for (int e = 0; e < SparseIndices.Length; e++)
        {
            w[SparseIndices[e]] += SparseValues[e];
        }

        return w;
    }
}
