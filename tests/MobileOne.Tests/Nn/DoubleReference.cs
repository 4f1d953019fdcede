using MobileOne.Models;
using MobileOne.Nn;
using MobileOne.Tensors;

namespace MobileOne.Tests.Nn;

/// <summary>
/// Textbook forward passes of the training graph in double precision, written from the definitions and independent of
/// the library's kernels. Finite differences of these functions are the reference for every backward pass.
/// Activations are NCHW double arrays; parameters come from a module's state by name.
/// </summary>
internal static class DoubleReference
{
    public const double Eps = 1e-5;

    public static double[] ToDouble(float[] values) => values.Select(v => (double)v).ToArray();

    public static Dictionary<string, double[]> Parameters(Module module) =>
        module.State().ToDictionary(e => e.Name, e => ToDouble(e.Value.Data));

    public static double[] Conv(double[] x, int n, int c, int h, int w, double[] weight, int o, int k, int stride, int pad, int groups, double[]? bias, out int ho, out int wo)
    {
        int oh = ((h + (2 * pad) - k) / stride) + 1, ow = ((w + (2 * pad) - k) / stride) + 1;
        ho = oh;
        wo = ow;
        int cg = c / groups, og = o / groups;
        var y = new double[n * o * oh * ow];
        for (int b = 0; b < n; b++)
        {
            for (int oc = 0; oc < o; oc++)
            {
                int g = oc / og;
                for (int oy = 0; oy < oh; oy++)
                {
                    for (int ox = 0; ox < ow; ox++)
                    {
                        double s = bias?[oc] ?? 0;
                        for (int ic = 0; ic < cg; ic++)
                        {
                            for (int ky = 0; ky < k; ky++)
                            {
                                for (int kx = 0; kx < k; kx++)
                                {
                                    int iy = (oy * stride) - pad + ky, ix = (ox * stride) - pad + kx;
                                    if (iy >= 0 && iy < h && ix >= 0 && ix < w)
                                    {
                                        s += weight[((((oc * cg) + ic) * k) + ky) * k + kx] * x[((((b * c) + (g * cg) + ic) * h) + iy) * w + ix];
                                    }
                                }
                            }
                        }

                        y[((((b * o) + oc) * oh) + oy) * ow + ox] = s;
                    }
                }
            }
        }

        return y;
    }

    /// <summary>BatchNorm with batch statistics (biased variance) when <paramref name="training"/>, else running statistics.</summary>
    public static double[] BatchNorm(double[] x, int n, int c, int plane, double[] gamma, double[] beta, double[] runningMean, double[] runningVar, bool training)
    {
        var y = new double[x.Length];
        for (int ch = 0; ch < c; ch++)
        {
            double mean = runningMean[ch], variance = runningVar[ch];
            if (training)
            {
                double s = 0;
                for (int b = 0; b < n; b++)
                {
                    for (int p = 0; p < plane; p++)
                    {
                        s += x[(((b * c) + ch) * plane) + p];
                    }
                }

                mean = s / (n * plane);
                double v = 0;
                for (int b = 0; b < n; b++)
                {
                    for (int p = 0; p < plane; p++)
                    {
                        double d = x[(((b * c) + ch) * plane) + p] - mean;
                        v += d * d;
                    }
                }

                variance = v / (n * plane);
            }

            double inv = 1 / Math.Sqrt(variance + Eps);
            for (int b = 0; b < n; b++)
            {
                for (int p = 0; p < plane; p++)
                {
                    int i = (((b * c) + ch) * plane) + p;
                    y[i] = ((x[i] - mean) * inv * gamma[ch]) + beta[ch];
                }
            }
        }

        return y;
    }

    public static double[] BatchNorm(double[] x, int n, int c, int plane, Dictionary<string, double[]> p, string prefix, bool training) =>
        BatchNorm(x, n, c, plane, p[prefix + "weight"], p[prefix + "bias"], p[prefix + "running_mean"], p[prefix + "running_var"], training);

    public static double[] Relu(double[] x) => x.Select(v => Math.Max(v, 0)).ToArray();

    public static double[] GlobalAverage(double[] x, int n, int c, int plane)
    {
        var y = new double[n * c];
        for (int i = 0; i < n * c; i++)
        {
            double s = 0;
            for (int p = 0; p < plane; p++)
            {
                s += x[(i * plane) + p];
            }

            y[i] = s / plane;
        }

        return y;
    }

    /// <summary>y[n, o] = b[o] + sum_i x[n, i] W[o, i].</summary>
    public static double[] Linear(double[] x, int n, int inFeatures, double[] weight, double[] bias, int outFeatures)
    {
        var y = new double[n * outFeatures];
        for (int b = 0; b < n; b++)
        {
            for (int o = 0; o < outFeatures; o++)
            {
                double s = bias[o];
                for (int i = 0; i < inFeatures; i++)
                {
                    s += x[(b * inFeatures) + i] * weight[(o * inFeatures) + i];
                }

                y[(b * outFeatures) + o] = s;
            }
        }

        return y;
    }

