namespace MobileOne.Kernels.Depthwise;

/// <summary>
/// A depthwise layer's taps packed tap-major, [kh * kw][paddedChannels] (taps in <see cref="TapOrder"/> order), so
/// a tap's channels are one vector load; padded channels have zero weight and bias. The engine's generic depthwise
/// kernel pads the channels to its activation stride, the general convolutions do not pad.
/// </summary>
internal sealed unsafe class DepthwiseTapWeights
{
    private readonly AlignedBuffer weights;
    private readonly AlignedBuffer bias;

    /// <param name="weightOihw">[channels, 1, kh, kw].</param>
    /// <param name="biasValues">channels floats, or empty for none.</param>
    /// <param name="channels">C: the layer's channels (one filter each).</param>
    /// <param name="kernelH">kh: kernel rows.</param>
    /// <param name="kernelW">kw: kernel columns.</param>
    /// <param name="paddedChannels">Floats per tap row, at least <paramref name="channels"/>; the extra channels get zero weight and bias.</param>
    /// <param name="order">The order of the taps along the reduction (the general convolution's patch or window layout).</param>
    public DepthwiseTapWeights(ReadOnlySpan<float> weightOihw, ReadOnlySpan<float> biasValues, int channels, int kernelH, int kernelW, int paddedChannels, TapOrder order = TapOrder.RowMajor)
    {
        int taps = kernelH * kernelW;
        if (weightOihw.Length != channels * taps || (!biasValues.IsEmpty && biasValues.Length != channels) || paddedChannels < channels)
        {
            throw new ArgumentException($"A depthwise {kernelH}x{kernelW} layer of {channels} channels needs {channels * taps} weights and {channels} biases; got {weightOihw.Length} and {biasValues.Length}.");
        }

        Channels = channels;
        PaddedChannels = paddedChannels;
        Taps = taps;
        weights = new AlignedBuffer((long)taps * paddedChannels);
        bias = new AlignedBuffer(paddedChannels);
        for (int c = 0; c < channels; c++)
        {
            for (int ky = 0; ky < kernelH; ky++)
            {
                for (int kx = 0; kx < kernelW; kx++)
                {
                    int tap = order == TapOrder.RowMajor ? (ky * kernelW) + kx : (kx * kernelH) + ky;
                    weights.Pointer[((long)tap * paddedChannels) + c] = weightOihw[(c * taps) + (ky * kernelW) + kx];
                }
            }

            bias.Pointer[c] = biasValues.IsEmpty ? 0f : biasValues[c];
        }
    }

    public int Channels { get; }

    public int PaddedChannels { get; }

    public int Taps { get; }

    public float* Weights => weights.Pointer;

    public float* Bias => bias.Pointer;

    /// <summary>Floats of the packed copy (weights and bias, padding included).</summary>
    public long Floats => weights.Length + bias.Length;
}
