namespace MobileOne.Tensors;

/// <summary>
/// A dense float32 tensor in row-major order (NCHW for activations, OIHW for convolution weights).
/// The storage is a plain managed array so kernels can take spans of it without copying.
/// </summary>
public sealed class Tensor
{
    public Tensor(params int[] shape)
        : this(shape, new float[CheckedElementCount(shape)])
    {
    }

    public Tensor(int[] shape, float[] data)
    {
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentNullException.ThrowIfNull(data);
        long count = CheckedElementCount(shape);
        if (count != data.Length)
        {
            throw new ArgumentException(
                $"Shape [{string.Join(", ", shape)}] holds {count} elements but the data has {data.Length}.", nameof(data));
        }

        Shape = (int[])shape.Clone();
        Data = data;
    }

    public int[] Shape { get; }

    public float[] Data { get; }

    public int Rank => Shape.Length;

    public int Length => Data.Length;

    public Span<float> Span => Data;

    public int Dim(int axis) => Shape[axis < 0 ? Shape.Length + axis : axis];

    public float this[int i] => Data[i];

    public static Tensor Zeros(params int[] shape) => new(shape);

    /// <summary>A tensor whose storage is not zeroed, for outputs a kernel writes completely.</summary>
    internal static Tensor Uninitialized(params int[] shape) =>
        new(shape, GC.AllocateUninitializedArray<float>(CheckedElementCount(shape)));

    public static Tensor Full(float value, params int[] shape)
    {
        var t = new Tensor(shape);
        t.Data.AsSpan().Fill(value);
        return t;
    }

    public Tensor Clone() => new(Shape, (float[])Data.Clone());

    /// <summary>Same storage, another shape with the same element count.</summary>
    public Tensor Reshape(params int[] shape) => new(shape, Data);

    public string ShapeString => FormatShape(Shape);

    public static string FormatShape(IReadOnlyList<int> shape) => "[" + string.Join(", ", shape) + "]";

    public bool HasShape(params int[] shape) => Shape.AsSpan().SequenceEqual(shape);

    public override string ToString() => $"Tensor{ShapeString}";

    private static int CheckedElementCount(int[] shape)
    {
        ArgumentNullException.ThrowIfNull(shape);
        long count = 1;
        foreach (int d in shape)
        {
            if (d < 0)
            {
                throw new ArgumentException($"Shape {FormatShape(shape)} has a negative dimension.", nameof(shape));
            }

            count *= d;
            if (count > Array.MaxLength)
            {
                throw new ArgumentException($"Shape {FormatShape(shape)} is too large for one array.", nameof(shape));
            }
        }

        return (int)count;
    }
}
