using MobileOne.Inference;
using MobileOne.Kernels;
using MobileOne.Kernels.Engine;
using MobileOne.Kernels.Gemm;

namespace MobileOne.Tests.Inference;

/// <summary>Each engine kernel against a plain double-precision loop, over ragged sizes that exercise every tail.</summary>
public unsafe class EngineKernelTests
{
    /// <summary>The paths this CPU can run (a missing one is reported by the model-level tests).</summary>
    public static TheoryData<IsaLevel> Isas()
    {
        var data = new TheoryData<IsaLevel>();
        foreach (var isa in EngineTestSupport.AllIsas)
        {
            if (CompiledModel.IsSupported(isa))
            {
                data.Add(isa);
            }
        }

        return data;
    }

    private static Isa Engine(IsaLevel level) => Isa.Resolve(level, "isa", nameof(level));

    [Theory]
    [MemberData(nameof(Isas))]
    public void Packed_gemm_matches_a_naive_product_for_ragged_sizes(IsaLevel level)
    {
        var isa = Engine(level);
        var rng = new Random(1);
        int[] rowCounts = [1, 2, 5, 6, 7, 8, 9, 13, 25, 49];
        int[] columnCounts = [1, 15, 16, 17, 33, 48, 64, 65, 100, 130];
        int[] depths = [1, 3, 27, 48, 70];
        int trial = 0;
        foreach (int m in rowCounts)
        {
            foreach (int n in columnCounts)
            {
                int k = depths[trial++ % depths.Length];
                foreach (int kBlock in new[] { 0, 16 })
                {
                    CheckGemm(isa, rng, m, n, k, kBlock, relu: trial % 2 == 0);
                }
            }
        }
    }

    [Theory]
    [MemberData(nameof(Isas))]
    public void Gemm_panel_ranges_compute_only_their_columns(IsaLevel level)
    {
        var isa = Engine(level);
        var rng = new Random(2);
        int m = 7, n = 200, k = 9;
        var a = Reference.RandomArray(rng, m * k);
        var w = Reference.RandomArray(rng, n * k);
        var b = Reference.RandomArray(rng, n);
        var packed = new PackedPanels(w, b, n, k);
        var c = new float[m * packed.PaddedN];
        Array.Fill(c, float.NaN);
        fixed (float* pa = a, pc = c)
        {
            PackedGemm.Run(isa, pa, k, m, packed, 1, 3, 0, k, pc, packed.PaddedN, 0);
        }

        for (int r = 0; r < m; r++)
        {
            for (int o = 0; o < packed.PaddedN; o++)
            {
                bool inside = o >= 64 && o < 192;
                Assert.Equal(!inside, float.IsNaN(c[(r * packed.PaddedN) + o]));
            }
        }
    }

    [Theory]
    [MemberData(nameof(Isas))]
    public void Indirect_gemm_reads_the_taps_through_the_offset_table(IsaLevel level)
    {
        var isa = Engine(level);
        var rng = new Random(6);
        foreach (var (cin, cout, w, stride) in new[] { (3, 48, 40, 2), (1, 16, 9, 1), (4, 64, 31, 2), (2, 80, 23, 3) })
        {
            int h = 5, k = 3;
            var x = Reference.RandomArray(rng, cin * h * w);
            var weight = Reference.RandomArray(rng, cout * cin * k * k);
            var bias = Reference.RandomArray(rng, cout);
            var packed = new PackedPanels(weight, bias, cout, cin * k * k);
            int[] offsets = new int[cin * k * k];
            for (int ci = 0; ci < cin; ci++)
            {
                for (int ky = 0; ky < k; ky++)
                {
                    for (int kx = 0; kx < k; kx++)
                    {
                        offsets[(((ci * k) + ky) * k) + kx] = (ci * h * w) + (ky * w) + kx;
                    }
                }
            }

            int rows = ((w - k) / stride) + 1;
            var y = new float[rows * packed.PaddedN];
            fixed (float* px = x, py = y)
            fixed (int* po = offsets)
            {
                PackedGemm.RunGathered(isa, px, stride, rows, packed, po, py, packed.PaddedN, 0);
            }

            for (int r = 0; r < rows; r++)
            {
                for (int o = 0; o < cout; o++)
                {
                    double e = bias[o];
                    for (int ci = 0; ci < cin; ci++)
                    {
                        for (int ky = 0; ky < k; ky++)
                        {
                            for (int kx = 0; kx < k; kx++)
                            {
                                e += (double)weight[(((o * cin) + ci) * k + ky) * k + kx] * x[(ci * h * w) + (ky * w) + (r * stride) + kx];
                            }
                        }
                    }

                    Assert.True(Math.Abs(y[(r * packed.PaddedN) + o] - e) < 1e-4, $"{isa} indirect {cin}->{cout} stride {stride}: pixel {r} channel {o}");
                }
            }
        }
    }

