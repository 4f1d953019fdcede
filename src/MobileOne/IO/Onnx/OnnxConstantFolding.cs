using Onnx;

namespace MobileOne.IO.Onnx;

/// <summary>
/// Evaluation of the small constant tensors exporters compute instead of writing them out: PyTorch exports F.pad's
/// pads as ConstantOfShape, Concat, Reshape, Slice (step -1), Transpose, Reshape and Cast of constants, which its
/// constant folding leaves in the file. Each operator here is evaluated on constants only; on anything else it is
/// refused by name.
/// </summary>
internal sealed partial class OnnxTranslation
{
    private const string ConstantsOnly = "computes on a value that is not a constant; the importer evaluates it only on constants (shape arithmetic such as PyTorch's pads)";

    /// <summary>Most elements of a tensor the importer computes (shape arithmetic is a handful).</summary>
    private const int MaxComputedElements = 1 << 20;

    /// <summary>A tensor of the shape in input 0 filled with the one element of the 'value' attribute (float 0 without it).</summary>
    private ConstantValue ConstantOfShape(NodeProto node, string name)
    {
        var shape = Input(node, 0) as ConstantValue ?? throw Refused(node, name, ConstantsOnly);
        var value = node.Attribute.FirstOrDefault(a => a.Name == "value")?.T is { } t ? ReadTensor(t, name) : new ConstantValue([0f], [1]);
        if (value.Data.Length != 1)
        {
            throw Refused(node, name, $"has a 'value' of {value.Data.Length} elements; it is one element");
        }

        int[] dims = [.. shape.Data.Select(d => d >= 0 && d <= MaxComputedElements ? (int)d : throw Refused(node, name, $"has the shape [{string.Join(", ", shape.Data)}]; small non-negative constant shapes are evaluated"))];
        var data = new float[Elements(node, name, dims)];
        float fill = value.Data[0];
        Array.Fill(data, fill);
        return new ConstantValue(data, dims);
    }

    /// <summary>Reshape of a constant; 0 copies the input's dimension and -1 takes what is left (allowzero 0).</summary>
    private ConstantValue ReshapeConstant(NodeProto node, string name, ConstantValue data, ConstantValue target)
    {
        long[] dims = [.. target.Data.Select((d, i) => d == 0 && i < data.Shape.Length ? data.Shape[i] : Index(d))];
        // Dimensions are at most int.MaxValue and the product stops growing past 2^32 (no array is that long), so it
        // cannot overflow.
        long known = dims.Where(d => d != -1).Aggregate(1L, (a, d) => Math.Min(a * Math.Clamp(d, 0, int.MaxValue), 1L << 32));
        if (dims.Count(d => d == -1) > 1 || dims.Any(d => d < -1 || d > int.MaxValue) || known == 0 || (dims.Contains(-1) ? data.Data.Length % known != 0 : known != data.Data.Length))
        {
            throw Refused(node, name, $"reshapes a constant of {data.Data.Length} elements to [{string.Join(", ", target.Data)}]");
        }

        return new ConstantValue(data.Data, [.. dims.Select(d => (int)(d == -1 ? data.Data.Length / known : d))]);
    }

