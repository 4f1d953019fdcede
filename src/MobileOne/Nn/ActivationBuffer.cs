using MobileOne.Tensors;

namespace MobileOne.Nn;

/// <summary>
/// A tensor a module reuses from step to step (outputs, gradients, saved activations), reallocated only when the
/// shape changes. Storage is on the pinned heap, so kernels can hold raw pointers to it, and is not zeroed:
/// every user writes it completely before reading.
/// </summary>
internal sealed class ActivationBuffer
{
    private Tensor? tensor;

    public Tensor Get(params int[] shape)
    {
        if (tensor is null || !tensor.HasShape(shape))
        {
            long count = 1;
            foreach (int d in shape)
            {
                count *= d;
            }

            tensor = new Tensor(shape, GC.AllocateUninitializedArray<float>(checked((int)count), pinned: true));
        }

        return tensor;
    }

    /// <summary>A flat buffer of at least <paramref name="length"/> floats.</summary>
    public float[] GetFlat(long length)
    {
        if (tensor is null || tensor.Length < length)
        {
            tensor = new Tensor([checked((int)length)], GC.AllocateUninitializedArray<float>(checked((int)length), pinned: true));
        }

        return tensor.Data;
    }

    public void Release() => tensor = null;
}