    [Theory]
    [MemberData(nameof(Isas))]
    public void Depthwise_rows_match_a_textbook_convolution(IsaLevel level)
    {
        var isa = Engine(level);
        var rng = new Random(3);
        foreach (int stride in new[] { 1, 2 })
        {
            foreach (var (c, h, w) in new[] { (1, 1, 1), (3, 2, 2), (16, 5, 3), (17, 4, 20), (40, 7, 7), (48, 9, 14), (5, 3, 29), (32, 6, 28) })
            {
                CheckDepthwise(isa, rng, c, h, w, stride, relu: (c + w) % 2 == 0);
            }
        }
    }

    [Theory]
    [MemberData(nameof(Isas))]
    public void Stem_patches_and_gemm_match_a_textbook_convolution(IsaLevel level)
    {
        var isa = Engine(level);
        var rng = new Random(4);
        foreach (var (cin, cout, n, h, w) in new[] { (3, 48, 2, 9, 11), (1, 5, 1, 1, 1), (4, 64, 1, 12, 7), (2, 70, 3, 5, 6) })
        {
            int k = 3, stride = 2, pad = 1;
            int oh = ((h + (2 * pad) - k) / stride) + 1, ow = ((w + (2 * pad) - k) / stride) + 1;
            var x = Reference.RandomArray(rng, n * cin * h * w);
            var weight = Reference.RandomArray(rng, cout * cin * k * k);
            var bias = Reference.RandomArray(rng, cout);
            var packed = new PackedPanels(weight, bias, cout, cin * k * k);
            int pixels = n * oh * ow, patch = cin * k * k;
            var patches = new float[pixels * patch];
            var y = new float[pixels * packed.PaddedN];
            fixed (float* px = x, pp = patches, py = y)
            {
                StemPatches.Gather(px, cin, h, w, k, stride, pad, oh, ow, 0, pixels, pp);
                PackedGemm.Run(isa, pp, patch, pixels, packed, 0, packed.PanelCount, 0, patch, py, packed.PaddedN, GemmEpilogue.Relu);
            }

            var expected = Reference.Conv2d(x, n, cin, h, w, weight, cout, k, stride, pad, 1, bias);
            for (int b = 0; b < n; b++)
            {
                for (int o = 0; o < cout; o++)
                {
                    for (int i = 0; i < oh * ow; i++)
                    {
                        double e = Math.Max(0, expected[(((b * cout) + o) * oh * ow) + i]);
                        Assert.True(Math.Abs(y[(((b * oh * ow) + i) * packed.PaddedN) + o] - e) < 1e-4, $"stem {cin}->{cout} {h}x{w} image {b} channel {o} pixel {i}");
                    }
                }
            }
        }
    }

    [Theory]
    [MemberData(nameof(Isas))]
    public void Channel_means_gate_and_squeeze_excite_match_naive_loops(IsaLevel level)
    {
        var isa = Engine(level);
        var rng = new Random(5);
        foreach (var (channels, cs, pixels, reduced) in new[] { (1, 1, 1, 1), (7, 7, 5, 1), (16, 16, 49, 2), (37, 48, 13, 3), (100, 112, 30, 6) })
        {
            var x = Reference.RandomArray(rng, pixels * cs);
            var means = new float[cs];
            fixed (float* px = x, pm = means)
            {
                ChannelOps.ChannelMeans(isa, px, pixels, cs, 0, cs, 1f / pixels, pm);
            }

            for (int c = 0; c < cs; c++)
            {
                double s = 0;
                for (int p = 0; p < pixels; p++)
                {
                    s += x[(p * cs) + c];
                }

                Assert.True(Math.Abs(means[c] - (s / pixels)) < 1e-5, $"mean of channel {c}");
            }

            var w1 = Reference.RandomArray(rng, reduced * channels);
            var b1 = Reference.RandomArray(rng, reduced);
            var w2 = Reference.RandomArray(rng, channels * reduced);
            var b2 = Reference.RandomArray(rng, channels);
            var se = new SqueezeExciteWeights(w1, b1, w2, b2, channels, reduced);
            var gate = new float[cs];
            var hidden = new float[reduced];
            var y = (float[])x.Clone();
            fixed (float* pm = means, pg = gate, ph = hidden, py = y)
            {
                se.Gate(isa, pm, ph, pg, cs);
                ChannelOps.GateRelu(isa, py, pixels, cs, cs, pg, relu: true);
            }

            for (int c = 0; c < channels; c++)
            {
                double g = b2[c];
                for (int j = 0; j < reduced; j++)
                {
                    double hj = b1[j];
                    for (int i = 0; i < channels; i++)
                    {
                        hj += (double)w1[(j * channels) + i] * means[i];
                    }

                    g += w2[(c * reduced) + j] * Math.Max(0, hj);
                }

                g = 1 / (1 + Math.Exp(-g));
                Assert.True(Math.Abs(gate[c] - g) < 1e-5, $"gate of channel {c}: {gate[c]} vs {g}");
                for (int p = 0; p < pixels; p++)
                {
                    Assert.True(Math.Abs(y[(p * cs) + c] - Math.Max(0, x[(p * cs) + c] * g)) < 1e-5);
                }
            }

            for (int c = channels; c < cs; c++)
            {
                Assert.Equal(0f, gate[c]);
            }
        }
    }

