namespace MobileOne.Kernels.Engine;

/// <summary>
/// A depthwise 3x3 layer's weights packed per block of 16 channels: [block][tap ky*3+kx][16 channels], so a
/// kernel keeps a block's 9 tap vectors in registers for a whole output row; channels padded to 16 with
/// zero weights and bias.
/// </summary>
internal sealed unsafe class Depthwise3x3Weights
{
    public const int Taps = 9;

    private readonly AlignedBuffer weights;
    private readonly AlignedBuffer bias;

    /// <param name="weightOihw">[channels, 1, 3, 3].</param>
    public Depthwise3x3Weights(ReadOnlySpan<float> weightOihw, ReadOnlySpan<float> biasValues, int channels)
    {
        if (channels <= 0 || weightOihw.Length != channels * Taps || biasValues.Length != channels)
        {
            throw new ArgumentException($"A depthwise 3x3 layer of {channels} channels needs {channels * Taps} weights and {channels} biases; got {weightOihw.Length} and {biasValues.Length}.");
        }

        Channels = channels;
        PaddedChannels = (channels + 15) / 16 * 16;
        weights = new AlignedBuffer((long)PaddedChannels * Taps);
        bias = new AlignedBuffer(PaddedChannels);
        for (int c = 0; c < channels; c++)
        {
            float* block = weights.Pointer + ((c / 16) * 16 * Taps);
            for (int t = 0; t < Taps; t++)
            {
                block[(t * 16) + (c % 16)] = weightOihw[(c * Taps) + t];
            }

            bias.Pointer[c] = biasValues[c];
        }
    }

    public int Channels { get; }

    public int PaddedChannels { get; }

    public int Blocks => PaddedChannels / 16;

    public float* Block(int block) => weights.Pointer + (block * 16 * Taps);

    public float* Bias => bias.Pointer;
}
