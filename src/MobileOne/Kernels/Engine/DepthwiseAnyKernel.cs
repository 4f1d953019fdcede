using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace MobileOne.Kernels.Engine;

/// <summary>
/// A depthwise layer's taps packed tap-major, [kh * kw][paddedChannels], so the taps of 16 channels are one vector
/// load; padded channels have zero weight and bias.
/// </summary>
internal sealed unsafe class DepthwiseTapWeights
{
    private readonly AlignedBuffer weights;
    private readonly AlignedBuffer bias;

    /// <param name="weightOihw">[channels, 1, kh, kw].</param>
    public DepthwiseTapWeights(ReadOnlySpan<float> weightOihw, ReadOnlySpan<float> biasValues, int channels, int kernelH, int kernelW, int paddedChannels)
    {
        int taps = kernelH * kernelW;
        if (weightOihw.Length != channels * taps || (!biasValues.IsEmpty && biasValues.Length != channels) || paddedChannels < channels)
        {
            throw new ArgumentException($"A depthwise {kernelH}x{kernelW} layer of {channels} channels needs {channels * taps} weights and {channels} biases; got {weightOihw.Length} and {biasValues.Length}.");
        }

        Channels = channels;
        PaddedChannels = paddedChannels;
        Taps = taps;
        weights = new AlignedBuffer((long)taps * paddedChannels);
        bias = new AlignedBuffer(paddedChannels);
        for (int c = 0; c < channels; c++)
        {
            for (int t = 0; t < taps; t++)
            {
                weights.Pointer[((long)t * paddedChannels) + c] = weightOihw[(c * taps) + t];
            }

            bias.Pointer[c] = biasValues.IsEmpty ? 0f : biasValues[c];
        }
    }

    public int Channels { get; }

    public int PaddedChannels { get; }

    public int Taps { get; }

    public float* Weights => weights.Pointer;

    public float* Bias => bias.Pointer;
}

/// <summary>
/// Depthwise convolution of any kernel size, stride, padding and dilation over NHWC rows, vectorized over
/// channels: each output pixel is bias (or, accumulating, the value already there) plus the in-bounds taps,
/// added in tap order. Computes all <see cref="DepthwiseTapWeights.PaddedChannels"/> channels (padding gives 0,
/// or leaves an accumulated value unchanged). The engine's fast 3x3 kernel (<see cref="Depthwise3x3"/>) covers
/// the common fused case; this one covers the rest, and the branches that add into a block's sum.
/// </summary>
internal static unsafe class DepthwiseAnyKernel
{
    public readonly record struct Geometry(int InH, int InW, int OutW, int KernelH, int KernelW, int StrideH, int StrideW, int PadH, int PadW, int DilationH, int DilationW);

    /// <summary>Output rows [oy0, oy0 + count) of one image; input and output strides are in floats per pixel.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Rows(EngineIsa isa, float* input, nint ics, DepthwiseTapWeights w, in Geometry g, int oy0, int count, float* output, nint ocs, bool accumulate)
    {
        int cs = w.PaddedChannels;
        for (int oy = oy0; oy < oy0 + count; oy++)
        {
            int iyBase = (oy * g.StrideH) - g.PadH;
            int ky0 = 0, ky1 = g.KernelH;
            while (ky0 < ky1 && iyBase + (ky0 * g.DilationH) < 0)
            {
                ky0++;
            }

            while (ky1 > ky0 && iyBase + ((ky1 - 1) * g.DilationH) >= g.InH)
            {
                ky1--;
            }

            float* orow = output + ((long)(oy - oy0) * g.OutW * ocs);
            for (int ox = 0; ox < g.OutW; ox++)
            {
                int ixBase = (ox * g.StrideW) - g.PadW;
                int kx0 = 0, kx1 = g.KernelW;
                while (kx0 < kx1 && ixBase + (kx0 * g.DilationW) < 0)
                {
                    kx0++;
                }

                while (kx1 > kx0 && ixBase + ((kx1 - 1) * g.DilationW) >= g.InW)
                {
                    kx1--;
                }

                float* o = orow + (ox * ocs);
                var taps = new TapWindow(input, ics, g, iyBase, ixBase);
                int c = 0;
                if (isa == EngineIsa.Avx512)
                {
                    for (; c <= cs - 16; c += 16)
                    {
                        var acc = accumulate ? Vector512.Load(o + c) : Vector512.Load(w.Bias + c);
                        for (int ky = ky0; ky < ky1; ky++)
                        {
                            for (int kx = kx0; kx < kx1; kx++)
                            {
                                acc = Vector512.FusedMultiplyAdd(Vector512.Load(taps.Pixel(ky, kx) + c), Vector512.Load(w.Weights + (taps.Tap(ky, kx) * cs) + c), acc);
                            }
                        }

                        Vector512.Store(acc, o + c);
                    }
                }

                if (isa != EngineIsa.Scalar)
                {
                    for (; c <= cs - 8; c += 8)
                    {
                        var acc = accumulate ? Vector256.Load(o + c) : Vector256.Load(w.Bias + c);
                        for (int ky = ky0; ky < ky1; ky++)
                        {
                            for (int kx = kx0; kx < kx1; kx++)
                            {
                                acc = Vector256.FusedMultiplyAdd(Vector256.Load(taps.Pixel(ky, kx) + c), Vector256.Load(w.Weights + (taps.Tap(ky, kx) * cs) + c), acc);
                            }
                        }

                        Vector256.Store(acc, o + c);
                    }
                }

                for (; c < cs; c++)
                {
                    float acc = accumulate ? o[c] : w.Bias[c];
                    for (int ky = ky0; ky < ky1; ky++)
                    {
                        for (int kx = kx0; kx < kx1; kx++)
                        {
                            acc = MathF.FusedMultiplyAdd(taps.Pixel(ky, kx)[c], w.Weights[(taps.Tap(ky, kx) * cs) + c], acc);
                        }
                    }

                    o[c] = acc;
                }
            }
        }
    }

    /// <summary>Where tap (ky, kx) of one output pixel reads, and its index in the packed weights.</summary>
    private readonly struct TapWindow(float* input, nint ics, DepthwiseAnyKernel.Geometry g, int iyBase, int ixBase)
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public float* Pixel(int ky, int kx) =>
            input + ((((long)(iyBase + (ky * g.DilationH)) * g.InW) + ixBase + (kx * g.DilationW)) * ics);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public long Tap(int ky, int kx) => (ky * g.KernelW) + kx;
    }
}
