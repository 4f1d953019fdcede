using MobileOne.Graph;
using MobileOne.Kernels;
using MobileOne.Kernels.Conv;
using MobileOne.Kernels.Gemm;

namespace MobileOne.Inference;

/// <summary>
/// The weights of a 3x3 stride-1 convolution in Winograd F(2x2, 3x3) form (<see cref="Winograd"/>): the 16 transformed
/// filters packed as GEMM panels (K = the input's channel stride, N = the output channels), and the bias padded to the
/// output's channel stride.
/// </summary>
internal sealed unsafe class WinogradWeights
{
    private readonly AlignedBuffer bias;

    public WinogradWeights(ConvParams c, int inStride)
    {
        var u = Winograd.TransformFilters(c.Weight, c.OutChannels, c.InChannels, inStride);
        Elements = u.Select(e => new PackedPanels(e, [], c.OutChannels, inStride)).ToArray();
        bias = new AlignedBuffer(Elements[0].PaddedN);
        c.Bias.CopyTo(new Span<float>(bias.Pointer, c.OutChannels));
    }

    /// <summary>U_e for e in 0..15, packed.</summary>
    public PackedPanels[] Elements { get; }

    public float* Bias => bias.Pointer;

    /// <summary>Whether the engine runs <paramref name="c"/> this way: dense 3x3, stride 1, undilated, on an NHWC value.</summary>
    public static bool Suits(ConvParams c) =>
        Enabled && c.KernelH == 3 && c.KernelW == 3 && c.StrideH == 1 && c.StrideW == 1 && c.Undilated && c.Groups == 1 && c.PadH <= 2 && c.PadW <= 2;

    /// <summary>
    /// <c>MOBILEONE_ENGINE_WINOGRAD=0</c> runs 3x3 stride-1 convolutions as patch GEMMs instead (for comparisons; see
    /// docs/engine.md).
    /// </summary>
    public static bool Enabled { get; } = Environment.GetEnvironmentVariable("MOBILEONE_ENGINE_WINOGRAD") != "0";
}

/// <summary>
/// One of the three phases of a Winograd convolution; the plan runs them as three steps (barriers between them), and
/// which phases do the work depends on the shape.
/// <para>Per tile (many tiles per share, e.g. 56x56 and 28x28 layers, or batches): phase 0 does everything. Shares
/// take a grid of tile groups x 64-channel panels (as pointwise GEMMs split pixels and panels). For each chunk of its
/// tiles a share transforms the input patches into its scratch (V_e[tile, channel]), then for each of its panels runs
/// the 16 products V_e x U_e into the scratch and the output transform, which writes the chunk's output pixels (bias
/// or accumulate, residual, activation) while they are in cache. Shares of the same tiles but other panels transform
/// the same patches again: a few percent of the products (about 3 additions per transformed value against 2 x 64
/// flops per value and panel). Memory stays per share instead of a transformed copy of the whole input (16/4 the
/// size of the input: 200 MB for a batch of 64 at ResNet's 56x56x64). Phases 1 and 2 return at once.</para>
/// <para>Per element (fewer than <see cref="TilesPerShare"/> tiles per share: a 14x14 or 7x7 layer of one image on
/// several threads): split by tiles, each share would get a handful of tiles and stream all 16 transformed weights
/// (2.4 MB at 192 channels) for them. Instead phase 0 transforms all tiles into <see cref="Region.Winograd"/>
/// (shares split the tiles), phase 1 runs the 16 x panels products, each on all tiles (shares split the
/// (element, panel) pairs, so every weight is read once), into the same region, and phase 2 runs the output
/// transform (shares split the tiles).</para>
/// </summary>
internal sealed unsafe class WinogradStep(EngineOp op, int index, WinogradWeights weights, int phase) : OpStep(op, index)
{
    /// <summary>Phases of one convolution, in order.</summary>
    public const int Phases = 3;

    /// <summary>Below this many tiles per share the products are split by element and panel instead of by tiles.</summary>
    public const int TilesPerShare = 24;

