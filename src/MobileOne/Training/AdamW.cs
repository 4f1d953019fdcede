using System.Runtime.Intrinsics;
using MobileOne.Kernels;
using MobileOne.Nn;
using MobileOne.Tensors;

namespace MobileOne.Training;

/// <summary>
/// Adam with decoupled weight decay, PyTorch's torch.optim.AdamW:
/// p *= 1 - lr * wd; m = lerp(m, g, 1 - beta1); v = beta2 * v + (1 - beta2) * g * g;
/// p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps), with t the step count starting at 1.
/// Parameters and moments are float32; each element's update is evaluated in double and rounded once.
/// </summary>
public sealed class AdamW : Optimizer
{
    public const string KindName = "adamw";
    private const string FirstPrefix = "exp_avg.";
    private const string SecondPrefix = "exp_avg_sq.";

    private readonly Tensor?[] first;
    private readonly Tensor?[] second;

    public AdamW(IEnumerable<ParameterGroup> groups, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8)
        : base(groups, KindName)
    {
        if (!(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1) || !(eps >= 0))
        {
            throw new ArgumentOutOfRangeException(nameof(beta1), $"AdamW needs 0 <= beta1, beta2 < 1 and eps >= 0; got betas ({beta1}, {beta2}), eps {eps}.");
        }

        Beta1 = beta1;
        Beta2 = beta2;
        Eps = eps;
        first = new Tensor?[Entries.Count];
        second = new Tensor?[Entries.Count];
    }

    public double Beta1 { get; }

    public double Beta2 { get; }

    public double Eps { get; }

    public override OptimizerState ExportState()
    {
        var tensors = new List<KeyValuePair<string, Tensor>>();
        for (int i = 0; i < Entries.Count; i++)
        {
            if (first[i] is not null)
            {
                tensors.Add(KeyValuePair.Create(FirstPrefix + Entries[i].Param.Name, first[i]!.Clone()));
                tensors.Add(KeyValuePair.Create(SecondPrefix + Entries[i].Param.Name, second[i]!.Clone()));
            }
        }

        return new OptimizerState(KindName, StepCount, tensors);
    }

    public override void ImportState(OptimizerState state)
    {
        CheckState(state, [FirstPrefix, SecondPrefix]);
        for (int i = 0; i < Entries.Count; i++)
        {
            string name = Entries[i].Param.Name;
            bool hasFirst = state.Tensors.TryGetValue(FirstPrefix + name, out var m);
            bool hasSecond = state.Tensors.TryGetValue(SecondPrefix + name, out var v);
            if (hasFirst != hasSecond)
            {
                throw new ArgumentException($"Optimizer state has only one of '{FirstPrefix}{name}' and '{SecondPrefix}{name}'.");
            }

            first[i] = m?.Clone();
            second[i] = v?.Clone();
        }

        StepCount = state.Step;
    }

    protected override void Update(ParameterGroup group, NamedParameter parameter, int index)
    {
        float[] p = parameter.Parameter.Value.Data, g = parameter.Parameter.Grad!.Data;
        float[] m = (first[index] ??= new Tensor(parameter.Parameter.Shape)).Data;
        float[] v = (second[index] ??= new Tensor(parameter.Parameter.Shape)).Data;
        long t = StepCount;
        double lr = group.LearningRate;
        double decay = 1 - (lr * group.WeightDecay), w1 = 1 - Beta1, b2 = Beta2, w2 = 1 - Beta2, eps = Eps;
        double stepSize = lr / (1 - Math.Pow(Beta1, t)), correction2Sqrt = Math.Sqrt(1 - Math.Pow(Beta2, t));
        int i = 0;
        if (Lanes.Use512)
        {
            var vdecay = Vector512.Create(decay);
            var vw1 = Vector512.Create(w1);
            var vb2 = Vector512.Create(b2);
            var vw2 = Vector512.Create(w2);
            var veps = Vector512.Create(eps);
            var vstep = Vector512.Create(stepSize);
            var vc2 = Vector512.Create(correction2Sqrt);
            for (; i + 16 <= p.Length; i += 16)
            {
                var (p0, p1) = Vector512.Widen(Vector512.Create(p.AsSpan(i, 16)));
                var (g0, g1) = Vector512.Widen(Vector512.Create(g.AsSpan(i, 16)));
                var (m0, m1) = Vector512.Widen(Vector512.Create(m.AsSpan(i, 16)));
                var (v0, v1) = Vector512.Widen(Vector512.Create(v.AsSpan(i, 16)));
                m0 += vw1 * (g0 - m0);
                m1 += vw1 * (g1 - m1);
                v0 = (vb2 * v0) + (vw2 * g0 * g0);
                v1 = (vb2 * v1) + (vw2 * g1 * g1);
                Vector512.Narrow(m0, m1).CopyTo(m.AsSpan(i, 16));
                Vector512.Narrow(v0, v1).CopyTo(v.AsSpan(i, 16));
                p0 = (p0 * vdecay) - (vstep * (m0 / ((Vector512.Sqrt(v0) / vc2) + veps)));
                p1 = (p1 * vdecay) - (vstep * (m1 / ((Vector512.Sqrt(v1) / vc2) + veps)));
                Vector512.Narrow(p0, p1).CopyTo(p.AsSpan(i, 16));
            }
        }

        for (; i < p.Length; i++)
        {
            double gi = g[i];
            double mi = m[i] + (w1 * (gi - m[i]));
            double vi = (b2 * v[i]) + (w2 * gi * gi);
            m[i] = (float)mi;
            v[i] = (float)vi;
            p[i] = (float)((p[i] * decay) - (stepSize * (mi / ((Math.Sqrt(vi) / correction2Sqrt) + eps))));
        }
    }
}
