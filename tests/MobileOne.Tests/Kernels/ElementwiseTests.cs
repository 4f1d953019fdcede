using MobileOne.Kernels;
using MobileOne.Tests.Nn;

namespace MobileOne.Tests.Kernels;

/// <summary>
/// The element-wise helpers of the moment passes against their scalar definitions, at every instruction-set level and
/// at lengths that leave tails for each narrower width (so every width of the chain runs).
/// </summary>
[Collection(KernelSettingsCollection.Name)]
public sealed unsafe class ElementwiseTests
{
    private static readonly int[] Lengths = [0, 1, 3, 4, 7, 16, 31, 64, 129];

    [Theory]
    [IsaData(IsaLevel.Avx512)]
    [IsaData(IsaLevel.Avx2)]
    [IsaData(IsaLevel.Scalar)]
    public void Double_dots_match_the_products_summed_in_double(IsaLevel level)
    {
        using var settings = new KernelSettingsScope();
        Lanes.Level = level;
        var rng = new Random(3);
        foreach (int n in Lengths)
        {
            // Terms of size 1e4 that cancel to about 1: float accumulation would lose the result, double keeps it.
            float[] a = Values(rng, n, 1e2f), b = Values(rng, n, 1e2f);
            double[] d = [.. Values(rng, n, 1e2f).Select(v => (double)v)];
            double expectedFloat = 0, expectedDouble = 0;
            for (int i = 0; i < n; i++)
            {
                expectedFloat += (double)a[i] * b[i];
                expectedDouble += a[i] * d[i];
            }

            fixed (float* pa = a)
            fixed (float* pb = b)
            fixed (double* pd = d)
            {
                Assert.Equal(expectedFloat, Elementwise.DotDouble(pa, pb, n), 1e-9 * Math.Max(1, Math.Abs(expectedFloat)));
                Assert.Equal(expectedDouble, Elementwise.DotDouble(pa, pd, n), 1e-9 * Math.Max(1, Math.Abs(expectedDouble)));
            }
        }
    }

    [Theory]
    [IsaData(IsaLevel.Avx512)]
    [IsaData(IsaLevel.Avx2)]
    [IsaData(IsaLevel.Scalar)]
    public void Scaled_adds_are_a_multiply_then_an_add_bit_for_bit(IsaLevel level)
    {
        using var settings = new KernelSettingsScope();
        Lanes.Level = level;
        var rng = new Random(4);
        foreach (int n in Lengths)
        {
            float[] x = Values(rng, n, 3f), y = Values(rng, n, 3f);
            float[] expected = [.. y.Select((v, i) => v + (x[i] * -1.7f))];
            fixed (float* px = x)
            fixed (float* py = y)
            {
                Elementwise.AddScaled(py, px, -1.7f, n);
            }

            Assert.Equal(expected, y);
        }
    }

    [Theory]
    [IsaData(IsaLevel.Avx512, false)]
    [IsaData(IsaLevel.Avx512, true)]
    [IsaData(IsaLevel.Avx2, true)]
    [IsaData(IsaLevel.Scalar, true)]
    public void Shifted_runs_copy_between_strided_layouts_and_touch_nothing_else(IsaLevel level, bool relu)
    {
        using var settings = new KernelSettingsScope();
        Lanes.Level = level;
        var rng = new Random(5);
        foreach (int length in new[] { 1, 4, 7, 16, 23 })
        {
            // Five runs, read every 40 floats and written every length + 3: the gaps must keep their sentinel.
            const int runs = 5, xStride = 40;
            int yStride = length + 3;
            float[] x = Values(rng, runs * xStride, 2f);
            float[] y = Enumerable.Repeat(99f, runs * yStride).ToArray();
            fixed (float* px = x)
            fixed (float* py = y)
            {
                Elementwise.ShiftRuns(px, xStride, py, yStride, runs, length, 0.25f, relu);
            }

            for (int r = 0; r < runs; r++)
            {
                for (int i = 0; i < yStride; i++)
                {
                    float v = x[(r * xStride) + i] + 0.25f;
                    float expected = i < length ? (relu ? MathF.Max(v, 0f) : v) : 99f;
                    Assert.Equal(expected, y[(r * yStride) + i]);
                }
            }
        }
    }

    private static float[] Values(Random rng, int n, float scale) =>
        [.. Enumerable.Range(0, n).Select(_ => (float)((rng.NextDouble() * 2) - 1) * scale)];
}
