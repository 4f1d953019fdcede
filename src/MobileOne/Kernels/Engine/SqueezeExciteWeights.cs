namespace MobileOne.Kernels.Engine;

/// <summary>
/// Squeeze-excite weights arranged for vector code: fc1 as [reduced, channels] rows (one dot product per
/// hidden unit), fc2 transposed to [reduced, channels] rows (the gate is a sum of scaled rows).
/// </summary>
internal sealed unsafe class SqueezeExciteWeights
{
    private readonly AlignedBuffer fc1;
    private readonly AlignedBuffer fc1Bias;
    private readonly AlignedBuffer fc2T;
    private readonly AlignedBuffer fc2Bias;

    public SqueezeExciteWeights(ReadOnlySpan<float> reduceWeight, ReadOnlySpan<float> reduceBias, ReadOnlySpan<float> expandWeight, ReadOnlySpan<float> expandBias, int channels, int reduced, ActivationKind inner = ActivationKind.Relu, ActivationKind gate = ActivationKind.Sigmoid)
    {
        if (reduceWeight.Length != channels * reduced || expandWeight.Length != channels * reduced || reduceBias.Length != reduced || expandBias.Length != channels)
        {
            throw new ArgumentException($"Squeeze-excite {channels}->{reduced}->{channels} has weights of the wrong size.");
        }

        Channels = channels;
        Reduced = reduced;
        Inner = inner;
        GateActivation = gate;
        Stride = (int)AlignedBuffer.RoundUp(channels);
        fc1 = new AlignedBuffer((long)reduced * Stride);
        fc2T = new AlignedBuffer((long)reduced * Stride);
        fc1Bias = new AlignedBuffer(reduced);
        fc2Bias = new AlignedBuffer(Stride);
        for (int j = 0; j < reduced; j++)
        {
            reduceWeight.Slice(j * channels, channels).CopyTo(new Span<float>(fc1.Pointer + ((long)j * Stride), channels));
            for (int c = 0; c < channels; c++)
            {
                fc2T.Pointer[((long)j * Stride) + c] = expandWeight[(c * reduced) + j];
            }
        }

        reduceBias.CopyTo(new Span<float>(fc1Bias.Pointer, reduced));
        expandBias.CopyTo(new Span<float>(fc2Bias.Pointer, channels));
    }

    public int Channels { get; }

    public int Reduced { get; }

    public ActivationKind Inner { get; }

    public ActivationKind GateActivation { get; }

    /// <summary>Row stride of the packed matrices (channels rounded up to 16).</summary>
    public int Stride { get; }

    /// <summary>
    /// gate[c] = gateActivation(b2[c] + sum_j W2[c, j] * inner(b1[j] + sum_c' W1[j, c'] * mean[c'])) for the real
    /// channels; padded channels (up to <paramref name="paddedChannels"/>) get gate 0 so whatever the
    /// arena held there cannot leak into the output.
    /// </summary>
    public void Gate(Isa isa, float* mean, float* hidden, float* gate, int paddedChannels)
    {
        for (int j = 0; j < Reduced; j++)
        {
            float h = ChannelOps.Dot(isa, fc1.Pointer + ((long)j * Stride), mean, Channels) + fc1Bias.Pointer[j];
            hidden[j] = Activations.Apply(Inner, h);
        }

        new Span<float>(fc2Bias.Pointer, Channels).CopyTo(new Span<float>(gate, Channels));
        for (int j = 0; j < Reduced; j++)
        {
            ChannelOps.Axpy(isa, hidden[j], fc2T.Pointer + ((long)j * Stride), gate, Channels);
        }

        Activations.Apply(GateActivation, gate, Channels, isa);

        for (int c = Channels; c < paddedChannels; c++)
        {
            gate[c] = 0f;
        }
    }
}
