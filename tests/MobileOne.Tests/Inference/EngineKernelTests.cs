using MobileOne.Inference;
using MobileOne.Kernels;
using MobileOne.Kernels.Depthwise;
using MobileOne.Kernels.Engine;
using MobileOne.Kernels.Gemm;

namespace MobileOne.Tests.Inference;

/// <summary>Each engine kernel against a plain double-precision loop, over ragged sizes that exercise every tail.</summary>
public unsafe class EngineKernelTests
{
    private static Isa Engine(IsaLevel level) => Isa.Resolve(level, "isa", nameof(level));

    [Theory]
    [IsaData(IsaLevel.Avx512)]
    [IsaData(IsaLevel.Avx2)]
    [IsaData(IsaLevel.Scalar)]
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
    [IsaData(IsaLevel.Avx512)]
    [IsaData(IsaLevel.Avx2)]
    [IsaData(IsaLevel.Scalar)]
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
    [IsaData(IsaLevel.Avx512)]
    [IsaData(IsaLevel.Avx2)]
    [IsaData(IsaLevel.Scalar)]
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
    [IsaData(IsaLevel.Avx512)]
    [IsaData(IsaLevel.Avx2)]
    [IsaData(IsaLevel.Scalar)]
    public void Depthwise_rows_match_a_textbook_convolution(IsaLevel level)
    {
        var isa = Engine(level);
        var rng = new Random(3);

        // Widths around every tile size (8, 4, 2 and single outputs, edges on both sides), 1-pixel images, channel
        // counts with and without a scalar tail, padding 0..2, both strides, kernels 3x3 (the tiled path), 1x1, 5x5.
        int trial = 0;
        foreach (int stride in new[] { 1, 2 })
        {
            foreach (var (c, h, w) in new[] { (1, 1, 1), (3, 2, 2), (16, 5, 3), (17, 4, 20), (40, 7, 7), (48, 9, 14), (5, 3, 29), (32, 6, 28), (16, 3, 11), (24, 2, 23) })
            {
                foreach (int pad in new[] { 1, 0, 2 })
                {
                    int k = pad == 2 && trial % 3 == 0 ? 5 : 3;
                    if (h + (2 * pad) < k || w + (2 * pad) < k)
                    {
                        continue;
                    }

                    CheckDepthwise(isa, rng, c, h, w, k, stride, pad, relu: trial % 2 == 0, accumulate: trial % 4 == 1);
                    trial++;
                }
            }
        }

        CheckDepthwise(isa, rng, 20, 6, 9, 1, 2, 0, relu: true, accumulate: true);
    }

    [Theory]
    [IsaData(IsaLevel.Avx512)]
    [IsaData(IsaLevel.Avx2)]
    [IsaData(IsaLevel.Scalar)]
    public void Depthwise_row_pairs_give_the_bits_of_single_rows(IsaLevel level)
    {
        // Stride-1 rows go two at a time where the lanes allow; asking for one row at a time must not change a bit.
        var isa = Engine(level);
        var rng = new Random(4);
        int c = 48, h = 9, w = 21, cs = 48;
        var x = Reference.RandomArray(rng, h * w * cs);
        var packed = new DepthwiseTapWeights(Reference.RandomArray(rng, c * 9), Reference.RandomArray(rng, c), c, 3, 3, cs);
        var g = new DepthwiseKernel.Geometry(h, w, w, 3, 3, 1, 1, 1, 1, 1, 1);
        var all = new float[h * w * cs];
        var single = new float[h * w * cs];
        fixed (float* px = x, pa = all, ps = single)
        {
            DepthwiseKernel.Rows(isa, px, cs, packed, g, 0, h, pa, cs, accumulate: false, relu: true);
            for (int oy = 0; oy < h; oy++)
            {
                DepthwiseKernel.Rows(isa, px, cs, packed, g, oy, 1, ps + (oy * w * cs), cs, accumulate: false, relu: true);
            }
        }

        Assert.True(all.AsSpan().SequenceEqual(single), $"{isa}: row pairs differ from single rows");
    }

