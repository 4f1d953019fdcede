using CsCheck;
using MobileOne.Inference;
using MobileOne.Kernels;
using MobileOne.Kernels.Conv;

namespace MobileOne.Tests.Kernels.Conv;

public class ConvolutionKernelTests
{
    private static readonly ConvAlgorithm[] Algorithms = [ConvAlgorithm.Direct, ConvAlgorithm.Im2Col, ConvAlgorithm.Im2Win];

    /// <summary>Every register width this CPU runs: Vector512 (AVX-512), Vector256 (AVX2), scalar.</summary>
    private static readonly IsaLevel[] Widths = [.. new[] { IsaLevel.Avx512, IsaLevel.Avx2, IsaLevel.Scalar }.Where(CompiledModel.IsSupported)];

    /// <summary>
    /// Kernel 1/3/5/7 per axis, stride 1/2 per axis, padding 0..3 per axis, groups 1 / depthwise / another
    /// divisor (depth multipliers included), odd image sizes, bias and ReLU on or off, every register width.
    /// </summary>
    private static readonly Gen<Case> Cases =
        Gen.Select(Gen.OneOf(1, 3, 5, 7), Gen.Int[0, 3], Gen.Int[1, 2], Gen.Int[1, 2], Gen.Int[0, 3], Gen.Int[0, 3], Gen.Int[0, 2])
            .SelectMany(t => Gen.Select(Gen.Int[1, 24], Gen.Int[1, 40], Gen.Int[0, 12], Gen.Int[0, 12], Gen.Int[0, 3], Gen.OneOf(Widths), Gen.Int)
                .Select(u =>
                {
                    var (k, kwPick, sh, sw, ph, pw, groupKind) = t;
                    var (cA, cB, extraH, extraW, flags, width, seed) = u;
                    int kh = k, kw = kwPick == 0 ? new[] { 1, 3, 5, 7 }[seed & 3] : k;
                    int groups, cin, cout;
                    switch (groupKind)
                    {
                        case 0: groups = 1; cin = cA; cout = cB; break;
                        case 1: groups = cin = cout = cB; break;
                        default: groups = 2 + (cA % 3); cin = groups * (1 + (cB % 5)); cout = groups * (1 + (cA % 6)); break;
                    }

                    int h = Math.Max(1, kh - (2 * ph)) + extraH, w = Math.Max(1, kw - (2 * pw)) + extraW;
                    var g = new ConvGeometry(1, cin, h, w, cout, kh, kw, sh, sw, ph, pw, groups);
                    return new Case(g, (flags & 1) != 0, (flags & 2) != 0, width, seed);
                }));

    [Fact]
    public void Every_algorithm_matches_the_reference_convolution_and_the_others_on_random_shapes()
    {
        Cases.Sample(s =>
        {
            var rng = new Random(s.Seed);
            var g = s.Geometry;
            var imageNchw = Reference.RandomArray(rng, g.InChannels * g.InPlane);
            var weight = Reference.RandomArray(rng, g.OutChannels * g.PatchSize);
            var bias = s.Bias ? Reference.RandomArray(rng, g.OutChannels) : null;
            var image = ConvLayouts.ToNhwc(imageNchw, g.InChannels, g.InHeight, g.InWidth);
            var expected = ConvLayouts.ReferenceNhwc(imageNchw, weight, bias, g, s.Relu);
            double tolerance = 1e-5 * (1 + g.PatchSize) * (1 + Reference.MaxAbs(expected));
            float[]? first = null;
            foreach (var algorithm in Algorithms)
            {
                var kernel = ConvolutionKernels.Create(algorithm, g, weight, bias, s.Width);
                Assert.Equal(algorithm, kernel.Algorithm);
                var output = RunBands(kernel, image, [0, g.OutHeight], s.Relu);
                double diff = Reference.MaxAbsDiff(output, expected);
                Assert.True(diff <= tolerance, $"{algorithm} {s}: {diff} > {tolerance} against the reference");
                if (first is not null)
                {
                    double between = Reference.MaxAbsDiff(output, first);
                    Assert.True(between <= tolerance, $"{algorithm} {s}: {between} from direct");
                }

                first ??= output;
            }
        }, iter: 300);
    }

