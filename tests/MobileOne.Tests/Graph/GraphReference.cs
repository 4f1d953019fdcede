using MobileOne.Graph;
using MobileOne.Kernels;

namespace MobileOne.Tests.Graph;

/// <summary>
/// A float64 evaluation of a <see cref="LayerGraph"/> written straight from the layer definitions (PyTorch's
/// Conv2d, BatchNorm2d in eval mode, the activations, squeeze-excite, pooling, linear), with plain loops over
/// NCHW arrays. It shares no code with the engine: it is the oracle the engine's graph tests trust.
/// </summary>
internal static class GraphReference
{
    public sealed record Value(double[] Data, int Channels, int Height, int Width);

    public static double Activation(ActivationKind kind, double x) => kind switch
    {
        ActivationKind.None => x,
        ActivationKind.Relu => Math.Max(x, 0),
        ActivationKind.Relu6 => Math.Clamp(x, 0, 6),
        ActivationKind.Gelu => 0.5 * x * (1 + Erf(x / Math.Sqrt(2))),
        ActivationKind.GeluTanh => 0.5 * x * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (x + (0.044715 * x * x * x)))),
        ActivationKind.Silu => x / (1 + Math.Exp(-x)),
        ActivationKind.HardSwish => x * Math.Clamp(x + 3, 0, 6) / 6,
        ActivationKind.Sigmoid => 1 / (1 + Math.Exp(-x)),
        ActivationKind.HardSigmoid => Math.Clamp(x + 3, 0, 6) / 6,
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    /// <summary>erf(x) = 2/sqrt(pi) * integral_0^x exp(-t^2) dt by composite Simpson with 2000 panels (error far below 1e-12).</summary>
    public static double Erf(double x)
    {
        if (x < 0)
        {
            return -Erf(-x);
        }

        double b = Math.Min(x, 8.0);
        const int n = 2000;
        double h = b / n, sum = 1 + Math.Exp(-b * b);
        for (int i = 1; i < n; i++)
        {
            double t = i * h;
            sum += (i % 2 == 1 ? 4 : 2) * Math.Exp(-t * t);
        }

        return sum * h / 3 * 2 / Math.Sqrt(Math.PI);
    }

    /// <summary>The graph output for a batch of NCHW images, per image [C, H, W] concatenated (NCHW).</summary>
    public static double[] Evaluate(LayerGraph graph, float[] input, int batch, int height, int width)
    {
        var outputs = new List<double>();
        int plane = graph.InputChannels * height * width;
        for (int n = 0; n < batch; n++)
        {
            var values = new Value[graph.Nodes.Count + 1];
            values[0] = new Value(input.Skip(n * plane).Take(plane).Select(v => (double)v).ToArray(), graph.InputChannels, height, width);
            for (int i = 0; i < graph.Nodes.Count; i++)
            {
                values[i + 1] = Node(graph.Nodes[i], graph.Nodes[i].Inputs.Select(v => values[v]).ToArray());
            }

            outputs.AddRange(values[graph.Output].Data);
        }

        return outputs.ToArray();
    }

    private static Value Node(GraphNode node, Value[] x) => node switch
    {
        ConvNode c => Conv(c, x[0]),
        BatchNormNode bn => Map(x[0], (ch, v) => ((v - bn.Mean[ch]) / Math.Sqrt(bn.Var[ch] + bn.Eps) * bn.Gamma[ch]) + bn.Beta[ch]),
        ActivationNode a => Map(x[0], (_, v) => Activation(a.Activation, v)),
        AddNode => new Value(Enumerable.Range(0, x[0].Data.Length).Select(i => x.Sum(v => v.Data[i])).ToArray(), x[0].Channels, x[0].Height, x[0].Width),
        SqueezeExciteNode se => SqueezeExcite(se, x[0]),
        PoolNode p => Pool(p, x[0]),
        GlobalAveragePoolNode => new Value(Enumerable.Range(0, x[0].Channels).Select(c => Plane(x[0], c).Average()).ToArray(), x[0].Channels, 1, 1),
        LinearNode l => new Value(
            Enumerable.Range(0, l.OutFeatures).Select(o => (l.Bias?[o] ?? 0) + Enumerable.Range(0, l.InFeatures).Sum(i => (double)l.Weight[(o * l.InFeatures) + i] * x[0].Data[i])).ToArray(),
            l.OutFeatures, 1, 1),
        _ => throw new NotSupportedException(node.GetType().Name),
    };

    private static IEnumerable<double> Plane(Value v, int c) => v.Data.Skip(c * v.Height * v.Width).Take(v.Height * v.Width);

    private static Value Map(Value x, Func<int, double, double> f)
    {
        int plane = x.Height * x.Width;
        return x with { Data = x.Data.Select((v, i) => f(i / plane, v)).ToArray() };
    }

    private static Value Conv(ConvNode c, Value x)
    {
        int effH = (c.DilationH * (c.KernelHeight - 1)) + 1, effW = (c.DilationW * (c.KernelWidth - 1)) + 1;
        int oh = ((x.Height + (2 * c.PadH) - effH) / c.StrideH) + 1, ow = ((x.Width + (2 * c.PadW) - effW) / c.StrideW) + 1;
        int inPer = c.InChannels / c.Groups, outPer = c.OutChannels / c.Groups;
        var y = new double[c.OutChannels * oh * ow];
        for (int o = 0; o < c.OutChannels; o++)
        {
            int g = o / outPer;
            for (int oy = 0; oy < oh; oy++)
            {
                for (int ox = 0; ox < ow; ox++)
                {
                    double acc = c.Bias?[o] ?? 0;
                    for (int ci = 0; ci < inPer; ci++)
                    {
                        for (int ky = 0; ky < c.KernelHeight; ky++)
                        {
                            for (int kx = 0; kx < c.KernelWidth; kx++)
                            {
                                int iy = (oy * c.StrideH) - c.PadH + (ky * c.DilationH), ix = (ox * c.StrideW) - c.PadW + (kx * c.DilationW);
                                if (iy < 0 || iy >= x.Height || ix < 0 || ix >= x.Width)
                                {
                                    continue;
                                }

                                double w = c.Weight[(((((o * inPer) + ci) * c.KernelHeight) + ky) * c.KernelWidth) + kx];
                                acc += w * x.Data[((((g * inPer) + ci) * x.Height) + iy) * x.Width + ix];
                            }
                        }
                    }

                    y[(((o * oh) + oy) * ow) + ox] = acc;
                }
            }
        }

        return new Value(y, c.OutChannels, oh, ow);
    }

    private static Value SqueezeExcite(SqueezeExciteNode se, Value x)
    {
        var mean = Enumerable.Range(0, se.Channels).Select(c => Plane(x, c).Average()).ToArray();
        var hidden = Enumerable.Range(0, se.Reduced)
            .Select(j => Activation(se.InnerActivation, se.ReduceBias[j] + Enumerable.Range(0, se.Channels).Sum(c => (double)se.ReduceWeight[(j * se.Channels) + c] * mean[c])))
            .ToArray();
        var gate = Enumerable.Range(0, se.Channels)
            .Select(c => Activation(se.GateActivation, se.ExpandBias[c] + Enumerable.Range(0, se.Reduced).Sum(j => (double)se.ExpandWeight[(c * se.Reduced) + j] * hidden[j])))
            .ToArray();
        return Map(x, (c, v) => v * gate[c]);
    }

    private static Value Pool(PoolNode p, Value x)
    {
        int oh = ((x.Height + (2 * p.Padding) - p.Kernel) / p.Stride) + 1, ow = ((x.Width + (2 * p.Padding) - p.Kernel) / p.Stride) + 1;
        var y = new double[x.Channels * oh * ow];
        for (int c = 0; c < x.Channels; c++)
        {
            for (int oy = 0; oy < oh; oy++)
            {
                for (int ox = 0; ox < ow; ox++)
                {
                    double max = double.NegativeInfinity, sum = 0;
                    int count = 0, window = 0;
                    for (int ky = 0; ky < p.Kernel; ky++)
                    {
                        for (int kx = 0; kx < p.Kernel; kx++)
                        {
                            int iy = (oy * p.Stride) - p.Padding + ky, ix = (ox * p.Stride) - p.Padding + kx;
                            // PyTorch's AvgPool2d divisor with count_include_pad counts the window clipped to the padded input.
                            if (iy < x.Height + p.Padding && ix < x.Width + p.Padding)
                            {
                                window++;
                            }

                            if (iy < 0 || iy >= x.Height || ix < 0 || ix >= x.Width)
                            {
                                continue;
                            }

                            double v = x.Data[(((c * x.Height) + iy) * x.Width) + ix];
                            max = Math.Max(max, v);
                            sum += v;
                            count++;
                        }
                    }

                    y[(((c * oh) + oy) * ow) + ox] = p.Kind == PoolKind.Max ? max : sum / (p.CountIncludePad ? window : count);
                }
            }
        }

        return new Value(y, x.Channels, oh, ow);
    }
}
