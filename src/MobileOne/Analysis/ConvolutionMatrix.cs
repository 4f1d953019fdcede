namespace MobileOne.Analysis;

/// <summary>
/// The matrix of a convolution at one input size: y = K x with x the NCHW input of one image flattened
/// (C * H * W) and y the output (O * Ho * Wo). Row (o, oy, ox) holds weight[o, c, ky, kx] in column
/// (c, oy * stride - pad + ky * dilation, ox * stride - pad + kx * dilation) for every tap that lands inside the
/// image (zero padding drops the others). At stride 1 each (o, c) block of K is a doubly block-Toeplitz
/// matrix, the presenter's "DBT" form: constant along diagonals of its H x H grid of W x W Toeplitz blocks.
/// Any stride, padding, groups and dilation. Kept matrix-free (<see cref="Multiply"/>,
/// <see cref="MultiplyTransposed"/>) so real sizes cost what the convolution costs; <see cref="ToSparse"/> and
/// <see cref="ToDense"/> materialize it where that is affordable. Double precision throughout.
/// </summary>
public sealed class ConvolutionMatrix
{
    private readonly double[] weight;

    /// <summary>The convolution with these weights and geometry, applied to a <paramref name="height"/> x <paramref name="width"/> input.</summary>
    /// <param name="weight">OIHW: [outChannels, inChannels / groups, kernelH, kernelW].</param>
    /// <param name="outChannels">Output channels (O).</param>
    /// <param name="inChannels">Input channels of the convolution (all groups together).</param>
    /// <param name="kernelH">Kernel height.</param>
    /// <param name="kernelW">Kernel width.</param>
    /// <param name="height">Input height the matrix is built for.</param>
    /// <param name="width">Input width the matrix is built for.</param>
    /// <param name="strideH">Vertical stride.</param>
    /// <param name="strideW">Horizontal stride.</param>
    /// <param name="padH">Zero padding above and below.</param>
    /// <param name="padW">Zero padding left and right.</param>
    /// <param name="groups">Convolution groups (in and out channels split evenly).</param>
    /// <param name="dilationH">Vertical dilation.</param>
    /// <param name="dilationW">Horizontal dilation.</param>
    public ConvolutionMatrix(
        ReadOnlySpan<double> weight, int outChannels, int inChannels, int kernelH, int kernelW,
        int height, int width, int strideH = 1, int strideW = 1, int padH = 0, int padW = 0, int groups = 1, int dilationH = 1, int dilationW = 1)
    {
        if (outChannels <= 0 || inChannels <= 0 || kernelH <= 0 || kernelW <= 0 || height <= 0 || width <= 0
            || strideH <= 0 || strideW <= 0 || padH < 0 || padW < 0 || dilationH <= 0 || dilationW <= 0
            || groups <= 0 || inChannels % groups != 0 || outChannels % groups != 0)
        {
            throw new ArgumentException(
                $"Not a valid convolution: {outChannels} x {inChannels} channels, {groups} groups, kernel {kernelH}x{kernelW}, stride {strideH}x{strideW}, padding {padH}x{padW}, dilation {dilationH}x{dilationW}, input {height}x{width}.");
        }

        long expected = (long)outChannels * (inChannels / groups) * kernelH * kernelW;
        if (weight.Length != expected)
        {
            throw new ArgumentException($"A [{outChannels}, {inChannels / groups}, {kernelH}, {kernelW}] kernel has {expected} weights, not {weight.Length}.", nameof(weight));
        }

        OutHeight = ((height + (2 * padH) - (dilationH * (kernelH - 1)) - 1) / strideH) + 1;
        OutWidth = ((width + (2 * padW) - (dilationW * (kernelW - 1)) - 1) / strideW) + 1;
        if (OutHeight <= 0 || OutWidth <= 0)
        {
            throw new ArgumentException($"A {kernelH}x{kernelW} kernel (dilation {dilationH}x{dilationW}, padding {padH}x{padW}) does not fit a {height}x{width} input.");
        }

        this.weight = weight.ToArray();
        OutChannels = outChannels;
        InChannels = inChannels;
        KernelH = kernelH;
        KernelW = kernelW;
        Height = height;
        Width = width;
        StrideH = strideH;
        StrideW = strideW;
        PadH = padH;
        PadW = padW;
        Groups = groups;
        DilationH = dilationH;
        DilationW = dilationW;
    }

    /// <summary>Output channels.</summary>
    public int OutChannels { get; }

    /// <summary>Input channels (all groups).</summary>
    public int InChannels { get; }

    /// <summary>Kernel height.</summary>
    public int KernelH { get; }

    /// <summary>Kernel width.</summary>
    public int KernelW { get; }

    /// <summary>Input height.</summary>
    public int Height { get; }

    /// <summary>Input width.</summary>
    public int Width { get; }

    /// <summary>Vertical stride.</summary>
    public int StrideH { get; }

    /// <summary>Horizontal stride.</summary>
    public int StrideW { get; }

    /// <summary>Zero padding above and below.</summary>
    public int PadH { get; }

    /// <summary>Zero padding left and right.</summary>
    public int PadW { get; }

    /// <summary>Convolution groups.</summary>
    public int Groups { get; }

    /// <summary>Vertical dilation.</summary>
    public int DilationH { get; }

    /// <summary>Horizontal dilation.</summary>
    public int DilationW { get; }

    /// <summary>Output height.</summary>
    public int OutHeight { get; }

    /// <summary>Output width.</summary>
    public int OutWidth { get; }