    private static void CheckGemm(Isa isa, Random rng, int m, int n, int k, int kBlock, bool relu)
    {
        int lda = k + 3;
        var a = Reference.RandomArray(rng, m * lda);
        var w = Reference.RandomArray(rng, n * k);
        var bias = Reference.RandomArray(rng, n);
        var packed = new PackedPanels(w, bias, n, k);
        int ldc = packed.PaddedN + 16;
        var c = new float[m * ldc];
        Array.Fill(c, float.NaN);
        fixed (float* pa = a, pc = c)
        {
            PackedGemm.RunBlocked(isa, pa, lda, m, packed, 0, packed.PanelCount, kBlock, pc, ldc, relu);
        }

        for (int r = 0; r < m; r++)
        {
            for (int o = 0; o < packed.PaddedN; o++)
            {
                double e = o < n ? bias[o] : 0;
                for (int i = 0; i < k && o < n; i++)
                {
                    e += (double)a[(r * lda) + i] * w[(o * k) + i];
                }

                e = relu ? Math.Max(0, e) : e;
                float got = c[(r * ldc) + o];
                Assert.True(Math.Abs(got - e) <= 1e-4 * (1 + Math.Abs(e)), $"{isa} gemm {m}x{n}x{k} kBlock {kBlock}: C[{r},{o}] = {got}, expected {e}");
            }

            for (int o = packed.PaddedN; o < ldc; o++)
            {
                Assert.True(float.IsNaN(c[(r * ldc) + o]), "wrote past the padded columns");
            }
        }
    }

    private static void CheckDepthwise(Isa isa, Random rng, int channels, int h, int w, int stride, bool relu)
    {
        var weights = Reference.RandomArray(rng, channels * 9);
        var bias = Reference.RandomArray(rng, channels);
        var packed = new Depthwise3x3Weights(weights, bias, channels);
        int cs = packed.PaddedChannels;
        int oh = ((h - 1) / stride) + 1, ow = ((w - 1) / stride) + 1;
        var xNchw = Reference.RandomArray(rng, channels * h * w);
        var xNhwc = new float[h * w * cs];
        for (int c = 0; c < channels; c++)
        {
            for (int i = 0; i < h * w; i++)
            {
                xNhwc[(i * cs) + c] = xNchw[(c * h * w) + i];
            }
        }

        var zero = new float[w * cs];
        var y = new float[oh * ow * cs];
        var single = new float[oh * ow * cs];
        fixed (float* px = xNhwc, pz = zero, py = y, ps = single)
        {
            // Rows takes stride-1 rows two at a time on AVX-512; one at a time must give the same bits.
            Depthwise3x3.Rows(isa, px, h, w, cs, pz, packed, stride, 0, oh, py, ow, cs, relu);
            for (int oy = 0; oy < oh; oy++)
            {
                Depthwise3x3.Row(isa, px, h, w, cs, pz, packed, stride, oy, ps + (oy * ow * cs), ow, cs, relu);
            }
        }

        Assert.True(y.AsSpan().SequenceEqual(single), $"{isa} depthwise {channels}ch {h}x{w} stride {stride}: row pairs differ from single rows");

        var expected = Reference.Conv2d(xNchw, 1, channels, h, w, weights, channels, 3, stride, 1, channels, bias);
        for (int c = 0; c < cs; c++)
        {
            for (int i = 0; i < oh * ow; i++)
            {
                double e = c < channels ? expected[(c * oh * ow) + i] : 0;
                e = relu ? Math.Max(0, e) : e;
                float got = y[(i * cs) + c];
                Assert.True(Math.Abs(got - e) < 1e-4, $"{isa} depthwise {channels}ch {h}x{w} stride {stride}: channel {c} pixel {i} = {got}, expected {e}");
            }
        }
    }
}
