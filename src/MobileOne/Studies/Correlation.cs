namespace MobileOne.Studies;

/// <summary>
/// Correlation coefficients of paired samples, for the flops-latency study: Pearson's r measures how well a straight
/// line fits (latency proportional to MACs), Spearman's rho how well the order is kept (more MACs, slower) whatever
/// the curve's shape.
/// </summary>
public static class Correlation
{
    /// <summary>
    /// Pearson's product-moment correlation of <paramref name="x"/> and <paramref name="y"/>: their covariance over
    /// the product of their standard deviations. NaN when there are fewer than two pairs or either side is constant.
    /// </summary>
    /// <param name="x">The first sample.</param>
    /// <param name="y">The second sample, paired with <paramref name="x"/> by index.</param>
    public static double Pearson(IReadOnlyList<double> x, IReadOnlyList<double> y)
    {
        RequirePairs(x, y);
        int n = x.Count;
        if (n < 2)
        {
            return double.NaN;
        }

        double meanX = x.Average(), meanY = y.Average();
        double sxy = 0, sxx = 0, syy = 0;
        for (int i = 0; i < n; i++)
        {
            double dx = x[i] - meanX, dy = y[i] - meanY;
            sxy += dx * dy;
            sxx += dx * dx;
            syy += dy * dy;
        }

        // Clamped: rounding can push a perfect fit a few ulps past 1.
        return sxx > 0 && syy > 0 ? Math.Clamp(sxy / Math.Sqrt(sxx * syy), -1, 1) : double.NaN;
    }

    /// <summary>
    /// Spearman's rank correlation: Pearson's r of the ranks (<see cref="Ranks"/>), ties given their average rank, so
    /// that any strictly increasing relation gives 1. NaN when there are fewer than two pairs or either side is constant.
    /// </summary>
    /// <param name="x">The first sample.</param>
    /// <param name="y">The second sample, paired with <paramref name="x"/> by index.</param>
    public static double Spearman(IReadOnlyList<double> x, IReadOnlyList<double> y)
    {
        RequirePairs(x, y);
        return Pearson(Ranks(x), Ranks(y));
    }

    /// <summary>The 1-based rank of every value in <paramref name="values"/>, tied values sharing the mean of their ranks.</summary>
    /// <param name="values">The sample.</param>
    public static double[] Ranks(IReadOnlyList<double> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        int[] order = Enumerable.Range(0, values.Count).OrderBy(i => values[i]).ToArray();
        var ranks = new double[values.Count];
        for (int start = 0; start < order.Length;)
        {
            int end = start;
            while (end + 1 < order.Length && values[order[end + 1]] == values[order[start]])
            {
                end++;
            }

            double rank = (start + end) / 2.0 + 1;
            for (int k = start; k <= end; k++)
            {
                ranks[order[k]] = rank;
            }

            start = end + 1;
        }

        return ranks;
    }

    private static void RequirePairs(IReadOnlyList<double> x, IReadOnlyList<double> y)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(y);
        if (x.Count != y.Count)
        {
            throw new ArgumentException($"Correlation needs paired samples; got {x.Count} and {y.Count} values.", nameof(y));
        }

        if (x.Concat(y).Any(v => !double.IsFinite(v)))
        {
            throw new ArgumentException("Correlation needs finite values.", nameof(x));
        }
    }
}
