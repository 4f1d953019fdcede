namespace MobileOne.Kernels;

/// <summary>The training graph's pooling passes over NCHW planes.</summary>
public static class Pooling
{
    /// <summary>Mean over each H*W plane: [N, C, H, W] -> [N, C].</summary>
    public static void GlobalAverage(ReadOnlySpan<float> input, Span<float> output, int batch, int channels, int plane)
    {
        for (int i = 0; i < batch * channels; i++)
        {
            output[i] = (float)(Elementwise.Sum(input.Slice(i * plane, plane)) / plane);
        }
    }

    /// <summary>Backward of <see cref="GlobalAverage"/>: every position of plane i gets gradOutput[i] / plane.</summary>
    public static void GlobalAverageBackward(ReadOnlySpan<float> gradOutput, Span<float> gradInput, int planes, int plane)
    {
        float inv = 1f / plane;
        for (int i = 0; i < planes; i++)
        {
            gradInput.Slice(i * plane, plane).Fill(gradOutput[i] * inv);
        }
    }

    /// <summary>
    /// PyTorch's max_pool2d over each of <paramref name="planes"/> NCHW planes (padding never wins: it counts as
    /// minus infinity; a NaN wins, as in PyTorch (the last NaN of a window); of equal maxima the first in row-major order). When
    /// <paramref name="argmax"/> is not empty it receives each output's source offset within its plane, for
    /// <see cref="MaxPoolBackward"/>.
    /// </summary>
    public static void MaxPool(ReadOnlySpan<float> input, Span<float> output, Span<int> argmax, int planes, int height, int width, int kernel, int stride, int padding)
    {
        int outH = ((height + (2 * padding) - kernel) / stride) + 1, outW = ((width + (2 * padding) - kernel) / stride) + 1;
        int inPlane = height * width, outPlane = outH * outW;
        bool keep = !argmax.IsEmpty;
        for (int p = 0; p < planes; p++)
        {
            var x = input.Slice(p * inPlane, inPlane);
            for (int oy = 0; oy < outH; oy++)
            {
                int y0 = Math.Max(0, (oy * stride) - padding), y1 = Math.Min(height, (oy * stride) - padding + kernel);
                for (int ox = 0; ox < outW; ox++)
                {
                    int x0 = Math.Max(0, (ox * stride) - padding), x1 = Math.Min(width, (ox * stride) - padding + kernel);
                    float best = float.NegativeInfinity;
                    int at = (y0 * width) + x0;
                    for (int iy = y0; iy < y1; iy++)
                    {
                        for (int ix = x0; ix < x1; ix++)
                        {
                            float v = x[(iy * width) + ix];
                            if (v > best || float.IsNaN(v))
                            {
                                best = v;
                                at = (iy * width) + ix;
                            }
                        }
                    }

                    int o = (p * outPlane) + (oy * outW) + ox;
                    output[o] = best;
                    if (keep)
                    {
                        argmax[o] = at;
                    }
                }
            }
        }
    }

    /// <summary>Backward of <see cref="MaxPool"/>: each output's gradient is added at its recorded source (overlapping windows accumulate).</summary>
    public static void MaxPoolBackward(ReadOnlySpan<float> gradOutput, ReadOnlySpan<int> argmax, Span<float> gradInput, int planes, int inPlane, int outPlane)
    {
        gradInput[..(planes * inPlane)].Clear();
        for (int p = 0; p < planes; p++)
        {
            var g = gradInput.Slice(p * inPlane, inPlane);
            for (int o = 0; o < outPlane; o++)
            {
                int i = (p * outPlane) + o;
                g[argmax[i]] += gradOutput[i];
            }
        }
    }
}
