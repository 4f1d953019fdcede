namespace MobileOne.Kernels;

/// <summary>
/// Unfolds the input channels of one group of one image into the patch matrix
/// [C_in/g * Kh * Kw, Ho * Wo], so a convolution becomes one GEMM with the weight [C_out/g, C_in/g * Kh * Kw].
/// Padding positions are written as zeros.
/// </summary>
public static class Im2Col
{
    /// <summary>
    /// Writes the patch matrix of group <paramref name="group"/> of one NCHW image (<paramref name="image"/>: [C_in][H][W];
    /// <see cref="ConvGeometry.Batch"/> is ignored) into <paramref name="columns"/>, row-major
    /// [C_in/g * Kh * Kw][Ho * Wo] with rows in (channel, ky, kx) order and zeros where a tap falls in the padding.
    /// Throws when <paramref name="columns"/> holds fewer than <see cref="ConvGeometry.PatchSize"/> * <see cref="ConvGeometry.OutPlane"/> floats.
    /// </summary>
    public static void Unfold(ReadOnlySpan<float> image, in ConvGeometry g, int group, Span<float> columns)
    {
        int cg = g.InChannelsPerGroup;
        int ho = g.OutHeight, wo = g.OutWidth;
        int plane = g.OutPlane;
        if (columns.Length < g.PatchSize * plane)
        {
            throw new ArgumentException("Patch buffer too small.", nameof(columns));
        }

        int row = 0;
        for (int c = 0; c < cg; c++)
        {
            ReadOnlySpan<float> src = image.Slice(((group * cg) + c) * g.InPlane, g.InPlane);
            for (int kh = 0; kh < g.KernelHeight; kh++)
            {
                for (int kw = 0; kw < g.KernelWidth; kw++, row++)
                {
                    Span<float> dst = columns.Slice(row * plane, plane);
                    for (int oy = 0; oy < ho; oy++)
                    {
                        int iy = (oy * g.StrideH) - g.PadH + kh;
                        Span<float> dstRow = dst.Slice(oy * wo, wo);
                        if ((uint)iy >= (uint)g.InHeight)
                        {
                            dstRow.Clear();
                            continue;
                        }

                        ReadOnlySpan<float> srcRow = src.Slice(iy * g.InWidth, g.InWidth);
                        int x0 = kw - g.PadW;
                        if (g.StrideW == 1)
                        {
                            // Contiguous run: copy the in-range part, zero the padded ends.
                            int first = Math.Max(0, -x0);
                            int last = Math.Min(wo, g.InWidth - x0);
                            if (last <= first)
                            {
                                dstRow.Clear();
                                continue;
                            }

                            dstRow[..first].Clear();
                            srcRow.Slice(x0 + first, last - first).CopyTo(dstRow[first..last]);
                            dstRow[last..].Clear();
                        }
                        else
                        {
                            for (int ox = 0; ox < wo; ox++)
                            {
                                int ix = (ox * g.StrideW) + x0;
                                dstRow[ox] = (uint)ix < (uint)g.InWidth ? srcRow[ix] : 0f;
                            }
                        }
                    }
                }
            }
        }
    }
}
