namespace MobileOne.Kernels;

/// <summary>
/// A strided float matrix over raw memory, so one GEMM serves every convolution pass without copies.
/// Element (r, c) lives at <c>Data + RowOffset(r) + ColOffset(c)</c>. Either index may be split into batches:
/// with <see cref="ColsPerBatch"/> = HW and <see cref="ColBatchStride"/> = C * HW, the columns of a
/// [channels x (batch * pixels)] view walk all images of an NCHW tensor. The memory must stay pinned while a
/// kernel uses the view.
/// </summary>
public readonly unsafe struct MatrixView
{
    /// <summary>
    /// An unbatched view: <paramref name="rows"/> x <paramref name="cols"/> floats with element (r, c) at
    /// <paramref name="data"/> + r * <paramref name="rowStride"/> + c * <paramref name="colStride"/> (strides in floats).
    /// </summary>
    public MatrixView(float* data, int rows, int cols, long rowStride, long colStride)
        : this(data, rows, cols, rowStride, colStride, rows, 0, cols, 0)
    {
    }

    private MatrixView(float* data, int rows, int cols, long rowStride, long colStride, int rowsPerBatch, long rowBatchStride, int colsPerBatch, long colBatchStride)
    {
        if (rows < 0 || cols < 0)
        {
            throw new ArgumentException($"A matrix view needs non-negative sizes; got {rows}x{cols}.");
        }

        Data = data;
        Rows = rows;
        Cols = cols;
        RowStride = rowStride;
        ColStride = colStride;
        RowsPerBatch = Math.Max(1, rowsPerBatch);
        RowBatchStride = rowBatchStride;
        ColsPerBatch = Math.Max(1, colsPerBatch);
        ColBatchStride = colBatchStride;
    }

    /// <summary>Address of element (0, 0).</summary>
    public float* Data { get; }

    /// <summary>Number of rows, batches included (M of a GEMM's A and C).</summary>
    public int Rows { get; }

    /// <summary>Number of columns, batches included (N of a GEMM's B and C).</summary>
    public int Cols { get; }

    /// <summary>Distance between consecutive rows inside one row batch.</summary>
    public long RowStride { get; }

    /// <summary>Distance between consecutive columns inside one column batch.</summary>
    public long ColStride { get; }

    /// <summary>Rows in one row batch, <see cref="RowStride"/> apart; <see cref="Rows"/> (at least 1) when the rows are not split.</summary>
    public int RowsPerBatch { get; }

    /// <summary>Distance in floats from the first row of one row batch to the first row of the next; unused when the rows are not split.</summary>
    public long RowBatchStride { get; }

    /// <summary>Columns in one column batch, <see cref="ColStride"/> apart (the pixels of one image in <see cref="ChannelsByPixels"/>); <see cref="Cols"/> (at least 1) when the columns are not split.</summary>
    public int ColsPerBatch { get; }

    /// <summary>Distance in floats from the first column of one column batch to the first column of the next (one image of an NCHW tensor); unused when the columns are not split.</summary>
    public long ColBatchStride { get; }

    /// <summary>Whether the rows are split into batches (<see cref="RowsPerBatch"/> &lt; <see cref="Rows"/>), so rows are not all one stride apart.</summary>
    public bool RowsBatched => RowsPerBatch < Rows;

    /// <summary>Whether the columns are split into batches (<see cref="ColsPerBatch"/> &lt; <see cref="Cols"/>), so columns are not all one stride apart.</summary>
    public bool ColsBatched => ColsPerBatch < Cols;

    /// <summary>A row-major matrix with leading dimension <paramref name="ld"/>.</summary>
    public static MatrixView RowMajor(float* data, int rows, int cols, long ld) => new(data, rows, cols, ld, 1);

    /// <summary>
    /// The [channels x (batch * plane)] matrix of an NCHW activation: row = channel, column = (image, pixel).
    /// <paramref name="imageStride"/> is the distance between images (channels * plane for a dense tensor).
    /// </summary>
    public static MatrixView ChannelsByPixels(float* data, int channels, int batch, int plane, long imageStride) =>
        new MatrixView(data, channels, batch * plane, plane, 1, channels, 0, plane, imageStride).Normalized();

    /// <summary>
    /// Rows are split into batches of <paramref name="rowsPerBatch"/> rows, <paramref name="batchStride"/> apart
    /// (e.g. the branches of a block stored one after another).
    /// </summary>
    public MatrixView WithRowBatches(int rowsPerBatch, long batchStride) =>
        new MatrixView(Data, Rows, Cols, RowStride, ColStride, rowsPerBatch, batchStride, ColsPerBatch, ColBatchStride).Normalized();

    /// <summary>The same memory seen as the Cols x Rows transpose: rows and columns swap with their strides and batches; nothing is copied.</summary>
    public MatrixView Transposed() =>
        new(Data, Cols, Rows, ColStride, RowStride, ColsPerBatch, ColBatchStride, RowsPerBatch, RowBatchStride);

    /// <summary>The sub-matrix starting at (row, col); batch boundaries keep their positions relative to the parent.</summary>
    public MatrixView Slice(int row, int rows, int col, int cols)
    {
        if (row < 0 || col < 0 || rows < 0 || cols < 0 || row + rows > Rows || col + cols > Cols)
        {
            throw new ArgumentOutOfRangeException(nameof(row), $"Slice [{row}+{rows}, {col}+{cols}] is outside a {Rows}x{Cols} view.");
        }

        if ((RowsBatched && row % RowsPerBatch != 0) || (ColsBatched && col % ColsPerBatch != 0))
        {
            throw new ArgumentException("A slice of a batched view must start on a batch boundary.");
        }

        return new MatrixView(Data + RowOffset(row) + ColOffset(col), rows, cols, RowStride, ColStride, RowsPerBatch, RowBatchStride, ColsPerBatch, ColBatchStride).Normalized();
    }

    /// <summary>Offset in floats of row <paramref name="r"/> from <see cref="Data"/>, row batches included.</summary>
    public long RowOffset(int r) =>
        RowsPerBatch >= Rows ? r * RowStride : ((r / RowsPerBatch) * RowBatchStride) + ((r % RowsPerBatch) * RowStride);

    /// <summary>Offset in floats of column <paramref name="c"/> from <see cref="Data"/>, column batches included.</summary>
    public long ColOffset(int c) =>
        ColsPerBatch >= Cols ? c * ColStride : ((c / ColsPerBatch) * ColBatchStride) + ((c % ColsPerBatch) * ColStride);

    /// <summary>Rows left in the batch that holds row r (so r .. r + run - 1 are RowStride apart).</summary>
    public int RowRun(int r) => RowsPerBatch >= Rows ? Rows - r : RowsPerBatch - (r % RowsPerBatch);

    /// <summary>Columns left in the batch that holds column c.</summary>
    public int ColRun(int c) => ColsPerBatch >= Cols ? Cols - c : ColsPerBatch - (c % ColsPerBatch);

    /// <summary>Drops batch splits that are really uniform strides, so more operands take the contiguous fast paths.</summary>
    private MatrixView Normalized()
    {
        int rowsPer = RowsPerBatch, colsPer = ColsPerBatch;
        long rowStride = RowStride, colStride = ColStride, rowBatch = RowBatchStride, colBatch = ColBatchStride;
        if (rowsPer < Rows && rowsPer == 1)
        {
            rowStride = rowBatch;
            rowsPer = Rows;
        }
        else if (rowsPer < Rows && rowBatch == rowsPer * rowStride)
        {
            rowsPer = Rows;
        }

        if (colsPer < Cols && colsPer == 1)
        {
            colStride = colBatch;
            colsPer = Cols;
        }
        else if (colsPer < Cols && colBatch == colsPer * colStride)
        {
            colsPer = Cols;
        }

        return new MatrixView(Data, Rows, Cols, rowStride, colStride, rowsPer, rowBatch, colsPer, colBatch);
    }
}