    /// <summary>O * Ho * Wo.</summary>
    public long Rows => (long)OutChannels * OutHeight * OutWidth;

    /// <summary>C * H * W.</summary>
    public long Columns => (long)InChannels * Height * Width;

    /// <summary>The kernel, OIHW.</summary>
    public ReadOnlySpan<double> Weight => weight;

    /// <summary>The stored entries: every tap that lands inside the image, over all rows (one pass over the rows).</summary>
    public long CountNonZeros()
    {
        long count = 0;
        for (long row = 0; row < Rows; row++)
        {
            count += RowEntries(row).Count();
        }

        return count;
    }

    /// <summary>y = K x.</summary>
    public void Multiply(ReadOnlySpan<double> x, Span<double> y)
    {
        RequireLengths(x.Length, y.Length);
        for (long row = 0; row < Rows; row++)
        {
            double sum = 0;
            foreach (var (column, value) in RowEntries(row))
            {
                sum += value * x[(int)column];
            }

            y[(int)row] = sum;
        }
    }

    /// <summary>x = K^T y (the input gradient of the convolution).</summary>
    public void MultiplyTransposed(ReadOnlySpan<double> y, Span<double> x)
    {
        RequireLengths(x.Length, y.Length);
        x.Clear();
        for (long row = 0; row < Rows; row++)
        {
            double v = y[(int)row];
            foreach (var (column, value) in RowEntries(row))
            {
                x[(int)column] += value * v;
            }
        }
    }

    /// <summary>The stored entries, row by row (compressed sparse rows: the row's entries in increasing tap order).</summary>
    public SparseRows ToSparse()
    {
        long patch = (long)(InChannels / Groups) * KernelH * KernelW;
        if (Rows * patch > int.MaxValue)
        {
            throw new InvalidOperationException($"The {Rows} x {Columns} convolution matrix has up to {Rows * patch} entries, too many to store; use the matrix-free products.");
        }

        var starts = new int[Rows + 1];
        var columns = new List<int>((int)(Rows * patch));
        var values = new List<double>((int)(Rows * patch));
        for (long row = 0; row < Rows; row++)
        {
            foreach (var (column, value) in RowEntries(row))
            {
                columns.Add((int)column);
                values.Add(value);
            }

            starts[row + 1] = columns.Count;
        }

        return new SparseRows((int)Rows, (int)Columns, starts, columns.ToArray(), values.ToArray());
    }

    /// <summary>K as a dense row-major array; refused above <paramref name="maxEntries"/> entries.</summary>
    public double[,] ToDense(long maxEntries = 1L << 24)
    {
        if (Rows * Columns > maxEntries)
        {
            throw new InvalidOperationException($"The convolution matrix is {Rows} x {Columns} = {Rows * Columns} entries, more than the {maxEntries} allowed dense.");
        }

        var dense = new double[Rows, Columns];
        for (long row = 0; row < Rows; row++)
        {
            foreach (var (column, value) in RowEntries(row))
            {
                dense[row, column] += value;
            }
        }

        return dense;
    }

    /// <summary>The stored entries of one row: (column, weight) for each tap inside the image.</summary>
    public IEnumerable<(long Column, double Value)> RowEntries(long row)
    {
        int plane = OutHeight * OutWidth;
        int o = (int)(row / plane);
        int rem = (int)(row - ((long)o * plane));
        int oy = rem / OutWidth, ox = rem % OutWidth;
        int perGroupIn = InChannels / Groups, perGroupOut = OutChannels / Groups;
        int c0 = o / perGroupOut * perGroupIn;
        for (int ci = 0; ci < perGroupIn; ci++)
        {
            for (int ky = 0; ky < KernelH; ky++)
            {
                int iy = (oy * StrideH) - PadH + (ky * DilationH);
                if (iy < 0 || iy >= Height)
                {
                    continue;
                }

                for (int kx = 0; kx < KernelW; kx++)
                {
                    int ix = (ox * StrideW) - PadW + (kx * DilationW);
                    if (ix < 0 || ix >= Width)
                    {
                        continue;
                    }

                    long column = ((((long)(c0 + ci) * Height) + iy) * Width) + ix;
                    yield return (column, weight[(((((long)o * perGroupIn) + ci) * KernelH) + ky) * KernelW + kx]);
                }
            }
        }
    }

    private void RequireLengths(int x, int y)
    {
        if (x != Columns || y != Rows)
        {
            throw new ArgumentException($"The convolution matrix is {Rows} x {Columns}; got an input of {x} and an output of {y} values.");
        }
    }
}

/// <summary>A matrix in compressed sparse rows: row r's entries are [RowStarts[r], RowStarts[r + 1]) of Columns and Values.</summary>
public sealed record SparseRows(int Rows, int ColumnCount, int[] RowStarts, int[] Columns, double[] Values)
{
    /// <summary>Number of stored (structurally non-zero) entries.</summary>
    public int NonZeros => Values.Length;

    /// <summary>y = A x.</summary>
    public void Multiply(ReadOnlySpan<double> x, Span<double> y)
    {
        if (x.Length != ColumnCount || y.Length != Rows)
        {
            throw new ArgumentException($"The matrix is {Rows} x {ColumnCount}; got an input of {x.Length} and an output of {y.Length} values.");
        }

        for (int r = 0; r < Rows; r++)
        {
            double sum = 0;
            for (int e = RowStarts[r]; e < RowStarts[r + 1]; e++)
            {
                sum += Values[e] * x[Columns[e]];
            }

            y[r] = sum;
        }
    }
}