    public static double[] SqueezeExcite(double[] x, int n, int c, int plane, Dictionary<string, double[]> p, string prefix)
    {
        int r = p[prefix + "fc1.bias"].Length;
        var pooled = GlobalAverage(x, n, c, plane);
        var hidden = Relu(Linear(pooled, n, c, p[prefix + "fc1.weight"], p[prefix + "fc1.bias"], r));
        var gate = Linear(hidden, n, r, p[prefix + "fc2.weight"], p[prefix + "fc2.bias"], c).Select(v => 1 / (1 + Math.Exp(-v))).ToArray();
        var y = new double[x.Length];
        for (int i = 0; i < n * c; i++)
        {
            for (int q = 0; q < plane; q++)
            {
                y[(i * plane) + q] = x[(i * plane) + q] * gate[i];
            }
        }

        return y;
    }

    /// <summary>PyTorch's cross entropy with label smoothing, mean over the batch.</summary>
    public static double CrossEntropy(double[] logits, int n, int classes, int[] labels, double smoothing)
    {
        double total = 0;
        for (int b = 0; b < n; b++)
        {
            var row = logits.AsSpan(b * classes, classes);
            double max = double.NegativeInfinity;
            foreach (double v in row)
            {
                max = Math.Max(max, v);
            }

            double sum = 0;
            foreach (double v in row)
            {
                sum += Math.Exp(v - max);
            }

            double lse = max + Math.Log(sum);
            double nll = lse - row[labels[b]];
            double smooth = 0;
            foreach (double v in row)
            {
                smooth += lse - v;
            }

            total += ((1 - smoothing) * nll) + (smoothing * smooth / classes);
        }

        return total / n;
    }

    /// <summary>A train-time MobileOne block: ReLU(SE(sum of conv+BN branches, 1x1 scale branch, BN skip)).</summary>
    public static double[] Block(double[] x, int n, int h, int w, BlockSpec spec, Dictionary<string, double[]> p, string prefix, bool training, out int ho, out int wo)
    {
        int cout = spec.OutChannels;
        double[]? sum = null;
        ho = wo = 0;
        for (int i = 0; i < spec.NumConvBranches; i++)
        {
            string b = $"{prefix}conv_kxk.{i}.";
            var z = Conv(x, n, spec.InChannels, h, w, p[b + "conv.weight"], cout, spec.KernelSize, spec.Stride, spec.Padding, spec.Groups, null, out ho, out wo);
            Add(ref sum, BatchNorm(z, n, cout, ho * wo, p, b + "bn.", training));
        }

        if (spec.HasScaleBranch)
        {
            string b = prefix + "conv_scale.";
            var z = Conv(x, n, spec.InChannels, h, w, p[b + "conv.weight"], cout, 1, spec.Stride, 0, spec.Groups, null, out _, out _);
            Add(ref sum, BatchNorm(z, n, cout, ho * wo, p, b + "bn.", training));
        }

        if (spec.HasIdentity)
        {
            Add(ref sum, BatchNorm(x, n, cout, ho * wo, p, prefix + "identity.", training));
        }

        if (spec.HasSqueezeExcite)
        {
            sum = SqueezeExcite(sum!, n, cout, ho * wo, p, prefix + "attn.");
        }

        return Relu(sum!);
    }

    /// <summary>Logits of a train-time network: stem, stages, global mean, linear head.</summary>
    public static double[] Network(double[] x, int n, int size, MobileOneNetwork network, Dictionary<string, double[]> p, bool training)
    {
        int h = size, w = size;
        foreach (var (prefix, block) in network.Blocks())
        {
            x = Block(x, n, h, w, block.Spec, p, prefix, training, out h, out w);
        }

        int c = network.Config.FeatureChannels;
        var pooled = GlobalAverage(x, n, c, h * w);
        return Linear(pooled, n, c, p["head.fc.weight"], p["head.fc.bias"], network.Config.NumClasses);
    }

    /// <summary>
    /// A zoo network's operations evaluated from their definitions (only the operation list is read from the network:
    /// its layer types, shapes and wiring), with the parameters of <paramref name="p"/>.
    /// </summary>
    public static double[] Zoo(double[] x, int n, int size, MobileOne.Models.Zoo.ZooNetwork network, Dictionary<string, double[]> p, bool training)
    {
        var values = new List<(double[] Data, int C, int H, int W)> { (x, network.InChans, size, size) };
        foreach (var op in network.Operations)
        {
            var a = values[op.Inputs[0]];
            values.Add(op switch
            {
                MobileOne.Models.Zoo.ConvOp conv => ConvValue(a, n, conv.Conv, p, conv.Name),
                MobileOne.Models.Zoo.BatchNormOp bn => (BatchNorm(a.Data, n, a.C, a.H * a.W, p, bn.Name + ".", training), a.C, a.H, a.W),
                MobileOne.Models.Zoo.ActivationOp act => (act.Kind == MobileOne.Kernels.ActivationKind.Relu ? Relu(a.Data) : a.Data.Select(v => Math.Min(Math.Max(v, 0), 6)).ToArray(), a.C, a.H, a.W),
                MobileOne.Models.Zoo.AddOp => (op.Inputs.Select(i => values[i].Data).Aggregate((s, t) => s.Zip(t, (u, v) => u + v).ToArray()), a.C, a.H, a.W),
                MobileOne.Models.Zoo.MaxPoolOp pool => MaxPool(a, n, pool.Kernel, pool.Stride, pool.Padding),
                MobileOne.Models.Zoo.GlobalPoolOp => (GlobalAverage(a.Data, n, a.C, a.H * a.W), a.C, 1, 1),
                MobileOne.Models.Zoo.LinearOp fc => (Linear(a.Data, n, a.C, p[fc.Name + ".weight"], p[fc.Name + ".bias"], fc.Linear.OutFeatures), fc.Linear.OutFeatures, 1, 1),
                _ => throw new NotSupportedException(op.GetType().Name),
            });
        }

        return values[^1].Data;
    }

