namespace MobileOne.Kernels.Conv;

/// <summary>In which order a filter's taps follow each other along the reduction.</summary>
internal enum TapOrder
{
    /// <summary>ky, then kx, then input channel: the NHWC patch row (im2col) and the image itself (direct).</summary>
    RowMajor,

    /// <summary>kx, then ky, then input channel: the column-interleaved im2win window.</summary>
    ColumnMajor,
}

/// <summary>
/// Weights of a dense or grouped convolution as GEMM B panels: for each group and each block of up to
/// <c>MaxColumnVectors</c> vectors of output channels, a [K][panel width] matrix, K = Kh*Kw*C_in/g in
/// <see cref="TapOrder"/> order, output channels zero-padded to whole vectors so the microkernel never
/// needs a column tail; bias padded the same way.
/// </summary>
internal sealed unsafe class PanelWeights
{
    private readonly PinnedBuffer weights;
    private readonly PinnedBuffer bias;

    public PanelWeights(ReadOnlySpan<float> weightOihw, ReadOnlySpan<float> biasValues, in ConvGeometry g, Isa isa, TapOrder order)
    {
        Lanes = isa switch { Isa.Avx512 => Lanes512.Count, Isa.Avx2 => Lanes256.Count, _ => Lanes1.Count };
        PanelFloats = Lanes * (isa switch { Isa.Avx512 => Lanes512.MaxColumnVectors, Isa.Avx2 => Lanes256.MaxColumnVectors, _ => Lanes1.MaxColumnVectors });
        Groups = g.Groups;
        OutPerGroup = g.OutChannelsPerGroup;
        PaddedOutPerGroup = (OutPerGroup + Lanes - 1) / Lanes * Lanes;
        Panels = (OutPerGroup + PanelFloats - 1) / PanelFloats;
        Reduction = g.PatchSize;
        weights = new PinnedBuffer((long)Groups * Reduction * PaddedOutPerGroup);
        bias = new PinnedBuffer((long)Groups * PaddedOutPerGroup);

        int cg = g.InChannelsPerGroup, kh = g.KernelHeight, kw = g.KernelWidth;
        Span<float> w = weights.Span;
        Span<float> b = bias.Span;
        for (int grp = 0; grp < Groups; grp++)
        {
            for (int o = 0; o < OutPerGroup; o++)
            {
                int oc = (grp * OutPerGroup) + o;
                int panel = o / PanelFloats, column = o % PanelFloats;
                int panelWidth = PanelWidth(panel);
                long panelStart = PanelOffset(grp, panel);
                b[(grp * PaddedOutPerGroup) + o] = biasValues.IsEmpty ? 0f : biasValues[oc];
                for (int ci = 0; ci < cg; ci++)
                {
                    for (int ky = 0; ky < kh; ky++)
                    {
                        for (int kx = 0; kx < kw; kx++)
                        {
                            int tap = order == TapOrder.RowMajor ? (ky * kw) + kx : (kx * kh) + ky;
                            long k = ((long)tap * cg) + ci;
                            w[(int)(panelStart + (k * panelWidth) + column)] = weightOihw[(((oc * cg) + ci) * kh + ky) * kw + kx];
                        }
                    }
                }
            }
        }
    }

    public int Lanes { get; }

    /// <summary>Floats in a full panel (lanes x max column vectors).</summary>
    public int PanelFloats { get; }

    public int Groups { get; }

    public int OutPerGroup { get; }

    public int PaddedOutPerGroup { get; }

    public int Panels { get; }

    public int Reduction { get; }

    public long Floats => weights.Length + bias.Length;

    /// <summary>Floats per k in this panel: the last one is only as wide as the channels left need.</summary>
    public int PanelWidth(int panel) => Math.Min(PanelFloats, PaddedOutPerGroup - (panel * PanelFloats));

    public int PanelVectors(int panel) => PanelWidth(panel) / Lanes;

    public int PanelColumns(int panel) => Math.Min(PanelFloats, OutPerGroup - (panel * PanelFloats));

    public float* Weights(int group, int panel) => weights.Pointer + PanelOffset(group, panel);

    public float* Bias(int group, int panel) => bias.Pointer + (group * PaddedOutPerGroup) + (panel * PanelFloats);

    private long PanelOffset(int group, int panel) => ((long)group * Reduction * PaddedOutPerGroup) + ((long)panel * Reduction * PanelFloats);
}

/// <summary>Depthwise weights as [tap][C] (taps in <see cref="TapOrder"/> order) so a tap's channels are one vector load.</summary>
internal sealed unsafe class DepthwiseWeights
{
    private readonly PinnedBuffer weights;
    private readonly PinnedBuffer bias;

    public DepthwiseWeights(ReadOnlySpan<float> weightOihw, ReadOnlySpan<float> biasValues, in ConvGeometry g, TapOrder order)
    {
        int c = g.InChannels, kh = g.KernelHeight, kw = g.KernelWidth;
        weights = new PinnedBuffer((long)kh * kw * c);
        bias = new PinnedBuffer(c);
        Span<float> w = weights.Span;
        for (int ch = 0; ch < c; ch++)
        {
            bias.Span[ch] = biasValues.IsEmpty ? 0f : biasValues[ch];
            for (int ky = 0; ky < kh; ky++)
            {
                for (int kx = 0; kx < kw; kx++)
                {
                    int tap = order == TapOrder.RowMajor ? (ky * kw) + kx : (kx * kh) + ky;
                    w[(tap * c) + ch] = weightOihw[((ch * kh) + ky) * kw + kx];
                }
            }
        }
    }

    public float* Weights => weights.Pointer;

    public float* Bias => bias.Pointer;

    public long Floats => weights.Length + bias.Length;
}
