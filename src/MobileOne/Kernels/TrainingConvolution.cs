using MobileOne.Kernels.Gemm;
using MobileOne.Kernels.Depthwise;

namespace MobileOne.Kernels;

/// <summary>
/// The three passes of a 2-D convolution for training, any kernel, stride, padding and groups, over a whole NCHW
/// batch at once: forward, input gradient and weight gradient (plus the bias gradient).
/// Depthwise layers go to <see cref="DepthwiseConvolution"/>; 1x1 stride-1 unpadded layers are one
/// <see cref="PackedSgemm"/> per group reading the activations in place (pixels of all images as columns); other
/// layers unfold the batch into a patch matrix [groups][batch][C/g * Kh * Kw][Ho * Wo] (im2col), run one GEMM per
/// group and, for the input gradient, fold the patch gradient back (col2im).
/// The patch matrix of the forward pass can be kept for the weight gradient (<see cref="ColumnsSize"/> floats).
/// </summary>
public static unsafe class TrainingConvolution
{
    /// <summary>Which implementation runs a layer's three passes (<see cref="Choose"/>).</summary>
    public enum Path
    {
        /// <summary>Groups = channels with a square kernel, equal strides and equal padding: <see cref="DepthwiseConvolution"/> on the NCHW planes.</summary>
        Depthwise,
        /// <summary>1x1, stride 1, unpadded (<see cref="ConvGeometry.IsPointwiseIdentityLayout"/>): one <see cref="PackedSgemm"/> per group over the activations in place.</summary>
        Pointwise,
        /// <summary>Any other layer: the batch unfolded into the patch matrix (<see cref="ColumnsSize"/> floats), one GEMM per group, col2im for the input gradient.</summary>
        Im2Col,
    }

    /// <summary>The path for <paramref name="g"/>: depthwise when it qualifies, else pointwise, else im2col.</summary>
    public static Path Choose(in ConvGeometry g) =>
        g.IsDepthwise && g.KernelHeight == g.KernelWidth && g.StrideH == g.StrideW && g.PadH == g.PadW ? Path.Depthwise
        : g.IsPointwiseIdentityLayout ? Path.Pointwise
        : Path.Im2Col;

    /// <summary>Floats of the patch matrix the im2col path needs (0 for the other paths).</summary>
    public static long ColumnsSize(in ConvGeometry g) =>
        Choose(g) == Path.Im2Col ? (long)g.Batch * g.Groups * g.PatchSize * g.OutPlane : 0;

    /// <summary>output = conv(input, weight) + bias. <paramref name="columns"/> receives the patch matrix on the im2col path.</summary>
    public static void Forward(float* input, float* weight, float* bias, float* output, in ConvGeometry g, float* columns)
    {
        g.Validate();
        switch (Choose(g))
        {
            case Path.Depthwise:
                DepthwiseConvolution.Forward(input, g.Batch, g.InChannels, g.InHeight, g.InWidth, g.StrideH, g.PadH, [new DepthwiseBranch(weight, g.KernelHeight, output)]);
                break;
            case Path.Pointwise:
                for (int grp = 0; grp < g.Groups; grp++)
                {
                    PackedSgemm.Multiply(WeightView(weight, g, grp), InputView(input, g, grp), OutputView(output, g, grp), accumulate: false);
                }

                break;
            default:
                RequireColumns(columns);
                Unfold(input, g, columns);
                for (int grp = 0; grp < g.Groups; grp++)
                {
                    PackedSgemm.Multiply(WeightView(weight, g, grp), ColumnsView(columns, g, grp), OutputView(output, g, grp), accumulate: false);
                }

                break;
        }

        if (bias is not null)
        {
            AddBias(output, bias, g.Batch, g.OutChannels, g.OutPlane);
        }
    }