    private static (double[], int, int, int) ConvValue((double[] Data, int C, int H, int W) a, int n, Conv2d conv, Dictionary<string, double[]> p, string name)
    {
        var y = Conv(a.Data, n, a.C, a.H, a.W, p[name + ".weight"], conv.OutChannels, conv.KernelSize, conv.Stride, conv.Padding, conv.Groups, conv.Bias is null ? null : p[name + ".bias"], out int ho, out int wo);
        return (y, conv.OutChannels, ho, wo);
    }

    private static (double[], int, int, int) MaxPool((double[] Data, int C, int H, int W) a, int n, int k, int stride, int pad)
    {
        int oh = ((a.H + (2 * pad) - k) / stride) + 1, ow = ((a.W + (2 * pad) - k) / stride) + 1;
        var y = new double[n * a.C * oh * ow];
        for (int plane = 0; plane < n * a.C; plane++)
        {
            for (int oy = 0; oy < oh; oy++)
            {
                for (int ox = 0; ox < ow; ox++)
                {
                    double best = double.NegativeInfinity;
                    for (int ky = 0; ky < k; ky++)
                    {
                        for (int kx = 0; kx < k; kx++)
                        {
                            int iy = (oy * stride) - pad + ky, ix = (ox * stride) - pad + kx;
                            if (iy >= 0 && iy < a.H && ix >= 0 && ix < a.W)
                            {
                                best = Math.Max(best, a.Data[(plane * a.H * a.W) + (iy * a.W) + ix]);
                            }
                        }
                    }

                    y[(plane * oh * ow) + (oy * ow) + ox] = best;
                }
            }
        }

        return (y, a.C, oh, ow);
    }

    public static double Dot(double[] a, float[] b)
    {
        Assert.Equal(a.Length, b.Length);
        double s = 0;
        for (int i = 0; i < a.Length; i++)
        {
            s += a[i] * b[i];
        }

        return s;
    }

    public static Tensor ToTensor(double[] values, params int[] shape) => new(shape, values.Select(v => (float)v).ToArray());

    private static void Add(ref double[]? sum, double[] term)
    {
        if (sum is null)
        {
            sum = (double[])term.Clone();
            return;
        }

        for (int i = 0; i < sum.Length; i++)
        {
            sum[i] += term[i];
        }
    }
}

/// <summary>Central differences of a double-precision loss, compared with gradients computed by the library.</summary>
internal static class GradCheck
{
    private const double Step = 1e-6;

    /// <summary>
    /// Checks <paramref name="analytic"/> (dLoss/dValues from the code under test) at a sample of indices, always including
    /// the largest entry, against (loss(v + h) - loss(v - h)) / 2h of the reference loss. Allowed error: a fraction of the
    /// gradient tensor's largest magnitude, since float32 arithmetic errs relative to the terms it sums.
    /// </summary>
    public static void Check(string what, ReadOnlySpan<float> analytic, double[] values, Func<double> loss, Random rng, int samples = 12, double tolerance = 2e-4)
    {
        Assert.Equal(values.Length, analytic.Length);
        double scale = 0;
        int argMax = 0;
        for (int i = 0; i < analytic.Length; i++)
        {
            if (Math.Abs(analytic[i]) > scale)
            {
                scale = Math.Abs(analytic[i]);
                argMax = i;
            }
        }

        var indices = new HashSet<int> { argMax };
        for (int s = 0; s < samples && indices.Count < values.Length; s++)
        {
            indices.Add(rng.Next(values.Length));
        }

        foreach (int i in indices)
        {
            double saved = values[i];
            values[i] = saved + Step;
            double up = loss();
            values[i] = saved - Step;
            double down = loss();
            values[i] = saved;
            double numeric = (up - down) / (2 * Step);
            double allowed = (tolerance * Math.Max(scale, Math.Abs(numeric))) + 1e-7;
            Assert.True(Math.Abs(analytic[i] - numeric) <= allowed, $"{what}[{i}]: analytic {analytic[i]:e6}, numeric {numeric:e6} (gradient scale {scale:e3})");
        }
    }
}
