using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace MobileOne.Kernels.Engine;

/// <summary>
/// The per-pixel part of the dynamic activations over one NHWC pixel, vectorized over channels (a vector block per
/// lane width, then the channels that remain one at a time): DyReLU, y_c = max_k (a^k_c x_c + b^k_c), and dynamic
/// shift-max, y_i = max_k sum_j a^k_{i,j} x_{(i + j s) mod C}. The coefficients are one image's, computed by the
/// engine's hyper-function step; their layout is channel-contiguous, so a vector of channels loads them directly.
/// </summary>
internal static unsafe class DynamicActivationKernels
{
    /// <summary>
    /// DyReLU of one pixel. Coefficients: a^k at [k * C], b^k at [(K + k) * C] (per channel, DyReLU-B), or the 2K
    /// scalars a^0..a^{K-1}, b^0..b^{K-1} shared by every channel (DyReLU-A, <paramref name="perChannel"/> false).
    /// </summary>
    public static void DyRelu(Isa isa, float* x, float* y, int channels, float* coef, int k, bool perChannel)
    {
        int vectorEnd = VectorEnd(isa, channels);
        if (isa == Isa.Avx512)
        {
            DyRelu<Vector512<float>, Lanes512>(x, y, channels, coef, k, perChannel, 0, vectorEnd);
        }
        else if (isa == Isa.Avx2)
        {
            DyRelu<Vector256<float>, Lanes256>(x, y, channels, coef, k, perChannel, 0, vectorEnd);
        }

        DyRelu<float, Lanes1>(x, y, channels, coef, k, perChannel, vectorEnd, channels);
    }

    /// <summary>
    /// Dynamic shift-max of one pixel: a^k_{i,j} at [(k J + j) C + i]; the partner of channel i under shift j is
    /// (i + j <paramref name="shift"/>) mod C.
    /// </summary>
    public static void ShiftMax(Isa isa, float* x, float* y, int channels, float* coef, int k, int j, int shift)
    {
        int vectorEnd = VectorEnd(isa, channels);
        if (isa == Isa.Avx512)
        {
            ShiftMax<Vector512<float>, Lanes512>(x, y, channels, coef, k, j, shift, 0, vectorEnd);
        }
        else if (isa == Isa.Avx2)
        {
            ShiftMax<Vector256<float>, Lanes256>(x, y, channels, coef, k, j, shift, 0, vectorEnd);
        }

        ShiftMax<float, Lanes1>(x, y, channels, coef, k, j, shift, vectorEnd, channels);
    }

    private static int VectorEnd(Isa isa, int channels) =>
        isa == Isa.Avx512 ? channels / 16 * 16 : isa == Isa.Avx2 ? channels / 8 * 8 : 0;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void DyRelu<TV, TL>(float* x, float* y, int channels, float* coef, int k, bool perChannel, int c0, int c1)
        where TV : struct
        where TL : struct, ILanes<TV>
    {
        for (int c = c0; c < c1; c += TL.Count)
        {
            TV v = TL.Load(x + c);
            TV best = TL.Fma(Coefficient<TV, TL>(coef, 0, channels, c, perChannel), v, Coefficient<TV, TL>(coef, k, channels, c, perChannel));
            for (int i = 1; i < k; i++)
            {
                TV line = TL.Fma(Coefficient<TV, TL>(coef, i, channels, c, perChannel), v, Coefficient<TV, TL>(coef, k + i, channels, c, perChannel));
                best = TL.Max(best, line);
            }

            TL.Store(y + c, best);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static TV Coefficient<TV, TL>(float* coef, int slot, int channels, int c, bool perChannel)
        where TV : struct
        where TL : struct, ILanes<TV>
        => perChannel ? TL.Load(coef + ((long)slot * channels) + c) : TL.Splat(coef[slot]);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ShiftMax<TV, TL>(float* x, float* y, int channels, float* coef, int k, int j, int shift, int c0, int c1)
        where TV : struct
        where TL : struct, ILanes<TV>
    {
        int lanes = TL.Count;
        float* wrapped = stackalloc float[16];
        for (int c = c0; c < c1; c += lanes)
        {
            TV best = TL.Splat(float.NegativeInfinity);
            for (int kk = 0; kk < k; kk++)
            {
                TV total = TL.Zero;
                for (int jj = 0; jj < j; jj++)
                {
                    int src = (int)((c + ((long)jj * shift)) % channels);
                    TV partner;
                    if (src + lanes <= channels)
                    {
                        partner = TL.Load(x + src);
                    }
                    else
                    {
                        // The block's partners run past the last channel and wrap to the first (only at one block per shift).
                        for (int l = 0; l < lanes; l++)
                        {
                            int s = src + l;
                            wrapped[l] = x[s >= channels ? s - channels : s];
                        }

                        partner = TL.Load(wrapped);
                    }

                    total = TL.Fma(TL.Load(coef + ((((long)kk * j) + jj) * channels) + c), partner, total);
                }

                best = TL.Max(best, total);
            }

            TL.Store(y + c, best);
        }
    }
}
