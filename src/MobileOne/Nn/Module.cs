namespace MobileOne.Nn;

/// <summary>
/// A layer or a composition of layers. Modules own their parameters and buffers and expose them as
/// a state list in PyTorch's state_dict order; forward passes live on the concrete types because
/// their signatures differ (a block returns one tensor, a network may return features too).
/// </summary>
/// <remarks>
/// Modes, as in PyTorch: <see cref="Train"/> makes BatchNorm normalize with batch statistics and update its
/// running statistics; <see cref="Eval"/> makes it use the running statistics. Independently,
/// <see cref="GradEnabled"/> (on after <see cref="Train"/>, off after <see cref="Eval"/> unless asked) makes
/// Forward run the training kernels, keep what Backward needs, and return tensors the module owns: they are
/// reused by the next Forward or Backward, so copy anything you keep. Backward(gradOutput) accumulates into
/// every <see cref="Parameter.Grad"/> (call <see cref="ZeroGrad"/> between steps) and returns the input gradient.
/// With gradients off, Forward is the stateless inference path and returns fresh tensors.
/// </remarks>
public abstract class Module
{
    /// <summary>Every tensor of the state with its full name, in registration order.</summary>
    public abstract IEnumerable<StateEntry> State(string prefix = "");

    /// <summary>Sub-modules, so modes propagate.</summary>
    public virtual IEnumerable<Module> Children() => [];

    /// <summary>Trainable parameters with their state names, in <see cref="State"/> order.</summary>
    public virtual IEnumerable<NamedParameter> NamedParameters(string prefix = "") => [];

    /// <summary>True after <see cref="Train"/>: BatchNorm uses batch statistics and updates its running statistics.</summary>
    public bool Training { get; private set; }

    /// <summary>True when Forward records what Backward needs (always in training mode).</summary>
    public bool GradEnabled { get; private set; }

    /// <summary>The trainable entries of <see cref="State"/>.</summary>
    public IEnumerable<StateEntry> Parameters(string prefix = "") =>
        State(prefix).Where(e => e.Kind == StateKind.Parameter);

    /// <summary>Number of trainable values.</summary>
    public long ParameterCount() => Parameters().Sum(e => (long)e.Value.Length);

    /// <summary>PyTorch's module.train(mode): sets the mode of this module and all its children.</summary>
    public Module Train(bool training = true)
    {
        SetMode(training, gradEnabled: training);
        return this;
    }

    /// <summary>
    /// PyTorch's module.eval(). With <paramref name="gradEnabled"/> Forward still records for Backward (running
    /// statistics normalize, as in a frozen-BatchNorm fine-tune or an eval-mode gradient check).
    /// </summary>
    public Module Eval(bool gradEnabled = false)
    {
        SetMode(training: false, gradEnabled);
        return this;
    }

    /// <summary>
    /// Copies every state tensor (parameters, buffers, counters) of <paramref name="source"/>, a module of the same
    /// architecture, into this one, in <see cref="State"/> order.
    /// </summary>
    public void CopyStateFrom(Module source)
    {
        ArgumentNullException.ThrowIfNull(source);
        using var from = source.State().GetEnumerator();
        foreach (var to in State())
        {
            if (!from.MoveNext() || from.Current.Name != to.Name || !from.Current.Value.HasShape(to.Value.Shape))
            {
                throw new ArgumentException($"Cannot copy state into '{to.Name}' {to.Value.ShapeString}: the source module has a different architecture.");
            }

            from.Current.Value.Data.CopyTo(to.Value.Data, 0);
        }

        if (from.MoveNext())
        {
            throw new ArgumentException($"The source module has more state than this one (starting at '{from.Current.Name}').");
        }
    }

    /// <summary>Sets every parameter gradient to zero (keeping the storage).</summary>
    public void ZeroGrad()
    {
        foreach (var p in NamedParameters())
        {
            p.Parameter.ZeroGrad();
        }
    }

    /// <summary>Drops the activations kept for Backward and the reusable buffers, to free memory.</summary>
    public virtual void ReleaseBuffers()
    {
        foreach (var child in Children())
        {
            child.ReleaseBuffers();
        }
    }

    private void SetMode(bool training, bool gradEnabled)
    {
        Training = training;
        GradEnabled = gradEnabled;
        foreach (var child in Children())
        {
            child.SetMode(training, gradEnabled);
        }
    }
}

/// <summary>A trainable parameter and its state name (timm's).</summary>
public readonly record struct NamedParameter(string Name, Parameter Parameter);
