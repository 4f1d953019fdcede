using System.Buffers;
using MobileOne.Kernels;

namespace MobileOne.Tests.Oracle;

/// <summary>
/// The test oracle for the library's convolutions: a plain NCHW 2-D convolution, OIHW weight, any kernel, stride,
/// padding and groups. Depthwise layers run a direct scalar loop; everything else is im2col
/// (the library's <see cref="Im2Col"/>) + <see cref="Gemm"/> per (image, group), and 1x1 stride-1 unpadded layers
/// skip the unfold entirely. It was the library's no-grad path; the library now runs its training kernels there.
/// </summary>
internal static class Convolution
{
    public static void Forward(
        ReadOnlySpan<float> input,
        ReadOnlySpan<float> weight,
        ReadOnlySpan<float> bias,
        Span<float> output,
        in ConvGeometry g)
    {
        g.Validate();
        int inImage = g.InChannels * g.InPlane;
        int outImage = g.OutChannels * g.OutPlane;
        if (input.Length < g.Batch * inImage || output.Length < g.Batch * outImage)
        {
            throw new ArgumentException("Input or output span is smaller than the convolution geometry requires.");
        }

        if (weight.Length != g.OutChannels * g.PatchSize)
        {
            throw new ArgumentException($"Weight has {weight.Length} elements, expected {g.OutChannels * g.PatchSize}.", nameof(weight));
        }

        if (!bias.IsEmpty && bias.Length != g.OutChannels)
        {
            throw new ArgumentException($"Bias has {bias.Length} elements, expected {g.OutChannels}.", nameof(bias));
        }

        if (g.IsDepthwise)
        {
            for (int n = 0; n < g.Batch; n++)
            {
                DepthwiseForward(input.Slice(n * inImage, inImage), weight, output.Slice(n * outImage, outImage), g);
            }
        }
        else
        {
            float[]? rented = g.IsPointwiseIdentityLayout ? null : ArrayPool<float>.Shared.Rent(g.PatchSize * g.OutPlane);
            try
            {
                int og = g.OutChannelsPerGroup;
                for (int n = 0; n < g.Batch; n++)
                {
                    ReadOnlySpan<float> image = input.Slice(n * inImage, inImage);
                    Span<float> outImg = output.Slice(n * outImage, outImage);
                    for (int grp = 0; grp < g.Groups; grp++)
                    {
                        ReadOnlySpan<float> columns;
                        if (rented is null)
                        {
                            columns = image.Slice(grp * g.InChannelsPerGroup * g.InPlane, g.PatchSize * g.InPlane);
                        }
                        else
                        {
                            Im2Col.Unfold(image, g, grp, rented);
                            columns = rented.AsSpan(0, g.PatchSize * g.OutPlane);
                        }

                        Gemm.Multiply(
                            weight.Slice(grp * og * g.PatchSize, og * g.PatchSize), g.PatchSize,
                            columns, g.OutPlane,
                            outImg.Slice(grp * og * g.OutPlane, og * g.OutPlane), g.OutPlane,
                            og, g.OutPlane, g.PatchSize,
                            accumulate: false);
                    }
                }
            }
            finally
            {
                if (rented is not null)
                {
                    ArrayPool<float>.Shared.Return(rented);
                }
            }
        }

        if (!bias.IsEmpty)
        {
            AddChannelBias(output[..(g.Batch * outImage)], bias, g.OutPlane);
        }
    }

    /// <summary>out[n,c,:,:] += bias[c].</summary>
    public static void AddChannelBias(Span<float> output, ReadOnlySpan<float> bias, int plane)
    {
        int channels = bias.Length;
        int images = output.Length / (channels * plane);
        for (int n = 0; n < images; n++)
        {
            for (int c = 0; c < channels; c++)
            {
                Elementwise.AddScalar(output.Slice(((n * channels) + c) * plane, plane), bias[c]);
            }
        }
    }

    private static void DepthwiseForward(ReadOnlySpan<float> image, ReadOnlySpan<float> weight, Span<float> outImage, in ConvGeometry g)
    {
        int kh = g.KernelHeight, kw = g.KernelWidth;
        int ho = g.OutHeight, wo = g.OutWidth;
        for (int c = 0; c < g.InChannels; c++)
        {
            ReadOnlySpan<float> src = image.Slice(c * g.InPlane, g.InPlane);
            ReadOnlySpan<float> w = weight.Slice(c * kh * kw, kh * kw);
            Span<float> dst = outImage.Slice(c * g.OutPlane, g.OutPlane);
            for (int oy = 0; oy < ho; oy++)
            {
                for (int ox = 0; ox < wo; ox++)
                {
                    float s = 0f;
                    for (int y = 0; y < kh; y++)
                    {
                        int iy = (oy * g.StrideH) - g.PadH + y;
                        if ((uint)iy >= (uint)g.InHeight)
                        {
                            continue;
                        }

                        int rowBase = iy * g.InWidth;
                        for (int x = 0; x < kw; x++)
                        {
                            int ix = (ox * g.StrideW) - g.PadW + x;
                            if ((uint)ix < (uint)g.InWidth)
                            {
                                s = MathF.FusedMultiplyAdd(w[(y * kw) + x], src[rowBase + ix], s);
                            }
                        }
                    }

                    dst[(oy * wo) + ox] = s;
                }
            }
        }
    }
}
