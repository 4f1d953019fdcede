using MobileOne.Graph;
using MobileOne.Kernels;
using MobileOne.Tensors;

namespace MobileOne.Tests.Graph;

/// <summary>
/// A float64 evaluation of a <see cref="LayerGraph"/> written straight from the layer definitions (PyTorch's
/// Conv2d, BatchNorm2d in eval mode, the activations, squeeze-excite, pooling, linear, softmax, concat, zero pad), with plain loops over
/// NCHW arrays. It shares no code with the engine or the ONNX exporter: it is the oracle both are tested against.
/// </summary>
internal static class GraphReference
{
    /// <summary>The graph output for an NCHW batch, NCHW (a classifier's [batch, classes] rows).</summary>
    public static double[] Evaluate(LayerGraph graph, Tensor input) => EvaluateAll(graph, input)[graph.Output];

    /// <summary>
    /// The graph in float64, node by node, straight from each node's definition (NCHW, zero padding for
    /// convolutions, -inf for max pooling, floor-mode windows). Returns every value (index = value id), batch-major.
    /// </summary>
    public static double[][] EvaluateAll(LayerGraph graph, Tensor input)
    {
        int batch = input.Dim(0);
        var shapes = graph.InferShapes(input.Dim(2), input.Dim(3));
        var values = new double[graph.Nodes.Count + 1][];
        values[0] = input.Data.Select(v => (double)v).ToArray();
        for (int i = 0; i < graph.Nodes.Count; i++)
        {
            var node = graph.Nodes[i];
            var inShape = shapes[node.Inputs[0]];
            var outShape = shapes[i + 1];
            var x = values[node.Inputs[0]];
            var y = new double[batch * outShape.Elements];
            switch (node)
            {
                case ConvNode c:
                    Conv(c, x, inShape, y, outShape, batch);
                    break;
                case BatchNormNode b:
                    for (int n = 0; n < batch; n++)
                    {
                        for (int ch = 0; ch < b.Channels; ch++)
                        {
                            double scale = b.Gamma[ch] / Math.Sqrt(b.Var[ch] + b.Eps);
                            for (int p = 0; p < inShape.Height * inShape.Width; p++)
                            {
                                int at = (((n * b.Channels) + ch) * inShape.Height * inShape.Width) + p;
                                y[at] = ((x[at] - b.Mean[ch]) * scale) + b.Beta[ch];
                            }
                        }
                    }

                    break;
                case ActivationNode a:
                    for (int k = 0; k < y.Length; k++)
                    {
                        y[k] = Activation(a.Activation, x[k]);
                    }

                    break;
                case SqueezeExciteNode s:
                    SqueezeExcite(s, x, inShape, y, batch);
                    break;
                case DyReluNode d:
                    DyRelu(d, x, inShape, y, batch);
                    break;
                case DynamicShiftMaxNode m:
                    DynamicShiftMax(m, x, inShape, y, batch);
                    break;
                case AddNode add:
                    foreach (int v in add.Inputs)
                    {
                        for (int k = 0; k < y.Length; k++)
                        {
                            y[k] += values[v][k];
                        }
                    }

                    break;
                case PoolNode p:
                    Pool(p, x, inShape, y, outShape, batch);
                    break;
                case GlobalAveragePoolNode:
                    GlobalAveragePool(x, inShape, y, batch);
                    break;
                case LinearNode l:
                    for (int n = 0; n < batch; n++)
                    {
                        for (int o = 0; o < l.OutFeatures; o++)
                        {
                            double total = l.Bias?[o] ?? 0;
                            for (int k = 0; k < l.InFeatures; k++)
                            {
                                total += l.Weight[(o * l.InFeatures) + k] * x[(n * l.InFeatures) + k];
                            }

                            y[(n * l.OutFeatures) + o] = total;
                        }
                    }

                    break;
                case SoftmaxNode:
                    Softmax(x, inShape, y, batch);
                    break;
                case ConcatNode concat:
                    Concat(concat, values, shapes, y, outShape, batch);
                    break;
                case PadNode pad:
                    Pad(pad, x, inShape, y, outShape, batch);
                    break;
                default:
                    throw new NotSupportedException(node.GetType().Name);
            }

            values[i + 1] = y;
        }

        return values;
    }

