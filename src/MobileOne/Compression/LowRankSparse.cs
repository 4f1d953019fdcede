using MathNet.Numerics.LinearAlgebra;
using MobileOne.Analysis;

namespace MobileOne.Compression;

/// <summary>
/// W ≈ L + S for one matrix: L = U V of rank r (U [rows, r], V [r, columns]) and S sparse with a fixed number of
/// entries, by GoDec-style alternation (Zhou and Tao, ICML 2011; the decomposition Yu et al., CVPR 2017, apply to
/// network layers): starting from S = 0, L is the best rank-r approximation of W - S (truncated SVD, Eckart-Young),
/// then S keeps the largest-magnitude entries of W - L (the best S of that cardinality for that L). Each half-step
/// minimizes ||W - L - S||_F over one part with the other fixed, so the error never increases.
/// </summary>
/// <remarks>
/// Stopping rule: after at most <see cref="LowRankSparseOptions.MaxIterations"/> alternations, or earlier when an
/// alternation lowers the relative error ||W - L - S||_F / ||W||_F by less than
/// <see cref="LowRankSparseOptions.Tolerance"/> (absolute). Without a sparse part one SVD is the exact optimum, so
/// there is one step. Everything is computed in double; the factors are rounded to float32 once at the end.
/// </remarks>
public static class LowRankSparse
{
    /// <summary>Decomposes the row-major [rows, columns] matrix <paramref name="matrix"/> with rank <paramref name="rank"/> and <paramref name="sparseEntries"/> sparse entries.</summary>
    public static LowRankSparseResult Decompose(ReadOnlySpan<float> matrix, int rows, int columns, int rank, int sparseEntries, LowRankSparseOptions? options = null)
    {
        options ??= new LowRankSparseOptions();
        if (rows <= 0 || columns <= 0 || matrix.Length != (long)rows * columns)
        {
            throw new ArgumentException($"A {rows} x {columns} matrix needs {(long)rows * columns} values; got {matrix.Length}.", nameof(matrix));
        }

        int fullRank = Math.Min(rows, columns);
        if (rank < 1 || rank > fullRank)
        {
            throw new ArgumentOutOfRangeException(nameof(rank), rank, $"The rank of the low-rank part of a {rows} x {columns} matrix is 1 to {fullRank}.");
        }

        if (sparseEntries < 0 || sparseEntries > matrix.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(sparseEntries), sparseEntries, $"A {rows} x {columns} matrix has {matrix.Length} entries.");
        }

        var w = Matrix<double>.Build.Dense(rows, columns);
        double norm2 = 0;
        for (int i = 0; i < rows; i++)
        {
            for (int j = 0; j < columns; j++)
            {
                double v = matrix[(i * columns) + j];
                w[i, j] = v;
                norm2 += v * v;
            }
        }

        double norm = Math.Sqrt(norm2);
        var sparse = Matrix<double>.Build.Dense(rows, columns);
        var low = Matrix<double>.Build.Dense(rows, columns);
        Matrix<double> u = Matrix<double>.Build.Dense(rows, 0), vt = Matrix<double>.Build.Dense(0, columns);
        double[] sigma = [];
        int[] chosen = [];
        var errors = new List<double>();
        int iterations = sparseEntries == 0 ? 1 : Math.Max(1, options.MaxIterations);
        for (int it = 0; it < iterations; it++)
        {
            // L: the best rank-r approximation of W - S.
            var svd = (w - sparse).Svd(computeVectors: true);
            sigma = svd.S.ToArray();
            u = svd.U.SubMatrix(0, rows, 0, rank);
            vt = svd.VT.SubMatrix(0, rank, 0, columns);
            low = u * Matrix<double>.Build.DiagonalOfDiagonalArray(sigma[..rank]) * vt;

            // S: the largest |W - L| entries, exactly (the residual there becomes zero).
            var residual = w - low;
            chosen = LargestEntries(residual, sparseEntries);
            sparse.Clear();
            foreach (int index in chosen)
            {
                sparse[index / columns, index % columns] = residual[index / columns, index % columns];
            }

            double error = norm == 0 ? 0 : (residual - sparse).FrobeniusNorm() / norm;
            errors.Add(error);
            if (it > 0 && errors[^2] - error < options.Tolerance)
            {
                break;
            }
        }

        // Balanced factors: U sqrt(sigma) and sqrt(sigma) V, so neither factor carries the whole scale.
        var left = new float[(long)rows * rank];
        var right = new float[(long)rank * columns];
        for (int k = 0; k < rank; k++)
        {
            double scale = Math.Sqrt(sigma[k]);
            for (int i = 0; i < rows; i++)
            {
                left[(i * rank) + k] = (float)(u[i, k] * scale);
            }

            for (int j = 0; j < columns; j++)
            {
                right[(k * columns) + j] = (float)(vt[k, j] * scale);
            }
        }

