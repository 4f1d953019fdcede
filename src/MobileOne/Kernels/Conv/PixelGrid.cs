namespace MobileOne.Kernels.Conv;

/// <summary>
/// Where each output pixel's reduction row starts in a transformed buffer (or in the image for a 1x1 layer):
/// pixel p of a band is at <c>Start + (p / Columns) * RowStride + (p % Columns) * ColumnStride</c>. Tiles may
/// span output rows, so a band of narrow rows still fills whole 6-pixel tiles.
/// </summary>
internal readonly unsafe struct PixelGrid(float* start, int columns, nint rowStride, nint columnStride)
{
    public float* Start { get; } = start;

    public int Columns { get; } = columns;

    public nint RowStride { get; } = rowStride;

    public nint ColumnStride { get; } = columnStride;
}
