namespace MobileOne.Kernels;

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
}
