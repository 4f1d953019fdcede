using System.Buffers;
using System.Numerics;
using System.Runtime.InteropServices;

namespace MobileOne.Analysis;

/// <summary>
/// How far a convolution is from orthogonal, as "Orthogonal Convolutional Neural Networks" (Wang et al., CVPR 2020)
/// measures it: the rows of the convolution matrix are orthonormal (K K^T = I) exactly when the kernel convolved
/// with itself, Conv(K, K) with stride S and padding P = floor((k - 1) / S) * S, is the identity tensor I_r0 (1 at
/// the centre for o = o', 0 elsewhere). <see cref="Penalty"/> is OCNN's regularizer ||Conv(K, K) - I_r0||_F^2 with its
/// gradient; <see cref="Deviation"/> (what `analyze` reports) is its square root. Computed on the kernel alone, so it
/// does not depend on the input size. With groups, only kernels of the same group meet (other pairs read disjoint
/// input channels and are orthogonal by construction): the value is the sum over groups of each group's
/// [outChannels / groups, inChannels / groups, kH, kW] kernel's own value, and a depthwise kernel is compared with a
/// delta (its 3x3 filter's autocorrelation against 1 at the centre).
/// </summary>
public static class KernelOrthogonality
{
    /// <summary>||Conv(K, K) - I_r0||_F, the square root of <see cref="Penalty"/>.</summary>
    /// <param name="weight">OIHW: [outChannels, inChannels / groups, kernelH, kernelW].</param>
    /// <param name="outChannels">Output channels (O).</param>
    /// <param name="inChannelsPerGroup">Input channels each kernel reads (I / groups).</param>
    /// <param name="kernelH">Kernel height.</param>
    /// <param name="kernelW">Kernel width.</param>
    /// <param name="strideH">Vertical stride.</param>
    /// <param name="strideW">Horizontal stride.</param>
    /// <param name="groups">Convolution groups.</param>
    public static double Deviation(ReadOnlySpan<double> weight, int outChannels, int inChannelsPerGroup, int kernelH, int kernelW, int strideH, int strideW, int groups) =>
        Math.Sqrt(Penalty(weight, outChannels, inChannelsPerGroup, kernelH, kernelW, strideH, strideW, groups, default));

    /// <summary>
    /// OCNN's convolutional orthogonality loss ||Conv(K, K) - I_r0||_F^2, and, when <paramref name="gradient"/> is not
    /// empty, its gradient with respect to K written there (same layout as <paramref name="weight"/>). With
    /// M_ab(d) = sum_{c,p} K[a,c,p+d] K[b,c,p] over the shifts d of the self-convolution and R = M - I_r0, the loss is
    /// sum R^2 and dL/dK[a,c,q] = 2 sum_{b,d} R_ab(d) K[b,c,q-d] + 2 sum_{b,d} R_ba(d) K[b,c,q+d]; since the shift set
    /// and I_r0 are symmetric (R_ba(d) = R_ab(-d)) both sums are equal, so the gradient is 4 sum_{b,d} R_ab(d) K[b,c,q-d].
    /// Kernels no larger than the stride have one shift (P = 0): then M = K K^T is a Gram matrix, and with more rows
    /// m than row length n it is cheaper as ||K^T K - I_n||^2 + (m - n) with gradient 4 K (K^T K - I_n).
    /// </summary>
    /// <param name="weight">OIHW: [outChannels, inChannels / groups, kernelH, kernelW].</param>
    /// <param name="outChannels">Output channels (O).</param>
    /// <param name="inChannelsPerGroup">Input channels each kernel reads (I / groups).</param>
    /// <param name="kernelH">Kernel height.</param>
    /// <param name="kernelW">Kernel width.</param>
    /// <param name="strideH">Vertical stride.</param>
    /// <param name="strideW">Horizontal stride.</param>
    /// <param name="groups">Convolution groups.</param>
    /// <param name="gradient">Receives dLoss/dK (same layout as <paramref name="weight"/>), or empty for the value alone.</param>
    public static double Penalty(ReadOnlySpan<double> weight, int outChannels, int inChannelsPerGroup, int kernelH, int kernelW, int strideH, int strideW, int groups, Span<double> gradient)
    {
        if (outChannels <= 0 || inChannelsPerGroup <= 0 || kernelH <= 0 || kernelW <= 0 || strideH <= 0 || strideW <= 0 || groups <= 0 || outChannels % groups != 0)
        {
            throw new ArgumentException($"Not a valid kernel: {outChannels} outputs in {groups} groups, {inChannelsPerGroup} inputs per group, {kernelH}x{kernelW}, stride {strideH}x{strideW}.");
        }

        if (weight.Length != (long)outChannels * inChannelsPerGroup * kernelH * kernelW)
        {
            throw new ArgumentException($"A [{outChannels}, {inChannelsPerGroup}, {kernelH}, {kernelW}] kernel has {(long)outChannels * inChannelsPerGroup * kernelH * kernelW} weights, not {weight.Length}.", nameof(weight));
        }

        if (!gradient.IsEmpty && gradient.Length != weight.Length)
        {
            throw new ArgumentException($"The gradient has {gradient.Length} elements; the kernel has {weight.Length}.", nameof(gradient));
        }

        gradient.Clear();
        int padH = (kernelH - 1) / strideH * strideH, padW = (kernelW - 1) / strideW * strideW;
        int perGroup = outChannels / groups;
        int kernelSize = inChannelsPerGroup * kernelH * kernelW;
        double total = 0;
        for (int g = 0; g < groups; g++)
        {
            var k = weight.Slice(g * perGroup * kernelSize, perGroup * kernelSize);
            var dk = gradient.IsEmpty ? default : gradient.Slice(g * perGroup * kernelSize, perGroup * kernelSize);
            total += padH == 0 && padW == 0
                ? (perGroup <= kernelSize ? GramRows(k, perGroup, kernelSize, dk) : GramColumns(k, perGroup, kernelSize, dk))
                : Shifted(k, perGroup, inChannelsPerGroup, kernelH, kernelW, strideH, strideW, padH, padW, dk);
        }

        return total;
    }

