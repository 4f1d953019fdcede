using System.Runtime.CompilerServices;
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
public sealed unsafe class AdamW : Optimizer
{
    /// <summary>The <see cref="Optimizer.Kind"/> of AdamW states: "adamw".</summary>
    public const string KindName = "adamw";
    private const string FirstPrefix = "exp_avg.";
    private const string SecondPrefix = "exp_avg_sq.";

    private readonly Tensor?[] first;
    private readonly Tensor?[] second;

    /// <summary>
    /// AdamW over <paramref name="groups"/> (each with its learning rate and weight decay) with PyTorch's defaults for
    /// <paramref name="beta1"/>, <paramref name="beta2"/> and <paramref name="eps"/>; throws unless 0 &lt;= beta1, beta2 &lt; 1 and eps &gt;= 0.
    /// The moments are allocated on each parameter's first update.
    /// </summary>
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

    /// <summary>Decay of the first moment m (exp_avg) per step; 0.9 by default.</summary>
    public double Beta1 { get; }

    /// <summary>Decay of the second moment v (exp_avg_sq) per step; 0.999 by default.</summary>
    public double Beta2 { get; }

    /// <summary>Added to the bias-corrected sqrt(v) in the denominator; 1e-8 by default.</summary>
    public double Eps { get; }

    /// <summary>Copies of the moments, "exp_avg.&lt;param&gt;" and "exp_avg_sq.&lt;param&gt;" for every parameter updated so far, with the step count.</summary>
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

    /// <summary>Restores the moments and the step count from <paramref name="state"/> (copied, so the state can be reused); a parameter without moments there starts fresh. Throws for another kind, a foreign name, a wrong shape or a moment without its pair.</summary>
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

    /// <summary>The AdamW update of <paramref name="parameter"/> in place from its gradient, with the group's learning rate and weight decay and the bias corrections of <see cref="Optimizer.StepCount"/>.</summary>
    protected override void Update(ParameterGroup group, NamedParameter parameter, int index)
    {
        float[] p = parameter.Parameter.Value.Data, g = parameter.Parameter.Grad!.Data;
        float[] m = (first[index] ??= new Tensor(parameter.Parameter.Shape)).Data;
        float[] v = (second[index] ??= new Tensor(parameter.Parameter.Shape)).Data;
        long t = StepCount;
        double lr = group.LearningRate;
        double decay = 1 - (lr * group.WeightDecay), w1 = 1 - Beta1, b2 = Beta2, w2 = 1 - Beta2, eps = Eps;
        double stepSize = lr / (1 - Math.Pow(Beta1, t)), correction2Sqrt = Math.Sqrt(1 - Math.Pow(Beta2, t));
        fixed (float* pp = p, gp = g, mp = m, vp = v)
        {
            var loop = new AdamWLoop(pp, gp, mp, vp, decay, w1, b2, w2, eps, stepSize, correction2Sqrt);
            Lanes.RunDouble(ref loop, p.Length);
        }
    }

    /// <summary>The AdamW update of one parameter, element by element in double.</summary>
    private readonly unsafe struct AdamWLoop(float* p, float* g, float* m, float* v, double decay, double w1, double b2, double w2, double eps, double stepSize, double correction2Sqrt) : IDoubleWidthLoop
    {
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public int Run<TD, TW>(int i, int n)
            where TD : struct
            where TW : struct, IDoubleLanes<TD>
        {
            TD vdecay = TW.Splat(decay), vw1 = TW.Splat(w1), vb2 = TW.Splat(b2), vw2 = TW.Splat(w2), veps = TW.Splat(eps);
            TD vstep = TW.Splat(stepSize), vc2 = TW.Splat(correction2Sqrt);
            for (; i + TW.Count <= n; i += TW.Count)
            {
                TD gv = TW.LoadFloats(g + i), mv = TW.LoadFloats(m + i), vv = TW.LoadFloats(v + i);
                mv = TW.Add(mv, TW.Multiply(vw1, TW.Subtract(gv, mv)));
                vv = TW.Add(TW.Multiply(vb2, vv), TW.Multiply(TW.Multiply(vw2, gv), gv));
                TW.StoreFloats(m + i, mv);
                TW.StoreFloats(v + i, vv);
                TD denominator = TW.Add(TW.Divide(TW.Sqrt(vv), vc2), veps);
                TW.StoreFloats(p + i, TW.Subtract(TW.Multiply(TW.LoadFloats(p + i), vdecay), TW.Multiply(vstep, TW.Divide(mv, denominator))));
            }

            return i;
        }
    }
}
