namespace MobileOne.Graph;

/// <summary>
/// A dense-geometry (groups 1, undilated) 2-D convolution without bias whose OIHW weight is sparse, stored as
/// compressed sparse rows over the output channels: output channel o has the entries
/// [<see cref="RowStarts"/>[o], <see cref="RowStarts"/>[o + 1]) of <see cref="Columns"/> (c kh kw + ky kw + kx, the
/// column of the conv's GEMM matrix [out, in kh kw]) and <see cref="Values"/>. Zero padding and output size as
/// <see cref="ConvNode"/>. The sparse part S of a compressed convolution W ≈ L + S.
/// </summary>
public sealed record SparseConvNode(
    string Name,
    int Input,
    int InChannels,
    int OutChannels,
    int KernelHeight,
    int KernelWidth,
    int StrideH,
    int StrideW,
    int PadH,
    int PadW,
    int[] RowStarts,
    int[] Columns,
    float[] Values)
    : GraphNode(Name, [Input])
{
    /// <summary>Stored nonzeros.</summary>
    public int NonZeros => Values.Length;

    /// <summary>Columns of the GEMM matrix: in kh kw.</summary>
    public int PatchSize => InChannels * KernelHeight * KernelWidth;

    /// <summary>The stored values (indices are not parameters; see docs/ideas.md for the storage cost).</summary>
    public override long Parameters => Values.LongLength;

    /// <summary>The same convolution as a dense <see cref="ConvNode"/> without bias (zeros where nothing is stored): what the ONNX exporter writes.</summary>
    public ConvNode ToDense()
    {
        var weight = new float[(long)OutChannels * PatchSize];
        for (int o = 0; o < OutChannels; o++)
        {
            for (int e = RowStarts[o]; e < RowStarts[o + 1]; e++)
            {
                weight[((long)o * PatchSize) + Columns[e]] = Values[e];
            }
        }

        return new ConvNode(Name, Input, InChannels, OutChannels, KernelHeight, KernelWidth, StrideH, StrideW, PadH, PadW, 1, 1, 1, weight, null);
    }

    /// <summary>
    /// The CSR row starts and columns of the row-major [out, in kh kw] entries <paramref name="indices"/> (ascending).
    /// </summary>
    public static (int[] RowStarts, int[] Columns) FromFlatIndices(ReadOnlySpan<int> indices, int outChannels, int patchSize)
    {
        var starts = new int[outChannels + 1];
        var columns = new int[indices.Length];
        for (int e = 0; e < indices.Length; e++)
        {
            if (indices[e] < 0 || indices[e] >= (long)outChannels * patchSize || (e > 0 && indices[e] <= indices[e - 1]))
            {
                throw new ArgumentException($"Sparse index {indices[e]} at {e} is out of range [0, {(long)outChannels * patchSize}) or not ascending.");
            }

            starts[(indices[e] / patchSize) + 1]++;
            columns[e] = indices[e] % patchSize;
        }

        for (int o = 0; o < outChannels; o++)
        {
            starts[o + 1] += starts[o];
        }

        return (starts, columns);
    }

    internal override void Validate(int[] inputChannels)
    {
        RequireInputs(1);
        if (InChannels <= 0 || OutChannels <= 0 || KernelHeight <= 0 || KernelWidth <= 0 || StrideH <= 0 || StrideW <= 0 || PadH < 0 || PadW < 0)
        {
            throw new ArgumentException($"Node {Name}: invalid sparse convolution {InChannels}->{OutChannels}, kernel {KernelHeight}x{KernelWidth}, stride {StrideH}x{StrideW}, padding {PadH}x{PadW}.");
        }

        if (inputChannels[0] != InChannels)
        {
            throw new ArgumentException($"Node {Name}: expects {InChannels} input channels; its input has {inputChannels[0]}.");
        }

        if (RowStarts is null || Columns is null || Values is null || RowStarts.Length != OutChannels + 1)
        {
            throw new ArgumentException($"Node {Name}: needs {OutChannels + 1} row starts, columns and values.");
        }

        if (RowStarts[0] != 0 || RowStarts[OutChannels] != Values.Length || Columns.Length != Values.Length)
        {
            throw new ArgumentException($"Node {Name}: row starts must run from 0 to the {Values.Length} values, with one column per value (got {Columns.Length}).");
        }

        for (int o = 0; o < OutChannels; o++)
        {
            if (RowStarts[o + 1] < RowStarts[o])
            {
                throw new ArgumentException($"Node {Name}: row starts decrease at output channel {o}.");
            }

            for (int e = RowStarts[o]; e < RowStarts[o + 1]; e++)
            {
                if (Columns[e] < 0 || Columns[e] >= PatchSize || (e > RowStarts[o] && Columns[e] <= Columns[e - 1]))
                {
                    throw new ArgumentException($"Node {Name}: column {Columns[e]} of output channel {o} is outside [0, {PatchSize}) or not ascending.");
                }
            }
        }
    }

    internal override int OutputChannels(int[] inputChannels) => OutChannels;

    internal override ValueShape OutputShape(ValueShape[] inputs)
    {
        var x = inputs[0];
        if (x.Height + (2 * PadH) < KernelHeight || x.Width + (2 * PadW) < KernelWidth)
        {
            throw new ArgumentException($"Node {Name}: input {x.Height}x{x.Width} with padding {PadH}x{PadW} is smaller than the kernel {KernelHeight}x{KernelWidth}.");
        }

        return new ValueShape(OutChannels, ((x.Height + (2 * PadH) - KernelHeight) / StrideH) + 1, ((x.Width + (2 * PadW) - KernelWidth) / StrideW) + 1);
    }

    /// <summary>One multiply-add per stored value and output pixel.</summary>
    internal override long MultiplyAccumulates(ValueShape[] inputs, ValueShape output) => Values.LongLength * output.Height * output.Width;
}
