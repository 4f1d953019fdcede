using MobileOne.Kernels;
using MobileOne.Nn;
using MobileOne.Tensors;

namespace MobileOne.Training;

/// <summary>
/// Base of the optimizers: parameter groups with their own learning rate and weight decay, a step counter, and a
/// state that can be exported and imported for resuming. Parameters whose gradient was never allocated are skipped,
/// as PyTorch skips parameters with grad None. Each parameter tensor is updated by one thread, element by element,
/// so results do not depend on the thread count.
/// </summary>
public abstract class Optimizer
{
    /// <summary>
    /// Takes the parameters of <paramref name="groups"/> in order; <paramref name="kind"/> becomes <see cref="Kind"/>.
    /// Throws when there is no group or a parameter name appears in two groups.
    /// </summary>
    protected Optimizer(IEnumerable<ParameterGroup> groups, string kind)
    {
        ArgumentNullException.ThrowIfNull(groups);
        Groups = groups.ToArray();
        Kind = kind;
        if (Groups.Count == 0)
        {
            throw new ArgumentException("An optimizer needs at least one parameter group.", nameof(groups));
        }

        var seen = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var g in Groups)
        {
            foreach (var p in g.Parameters)
            {
                if (!seen.TryAdd(p.Name, g.Name))
                {
                    throw new ArgumentException($"Parameter '{p.Name}' is in both group '{seen[p.Name]}' and group '{g.Name}'.", nameof(groups));
                }
            }
        }

        Entries = Groups.SelectMany(g => g.Parameters.Select(p => (Group: g, Param: p))).ToArray();
    }

    /// <summary>"sgd" or "adamw": the kind recorded in exported states.</summary>
    public string Kind { get; }

    /// <summary>
    /// The parameter groups, in the order given; schedules change their learning rate and weight decay through
    /// <see cref="SetLearningRate"/> and <see cref="SetWeightDecay"/>.
    /// </summary>
    public IReadOnlyList<ParameterGroup> Groups { get; }

    /// <summary>Optimizer steps taken so far (PyTorch's per-parameter "step").</summary>
    public long StepCount { get; protected set; }

    /// <summary>Every parameter with its group, groups in order: the index an <see cref="Update"/> gets and a subclass keeps its per-parameter state under.</summary>
    protected IReadOnlyList<(ParameterGroup Group, NamedParameter Param)> Entries { get; }

    /// <summary>Sets the learning rate of every group.</summary>
    public void SetLearningRate(double learningRate)
    {
        foreach (var g in Groups)
        {
            g.LearningRate = learningRate;
        }
    }

    /// <summary>Sets the weight decay of every group not exempt from it (a schedule's value).</summary>
    public void SetWeightDecay(double weightDecay)
    {
        foreach (var g in Groups)
        {
            g.WeightDecay = weightDecay;
        }
    }

    /// <summary>Clears the gradient of every parameter (before a step's backward, which accumulates), on the compute threads as <see cref="Step"/> updates them: on one thread it took as long at two threads as at one (about 1 ms of an S0 step).</summary>
    public void ZeroGrad()
    {
        var entries = Entries;
        ComputeThreads.For(entries.Count, (i0, i1) =>
        {
            for (int i = i0; i < i1; i++)
            {
                entries[i].Param.Parameter.ZeroGrad();
            }
        });
    }

    /// <summary>One update of every parameter that has a gradient.</summary>
    public void Step()
    {
        StepCount++;
        var entries = Entries;
        ComputeThreads.For(entries.Count, (i0, i1) =>
        {
            for (int i = i0; i < i1; i++)
            {
                var (group, p) = entries[i];
                if (p.Parameter.Grad is not null)
                {
                    Update(group, p, i);
                }
            }
        });
    }

    /// <summary>Copies the step count and the per-parameter state (momentum buffers, moments) for a checkpoint; <see cref="ImportState"/> restores it.</summary>
    public abstract OptimizerState ExportState();

    /// <summary>Restores a state exported by the same kind of optimizer over parameters with the same names and shapes.</summary>
    public abstract void ImportState(OptimizerState state);

    /// <summary>Updates one parameter; <paramref name="index"/> is its position in <see cref="Entries"/>.</summary>
    protected abstract void Update(ParameterGroup group, NamedParameter parameter, int index);

    /// <summary>Checks a state's kind and that every tensor it holds belongs to a parameter with that prefix and shape.</summary>
    protected void CheckState(OptimizerState state, IReadOnlyList<string> prefixes)
    {
        ArgumentNullException.ThrowIfNull(state);
        if (!string.Equals(state.Kind, Kind, StringComparison.Ordinal))
        {
            throw new ArgumentException($"Optimizer state is for '{state.Kind}', but this optimizer is '{Kind}'.");
        }

        var shapes = new Dictionary<string, int[]>(StringComparer.Ordinal);
        foreach (var (_, p) in Entries)
        {
            foreach (string prefix in prefixes)
            {
                shapes[prefix + p.Name] = p.Parameter.Shape;
            }
        }

        foreach (var (name, value) in state.Tensors)
        {
            if (!shapes.TryGetValue(name, out var shape))
            {
                throw new ArgumentException($"Optimizer state tensor '{name}' does not belong to any parameter of this optimizer (expected names {string.Join(", ", prefixes.Select(p => $"'{p}<parameter>'"))}).");
            }

            if (!value.HasShape(shape))
            {
                throw new ArgumentException($"Optimizer state tensor '{name}' has shape {value.ShapeString}; the parameter has {Tensor.FormatShape(shape)}.");
            }
        }
    }
}
