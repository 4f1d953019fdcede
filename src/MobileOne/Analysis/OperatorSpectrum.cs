using MathNet.Numerics.LinearAlgebra;

namespace MobileOne.Analysis;

/// <summary>
/// Singular-value figures of a convolution matrix: the spectral norm by power iteration on K^T K (matrix-free,
/// any size), all singular values from a dense SVD where the matrix is small enough, and the effective rank at an
/// energy (the fewest singular values whose squares hold that fraction of the squared Frobenius norm).
/// </summary>
public static class OperatorSpectrum
{
    /// <summary>
    /// The largest singular value of K: power iteration on K^T K from a fixed pseudo-random start, stopped when
    /// the estimate changes by less than <paramref name="tolerance"/> (relative) or after
    /// <paramref name="maxIterations"/>. A lower bound that converges from below; exact for a zero matrix (0).
    /// </summary>
    public static double SpectralNorm(ConvolutionMatrix k, int maxIterations = 200, double tolerance = 1e-10, int seed = 0)
    {
        ArgumentNullException.ThrowIfNull(k);
        var rng = new Random(seed);
        var x = new double[k.Columns];
        var y = new double[k.Rows];
        for (int i = 0; i < x.Length; i++)
        {
            x[i] = rng.NextDouble() - 0.5;
        }

        double estimate = 0;
        for (int it = 0; it < maxIterations; it++)
        {
            double norm = Norm(x);
            if (norm == 0)
            {
                return 0;
            }

            Scale(x, 1 / norm);
            k.Multiply(x, y);
            double next = Norm(y);
            k.MultiplyTransposed(y, x);
            if (Math.Abs(next - estimate) <= tolerance * next)
            {
                return next;
            }

            estimate = next;
        }

        return estimate;
    }

    /// <summary>All singular values of K in descending order, or null when K has more than <paramref name="maxEntries"/> entries.</summary>
    public static double[]? SingularValues(ConvolutionMatrix k, long maxEntries = 1L << 22)
    {
        ArgumentNullException.ThrowIfNull(k);
        if (k.Rows * k.Columns > maxEntries)
        {
            return null;
        }

        var matrix = Matrix<double>.Build.DenseOfArray(k.ToDense(maxEntries));
        var values = matrix.Svd(computeVectors: false).S.ToArray();
        Array.Sort(values, (a, b) => b.CompareTo(a));
        return values;
    }

    /// <summary>
    /// The smallest r whose r largest singular values hold at least <paramref name="energy"/> of sum sigma^2
    /// (0 for a zero matrix). <paramref name="singularValues"/> must be in descending order.
    /// </summary>
    public static int EffectiveRank(IReadOnlyList<double> singularValues, double energy)
    {
        ArgumentNullException.ThrowIfNull(singularValues);
        if (energy is <= 0 or > 1)
        {
            throw new ArgumentOutOfRangeException(nameof(energy), energy, "The energy is a fraction in (0, 1].");
        }

        double total = 0;
        foreach (double s in singularValues)
        {
            total += s * s;
        }

        if (total == 0)
        {
            return 0;
        }

        double kept = 0;
        for (int r = 0; r < singularValues.Count; r++)
        {
            kept += singularValues[r] * singularValues[r];

            // A relative slack of one part in 10^12 so that 100% energy is reached despite rounding in the sums.
            if (kept >= (energy * total) - (1e-12 * total))
            {
                return r + 1;
            }
        }

        return singularValues.Count;
    }

    private static double Norm(ReadOnlySpan<double> v)
    {
        double s = 0;
        foreach (double x in v)
        {
            s += x * x;
        }

        return Math.Sqrt(s);
    }

    private static void Scale(Span<double> v, double factor)
    {
        for (int i = 0; i < v.Length; i++)
        {
            v[i] *= factor;
        }
    }
}
