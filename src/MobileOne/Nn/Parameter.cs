using MobileOne.Tensors;

namespace MobileOne.Nn;

/// <summary>A trainable tensor and the slot its gradient accumulates into during backward.</summary>
public sealed class Parameter
{
    public Parameter(Tensor value)
    {
        Value = value;
    }

    public Tensor Value { get; }

    /// <summary>Allocated on first use by a backward pass; inference never pays for it.</summary>
    public Tensor? Grad { get; set; }

    public int[] Shape => Value.Shape;

    public Tensor EnsureGrad() => Grad ??= new Tensor(Value.Shape, GC.AllocateArray<float>(Value.Length, pinned: true));

    /// <summary>Clears the gradient if one was allocated.</summary>
    public void ZeroGrad() => Grad?.Data.AsSpan().Clear();
}
