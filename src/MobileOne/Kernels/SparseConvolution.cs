using System.Buffers;

namespace MobileOne.Kernels;

/// <summary>
/// A convolution whose OIHW weight is sparse (compressed sparse rows over output channels, columns c kh kw + ky kw + kx),
/// groups 1, undilated, zero padding, over NHWC values with a channel stride (the engine's layout). Each entry is
/// decoded once into its tap (ky, kx) and channel; an output is the sum over its row's entries in stored order, so the
/// result does not depend on how pixels are split between threads.
/// </summary>
/// <remarks>
/// Scalar on purpose: a row holds a few scattered entries, so there is nothing contiguous to put in vector lanes
/// without gathering; the kernel's cost is one multiply-add and one scattered load per stored entry and output pixel.
/// docs/ideas.md measures what that costs next to the dense GEMMs.
/// </remarks>
internal sealed unsafe class SparseConvolution
{
    private readonly int[] rowStarts;
    private readonly int[] channel;
    private readonly int[] tapY;
    private readonly int[] tapX;
    private readonly float[] values;

    public SparseConvolution(int inChannels, int outChannels, int kernelH, int kernelW, int strideH, int strideW, int padH, int padW, int[] rowStarts, int[] columns, float[] values)
    {
        InChannels = inChannels;
        OutChannels = outChannels;
        KernelH = kernelH;
        KernelW = kernelW;
        StrideH = strideH;
        StrideW = strideW;
        PadH = padH;
        PadW = padW;
        this.rowStarts = (int[])rowStarts.Clone();
        this.values = (float[])values.Clone();
        channel = new int[columns.Length];
        tapY = new int[columns.Length];
        tapX = new int[columns.Length];
        int taps = kernelH * kernelW;
        for (int e = 0; e < columns.Length; e++)
        {
            channel[e] = columns[e] / taps;
            int tap = columns[e] - (channel[e] * taps);
            tapY[e] = tap / kernelW;
            tapX[e] = tap - (tapY[e] * kernelW);
        }
    }

    public int InChannels { get; }

    public int OutChannels { get; }

    public int KernelH { get; }

    public int KernelW { get; }

    public int StrideH { get; }

    public int StrideW { get; }

    public int PadH { get; }

    public int PadW { get; }

    /// <summary>Output pixels of one row computed together where their whole window lies inside the image.</summary>
    public const int Block = 8;

    /// <summary>
    /// Output pixels [p0, p1) of all images (pixel p is (p / (outH outW), row, column)): output channel o of each gets
    /// the sum of its entries times the input taps (zero outside the image), written (or, with
    /// <paramref name="accumulate"/>, added) at output[p outStride + o]; channels [out, outStride) are zeroed when writing.
    /// </summary>
    /// <remarks>
    /// Runs of <see cref="Block"/> neighbouring pixels whose windows lie inside the image share each entry's weight and
    /// offset and keep one accumulator each, so eight independent multiply-add chains run side by side instead of one
    /// (a single chain waits on the previous add); each output is still its entries' sum in stored order, so the
    /// result is the same as pixel by pixel.
    /// </remarks>
    public void Run(float* input, int inH, int inW, int inStride, float* output, int outH, int outW, int outStride, long p0, long p1, bool accumulate)
    {
        long plane = (long)outH * outW;
        long inImage = (long)inH * inW * inStride;
        int[] rented = ArrayPool<int>.Shared.Rent(Math.Max(1, values.Length));
        try
        {
            // Each entry's offset from its window's first tap, for this input's width and channel stride.
            for (int e = 0; e < values.Length; e++)
            {
                rented[e] = (((tapY[e] * inW) + tapX[e]) * inStride) + channel[e];
            }

            // Output columns [xlo, xhi) have windows inside the image horizontally.
            int xlo = Math.Min(outW, (PadW + StrideW - 1) / StrideW);
            int xhi = inW + PadW >= KernelW ? Math.Min(outW, ((inW - KernelW + PadW) / StrideW) + 1) : 0;
            fixed (int* offsets = rented)
            {
                for (long p = p0; p < p1;)
                {
                    long n = p / plane;
                    int rem = (int)(p - (n * plane));
                    int oy = rem / outW, ox = rem - (oy * outW);
                    int iy0 = (oy * StrideH) - PadH;
                    bool rowInside = iy0 >= 0 && iy0 + KernelH <= inH;
                    long rowEnd = Math.Min(p1, p + (outW - ox));
                    if (rowInside && ox >= xlo && ox + Block <= xhi && p + Block <= rowEnd)
                    {
                        float* window = input + (n * inImage) + ((((long)iy0 * inW) + (ox * StrideW) - PadW) * inStride);
                        BlockOfPixels(window, StrideW * inStride, offsets, output + (p * outStride), outStride, accumulate);
                        p += Block;
                        continue;
                    }

                    if (rowInside && ox >= xlo && ox < xhi)
                    {
                        float* window = input + (n * inImage) + ((((long)iy0 * inW) + (ox * StrideW) - PadW) * inStride);
                        InsidePixel(window, offsets, output + (p * outStride), outStride, accumulate);
                    }
                    else
                    {
                        Pixel(input + (n * inImage), inH, inW, inStride, iy0, (ox * StrideW) - PadW, output + (p * outStride), outStride, accumulate);
                    }

                    p++;
                }
            }
        }
        finally
        {
            ArrayPool<int>.Shared.Return(rented);
        }
    }