    /// <summary>
    /// gradInput = (accumulate ? gradInput : 0) + conv^T(gradOutput, weight). The im2col path needs
    /// <paramref name="scratch"/> of batch * PatchSize * OutPlane floats for the patch gradient of one group.
    /// </summary>
    public static void BackwardInput(float* gradOutput, float* weight, float* gradInput, bool accumulate, in ConvGeometry g, float* scratch)
    {
        g.Validate();
        switch (Choose(g))
        {
            case Path.Depthwise:
                DepthwiseConvolution.BackwardInput(gradInput, accumulate, g.Batch, g.InChannels, g.InHeight, g.InWidth, g.StrideH, g.PadH, [new DepthwiseBranch(weight, g.KernelHeight, gradOutput)]);
                break;
            case Path.Pointwise:
                for (int grp = 0; grp < g.Groups; grp++)
                {
                    PackedSgemm.Multiply(WeightView(weight, g, grp).Transposed(), OutputView(gradOutput, g, grp), InputView(gradInput, g, grp), accumulate);
                }

                break;
            default:
                RequireColumns(scratch);
                for (int grp = 0; grp < g.Groups; grp++)
                {
                    var patches = MatrixView.ChannelsByPixels(scratch, g.PatchSize, g.Batch, g.OutPlane, (long)g.PatchSize * g.OutPlane);
                    PackedSgemm.Multiply(WeightView(weight, g, grp).Transposed(), OutputView(gradOutput, g, grp), patches, accumulate: false);
                    Fold(scratch, g, grp, gradInput, accumulate);
                }

                break;
        }
    }

    /// <summary>
    /// gradWeight += gradOutput (*) input. On the im2col path <paramref name="columns"/> holds the patch matrix
    /// (<paramref name="columnsHoldInput"/>: already unfolded from this input by <see cref="Forward"/>).
    /// </summary>
    public static void BackwardWeight(float* gradOutput, float* input, float* gradWeight, in ConvGeometry g, float* columns, bool columnsHoldInput)
    {
        g.Validate();
        switch (Choose(g))
        {
            case Path.Depthwise:
                DepthwiseConvolution.BackwardWeight(input, g.Batch, g.InChannels, g.InHeight, g.InWidth, g.StrideH, g.PadH, [new DepthwiseBranch(gradWeight, g.KernelHeight, gradOutput)]);
                break;
            case Path.Pointwise:
                for (int grp = 0; grp < g.Groups; grp++)
                {
                    PackedSgemm.Multiply(OutputView(gradOutput, g, grp), InputView(input, g, grp).Transposed(), GradWeightView(gradWeight, g, grp), accumulate: true);
                }

                break;
            default:
                RequireColumns(columns);
                if (!columnsHoldInput)
                {
                    Unfold(input, g, columns);
                }

                for (int grp = 0; grp < g.Groups; grp++)
                {
                    PackedSgemm.Multiply(OutputView(gradOutput, g, grp), ColumnsView(columns, g, grp).Transposed(), GradWeightView(gradWeight, g, grp), accumulate: true);
                }

                break;
        }
    }

    /// <summary>gradBias[c] += sum over images and pixels of gradOutput[n, c] (summed in double).</summary>
    public static void BackwardBias(float* gradOutput, float* gradBias, int batch, int channels, int plane)
    {
        nint gp = (nint)gradOutput, bp = (nint)gradBias;
        ComputeThreads.For(channels, (c0, c1) =>
        {
            for (int c = c0; c < c1; c++)
            {
                double s = 0;
                for (int n = 0; n < batch; n++)
                {
                    s += Elementwise.Sum(new ReadOnlySpan<float>((float*)gp + ((((long)n * channels) + c) * plane), plane));
                }

                ((float*)bp)[c] += (float)s;
            }
        });
    }

    /// <summary>output[n, c] += bias[c].</summary>
    public static void AddBias(float* output, float* bias, int batch, int channels, int plane)
    {
        nint op = (nint)output, bp = (nint)bias;
        ComputeThreads.For(batch * channels, (p0, p1) =>
        {
            for (int p = p0; p < p1; p++)
            {
                Elementwise.AddScalar(new Span<float>((float*)op + ((long)p * plane), plane), ((float*)bp)[p % channels]);
            }
        }, minPerPart: 16);
    }

    private static void RequireColumns(float* columns)
    {
        if (columns is null)
        {
            throw new ArgumentException("This convolution runs through im2col and needs a patch buffer (ColumnsSize floats).");
        }
    }

    private static MatrixView WeightView(float* weight, in ConvGeometry g, int grp) =>
        MatrixView.RowMajor(weight + ((long)grp * g.OutChannelsPerGroup * g.PatchSize), g.OutChannelsPerGroup, g.PatchSize, g.PatchSize);

