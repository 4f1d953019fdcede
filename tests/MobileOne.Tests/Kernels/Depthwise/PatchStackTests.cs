using MobileOne.Kernels.Depthwise;
using Xunit;

namespace MobileOne.Tests.Kernels.Depthwise;

/// <summary>
/// The planes-in-a-row stack's passes that work per output position rather than per tap, against their definitions
/// written out per window: the patch moments (lag products less the plane's edges) and the input gradient (a 5x5
/// correlation with border fix-ups).
/// </summary>
public sealed unsafe class PatchStackTests
{
    /// <summary>(batch, height, width): odd planes, single rows and columns, a single pixel, S0's plane sizes, and a batch longer than one float block of sums.</summary>
    public static TheoryData<int, int, int> Planes() => new()
    {
        { 1, 5, 5 }, { 3, 7, 9 }, { 2, 1, 20 }, { 2, 20, 1 }, { 4, 1, 1 }, { 2, 2, 17 }, { 3, 2, 2 }, { 2, 14, 14 }, { 1, 28, 28 }, { 2, 80, 80 },
    };

    /// <summary>sums[a] = sum over output positions o of x[o + off_a], products[9a + b] = sum of x[o + off_a] x[o + off_b], zero outside the plane.</summary>
    [Theory]
    [MemberData(nameof(Planes))]
    public void Moments_equal_their_definition(int batch, int height, int width)
    {
        var stack = new PatchStack(batch, height, width, imagesInLanes: false);
        var rng = new Random((height * 100) + width + batch);
        var x = Random3(rng, batch, height, width);
        var expectedSums = new double[9];
        var expectedProducts = new double[81];
        for (int i = 0; i < batch; i++)
        {
            for (int r = 0; r < height; r++)
            {
                for (int c = 0; c < width; c++)
                {
                    for (int a = 0; a < 9; a++)
                    {
                        double xa = At(x, i, r + (a / 3) - 1, c + (a % 3) - 1);
                        expectedSums[a] += xa;
                        for (int b = 0; b < 9; b++)
                        {
                            expectedProducts[(9 * a) + b] += xa * At(x, i, r + (b / 3) - 1, c + (b % 3) - 1);
                        }
                    }
                }
            }
        }

        var nchw = Flatten(x);
        var xs = new float[stack.Total];
        var sums = new double[9];
        var products = new double[81];
        fixed (float* xp = nchw, xsp = xs)
        fixed (double* sp = sums, pp = products)
        {
            stack.Gather(xp, 1, 0, xsp);
            stack.Moments(xsp, sp, pp);
        }

        double scale = batch * height * width;
        for (int a = 0; a < 9; a++)
        {
            Assert.True(Math.Abs(sums[a] - expectedSums[a]) <= 1e-5 * scale, $"sum {a}: {sums[a]} against {expectedSums[a]}");
            for (int b = 0; b < 9; b++)
            {
                double got = products[(9 * a) + b], want = expectedProducts[(9 * a) + b];
                Assert.True(Math.Abs(got - want) <= 1e-5 * scale, $"product ({a}, {b}): {got} against {want}");
            }
        }
    }

    [Theory]
    [MemberData(nameof(Planes))]
    public void Input_gradient_equals_its_definition(int batch, int height, int width)
    {
        var stack = new PatchStack(batch, height, width, imagesInLanes: false);
        var rng = new Random(height * 100 + width + batch);
        var x = Random3(rng, batch, height, width);
        var g = Random3(rng, batch, height, width);

        var w = Enumerable.Range(0, 9).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();
        var k = Enumerable.Range(0, 9).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();
        var q = Enumerable.Range(0, 81).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();

        var expected = new double[batch, height, width];
        for (int i = 0; i < batch; i++)
        {
            for (int r = 0; r < height; r++)
            {
                for (int c = 0; c < width; c++)
                {
                    for (int t = 0; t < 9; t++)
                    {
                        int pr = r + (t / 3) - 1, pc = c + (t % 3) - 1;
                        if (pr < 0 || pr >= height || pc < 0 || pc >= width)
                        {
                            continue;
                        }

                        double h = (w[t] * (double)g[i, r, c]) + k[t];
                        for (int u = 0; u < 9; u++)
                        {
                            int xr = r + (u / 3) - 1, xc = c + (u % 3) - 1;
                            if (xr >= 0 && xr < height && xc >= 0 && xc < width)
                            {
                                h -= q[(9 * t) + u] * (double)x[i, xr, xc];
                            }
                        }

                        expected[i, pr, pc] += h;
                    }
                }
            }
        }

        var nchwX = Flatten(x);
        var nchwG = Flatten(g);
        var xs = new float[stack.Total];
        var gs = new float[stack.Total];
        var dxs = new float[stack.Total];
        var dx = new float[batch * height * width];

        // Garbage in the output buffer: every output position must be written.
        dxs.AsSpan().Fill(float.NaN);
        fixed (float* xp = nchwX, gp = nchwG, xsp = xs, gsp = gs, dxsp = dxs, dxp = dx, wp = w, kp = k, qp = q)
        {
            stack.Gather(xp, 1, 0, xsp);
            stack.Gather(gp, 1, 0, gsp);
            stack.InputGradient(gsp, xsp, wp, qp, kp, dxsp);
            stack.Scatter(dxsp, 0f, relu: false, dxp, 1, 0);
        }

        for (int i = 0; i < batch; i++)
        {
            for (int r = 0; r < height; r++)
            {
                for (int c = 0; c < width; c++)
                {
                    double want = expected[i, r, c];
                    float got = dx[(((i * height) + r) * width) + c];
                    Assert.True(Math.Abs(got - want) <= 1e-5 * (1 + Math.Abs(want)), $"image {i}, ({r}, {c}): {got} against {want}");
                }
            }
        }
    }

    private static float[,,] Random3(Random rng, int batch, int height, int width)
    {
        var a = new float[batch, height, width];
        for (int i = 0; i < batch; i++)
        {
            for (int r = 0; r < height; r++)
            {
                for (int c = 0; c < width; c++)
                {
                    // Not centred, as a stack's pixels in the moments pass are not exactly.
                    a[i, r, c] = (float)(rng.NextDouble() - 0.3);
                }
            }
        }

        return a;
    }

    private static double At(float[,,] x, int i, int r, int c) =>
        r < 0 || r >= x.GetLength(1) || c < 0 || c >= x.GetLength(2) ? 0 : x[i, r, c];

    private static float[] Flatten(float[,,] a)
    {
        var flat = new float[a.Length];
        int n = 0;
        foreach (float v in a)
        {
            flat[n++] = v;
        }

        return flat;
    }
}