    /// <summary>The most floats the per-element scheme keeps in <see cref="Region.Winograd"/> (16 MB).</summary>
    private const long ElementRegionLimit = 4L * 1024 * 1024;

    /// <summary>Whether a shape runs per element: several shares, few tiles each, and the whole transform small.</summary>
    public static bool SplitsElements(int shares, long tiles, int inStride, int outStride) =>
        shares > 1 && tiles < (long)TilesPerShare * shares && RegionFloats(tiles, inStride, outStride) <= ElementRegionLimit;

    /// <summary>Floats of <see cref="Region.Winograd"/> the per-element scheme uses: V [16, tiles, in] then M [16, tiles, out].</summary>
    public static long RegionFloats(long tiles, int inStride, int outStride) => Winograd.Elements * tiles * (inStride + outStride);

    /// <summary>Most tiles per chunk.</summary>
    public const int MaxChunk = 60;

    /// <summary>
    /// Floats of transformed input a share holds at once (2 MB; each of the 16 GEMMs reads a 1/16 slice of it), so
    /// that a 14x14 layer's 49 tiles are one chunk up to 512 channels: each panel of U_e is then streamed once.
    /// </summary>
    private const int InputBudget = 512 * 1024;

    public WinogradWeights Weights => weights;

    /// <summary>
    /// Tiles per chunk for an input channel stride: a multiple of 6 (the GEMM's row tile) from 6 to
    /// <see cref="MaxChunk"/> within <see cref="InputBudget"/>.
    /// </summary>
    public static int ChunkTiles(int inStride) => Math.Clamp(InputBudget / (Winograd.Elements * inStride) / 6 * 6, 6, MaxChunk);

    /// <summary>Floats of scratch a share needs: a chunk's transformed input and one panel's 16 products.</summary>
    public static long ScratchFloats(int inStride)
    {
        int chunk = ChunkTiles(inStride);
        return ((long)Winograd.Elements * chunk * inStride) + ((long)Winograd.Elements * chunk * PackedPanels.PanelWidth);
    }

    public static Winograd.Geometry GeometryOf(RunState s, EngineOp op)
    {
        var i = s.Layout(op.Reads[0]);
        var o = s.Layout(op.Output);
        return new Winograd.Geometry(i.Height, i.Width, i.Stride, op.Conv!.PadH, op.Conv.PadW, o.Height, o.Width);
    }

    public override void Run(RunState s, int share)
    {
        var g = GeometryOf(s, Op);
        var o = s.Layout(Op.Output);
        long tiles = (long)s.Shape.Batch * g.TilesPerImage;
        if (!SplitsElements(s.Shares, tiles, g.InStride, o.Stride))
        {
            if (phase == 0)
            {
                RunTiles(s, share, g, o, tiles);
            }

            return;
        }

        float* v = s[Region.Winograd], m = v + ((long)Winograd.Elements * tiles * g.InStride);
        long inPlane = tiles * g.InStride, outPlane = tiles * o.Stride;
        switch (phase)
        {
            case 0:
                {
                    (long t0, long t1) = s.Share(tiles, share);
                    Winograd.TransformInput(s.Isa, s.Value(Op.Reads[0]), g, t0, t1, v + (t0 * g.InStride), inPlane);
                    break;
                }

            case 1:
                {
                    // Element-major pairs, so a share's consecutive products read the same V_e.
                    int panels = weights.Elements[0].PanelCount;
                    (long u0, long u1) = s.Share((long)Winograd.Elements * panels, share);
                    for (long u = u0; u < u1; u++)
                    {
                        int e = (int)(u / panels), p = (int)(u % panels);
                        PackedGemm.Run(s.Isa, v + (e * inPlane), g.InStride, (int)tiles, weights.Elements[e], p, p + 1, 0, weights.Elements[e].K, m + (e * outPlane), o.Stride, 0);
                    }

                    break;
                }

            default:
                {
                    (long t0, long t1) = s.Share(tiles, share);
                    int count = (int)(t1 - t0);
                    if (count == 0)
                    {
                        break;
                    }

                    Winograd.TransformOutput(
                        s.Isa, m + (t0 * o.Stride), (nint)outPlane, o.Stride, t0, count, g, 0, o.Stride, s.Value(Op.Output), o.Stride, weights.Bias, Op.Accumulate,
                        Op.Residual >= 0 ? s.Value(Op.Residual) : null, Op.Residual >= 0 ? s.Layout(Op.Residual).Stride : 0, Op.Activation == ActivationKind.Relu);
                    if (Op.Activation is not ActivationKind.None and not ActivationKind.Relu)
                    {
                        ActivateTiles(s, g, t0, count, 0, o.Channels);
                    }

                    break;
                }
        }
    }