    [Theory]
    [IsaData(IsaLevel.Avx512)]
    [IsaData(IsaLevel.Avx2)]
    [IsaData(IsaLevel.Scalar)]
    public void Depthwise_fused_relu_propagates_nan_as_pytorch_does(IsaLevel level)
    {
        var isa = Engine(level);
        int c = 32, h = 4, w = 12;
        var x = new float[h * w * c];
        x[(2 * w * c) + (5 * c) + 3] = float.NaN;
        var weights = new float[c * 9];
        Array.Fill(weights, -1f);
        var packed = new DepthwiseTapWeights(weights, new float[c], c, 3, 3, c);
        var g = new DepthwiseKernel.Geometry(h, w, w, 3, 3, 1, 1, 1, 1, 1, 1);
        var y = new float[h * w * c];
        fixed (float* px = x, py = y)
        {
            DepthwiseKernel.Rows(isa, px, c, packed, g, 0, h, py, c, accumulate: false, relu: true);
        }

        for (int oy = 0; oy < h; oy++)
        {
            for (int ox = 0; ox < w; ox++)
            {
                bool reaches = Math.Abs(oy - 2) <= 1 && Math.Abs(ox - 5) <= 1;
                float v = y[(((oy * w) + ox) * c) + 3];
                Assert.True(reaches ? float.IsNaN(v) : v == 0f, $"{isa}: pixel ({oy}, {ox}) = {v}");
            }
        }
    }

    [Theory]
    [IsaData(IsaLevel.Avx512)]
    [IsaData(IsaLevel.Avx2)]
    [IsaData(IsaLevel.Scalar)]
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
    [IsaData(IsaLevel.Avx512)]
    [IsaData(IsaLevel.Avx2)]
    [IsaData(IsaLevel.Scalar)]
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

    private static void CheckDepthwise(Isa isa, Random rng, int channels, int h, int w, int k, int stride, int pad, bool relu, bool accumulate)
    {
        var weights = Reference.RandomArray(rng, channels * k * k);
        var bias = Reference.RandomArray(rng, channels);
        int cs = ((channels + 15) / 16 * 16) + (channels % 2);
        var packed = new DepthwiseTapWeights(weights, bias, channels, k, k, cs);
        int oh = ((h + (2 * pad) - k) / stride) + 1, ow = ((w + (2 * pad) - k) / stride) + 1;
        var xNchw = Reference.RandomArray(rng, channels * h * w);
        var xNhwc = new float[h * w * cs];
        for (int c = 0; c < channels; c++)
        {
            for (int i = 0; i < h * w; i++)
            {
                xNhwc[(i * cs) + c] = xNchw[(c * h * w) + i];
            }
        }

        var start = Reference.RandomArray(rng, oh * ow * cs);
        var y = accumulate ? (float[])start.Clone() : new float[oh * ow * cs];
        var g = new DepthwiseKernel.Geometry(h, w, ow, k, k, stride, stride, pad, pad, 1, 1);
        fixed (float* px = xNhwc, py = y)
        {
            DepthwiseKernel.Rows(isa, px, cs, packed, g, 0, oh, py, cs, accumulate, relu);
        }

        string name = $"{isa} depthwise {channels}ch {h}x{w} k{k} stride {stride} pad {pad} relu {relu} accumulate {accumulate}";
        var expected = Reference.Conv2d(xNchw, 1, channels, h, w, weights, channels, k, stride, pad, channels, bias);
        for (int c = 0; c < cs; c++)
        {
            for (int i = 0; i < oh * ow; i++)
            {
                double e = (c < channels ? expected[(c * oh * ow) + i] : 0) + (accumulate ? start[(i * cs) + c] - (c < channels ? bias[c] : 0) : 0);
                e = relu ? Math.Max(0, e) : e;
                float got = y[(i * cs) + c];
                Assert.True(Math.Abs(got - e) < 1e-4, $"{name}: channel {c} pixel {i} = {got}, expected {e}");
            }
        }
    }
}