    /// <summary>exp(x_c) / sum_k exp(x_k) over the channels of each pixel, in double straight from the definition.</summary>
    private static void Softmax(double[] x, ValueShape s, double[] y, int batch)
    {
        int plane = s.Height * s.Width;
        for (int n = 0; n < batch; n++)
        {
            for (int p = 0; p < plane; p++)
            {
                double sum = 0;
                for (int c = 0; c < s.Channels; c++)
                {
                    sum += Math.Exp(x[(((n * s.Channels) + c) * plane) + p]);
                }

                for (int c = 0; c < s.Channels; c++)
                {
                    int at = (((n * s.Channels) + c) * plane) + p;
                    y[at] = Math.Exp(x[at]) / sum;
                }
            }
        }
    }

    /// <summary>Each image's inputs one after another: NCHW makes the channel concatenation a copy of whole planes.</summary>
    private static void Concat(ConcatNode concat, double[][] values, ValueShape[] shapes, double[] y, ValueShape o, int batch)
    {
        int at = 0;
        for (int n = 0; n < batch; n++)
        {
            foreach (int v in concat.Inputs)
            {
                long size = shapes[v].Elements;
                Array.Copy(values[v], n * size, y, at, size);
                at += (int)size;
            }
        }
    }

    private static void Pad(PadNode pad, double[] x, ValueShape s, double[] y, ValueShape o, int batch)
    {
        for (int nc = 0; nc < batch * s.Channels; nc++)
        {
            for (int iy = 0; iy < s.Height; iy++)
            {
                for (int ix = 0; ix < s.Width; ix++)
                {
                    y[(((nc * o.Height) + iy + pad.Top) * o.Width) + ix + pad.Left] = x[(((nc * s.Height) + iy) * s.Width) + ix];
                }
            }
        }
    }

    private static void GlobalAveragePool(double[] x, ValueShape s, double[] y, int batch)
    {
        int plane = s.Height * s.Width;
        for (int nc = 0; nc < batch * s.Channels; nc++)
        {
            double total = 0;
            for (int k = 0; k < plane; k++)
            {
                total += x[(nc * plane) + k];
            }

            y[nc] = total / plane;
        }
    }

    private static void Conv(ConvNode c, double[] x, ValueShape s, double[] y, ValueShape o, int batch)
    {
        int inPerGroup = c.InChannels / c.Groups, outPerGroup = c.OutChannels / c.Groups;
        for (int n = 0; n < batch; n++)
        {
            for (int oc = 0; oc < c.OutChannels; oc++)
            {
                int group = oc / outPerGroup;
                for (int oy = 0; oy < o.Height; oy++)
                {
                    for (int ox = 0; ox < o.Width; ox++)
                    {
                        double total = c.Bias?[oc] ?? 0;
                        for (int ic = 0; ic < inPerGroup; ic++)
                        {
                            int channel = (group * inPerGroup) + ic;
                            for (int ky = 0; ky < c.KernelHeight; ky++)
                            {
                                int iy = (oy * c.StrideH) - c.PadH + (ky * c.DilationH);
                                for (int kx = 0; kx < c.KernelWidth; kx++)
                                {
                                    int ix = (ox * c.StrideW) - c.PadW + (kx * c.DilationW);
                                    if (iy >= 0 && iy < s.Height && ix >= 0 && ix < s.Width)
                                    {
                                        double w = c.Weight[(((((oc * inPerGroup) + ic) * c.KernelHeight) + ky) * c.KernelWidth) + kx];
                                        total += w * x[(((((n * s.Channels) + channel) * s.Height) + iy) * s.Width) + ix];
                                    }
                                }
                            }
                        }

                        y[(((((n * o.Channels) + oc) * o.Height) + oy) * o.Width) + ox] = total;
                    }
                }
            }
        }
    }