    /// <summary>The per-tile scheme: the whole convolution for this share's tiles and panels.</summary>
    private void RunTiles(RunState s, int share, in Winograd.Geometry g, ValueLayout o, long tiles)
    {
        var first = weights.Elements[0];
        // Tiles are GEMM rows against panels of U_e, so shares split them as a pointwise layer splits pixels.
        var (r0, r1, p0, p1) = PointwiseStep.Partition(tiles, first, s.Shares, share);
        if (r1 <= r0 || p1 <= p0)
        {
            return;
        }

        float* input = s.Value(Op.Reads[0]), output = s.Value(Op.Output);
        int maxChunk = ChunkTiles(g.InStride);
        float* v = s.Scratch(share);
        float* m = v + ((long)Winograd.Elements * maxChunk * g.InStride);
        float* residual = Op.Residual >= 0 ? s.Value(Op.Residual) : null;
        nint residualStride = Op.Residual >= 0 ? s.Layout(Op.Residual).Stride : 0;
        bool relu = Op.Activation == ActivationKind.Relu;
        bool otherActivation = Op.Activation != ActivationKind.None && !relu;
        int k = first.K;

        int chunk = ShareGrid.EvenChunk(r1 - r0, maxChunk);
        for (long t = r0; t < r1; t += chunk)
        {
            int count = (int)Math.Min(chunk, r1 - t);
            long elementStride = (long)count * g.InStride;
            Winograd.TransformInput(s.Isa, input, g, t, t + count, v, elementStride);
            for (int p = p0; p < p1; p++)
            {
                int width = first.Width(p);
                long plane = (long)count * PackedPanels.PanelWidth;

                // The GEMM writes panel p's columns at p * 64 of its C: C starts 64 p floats before the products.
                for (int e = 0; e < Winograd.Elements; e++)
                {
                    float* c = m + (e * plane) - (p * PackedPanels.PanelWidth);
                    PackedGemm.Run(s.Isa, v + (e * elementStride), g.InStride, count, weights.Elements[e], p, p + 1, 0, k, c, PackedPanels.PanelWidth, 0);
                }

                int c0 = p * PackedPanels.PanelWidth;
                Winograd.TransformOutput(
                    s.Isa, m, (nint)plane, PackedPanels.PanelWidth, t, count, g, c0, width, output, o.Stride, weights.Bias, Op.Accumulate, residual, residualStride, relu);
                if (otherActivation)
                {
                    ActivateTiles(s, g, t, count, c0, Math.Min(width, o.Channels - c0));
                }
            }
        }
    }

    /// <summary>An activation other than ReLU on the output pixels of tiles [t0, t0 + count), channels [c0, c0 + channels).</summary>
    private void ActivateTiles(RunState s, in Winograd.Geometry g, long t0, int count, int c0, int channels)
    {
        var o = s.Layout(Op.Output);
        float* output = s.Value(Op.Output);
        long outImage = (long)g.OutHeight * g.OutWidth;
        for (long t = t0; t < t0 + count; t++)
        {
            var (n, oy0, ox0) = g.Origin(t);
            for (int oy = oy0; oy < Math.Min(oy0 + Winograd.TileSize, g.OutHeight); oy++)
            {
                int pixels = Math.Min(Winograd.TileSize, g.OutWidth - ox0);
                float* at = output + ((((n * outImage) + ((long)oy * g.OutWidth) + ox0) * o.Stride) + c0);
                Activations.ApplyRows(Op.Activation, at, pixels, o.Stride, channels, s.Isa);
            }
        }
    }
}
