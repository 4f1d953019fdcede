using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace MobileOne.Kernels.Engine;

/// <summary>
/// Depthwise 3x3 convolution (padding 1, stride 1 or 2) over NHWC activations whose channel stride is a
/// multiple of 16, one output row at a time. Channels are the vector lanes; for each 16-channel block the
/// 9 tap vectors and the bias stay in registers along the row. The interior of a row is computed 8 (then 4,
/// then 1) outputs at a time, loading each input column once per kernel row and feeding it to every output
/// that uses it (10 loads for 8 outputs at stride 1 instead of 24). Rows above and below the image are read
/// from a zero row supplied by the caller; the first and last columns run the same straight-line code with
/// the missing tap column left out, so no pixel pays for bounds checks (1-pixel-wide inputs take the scalar
/// path). The row kernels make no calls, so the 9 taps, bias and accumulators all stay in zmm registers.
/// Accumulation per output: bias, then taps in (ky, kx) order, fused multiply-add.
/// The unrolled tile and row bodies are printed by the scripts in Generators/.
/// </summary>
internal static unsafe class Depthwise3x3
{
    /// <summary>
    /// One output row <paramref name="oy"/> of one image. <paramref name="input"/> is the image's first pixel,
    /// <paramref name="zeroRow"/> at least <c>inW * cs</c> zeros, <paramref name="output"/> the row's first pixel.
    /// </summary>
    public static void Row(EngineIsa isa, float* input, int inH, int inW, nint cs, float* zeroRow, DepthwiseWeights weights, int stride, int oy, float* output, int outW, nint ocs, bool relu)
    {
        float* r0 = RowPointer(input, inH, inW, cs, zeroRow, (oy * stride) - 1);
        float* r1 = RowPointer(input, inH, inW, cs, zeroRow, oy * stride);
        float* r2 = RowPointer(input, inH, inW, cs, zeroRow, (oy * stride) + 1);
        if (inW == 1)
        {
            // A one-pixel-wide input has both edges in one column; the vector rows assume at least two columns.
            isa = EngineIsa.Scalar;
        }

        for (int blk = 0; blk < weights.Blocks; blk++)
        {
            nint off = blk * 16;
            float* w = weights.Block(blk);
            float* b = weights.Bias + off;
            switch (isa)
            {
                case EngineIsa.Avx512:
                    if (stride == 1)
                    {
                        Avx512Kernels.RowS1(r0 + off, r1 + off, r2 + off, cs, inW, w, b, output + off, ocs, outW, relu);
                    }
                    else
                    {
                        Avx512Kernels.RowS2(r0 + off, r1 + off, r2 + off, cs, inW, w, b, output + off, ocs, outW, relu);
                    }

                    break;
                case EngineIsa.Avx2:
                    for (int half = 0; half < 16; half += 8)
                    {
                        if (stride == 1)
                        {
                            Avx2Kernels.RowS1(r0 + off + half, r1 + off + half, r2 + off + half, cs, inW, w + half, b + half, output + off + half, ocs, outW, relu);
                        }
                        else
                        {
                            Avx2Kernels.RowS2(r0 + off + half, r1 + off + half, r2 + off + half, cs, inW, w + half, b + half, output + off + half, ocs, outW, relu);
                        }
                    }

                    break;
                default:
                    ScalarRow(r0 + off, r1 + off, r2 + off, cs, inW, w, b, stride, output + off, ocs, outW, relu);
                    break;
            }
        }
    }

    /// <summary>
    /// Output rows [oy0, oy0 + count) of one image; on the AVX-512 path stride-1 rows go two at a time
    /// (bit-identical to one at a time).
    /// </summary>
    public static void Rows(EngineIsa isa, float* input, int inH, int inW, nint cs, float* zeroRow, DepthwiseWeights weights, int stride, int oy0, int count, float* output, int outW, nint ocs, bool relu)
    {
        int i = 0;
        if (isa == EngineIsa.Avx512 && stride == 1 && inW >= 2)
        {
            for (; i + 2 <= count; i += 2)
            {
                int oy = oy0 + i;
                float* r0 = RowPointer(input, inH, inW, cs, zeroRow, oy - 1);
                float* r1 = RowPointer(input, inH, inW, cs, zeroRow, oy);
                float* r2 = RowPointer(input, inH, inW, cs, zeroRow, oy + 1);
                float* r3 = RowPointer(input, inH, inW, cs, zeroRow, oy + 2);
                float* o0 = output + ((long)i * outW * ocs);
                float* o1 = o0 + (outW * ocs);
                for (int blk = 0; blk < weights.Blocks; blk++)
                {
                    nint off = blk * 16;
                    Avx512Kernels.RowPairS1(r0 + off, r1 + off, r2 + off, r3 + off, cs, inW, weights.Block(blk), weights.Bias + off, o0 + off, o1 + off, ocs, outW, relu);
                }
            }
        }

        for (; i < count; i++)
        {
            Row(isa, input, inH, inW, cs, zeroRow, weights, stride, oy0 + i, output + ((long)i * outW * ocs), outW, ocs, relu);
        }
    }

    private static float* RowPointer(float* input, int inH, int inW, nint cs, float* zeroRow, int iy) =>
        (uint)iy < (uint)inH ? input + ((long)iy * inW * cs) : zeroRow;

    private static void ScalarRow(float* r0, float* r1, float* r2, nint cs, int inW, float* w, float* bias, int stride, float* o, nint ocs, int outW, bool relu)
    {
        float* acc = stackalloc float[16];
        float** rows = stackalloc float*[3];
        rows[0] = r0;
        rows[1] = r1;
        rows[2] = r2;
        for (int ox = 0; ox < outW; ox++)
        {
            for (int j = 0; j < 16; j++)
            {
                acc[j] = bias[j];
            }

            for (int ky = 0; ky < 3; ky++)
            {
                for (int kx = 0; kx < 3; kx++)
                {
                    int ix = (ox * stride) - 1 + kx;
                    if ((uint)ix >= (uint)inW)
                    {
                        continue;
                    }

                    float* src = rows[ky] + (ix * cs);
                    float* tap = w + (((ky * 3) + kx) * 16);
                    for (int j = 0; j < 16; j++)
                    {
                        acc[j] += src[j] * tap[j];
                    }
                }
            }

            float* dst = o + (ox * ocs);
            for (int j = 0; j < 16; j++)
            {
                dst[j] = relu ? MathF.Max(acc[j], 0f) : acc[j];
            }
        }
    }