    /// <summary>The hyper function of a dynamic activation: z = W2 ReLU(W1 mean(x_n) + b1) + b2 for image n (before normalization).</summary>
    private static double[] Hyper(double[] x, int n, int channels, int plane, int reduced, float[] w1, float[] b1, float[] w2, float[] b2, int outputs)
    {
        var mean = new double[channels];
        for (int ch = 0; ch < channels; ch++)
        {
            for (int p = 0; p < plane; p++)
            {
                mean[ch] += x[(((n * channels) + ch) * plane) + p];
            }

            mean[ch] /= plane;
        }

        var hidden = new double[reduced];
        for (int r = 0; r < reduced; r++)
        {
            double total = b1[r];
            for (int ch = 0; ch < channels; ch++)
            {
                total += w1[(r * channels) + ch] * mean[ch];
            }

            hidden[r] = Math.Max(total, 0);
        }

        var z = new double[outputs];
        for (int o = 0; o < outputs; o++)
        {
            z[o] = b2[o];
            for (int r = 0; r < reduced; r++)
            {
                z[o] += w2[(o * reduced) + r] * hidden[r];
            }
        }

        return z;
    }

    /// <summary>DyReLU: theta = 2 sigmoid(z) - 1; a^k = [k == 0] + lambdaA theta_a^k, b^k = lambdaB theta_b^k; y = max_k a^k x + b^k.</summary>
    private static void DyRelu(DyReluNode d, double[] x, ValueShape shape, double[] y, int batch)
    {
        int plane = shape.Height * shape.Width, c = d.Channels, k2 = 2 * d.K;
        for (int n = 0; n < batch; n++)
        {
            var z = Hyper(x, n, c, plane, d.Reduced, d.ReduceWeight, d.ReduceBias, d.ExpandWeight, d.ExpandBias, d.Coefficients);
            var theta = z.Select(v => (2 / (1 + Math.Exp(-v))) - 1).ToArray();
            for (int ch = 0; ch < c; ch++)
            {
                int base0 = d.Kind == DyReluKind.A ? 0 : ch * k2;
                for (int p = 0; p < plane; p++)
                {
                    int at = (((n * c) + ch) * plane) + p;
                    double best = double.NegativeInfinity;
                    for (int k = 0; k < d.K; k++)
                    {
                        double a = (k == 0 ? 1 : 0) + (d.LambdaA * theta[base0 + k]);
                        double b = d.LambdaB * theta[base0 + d.K + k];
                        best = Math.Max(best, (a * x[at]) + b);
                    }

                    y[at] = best;
                }
            }
        }
    }

    /// <summary>Dynamic shift-max: a^k_{i,j} = [j == 0] + lambda (2 relu6(z + 3) / 6 - 1), z index (k J + j) C + i; y_i = max_k sum_j a^k_{i,j} x_{(i + j C/G) mod C}.</summary>
    private static void DynamicShiftMax(DynamicShiftMaxNode m, double[] x, ValueShape shape, double[] y, int batch)
    {
        int plane = shape.Height * shape.Width, c = m.Channels;
        for (int n = 0; n < batch; n++)
        {
            var z = Hyper(x, n, c, plane, m.Reduced, m.ReduceWeight, m.ReduceBias, m.ExpandWeight, m.ExpandBias, m.Coefficients);
            for (int i = 0; i < c; i++)
            {
                for (int p = 0; p < plane; p++)
                {
                    double best = double.NegativeInfinity;
                    for (int k = 0; k < m.K; k++)
                    {
                        double total = 0;
                        for (int j = 0; j < m.J; j++)
                        {
                            double hsig = Math.Min(Math.Max(z[(((k * m.J) + j) * c) + i] + 3, 0), 6) / 6;
                            double a = (j == 0 ? 1 : 0) + (m.Lambda * ((2 * hsig) - 1));
                            int src = (i + (j * (c / m.Groups))) % c;
                            total += a * x[(((n * c) + src) * plane) + p];
                        }

                        best = Math.Max(best, total);
                    }

                    y[(((n * c) + i) * plane) + p] = best;
                }
            }
        }
    }

