using MobileOne.Tensors;

namespace MobileOne.Nn;

/// <summary>What kind of state an entry is.</summary>
public enum StateKind
{
    /// <summary>Trained by the optimizer (weights, biases, BatchNorm affine terms).</summary>
    Parameter,

    /// <summary>Persistent but not trained (BatchNorm running statistics).</summary>
    Buffer,

    /// <summary>
    /// An integer counter (BatchNorm num_batches_tracked), kept as a 0-d float tensor: exact up to 2^24
    /// and stored as int64 in checkpoints.
    /// </summary>
    Counter,
}

/// <summary>One named tensor of a module's state, named the way timm's state_dict names it.</summary>
public readonly record struct StateEntry(string Name, Tensor Value, StateKind Kind);
