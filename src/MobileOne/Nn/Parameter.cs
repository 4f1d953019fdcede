using MobileOne.Tensors;

namespace MobileOne.Nn;

/// <summary>A trainable tensor and the slot its gradient accumulates into during backward.</summary>
public sealed class Parameter
{
    /// <summary>A parameter holding <paramref name="value"/> (not copied).</summary>
    public Parameter(Tensor value)
    {
        Value = value;
    }

    /// <summary>The values.</summary>
    public Tensor Value { get; }

    /// <summary>Allocated on first use by a backward pass; inference never pays for it.</summary>
    public Tensor? Grad { get; set; }

    /// <summary>The shape of <see cref="Value"/>.</summary>
    public int[] Shape => Value.Shape;

    /// <see cref="Grad"/>, allocated (zero, pinned) when it is not yet.
    public Tensor EnsureGrad() => Grad ??= new Tensor(Value.Shape, GC.AllocateArray<float>(Value.Length, pinned: true));

    /// <summary>Clears the gradient if one was allocated.</summary>
    public void ZeroGrad() => Grad?.Data.AsSpan().Clear();
}