    private static class Avx512Kernels
    {
        /// <summary>
        /// Two output rows at once (stride 1): the four input rows are loaded once for both, a third fewer loads than
        /// two single rows. Each output still accumulates its taps in (ky, kx) order, so the result is bit-identical
        /// to <see cref="RowS1"/>. Needs inW >= 2.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public static void RowPairS1(float* r0, float* r1, float* r2, float* r3, nint cs, int inW, float* w, float* bias, float* o0, float* o1, nint ocs, int outW, bool relu)
        {
            var w00 = Vector512.Load(w + 0);
            var w01 = Vector512.Load(w + 16);
            var w02 = Vector512.Load(w + 32);
            var w10 = Vector512.Load(w + 48);
            var w11 = Vector512.Load(w + 64);
            var w12 = Vector512.Load(w + 80);
            var w20 = Vector512.Load(w + 96);
            var w21 = Vector512.Load(w + 112);
            var w22 = Vector512.Load(w + 128);
            var bv = Vector512.Load(bias);
            var zero = Vector512<float>.Zero;
            int hi = Math.Max(Math.Min(inW - 1, outW), 1);
            {
                nint col = -cs;
                Vector512<float> a00 = bv;
                Vector512<float> a10 = bv;
                {
                    float* src = r0 + col;
                    var v1 = Vector512.Load(src + (1 * cs));
                    a00 = Avx512F.FusedMultiplyAdd(v1, w01, a00);
                    var v2 = Vector512.Load(src + (2 * cs));
                    a00 = Avx512F.FusedMultiplyAdd(v2, w02, a00);
                }

                {
                    float* src = r1 + col;
                    var v1 = Vector512.Load(src + (1 * cs));
                    a00 = Avx512F.FusedMultiplyAdd(v1, w11, a00);
                    a10 = Avx512F.FusedMultiplyAdd(v1, w01, a10);
                    var v2 = Vector512.Load(src + (2 * cs));
                    a00 = Avx512F.FusedMultiplyAdd(v2, w12, a00);
                    a10 = Avx512F.FusedMultiplyAdd(v2, w02, a10);
                }

                {
                    float* src = r2 + col;
                    var v1 = Vector512.Load(src + (1 * cs));
                    a00 = Avx512F.FusedMultiplyAdd(v1, w21, a00);
                    a10 = Avx512F.FusedMultiplyAdd(v1, w11, a10);
                    var v2 = Vector512.Load(src + (2 * cs));
                    a00 = Avx512F.FusedMultiplyAdd(v2, w22, a00);
                    a10 = Avx512F.FusedMultiplyAdd(v2, w12, a10);
                }

                {
                    float* src = r3 + col;
                    var v1 = Vector512.Load(src + (1 * cs));
                    a10 = Avx512F.FusedMultiplyAdd(v1, w21, a10);
                    var v2 = Vector512.Load(src + (2 * cs));
                    a10 = Avx512F.FusedMultiplyAdd(v2, w22, a10);
                }

                if (relu)
                {
                    a00 = Vector512.Max(a00, zero);
                    a10 = Vector512.Max(a10, zero);
                }

                float* dst0 = o0;
                a00.Store(dst0);
                float* dst1 = o1;
                a10.Store(dst1);
            }
            for (int ox = hi; ox < outW; ox++)
            {
                {
                    nint col = (ox - 1) * cs;
                    Vector512<float> a00 = bv;
                    Vector512<float> a10 = bv;
                    {
                        float* src = r0 + col;
                        var v0 = Vector512.Load(src);
                        a00 = Avx512F.FusedMultiplyAdd(v0, w00, a00);
                        var v1 = Vector512.Load(src + (1 * cs));
                        a00 = Avx512F.FusedMultiplyAdd(v1, w01, a00);
                    }

                    {
                        float* src = r1 + col;
                        var v0 = Vector512.Load(src);
                        a00 = Avx512F.FusedMultiplyAdd(v0, w10, a00);
                        a10 = Avx512F.FusedMultiplyAdd(v0, w00, a10);
                        var v1 = Vector512.Load(src + (1 * cs));
                        a00 = Avx512F.FusedMultiplyAdd(v1, w11, a00);
                        a10 = Avx512F.FusedMultiplyAdd(v1, w01, a10);
                    }

                    {
                        float* src = r2 + col;
                        var v0 = Vector512.Load(src);
                        a00 = Avx512F.FusedMultiplyAdd(v0, w20, a00);
                        a10 = Avx512F.FusedMultiplyAdd(v0, w10, a10);
                        var v1 = Vector512.Load(src + (1 * cs));
                        a00 = Avx512F.FusedMultiplyAdd(v1, w21, a00);
                        a10 = Avx512F.FusedMultiplyAdd(v1, w11, a10);
                    }

                    {
                        float* src = r3 + col;
                        var v0 = Vector512.Load(src);
                        a10 = Avx512F.FusedMultiplyAdd(v0, w20, a10);
                        var v1 = Vector512.Load(src + (1 * cs));
                        a10 = Avx512F.FusedMultiplyAdd(v1, w21, a10);
                    }

                    if (relu)
                    {
                        a00 = Vector512.Max(a00, zero);
                        a10 = Vector512.Max(a10, zero);
                    }

                    float* dst0 = o0 + (ox * ocs);
                    a00.Store(dst0);
                    float* dst1 = o1 + (ox * ocs);
                    a10.Store(dst1);
                }
            }

            int x = 1;
            while (x + 8 <= hi)
            {
                {
                    nint col = (x - 1) * cs;
                    Vector512<float> a00 = bv, a01 = bv, a02 = bv, a03 = bv, a04 = bv, a05 = bv, a06 = bv, a07 = bv;
                    Vector512<float> a10 = bv, a11 = bv, a12 = bv, a13 = bv, a14 = bv, a15 = bv, a16 = bv, a17 = bv;
                    {
                        float* src = r0 + col;
                        var v0 = Vector512.Load(src);
                        a00 = Avx512F.FusedMultiplyAdd(v0, w00, a00);
                        var v1 = Vector512.Load(src + (1 * cs));
                        a00 = Avx512F.FusedMultiplyAdd(v1, w01, a00);
                        a01 = Avx512F.FusedMultiplyAdd(v1, w00, a01);
                        var v2 = Vector512.Load(src + (2 * cs));
                        a00 = Avx512F.FusedMultiplyAdd(v2, w02, a00);
                        a01 = Avx512F.FusedMultiplyAdd(v2, w01, a01);
                        a02 = Avx512F.FusedMultiplyAdd(v2, w00, a02);
                        var v3 = Vector512.Load(src + (3 * cs));
                        a01 = Avx512F.FusedMultiplyAdd(v3, w02, a01);
                        a02 = Avx512F.FusedMultiplyAdd(v3, w01, a02);
                        a03 = Avx512F.FusedMultiplyAdd(v3, w00, a03);
                        var v4 = Vector512.Load(src + (4 * cs));
                        a02 = Avx512F.FusedMultiplyAdd(v4, w02, a02);
                        a03 = Avx512F.FusedMultiplyAdd(v4, w01, a03);
                        a04 = Avx512F.FusedMultiplyAdd(v4, w00, a04);
                        var v5 = Vector512.Load(src + (5 * cs));
                        a03 = Avx512F.FusedMultiplyAdd(v5, w02, a03);
                        a04 = Avx512F.FusedMultiplyAdd(v5, w01, a04);
                        a05 = Avx512F.FusedMultiplyAdd(v5, w00, a05);
                        var v6 = Vector512.Load(src + (6 * cs));
                        a04 = Avx512F.FusedMultiplyAdd(v6, w02, a04);
                        a05 = Avx512F.FusedMultiplyAdd(v6, w01, a05);
                        a06 = Avx512F.FusedMultiplyAdd(v6, w00, a06);
                        var v7 = Vector512.Load(src + (7 * cs));
                        a05 = Avx512F.FusedMultiplyAdd(v7, w02, a05);
                        a06 = Avx512F.FusedMultiplyAdd(v7, w01, a06);
                        a07 = Avx512F.FusedMultiplyAdd(v7, w00, a07);
                        var v8 = Vector512.Load(src + (8 * cs));
                        a06 = Avx512F.FusedMultiplyAdd(v8, w02, a06);
                        a07 = Avx512F.FusedMultiplyAdd(v8, w01, a07);
                        var v9 = Vector512.Load(src + (9 * cs));
                        a07 = Avx512F.FusedMultiplyAdd(v9, w02, a07);
                    }

                    {
                        float* src = r1 + col;
                        var v0 = Vector512.Load(src);
                        a00 = Avx512F.FusedMultiplyAdd(v0, w10, a00);
                        a10 = Avx512F.FusedMultiplyAdd(v0, w00, a10);
                        var v1 = Vector512.Load(src + (1 * cs));
                        a00 = Avx512F.FusedMultiplyAdd(v1, w11, a00);
                        a01 = Avx512F.FusedMultiplyAdd(v1, w10, a01);
                        a10 = Avx512F.FusedMultiplyAdd(v1, w01, a10);
                        a11 = Avx512F.FusedMultiplyAdd(v1, w00, a11);
                        var v2 = Vector512.Load(src + (2 * cs));
                        a00 = Avx512F.FusedMultiplyAdd(v2, w12, a00);
                        a01 = Avx512F.FusedMultiplyAdd(v2, w11, a01);
                        a02 = Avx512F.FusedMultiplyAdd(v2, w10, a02);
                        a10 = Avx512F.FusedMultiplyAdd(v2, w02, a10);
                        a11 = Avx512F.FusedMultiplyAdd(v2, w01, a11);
                        a12 = Avx512F.FusedMultiplyAdd(v2, w00, a12);
                        var v3 = Vector512.Load(src + (3 * cs));
                        a01 = Avx512F.FusedMultiplyAdd(v3, w12, a01);
                        a02 = Avx512F.FusedMultiplyAdd(v3, w11, a02);
                        a03 = Avx512F.FusedMultiplyAdd(v3, w10, a03);
                        a11 = Avx512F.FusedMultiplyAdd(v3, w02, a11);
                        a12 = Avx512F.FusedMultiplyAdd(v3, w01, a12);
                        a13 = Avx512F.FusedMultiplyAdd(v3, w00, a13);
                        var v4 = Vector512.Load(src + (4 * cs));
                        a02 = Avx512F.FusedMultiplyAdd(v4, w12, a02);
                        a03 = Avx512F.FusedMultiplyAdd(v4, w11, a03);
                        a04 = Avx512F.FusedMultiplyAdd(v4, w10, a04);
                        a12 = Avx512F.FusedMultiplyAdd(v4, w02, a12);
                        a13 = Avx512F.FusedMultiplyAdd(v4, w01, a13);
                        a14 = Avx512F.FusedMultiplyAdd(v4, w00, a14);
                        var v5 = Vector512.Load(src + (5 * cs));
                        a03 = Avx512F.FusedMultiplyAdd(v5, w12, a03);
                        a04 = Avx512F.FusedMultiplyAdd(v5, w11, a04);
                        a05 = Avx512F.FusedMultiplyAdd(v5, w10, a05);
                        a13 = Avx512F.FusedMultiplyAdd(v5, w02, a13);
                        a14 = Avx512F.FusedMultiplyAdd(v5, w01, a14);
                        a15 = Avx512F.FusedMultiplyAdd(v5, w00, a15);
                        var v6 = Vector512.Load(src + (6 * cs));
                        a04 = Avx512F.FusedMultiplyAdd(v6, w12, a04);
                        a05 = Avx512F.FusedMultiplyAdd(v6, w11, a05);
                        a06 = Avx512F.FusedMultiplyAdd(v6, w10, a06);
                        a14 = Avx512F.FusedMultiplyAdd(v6, w02, a14);
                        a15 = Avx512F.FusedMultiplyAdd(v6, w01, a15);
                        a16 = Avx512F.FusedMultiplyAdd(v6, w00, a16);
                        var v7 = Vector512.Load(src + (7 * cs));
                        a05 = Avx512F.FusedMultiplyAdd(v7, w12, a05);
                        a06 = Avx512F.FusedMultiplyAdd(v7, w11, a06);
                        a07 = Avx512F.FusedMultiplyAdd(v7, w10, a07);
                        a15 = Avx512F.FusedMultiplyAdd(v7, w02, a15);
                        a16 = Avx512F.FusedMultiplyAdd(v7, w01, a16);
                        a17 = Avx512F.FusedMultiplyAdd(v7, w00, a17);
                        var v8 = Vector512.Load(src + (8 * cs));
                        a06 = Avx512F.FusedMultiplyAdd(v8, w12, a06);
                        a07 = Avx512F.FusedMultiplyAdd(v8, w11, a07);
                        a16 = Avx512F.FusedMultiplyAdd(v8, w02, a16);
                        a17 = Avx512F.FusedMultiplyAdd(v8, w01, a17);
                        var v9 = Vector512.Load(src + (9 * cs));
                        a07 = Avx512F.FusedMultiplyAdd(v9, w12, a07);
                        a17 = Avx512F.FusedMultiplyAdd(v9, w02, a17);
                    }

                    {
                        float* src = r2 + col;
                        var v0 = Vector512.Load(src);
                        a00 = Avx512F.FusedMultiplyAdd(v0, w20, a00);
                        a10 = Avx512F.FusedMultiplyAdd(v0, w10, a10);
                        var v1 = Vector512.Load(src + (1 * cs));
                        a00 = Avx512F.FusedMultiplyAdd(v1, w21, a00);
                        a01 = Avx512F.FusedMultiplyAdd(v1, w20, a01);
                        a10 = Avx512F.FusedMultiplyAdd(v1, w11, a10);
                        a11 = Avx512F.FusedMultiplyAdd(v1, w10, a11);
                        var v2 = Vector512.Load(src + (2 * cs));
                        a00 = Avx512F.FusedMultiplyAdd(v2, w22, a00);
                        a01 = Avx512F.FusedMultiplyAdd(v2, w21, a01);
                        a02 = Avx512F.FusedMultiplyAdd(v2, w20, a02);
                        a10 = Avx512F.FusedMultiplyAdd(v2, w12, a10);
                        a11 = Avx512F.FusedMultiplyAdd(v2, w11, a11);
                        a12 = Avx512F.FusedMultiplyAdd(v2, w10, a12);
                        var v3 = Vector512.Load(src + (3 * cs));
                        a01 = Avx512F.FusedMultiplyAdd(v3, w22, a01);
                        a02 = Avx512F.FusedMultiplyAdd(v3, w21, a02);
                        a03 = Avx512F.FusedMultiplyAdd(v3, w20, a03);
                        a11 = Avx512F.FusedMultiplyAdd(v3, w12, a11);
                        a12 = Avx512F.FusedMultiplyAdd(v3, w11, a12);
                        a13 = Avx512F.FusedMultiplyAdd(v3, w10, a13);
                        var v4 = Vector512.Load(src + (4 * cs));
                        a02 = Avx512F.FusedMultiplyAdd(v4, w22, a02);
                        a03 = Avx512F.FusedMultiplyAdd(v4, w21, a03);
                        a04 = Avx512F.FusedMultiplyAdd(v4, w20, a04);
                        a12 = Avx512F.FusedMultiplyAdd(v4, w12, a12);
                        a13 = Avx512F.FusedMultiplyAdd(v4, w11, a13);
                        a14 = Avx512F.FusedMultiplyAdd(v4, w10, a14);
                        var v5 = Vector512.Load(src + (5 * cs));
                        a03 = Avx512F.FusedMultiplyAdd(v5, w22, a03);
                        a04 = Avx512F.FusedMultiplyAdd(v5, w21, a04);
                        a05 = Avx512F.FusedMultiplyAdd(v5, w20, a05);
                        a13 = Avx512F.FusedMultiplyAdd(v5, w12, a13);
                        a14 = Avx512F.FusedMultiplyAdd(v5, w11, a14);
                        a15 = Avx512F.FusedMultiplyAdd(v5, w10, a15);
                        var v6 = Vector512.Load(src + (6 * cs));
                        a04 = Avx512F.FusedMultiplyAdd(v6, w22, a04);
                        a05 = Avx512F.FusedMultiplyAdd(v6, w21, a05);
                        a06 = Avx512F.FusedMultiplyAdd(v6, w20, a06);
                        a14 = Avx512F.FusedMultiplyAdd(v6, w12, a14);
                        a15 = Avx512F.FusedMultiplyAdd(v6, w11, a15);
                        a16 = Avx512F.FusedMultiplyAdd(v6, w10, a16);
                        var v7 = Vector512.Load(src + (7 * cs));
                        a05 = Avx512F.FusedMultiplyAdd(v7, w22, a05);
                        a06 = Avx512F.FusedMultiplyAdd(v7, w21, a06);
                        a07 = Avx512F.FusedMultiplyAdd(v7, w20, a07);
                        a15 = Avx512F.FusedMultiplyAdd(v7, w12, a15);
                        a16 = Avx512F.FusedMultiplyAdd(v7, w11, a16);
                        a17 = Avx512F.FusedMultiplyAdd(v7, w10, a17);
                        var v8 = Vector512.Load(src + (8 * cs));
                        a06 = Avx512F.FusedMultiplyAdd(v8, w22, a06);
                        a07 = Avx512F.FusedMultiplyAdd(v8, w21, a07);
                        a16 = Avx512F.FusedMultiplyAdd(v8, w12, a16);
                        a17 = Avx512F.FusedMultiplyAdd(v8, w11, a17);
                        var v9 = Vector512.Load(src + (9 * cs));
                        a07 = Avx512F.FusedMultiplyAdd(v9, w22, a07);
                        a17 = Avx512F.FusedMultiplyAdd(v9, w12, a17);
                    }

                    {
                        float* src = r3 + col;
                        var v0 = Vector512.Load(src);
                        a10 = Avx512F.FusedMultiplyAdd(v0, w20, a10);
                        var v1 = Vector512.Load(src + (1 * cs));
                        a10 = Avx512F.FusedMultiplyAdd(v1, w21, a10);
                        a11 = Avx512F.FusedMultiplyAdd(v1, w20, a11);
                        var v2 = Vector512.Load(src + (2 * cs));
                        a10 = Avx512F.FusedMultiplyAdd(v2, w22, a10);
                        a11 = Avx512F.FusedMultiplyAdd(v2, w21, a11);
                        a12 = Avx512F.FusedMultiplyAdd(v2, w20, a12);
                        var v3 = Vector512.Load(src + (3 * cs));
                        a11 = Avx512F.FusedMultiplyAdd(v3, w22, a11);
                        a12 = Avx512F.FusedMultiplyAdd(v3, w21, a12);
                        a13 = Avx512F.FusedMultiplyAdd(v3, w20, a13);
                        var v4 = Vector512.Load(src + (4 * cs));
                        a12 = Avx512F.FusedMultiplyAdd(v4, w22, a12);
                        a13 = Avx512F.FusedMultiplyAdd(v4, w21, a13);
                        a14 = Avx512F.FusedMultiplyAdd(v4, w20, a14);
                        var v5 = Vector512.Load(src + (5 * cs));
                        a13 = Avx512F.FusedMultiplyAdd(v5, w22, a13);
                        a14 = Avx512F.FusedMultiplyAdd(v5, w21, a14);
                        a15 = Avx512F.FusedMultiplyAdd(v5, w20, a15);
                        var v6 = Vector512.Load(src + (6 * cs));
                        a14 = Avx512F.FusedMultiplyAdd(v6, w22, a14);
                        a15 = Avx512F.FusedMultiplyAdd(v6, w21, a15);
                        a16 = Avx512F.FusedMultiplyAdd(v6, w20, a16);
                        var v7 = Vector512.Load(src + (7 * cs));
                        a15 = Avx512F.FusedMultiplyAdd(v7, w22, a15);
                        a16 = Avx512F.FusedMultiplyAdd(v7, w21, a16);
                        a17 = Avx512F.FusedMultiplyAdd(v7, w20, a17);
                        var v8 = Vector512.Load(src + (8 * cs));
                        a16 = Avx512F.FusedMultiplyAdd(v8, w22, a16);
                        a17 = Avx512F.FusedMultiplyAdd(v8, w21, a17);
                        var v9 = Vector512.Load(src + (9 * cs));
                        a17 = Avx512F.FusedMultiplyAdd(v9, w22, a17);
                    }

                    if (relu)
                    {
                        a00 = Vector512.Max(a00, zero);
                        a01 = Vector512.Max(a01, zero);
                        a02 = Vector512.Max(a02, zero);
                        a03 = Vector512.Max(a03, zero);
                        a04 = Vector512.Max(a04, zero);
                        a05 = Vector512.Max(a05, zero);
                        a06 = Vector512.Max(a06, zero);
                        a07 = Vector512.Max(a07, zero);
                        a10 = Vector512.Max(a10, zero);
                        a11 = Vector512.Max(a11, zero);
                        a12 = Vector512.Max(a12, zero);
                        a13 = Vector512.Max(a13, zero);
                        a14 = Vector512.Max(a14, zero);
                        a15 = Vector512.Max(a15, zero);
                        a16 = Vector512.Max(a16, zero);
                        a17 = Vector512.Max(a17, zero);
                    }

                    float* dst0 = o0 + (x * ocs);
                    a00.Store(dst0);
                    a01.Store(dst0 + (1 * ocs));
                    a02.Store(dst0 + (2 * ocs));
                    a03.Store(dst0 + (3 * ocs));
                    a04.Store(dst0 + (4 * ocs));
                    a05.Store(dst0 + (5 * ocs));
                    a06.Store(dst0 + (6 * ocs));
                    a07.Store(dst0 + (7 * ocs));
                    float* dst1 = o1 + (x * ocs);
                    a10.Store(dst1);
                    a11.Store(dst1 + (1 * ocs));
                    a12.Store(dst1 + (2 * ocs));
                    a13.Store(dst1 + (3 * ocs));
                    a14.Store(dst1 + (4 * ocs));
                    a15.Store(dst1 + (5 * ocs));
                    a16.Store(dst1 + (6 * ocs));
                    a17.Store(dst1 + (7 * ocs));
                }
                x += 8;
            }

            if (x + 4 <= hi)
            {
                {
                    nint col = (x - 1) * cs;
                    Vector512<float> a00 = bv, a01 = bv, a02 = bv, a03 = bv;
                    Vector512<float> a10 = bv, a11 = bv, a12 = bv, a13 = bv;
                    {
                        float* src = r0 + col;
                        var v0 = Vector512.Load(src);
                        a00 = Avx512F.FusedMultiplyAdd(v0, w00, a00);
                        var v1 = Vector512.Load(src + (1 * cs));
                        a00 = Avx512F.FusedMultiplyAdd(v1, w01, a00);
                        a01 = Avx512F.FusedMultiplyAdd(v1, w00, a01);
                        var v2 = Vector512.Load(src + (2 * cs));
                        a00 = Avx512F.FusedMultiplyAdd(v2, w02, a00);
                        a01 = Avx512F.FusedMultiplyAdd(v2, w01, a01);
                        a02 = Avx512F.FusedMultiplyAdd(v2, w00, a02);
                        var v3 = Vector512.Load(src + (3 * cs));
                        a01 = Avx512F.FusedMultiplyAdd(v3, w02, a01);
                        a02 = Avx512F.FusedMultiplyAdd(v3, w01, a02);
                        a03 = Avx512F.FusedMultiplyAdd(v3, w00, a03);
                        var v4 = Vector512.Load(src + (4 * cs));
                        a02 = Avx512F.FusedMultiplyAdd(v4, w02, a02);
                        a03 = Avx512F.FusedMultiplyAdd(v4, w01, a03);
                        var v5 = Vector512.Load(src + (5 * cs));
                        a03 = Avx512F.FusedMultiplyAdd(v5, w02, a03);
                    }

                    {
                        float* src = r1 + col;
                        var v0 = Vector512.Load(src);
                        a00 = Avx512F.FusedMultiplyAdd(v0, w10, a00);
                        a10 = Avx512F.FusedMultiplyAdd(v0, w00, a10);
                        var v1 = Vector512.Load(src + (1 * cs));
                        a00 = Avx512F.FusedMultiplyAdd(v1, w11, a00);
                        a01 = Avx512F.FusedMultiplyAdd(v1, w10, a01);
                        a10 = Avx512F.FusedMultiplyAdd(v1, w01, a10);
                        a11 = Avx512F.FusedMultiplyAdd(v1, w00, a11);
                        var v2 = Vector512.Load(src + (2 * cs));
                        a00 = Avx512F.FusedMultiplyAdd(v2, w12, a00);
                        a01 = Avx512F.FusedMultiplyAdd(v2, w11, a01);
                        a02 = Avx512F.FusedMultiplyAdd(v2, w10, a02);
                        a10 = Avx512F.FusedMultiplyAdd(v2, w02, a10);
                        a11 = Avx512F.FusedMultiplyAdd(v2, w01, a11);
                        a12 = Avx512F.FusedMultiplyAdd(v2, w00, a12);
                        var v3 = Vector512.Load(src + (3 * cs));
                        a01 = Avx512F.FusedMultiplyAdd(v3, w12, a01);
                        a02 = Avx512F.FusedMultiplyAdd(v3, w11, a02);
                        a03 = Avx512F.FusedMultiplyAdd(v3, w10, a03);
                        a11 = Avx512F.FusedMultiplyAdd(v3, w02, a11);
                        a12 = Avx512F.FusedMultiplyAdd(v3, w01, a12);
                        a13 = Avx512F.FusedMultiplyAdd(v3, w00, a13);
                        var v4 = Vector512.Load(src + (4 * cs));
                        a02 = Avx512F.FusedMultiplyAdd(v4, w12, a02);
                        a03 = Avx512F.FusedMultiplyAdd(v4, w11, a03);
                        a12 = Avx512F.FusedMultiplyAdd(v4, w02, a12);
                        a13 = Avx512F.FusedMultiplyAdd(v4, w01, a13);
                        var v5 = Vector512.Load(src + (5 * cs));
                        a03 = Avx512F.FusedMultiplyAdd(v5, w12, a03);
                        a13 = Avx512F.FusedMultiplyAdd(v5, w02, a13);
                    }

                    {
                        float* src = r2 + col;
                        var v0 = Vector512.Load(src);
                        a00 = Avx512F.FusedMultiplyAdd(v0, w20, a00);
                        a10 = Avx512F.FusedMultiplyAdd(v0, w10, a10);
                        var v1 = Vector512.Load(src + (1 * cs));
                        a00 = Avx512F.FusedMultiplyAdd(v1, w21, a00);
                        a01 = Avx512F.FusedMultiplyAdd(v1, w20, a01);
                        a10 = Avx512F.FusedMultiplyAdd(v1, w11, a10);
                        a11 = Avx512F.FusedMultiplyAdd(v1, w10, a11);
                        var v2 = Vector512.Load(src + (2 * cs));
                        a00 = Avx512F.FusedMultiplyAdd(v2, w22, a00);
                        a01 = Avx512F.FusedMultiplyAdd(v2, w21, a01);
                        a02 = Avx512F.FusedMultiplyAdd(v2, w20, a02);
                        a10 = Avx512F.FusedMultiplyAdd(v2, w12, a10);
                        a11 = Avx512F.FusedMultiplyAdd(v2, w11, a11);
                        a12 = Avx512F.FusedMultiplyAdd(v2, w10, a12);
                        var v3 = Vector512.Load(src + (3 * cs));
                        a01 = Avx512F.FusedMultiplyAdd(v3, w22, a01);
                        a02 = Avx512F.FusedMultiplyAdd(v3, w21, a02);
                        a03 = Avx512F.FusedMultiplyAdd(v3, w20, a03);
                        a11 = Avx512F.FusedMultiplyAdd(v3, w12, a11);
                        a12 = Avx512F.FusedMultiplyAdd(v3, w11, a12);
                        a13 = Avx512F.FusedMultiplyAdd(v3, w10, a13);
                        var v4 = Vector512.Load(src + (4 * cs));
                        a02 = Avx512F.FusedMultiplyAdd(v4, w22, a02);
                        a03 = Avx512F.FusedMultiplyAdd(v4, w21, a03);
                        a12 = Avx512F.FusedMultiplyAdd(v4, w12, a12);
                        a13 = Avx512F.FusedMultiplyAdd(v4, w11, a13);
                        var v5 = Vector512.Load(src + (5 * cs));
                        a03 = Avx512F.FusedMultiplyAdd(v5, w22, a03);
                        a13 = Avx512F.FusedMultiplyAdd(v5, w12, a13);
                    }

                    {
                        float* src = r3 + col;
                        var v0 = Vector512.Load(src);
                        a10 = Avx512F.FusedMultiplyAdd(v0, w20, a10);
                        var v1 = Vector512.Load(src + (1 * cs));
                        a10 = Avx512F.FusedMultiplyAdd(v1, w21, a10);
                        a11 = Avx512F.FusedMultiplyAdd(v1, w20, a11);
                        var v2 = Vector512.Load(src + (2 * cs));
                        a10 = Avx512F.FusedMultiplyAdd(v2, w22, a10);
                        a11 = Avx512F.FusedMultiplyAdd(v2, w21, a11);
                        a12 = Avx512F.FusedMultiplyAdd(v2, w20, a12);
                        var v3 = Vector512.Load(src + (3 * cs));
                        a11 = Avx512F.FusedMultiplyAdd(v3, w22, a11);
                        a12 = Avx512F.FusedMultiplyAdd(v3, w21, a12);
                        a13 = Avx512F.FusedMultiplyAdd(v3, w20, a13);
                        var v4 = Vector512.Load(src + (4 * cs));
                        a12 = Avx512F.FusedMultiplyAdd(v4, w22, a12);
                        a13 = Avx512F.FusedMultiplyAdd(v4, w21, a13);
                        var v5 = Vector512.Load(src + (5 * cs));
                        a13 = Avx512F.FusedMultiplyAdd(v5, w22, a13);
                    }

                    if (relu)
                    {
                        a00 = Vector512.Max(a00, zero);
                        a01 = Vector512.Max(a01, zero);
                        a02 = Vector512.Max(a02, zero);
                        a03 = Vector512.Max(a03, zero);
                        a10 = Vector512.Max(a10, zero);
                        a11 = Vector512.Max(a11, zero);
                        a12 = Vector512.Max(a12, zero);
                        a13 = Vector512.Max(a13, zero);
                    }

                    float* dst0 = o0 + (x * ocs);
                    a00.Store(dst0);
                    a01.Store(dst0 + (1 * ocs));
                    a02.Store(dst0 + (2 * ocs));
                    a03.Store(dst0 + (3 * ocs));
                    float* dst1 = o1 + (x * ocs);
                    a10.Store(dst1);
                    a11.Store(dst1 + (1 * ocs));
                    a12.Store(dst1 + (2 * ocs));
                    a13.Store(dst1 + (3 * ocs));
                }
                x += 4;
            }

            while (x + 1 <= hi)
            {
                {
                    nint col = (x - 1) * cs;
                    Vector512<float> a00 = bv;
                    Vector512<float> a10 = bv;
                    {
                        float* src = r0 + col;
                        var v0 = Vector512.Load(src);
                        a00 = Avx512F.FusedMultiplyAdd(v0, w00, a00);
                        var v1 = Vector512.Load(src + (1 * cs));
                        a00 = Avx512F.FusedMultiplyAdd(v1, w01, a00);
                        var v2 = Vector512.Load(src + (2 * cs));
                        a00 = Avx512F.FusedMultiplyAdd(v2, w02, a00);
                    }

                    {
                        float* src = r1 + col;
                        var v0 = Vector512.Load(src);
                        a00 = Avx512F.FusedMultiplyAdd(v0, w10, a00);
                        a10 = Avx512F.FusedMultiplyAdd(v0, w00, a10);
                        var v1 = Vector512.Load(src + (1 * cs));
                        a00 = Avx512F.FusedMultiplyAdd(v1, w11, a00);
                        a10 = Avx512F.FusedMultiplyAdd(v1, w01, a10);
                        var v2 = Vector512.Load(src + (2 * cs));
                        a00 = Avx512F.FusedMultiplyAdd(v2, w12, a00);
                        a10 = Avx512F.FusedMultiplyAdd(v2, w02, a10);
                    }

                    {
                        float* src = r2 + col;
                        var v0 = Vector512.Load(src);
                        a00 = Avx512F.FusedMultiplyAdd(v0, w20, a00);
                        a10 = Avx512F.FusedMultiplyAdd(v0, w10, a10);
                        var v1 = Vector512.Load(src + (1 * cs));
                        a00 = Avx512F.FusedMultiplyAdd(v1, w21, a00);
                        a10 = Avx512F.FusedMultiplyAdd(v1, w11, a10);
                        var v2 = Vector512.Load(src + (2 * cs));
                        a00 = Avx512F.FusedMultiplyAdd(v2, w22, a00);
                        a10 = Avx512F.FusedMultiplyAdd(v2, w12, a10);
                    }

                    {
                        float* src = r3 + col;
                        var v0 = Vector512.Load(src);
                        a10 = Avx512F.FusedMultiplyAdd(v0, w20, a10);
                        var v1 = Vector512.Load(src + (1 * cs));
                        a10 = Avx512F.FusedMultiplyAdd(v1, w21, a10);
                        var v2 = Vector512.Load(src + (2 * cs));
                        a10 = Avx512F.FusedMultiplyAdd(v2, w22, a10);
                    }

                    if (relu)
                    {
                        a00 = Vector512.Max(a00, zero);
                        a10 = Vector512.Max(a10, zero);
                    }

                    float* dst0 = o0 + (x * ocs);
                    a00.Store(dst0);
                    float* dst1 = o1 + (x * ocs);
                    a10.Store(dst1);
                }
                x += 1;
            }
        }


        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public static void RowS1(float* r0, float* r1, float* r2, nint cs, int inW, float* w, float* bias, float* o, nint ocs, int outW, bool relu)
        {
            var w00 = Vector512.Load(w + 0);
            var w01 = Vector512.Load(w + 16);
            var w02 = Vector512.Load(w + 32);
            var w10 = Vector512.Load(w + 48);
            var w11 = Vector512.Load(w + 64);
            var w12 = Vector512.Load(w + 80);
            var w20 = Vector512.Load(w + 96);
            var w21 = Vector512.Load(w + 112);
            var w22 = Vector512.Load(w + 128);
            var bv = Vector512.Load(bias);
            var zero = Vector512<float>.Zero;
            int lo = Math.Min(1, outW);
            int hi = inW >= 2 ? Math.Min(((inW - 2) / 1) + 1, outW) : lo;
            hi = Math.Max(hi, lo);
            // The first column has no left neighbour, the last (if any is an edge) no right one: the same code as an
            // interior column with that tap column left out.
            {
                nint col = -1 * cs;
                Vector512<float> a0 = bv;
                {
                    float* src = r0 + col;
                    var v1 = Vector512.Load(src + (1 * cs));
                    a0 = Avx512F.FusedMultiplyAdd(v1, w01, a0);
                    var v2 = Vector512.Load(src + (2 * cs));
                    a0 = Avx512F.FusedMultiplyAdd(v2, w02, a0);
                }

                {
                    float* src = r1 + col;
                    var v1 = Vector512.Load(src + (1 * cs));
                    a0 = Avx512F.FusedMultiplyAdd(v1, w11, a0);
                    var v2 = Vector512.Load(src + (2 * cs));
                    a0 = Avx512F.FusedMultiplyAdd(v2, w12, a0);
                }

                {
                    float* src = r2 + col;
                    var v1 = Vector512.Load(src + (1 * cs));
                    a0 = Avx512F.FusedMultiplyAdd(v1, w21, a0);
                    var v2 = Vector512.Load(src + (2 * cs));
                    a0 = Avx512F.FusedMultiplyAdd(v2, w22, a0);
                }

                if (relu)
                {
                    a0 = Vector512.Max(a0, zero);
                }

                float* dst = o;
                a0.Store(dst);
            }

            for (int ox = hi; ox < outW; ox++)
            {
                {
                    nint col = (ox - 1) * cs;
                    Vector512<float> a0 = bv;
                    {
                        float* src = r0 + col;
                        var v0 = Vector512.Load(src);
                        a0 = Avx512F.FusedMultiplyAdd(v0, w00, a0);
                        var v1 = Vector512.Load(src + (1 * cs));
                        a0 = Avx512F.FusedMultiplyAdd(v1, w01, a0);
                    }

                    {
                        float* src = r1 + col;
                        var v0 = Vector512.Load(src);
                        a0 = Avx512F.FusedMultiplyAdd(v0, w10, a0);
                        var v1 = Vector512.Load(src + (1 * cs));
                        a0 = Avx512F.FusedMultiplyAdd(v1, w11, a0);
                    }

                    {
                        float* src = r2 + col;
                        var v0 = Vector512.Load(src);
                        a0 = Avx512F.FusedMultiplyAdd(v0, w20, a0);
                        var v1 = Vector512.Load(src + (1 * cs));
                        a0 = Avx512F.FusedMultiplyAdd(v1, w21, a0);
                    }

                    if (relu)
                    {
                        a0 = Vector512.Max(a0, zero);
                    }

                    float* dst = o + (ox * ocs);
                    a0.Store(dst);
                }
            }

            int x = lo;
            while (x + 8 <= hi)
            {
                nint col = (x - 1) * cs;
                Vector512<float> a0 = bv, a1 = bv, a2 = bv, a3 = bv, a4 = bv, a5 = bv, a6 = bv, a7 = bv;
                {
                    float* src = r0 + col;
                    var v0 = Vector512.Load(src);
                    a0 = Avx512F.FusedMultiplyAdd(v0, w00, a0);
                    var v1 = Vector512.Load(src + (1 * cs));
                    a0 = Avx512F.FusedMultiplyAdd(v1, w01, a0);
                    a1 = Avx512F.FusedMultiplyAdd(v1, w00, a1);
                    var v2 = Vector512.Load(src + (2 * cs));
                    a0 = Avx512F.FusedMultiplyAdd(v2, w02, a0);
                    a1 = Avx512F.FusedMultiplyAdd(v2, w01, a1);
                    a2 = Avx512F.FusedMultiplyAdd(v2, w00, a2);
                    var v3 = Vector512.Load(src + (3 * cs));
                    a1 = Avx512F.FusedMultiplyAdd(v3, w02, a1);
                    a2 = Avx512F.FusedMultiplyAdd(v3, w01, a2);
                    a3 = Avx512F.FusedMultiplyAdd(v3, w00, a3);
                    var v4 = Vector512.Load(src + (4 * cs));
                    a2 = Avx512F.FusedMultiplyAdd(v4, w02, a2);
                    a3 = Avx512F.FusedMultiplyAdd(v4, w01, a3);
                    a4 = Avx512F.FusedMultiplyAdd(v4, w00, a4);
                    var v5 = Vector512.Load(src + (5 * cs));
                    a3 = Avx512F.FusedMultiplyAdd(v5, w02, a3);
                    a4 = Avx512F.FusedMultiplyAdd(v5, w01, a4);
                    a5 = Avx512F.FusedMultiplyAdd(v5, w00, a5);
                    var v6 = Vector512.Load(src + (6 * cs));
                    a4 = Avx512F.FusedMultiplyAdd(v6, w02, a4);
                    a5 = Avx512F.FusedMultiplyAdd(v6, w01, a5);
                    a6 = Avx512F.FusedMultiplyAdd(v6, w00, a6);
                    var v7 = Vector512.Load(src + (7 * cs));
                    a5 = Avx512F.FusedMultiplyAdd(v7, w02, a5);
                    a6 = Avx512F.FusedMultiplyAdd(v7, w01, a6);
                    a7 = Avx512F.FusedMultiplyAdd(v7, w00, a7);
                    var v8 = Vector512.Load(src + (8 * cs));
                    a6 = Avx512F.FusedMultiplyAdd(v8, w02, a6);
                    a7 = Avx512F.FusedMultiplyAdd(v8, w01, a7);
                    var v9 = Vector512.Load(src + (9 * cs));
                    a7 = Avx512F.FusedMultiplyAdd(v9, w02, a7);
                }

                {
                    float* src = r1 + col;
                    var v0 = Vector512.Load(src);
                    a0 = Avx512F.FusedMultiplyAdd(v0, w10, a0);
                    var v1 = Vector512.Load(src + (1 * cs));
                    a0 = Avx512F.FusedMultiplyAdd(v1, w11, a0);
                    a1 = Avx512F.FusedMultiplyAdd(v1, w10, a1);
                    var v2 = Vector512.Load(src + (2 * cs));
                    a0 = Avx512F.FusedMultiplyAdd(v2, w12, a0);
                    a1 = Avx512F.FusedMultiplyAdd(v2, w11, a1);
                    a2 = Avx512F.FusedMultiplyAdd(v2, w10, a2);
                    var v3 = Vector512.Load(src + (3 * cs));
                    a1 = Avx512F.FusedMultiplyAdd(v3, w12, a1);
                    a2 = Avx512F.FusedMultiplyAdd(v3, w11, a2);
                    a3 = Avx512F.FusedMultiplyAdd(v3, w10, a3);
                    var v4 = Vector512.Load(src + (4 * cs));
                    a2 = Avx512F.FusedMultiplyAdd(v4, w12, a2);
                    a3 = Avx512F.FusedMultiplyAdd(v4, w11, a3);
                    a4 = Avx512F.FusedMultiplyAdd(v4, w10, a4);
                    var v5 = Vector512.Load(src + (5 * cs));
                    a3 = Avx512F.FusedMultiplyAdd(v5, w12, a3);
                    a4 = Avx512F.FusedMultiplyAdd(v5, w11, a4);
                    a5 = Avx512F.FusedMultiplyAdd(v5, w10, a5);
                    var v6 = Vector512.Load(src + (6 * cs));
                    a4 = Avx512F.FusedMultiplyAdd(v6, w12, a4);
                    a5 = Avx512F.FusedMultiplyAdd(v6, w11, a5);
                    a6 = Avx512F.FusedMultiplyAdd(v6, w10, a6);
                    var v7 = Vector512.Load(src + (7 * cs));
                    a5 = Avx512F.FusedMultiplyAdd(v7, w12, a5);
                    a6 = Avx512F.FusedMultiplyAdd(v7, w11, a6);
                    a7 = Avx512F.FusedMultiplyAdd(v7, w10, a7);
                    var v8 = Vector512.Load(src + (8 * cs));
                    a6 = Avx512F.FusedMultiplyAdd(v8, w12, a6);
                    a7 = Avx512F.FusedMultiplyAdd(v8, w11, a7);
                    var v9 = Vector512.Load(src + (9 * cs));
                    a7 = Avx512F.FusedMultiplyAdd(v9, w12, a7);
                }

                {
                    float* src = r2 + col;
                    var v0 = Vector512.Load(src);
                    a0 = Avx512F.FusedMultiplyAdd(v0, w20, a0);
                    var v1 = Vector512.Load(src + (1 * cs));
                    a0 = Avx512F.FusedMultiplyAdd(v1, w21, a0);
                    a1 = Avx512F.FusedMultiplyAdd(v1, w20, a1);
                    var v2 = Vector512.Load(src + (2 * cs));
                    a0 = Avx512F.FusedMultiplyAdd(v2, w22, a0);
                    a1 = Avx512F.FusedMultiplyAdd(v2, w21, a1);
                    a2 = Avx512F.FusedMultiplyAdd(v2, w20, a2);
                    var v3 = Vector512.Load(src + (3 * cs));
                    a1 = Avx512F.FusedMultiplyAdd(v3, w22, a1);
                    a2 = Avx512F.FusedMultiplyAdd(v3, w21, a2);
                    a3 = Avx512F.FusedMultiplyAdd(v3, w20, a3);
                    var v4 = Vector512.Load(src + (4 * cs));
                    a2 = Avx512F.FusedMultiplyAdd(v4, w22, a2);
                    a3 = Avx512F.FusedMultiplyAdd(v4, w21, a3);
                    a4 = Avx512F.FusedMultiplyAdd(v4, w20, a4);
                    var v5 = Vector512.Load(src + (5 * cs));
                    a3 = Avx512F.FusedMultiplyAdd(v5, w22, a3);
                    a4 = Avx512F.FusedMultiplyAdd(v5, w21, a4);
                    a5 = Avx512F.FusedMultiplyAdd(v5, w20, a5);
                    var v6 = Vector512.Load(src + (6 * cs));
                    a4 = Avx512F.FusedMultiplyAdd(v6, w22, a4);
                    a5 = Avx512F.FusedMultiplyAdd(v6, w21, a5);
                    a6 = Avx512F.FusedMultiplyAdd(v6, w20, a6);
                    var v7 = Vector512.Load(src + (7 * cs));
                    a5 = Avx512F.FusedMultiplyAdd(v7, w22, a5);
                    a6 = Avx512F.FusedMultiplyAdd(v7, w21, a6);
                    a7 = Avx512F.FusedMultiplyAdd(v7, w20, a7);
                    var v8 = Vector512.Load(src + (8 * cs));
                    a6 = Avx512F.FusedMultiplyAdd(v8, w22, a6);
                    a7 = Avx512F.FusedMultiplyAdd(v8, w21, a7);
                    var v9 = Vector512.Load(src + (9 * cs));
                    a7 = Avx512F.FusedMultiplyAdd(v9, w22, a7);
                }

                if (relu)
                {
                    a0 = Vector512.Max(a0, zero);
                    a1 = Vector512.Max(a1, zero);
                    a2 = Vector512.Max(a2, zero);
                    a3 = Vector512.Max(a3, zero);
                    a4 = Vector512.Max(a4, zero);
                    a5 = Vector512.Max(a5, zero);
                    a6 = Vector512.Max(a6, zero);
                    a7 = Vector512.Max(a7, zero);
                }

                float* dst = o + (x * ocs);
                a0.Store(dst);
                a1.Store(dst + (1 * ocs));
                a2.Store(dst + (2 * ocs));
                a3.Store(dst + (3 * ocs));
                a4.Store(dst + (4 * ocs));
                a5.Store(dst + (5 * ocs));
                a6.Store(dst + (6 * ocs));
                a7.Store(dst + (7 * ocs));
                x += 8;
            }

            if (x + 4 <= hi)
            {
                nint col = (x - 1) * cs;
                Vector512<float> a0 = bv, a1 = bv, a2 = bv, a3 = bv;
                {
                    float* src = r0 + col;
                    var v0 = Vector512.Load(src);
                    a0 = Avx512F.FusedMultiplyAdd(v0, w00, a0);
                    var v1 = Vector512.Load(src + (1 * cs));
                    a0 = Avx512F.FusedMultiplyAdd(v1, w01, a0);
                    a1 = Avx512F.FusedMultiplyAdd(v1, w00, a1);
                    var v2 = Vector512.Load(src + (2 * cs));
                    a0 = Avx512F.FusedMultiplyAdd(v2, w02, a0);
                    a1 = Avx512F.FusedMultiplyAdd(v2, w01, a1);
                    a2 = Avx512F.FusedMultiplyAdd(v2, w00, a2);
                    var v3 = Vector512.Load(src + (3 * cs));
                    a1 = Avx512F.FusedMultiplyAdd(v3, w02, a1);
                    a2 = Avx512F.FusedMultiplyAdd(v3, w01, a2);
                    a3 = Avx512F.FusedMultiplyAdd(v3, w00, a3);
                    var v4 = Vector512.Load(src + (4 * cs));
                    a2 = Avx512F.FusedMultiplyAdd(v4, w02, a2);
                    a3 = Avx512F.FusedMultiplyAdd(v4, w01, a3);
                    var v5 = Vector512.Load(src + (5 * cs));
                    a3 = Avx512F.FusedMultiplyAdd(v5, w02, a3);
                }

                {
                    float* src = r1 + col;
                    var v0 = Vector512.Load(src);
                    a0 = Avx512F.FusedMultiplyAdd(v0, w10, a0);
                    var v1 = Vector512.Load(src + (1 * cs));
                    a0 = Avx512F.FusedMultiplyAdd(v1, w11, a0);
                    a1 = Avx512F.FusedMultiplyAdd(v1, w10, a1);
                    var v2 = Vector512.Load(src + (2 * cs));
                    a0 = Avx512F.FusedMultiplyAdd(v2, w12, a0);
                    a1 = Avx512F.FusedMultiplyAdd(v2, w11, a1);
                    a2 = Avx512F.FusedMultiplyAdd(v2, w10, a2);
                    var v3 = Vector512.Load(src + (3 * cs));
                    a1 = Avx512F.FusedMultiplyAdd(v3, w12, a1);
                    a2 = Avx512F.FusedMultiplyAdd(v3, w11, a2);
                    a3 = Avx512F.FusedMultiplyAdd(v3, w10, a3);
                    var v4 = Vector512.Load(src + (4 * cs));
                    a2 = Avx512F.FusedMultiplyAdd(v4, w12, a2);
                    a3 = Avx512F.FusedMultiplyAdd(v4, w11, a3);
                    var v5 = Vector512.Load(src + (5 * cs));
                    a3 = Avx512F.FusedMultiplyAdd(v5, w12, a3);
                }

                {
                    float* src = r2 + col;
                    var v0 = Vector512.Load(src);
                    a0 = Avx512F.FusedMultiplyAdd(v0, w20, a0);
                    var v1 = Vector512.Load(src + (1 * cs));
                    a0 = Avx512F.FusedMultiplyAdd(v1, w21, a0);
                    a1 = Avx512F.FusedMultiplyAdd(v1, w20, a1);
                    var v2 = Vector512.Load(src + (2 * cs));
                    a0 = Avx512F.FusedMultiplyAdd(v2, w22, a0);
                    a1 = Avx512F.FusedMultiplyAdd(v2, w21, a1);
                    a2 = Avx512F.FusedMultiplyAdd(v2, w20, a2);
                    var v3 = Vector512.Load(src + (3 * cs));
                    a1 = Avx512F.FusedMultiplyAdd(v3, w22, a1);
                    a2 = Avx512F.FusedMultiplyAdd(v3, w21, a2);
                    a3 = Avx512F.FusedMultiplyAdd(v3, w20, a3);
                    var v4 = Vector512.Load(src + (4 * cs));
                    a2 = Avx512F.FusedMultiplyAdd(v4, w22, a2);
                    a3 = Avx512F.FusedMultiplyAdd(v4, w21, a3);
                    var v5 = Vector512.Load(src + (5 * cs));
                    a3 = Avx512F.FusedMultiplyAdd(v5, w22, a3);
                }

                if (relu)
                {
                    a0 = Vector512.Max(a0, zero);
                    a1 = Vector512.Max(a1, zero);
                    a2 = Vector512.Max(a2, zero);
                    a3 = Vector512.Max(a3, zero);
                }

                float* dst = o + (x * ocs);
                a0.Store(dst);
                a1.Store(dst + (1 * ocs));
                a2.Store(dst + (2 * ocs));
                a3.Store(dst + (3 * ocs));
                x += 4;
            }

            while (x + 1 <= hi)
            {
                nint col = (x - 1) * cs;
                Vector512<float> a0 = bv;
                {
                    float* src = r0 + col;
                    var v0 = Vector512.Load(src);
                    a0 = Avx512F.FusedMultiplyAdd(v0, w00, a0);
                    var v1 = Vector512.Load(src + (1 * cs));
                    a0 = Avx512F.FusedMultiplyAdd(v1, w01, a0);
                    var v2 = Vector512.Load(src + (2 * cs));
                    a0 = Avx512F.FusedMultiplyAdd(v2, w02, a0);
                }

                {
                    float* src = r1 + col;
                    var v0 = Vector512.Load(src);
                    a0 = Avx512F.FusedMultiplyAdd(v0, w10, a0);
                    var v1 = Vector512.Load(src + (1 * cs));
                    a0 = Avx512F.FusedMultiplyAdd(v1, w11, a0);
                    var v2 = Vector512.Load(src + (2 * cs));
                    a0 = Avx512F.FusedMultiplyAdd(v2, w12, a0);
                }

                {
                    float* src = r2 + col;
                    var v0 = Vector512.Load(src);
                    a0 = Avx512F.FusedMultiplyAdd(v0, w20, a0);
                    var v1 = Vector512.Load(src + (1 * cs));
                    a0 = Avx512F.FusedMultiplyAdd(v1, w21, a0);
                    var v2 = Vector512.Load(src + (2 * cs));
                    a0 = Avx512F.FusedMultiplyAdd(v2, w22, a0);
                }

                if (relu)
                {
                    a0 = Vector512.Max(a0, zero);
                }

                float* dst = o + (x * ocs);
                a0.Store(dst);
                x += 1;
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public static void RowS2(float* r0, float* r1, float* r2, nint cs, int inW, float* w, float* bias, float* o, nint ocs, int outW, bool relu)
        {
            var w00 = Vector512.Load(w + 0);
            var w01 = Vector512.Load(w + 16);
            var w02 = Vector512.Load(w + 32);
            var w10 = Vector512.Load(w + 48);
            var w11 = Vector512.Load(w + 64);
            var w12 = Vector512.Load(w + 80);
            var w20 = Vector512.Load(w + 96);
            var w21 = Vector512.Load(w + 112);
            var w22 = Vector512.Load(w + 128);
            var bv = Vector512.Load(bias);
            var zero = Vector512<float>.Zero;
            int lo = Math.Min(1, outW);
            int hi = inW >= 2 ? Math.Min(((inW - 2) / 2) + 1, outW) : lo;
            hi = Math.Max(hi, lo);
            // The first column has no left neighbour, the last (if any is an edge) no right one: the same code as an
            // interior column with that tap column left out.
            {
                nint col = -1 * cs;
                Vector512<float> a0 = bv;
                {
                    float* src = r0 + col;
                    var v1 = Vector512.Load(src + (1 * cs));
                    a0 = Avx512F.FusedMultiplyAdd(v1, w01, a0);
                    var v2 = Vector512.Load(src + (2 * cs));
                    a0 = Avx512F.FusedMultiplyAdd(v2, w02, a0);
                }

                {
                    float* src = r1 + col;
                    var v1 = Vector512.Load(src + (1 * cs));
                    a0 = Avx512F.FusedMultiplyAdd(v1, w11, a0);
                    var v2 = Vector512.Load(src + (2 * cs));
                    a0 = Avx512F.FusedMultiplyAdd(v2, w12, a0);
                }

                {
                    float* src = r2 + col;
                    var v1 = Vector512.Load(src + (1 * cs));
                    a0 = Avx512F.FusedMultiplyAdd(v1, w21, a0);
                    var v2 = Vector512.Load(src + (2 * cs));
                    a0 = Avx512F.FusedMultiplyAdd(v2, w22, a0);
                }

                if (relu)
                {
                    a0 = Vector512.Max(a0, zero);
                }

                float* dst = o;
                a0.Store(dst);
            }

            for (int ox = hi; ox < outW; ox++)
            {
                {
                    nint col = ((ox * 2) - 1) * cs;
                    Vector512<float> a0 = bv;
                    {
                        float* src = r0 + col;
                        var v0 = Vector512.Load(src);
                        a0 = Avx512F.FusedMultiplyAdd(v0, w00, a0);
                        var v1 = Vector512.Load(src + (1 * cs));
                        a0 = Avx512F.FusedMultiplyAdd(v1, w01, a0);
                    }

                    {
                        float* src = r1 + col;
                        var v0 = Vector512.Load(src);
                        a0 = Avx512F.FusedMultiplyAdd(v0, w10, a0);
                        var v1 = Vector512.Load(src + (1 * cs));
                        a0 = Avx512F.FusedMultiplyAdd(v1, w11, a0);
                    }

                    {
                        float* src = r2 + col;
                        var v0 = Vector512.Load(src);
                        a0 = Avx512F.FusedMultiplyAdd(v0, w20, a0);
                        var v1 = Vector512.Load(src + (1 * cs));
                        a0 = Avx512F.FusedMultiplyAdd(v1, w21, a0);
                    }

                    if (relu)
                    {
                        a0 = Vector512.Max(a0, zero);
                    }

                    float* dst = o + (ox * ocs);
                    a0.Store(dst);
                }
            }

            int x = lo;
            while (x + 8 <= hi)
            {
                nint col = ((x * 2) - 1) * cs;
                Vector512<float> a0 = bv, a1 = bv, a2 = bv, a3 = bv, a4 = bv, a5 = bv, a6 = bv, a7 = bv;
                {
                    float* src = r0 + col;
                    var v0 = Vector512.Load(src);
                    a0 = Avx512F.FusedMultiplyAdd(v0, w00, a0);
                    var v1 = Vector512.Load(src + (1 * cs));
                    a0 = Avx512F.FusedMultiplyAdd(v1, w01, a0);
                    var v2 = Vector512.Load(src + (2 * cs));
                    a0 = Avx512F.FusedMultiplyAdd(v2, w02, a0);
                    a1 = Avx512F.FusedMultiplyAdd(v2, w00, a1);
                    var v3 = Vector512.Load(src + (3 * cs));
                    a1 = Avx512F.FusedMultiplyAdd(v3, w01, a1);
                    var v4 = Vector512.Load(src + (4 * cs));
                    a1 = Avx512F.FusedMultiplyAdd(v4, w02, a1);
                    a2 = Avx512F.FusedMultiplyAdd(v4, w00, a2);
                    var v5 = Vector512.Load(src + (5 * cs));
                    a2 = Avx512F.FusedMultiplyAdd(v5, w01, a2);
                    var v6 = Vector512.Load(src + (6 * cs));
                    a2 = Avx512F.FusedMultiplyAdd(v6, w02, a2);
                    a3 = Avx512F.FusedMultiplyAdd(v6, w00, a3);
                    var v7 = Vector512.Load(src + (7 * cs));
                    a3 = Avx512F.FusedMultiplyAdd(v7, w01, a3);
                    var v8 = Vector512.Load(src + (8 * cs));
                    a3 = Avx512F.FusedMultiplyAdd(v8, w02, a3);
                    a4 = Avx512F.FusedMultiplyAdd(v8, w00, a4);
                    var v9 = Vector512.Load(src + (9 * cs));
                    a4 = Avx512F.FusedMultiplyAdd(v9, w01, a4);
                    var v10 = Vector512.Load(src + (10 * cs));
                    a4 = Avx512F.FusedMultiplyAdd(v10, w02, a4);
                    a5 = Avx512F.FusedMultiplyAdd(v10, w00, a5);
                    var v11 = Vector512.Load(src + (11 * cs));
                    a5 = Avx512F.FusedMultiplyAdd(v11, w01, a5);
                    var v12 = Vector512.Load(src + (12 * cs));
                    a5 = Avx512F.FusedMultiplyAdd(v12, w02, a5);
                    a6 = Avx512F.FusedMultiplyAdd(v12, w00, a6);
                    var v13 = Vector512.Load(src + (13 * cs));
                    a6 = Avx512F.FusedMultiplyAdd(v13, w01, a6);
                    var v14 = Vector512.Load(src + (14 * cs));
                    a6 = Avx512F.FusedMultiplyAdd(v14, w02, a6);
                    a7 = Avx512F.FusedMultiplyAdd(v14, w00, a7);
                    var v15 = Vector512.Load(src + (15 * cs));
                    a7 = Avx512F.FusedMultiplyAdd(v15, w01, a7);
                    var v16 = Vector512.Load(src + (16 * cs));
                    a7 = Avx512F.FusedMultiplyAdd(v16, w02, a7);
                }

                {
                    float* src = r1 + col;
                    var v0 = Vector512.Load(src);
                    a0 = Avx512F.FusedMultiplyAdd(v0, w10, a0);
                    var v1 = Vector512.Load(src + (1 * cs));
                    a0 = Avx512F.FusedMultiplyAdd(v1, w11, a0);
                    var v2 = Vector512.Load(src + (2 * cs));
                    a0 = Avx512F.FusedMultiplyAdd(v2, w12, a0);
                    a1 = Avx512F.FusedMultiplyAdd(v2, w10, a1);
                    var v3 = Vector512.Load(src + (3 * cs));
                    a1 = Avx512F.FusedMultiplyAdd(v3, w11, a1);
                    var v4 = Vector512.Load(src + (4 * cs));
                    a1 = Avx512F.FusedMultiplyAdd(v4, w12, a1);
                    a2 = Avx512F.FusedMultiplyAdd(v4, w10, a2);
                    var v5 = Vector512.Load(src + (5 * cs));
                    a2 = Avx512F.FusedMultiplyAdd(v5, w11, a2);
                    var v6 = Vector512.Load(src + (6 * cs));
                    a2 = Avx512F.FusedMultiplyAdd(v6, w12, a2);
                    a3 = Avx512F.FusedMultiplyAdd(v6, w10, a3);
                    var v7 = Vector512.Load(src + (7 * cs));
                    a3 = Avx512F.FusedMultiplyAdd(v7, w11, a3);
                    var v8 = Vector512.Load(src + (8 * cs));
                    a3 = Avx512F.FusedMultiplyAdd(v8, w12, a3);
                    a4 = Avx512F.FusedMultiplyAdd(v8, w10, a4);
                    var v9 = Vector512.Load(src + (9 * cs));
                    a4 = Avx512F.FusedMultiplyAdd(v9, w11, a4);
                    var v10 = Vector512.Load(src + (10 * cs));
                    a4 = Avx512F.FusedMultiplyAdd(v10, w12, a4);
                    a5 = Avx512F.FusedMultiplyAdd(v10, w10, a5);
                    var v11 = Vector512.Load(src + (11 * cs));
                    a5 = Avx512F.FusedMultiplyAdd(v11, w11, a5);
                    var v12 = Vector512.Load(src + (12 * cs));
                    a5 = Avx512F.FusedMultiplyAdd(v12, w12, a5);
                    a6 = Avx512F.FusedMultiplyAdd(v12, w10, a6);
                    var v13 = Vector512.Load(src + (13 * cs));
                    a6 = Avx512F.FusedMultiplyAdd(v13, w11, a6);
                    var v14 = Vector512.Load(src + (14 * cs));
                    a6 = Avx512F.FusedMultiplyAdd(v14, w12, a6);
                    a7 = Avx512F.FusedMultiplyAdd(v14, w10, a7);
                    var v15 = Vector512.Load(src + (15 * cs));
                    a7 = Avx512F.FusedMultiplyAdd(v15, w11, a7);
                    var v16 = Vector512.Load(src + (16 * cs));
                    a7 = Avx512F.FusedMultiplyAdd(v16, w12, a7);
                }

                {
                    float* src = r2 + col;
                    var v0 = Vector512.Load(src);
                    a0 = Avx512F.FusedMultiplyAdd(v0, w20, a0);
                    var v1 = Vector512.Load(src + (1 * cs));
                    a0 = Avx512F.FusedMultiplyAdd(v1, w21, a0);
                    var v2 = Vector512.Load(src + (2 * cs));
                    a0 = Avx512F.FusedMultiplyAdd(v2, w22, a0);
                    a1 = Avx512F.FusedMultiplyAdd(v2, w20, a1);
                    var v3 = Vector512.Load(src + (3 * cs));
                    a1 = Avx512F.FusedMultiplyAdd(v3, w21, a1);
                    var v4 = Vector512.Load(src + (4 * cs));
                    a1 = Avx512F.FusedMultiplyAdd(v4, w22, a1);
                    a2 = Avx512F.FusedMultiplyAdd(v4, w20, a2);
                    var v5 = Vector512.Load(src + (5 * cs));
                    a2 = Avx512F.FusedMultiplyAdd(v5, w21, a2);
                    var v6 = Vector512.Load(src + (6 * cs));
                    a2 = Avx512F.FusedMultiplyAdd(v6, w22, a2);
                    a3 = Avx512F.FusedMultiplyAdd(v6, w20, a3);
                    var v7 = Vector512.Load(src + (7 * cs));
                    a3 = Avx512F.FusedMultiplyAdd(v7, w21, a3);
                    var v8 = Vector512.Load(src + (8 * cs));
                    a3 = Avx512F.FusedMultiplyAdd(v8, w22, a3);
                    a4 = Avx512F.FusedMultiplyAdd(v8, w20, a4);
                    var v9 = Vector512.Load(src + (9 * cs));
                    a4 = Avx512F.FusedMultiplyAdd(v9, w21, a4);
                    var v10 = Vector512.Load(src + (10 * cs));
                    a4 = Avx512F.FusedMultiplyAdd(v10, w22, a4);
                    a5 = Avx512F.FusedMultiplyAdd(v10, w20, a5);
                    var v11 = Vector512.Load(src + (11 * cs));
                    a5 = Avx512F.FusedMultiplyAdd(v11, w21, a5);
                    var v12 = Vector512.Load(src + (12 * cs));
                    a5 = Avx512F.FusedMultiplyAdd(v12, w22, a5);
                    a6 = Avx512F.FusedMultiplyAdd(v12, w20, a6);
                    var v13 = Vector512.Load(src + (13 * cs));
                    a6 = Avx512F.FusedMultiplyAdd(v13, w21, a6);
                    var v14 = Vector512.Load(src + (14 * cs));
                    a6 = Avx512F.FusedMultiplyAdd(v14, w22, a6);
                    a7 = Avx512F.FusedMultiplyAdd(v14, w20, a7);
                    var v15 = Vector512.Load(src + (15 * cs));
                    a7 = Avx512F.FusedMultiplyAdd(v15, w21, a7);
                    var v16 = Vector512.Load(src + (16 * cs));
                    a7 = Avx512F.FusedMultiplyAdd(v16, w22, a7);
                }

                if (relu)
                {
                    a0 = Vector512.Max(a0, zero);
                    a1 = Vector512.Max(a1, zero);
                    a2 = Vector512.Max(a2, zero);
                    a3 = Vector512.Max(a3, zero);
                    a4 = Vector512.Max(a4, zero);
                    a5 = Vector512.Max(a5, zero);
                    a6 = Vector512.Max(a6, zero);
                    a7 = Vector512.Max(a7, zero);
                }

                float* dst = o + (x * ocs);
                a0.Store(dst);
                a1.Store(dst + (1 * ocs));
                a2.Store(dst + (2 * ocs));
                a3.Store(dst + (3 * ocs));
                a4.Store(dst + (4 * ocs));
                a5.Store(dst + (5 * ocs));
                a6.Store(dst + (6 * ocs));
                a7.Store(dst + (7 * ocs));
                x += 8;
            }

            if (x + 4 <= hi)
            {
                nint col = ((x * 2) - 1) * cs;
                Vector512<float> a0 = bv, a1 = bv, a2 = bv, a3 = bv;
                {
                    float* src = r0 + col;
                    var v0 = Vector512.Load(src);
                    a0 = Avx512F.FusedMultiplyAdd(v0, w00, a0);
                    var v1 = Vector512.Load(src + (1 * cs));
                    a0 = Avx512F.FusedMultiplyAdd(v1, w01, a0);
                    var v2 = Vector512.Load(src + (2 * cs));
                    a0 = Avx512F.FusedMultiplyAdd(v2, w02, a0);
                    a1 = Avx512F.FusedMultiplyAdd(v2, w00, a1);
                    var v3 = Vector512.Load(src + (3 * cs));
                    a1 = Avx512F.FusedMultiplyAdd(v3, w01, a1);
                    var v4 = Vector512.Load(src + (4 * cs));
                    a1 = Avx512F.FusedMultiplyAdd(v4, w02, a1);
                    a2 = Avx512F.FusedMultiplyAdd(v4, w00, a2);
                    var v5 = Vector512.Load(src + (5 * cs));
                    a2 = Avx512F.FusedMultiplyAdd(v5, w01, a2);
                    var v6 = Vector512.Load(src + (6 * cs));
                    a2 = Avx512F.FusedMultiplyAdd(v6, w02, a2);
                    a3 = Avx512F.FusedMultiplyAdd(v6, w00, a3);
                    var v7 = Vector512.Load(src + (7 * cs));
                    a3 = Avx512F.FusedMultiplyAdd(v7, w01, a3);
                    var v8 = Vector512.Load(src + (8 * cs));
                    a3 = Avx512F.FusedMultiplyAdd(v8, w02, a3);
                }

                {
                    float* src = r1 + col;
                    var v0 = Vector512.Load(src);
                    a0 = Avx512F.FusedMultiplyAdd(v0, w10, a0);
                    var v1 = Vector512.Load(src + (1 * cs));
                    a0 = Avx512F.FusedMultiplyAdd(v1, w11, a0);
                    var v2 = Vector512.Load(src + (2 * cs));
                    a0 = Avx512F.FusedMultiplyAdd(v2, w12, a0);
                    a1 = Avx512F.FusedMultiplyAdd(v2, w10, a1);
                    var v3 = Vector512.Load(src + (3 * cs));
                    a1 = Avx512F.FusedMultiplyAdd(v3, w11, a1);
                    var v4 = Vector512.Load(src + (4 * cs));
                    a1 = Avx512F.FusedMultiplyAdd(v4, w12, a1);
                    a2 = Avx512F.FusedMultiplyAdd(v4, w10, a2);
                    var v5 = Vector512.Load(src + (5 * cs));
                    a2 = Avx512F.FusedMultiplyAdd(v5, w11, a2);
                    var v6 = Vector512.Load(src + (6 * cs));
                    a2 = Avx512F.FusedMultiplyAdd(v6, w12, a2);
                    a3 = Avx512F.FusedMultiplyAdd(v6, w10, a3);
                    var v7 = Vector512.Load(src + (7 * cs));
                    a3 = Avx512F.FusedMultiplyAdd(v7, w11, a3);
                    var v8 = Vector512.Load(src + (8 * cs));
                    a3 = Avx512F.FusedMultiplyAdd(v8, w12, a3);
                }

                {
                    float* src = r2 + col;
                    var v0 = Vector512.Load(src);
                    a0 = Avx512F.FusedMultiplyAdd(v0, w20, a0);
                    var v1 = Vector512.Load(src + (1 * cs));
                    a0 = Avx512F.FusedMultiplyAdd(v1, w21, a0);
                    var v2 = Vector512.Load(src + (2 * cs));
                    a0 = Avx512F.FusedMultiplyAdd(v2, w22, a0);
                    a1 = Avx512F.FusedMultiplyAdd(v2, w20, a1);
                    var v3 = Vector512.Load(src + (3 * cs));
                    a1 = Avx512F.FusedMultiplyAdd(v3, w21, a1);
                    var v4 = Vector512.Load(src + (4 * cs));
                    a1 = Avx512F.FusedMultiplyAdd(v4, w22, a1);
                    a2 = Avx512F.FusedMultiplyAdd(v4, w20, a2);
                    var v5 = Vector512.Load(src + (5 * cs));
                    a2 = Avx512F.FusedMultiplyAdd(v5, w21, a2);
                    var v6 = Vector512.Load(src + (6 * cs));
                    a2 = Avx512F.FusedMultiplyAdd(v6, w22, a2);
                    a3 = Avx512F.FusedMultiplyAdd(v6, w20, a3);
                    var v7 = Vector512.Load(src + (7 * cs));
                    a3 = Avx512F.FusedMultiplyAdd(v7, w21, a3);
                    var v8 = Vector512.Load(src + (8 * cs));
                    a3 = Avx512F.FusedMultiplyAdd(v8, w22, a3);
                }

                if (relu)
                {
                    a0 = Vector512.Max(a0, zero);
                    a1 = Vector512.Max(a1, zero);
                    a2 = Vector512.Max(a2, zero);
                    a3 = Vector512.Max(a3, zero);
                }

                float* dst = o + (x * ocs);
                a0.Store(dst);
                a1.Store(dst + (1 * ocs));
                a2.Store(dst + (2 * ocs));
                a3.Store(dst + (3 * ocs));
                x += 4;
            }

            while (x + 1 <= hi)
            {
                nint col = ((x * 2) - 1) * cs;
                Vector512<float> a0 = bv;
                {
                    float* src = r0 + col;
                    var v0 = Vector512.Load(src);
                    a0 = Avx512F.FusedMultiplyAdd(v0, w00, a0);
                    var v1 = Vector512.Load(src + (1 * cs));
                    a0 = Avx512F.FusedMultiplyAdd(v1, w01, a0);
                    var v2 = Vector512.Load(src + (2 * cs));
                    a0 = Avx512F.FusedMultiplyAdd(v2, w02, a0);
                }

                {
                    float* src = r1 + col;
                    var v0 = Vector512.Load(src);
                    a0 = Avx512F.FusedMultiplyAdd(v0, w10, a0);
                    var v1 = Vector512.Load(src + (1 * cs));
                    a0 = Avx512F.FusedMultiplyAdd(v1, w11, a0);
                    var v2 = Vector512.Load(src + (2 * cs));
                    a0 = Avx512F.FusedMultiplyAdd(v2, w12, a0);
                }

                {
                    float* src = r2 + col;
                    var v0 = Vector512.Load(src);
                    a0 = Avx512F.FusedMultiplyAdd(v0, w20, a0);
                    var v1 = Vector512.Load(src + (1 * cs));
                    a0 = Avx512F.FusedMultiplyAdd(v1, w21, a0);
                    var v2 = Vector512.Load(src + (2 * cs));
                    a0 = Avx512F.FusedMultiplyAdd(v2, w22, a0);
                }

                if (relu)
                {
                    a0 = Vector512.Max(a0, zero);
                }

                float* dst = o + (x * ocs);
                a0.Store(dst);
                x += 1;
            }
        }

    }

    private static class Avx2Kernels
    {
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public static void RowS1(float* r0, float* r1, float* r2, nint cs, int inW, float* w, float* bias, float* o, nint ocs, int outW, bool relu)
        {
            var w00 = Vector256.Load(w + 0);
            var w01 = Vector256.Load(w + 16);
            var w02 = Vector256.Load(w + 32);
            var w10 = Vector256.Load(w + 48);
            var w11 = Vector256.Load(w + 64);
            var w12 = Vector256.Load(w + 80);
            var w20 = Vector256.Load(w + 96);
            var w21 = Vector256.Load(w + 112);
            var w22 = Vector256.Load(w + 128);
            var bv = Vector256.Load(bias);
            var zero = Vector256<float>.Zero;
            int lo = Math.Min(1, outW);
            int hi = inW >= 2 ? Math.Min(((inW - 2) / 1) + 1, outW) : lo;
            hi = Math.Max(hi, lo);
            // The first column has no left neighbour, the last (if any is an edge) no right one: the same code as an
            // interior column with that tap column left out.
            {
                nint col = -1 * cs;
                Vector256<float> a0 = bv;
                {
                    float* src = r0 + col;
                    var v1 = Vector256.Load(src + (1 * cs));
                    a0 = Fma.MultiplyAdd(v1, w01, a0);
                    var v2 = Vector256.Load(src + (2 * cs));
                    a0 = Fma.MultiplyAdd(v2, w02, a0);
                }

                {
                    float* src = r1 + col;
                    var v1 = Vector256.Load(src + (1 * cs));
                    a0 = Fma.MultiplyAdd(v1, w11, a0);
                    var v2 = Vector256.Load(src + (2 * cs));
                    a0 = Fma.MultiplyAdd(v2, w12, a0);
                }

                {
                    float* src = r2 + col;
                    var v1 = Vector256.Load(src + (1 * cs));
                    a0 = Fma.MultiplyAdd(v1, w21, a0);
                    var v2 = Vector256.Load(src + (2 * cs));
                    a0 = Fma.MultiplyAdd(v2, w22, a0);
                }

                if (relu)
                {
                    a0 = Vector256.Max(a0, zero);
                }

                float* dst = o;
                a0.Store(dst);
            }

            for (int ox = hi; ox < outW; ox++)
            {
                {
                    nint col = (ox - 1) * cs;
                    Vector256<float> a0 = bv;
                    {
                        float* src = r0 + col;
                        var v0 = Vector256.Load(src);
                        a0 = Fma.MultiplyAdd(v0, w00, a0);
                        var v1 = Vector256.Load(src + (1 * cs));
                        a0 = Fma.MultiplyAdd(v1, w01, a0);
                    }

                    {
                        float* src = r1 + col;
                        var v0 = Vector256.Load(src);
                        a0 = Fma.MultiplyAdd(v0, w10, a0);
                        var v1 = Vector256.Load(src + (1 * cs));
                        a0 = Fma.MultiplyAdd(v1, w11, a0);
                    }

                    {
                        float* src = r2 + col;
                        var v0 = Vector256.Load(src);
                        a0 = Fma.MultiplyAdd(v0, w20, a0);
                        var v1 = Vector256.Load(src + (1 * cs));
                        a0 = Fma.MultiplyAdd(v1, w21, a0);
                    }

                    if (relu)
                    {
                        a0 = Vector256.Max(a0, zero);
                    }

                    float* dst = o + (ox * ocs);
                    a0.Store(dst);
                }
            }

            int x = lo;
            while (x + 4 <= hi)
            {
                nint col = (x - 1) * cs;
                Vector256<float> a0 = bv, a1 = bv, a2 = bv, a3 = bv;
                {
                    float* src = r0 + col;
                    var v0 = Vector256.Load(src);
                    a0 = Fma.MultiplyAdd(v0, w00, a0);
                    var v1 = Vector256.Load(src + (1 * cs));
                    a0 = Fma.MultiplyAdd(v1, w01, a0);
                    a1 = Fma.MultiplyAdd(v1, w00, a1);
                    var v2 = Vector256.Load(src + (2 * cs));
                    a0 = Fma.MultiplyAdd(v2, w02, a0);
                    a1 = Fma.MultiplyAdd(v2, w01, a1);
                    a2 = Fma.MultiplyAdd(v2, w00, a2);
                    var v3 = Vector256.Load(src + (3 * cs));
                    a1 = Fma.MultiplyAdd(v3, w02, a1);
                    a2 = Fma.MultiplyAdd(v3, w01, a2);
                    a3 = Fma.MultiplyAdd(v3, w00, a3);
                    var v4 = Vector256.Load(src + (4 * cs));
                    a2 = Fma.MultiplyAdd(v4, w02, a2);
                    a3 = Fma.MultiplyAdd(v4, w01, a3);
                    var v5 = Vector256.Load(src + (5 * cs));
                    a3 = Fma.MultiplyAdd(v5, w02, a3);
                }

                {
                    float* src = r1 + col;
                    var v0 = Vector256.Load(src);
                    a0 = Fma.MultiplyAdd(v0, w10, a0);
                    var v1 = Vector256.Load(src + (1 * cs));
                    a0 = Fma.MultiplyAdd(v1, w11, a0);
                    a1 = Fma.MultiplyAdd(v1, w10, a1);
                    var v2 = Vector256.Load(src + (2 * cs));
                    a0 = Fma.MultiplyAdd(v2, w12, a0);
                    a1 = Fma.MultiplyAdd(v2, w11, a1);
                    a2 = Fma.MultiplyAdd(v2, w10, a2);
                    var v3 = Vector256.Load(src + (3 * cs));
                    a1 = Fma.MultiplyAdd(v3, w12, a1);
                    a2 = Fma.MultiplyAdd(v3, w11, a2);
                    a3 = Fma.MultiplyAdd(v3, w10, a3);
                    var v4 = Vector256.Load(src + (4 * cs));
                    a2 = Fma.MultiplyAdd(v4, w12, a2);
                    a3 = Fma.MultiplyAdd(v4, w11, a3);
                    var v5 = Vector256.Load(src + (5 * cs));
                    a3 = Fma.MultiplyAdd(v5, w12, a3);
                }

                {
                    float* src = r2 + col;
                    var v0 = Vector256.Load(src);
                    a0 = Fma.MultiplyAdd(v0, w20, a0);
                    var v1 = Vector256.Load(src + (1 * cs));
                    a0 = Fma.MultiplyAdd(v1, w21, a0);
                    a1 = Fma.MultiplyAdd(v1, w20, a1);
                    var v2 = Vector256.Load(src + (2 * cs));
                    a0 = Fma.MultiplyAdd(v2, w22, a0);
                    a1 = Fma.MultiplyAdd(v2, w21, a1);
                    a2 = Fma.MultiplyAdd(v2, w20, a2);
                    var v3 = Vector256.Load(src + (3 * cs));
                    a1 = Fma.MultiplyAdd(v3, w22, a1);
                    a2 = Fma.MultiplyAdd(v3, w21, a2);
                    a3 = Fma.MultiplyAdd(v3, w20, a3);
                    var v4 = Vector256.Load(src + (4 * cs));
                    a2 = Fma.MultiplyAdd(v4, w22, a2);
                    a3 = Fma.MultiplyAdd(v4, w21, a3);
                    var v5 = Vector256.Load(src + (5 * cs));
                    a3 = Fma.MultiplyAdd(v5, w22, a3);
                }

                if (relu)
                {
                    a0 = Vector256.Max(a0, zero);
                    a1 = Vector256.Max(a1, zero);
                    a2 = Vector256.Max(a2, zero);
                    a3 = Vector256.Max(a3, zero);
                }

                float* dst = o + (x * ocs);
                a0.Store(dst);
                a1.Store(dst + (1 * ocs));
                a2.Store(dst + (2 * ocs));
                a3.Store(dst + (3 * ocs));
                x += 4;
            }

            while (x + 1 <= hi)
            {
                nint col = (x - 1) * cs;
                Vector256<float> a0 = bv;
                {
                    float* src = r0 + col;
                    var v0 = Vector256.Load(src);
                    a0 = Fma.MultiplyAdd(v0, w00, a0);
                    var v1 = Vector256.Load(src + (1 * cs));
                    a0 = Fma.MultiplyAdd(v1, w01, a0);
                    var v2 = Vector256.Load(src + (2 * cs));
                    a0 = Fma.MultiplyAdd(v2, w02, a0);
                }

                {
                    float* src = r1 + col;
                    var v0 = Vector256.Load(src);
                    a0 = Fma.MultiplyAdd(v0, w10, a0);
                    var v1 = Vector256.Load(src + (1 * cs));
                    a0 = Fma.MultiplyAdd(v1, w11, a0);
                    var v2 = Vector256.Load(src + (2 * cs));
                    a0 = Fma.MultiplyAdd(v2, w12, a0);
                }

                {
                    float* src = r2 + col;
                    var v0 = Vector256.Load(src);
                    a0 = Fma.MultiplyAdd(v0, w20, a0);
                    var v1 = Vector256.Load(src + (1 * cs));
                    a0 = Fma.MultiplyAdd(v1, w21, a0);
                    var v2 = Vector256.Load(src + (2 * cs));
                    a0 = Fma.MultiplyAdd(v2, w22, a0);
                }

                if (relu)
                {
                    a0 = Vector256.Max(a0, zero);
                }

                float* dst = o + (x * ocs);
                a0.Store(dst);
                x += 1;
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public static void RowS2(float* r0, float* r1, float* r2, nint cs, int inW, float* w, float* bias, float* o, nint ocs, int outW, bool relu)
        {
            var w00 = Vector256.Load(w + 0);
            var w01 = Vector256.Load(w + 16);
            var w02 = Vector256.Load(w + 32);
            var w10 = Vector256.Load(w + 48);
            var w11 = Vector256.Load(w + 64);
            var w12 = Vector256.Load(w + 80);
            var w20 = Vector256.Load(w + 96);
            var w21 = Vector256.Load(w + 112);
            var w22 = Vector256.Load(w + 128);
            var bv = Vector256.Load(bias);
            var zero = Vector256<float>.Zero;
            int lo = Math.Min(1, outW);
            int hi = inW >= 2 ? Math.Min(((inW - 2) / 2) + 1, outW) : lo;
            hi = Math.Max(hi, lo);
            // The first column has no left neighbour, the last (if any is an edge) no right one: the same code as an
            // interior column with that tap column left out.
            {
                nint col = -1 * cs;
                Vector256<float> a0 = bv;
                {
                    float* src = r0 + col;
                    var v1 = Vector256.Load(src + (1 * cs));
                    a0 = Fma.MultiplyAdd(v1, w01, a0);
                    var v2 = Vector256.Load(src + (2 * cs));
                    a0 = Fma.MultiplyAdd(v2, w02, a0);
                }

                {
                    float* src = r1 + col;
                    var v1 = Vector256.Load(src + (1 * cs));
                    a0 = Fma.MultiplyAdd(v1, w11, a0);
                    var v2 = Vector256.Load(src + (2 * cs));
                    a0 = Fma.MultiplyAdd(v2, w12, a0);
                }

                {
                    float* src = r2 + col;
                    var v1 = Vector256.Load(src + (1 * cs));
                    a0 = Fma.MultiplyAdd(v1, w21, a0);
                    var v2 = Vector256.Load(src + (2 * cs));
                    a0 = Fma.MultiplyAdd(v2, w22, a0);
                }

                if (relu)
                {
                    a0 = Vector256.Max(a0, zero);
                }

                float* dst = o;
                a0.Store(dst);
            }

            for (int ox = hi; ox < outW; ox++)
            {
                {
                    nint col = ((ox * 2) - 1) * cs;
                    Vector256<float> a0 = bv;
                    {
                        float* src = r0 + col;
                        var v0 = Vector256.Load(src);
                        a0 = Fma.MultiplyAdd(v0, w00, a0);
                        var v1 = Vector256.Load(src + (1 * cs));
                        a0 = Fma.MultiplyAdd(v1, w01, a0);
                    }

                    {
                        float* src = r1 + col;
                        var v0 = Vector256.Load(src);
                        a0 = Fma.MultiplyAdd(v0, w10, a0);
                        var v1 = Vector256.Load(src + (1 * cs));
                        a0 = Fma.MultiplyAdd(v1, w11, a0);
                    }

                    {
                        float* src = r2 + col;
                        var v0 = Vector256.Load(src);
                        a0 = Fma.MultiplyAdd(v0, w20, a0);
                        var v1 = Vector256.Load(src + (1 * cs));
                        a0 = Fma.MultiplyAdd(v1, w21, a0);
                    }

                    if (relu)
                    {
                        a0 = Vector256.Max(a0, zero);
                    }

                    float* dst = o + (ox * ocs);
                    a0.Store(dst);
                }
            }

            int x = lo;
            while (x + 4 <= hi)
            {
                nint col = ((x * 2) - 1) * cs;
                Vector256<float> a0 = bv, a1 = bv, a2 = bv, a3 = bv;
                {
                    float* src = r0 + col;
                    var v0 = Vector256.Load(src);
                    a0 = Fma.MultiplyAdd(v0, w00, a0);
                    var v1 = Vector256.Load(src + (1 * cs));
                    a0 = Fma.MultiplyAdd(v1, w01, a0);
                    var v2 = Vector256.Load(src + (2 * cs));
                    a0 = Fma.MultiplyAdd(v2, w02, a0);
                    a1 = Fma.MultiplyAdd(v2, w00, a1);
                    var v3 = Vector256.Load(src + (3 * cs));
                    a1 = Fma.MultiplyAdd(v3, w01, a1);
                    var v4 = Vector256.Load(src + (4 * cs));
                    a1 = Fma.MultiplyAdd(v4, w02, a1);
                    a2 = Fma.MultiplyAdd(v4, w00, a2);
                    var v5 = Vector256.Load(src + (5 * cs));
                    a2 = Fma.MultiplyAdd(v5, w01, a2);
                    var v6 = Vector256.Load(src + (6 * cs));
                    a2 = Fma.MultiplyAdd(v6, w02, a2);
                    a3 = Fma.MultiplyAdd(v6, w00, a3);
                    var v7 = Vector256.Load(src + (7 * cs));
                    a3 = Fma.MultiplyAdd(v7, w01, a3);
                    var v8 = Vector256.Load(src + (8 * cs));
                    a3 = Fma.MultiplyAdd(v8, w02, a3);
                }

                {
                    float* src = r1 + col;
                    var v0 = Vector256.Load(src);
                    a0 = Fma.MultiplyAdd(v0, w10, a0);
                    var v1 = Vector256.Load(src + (1 * cs));
                    a0 = Fma.MultiplyAdd(v1, w11, a0);
                    var v2 = Vector256.Load(src + (2 * cs));
                    a0 = Fma.MultiplyAdd(v2, w12, a0);
                    a1 = Fma.MultiplyAdd(v2, w10, a1);
                    var v3 = Vector256.Load(src + (3 * cs));
                    a1 = Fma.MultiplyAdd(v3, w11, a1);
                    var v4 = Vector256.Load(src + (4 * cs));
                    a1 = Fma.MultiplyAdd(v4, w12, a1);
                    a2 = Fma.MultiplyAdd(v4, w10, a2);
                    var v5 = Vector256.Load(src + (5 * cs));
                    a2 = Fma.MultiplyAdd(v5, w11, a2);
                    var v6 = Vector256.Load(src + (6 * cs));
                    a2 = Fma.MultiplyAdd(v6, w12, a2);
                    a3 = Fma.MultiplyAdd(v6, w10, a3);
                    var v7 = Vector256.Load(src + (7 * cs));
                    a3 = Fma.MultiplyAdd(v7, w11, a3);
                    var v8 = Vector256.Load(src + (8 * cs));
                    a3 = Fma.MultiplyAdd(v8, w12, a3);
                }

                {
                    float* src = r2 + col;
                    var v0 = Vector256.Load(src);
                    a0 = Fma.MultiplyAdd(v0, w20, a0);
                    var v1 = Vector256.Load(src + (1 * cs));
                    a0 = Fma.MultiplyAdd(v1, w21, a0);
                    var v2 = Vector256.Load(src + (2 * cs));
                    a0 = Fma.MultiplyAdd(v2, w22, a0);
                    a1 = Fma.MultiplyAdd(v2, w20, a1);
                    var v3 = Vector256.Load(src + (3 * cs));
                    a1 = Fma.MultiplyAdd(v3, w21, a1);
                    var v4 = Vector256.Load(src + (4 * cs));
                    a1 = Fma.MultiplyAdd(v4, w22, a1);
                    a2 = Fma.MultiplyAdd(v4, w20, a2);
                    var v5 = Vector256.Load(src + (5 * cs));
                    a2 = Fma.MultiplyAdd(v5, w21, a2);
                    var v6 = Vector256.Load(src + (6 * cs));
                    a2 = Fma.MultiplyAdd(v6, w22, a2);
                    a3 = Fma.MultiplyAdd(v6, w20, a3);
                    var v7 = Vector256.Load(src + (7 * cs));
                    a3 = Fma.MultiplyAdd(v7, w21, a3);
                    var v8 = Vector256.Load(src + (8 * cs));
                    a3 = Fma.MultiplyAdd(v8, w22, a3);
                }

                if (relu)
                {
                    a0 = Vector256.Max(a0, zero);
                    a1 = Vector256.Max(a1, zero);
                    a2 = Vector256.Max(a2, zero);
                    a3 = Vector256.Max(a3, zero);
                }

                float* dst = o + (x * ocs);
                a0.Store(dst);
                a1.Store(dst + (1 * ocs));
                a2.Store(dst + (2 * ocs));
                a3.Store(dst + (3 * ocs));
                x += 4;
            }

            while (x + 1 <= hi)
            {
                nint col = ((x * 2) - 1) * cs;
                Vector256<float> a0 = bv;
                {
                    float* src = r0 + col;
                    var v0 = Vector256.Load(src);
                    a0 = Fma.MultiplyAdd(v0, w00, a0);
                    var v1 = Vector256.Load(src + (1 * cs));
                    a0 = Fma.MultiplyAdd(v1, w01, a0);
                    var v2 = Vector256.Load(src + (2 * cs));
                    a0 = Fma.MultiplyAdd(v2, w02, a0);
                }

                {
                    float* src = r1 + col;
                    var v0 = Vector256.Load(src);
                    a0 = Fma.MultiplyAdd(v0, w10, a0);
                    var v1 = Vector256.Load(src + (1 * cs));
                    a0 = Fma.MultiplyAdd(v1, w11, a0);
                    var v2 = Vector256.Load(src + (2 * cs));
                    a0 = Fma.MultiplyAdd(v2, w12, a0);
                }

                {
                    float* src = r2 + col;
                    var v0 = Vector256.Load(src);
                    a0 = Fma.MultiplyAdd(v0, w20, a0);
                    var v1 = Vector256.Load(src + (1 * cs));
                    a0 = Fma.MultiplyAdd(v1, w21, a0);
                    var v2 = Vector256.Load(src + (2 * cs));
                    a0 = Fma.MultiplyAdd(v2, w22, a0);
                }

                if (relu)
                {
                    a0 = Vector256.Max(a0, zero);
                }

                float* dst = o + (x * ocs);
                a0.Store(dst);
                x += 1;
            }
        }

    }
}
