using System.Runtime.CompilerServices;

namespace MobileOne.Kernels.Engine;

/// <summary>
/// The dense stem convolution is run as a GEMM: this gathers, for a range of output pixels, each pixel's
/// receptive field straight from the caller's NCHW input into rows of <c>inChannels * k * k</c> values in
/// OIHW order (ci, ky, kx), the order of the packed stem weights. Reading NCHW here is the engine's one
/// layout conversion: everything after the stem is NHWC. Out-of-image taps are zeros.
/// </summary>
internal static unsafe class StemPatches
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Gather(float* input, int inChannels, int inH, int inW, int kernel, int stride, int pad, int outH, int outW, long pixelStart, int count, float* patches)
    {
        int patch = inChannels * kernel * kernel;
        long plane = (long)inH * inW;
        long outPlane = (long)outH * outW;
        for (int i = 0; i < count; i++)
        {
            long pixel = pixelStart + i;
            long n = pixel / outPlane;
            int rem = (int)(pixel - (n * outPlane));
            int oy = rem / outW, ox = rem - (oy * outW);
            int iy0 = (oy * stride) - pad, ix0 = (ox * stride) - pad;
            bool inside = iy0 >= 0 && ix0 >= 0 && iy0 + kernel <= inH && ix0 + kernel <= inW;
            float* dst = patches + ((long)i * patch);
            float* image = input + (n * inChannels * plane);
            for (int ci = 0; ci < inChannels; ci++)
            {
                float* channel = image + (ci * plane);
                for (int ky = 0; ky < kernel; ky++)
                {
                    int iy = iy0 + ky;
                    float* src = channel + ((long)iy * inW);
                    if (inside)
                    {
                        for (int kx = 0; kx < kernel; kx++)
                        {
                            *dst++ = src[ix0 + kx];
                        }
                    }
                    else
                    {
                        for (int kx = 0; kx < kernel; kx++)
                        {
                            int ix = ix0 + kx;
                            *dst++ = (uint)iy < (uint)inH && (uint)ix < (uint)inW ? src[ix] : 0f;
                        }
                    }
                }
            }
        }
    }
}