    [Fact]
    public void Row_bands_with_separate_workspaces_reproduce_one_full_run_exactly()
    {
        Cases.Sample(s =>
        {
            var rng = new Random(s.Seed);
            var g = s.Geometry;
            var image = Reference.RandomArray(rng, g.InChannels * g.InPlane);
            var weight = Reference.RandomArray(rng, g.OutChannels * g.PatchSize);
            var bias = s.Bias ? Reference.RandomArray(rng, g.OutChannels) : null;
            int[] cuts = [0, .. Enumerable.Range(0, s.Seed & 3).Select(_ => rng.Next(g.OutHeight + 1)).Order(), g.OutHeight];
            foreach (var algorithm in Algorithms)
            {
                var kernel = ConvolutionKernels.Create(algorithm, g, weight, bias, s.Width);
                var whole = RunBands(kernel, image, [0, g.OutHeight], s.Relu);
                var banded = RunBands(kernel, image, cuts, s.Relu);
                Assert.True(whole.AsSpan().SequenceEqual(banded), $"{algorithm} {s} bands [{string.Join(", ", cuts)}]");
            }
        }, iter: 150);
    }

    [Theory]
    [IsaData(IsaLevel.Avx512)]
    [IsaData(IsaLevel.Avx2)]
    [IsaData(IsaLevel.Scalar)]
    public void Wide_layers_with_several_channel_panels_match_the_reference(IsaLevel width)
    {
        // 150 output channels: two full 64-channel panels and a partial one at Vector512, 10 panels at Vector256.
        // Bands [0, 1) and [1, Ho) so a band starts mid-image.
        foreach (var g in new[]
        {
            ConvGeometry.Square(1, 40, 9, 11, 150, 3, 1, 1, 1),
            ConvGeometry.Square(1, 3, 23, 21, 48, 3, 2, 1, 1),
            ConvGeometry.Square(1, 70, 7, 9, 70, 3, 2, 1, 70),
            ConvGeometry.Square(1, 96, 5, 7, 80, 1, 1, 0, 1),
            ConvGeometry.Square(1, 96, 5, 7, 80, 1, 2, 0, 2),
            ConvGeometry.Square(1, 64, 15, 128, 8, 3, 1, 1, 1), // 32 KiB input rows: direct runs several row blocks
        })
        {
            var rng = new Random(g.OutChannels);
            var imageNchw = Reference.RandomArray(rng, g.InChannels * g.InPlane);
            var weight = Reference.RandomArray(rng, g.OutChannels * g.PatchSize);
            var bias = Reference.RandomArray(rng, g.OutChannels);
            var expected = ConvLayouts.ReferenceNhwc(imageNchw, weight, bias, g, relu: true);
            var image = ConvLayouts.ToNhwc(imageNchw, g.InChannels, g.InHeight, g.InWidth);
            foreach (var algorithm in Algorithms)
            {
                var kernel = ConvolutionKernels.Create(algorithm, g, weight, bias, width);
                var output = RunBands(kernel, image, [0, 1, g.OutHeight], relu: true);
                Assert.True(Reference.MaxAbsDiff(output, expected) <= 1e-4, $"{algorithm} {width} {g}");
            }
        }
    }

    [Fact]
    public void Auto_picks_im2col_for_1x1_and_direct_for_every_other_kernel()
    {
        Assert.Equal(ConvAlgorithm.Im2Col, ConvolutionKernels.Choose(ConvGeometry.Square(1, 16, 8, 8, 32, 1, 1, 0, 1)));
        Assert.Equal(ConvAlgorithm.Im2Col, ConvolutionKernels.Choose(ConvGeometry.Square(1, 16, 8, 8, 16, 1, 2, 0, 16)));
        Assert.Equal(ConvAlgorithm.Direct, ConvolutionKernels.Choose(ConvGeometry.Square(1, 16, 8, 8, 16, 3, 1, 1, 16)));
        Assert.Equal(ConvAlgorithm.Direct, ConvolutionKernels.Choose(ConvGeometry.Square(1, 3, 224, 224, 48, 3, 2, 1, 1)));
        Assert.Equal(ConvAlgorithm.Direct, ConvolutionKernels.Choose(ConvGeometry.Square(1, 256, 14, 14, 256, 3, 2, 1, 2)));
        Assert.Equal(ConvAlgorithm.Direct, ConvolutionKernels.Choose(new ConvGeometry(1, 8, 9, 9, 8, 1, 3, 1, 1, 0, 1, 1)));
        var kernel = ConvolutionKernels.Create(ConvAlgorithm.Auto, ConvGeometry.Square(1, 8, 5, 5, 8, 1, 1, 0, 1), new float[8 * 8], []);
        Assert.Equal(ConvAlgorithm.Im2Col, kernel.Algorithm);
        kernel = ConvolutionKernels.Create(ConvAlgorithm.Auto, ConvGeometry.Square(1, 8, 5, 5, 8, 3, 1, 1, 1), new float[8 * 8 * 9], []);
        Assert.Equal(ConvAlgorithm.Direct, kernel.Algorithm);
    }

