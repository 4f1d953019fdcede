using System.Runtime.CompilerServices;

namespace MobileOne.Kernels.Conv;

/// <summary>Turns run-time tile sizes (a row tail, a panel's vector count) into the microkernels' type arguments.</summary>
internal static unsafe class TileDispatch
{
    public static void GemmRows<TVec, TOps, TCols>(
        int rows, float** a, nint aOffset, float* b, nint ldb, in ReductionLoop loop, float* bias, float* c, nint ldc, int validColumns, bool relu)
        where TVec : struct
        where TOps : struct, IVectorOps<TVec>
        where TCols : struct, IConst
    {
        switch (rows)
        {
            case 1: GemmTile.Run<TVec, TOps, N1, TCols>(a, aOffset, b, ldb, loop, bias, c, ldc, validColumns, relu); break;
            case 2: GemmTile.Run<TVec, TOps, N2, TCols>(a, aOffset, b, ldb, loop, bias, c, ldc, validColumns, relu); break;
            case 3: GemmTile.Run<TVec, TOps, N3, TCols>(a, aOffset, b, ldb, loop, bias, c, ldc, validColumns, relu); break;
            case 4: GemmTile.Run<TVec, TOps, N4, TCols>(a, aOffset, b, ldb, loop, bias, c, ldc, validColumns, relu); break;
            case 5: GemmTile.Run<TVec, TOps, N5, TCols>(a, aOffset, b, ldb, loop, bias, c, ldc, validColumns, relu); break;
            default: GemmTile.Run<TVec, TOps, N6, TCols>(a, aOffset, b, ldb, loop, bias, c, ldc, validColumns, relu); break;
        }
    }

    public static void DepthwiseRows<TVec, TOps, TCols>(
        int rows, float** a, nint aOffset, float* w, nint ldw, in ReductionLoop taps, float* bias, float* c, nint ldc, bool relu)
        where TVec : struct
        where TOps : struct, IVectorOps<TVec>
        where TCols : struct, IConst
    {
        switch (rows)
        {
            case 1: DepthwiseTile.Run<TVec, TOps, N1, TCols>(a, aOffset, w, ldw, taps, bias, c, ldc, relu); break;
            case 2: DepthwiseTile.Run<TVec, TOps, N2, TCols>(a, aOffset, w, ldw, taps, bias, c, ldc, relu); break;
            case 3: DepthwiseTile.Run<TVec, TOps, N3, TCols>(a, aOffset, w, ldw, taps, bias, c, ldc, relu); break;
            case 4: DepthwiseTile.Run<TVec, TOps, N4, TCols>(a, aOffset, w, ldw, taps, bias, c, ldc, relu); break;
            case 5: DepthwiseTile.Run<TVec, TOps, N5, TCols>(a, aOffset, w, ldw, taps, bias, c, ldc, relu); break;
            default: DepthwiseTile.Run<TVec, TOps, N6, TCols>(a, aOffset, w, ldw, taps, bias, c, ldc, relu); break;
        }
    }

    /// <summary>
    /// All channels of up to 6 pixels: channel blocks of up to MaxColumnVectors vectors, then the channels
    /// left over one at a time with the scalar kernel (a vector there would read past the pixel).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void DepthwiseAllChannels<TVec, TOps>(
        int rows, float** a, float* w, int channels, in ReductionLoop taps, float* bias, float* c, bool relu)
        where TVec : struct
        where TOps : struct, IVectorOps<TVec>
    {
        int lanes = TOps.Count;
        int cb = 0;
        while (channels - cb >= lanes)
        {
            int vectors = Math.Min(TOps.MaxColumnVectors, (channels - cb) / lanes);
            switch (vectors)
            {
                case 1: DepthwiseRows<TVec, TOps, N1>(rows, a, cb, w + cb, channels, taps, bias + cb, c + cb, channels, relu); break;
                case 2: DepthwiseRows<TVec, TOps, N2>(rows, a, cb, w + cb, channels, taps, bias + cb, c + cb, channels, relu); break;
                case 3: DepthwiseRows<TVec, TOps, N3>(rows, a, cb, w + cb, channels, taps, bias + cb, c + cb, channels, relu); break;
                default: DepthwiseRows<TVec, TOps, N4>(rows, a, cb, w + cb, channels, taps, bias + cb, c + cb, channels, relu); break;
            }

            cb += vectors * lanes;
        }

        for (; cb < channels; cb++)
        {
            DepthwiseRows<float, ScalarOps, N1>(rows, a, cb, w + cb, channels, taps, bias + cb, c + cb, channels, relu);
        }
    }
}
