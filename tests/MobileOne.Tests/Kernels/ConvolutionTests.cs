using CsCheck;
using MobileOne.Kernels;
using MobileOne.Tests.Oracle;

namespace MobileOne.Tests.Kernels;

public class ConvolutionTests
{
    private static readonly Gen<(int N, int G, int Cg, int Og, int K, int Stride, int Pad, int H, int W, bool Bias, int Seed)> Shapes =
        Gen.Select(Gen.Int[1, 2], Gen.Int[1, 4], Gen.Int[1, 5], Gen.Int[1, 5], Gen.OneOf(1, 3, 5, 7), Gen.Int[1, 2], Gen.Int[0, 3])
            .SelectMany(t => Gen.Select(Gen.Int[t.Item5, 17], Gen.Int[t.Item5, 17], Gen.Bool, Gen.Int)
                .Select(u => (t.Item1, t.Item2, t.Item3, t.Item4, t.Item5, t.Item6, t.Item7, u.Item1, u.Item2, u.Item3, u.Item4)));

    [Fact]
    public void Forward_matches_textbook_convolution_on_random_shapes()
    {
        Shapes.Sample(s =>
        {
            int c = s.G * s.Cg, o = s.G * s.Og;
            var rng = new Random(s.Seed);
            var x = Reference.RandomArray(rng, s.N * c * s.H * s.W);
            var w = Reference.RandomArray(rng, o * s.Cg * s.K * s.K);
            var b = s.Bias ? Reference.RandomArray(rng, o) : null;
            var g = ConvGeometry.Square(s.N, c, s.H, s.W, o, s.K, s.Stride, s.Pad, s.G);
            var y = new float[s.N * o * g.OutPlane];
            Convolution.Forward(x, w, b, y, g);
            var expected = Reference.Conv2d(x, s.N, c, s.H, s.W, w, o, s.K, s.Stride, s.Pad, s.G, b);
            Assert.True(Reference.MaxAbsDiff(y, expected) < 1e-4, $"difference {Reference.MaxAbsDiff(y, expected)} for {s}");
        }, iter: 150);
    }

    [Theory]
    [InlineData(16, 16, 3, 1, 1, 16)] // depthwise stride 1
    [InlineData(16, 16, 3, 2, 1, 16)] // depthwise stride 2
    [InlineData(24, 40, 1, 1, 0, 1)] // pointwise, GEMM on the input directly
    [InlineData(3, 8, 3, 2, 1, 1)] // stem
    [InlineData(12, 18, 3, 1, 1, 3)] // grouped
    public void MobileOne_layer_shapes_match_textbook_convolution(int c, int o, int k, int stride, int pad, int groups)
    {
        var rng = new Random(c * 31 + o);
        const int n = 2, h = 13, w = 11;
        var x = Reference.RandomArray(rng, n * c * h * w);
        var wt = Reference.RandomArray(rng, o * (c / groups) * k * k);
        var b = Reference.RandomArray(rng, o);
        var g = ConvGeometry.Square(n, c, h, w, o, k, stride, pad, groups);
        var y = new float[n * o * g.OutPlane];
        Convolution.Forward(x, wt, b, y, g);
        var expected = Reference.Conv2d(x, n, c, h, w, wt, o, k, stride, pad, groups, b);
        Assert.True(Reference.MaxAbsDiff(y, expected) < 1e-4);
    }

    [Fact]
    public void Gemm_matches_naive_product_for_ragged_sizes_and_accumulation()
    {
        var rng = new Random(7);
        foreach (var (m, n, k) in new[] { (1, 1, 1), (5, 37, 3), (9, 16, 70), (130, 33, 64), (64, 3136 / 4, 48) })
        {
            var a = Reference.RandomArray(rng, m * k);
            var b = Reference.RandomArray(rng, k * n);
            var c = Reference.RandomArray(rng, m * n);
            var expected = new double[m * n];
            for (int i = 0; i < m; i++)
            {
                for (int j = 0; j < n; j++)
                {
                    double s = c[i * n + j];
                    for (int p = 0; p < k; p++)
                    {
                        s += (double)a[i * k + p] * b[p * n + j];
                    }

                    expected[i * n + j] = s;
                }
            }

            Gemm.Multiply(a, k, b, n, c, n, m, n, k, accumulate: true);
            Assert.True(Reference.MaxAbsDiff(c, expected) < 1e-3, $"{m}x{n}x{k}");
        }
    }

    [Fact]
    public void Invalid_geometry_is_reported()
    {
        var g = ConvGeometry.Square(1, 6, 8, 8, 4, 3, 1, 1, 4);
        var e = Assert.Throws<ArgumentException>(() => g.Validate());
        Assert.Contains("Groups 4 must divide", e.Message);
    }
}