        Array.Sort(chosen);
        var values = chosen.Select(index => (float)sparse[index / columns, index % columns]).ToArray();
        return new LowRankSparseResult(rows, columns, rank, left, right, chosen, values, errors, sigma, norm);
    }

    /// <summary>The rank for <paramref name="energy"/>: the fewest singular values whose squares hold that fraction of sum sigma^2 (<see cref="OperatorSpectrum.EffectiveRank"/>).</summary>
    public static int RankForEnergy(IReadOnlyList<double> singularValues, double energy) => OperatorSpectrum.EffectiveRank(singularValues, energy);

    /// <summary>The rank for a fraction <paramref name="ratio"/> of the full rank min(rows, columns): rounded, at least 1.</summary>
    public static int RankForRatio(int rows, int columns, double ratio)
    {
        if (!(ratio > 0 && ratio <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(ratio), ratio, "The rank ratio is a fraction in (0, 1].");
        }

        return Math.Clamp((int)Math.Round(ratio * Math.Min(rows, columns), MidpointRounding.AwayFromZero), 1, Math.Min(rows, columns));
    }

    /// <summary>The singular values of the row-major [rows, columns] matrix, largest first.</summary>
    public static double[] SingularValues(ReadOnlySpan<float> matrix, int rows, int columns)
    {
        var w = Matrix<double>.Build.Dense(rows, columns);
        for (int i = 0; i < rows; i++)
        {
            for (int j = 0; j < columns; j++)
            {
                w[i, j] = matrix[(i * columns) + j];
            }
        }

        var values = w.Svd(computeVectors: false).S.ToArray();
        Array.Sort(values, (a, b) => b.CompareTo(a));
        return values;
    }

    /// <summary>Row-major indices of the <paramref name="count"/> largest-magnitude entries; ties go to the lower index, so the choice is deterministic.</summary>
    private static int[] LargestEntries(Matrix<double> m, int count)
    {
        if (count == 0)
        {
            return [];
        }

        int columns = m.ColumnCount;
        var order = Enumerable.Range(0, m.RowCount * columns).ToArray();
        var magnitude = order.Select(i => Math.Abs(m[i / columns, i % columns])).ToArray();
        Array.Sort(order, (a, b) => magnitude[b] != magnitude[a] ? magnitude[b].CompareTo(magnitude[a]) : a.CompareTo(b));
        return order[..count];
    }
}

/// <summary>How <see cref="LowRankSparse.Decompose"/> alternates.</summary>
public sealed record LowRankSparseOptions
{
    /// <summary>At most this many alternations (L then S) when there is a sparse part.</summary>
    public int MaxIterations { get; init; } = 10;

    /// <summary>Stop once an alternation lowers the relative error by less than this.</summary>
    public double Tolerance { get; init; } = 1e-4;
}

/// <summary>
/// W ≈ U V + S: <see cref="Left"/> U [rows, rank] and <see cref="Right"/> V [rank, columns] row-major, and the sparse
/// part as row-major indices (ascending) and values.
/// </summary>
/// <param name="Rows">Rows of W (output channels of a convolution).</param>
/// <param name="Columns">Columns of W (input channels / groups x kernel height x kernel width).</param>
/// <param name="Rank">r.</param>
/// <param name="Left">U [rows, r], row-major: U sqrt(sigma).</param>
/// <param name="Right">V [r, columns], row-major: sqrt(sigma) V^T.</param>
/// <param name="SparseIndices">Row-major indices of S's entries, ascending.</param>
/// <param name="SparseValues">S's values, in the order of <see cref="SparseIndices"/>.</param>
/// <param name="Errors">||W - L - S||_F / ||W||_F after each alternation (in double, before rounding the factors).</param>
/// <param name="SingularValues">The singular values of W - S at the last alternation, largest first.</param>
/// <param name="Norm">||W||_F.</param>
public sealed record LowRankSparseResult(
    int Rows, int Columns, int Rank, float[] Left, float[] Right, int[] SparseIndices, float[] SparseValues,
    IReadOnlyList<double> Errors, double[] SingularValues, double Norm)
{
    /// <summary>#W: the dense matrix's entries.</summary>
    public long Weights => (long)Rows * Columns;

    /// <summary>#L: the factors' entries, r (rows + columns).</summary>
    public long LowRankWeights => (long)Rank * (Rows + Columns);

    /// <summary>#S: the sparse part's stored values.</summary>
    public long SparseWeights => SparseValues.Length;

    /// <summary>The relative error of the final decomposition (before float32 rounding).</summary>
    public double RelativeError => Errors.Count == 0 ? 0 : Errors[^1];
}