    /// <summary>Slice of a constant (starts, ends, axes, steps as constant inputs; negative steps walk backwards).</summary>
    private ConstantValue SliceConstant(NodeProto node, string name)
    {
        var data = Input(node, 0) as ConstantValue ?? throw Refused(node, name, ConstantsOnly);
        int rank = data.Shape.Length;
        long[] Optional(int index, Func<int, long> fallback, int count) => node.Input.Count > index && node.Input[index].Length > 0
            ? [.. Constant(node, index, name, "slice input").Data.Select(Index)]
            : [.. Enumerable.Range(0, count).Select(fallback)];
        long[] starts = Optional(1, _ => 0, 0), ends = Optional(2, _ => 0, 0);
        long[] axes = Optional(3, i => i, starts.Length), steps = Optional(4, _ => 1, starts.Length);
        if (ends.Length != starts.Length || axes.Length != starts.Length || steps.Length != starts.Length || steps.Contains(0) || axes.Any(a => a < -rank || a >= rank))
        {
            throw Refused(node, name, "has starts, ends, axes and steps that do not match its data");
        }

        // Per axis: the first index read and the step (the whole axis unless sliced).
        var first = new long[rank];
        var step = Enumerable.Repeat(1L, rank).ToArray();
        int[] shape = [.. data.Shape];
        for (int i = 0; i < starts.Length; i++)
        {
            int axis = (int)(axes[i] < 0 ? axes[i] + rank : axes[i]);
            long dim = data.Shape[axis], s = starts[i] < 0 ? starts[i] + dim : starts[i], e = ends[i] < 0 ? ends[i] + dim : ends[i];
            (s, e) = steps[i] > 0 ? (Math.Clamp(s, 0, dim), Math.Clamp(e, 0, dim)) : (Math.Clamp(s, 0, Math.Max(dim - 1, 0)), Math.Clamp(e, -1, dim - 1));
            long count = dim == 0 ? 0 : steps[i] > 0 ? (e - s + steps[i] - 1) / steps[i] : (s - e - steps[i] - 1) / -steps[i];
            (first[axis], step[axis], shape[axis]) = (s, steps[i], (int)Math.Max(0, count));
        }

        var result = new float[shape.Aggregate(1, (a, d) => a * d)];
        var index = new int[rank];
        for (int o = 0; o < result.Length; o++)
        {
            long source = 0;
            for (int d = 0; d < rank; d++)
            {
                source = (source * data.Shape[d]) + first[d] + (index[d] * step[d]);
            }

            result[o] = data.Data[source];
            for (int d = rank - 1; d >= 0 && ++index[d] == shape[d]; d--)
            {
                index[d] = 0;
            }
        }

        return new ConstantValue(result, shape);
    }

    /// <summary>Transpose of a constant (perm as an attribute; reversed axes without it).</summary>
    private ConstantValue TransposeConstant(NodeProto node, string name)
    {
        var data = Input(node, 0) as ConstantValue ?? throw Refused(node, name, ConstantsOnly);
        int rank = data.Shape.Length;
        int[] perm = [.. Ints(node, "perm", [.. Enumerable.Range(0, rank).Reverse().Select(i => (long)i)]).Select(p => (int)p)];
        if (!perm.Order().SequenceEqual(Enumerable.Range(0, rank)))
        {
            throw Refused(node, name, $"has perm [{string.Join(", ", perm)}] for a rank-{rank} constant");
        }

        int[] shape = [.. perm.Select(p => data.Shape[p])];
        var strides = new long[rank];
        for (int d = rank - 1, stride = 1; d >= 0; stride *= data.Shape[d], d--)
        {
            strides[d] = stride;
        }

        var result = new float[data.Data.Length];
        var index = new int[rank];
        for (int o = 0; o < result.Length; o++)
        {
            long source = 0;
            for (int d = 0; d < rank; d++)
            {
                source += index[d] * strides[perm[d]];
            }

            result[o] = data.Data[source];
            for (int d = rank - 1; d >= 0 && ++index[d] == shape[d]; d--)
            {
                index[d] = 0;
            }
        }

        return new ConstantValue(result, shape);
    }

    /// <summary>Cast of a constant: to a floating-point type the values stay, to an integer type they are truncated.</summary>
    private ConstantValue CastConstant(NodeProto node, string name)
    {
        var data = Input(node, 0) as ConstantValue ?? throw Refused(node, name, ConstantsOnly);
        var to = (TensorProto.Types.DataType)Int(node, "to", 0);
        bool floating = to is TensorProto.Types.DataType.Float or TensorProto.Types.DataType.Double or TensorProto.Types.DataType.Float16 or TensorProto.Types.DataType.Bfloat16;
        return floating ? data : data with { Data = [.. data.Data.Select(MathF.Truncate)] };
    }

    /// <summary>Elements of a tensor of shape <paramref name="dims"/>, refused beyond <see cref="MaxComputedElements"/>.</summary>
    private int Elements(NodeProto node, string name, int[] dims)
    {
        long total = 1;
        foreach (int d in dims)
        {
            total = Math.Min(total * d, (long)MaxComputedElements + 1);
        }

        return total <= MaxComputedElements ? (int)total : throw Refused(node, name, $"would compute a [{string.Join(", ", dims)}] tensor; computed constants are small (at most {MaxComputedElements} elements)");
    }

    /// <summary>An index held as a float (int64 constants are read as floats): the int64 extremes exporters write for "to the end" become safely large values.</summary>
    private static long Index(float value) => (long)Math.Clamp((double)value, -(double)(1L << 40), 1L << 40);
}
