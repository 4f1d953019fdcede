using System.Runtime.CompilerServices;
using MobileOne.Kernels.Gemm;
using MobileOne.Kernels.Depthwise;

namespace MobileOne.Kernels.Conv;

/// <summary>Turns run-time depthwise tile sizes (a row tail, a channel block's vector count) into the microkernel's type arguments.</summary>
internal static unsafe class TileDispatch
{
    public static void DepthwiseRows<TV, TL, TCols>(
        int rows, float** a, nint aOffset, float* w, nint ldw, in ReductionLoop taps, float* bias, float* c, nint ldc, bool relu)
        where TV : struct
        where TL : struct, ILanes<TV>
        where TCols : struct, IDim
    {
        switch (rows)
        {
            case 1: DepthwiseTile.Run<TV, TL, D1, TCols>(a, aOffset, w, ldw, taps, bias, c, ldc, relu); break;
            case 2: DepthwiseTile.Run<TV, TL, D2, TCols>(a, aOffset, w, ldw, taps, bias, c, ldc, relu); break;
            case 3: DepthwiseTile.Run<TV, TL, D3, TCols>(a, aOffset, w, ldw, taps, bias, c, ldc, relu); break;
            case 4: DepthwiseTile.Run<TV, TL, D4, TCols>(a, aOffset, w, ldw, taps, bias, c, ldc, relu); break;
            case 5: DepthwiseTile.Run<TV, TL, D5, TCols>(a, aOffset, w, ldw, taps, bias, c, ldc, relu); break;
            default: DepthwiseTile.Run<TV, TL, D6, TCols>(a, aOffset, w, ldw, taps, bias, c, ldc, relu); break;
        }
    }

    /// <summary>
    /// All channels of up to 6 pixels: channel blocks of up to MaxColumnVectors vectors, then the channels
    /// left over one at a time with the scalar kernel (a vector there would read past the pixel).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void DepthwiseAllChannels<TV, TL>(
        int rows, float** a, float* w, int channels, in ReductionLoop taps, float* bias, float* c, bool relu)
        where TV : struct
        where TL : struct, ILanes<TV>
    {
        int lanes = TL.Count;
        int cb = 0;
        while (channels - cb >= lanes)
        {
            int vectors = Math.Min(TL.MaxColumnVectors, (channels - cb) / lanes);
            switch (vectors)
            {
                case 1: DepthwiseRows<TV, TL, D1>(rows, a, cb, w + cb, channels, taps, bias + cb, c + cb, channels, relu); break;
                case 2: DepthwiseRows<TV, TL, D2>(rows, a, cb, w + cb, channels, taps, bias + cb, c + cb, channels, relu); break;
                case 3: DepthwiseRows<TV, TL, D3>(rows, a, cb, w + cb, channels, taps, bias + cb, c + cb, channels, relu); break;
                default: DepthwiseRows<TV, TL, D4>(rows, a, cb, w + cb, channels, taps, bias + cb, c + cb, channels, relu); break;
            }

            cb += vectors * lanes;
        }

        for (; cb < channels; cb++)
        {
            DepthwiseRows<float, Lanes1, D1>(rows, a, cb, w + cb, channels, taps, bias + cb, c + cb, channels, relu);
        }
    }
}
