using System.Runtime.CompilerServices;
using MobileOne.Kernels;
using MobileOne.Nn;
using MobileOne.Tensors;

namespace MobileOne.Training;

/// <summary>
/// Stochastic gradient descent with momentum and optional Nesterov, PyTorch's torch.optim.SGD formulation:
/// d = grad + wd * p; buf = d on the first step, else momentum * buf + (1 - dampening) * d;
/// d = nesterov ? d + momentum * buf : buf; p -= lr * d. Parameters and buffers are float32; each element's update is
/// evaluated in double and rounded once.
/// </summary>
public sealed unsafe class Sgd : Optimizer
{
    /// <summary>The <see cref="Optimizer.Kind"/> of SGD states: "sgd".</summary>
    public const string KindName = "sgd";
    private const string BufferPrefix = "momentum_buffer.";

    private readonly Tensor?[] buffers;

    /// <summary>
    /// SGD over <paramref name="groups"/> (each with its learning rate and weight decay). <paramref name="momentum"/> and
    /// <paramref name="dampening"/> must be &gt;= 0; Nesterov needs a positive momentum and zero dampening (the defaults: 0.9, Nesterov, no dampening,
    /// timm's "sgd"). Momentum buffers are allocated on each parameter's first update.
    /// </summary>
    public Sgd(IEnumerable<ParameterGroup> groups, double momentum = 0.9, bool nesterov = true, double dampening = 0.0)
        : base(groups, KindName)
    {
        if (!(momentum >= 0) || !(dampening >= 0))
        {
            throw new ArgumentOutOfRangeException(nameof(momentum), $"Momentum ({momentum}) and dampening ({dampening}) must be non-negative.");
        }

        if (nesterov && (momentum <= 0 || dampening != 0))
        {
            throw new ArgumentException("Nesterov momentum requires a positive momentum and zero dampening.", nameof(nesterov));
        }

        Momentum = momentum;
        Nesterov = nesterov;
        Dampening = dampening;
        buffers = new Tensor?[Entries.Count];
    }

    /// <summary>Factor of the momentum buffer per step; 0 turns momentum off (p -= lr * d, no buffer kept).</summary>
    public double Momentum { get; }

    /// <summary>Whether the step uses the Nesterov form d + momentum * buf instead of buf.</summary>
    public bool Nesterov { get; }

    /// <summary>Damps the gradient added to the momentum buffer: buf = momentum * buf + (1 - dampening) * d.</summary>
    public double Dampening { get; }

    /// <summary>Copies of the momentum buffers, "momentum_buffer.&lt;param&gt;" for every parameter that has one, with the step count.</summary>
    public override OptimizerState ExportState() =>
        new(KindName, StepCount, Entries.Select((e, i) => (e, buffers[i]))
            .Where(t => t.Item2 is not null)
            .Select(t => KeyValuePair.Create(BufferPrefix + t.e.Param.Name, t.Item2!.Clone())));

    /// <summary>Restores the momentum buffers (copied) and the step count from <paramref name="state"/>; a parameter without a buffer there starts fresh. Throws for another kind, a foreign name or a wrong shape.</summary>
    public override void ImportState(OptimizerState state)
    {
        CheckState(state, [BufferPrefix]);
        for (int i = 0; i < Entries.Count; i++)
        {
            buffers[i] = state.Tensors.TryGetValue(BufferPrefix + Entries[i].Param.Name, out var t) ? t.Clone() : null;
        }

        StepCount = state.Step;
    }

    /// <summary>The SGD update of <paramref name="parameter"/> in place from its gradient, with the group's learning rate and weight decay.</summary>
    protected override void Update(ParameterGroup group, NamedParameter parameter, int index)
    {
        // Each element's update is evaluated in double and rounded once: parameters that sit where the update
        // nearly cancels them keep the precision of the float64 reference instead of float32's.
        float[] p = parameter.Parameter.Value.Data, g = parameter.Parameter.Grad!.Data;
        double lr = group.LearningRate, wd = group.WeightDecay, momentum = Momentum, keep = 1 - Dampening;
        if (Momentum == 0)
        {
            for (int j = 0; j < p.Length; j++)
            {
                p[j] = (float)(p[j] - (lr * (g[j] + (wd * p[j]))));
            }

            return;
        }

        bool first = buffers[index] is null;
        float[] buf = (buffers[index] ??= new Tensor(parameter.Parameter.Shape)).Data;
        fixed (float* pp = p, gp = g, bp = buf)
        {
            var loop = new MomentumLoop(pp, gp, bp, lr, wd, momentum, keep, first, Nesterov);
            Lanes.RunDouble(ref loop, p.Length);
        }
    }

    /// <summary>The momentum update of one parameter, element by element in double.</summary>
    private readonly unsafe struct MomentumLoop(float* p, float* g, float* buf, double lr, double wd, double momentum, double keep, bool first, bool nesterov) : IDoubleWidthLoop
    {
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public int Run<TD, TW>(int i, int n)
            where TD : struct
            where TW : struct, IDoubleLanes<TD>
        {
            TD vlr = TW.Splat(lr), vwd = TW.Splat(wd), vm = TW.Splat(momentum), vkeep = TW.Splat(keep);
            for (; i + TW.Count <= n; i += TW.Count)
            {
                TD pv = TW.LoadFloats(p + i);
                TD d = TW.Add(TW.LoadFloats(g + i), TW.Multiply(vwd, pv));
                TD b = first ? d : TW.Add(TW.Multiply(vm, TW.LoadFloats(buf + i)), TW.Multiply(vkeep, d));
                TW.StoreFloats(buf + i, b);
                d = nesterov ? TW.Add(d, TW.Multiply(vm, b)) : b;
                TW.StoreFloats(p + i, TW.Subtract(pv, TW.Multiply(vlr, d)));
            }

            return i;
        }
    }
}
