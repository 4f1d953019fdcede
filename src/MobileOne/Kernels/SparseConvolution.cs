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

    /// <summary>
    /// Output pixels [p0, p1) of all images (pixel p is (p / (outH outW), row, column)): output channel o of each gets
    /// the sum of its entries times the input taps (zero outside the image), written (or, with
    /// <paramref name="accumulate"/>, added) at output[p outStride + o]; channels [out, outStride) are zeroed when writing.
    /// </summary>
    public void Run(float* input, int inH, int inW, int inStride, float* output, int outH, int outW, int outStride, long p0, long p1, bool accumulate)
    {
        long plane = (long)outH * outW;
        long inImage = (long)inH * inW * inStride;
        fixed (int* starts = rowStarts, ch = channel, ty = tapY, tx = tapX)
        fixed (float* v = values)
        {
            for (long p = p0; p < p1; p++)
            {
                long n = p / plane;
                int rem = (int)(p - (n * plane));
                int oy = rem / outW, ox = rem - (oy * outW);
                int iy0 = (oy * StrideH) - PadH, ix0 = (ox * StrideW) - PadW;
                bool inside = iy0 >= 0 && ix0 >= 0 && iy0 + KernelH <= inH && ix0 + KernelW <= inW;
                float* image = input + (n * inImage);
                float* window = image + ((((long)iy0 * inW) + ix0) * inStride);
                float* y = output + (p * outStride);
                for (int o = 0; o < OutChannels; o++)
                {
                    float sum = 0f;
                    for (int e = starts[o]; e < starts[o + 1]; e++)
                    {
                        if (inside)
                        {
                            sum += v[e] * window[(((long)ty[e] * inW) + tx[e]) * inStride + ch[e]];
                            continue;
                        }

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
                    for (int c = OutChannels; c < outStride; c++)
                    {
                        y[c] = 0f;
                    }
                }
            }
        }
    }
}
