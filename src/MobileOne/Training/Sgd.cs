using System.Runtime.Intrinsics;
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
public sealed class Sgd : Optimizer
{
    public const string KindName = "sgd";
    private const string BufferPrefix = "momentum_buffer.";

    private readonly Tensor?[] buffers;

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

    public double Momentum { get; }

    public bool Nesterov { get; }

    public double Dampening { get; }

    public override OptimizerState ExportState() =>
        new(KindName, StepCount, Entries.Select((e, i) => (e, buffers[i]))
            .Where(t => t.Item2 is not null)
            .Select(t => KeyValuePair.Create(BufferPrefix + t.e.Param.Name, t.Item2!.Clone())));

    public override void ImportState(OptimizerState state)
    {
        CheckState(state, [BufferPrefix]);
        for (int i = 0; i < Entries.Count; i++)
        {
            buffers[i] = state.Tensors.TryGetValue(BufferPrefix + Entries[i].Param.Name, out var t) ? t.Clone() : null;
        }

        StepCount = state.Step;
    }

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
        int i = 0;
        if (Lanes.Use512)
        {
            var vlr = Vector512.Create(lr);
            var vwd = Vector512.Create(wd);
            var vm = Vector512.Create(momentum);
            var vkeep = Vector512.Create(keep);
            for (; i + 16 <= p.Length; i += 16)
            {
                var (p0, p1) = Vector512.Widen(Vector512.Create(p.AsSpan(i, 16)));
                var (g0, g1) = Vector512.Widen(Vector512.Create(g.AsSpan(i, 16)));
                var (b0, b1) = Vector512.Widen(Vector512.Create(buf.AsSpan(i, 16)));
                var d0 = g0 + (vwd * p0);
                var d1 = g1 + (vwd * p1);
                b0 = first ? d0 : (vm * b0) + (vkeep * d0);
                b1 = first ? d1 : (vm * b1) + (vkeep * d1);
                Vector512.Narrow(b0, b1).CopyTo(buf.AsSpan(i, 16));
                d0 = Nesterov ? d0 + (vm * b0) : b0;
                d1 = Nesterov ? d1 + (vm * b1) : b1;
                Vector512.Narrow(p0 - (vlr * d0), p1 - (vlr * d1)).CopyTo(p.AsSpan(i, 16));
            }
        }

        for (; i < p.Length; i++)
        {
            double d = g[i] + (wd * p[i]);
            double b = first ? d : (momentum * buf[i]) + (keep * d);
            buf[i] = (float)b;
            d = Nesterov ? d + (momentum * b) : b;
            p[i] = (float)(p[i] - (lr * d));
        }
    }
}
