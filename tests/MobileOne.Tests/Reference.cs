namespace MobileOne.Tests;

/// <summary>Textbook implementations in double precision, written independently of the library's kernels.</summary>
internal static class Reference
{
    public static double[] Conv2d(float[] x, int n, int c, int h, int w, float[] weight, int o, int k, int stride, int pad, int groups, float[]? bias) =>
        Conv2d(x, n, c, h, w, Array.ConvertAll(weight, v => (double)v), o, k, stride, pad, groups, bias is null ? null : Array.ConvertAll(bias, v => (double)v));

    /// <summary>The same convolution with double weights (a weight that is itself a double-precision sum, e.g. L + S).</summary>
    public static double[] Conv2d(float[] x, int n, int c, int h, int w, double[] weight, int o, int k, int stride, int pad, int groups, double[]? bias)
    {
        int ho = ((h + (2 * pad) - k) / stride) + 1, wo = ((w + (2 * pad) - k) / stride) + 1;
        int cg = c / groups, og = o / groups;
        var y = new double[n * o * ho * wo];
        for (int b = 0; b < n; b++)
        {
            for (int oc = 0; oc < o; oc++)
            {
                int g = oc / og;
                for (int oy = 0; oy < ho; oy++)
                {
                    for (int ox = 0; ox < wo; ox++)
                    {
                        double s = bias?[oc] ?? 0;
                        for (int ic = 0; ic < cg; ic++)
                        {
                            for (int ky = 0; ky < k; ky++)
                            {
                                for (int kx = 0; kx < k; kx++)
                                {
                                    int iy = (oy * stride) - pad + ky, ix = (ox * stride) - pad + kx;
                                    if (iy < 0 || iy >= h || ix < 0 || ix >= w)
                                    {
                                        continue;
                                    }

                                    s += weight[(((oc * cg) + ic) * k + ky) * k + kx] * x[(((b * c) + (g * cg) + ic) * h + iy) * w + ix];
                                }
                            }
                        }

                        y[(((b * o) + oc) * ho + oy) * wo + ox] = s;
                    }
                }
            }
        }

        return y;
    }

    public static float[] RandomArray(Random rng, int length, double scale = 1.0)
    {
        var a = new float[length];
        for (int i = 0; i < length; i++)
        {
            a[i] = (float)((rng.NextDouble() * 2 - 1) * scale);
        }

        return a;
    }

    public static double MaxAbs(ReadOnlySpan<float> a)
    {
        double m = 0;
        foreach (float v in a)
        {
            m = Math.Max(m, Math.Abs(v));
        }

        return m;
    }

    public static double MaxAbsDiff(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        Assert.Equal(a.Length, b.Length);
        double m = 0;
        for (int i = 0; i < a.Length; i++)
        {
            m = Math.Max(m, Math.Abs((double)a[i] - b[i]));
        }

        return m;
    }

    public static double MaxAbsDiff(ReadOnlySpan<float> a, ReadOnlySpan<double> b)
    {
        Assert.Equal(a.Length, b.Length);
        double m = 0;
        for (int i = 0; i < a.Length; i++)
        {
            m = Math.Max(m, Math.Abs(a[i] - b[i]));
        }

        return m;
    }
}
