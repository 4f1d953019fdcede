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
/// A Winograd convolution in one step. Shares take a grid of tile groups x 64-channel panels (as pointwise GEMMs
/// split pixels and panels). For each chunk of its tiles a share transforms the input patches into its scratch
/// (V_e[tile, channel]), then for each of its panels runs the 16 products V_e x U_e into the scratch and the output
/// transform, which writes the chunk's output pixels (bias or accumulate, residual, activation) while they are in
/// cache. Shares of the same tiles but other panels transform the same patches again: that costs a few percent of
/// the products (about 3 additions per transformed value against 2 x 64 flops per value and panel), and it keeps the
/// memory per share instead of a transformed copy of the whole input (16/4 the size of the input: 200 MB for a batch
/// of 64 at ResNet's 56x56x64).
/// </summary>
internal sealed unsafe class WinogradStep(EngineOp op, int index, WinogradWeights weights) : OpStep(op, index)
{
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
        var first = weights.Elements[0];
        var (r0, r1, p0, p1) = ShareGrid.Split(
            tiles, first, s.Shares, share,
            static (rowsEach, columns, panelsEach, k) => ((double)rowsEach * columns, ((double)rowsEach * k) + ((double)panelsEach * PackedPanels.PanelWidth * k)));
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

        // Even chunks of at most maxChunk tiles, multiples of 6 (the GEMM's row tile), as the patch GEMM cuts pixels.
        long total = r1 - r0;
        long chunks = (total + maxChunk - 1) / maxChunk;
        int chunk = chunks <= 1 ? (int)total : (int)Math.Min(maxChunk, ((((total + chunks - 1) / chunks) + 5) / 6) * 6);
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
            long n = t / g.TilesPerImage;
            int rem = (int)(t - (n * g.TilesPerImage));
            int oy0 = rem / g.TilesX * Winograd.TileSize, ox0 = rem % g.TilesX * Winograd.TileSize;
            for (int oy = oy0; oy < Math.Min(oy0 + Winograd.TileSize, g.OutHeight); oy++)
            {
                int pixels = Math.Min(Winograd.TileSize, g.OutWidth - ox0);
                float* at = output + ((((n * outImage) + ((long)oy * g.OutWidth) + ox0) * o.Stride) + c0);
                Activations.ApplyRows(Op.Activation, at, pixels, o.Stride, channels, s.Isa);
            }
        }
    }
}
