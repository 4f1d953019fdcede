using MobileOne.Nn;
using MobileOne.Tensors;

namespace MobileOne.Models;

/// <summary>
/// Seeded initialization. <see cref="Initialize"/> follows timm's scheme for convolutions (normal with
/// std sqrt(2 / fan_out)) and PyTorch's BatchNorm defaults; <see cref="RandomizeBatchNorm"/> additionally gives
/// every BatchNorm random affine terms and running statistics, as the reference fixtures do, so that
/// fusing is not a near no-op in demos and tests.
/// </summary>
public static class WeightInit
{
    /// <summary>timm's initialisation, seeded: convolutions Kaiming normal (fan out), linear layers normal(0, 0.01), BatchNorm weights 1, biases 0.</summary>
    public static void Initialize(Module module, int seed)
    {
        var rng = new Random(seed);
        foreach (var entry in module.State())
        {
            var data = entry.Value.Data;
            string name = entry.Name;
            if (entry.Kind != StateKind.Parameter)
            {
                continue;
            }

            if (entry.Value.Rank == 4)
            {
                // fan_out = out_channels / groups * kh * kw = shape[0] * kh * kw / groups; groups is not in
                // the weight shape, and for depthwise kernels shape[1] == 1 so fan_out = kh * kw.
                int[] s = entry.Value.Shape;
                int fanOut = s[1] == 1 && !name.Contains("attn", StringComparison.Ordinal) ? s[2] * s[3] : s[0] * s[2] * s[3];
                FillNormal(rng, data, 0, Math.Sqrt(2.0 / fanOut));
            }
            else if (entry.Value.Rank == 2)
            {
                FillNormal(rng, data, 0, 0.01);
            }
            else if (name.EndsWith("bn.weight", StringComparison.Ordinal) || name.EndsWith("identity.weight", StringComparison.Ordinal))
            {
                Array.Fill(data, 1f);
            }
            else
            {
                Array.Clear(data);
            }
        }
    }

    /// <summary>Gives every BatchNorm random affine parameters and running statistics (seeded), so folding is not trivial (for tests and studies).</summary>
    public static void RandomizeBatchNorm(Module module, int seed)
    {
        var rng = new Random(seed);
        foreach (var entry in module.State())
        {
            var data = entry.Value.Data;
            if (entry.Name.EndsWith(".running_mean", StringComparison.Ordinal))
            {
                FillNormal(rng, data, 0, 0.1);
            }
            else if (entry.Name.EndsWith(".running_var", StringComparison.Ordinal))
            {
                for (int i = 0; i < data.Length; i++)
                {
                    data[i] = (float)(0.5 + rng.NextDouble());
                }
            }
            else if (entry.Kind == StateKind.Parameter && entry.Value.Rank == 1 && IsBatchNormParameter(entry.Name))
            {
                bool gamma = entry.Name.EndsWith(".weight", StringComparison.Ordinal);
                for (int i = 0; i < data.Length; i++)
                {
                    data[i] = gamma ? (float)(0.5 + (0.5 * rng.NextDouble())) : (float)(0.1 * (rng.NextDouble() - 0.5));
                }
            }
        }
    }

    /// <summary>
    /// Sets every BatchNorm's running statistics to the statistics of the activations it sees for
    /// <paramref name="input"/>, block by block, so a randomly initialized network keeps its activations
    /// near unit scale in eval mode (what a short train-mode warm-up would do). Affine terms are kept.
    /// </summary>
    public static void CalibrateBatchNorm(MobileOneNetwork network, Tensor input)
    {
        Tensor x = input;
        foreach (var (_, block) in network.Blocks())
        {
            foreach (var branch in block.ConvKxk.Append(block.ConvScale).OfType<ConvBn>())
            {
                SetRunningStatistics(branch.Bn, branch.Conv.Forward(x));
            }

            if (block.Identity is not null)
            {
                SetRunningStatistics(block.Identity, x);
            }

            x = block.Forward(x);
        }
    }

    /// <summary>
    /// The zoo's counterpart of <see cref="CalibrateBatchNorm(MobileOneNetwork, Tensor)"/>: operation by operation, each
    /// BatchNorm's running statistics become the statistics of its input for <paramref name="input"/> before it runs.
    /// </summary>
    public static void CalibrateBatchNorm(Zoo.ZooNetwork network, Tensor input)
    {
        var values = new List<Tensor> { input };
        foreach (var op in network.Operations)
        {
            var args = op.Inputs.Select(v => values[v]).ToList();
            if (op is Zoo.BatchNormOp bn)
            {
                SetRunningStatistics(bn.Bn, args[0]);
            }

            values.Add(op.Forward(args, grad: false));
        }
    }

    private static void SetRunningStatistics(BatchNorm2d bn, Tensor activations)
    {
        var moments = ChannelMoments(activations);
        for (int ch = 0; ch < moments.Length; ch++)
        {
            bn.RunningMean.Data[ch] = (float)moments[ch].Mean;
            bn.RunningVar.Data[ch] = (float)Math.Max(1e-3, moments[ch].Variance);
        }
    }

    /// <summary>
    /// Mean and population variance (at least 0) of each channel of an NCHW tensor over its images and pixels, summed
    /// in double: the statistics a BatchNorm measures, here for calibrating random networks.
    /// </summary>
    internal static (double Mean, double Variance)[] ChannelMoments(Tensor activations)
    {
        int n = activations.Dim(0), c = activations.Dim(1), plane = activations.Dim(2) * activations.Dim(3);
        var moments = new (double, double)[c];
        for (int ch = 0; ch < c; ch++)
        {
            double sum = 0, sumSq = 0;
            for (int b = 0; b < n; b++)
            {
                foreach (float v in activations.Data.AsSpan(((b * c) + ch) * plane, plane))
                {
                    sum += v;
                    sumSq += (double)v * v;
                }
            }

            double count = (double)n * plane;
            double mean = sum / count;
            moments[ch] = (mean, Math.Max(0, (sumSq / count) - (mean * mean)));
        }

        return moments;
    }

    /// <summary>Fills <paramref name="data"/> with normal samples of <paramref name="mean"/> and <paramref name="std"/> from <paramref name="rng"/>.</summary>
    public static void FillNormal(Random rng, Span<float> data, double mean, double std)
    {
        for (int i = 0; i < data.Length; i++)
        {
            // Box-Muller; one draw per value keeps the sequence simple to reproduce.
            double u1 = 1.0 - rng.NextDouble();
            double u2 = rng.NextDouble();
            data[i] = (float)(mean + (std * Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2)));
        }
    }

    private static bool IsBatchNormParameter(string name) =>
        name.Contains(".bn.", StringComparison.Ordinal) || name.Contains(".identity.", StringComparison.Ordinal);
}