    /// <summary><see cref="Block"/> pixels whose windows start <paramref name="step"/> floats apart, all inside the image.</summary>
    private void BlockOfPixels(float* window, int step, int* offsets, float* y, int outStride, bool accumulate)
    {
        fixed (int* starts = rowStarts)
        fixed (float* v = values)
        {
            for (int o = 0; o < OutChannels; o++)
            {
                float a0 = 0f, a1 = 0f, a2 = 0f, a3 = 0f, a4 = 0f, a5 = 0f, a6 = 0f, a7 = 0f;
                for (int e = starts[o]; e < starts[o + 1]; e++)
                {
                    float w = v[e];
                    float* x = window + offsets[e];
                    a0 += w * x[0];
                    a1 += w * x[step];
                    a2 += w * x[2 * step];
                    a3 += w * x[3 * step];
                    a4 += w * x[4 * step];
                    a5 += w * x[5 * step];
                    a6 += w * x[6 * step];
                    a7 += w * x[7 * step];
                }

                Store(y, outStride, 0, o, a0, accumulate);
                Store(y, outStride, 1, o, a1, accumulate);
                Store(y, outStride, 2, o, a2, accumulate);
                Store(y, outStride, 3, o, a3, accumulate);
                Store(y, outStride, 4, o, a4, accumulate);
                Store(y, outStride, 5, o, a5, accumulate);
                Store(y, outStride, 6, o, a6, accumulate);
                Store(y, outStride, 7, o, a7, accumulate);
            }
        }

        if (!accumulate)
        {
            for (int q = 0; q < Block; q++)
            {
                new Span<float>(y + ((long)q * outStride) + OutChannels, outStride - OutChannels).Clear();
            }
        }
    }

    private static void Store(float* y, int outStride, int pixel, int o, float sum, bool accumulate)
    {
        float* target = y + ((long)pixel * outStride) + o;
        *target = accumulate ? *target + sum : sum;
    }

    /// <summary>One pixel whose window (starting at <paramref name="window"/>) lies inside the image: no bounds checks.</summary>
    private void InsidePixel(float* window, int* offsets, float* y, int outStride, bool accumulate)
    {
        fixed (int* starts = rowStarts)
        fixed (float* v = values)
        {
            for (int o = 0; o < OutChannels; o++)
            {
                float sum = 0f;
                for (int e = starts[o]; e < starts[o + 1]; e++)
                {
                    sum += v[e] * window[offsets[e]];
                }

                y[o] = accumulate ? y[o] + sum : sum;
            }

            if (!accumulate)
            {
                new Span<float>(y + OutChannels, outStride - OutChannels).Clear();
            }
        }
    }

    /// <summary>One pixel whose window starts at (iy0, ix0) of <paramref name="image"/>; taps outside the image are zero.</summary>
    private void Pixel(float* image, int inH, int inW, int inStride, int iy0, int ix0, float* y, int outStride, bool accumulate)
    {
        fixed (int* starts = rowStarts, ch = channel, ty = tapY, tx = tapX)
        fixed (float* v = values)
        {
            for (int o = 0; o < OutChannels; o++)
            {
                float sum = 0f;
                for (int e = starts[o]; e < starts[o + 1]; e++)
                {
                    int iy = iy0 + ty[e], ix = ix0 + tx[e];
                    if (iy >= 0 && iy < inH && ix >= 0 && ix < inW)
                    {
                        sum += v[e] * image[((((long)iy * inW) + ix) * inStride) + ch[e]];
                    }
                }

                y[o] = accumulate ? y[o] + sum : sum;
            }

            if (!accumulate)
            {
                new Span<float>(y + OutChannels, outStride - OutChannels).Clear();
            }
        }
    }
}
