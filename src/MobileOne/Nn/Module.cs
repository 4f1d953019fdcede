namespace MobileOne.Nn;

/// <summary>
/// A layer or a composition of layers. Modules own their parameters and buffers and expose them as
/// a state list in PyTorch's state_dict order; forward passes live on the concrete types because
/// their signatures differ (a block returns one tensor, a network may return features too).
/// </summary>
public abstract class Module
{
    /// <summary>Every tensor of the state with its full name, in registration order.</summary>
    public abstract IEnumerable<StateEntry> State(string prefix = "");

    public IEnumerable<StateEntry> Parameters(string prefix = "") =>
        State(prefix).Where(e => e.Kind == StateKind.Parameter);

    public long ParameterCount() => Parameters().Sum(e => (long)e.Value.Length);
}
