using MobileOne.Studies;

namespace MobileOne.Tests.Studies;

/// <summary>Pearson and Spearman against values worked out by hand.</summary>
public class CorrelationTests
{
    [Fact]
    public void A_monotone_curve_has_spearman_one_and_pearson_below_one()
    {
        // y = x^3 for x = 1..5: deviations of x are -2..2 (sum of squares 10), of y (mean 45) -44, -37, -18, 19, 80
        // (sum of squares 10390), cross sum 304, so r = 304 / sqrt(10 * 10390).
        double[] x = [1, 2, 3, 4, 5];
        double[] y = [1, 8, 27, 64, 125];
        Assert.Equal(304 / Math.Sqrt(10 * 10390.0), Correlation.Pearson(x, y), 12);
        Assert.Equal(0.9431175138, Correlation.Pearson(x, y), 9);
        Assert.Equal(1.0, Correlation.Spearman(x, y), 12);
    }

    [Fact]
    public void Small_cases_match_the_hand_values()
    {
        // x = 1, 2, 3 against y = 1, 3, 2: deviations (-1, 0, 1) and (-1, 1, 0), cross sum 1 over sqrt(2 * 2): 0.5,
        // and the values are their own ranks, so Spearman is the same.
        Assert.Equal(0.5, Correlation.Pearson([1, 2, 3], [1, 3, 2]), 12);
        Assert.Equal(0.5, Correlation.Spearman([1, 2, 3], [1, 3, 2]), 12);
        Assert.Equal(-1.0, Correlation.Pearson([1, 2, 3, 4], [10, 8, 6, 4]), 12);
        Assert.Equal(-1.0, Correlation.Spearman([1, 2, 3, 4], [100, 8, 6, -50]), 12);
    }

    [Fact]
    public void Ties_share_their_average_rank()
    {
        Assert.Equal([2, 3.5, 3.5, 1], Correlation.Ranks([10, 20, 20, 5]));

        // Ranks of x: 1, 2.5, 2.5, 4 (mean 2.5; deviations -1.5, 0, 0, 1.5); of y: 1..4 (deviations -1.5, -0.5, 0.5, 1.5):
        // cross sum 4.5 over sqrt(4.5 * 5).
        Assert.Equal(4.5 / Math.Sqrt(4.5 * 5), Correlation.Spearman([1, 2, 2, 3], [1, 2, 3, 4]), 12);
    }

    [Fact]
    public void Undefined_cases_are_nan_and_unpaired_samples_are_an_error()
    {
        Assert.True(double.IsNaN(Correlation.Pearson([1, 2, 3], [5, 5, 5])));
        Assert.True(double.IsNaN(Correlation.Spearman([1], [2])));
        Assert.Throws<ArgumentException>(() => Correlation.Pearson([1, 2], [1, 2, 3]));
        Assert.Throws<ArgumentException>(() => Correlation.Spearman([1, double.NaN], [1, 2]));
    }
}
