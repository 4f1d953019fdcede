namespace MobileOne.Tensors;

/// <summary>
/// A dense float32 tensor in row-major order (NCHW for activations, OIHW for convolution weights).
/// The storage is a plain managed array so kernels can take spans of it without copying.
/// </summary>
public sealed class Tensor
{
    /// <summary>A zero tensor of <paramref name="shape"/>.</summary>
    public Tensor(params int[] shape)
        : this(shape, new float[CheckedElementCount(shape)])
    {
    }

    /// <summary>A tensor of <paramref name="shape"/> over <paramref name="data"/> (not copied; the length must match).</summary>
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

    /// <summary>Dimensions, outermost first.</summary>
    public int[] Shape { get; }

    /// <summary>The values, row-major.</summary>
    public float[] Data { get; }

    /// <summary>Number of dimensions.</summary>
    public int Rank => Shape.Length;

    /// <summary>Number of values.</summary>
    public int Length => Data.Length;

    /// <summary>The values as a span.</summary>
    public Span<float> Span => Data;

    /// <summary>Size of dimension <paramref name="axis"/> (negative counts from the end).</summary>
    public int Dim(int axis) => Shape[axis < 0 ? Shape.Length + axis : axis];

    /// <summary>The value at flat index <paramref name="i"/>.</summary>
    public float this[int i] => Data[i];

    /// <summary>A zero tensor of <paramref name="shape"/>.</summary>
    public static Tensor Zeros(params int[] shape) => new(shape);

    /// <summary>A tensor whose storage is not zeroed, for outputs a kernel writes completely.</summary>
    internal static Tensor Uninitialized(params int[] shape) =>
        new(shape, GC.AllocateUninitializedArray<float>(CheckedElementCount(shape)));

    /// <summary>A tensor of <paramref name="shape"/> filled with <paramref name="value"/>.</summary>
    public static Tensor Full(float value, params int[] shape)
    {
        var t = new Tensor(shape);
        t.Data.AsSpan().Fill(value);
        return t;
    }

    /// <summary>A copy with its own data.</summary>
    public Tensor Clone() => new(Shape, (float[])Data.Clone());

    /// <summary>Same storage, another shape with the same element count.</summary>
    public Tensor Reshape(params int[] shape) => new(shape, Data);

    /// <summary>The shape as "[2, 3, 224, 224]".</summary>
    public string ShapeString => FormatShape(Shape);

    /// <paramref name="shape"/> as "[2, 3, 224, 224]".
    public static string FormatShape(IReadOnlyList<int> shape) => "[" + string.Join(", ", shape) + "]";

    /// <summary>Whether the shape is exactly <paramref name="shape"/>.</summary>
    public bool HasShape(params int[] shape) => Shape.AsSpan().SequenceEqual(shape);

    /// <summary>"Tensor[2, 3, 224, 224]".</summary>
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