    /// <summary>One group, every shift of the self-convolution: the definition, for kernels larger than the stride.</summary>
    private static double Shifted(ReadOnlySpan<double> weight, int rows, int inChannels, int kernelH, int kernelW, int strideH, int strideW, int padH, int padW, Span<double> gradient)
    {
        int shiftsH = (2 * padH / strideH) + 1, shiftsW = (2 * padW / strideW) + 1;
        int centreH = padH / strideH, centreW = padW / strideW;
        int kernelSize = inChannels * kernelH * kernelW;
        bool withGradient = !gradient.IsEmpty;
        double squared = 0;
        for (int a = 0; a < rows; a++)
        {
            for (int b = 0; b < rows; b++)
            {
                for (int u = 0; u < shiftsH; u++)
                {
                    for (int v = 0; v < shiftsW; v++)
                    {
                        // Kernel a moved by (u * S - P, v * S - P) against kernel b.
                        int dy = (u * strideH) - padH, dx = (v * strideW) - padW;
                        int i0 = Math.Max(0, -dy), i1 = Math.Min(kernelH, kernelH - dy);
                        int j0 = Math.Max(0, -dx), j1 = Math.Min(kernelW, kernelW - dx);
                        double sum = 0;
                        for (int c = 0; c < inChannels; c++)
                        {
                            for (int i = i0; i < i1; i++)
                            {
                                for (int j = j0; j < j1; j++)
                                {
                                    sum += weight[(a * kernelSize) + (((c * kernelH) + i + dy) * kernelW) + j + dx]
                                        * weight[(b * kernelSize) + (((c * kernelH) + i) * kernelW) + j];
                                }
                            }
                        }

                        double r = sum - (a == b && u == centreH && v == centreW ? 1 : 0);
                        squared += r * r;
                        if (!withGradient || r == 0)
                        {
                            continue;
                        }

                        // d(r^2) = 2 r dM_ab(d): each factor of each product gets 2 r times the other (the two halves of
                        // the 4 R K above, accumulated separately so a == b needs no special case).
                        for (int c = 0; c < inChannels; c++)
                        {
                            for (int i = i0; i < i1; i++)
                            {
                                for (int j = j0; j < j1; j++)
                                {
                                    int ia = (a * kernelSize) + (((c * kernelH) + i + dy) * kernelW) + j + dx;
                                    int ib = (b * kernelSize) + (((c * kernelH) + i) * kernelW) + j;
                                    gradient[ia] += 2 * r * weight[ib];
                                    gradient[ib] += 2 * r * weight[ia];
                                }
                            }
                        }
                    }
                }
            }
        }

        return squared;
    }