    [Fact]
    public void Run_allocates_nothing_after_warm_up()
    {
        foreach (var g in new[]
        {
            ConvGeometry.Square(1, 3, 17, 15, 48, 3, 2, 1, 1),
            ConvGeometry.Square(1, 24, 9, 9, 24, 3, 1, 1, 24),
            ConvGeometry.Square(1, 24, 9, 9, 36, 3, 1, 1, 3),
            ConvGeometry.Square(1, 24, 9, 9, 40, 1, 1, 0, 1),
        })
        {
            var rng = new Random(1);
            var image = Reference.RandomArray(rng, g.InChannels * g.InPlane);
            var weight = Reference.RandomArray(rng, g.OutChannels * g.PatchSize);
            var bias = Reference.RandomArray(rng, g.OutChannels);
            var output = new float[g.OutChannels * g.OutPlane];
            foreach (var algorithm in Algorithms)
            {
                var kernel = ConvolutionKernels.Create(algorithm, g, weight, bias);
                var workspace = new float[kernel.WorkspaceFloats(g.OutHeight)];
                for (int i = 0; i < 3; i++)
                {
                    kernel.Run(image, output, workspace, 0, g.OutHeight, relu: i % 2 == 0);
                }

                long before = GC.GetAllocatedBytesForCurrentThread();
                kernel.Run(image, output, workspace, 0, g.OutHeight, relu: true);
                kernel.Run(image, output, workspace, 1, g.OutHeight - 1, relu: false);
                long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
                Assert.True(allocated == 0, $"{algorithm} {g} allocated {allocated} bytes");
            }
        }
    }

    [Fact]
    public void Too_small_spans_and_bad_bands_are_rejected_with_what_was_expected()
    {
        var g = ConvGeometry.Square(1, 3, 8, 8, 4, 3, 1, 1, 1);
        var weight = new float[4 * 27];
        var image = new float[8 * 8 * 3];
        var output = new float[8 * 8 * 4];
        foreach (var algorithm in Algorithms)
        {
            var kernel = ConvolutionKernels.Create(algorithm, g, weight, []);
            var workspace = new float[kernel.WorkspaceFloats(8)];
            var e = Assert.Throws<ArgumentException>(() => kernel.Run(image.AsSpan(1), output, workspace, 0, 8, false));
            Assert.StartsWith($"{algorithm} convolution: the input image has 191 floats; 8x8x3 (NHWC) needs 192.", e.Message);
            e = Assert.Throws<ArgumentException>(() => kernel.Run(image, output.AsSpan(0, 255), workspace, 0, 8, false));
            Assert.StartsWith($"{algorithm} convolution: the output has 255 floats; 8x8x4 (NHWC) needs 256.", e.Message);
            e = Assert.Throws<ArgumentException>(() => kernel.Run(image, output, workspace, 3, 9, false));
            Assert.StartsWith($"{algorithm} convolution: output rows [3, 9) are not a band of [0, 8).", e.Message);
            e = Assert.Throws<ArgumentException>(() => kernel.Run(image, output, workspace, 5, 4, false));
            Assert.StartsWith($"{algorithm} convolution: output rows [5, 4) are not a band of [0, 8).", e.Message);
            e = Assert.Throws<ArgumentException>(() => kernel.WorkspaceFloats(9));
            Assert.StartsWith("A band has 0 to 8 output rows; got 9.", e.Message);
            if (workspace.Length > 0)
            {
                e = Assert.Throws<ArgumentException>(() => kernel.Run(image, output, workspace.AsSpan(1), 0, 8, false));
                Assert.StartsWith($"{algorithm} convolution: the workspace has {workspace.Length - 1} floats; 8 output rows need {workspace.Length}.", e.Message);
            }
        }
    }