    private static MatrixView GradWeightView(float* gradWeight, in ConvGeometry g, int grp) => WeightView(gradWeight, g, grp);

    private static MatrixView InputView(float* input, in ConvGeometry g, int grp) =>
        MatrixView.ChannelsByPixels(input + ((long)grp * g.InChannelsPerGroup * g.InPlane), g.InChannelsPerGroup, g.Batch, g.InPlane, (long)g.InChannels * g.InPlane);

    private static MatrixView OutputView(float* output, in ConvGeometry g, int grp) =>
        MatrixView.ChannelsByPixels(output + ((long)grp * g.OutChannelsPerGroup * g.OutPlane), g.OutChannelsPerGroup, g.Batch, g.OutPlane, (long)g.OutChannels * g.OutPlane);

    private static MatrixView ColumnsView(float* columns, in ConvGeometry g, int grp) =>
        MatrixView.ChannelsByPixels(columns + ((long)grp * g.Batch * g.PatchSize * g.OutPlane), g.PatchSize, g.Batch, g.OutPlane, (long)g.PatchSize * g.OutPlane);

    /// <summary>The patch matrix of every image and group, laid out [group][image][patch row][pixel].</summary>
    private static void Unfold(float* input, ConvGeometry g, float* columns)
    {
        nint ip = (nint)input, cp = (nint)columns;
        long inImage = (long)g.InChannels * g.InPlane, block = (long)g.PatchSize * g.OutPlane;
        ComputeThreads.For(g.Batch * g.Groups, (p0, p1) =>
        {
            for (int p = p0; p < p1; p++)
            {
                int grp = p / g.Batch, n = p % g.Batch;
                var image = new ReadOnlySpan<float>((float*)ip + (n * inImage), (int)inImage);
                var dst = new Span<float>((float*)cp + ((((long)grp * g.Batch) + n) * block), (int)block);
                Im2Col.Unfold(image, g, grp, dst);
            }
        });
    }

    /// <summary>col2im: adds the patch gradient of one group ([image][patch row][pixel]) into the input gradient.</summary>
    private static void Fold(float* patches, ConvGeometry g, int grp, float* gradInput, bool accumulate)
    {
        nint pp = (nint)patches, gp = (nint)gradInput;
        ComputeThreads.For(g.Batch, (n0, n1) =>
        {
            int cg = g.InChannelsPerGroup, ho = g.OutHeight, wo = g.OutWidth;
            for (int n = n0; n < n1; n++)
            {
                float* src = (float*)pp + ((long)n * g.PatchSize * g.OutPlane);
                float* image = (float*)gp + ((long)n * g.InChannels * g.InPlane) + ((long)grp * cg * g.InPlane);
                if (!accumulate)
                {
                    new Span<float>(image, cg * g.InPlane).Clear();
                }

                int row = 0;
                for (int c = 0; c < cg; c++)
                {
                    float* dstPlane = image + ((long)c * g.InPlane);
                    for (int kh = 0; kh < g.KernelHeight; kh++)
                    {
                        for (int kw = 0; kw < g.KernelWidth; kw++, row++)
                        {
                            float* rowSrc = src + ((long)row * g.OutPlane);
                            for (int oy = 0; oy < ho; oy++)
                            {
                                int iy = (oy * g.StrideH) - g.PadH + kh;
                                if ((uint)iy >= (uint)g.InHeight)
                                {
                                    continue;
                                }

                                float* d = dstPlane + ((long)iy * g.InWidth);
                                float* s = rowSrc + ((long)oy * wo);
                                int x0 = kw - g.PadW;
                                if (g.StrideW == 1)
                                {
                                    int first = Math.Max(0, -x0), last = Math.Min(wo, g.InWidth - x0);
                                    if (last > first)
                                    {
                                        Elementwise.Add(new Span<float>(d + x0 + first, last - first), new ReadOnlySpan<float>(s + first, last - first));
                                    }
                                }
                                else
                                {
                                    for (int ox = 0; ox < wo; ox++)
                                    {
                                        int ix = (ox * g.StrideW) + x0;
                                        if ((uint)ix < (uint)g.InWidth)
                                        {
                                            d[ix] += s[ox];
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        });
    }
}