    private static void SqueezeExcite(SqueezeExciteNode s, double[] x, ValueShape shape, double[] y, int batch)
    {
        int plane = shape.Height * shape.Width;
        for (int n = 0; n < batch; n++)
        {
            var mean = new double[s.Channels];
            for (int ch = 0; ch < s.Channels; ch++)
            {
                for (int p = 0; p < plane; p++)
                {
                    mean[ch] += x[(((n * s.Channels) + ch) * plane) + p];
                }

                mean[ch] /= plane;
            }

            var hidden = new double[s.Reduced];
            for (int r = 0; r < s.Reduced; r++)
            {
                double total = s.ReduceBias[r];
                for (int ch = 0; ch < s.Channels; ch++)
                {
                    total += s.ReduceWeight[(r * s.Channels) + ch] * mean[ch];
                }

                hidden[r] = Activation(s.InnerActivation, total);
            }

            for (int ch = 0; ch < s.Channels; ch++)
            {
                double total = s.ExpandBias[ch];
                for (int r = 0; r < s.Reduced; r++)
                {
                    total += s.ExpandWeight[(ch * s.Reduced) + r] * hidden[r];
                }

                double gate = Activation(s.GateActivation, total);
                for (int p = 0; p < plane; p++)
                {
                    int at = (((n * s.Channels) + ch) * plane) + p;
                    y[at] = x[at] * gate;
                }
            }
        }
    }

    private static void Pool(PoolNode p, double[] x, ValueShape s, double[] y, ValueShape o, int batch)
    {
        for (int nc = 0; nc < batch * s.Channels; nc++)
        {
            for (int oy = 0; oy < o.Height; oy++)
            {
                for (int ox = 0; ox < o.Width; ox++)
                {
                    double max = double.NegativeInfinity, total = 0;
                    int inside = 0;
                    for (int ky = 0; ky < p.Kernel; ky++)
                    {
                        for (int kx = 0; kx < p.Kernel; kx++)
                        {
                            int iy = (oy * p.Stride) - p.Padding + ky, ix = (ox * p.Stride) - p.Padding + kx;
                            if (iy >= 0 && iy < s.Height && ix >= 0 && ix < s.Width)
                            {
                                double v = x[(((nc * s.Height) + iy) * s.Width) + ix];
                                max = Math.Max(max, v);
                                total += v;
                                inside++;
                            }
                        }
                    }

                    y[(((nc * o.Height) + oy) * o.Width) + ox] = p.Kind == PoolKind.Max
                        ? max
                        : total / (p.CountIncludePad ? p.Kernel * p.Kernel : inside);
                }
            }
        }
    }

    /// <summary>The activations as <see cref="ActivationKind"/> documents them, in float64 (GELU with an exact erf).</summary>
    public static double Activation(ActivationKind kind, double x) => kind switch
    {
        ActivationKind.None => x,
        ActivationKind.Relu => Math.Max(x, 0),
        ActivationKind.Relu6 => Math.Min(Math.Max(x, 0), 6),
        ActivationKind.Gelu => 0.5 * x * (1 + Erf(x / Math.Sqrt(2))),
        ActivationKind.GeluTanh => 0.5 * x * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (x + (0.044715 * x * x * x)))),
        ActivationKind.Silu => x / (1 + Math.Exp(-x)),
        ActivationKind.HardSwish => x * Math.Min(Math.Max(x + 3, 0), 6) / 6,
        ActivationKind.Sigmoid => 1 / (1 + Math.Exp(-x)),
        ActivationKind.HardSigmoid => Math.Min(Math.Max(x + 3, 0), 6) / 6,
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, null),
    };

    /// <summary>
    /// erf to double precision: the Maclaurin series below |x| = 2.5 (largest term about 500, so about 1e-13 lost to
    /// cancellation), 1 - erfc by its continued fraction above (converged long before 200 terms there).
    /// </summary>
    public static double Erf(double x)
    {
        double a = Math.Abs(x);
        double result;
        if (a < 2.5)
        {
            double term = a, total = a, square = a * a;
            for (int n = 1; n < 100; n++)
            {
                term *= -square / n;
                double next = term / ((2 * n) + 1);
                total += next;
                if (Math.Abs(next) < 1e-17 * Math.Abs(total))
                {
                    break;
                }
            }

            result = 2 / Math.Sqrt(Math.PI) * total;
        }
        else
        {
            // erfc(a) = exp(-a^2) / sqrt(pi) * 1 / (a + (1/2) / (a + 1 / (a + (3/2) / (a + 2 / (a + ...))))).
            double fraction = a;
            for (int k = 200; k >= 1; k--)
            {
                fraction = a + (k / 2.0 / fraction);
            }

            result = 1 - (Math.Exp(-a * a) / Math.Sqrt(Math.PI) / fraction);
        }

        return x < 0 ? -result : result;
    }
}
