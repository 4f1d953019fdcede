using MobileOne.Compression;

namespace MobileOne.Tests.Compression;

/// <summary>The L + S decomposition of one matrix, checked against products recomputed here in double.</summary>
public class LowRankSparseCompressionTests
{
    [Fact]
    public void Full_rank_without_a_sparse_part_reconstructs_the_matrix()
    {
        const int rows = 12, columns = 20;
        var w = Reference.RandomArray(new Random(1), rows * columns);
        var result = LowRankSparse.Decompose(w, rows, columns, rank: 12, sparseEntries: 0);

        var l = Product(result);
        Assert.True(Reference.MaxAbsDiff(w, l) < 1e-5, $"U V differs from W by {Reference.MaxAbsDiff(w, l):e3}");
        Assert.Single(result.Errors);
        Assert.True(result.RelativeError < 1e-12);
        Assert.Empty(result.SparseIndices);
    }

    [Fact]
    public void The_energy_rule_takes_the_fewest_singular_values_holding_the_fraction()
    {
        // diag(3, 2, 1, 0.5, 0.1) in a 5 x 6 matrix: sigma^2 = 9, 4, 1, 0.25, 0.01 of 14.26 in all, so two values hold
        // 13 / 14.26 = 91.2% and three hold 98.2%.
        var w = new float[5 * 6];
        float[] diagonal = [3f, 2f, 1f, 0.5f, 0.1f];
        for (int i = 0; i < diagonal.Length; i++)
        {
            w[(i * 6) + i] = diagonal[i];
        }

        var sigma = LowRankSparse.SingularValues(w, 5, 6);
        Assert.Equal([3, 2, 1, 0.5, 0.1], sigma.Select(s => Math.Round(s, 6)));
        Assert.Equal(1, LowRankSparse.RankForEnergy(sigma, 0.6));
        Assert.Equal(2, LowRankSparse.RankForEnergy(sigma, 0.9));
        Assert.Equal(3, LowRankSparse.RankForEnergy(sigma, 0.95));
        Assert.Equal(5, LowRankSparse.RankForEnergy(sigma, 1.0));
        Assert.Equal(3, LowRankSparse.RankForRatio(10, 20, 0.25));
        Assert.Equal(1, LowRankSparse.RankForRatio(10, 20, 0.01));
    }

    [Fact]
    public void The_error_of_L_plus_S_never_increases_and_falls_over_the_alternations()
    {
        // A rank-2 matrix plus 12 large spikes and a little noise: the structure GoDec separates.
        const int rows = 16, columns = 24, spikes = 12;
        var rng = new Random(7);
        var a = Reference.RandomArray(rng, rows * 2);
        var b = Reference.RandomArray(rng, 2 * columns);
        var w = new float[rows * columns];
        for (int i = 0; i < rows; i++)
        {
            for (int j = 0; j < columns; j++)
            {
                w[(i * columns) + j] = (a[i * 2] * b[j]) + (a[(i * 2) + 1] * b[columns + j]) + (float)(0.01 * ((rng.NextDouble() * 2) - 1));
            }
        }

        foreach (int k in Enumerable.Range(0, spikes))
        {
            w[rng.Next(w.Length)] += (k % 2 == 0 ? 1 : -1) * 5f;
        }

        var result = LowRankSparse.Decompose(w, rows, columns, rank: 2, sparseEntries: spikes, new LowRankSparseOptions { MaxIterations = 20, Tolerance = 0 });

        Assert.True(result.Errors.Count > 1);
        for (int i = 1; i < result.Errors.Count; i++)
        {
            Assert.True(result.Errors[i] <= result.Errors[i - 1] + 1e-12, $"error rose at alternation {i}: {result.Errors[i - 1]} -> {result.Errors[i]}");
        }

        Assert.True(result.Errors[^1] < result.Errors[0] - 1e-3, $"{result.Errors[0]} -> {result.Errors[^1]}");

        // The reported error is the real one: recomputed here from the factors and the sparse entries.
        var residual = Residual(w, result);
        double norm = Math.Sqrt(w.Sum(v => (double)v * v));
        Assert.Equal(result.RelativeError, Math.Sqrt(residual.Sum(v => v * v)) / norm, 5);
    }

    [Fact]
    public void The_sparse_part_is_exactly_the_largest_entries_of_W_minus_L()
    {
        const int rows = 10, columns = 18;
        var w = Reference.RandomArray(new Random(3), rows * columns);
        int count = (int)Math.Round(0.1 * rows * columns);
        var result = LowRankSparse.Decompose(w, rows, columns, rank: 3, sparseEntries: count);

        Assert.Equal(count, result.SparseIndices.Length);
        Assert.True(result.SparseIndices.SequenceEqual(result.SparseIndices.Order().Distinct()), "indices ascending and distinct");
        var l = Product(result);
        var chosen = result.SparseIndices.ToHashSet();
        double smallestChosen = double.MaxValue;
        for (int e = 0; e < result.SparseIndices.Length; e++)
        {
            int index = result.SparseIndices[e];
            double gap = w[index] - l[index];
            Assert.True(Math.Abs(result.SparseValues[e] - gap) < 1e-5, $"S[{index}] = {result.SparseValues[e]}, W - L = {gap}");
            smallestChosen = Math.Min(smallestChosen, Math.Abs(gap));
        }

        for (int index = 0; index < w.Length; index++)
        {
            if (!chosen.Contains(index))
            {
                Assert.True(Math.Abs(w[index] - l[index]) <= smallestChosen + 1e-5, $"entry {index} left out is larger than a chosen one");
            }
        }
    }

    /// <summary>U V in double from the stored float factors.</summary>
    internal static double[] Product(LowRankSparseResult r)
    {
        var l = new double[r.Rows * r.Columns];
        for (int i = 0; i < r.Rows; i++)
        {
            for (int j = 0; j < r.Columns; j++)
            {
                double sum = 0;
                for (int k = 0; k < r.Rank; k++)
                {
                    sum += (double)r.Left[(i * r.Rank) + k] * r.Right[(k * r.Columns) + j];
                }

                l[(i * r.Columns) + j] = sum;
            }
        }

        return l;
    }

    private static double[] Residual(float[] w, LowRankSparseResult r)
    {
        var l = Product(r);
        var residual = w.Select((v, i) => v - l[i]).ToArray();
        for (int e = 0; e < r.SparseIndices.Length; e++)
        {
            residual[r.SparseIndices[e]] -= r.SparseValues[e];
        }

        return residual;
    }
}