    /// <summary>One shift, rows m &lt;= n: G = K K^T (m x m), loss ||G - I_m||^2, gradient 4 (G - I_m) K.</summary>
    private static double GramRows(ReadOnlySpan<double> k, int m, int n, Span<double> gradient)
    {
        double[] rented = ArrayPool<double>.Shared.Rent(m * m);
        var r = rented.AsSpan(0, m * m);
        double squared = 0;
        for (int a = 0; a < m; a++)
        {
            var ka = k.Slice(a * n, n);
            for (int b = a; b < m; b++)
            {
                double v = Dot(ka, k.Slice(b * n, n)) - (a == b ? 1 : 0);
                r[(a * m) + b] = v;
                r[(b * m) + a] = v;
                squared += a == b ? v * v : 2 * v * v;
            }
        }

        if (!gradient.IsEmpty)
        {
            for (int a = 0; a < m; a++)
            {
                var ga = gradient.Slice(a * n, n);
                for (int b = 0; b < m; b++)
                {
                    Axpy(4 * r[(a * m) + b], k.Slice(b * n, n), ga);
                }
            }
        }

        ArrayPool<double>.Shared.Return(rented);
        return squared;
    }

    /// <summary>One shift, rows m &gt; n: H = K^T K (n x n), loss ||H - I_n||^2 + (m - n), gradient 4 K (H - I_n).</summary>
    private static double GramColumns(ReadOnlySpan<double> k, int m, int n, Span<double> gradient)
    {
        double[] rented = ArrayPool<double>.Shared.Rent(n * n);
        var h = rented.AsSpan(0, n * n);
        h.Clear();
        for (int a = 0; a < m; a++)
        {
            var ka = k.Slice(a * n, n);
            for (int p = 0; p < n; p++)
            {
                // H is symmetric: accumulate the upper triangle, mirror it below.
                Axpy(ka[p], ka[p..], h.Slice((p * n) + p, n - p));
            }
        }

        for (int p = 0; p < n; p++)
        {
            for (int q = p + 1; q < n; q++)
            {
                h[(q * n) + p] = h[(p * n) + q];
            }
        }

        double squared = m - n;
        for (int p = 0; p < n; p++)
        {
            h[(p * n) + p] -= 1;
        }

        foreach (double v in h)
        {
            squared += v * v;
        }

        if (!gradient.IsEmpty)
        {
            for (int a = 0; a < m; a++)
            {
                var ka = k.Slice(a * n, n);
                var ga = gradient.Slice(a * n, n);
                for (int p = 0; p < n; p++)
                {
                    Axpy(4 * ka[p], h.Slice(p * n, n), ga);
                }
            }
        }

        ArrayPool<double>.Shared.Return(rented);
        return squared;
    }

    private static double Dot(ReadOnlySpan<double> a, ReadOnlySpan<double> b)
    {
        var va = MemoryMarshal.Cast<double, Vector<double>>(a);
        var vb = MemoryMarshal.Cast<double, Vector<double>>(b);
        Vector<double> s0 = Vector<double>.Zero, s1 = Vector<double>.Zero, s2 = Vector<double>.Zero, s3 = Vector<double>.Zero;
        int i = 0;
        for (; i + 3 < va.Length; i += 4)
        {
            s0 = Vector.FusedMultiplyAdd(va[i], vb[i], s0);
            s1 = Vector.FusedMultiplyAdd(va[i + 1], vb[i + 1], s1);
            s2 = Vector.FusedMultiplyAdd(va[i + 2], vb[i + 2], s2);
            s3 = Vector.FusedMultiplyAdd(va[i + 3], vb[i + 3], s3);
        }

        for (; i < va.Length; i++)
        {
            s0 = Vector.FusedMultiplyAdd(va[i], vb[i], s0);
        }

        double sum = Vector.Sum((s0 + s1) + (s2 + s3));
        for (int j = va.Length * Vector<double>.Count; j < a.Length; j++)
        {
            sum += a[j] * b[j];
        }

        return sum;
    }

    /// <summary>y += alpha x.</summary>
    private static void Axpy(double alpha, ReadOnlySpan<double> x, Span<double> y)
    {
        if (alpha == 0)
        {
            return;
        }

        var vx = MemoryMarshal.Cast<double, Vector<double>>(x);
        var vy = MemoryMarshal.Cast<double, Vector<double>>(y);
        var va = new Vector<double>(alpha);
        for (int i = 0; i < vx.Length; i++)
        {
            vy[i] = Vector.FusedMultiplyAdd(va, vx[i], vy[i]);
        }

        for (int j = vx.Length * Vector<double>.Count; j < x.Length; j++)
        {
            y[j] += alpha * x[j];
        }
    }
}