    [Fact]
    public void Invalid_geometry_weights_and_bias_are_rejected_with_what_was_expected()
    {
        var e = Assert.Throws<ArgumentException>(() => ConvolutionKernels.Create(ConvAlgorithm.Im2Win, ConvGeometry.Square(1, 6, 8, 8, 4, 3, 1, 1, 4), new float[16], []));
        Assert.StartsWith("Groups 4 must divide both input channels 6 and output channels 4.", e.Message);
        e = Assert.Throws<ArgumentException>(() => ConvolutionKernels.Create(ConvAlgorithm.Direct, ConvGeometry.Square(1, 3, 2, 2, 4, 7, 1, 1, 1), new float[4 * 3 * 49], []));
        Assert.StartsWith("Input 2x2 with padding 1x1 is smaller than the kernel 7x7.", e.Message);
        e = Assert.Throws<ArgumentException>(() => ConvolutionKernels.Create(ConvAlgorithm.Direct, ConvGeometry.Square(1, 3, 8, 8, 4, 3, 0, 1, 1), new float[4 * 27], []));
        Assert.StartsWith("Invalid kernel 3x3, stride 0x0 or padding 1x1.", e.Message);
        e = Assert.Throws<ArgumentException>(() => ConvolutionKernels.Create(ConvAlgorithm.Im2Col, ConvGeometry.Square(1, 3, 8, 8, 4, 3, 1, 1, 1), new float[4 * 26], []));
        Assert.StartsWith("Convolution weight has 104 floats; [4][3][3][3] (OIHW) needs 108.", e.Message);
        e = Assert.Throws<ArgumentException>(() => ConvolutionKernels.Create(ConvAlgorithm.Im2Col, ConvGeometry.Square(1, 3, 8, 8, 4, 3, 1, 1, 1), new float[4 * 27], new float[3]));
        Assert.StartsWith("Convolution bias has 3 floats; expected 4 (one per output channel) or none.", e.Message);
        e = Assert.Throws<ArgumentException>(() => ConvolutionKernels.Create((ConvAlgorithm)17, ConvGeometry.Square(1, 3, 8, 8, 4, 3, 1, 1, 1), new float[4 * 27], []));
        Assert.StartsWith("Unknown convolution algorithm 17; expected Auto, Direct, Im2Col or Im2Win.", e.Message);
    }

    /// <summary>Runs each band [cuts[i], cuts[i+1]) with a workspace of exactly the advertised size; NaN marks unwritten output.</summary>
    private static float[] RunBands(IConvolutionKernel kernel, float[] image, int[] cuts, bool relu)
    {
        var g = kernel.Geometry;
        var output = new float[g.OutChannels * g.OutPlane];
        Array.Fill(output, float.NaN);
        for (int i = 0; i + 1 < cuts.Length; i++)
        {
            var workspace = new float[kernel.WorkspaceFloats(cuts[i + 1] - cuts[i])];
            Array.Fill(workspace, float.NaN);
            kernel.Run(image, output, workspace, cuts[i], cuts[i + 1], relu);
            int rowFloats = g.OutWidth * g.OutChannels;
            var band = output.AsSpan(cuts[i] * rowFloats, (cuts[i + 1] - cuts[i]) * rowFloats);
            Assert.False(ContainsNaN(band), $"band [{cuts[i]}, {cuts[i + 1]}) left values unwritten");
            var after = output.AsSpan(cuts[i + 1] * rowFloats);
            Assert.True(AllNaN(after), $"band [{cuts[i]}, {cuts[i + 1]}) wrote past its last row");
        }

        return output;
    }

    private static bool AllNaN(ReadOnlySpan<float> values)
    {
        foreach (float v in values)
        {
            if (!float.IsNaN(v))
            {
                return false;
            }
        }

        return true;
    }

    private static bool ContainsNaN(ReadOnlySpan<float> values)
    {
        foreach (float v in values)
        {
            if (float.IsNaN(v))
            {
                return true;
            }
        }

        return false;
    }

    internal sealed record Case(ConvGeometry Geometry, bool Bias, bool Relu, IsaLevel Width, int Seed)
    {
        public override string ToString() =>
            $"{Geometry.InHeight}x{Geometry.InWidth}x{Geometry.InChannels}->{Geometry.OutChannels} k{Geometry.KernelHeight}x{Geometry.KernelWidth} " +
            $"s{Geometry.StrideH}x{Geometry.StrideW} p{Geometry.PadH}x{Geometry.PadW} g{Geometry.Groups} bias={Bias} relu={Relu} {Width} seed={Seed}";
    }
}
