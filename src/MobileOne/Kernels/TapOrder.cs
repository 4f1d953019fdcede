namespace MobileOne.Kernels;

/// <summary>In which order a filter's taps follow each other along the reduction.</summary>
internal enum TapOrder
{
    /// <summary>ky, then kx, then input channel: the NHWC patch row (im2col) and the image itself (direct).</summary>
    RowMajor,

    /// <summary>kx, then ky, then input channel: the column-interleaved im2win window.</summary>
    ColumnMajor,
}
