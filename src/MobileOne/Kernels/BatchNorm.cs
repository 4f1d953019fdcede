namespace MobileOne.Kernels;

/// <summary>BatchNorm over NCHW activations. Eval mode uses running statistics: y = (x - mean) / sqrt(var + eps) * gamma + beta.</summary>
public static class BatchNorm
{
    public static void ForwardInference(
        ReadOnlySpan<float> input,
        Span<float> output,
        int batch,
        int channels,
        int plane,
        ReadOnlySpan<float> gamma,
        ReadOnlySpan<float> beta,
        ReadOnlySpan<float> runningMean,
        ReadOnlySpan<float> runningVar,
        float eps)
    {
        for (int c = 0; c < channels; c++)
        {
            // Computed in double then rounded once, matching a float64 reference as closely as float32 allows.
            double invStd = 1.0 / Math.Sqrt(runningVar[c] + (double)eps);
            float scale = (float)(gamma[c] * invStd);
            float shift = (float)(beta[c] - (runningMean[c] * gamma[c] * invStd));
            for (int n = 0; n < batch; n++)
            {
                int offset = ((n * channels) + c) * plane;
                Span<float> dst = output.Slice(offset, plane);
                input.Slice(offset, plane).CopyTo(dst);
                Elementwise.ScaleShift(dst, scale, shift);
            }
        }
    }
}
