namespace MobileOne.Kernels.Conv;

/// <summary>
/// Weights of a dense or grouped convolution as GEMM B panels: for each group and each block of up to
/// <c>MaxColumnVectors</c> vectors of output channels, a [K][panel width] matrix, K = Kh*Kw*C_in/g in
/// <see cref="TapOrder"/> order, output channels zero-padded to whole vectors so the microkernel never
/// needs a column tail; bias padded the same way.
/// </summary>
internal sealed unsafe class PanelWeights
{
    private readonly AlignedBuffer weights;
    private readonly AlignedBuffer bias;

    public PanelWeights(ReadOnlySpan<float> weightOihw, ReadOnlySpan<float> biasValues, in ConvGeometry g, Isa isa, TapOrder order)
    {
        Lanes = isa switch { Isa.Avx512 => Lanes512.Count, Isa.Avx2 => Lanes256.Count, _ => Lanes1.Count };
        PanelFloats = Lanes * (isa switch { Isa.Avx512 => Lanes512.MaxColumnVectors, Isa.Avx2 => Lanes256.MaxColumnVectors, _ => Lanes1.MaxColumnVectors });
        Groups = g.Groups;
        OutPerGroup = g.OutChannelsPerGroup;
        PaddedOutPerGroup = (OutPerGroup + Lanes - 1) / Lanes * Lanes;
        Panels = (OutPerGroup + PanelFloats - 1) / PanelFloats;
        Reduction = g.PatchSize;
        weights = new AlignedBuffer((long)Groups * Reduction * PaddedOutPerGroup);
        bias = new AlignedBuffer((long)Groups * PaddedOutPerGroup);

        int cg = g.InChannelsPerGroup, kh = g.KernelHeight, kw = g.KernelWidth;
        Span<float> w = weights.AsSpan();
        Span<float> b = bias.AsSpan();
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
