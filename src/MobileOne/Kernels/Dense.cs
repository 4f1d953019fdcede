namespace MobileOne.Kernels;

/// <summary>Fully connected layer, PyTorch layout: y[n, o] = b[o] + sum_i x[n, i] * W[o, i].</summary>
public static class Dense
{
    public static void Forward(ReadOnlySpan<float> input, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias, Span<float> output, int batch, int inFeatures, int outFeatures)
    {
        for (int n = 0; n < batch; n++)
        {
            ReadOnlySpan<float> x = input.Slice(n * inFeatures, inFeatures);
            for (int o = 0; o < outFeatures; o++)
            {
                float s = Elementwise.Dot(x, weight.Slice(o * inFeatures, inFeatures));
                output[(n * outFeatures) + o] = bias.IsEmpty ? s : s + bias[o];
            }
        }
    }
}
