namespace MobileOne.Kernels.Gemm;

/// <summary>
/// The B operand of the engine's GEMMs (pointwise convolutions, the stem's patch GEMM, the classifier),
/// packed once: output columns padded to a multiple of 16 and cut into panels of 64 columns (the last
/// panel 16, 32 or 48 wide); inside a panel the K rows follow each other, so the microkernel reads one
/// contiguous stream of <c>width</c> floats per k step. Padded columns have zero weights and zero bias,
/// so they produce zeros (and ReLU keeps them zero) in channel-padded activations.
/// </summary>
internal sealed unsafe class PackedPanels
{
    public const int PanelWidth = 64;

    private readonly AlignedBuffer data;
    private readonly AlignedBuffer bias;

    /// <param name="weight">Row-major [n, k]: one row of k weights per output column (OIHW flattened).</param>
    /// <param name="biasValues">n floats, one per output column, or empty for none (zeros).</param>
    /// <param name="n">Output columns (output channels): padded to a multiple of 16 in the panels.</param>
    /// <param name="k">Reduction length: the weights per output column.</param>
    public PackedPanels(ReadOnlySpan<float> weight, ReadOnlySpan<float> biasValues, int n, int k)
    {
        if (n <= 0 || k <= 0 || weight.Length != (long)n * k || (!biasValues.IsEmpty && biasValues.Length != n))
        {
            throw new ArgumentException($"Packing a [{n}, {k}] weight needs {(long)n * k} weights and {n} biases; got {weight.Length} and {biasValues.Length}.");
        }

        N = n;
        K = k;
        PaddedN = (n + 15) / 16 * 16;
        PanelCount = (PaddedN + PanelWidth - 1) / PanelWidth;
        data = new AlignedBuffer((long)PaddedN * k);
        bias = new AlignedBuffer(PaddedN);
        for (int p = 0; p < PanelCount; p++)
        {
            int width = Width(p);
            float* panel = Panel(p);
            for (int col = 0; col < width; col++)
            {
                int o = (p * PanelWidth) + col;
                if (o >= n)
                {
                    continue;
                }

                ReadOnlySpan<float> row = weight.Slice(o * k, k);
                for (int kk = 0; kk < k; kk++)
                {
                    panel[((long)kk * width) + col] = row[kk];
                }
            }
        }

        if (!biasValues.IsEmpty)
        {
            biasValues.CopyTo(new Span<float>(bias.Pointer, n));
        }
    }

    public int N { get; }

    public int K { get; }

    /// <summary>N rounded up to a multiple of 16: the channel stride of the output activation.</summary>
    public int PaddedN { get; }

    public int PanelCount { get; }

    public float* Bias => bias.Pointer;

    public int Width(int panel) => Math.Min(PanelWidth, PaddedN - (panel * PanelWidth));

    /// <summary>Every panel before the last is full width, so panel p starts at p * 64 * K.</summary>
    public float* Panel(int panel) => data.Pointer + ((long)panel * PanelWidth * K);
}
