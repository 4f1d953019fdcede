using CsCheck;
using MobileOne.Inference;
using MobileOne.Kernels;
using MobileOne.Kernels.Depthwise;
using MobileOne.Kernels.Gemm;

namespace MobileOne.Tests.Nn;

/// <summary>
/// The training kernels against double-precision textbook loops over random shapes (CsCheck), for every SIMD width
/// and several thread counts; and the determinism guarantees: M/N thread splits, ISA and tile position never change a
/// bit of a GEMM result.
/// </summary>
[Collection(KernelSettingsCollection.Name)]
public unsafe class TrainingKernelTests
{
    private static readonly IsaLevel[] Levels = [.. new[] { IsaLevel.Auto, IsaLevel.Avx2, IsaLevel.Scalar }.Where(CompiledModel.IsSupported)];

    [Fact]
    public void Packed_gemm_matches_a_double_reference_for_every_view_kind()
    {
        using var settings = new KernelSettingsScope();
        Gen.Select(Gen.Int[1, 70], Gen.Int[1, 90], Gen.Int[1, 600], Gen.Int[0, 7], Gen.Int[1, 3], Gen.Bool, Gen.Int).Sample(t =>
        {
            var (m, n, k, layout, threads, accumulate, seed) = t;
            var rng = new Random(seed);
            var a = Reference.RandomArray(rng, m * k);
            var b = Reference.RandomArray(rng, k * n);
            // Batched layouts: columns of B and C split into "images" of `per` columns with a gap between images.
            int per = Math.Max(1, n / 3), images = (n + per - 1) / per;
            var c = Reference.RandomArray(rng, m * images * per + 64);
            var expected = new double[m * n];
            for (int i = 0; i < m; i++)
            {
                for (int j = 0; j < n; j++)
                {
                    double s = 0;
                    for (int p = 0; p < k; p++)
                    {
                        s += (double)a[(i * k) + p] * b[(p * n) + j];
                    }

                    expected[(i * n) + j] = s;
                }
            }

            var aCopy = (layout & 2) != 0 ? Transpose(a, m, k) : a;
            var bCopy = layout % 2 == 1 ? Transpose(b, k, n) : b;
            foreach (var level in Levels)
            {
                Lanes.Level = level;
                ComputeThreads.Count = threads;
                var cRun = (float[])c.Clone();
                fixed (float* pa = aCopy)
                fixed (float* pb = bCopy)
                fixed (float* pc = cRun)
                {
                    var av = (layout & 2) != 0 ? MatrixView.RowMajor(pa, k, m, m).Transposed() : MatrixView.RowMajor(pa, m, k, k);
                    var bv = layout % 2 == 1 ? MatrixView.RowMajor(pb, n, k, k).Transposed() : MatrixView.RowMajor(pb, k, n, n);
                    var cv = (layout & 4) != 0
                        ? MatrixView.ChannelsByPixels(pc, m, images, per, (long)m * per).Slice(0, m, 0, n)
                        : MatrixView.RowMajor(pc, m, n, n);
                    PackedSgemm.Multiply(av, bv, cv, accumulate);
                    for (int i = 0; i < m; i++)
                    {
                        for (int j = 0; j < n; j++)
                        {
                            long off = cv.RowOffset(i) + cv.ColOffset(j);
                            double old = accumulate ? c[(int)off] : 0;
                            double want = old + expected[(i * n) + j];
                            double got = cRun[(int)off];
                            Assert.True(Math.Abs(got - want) <= 1e-5 * Math.Max(1, Math.Sqrt(k)), $"{m}x{n}x{k} layout {layout} {level} t{threads}: C[{i},{j}] {got} vs {want}");
                        }
                    }
                }
            }
        }, iter: 60, threads: 1);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    [InlineData(9)]
    [InlineData(16)]
    [InlineData(49)]
    public void Packed_gemm_over_small_nchw_planes_equals_the_product_of_dense_copies_bit_for_bit(int plane)
    {
        // The three training products of a pointwise layer on NCHW planes: forward W * X, weight gradient
        // dZ * X^T (pixels along k) and input gradient W^T * dZ; small planes make every operand fragmented.
        using var settings = new KernelSettingsScope();
        var rng = new Random(plane);
        int images = 7, cin = 19, cout = 37, pixels = images * plane;
        var w = Reference.RandomArray(rng, cout * cin);
        var x = Reference.RandomArray(rng, images * cin * plane);
        var dz = Reference.RandomArray(rng, images * cout * plane);
        var start = Reference.RandomArray(rng, images * Math.Max(cin, cout) * plane);
        foreach (int threads in new[] { 1, 2 })
        {
            ComputeThreads.Count = threads;
            fixed (float* wp = w)
            fixed (float* xp = x)
            fixed (float* dzp = dz)
            {
                var wv = MatrixView.RowMajor(wp, cout, cin, cin);
                var xv = MatrixView.ChannelsByPixels(xp, cin, images, plane, (long)cin * plane);
                var dzv = MatrixView.ChannelsByPixels(dzp, cout, images, plane, (long)cout * plane);
                float[] xDense = Dense(xv), dzDense = Dense(dzv);
                fixed (float* xd = xDense)
                fixed (float* dzd = dzDense)
                {
                    var xdv = MatrixView.RowMajor(xd, cin, pixels, pixels);
                    var dzdv = MatrixView.RowMajor(dzd, cout, pixels, pixels);

                    // Forward, accumulating onto C's old values: Z = Z0 + W X.
                    var z = start.AsSpan(0, images * cout * plane).ToArray();
                    var zDense = Dense(z, cout, images, plane);
                    fixed (float* zp = z)
                    fixed (float* zdp = zDense)
                    {
                        var zv = MatrixView.ChannelsByPixels(zp, cout, images, plane, (long)cout * plane);
                        PackedSgemm.Multiply(wv, xv, zv, accumulate: true);
                        PackedSgemm.Multiply(wv, xdv, MatrixView.RowMajor(zdp, cout, pixels, pixels), accumulate: true);
                        Assert.Equal(zDense, Dense(zv));
                    }

                    // Weight gradient: dW = dZ X^T (k = pixels, both operands fragmented along k).
                    var gw = new float[cout * cin];
                    var gwDense = new float[cout * cin];
                    fixed (float* gwp = gw)
                    fixed (float* gwd = gwDense)
                    {
                        PackedSgemm.Multiply(dzv, xv.Transposed(), MatrixView.RowMajor(gwp, cout, cin, cin), accumulate: false);
                        PackedSgemm.Multiply(dzdv, xdv.Transposed(), MatrixView.RowMajor(gwd, cout, cin, cin), accumulate: false);
                    }

                    Assert.Equal(gwDense, gw);
                    var reference = new double[cout * cin];
                    for (int i = 0; i < cout * cin; i++)
                    {
                        int o = i / cin, c = i % cin;
                        double s = 0;
                        for (int p = 0; p < pixels; p++)
                        {
                            s += (double)dzDense[(o * pixels) + p] * xDense[(c * pixels) + p];
                        }

                        Assert.True(Math.Abs(gw[i] - s) <= 1e-5 * Math.Max(1, Math.Sqrt(pixels)), $"plane {plane}: dW[{o},{c}] {gw[i]} vs {s}");
                    }

                    // Input gradient: dX = W^T dZ into NCHW planes.
                    var dx = new float[images * cin * plane];
                    var dxDense = new float[cin * pixels];
                    fixed (float* dxp = dx)
                    fixed (float* dxd = dxDense)
                    {
                        var dxv = MatrixView.ChannelsByPixels(dxp, cin, images, plane, (long)cin * plane);
                        PackedSgemm.Multiply(wv.Transposed(), dzv, dxv, accumulate: false);
                        PackedSgemm.Multiply(wv.Transposed(), dzdv, MatrixView.RowMajor(dxd, cin, pixels, pixels), accumulate: false);
                        Assert.Equal(dxDense, Dense(dxv));
                    }
                }
            }
        }
    }

    /// <summary>The [rows x cols] row-major copy of a view.</summary>
    private static float[] Dense(MatrixView v)
    {
        var d = new float[v.Rows * v.Cols];
        for (int r = 0; r < v.Rows; r++)
        {
            for (int c = 0; c < v.Cols; c++)
            {
                d[(r * v.Cols) + c] = v.Data[v.RowOffset(r) + v.ColOffset(c)];
            }
        }

        return d;
    }

    /// <summary>The [channels x (images * plane)] row-major copy of an NCHW array.</summary>
    private static float[] Dense(float[] nchw, int channels, int images, int plane)
    {
        fixed (float* p = nchw)
        {
            return Dense(MatrixView.ChannelsByPixels(p, channels, images, plane, (long)channels * plane));
        }
    }

    [Fact]
    public void Packed_gemm_bits_do_not_depend_on_isa_tiles_or_row_and_column_thread_splits()
    {
        using var settings = new KernelSettingsScope();
        var rng = new Random(3);
        int m = 45, n = 333, k = 77;
        var a = Reference.RandomArray(rng, m * k);
        var b = Reference.RandomArray(rng, k * n);
        float[]? first = null;
        foreach (var level in Levels)
        {
            foreach (int threads in new[] { 1, 2, 3, 5 })
            {
                Lanes.Level = level;
                ComputeThreads.Count = threads;
                var c = new float[m * n];
                fixed (float* pa = a)
                fixed (float* pb = b)
                fixed (float* pc = c)
                {
                    PackedSgemm.Multiply(MatrixView.RowMajor(pa, m, k, k), MatrixView.RowMajor(pb, k, n, n), MatrixView.RowMajor(pc, m, n, n), false);
                }

                first ??= c;
                Assert.Equal(first, c);
            }
        }
    }

    /// <summary>
    /// The Gram product multiplies the lower block triangle and mirrors it: on one thread every element equals the
    /// full product's bit for bit (so the result is exactly symmetric), and at two threads it stays within rounding of
    /// a double reference (including sizes below its two-thread threshold, which take the full product).
    /// </summary>
    [Theory]
    [InlineData(33, 70)]
    [InlineData(100, 300)]
    [InlineData(160, 1400)]
    [InlineData(20, 50)]
    public void Gram_products_equal_the_full_product(int n, int k)
    {
        using var settings = new KernelSettingsScope();
        var rng = new Random(n + k);
        var a = Reference.RandomArray(rng, n * k);
        foreach (int threads in new[] { 1, 2, 3 })
        {
            ComputeThreads.Count = threads;
            var full = new float[n * n];
            var gram = Enumerable.Repeat(float.NaN, n * n).ToArray();
            fixed (float* pa = a)
            fixed (float* pf = full)
            fixed (float* pg = gram)
            {
                var av = MatrixView.RowMajor(pa, n, k, k);
                PackedSgemm.Multiply(av, av.Transposed(), MatrixView.RowMajor(pf, n, n, n), false);
                PackedSgemm.MultiplyGram(av, MatrixView.RowMajor(pg, n, n, n));
            }

            for (int i = 0; i < n; i++)
            {
                for (int j = 0; j < n; j++)
                {
                    double want = 0;
                    for (int p = 0; p < k; p++)
                    {
                        want += (double)a[(i * k) + p] * a[(j * k) + p];
                    }

                    float got = gram[(i * n) + j];
                    Assert.True(Math.Abs(got - want) <= 1e-4 * (1 + Math.Sqrt(k)), $"{threads} threads, ({i}, {j}): {got} against {want}");
                    Assert.Equal(gram[(j * n) + i], got);
                    if (threads == 1)
                    {
                        Assert.Equal(full[(i * n) + j], got);
                    }
                }
            }
        }
    }

    [Fact]
    public void Deep_products_split_over_threads_are_reproducible_for_a_thread_count()
    {
        using var settings = new KernelSettingsScope();
        var rng = new Random(4);
        int m = 24, n = 40, k = 5000;
        var a = Reference.RandomArray(rng, m * k);
        var b = Reference.RandomArray(rng, k * n);
        foreach (int threads in new[] { 1, 2, 3 })
        {
            ComputeThreads.Count = threads;
            float[]? first = null;
            for (int run = 0; run < 3; run++)
            {
                var c = new float[m * n];
                fixed (float* pa = a)
                fixed (float* pb = b)
                fixed (float* pc = c)
                {
                    PackedSgemm.Multiply(MatrixView.RowMajor(pa, m, k, k), MatrixView.RowMajor(pb, k, n, n), MatrixView.RowMajor(pc, m, n, n), false);
                }

                first ??= c;
                Assert.Equal(first, c);
            }
        }
    }

    [Fact]
    public void Products_of_depth_zero_clear_c_or_leave_it_as_it_is()
    {
        // k = 0: C = 0 without accumulation (every element, through any view), C unchanged with it.
        using var settings = new KernelSettingsScope();
        var empty = GC.AllocateArray<float>(1, pinned: true);
        float* pe = (float*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref empty[0]);
        foreach (bool batched in new[] { false, true })
        {
            foreach (bool accumulate in new[] { false, true })
            {
                int m = 5, images = 3, per = 4, n = images * per;
                var c = Reference.RandomArray(new Random(7), (m * n) + 8);
                var before = (float[])c.Clone();
                fixed (float* pc = c)
                {
                    var cv = batched ? MatrixView.ChannelsByPixels(pc, m, images, per, (long)m * per) : MatrixView.RowMajor(pc, m, n, n + 1);
                    PackedSgemm.Multiply(MatrixView.RowMajor(pe, m, 0, 0), MatrixView.RowMajor(pe, 0, n, n), cv, accumulate);
                    for (int i = 0; i < m; i++)
                    {
                        for (int j = 0; j < n; j++)
                        {
                            long at = cv.RowOffset(i) + cv.ColOffset(j);
                            Assert.Equal(accumulate ? before[at] : 0f, c[at]);
                        }
                    }

                    // Elements outside the view are never written.
                    var inside = new HashSet<long>();
                    for (int i = 0; i < m; i++)
                    {
                        for (int j = 0; j < n; j++)
                        {
                            inside.Add(cv.RowOffset(i) + cv.ColOffset(j));
                        }
                    }

                    for (int at = 0; at < c.Length; at++)
                    {
                        if (!inside.Contains(at))
                        {
                            Assert.Equal(before[at], c[at]);
                        }
                    }
                }
            }
        }
    }

    [Fact]
    public void Deep_products_split_over_threads_write_strided_and_batched_c_like_a_dense_one()
    {
        // The k-split's partial sums are added into C row by row. Through a C whose columns are strided (neither
        // dimension contiguous) or split into images, every element must equal the dense C's bit for bit, with or
        // without accumulation, and nothing outside the view may change.
        using var settings = new KernelSettingsScope();
        var rng = new Random(11);
        int m = 12, n = 20, k = 4000, images = 4, per = n / images;
        var a = Reference.RandomArray(rng, m * k);
        var b = Reference.RandomArray(rng, k * n);
        foreach (int threads in new[] { 1, 2, 3 })
        {
            ComputeThreads.Count = threads;
            foreach (bool accumulate in new[] { false, true })
            {
                var start = Reference.RandomArray(new Random(threads), m * n);
                var dense = (float[])start.Clone();
                var strided = new float[2 * m * n];
                var batched = new float[2 * m * n];
                Array.Fill(strided, 12345f);
                Array.Fill(batched, 12345f);
                fixed (float* pa = a)
                fixed (float* pb = b)
                fixed (float* pd = dense)
                fixed (float* ps = strided)
                fixed (float* pq = batched)
                {
                    var av = MatrixView.RowMajor(pa, m, k, k);
                    var bv = MatrixView.RowMajor(pb, k, n, n);
                    var sv = new MatrixView(ps, m, n, 2 * n, 2);
                    var qv = MatrixView.ChannelsByPixels(pq, m, images, per, 2L * m * per);
                    for (int i = 0; i < m; i++)
                    {
                        for (int j = 0; j < n; j++)
                        {
                            ps[sv.RowOffset(i) + sv.ColOffset(j)] = start[(i * n) + j];
                            pq[qv.RowOffset(i) + qv.ColOffset(j)] = start[(i * n) + j];
                        }
                    }

                    PackedSgemm.Multiply(av, bv, MatrixView.RowMajor(pd, m, n, n), accumulate);
                    PackedSgemm.Multiply(av, bv, sv, accumulate);
                    PackedSgemm.Multiply(av, bv, qv, accumulate);
                    var inside = new HashSet<long>();
                    for (int i = 0; i < m; i++)
                    {
                        for (int j = 0; j < n; j++)
                        {
                            Assert.Equal(dense[(i * n) + j], strided[sv.RowOffset(i) + sv.ColOffset(j)]);
                            Assert.Equal(dense[(i * n) + j], batched[qv.RowOffset(i) + qv.ColOffset(j)]);
                            inside.Add(sv.RowOffset(i) + sv.ColOffset(j));
                        }
                    }

                    for (int at = 0; at < strided.Length; at++)
                    {
                        Assert.True(inside.Contains(at) || strided[at] == 12345f, $"strided C: element {at} outside the view was written");
                    }
                }
            }
        }
    }

    [Fact]
    public void Gemm_rejects_disagreeing_shapes()
    {
        var buffer = GC.AllocateArray<float>(64, pinned: true);
        float* p = (float*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref buffer[0]);
        var e = Assert.Throws<ArgumentException>(() => PackedSgemm.Multiply(MatrixView.RowMajor(p, 2, 3, 3), MatrixView.RowMajor(p, 4, 2, 2), MatrixView.RowMajor(p, 2, 2, 2), false));
        Assert.Contains("GEMM shapes do not agree: A 2x3, B 4x2, C 2x2", e.Message);
    }

    [Fact]
    public void Convolution_passes_match_textbook_double_loops_for_random_geometries()
    {
        using var settings = new KernelSettingsScope();
        var gen = Gen.Select(Gen.Int[1, 3], Gen.Int[1, 4], Gen.Int[1, 3], Gen.OneOf(1, 3, 5), Gen.Int[1, 3], Gen.Int[0, 2], Gen.Int[0, 2])
            .SelectMany(t => Gen.Select(Gen.Int[1, 9], Gen.Int[1, 9], Gen.Int).Select(u => (t, u)));
        gen.Sample(s =>
        {
            var ((batch, cpg, opg, k, stride, pad, groupKind), (h0, w0, seed)) = s;
            int groups = groupKind == 0 ? 1 : groupKind == 1 ? 2 : 3;
            int cin = cpg * groups, cout = opg * groups;
            if (groupKind == 2)
            {
                cin = cout = groups = cpg + 2; // depthwise
            }

            int h = Math.Max(h0, k), w = Math.Max(w0, k);
            var g = new ConvGeometry(batch, cin, h, w, cout, k, k, stride, stride, Math.Min(pad, k / 2 + 1), Math.Min(pad, k / 2 + 1), groups);
            var rng = new Random(seed);
            var x = Reference.RandomArray(rng, batch * cin * h * w);
            var wt = Reference.RandomArray(rng, cout * (cin / groups) * k * k);
            var dy = Reference.RandomArray(rng, batch * cout * g.OutPlane);
            var expectedY = Reference.Conv2d(x, batch, cin, h, w, wt, cout, k, stride, g.PadH, groups, null);
            var (expectedDx, expectedDw) = TextbookBackward(x, wt, dy, g);
            foreach (var level in Levels)
            {
                Lanes.Level = level;
                ComputeThreads.Count = 1 + (seed & 1);
                var y = new float[expectedY.Length];
                var dx = new float[x.Length];
                var dw = new float[wt.Length];
                var cols = new float[Math.Max(1, TrainingConvolution.ColumnsSize(g))];
                var scratch = new float[Math.Max(1, (long)batch * g.PatchSize * g.OutPlane)];
                fixed (float* px = x)
                fixed (float* pw = wt)
                fixed (float* pdy = dy)
                fixed (float* py = y)
                fixed (float* pdx = dx)
                fixed (float* pdw = dw)
                fixed (float* pc = cols)
                fixed (float* ps = scratch)
                {
                    TrainingConvolution.Forward(px, pw, null, py, g, pc);
                    TrainingConvolution.BackwardInput(pdy, pw, pdx, false, g, ps);
                    TrainingConvolution.BackwardWeight(pdy, px, pdw, g, pc, columnsHoldInput: true);
                }

                string what = $"{g} {level}";
                Close(expectedY, y, what + " forward");
                Close(expectedDx, dx, what + " input gradient");
                Close(expectedDw, dw, what + " weight gradient");
            }
        }, iter: 80, threads: 1);
    }

    [Fact]
    public void Depthwise_branches_sharing_one_input_equal_separate_convolutions()
    {
        using var settings = new KernelSettingsScope();
        var rng = new Random(9);
        int n = 2, c = 5, h = 9, w = 7;
        var x = Reference.RandomArray(rng, n * c * h * w);
        foreach (int stride in new[] { 1, 2 })
        {
            int ho = ((h - 1) / stride) + 1, wo = ((w - 1) / stride) + 1, size = n * c * ho * wo;
            var w3 = Reference.RandomArray(rng, c * 9);
            var w1 = Reference.RandomArray(rng, c);
            var out3 = new float[size];
            var out1 = new float[size];
            fixed (float* px = x)
            fixed (float* pw3 = w3)
            fixed (float* pw1 = w1)
            fixed (float* po3 = out3)
            fixed (float* po1 = out1)
            {
                DepthwiseConvolution.Forward(px, n, c, h, w, stride, 1, [new DepthwiseBranch(pw3, 3, po3), new DepthwiseBranch(pw1, 1, po1)]);
            }

            Close(Reference.Conv2d(x, n, c, h, w, w3, c, 3, stride, 1, c, null), out3, $"3x3 stride {stride}");
            Close(Reference.Conv2d(x, n, c, h, w, w1, c, 1, stride, 0, c, null), out1, $"1x1 stride {stride}");
        }
    }

    [Theory]
    [InlineData(1, 12, 17)]
    [InlineData(2, 18, 15)]
    [InlineData(2, 17, 16)]
    [InlineData(1, 3, 30)]
    [InlineData(2, 5, 40)]
    public void Depthwise_passes_on_planes_computed_image_by_image_match_textbook_loops(int stride, int h, int w)
    {
        var rng = new Random(h * w);
        int n = 3, c = 4;
        var x = Reference.RandomArray(rng, n * c * h * w);
        var w3 = Reference.RandomArray(rng, c * 9);
        var w1 = Reference.RandomArray(rng, c);
        int ho = ((h - 1) / stride) + 1, wo = ((w - 1) / stride) + 1, size = n * c * ho * wo;
        var dy3 = Reference.RandomArray(rng, size);
        var dy1 = Reference.RandomArray(rng, size);
        var g3 = new ConvGeometry(n, c, h, w, c, 3, 3, stride, stride, 1, 1, c);
        var g1 = new ConvGeometry(n, c, h, w, c, 1, 1, stride, stride, 0, 0, c);
        var (dx3, dw3) = TextbookBackward(x, w3, dy3, g3);
        var (dx1, dw1) = TextbookBackward(x, w1, dy1, g1);
        foreach (var level in Levels)
        {
            Lanes.Level = level;
            var out3 = new float[size];
            var out1 = new float[size];
            var dx = new float[x.Length];
            var gw3 = new float[w3.Length];
            var gw1 = new float[w1.Length];
            fixed (float* px = x)
            fixed (float* pw3 = w3)
            fixed (float* pw1 = w1)
            fixed (float* po3 = out3)
            fixed (float* po1 = out1)
            fixed (float* pdy3 = dy3)
            fixed (float* pdy1 = dy1)
            fixed (float* pdx = dx)
            fixed (float* pgw3 = gw3)
            fixed (float* pgw1 = gw1)
            {
                DepthwiseConvolution.Forward(px, n, c, h, w, stride, 1, [new DepthwiseBranch(pw3, 3, po3), new DepthwiseBranch(pw1, 1, po1)]);
                DepthwiseConvolution.BackwardInput(pdx, false, n, c, h, w, stride, 1, [new DepthwiseBranch(pw3, 3, pdy3), new DepthwiseBranch(pw1, 1, pdy1)]);
                DepthwiseConvolution.BackwardWeight(px, n, c, h, w, stride, 1, [new DepthwiseBranch(pgw3, 3, pdy3), new DepthwiseBranch(pgw1, 1, pdy1)]);
            }

            Close(Reference.Conv2d(x, n, c, h, w, w3, c, 3, stride, 1, c, null), out3, $"3x3 {level}");
            Close(Reference.Conv2d(x, n, c, h, w, w1, c, 1, stride, 0, c, null), out1, $"1x1 {level}");
            Close(dx3.Zip(dx1, (a, b) => a + b).ToArray(), dx, $"input gradient {level}");
            Close(dw3, gw3, $"3x3 weight gradient {level}");
            Close(dw1, gw1, $"1x1 weight gradient {level}");
        }
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(1, 2)]
    [InlineData(2, 1)]
    [InlineData(2, 2)]
    [InlineData(2, 4)]
    [InlineData(4, 2)]
    [InlineData(4, 4)]
    [InlineData(1, 16)]
    public void Depthwise_passes_on_planes_that_tile_a_register_match_textbook_loops(int h, int w)
    {
        // Planes of 16 / (h * w) channels per 512-bit register take SmallPlaneDepthwise at the widest level; every
        // level must agree with the double loops, with two 3x3 branches and a 1x1 branch, accumulating gradients.
        using var settings = new KernelSettingsScope();
        var rng = new Random((h * 31) + w);
        int n = 5, c = 2 * 16 / (h * w) + (16 / (h * w)), size = n * c * h * w;
        var x = Reference.RandomArray(rng, size);
        var wa = Reference.RandomArray(rng, c * 9);
        var wb = Reference.RandomArray(rng, c * 9);
        var w1 = Reference.RandomArray(rng, c);
        var dya = Reference.RandomArray(rng, size);
        var dyb = Reference.RandomArray(rng, size);
        var dy1 = Reference.RandomArray(rng, size);
        var dxStart = Reference.RandomArray(rng, size);
        var gwStart = Reference.RandomArray(rng, c * 9);
        var g3 = new ConvGeometry(n, c, h, w, c, 3, 3, 1, 1, 1, 1, c);
        var g1 = new ConvGeometry(n, c, h, w, c, 1, 1, 1, 1, 0, 0, c);
        var (dxa, dwa) = TextbookBackward(x, wa, dya, g3);
        var (dxb, dwb) = TextbookBackward(x, wb, dyb, g3);
        var (dx1, dw1) = TextbookBackward(x, w1, dy1, g1);
        var expectedDx = dxStart.Select((v, i) => v + dxa[i] + dxb[i] + dx1[i]).ToArray();
        Lanes.Level = IsaLevel.Auto;
        Assert.Equal(
            System.Runtime.Intrinsics.X86.Avx512F.IsSupported,
            SmallPlaneDepthwise.Applies(c, h, w, 1, [new DepthwiseBranch(null, 3, null), new DepthwiseBranch(null, 1, null)], b => b.KernelSize == 3 ? 1 : 0));
        float[]? firstDx = null;
        foreach (var level in Levels)
        {
            foreach (int threads in new[] { 1, 2 })
            {
                Lanes.Level = level;
                ComputeThreads.Count = threads;
                var outA = new float[size];
                var outB = new float[size];
                var out1 = new float[size];
                var dx = (float[])dxStart.Clone();
                var gwa = (float[])gwStart.Clone();
                var gwb = new float[c * 9];
                var gw1 = new float[c];
                fixed (float* px = x)
                fixed (float* pwa = wa)
                fixed (float* pwb = wb)
                fixed (float* pw1 = w1)
                fixed (float* poa = outA)
                fixed (float* pob = outB)
                fixed (float* po1 = out1)
                fixed (float* pdya = dya)
                fixed (float* pdyb = dyb)
                fixed (float* pdy1 = dy1)
                fixed (float* pdx = dx)
                fixed (float* pgwa = gwa)
                fixed (float* pgwb = gwb)
                fixed (float* pgw1 = gw1)
                {
                    DepthwiseConvolution.Forward(px, n, c, h, w, 1, 1, [new DepthwiseBranch(pwa, 3, poa), new DepthwiseBranch(pwb, 3, pob), new DepthwiseBranch(pw1, 1, po1)]);
                    DepthwiseConvolution.BackwardInput(pdx, true, n, c, h, w, 1, 1, [new DepthwiseBranch(pwa, 3, pdya), new DepthwiseBranch(pwb, 3, pdyb), new DepthwiseBranch(pw1, 1, pdy1)]);
                    DepthwiseConvolution.BackwardWeight(px, n, c, h, w, 1, 1, [new DepthwiseBranch(pgwa, 3, pdya), new DepthwiseBranch(pgwb, 3, pdyb), new DepthwiseBranch(pgw1, 1, pdy1)]);
                }

                string what = $"{h}x{w} {level} t{threads}";
                Close(Reference.Conv2d(x, n, c, h, w, wa, c, 3, 1, 1, c, null), outA, what + " 3x3 a");
                Close(Reference.Conv2d(x, n, c, h, w, wb, c, 3, 1, 1, c, null), outB, what + " 3x3 b");
                Close(Reference.Conv2d(x, n, c, h, w, w1, c, 1, 1, 0, c, null), out1, what + " 1x1");
                Close(expectedDx, dx, what + " input gradient");
                Close(gwStart.Select((v, i) => v + dwa[i]).ToArray(), gwa, what + " weight gradient a");
                Close(dwb, gwb, what + " weight gradient b");
                Close(dw1, gw1, what + " 1x1 weight gradient");
                if (level == Levels[0])
                {
                    firstDx ??= dx;
                    Assert.Equal(firstDx, dx);
                }
            }
        }
    }

    [Theory]
    [InlineData(2, 2, 70)]
    [InlineData(1, 2, 3)]
    [InlineData(4, 4, 70)]
    [InlineData(3, 5, 9)]
    [InlineData(16, 16, 70)]
    [InlineData(17, 33, 2)]
    [InlineData(112, 112, 1)]
    public void Stride_two_input_gradient_by_parity_matches_textbook_loops(int h, int w, int n)
    {
        // The parity pass stacks as many images as fit its chunk (70 images of 16x16 take two chunks, of 2x2 one),
        // sums two 3x3 branches and a 1x1 branch into a gradient that already holds values, and, with the 1x1
        // branch alone (padding 0), must leave the odd rows and columns as they were.
        using var settings = new KernelSettingsScope();
        var rng = new Random((h * 131) + (w * 7) + n);
        int c = 3, ho = ((h - 1) / 2) + 1, wo = ((w - 1) / 2) + 1, size = n * c * h * w, outSize = n * c * ho * wo;
        var x = new float[size];
        var wa = Reference.RandomArray(rng, c * 9);
        var wb = Reference.RandomArray(rng, c * 9);
        var w1 = Reference.RandomArray(rng, c);
        var dya = Reference.RandomArray(rng, outSize);
        var dyb = Reference.RandomArray(rng, outSize);
        var dy1 = Reference.RandomArray(rng, outSize);
        var dxStart = Reference.RandomArray(rng, size);
        var g3 = new ConvGeometry(n, c, h, w, c, 3, 3, 2, 2, 1, 1, c);
        var g1 = new ConvGeometry(n, c, h, w, c, 1, 1, 2, 2, 0, 0, c);
        var (dxa, _) = TextbookBackward(x, wa, dya, g3);
        var (dxb, _) = TextbookBackward(x, wb, dyb, g3);
        var (dx1, _) = TextbookBackward(x, w1, dy1, g1);
        foreach (var level in Levels)
        {
            foreach (int threads in new[] { 1, 2 })
            {
                Lanes.Level = level;
                ComputeThreads.Count = threads;
                var all = (float[])dxStart.Clone();
                var scaleOnly = (float[])dxStart.Clone();
                var fresh = Reference.RandomArray(rng, size);
                fixed (float* pwa = wa)
                fixed (float* pwb = wb)
                fixed (float* pw1 = w1)
                fixed (float* pdya = dya)
                fixed (float* pdyb = dyb)
                fixed (float* pdy1 = dy1)
                fixed (float* pall = all)
                fixed (float* pscale = scaleOnly)
                fixed (float* pfresh = fresh)
                {
                    DepthwiseConvolution.BackwardInput(pall, true, n, c, h, w, 2, 1, [new DepthwiseBranch(pw1, 1, pdy1), new DepthwiseBranch(pwa, 3, pdya), new DepthwiseBranch(pwb, 3, pdyb)]);
                    DepthwiseConvolution.BackwardInput(pscale, true, n, c, h, w, 2, 0, [new DepthwiseBranch(pw1, 1, pdy1)]);
                    DepthwiseConvolution.BackwardInput(pfresh, false, n, c, h, w, 2, 1, [new DepthwiseBranch(pwa, 3, pdya)]);
                }

                string what = $"{n}x{h}x{w} {level} t{threads}";
                Close(dxStart.Select((v, i) => v + dxa[i] + dxb[i] + dx1[i]).ToArray(), all, what + " three branches, accumulated");
                Close(dxStart.Select((v, i) => v + dx1[i]).ToArray(), scaleOnly, what + " 1x1 alone, accumulated");
                Close(dxa, fresh, what + " one 3x3 branch, overwritten");
            }
        }
    }

    private static (double[] Dx, double[] Dw) TextbookBackward(float[] x, float[] w, float[] dy, ConvGeometry g)
    {
        var dx = new double[x.Length];
        var dw = new double[w.Length];
        int cg = g.InChannelsPerGroup, og = g.OutChannelsPerGroup, k = g.KernelHeight;
        for (int b = 0; b < g.Batch; b++)
        {
            for (int oc = 0; oc < g.OutChannels; oc++)
            {
                int grp = oc / og;
                for (int oy = 0; oy < g.OutHeight; oy++)
                {
                    for (int ox = 0; ox < g.OutWidth; ox++)
                    {
                        double d = dy[((((b * g.OutChannels) + oc) * g.OutHeight) + oy) * g.OutWidth + ox];
                        for (int ic = 0; ic < cg; ic++)
                        {
                            for (int ky = 0; ky < k; ky++)
                            {
                                for (int kx = 0; kx < k; kx++)
                                {
                                    int iy = (oy * g.StrideH) - g.PadH + ky, ix = (ox * g.StrideW) - g.PadW + kx;
                                    if (iy < 0 || iy >= g.InHeight || ix < 0 || ix >= g.InWidth)
                                    {
                                        continue;
                                    }

                                    int xi = ((((b * g.InChannels) + (grp * cg) + ic) * g.InHeight) + iy) * g.InWidth + ix;
                                    int wi = ((((oc * cg) + ic) * k) + ky) * k + kx;
                                    dx[xi] += d * w[wi];
                                    dw[wi] += d * x[xi];
                                }
                            }
                        }
                    }
                }
            }
        }

        return (dx, dw);
    }

    private static float[] Transpose(float[] m, int rows, int cols)
    {
        var t = new float[m.Length];
        for (int i = 0; i < rows; i++)
        {
            for (int j = 0; j < cols; j++)
            {
                t[(j * rows) + i] = m[(i * cols) + j];
            }
        }

        return t;
    }

    private static void Close(double[] expected, float[] actual, string what)
    {
        double scale = Math.Max(1, expected.Max(Math.Abs));
        double diff = Reference.MaxAbsDiff(actual, expected);
        Assert.True(diff <= 2e-6 * scale, $"{what}: max diff {diff:e3} (scale {scale:g3})");
    }
}

/// <summary>Tests that change the global kernel settings (threads, SIMD level) must not run beside each other.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class KernelSettingsCollection
{
    public const string Name = "Global kernel settings";
}
