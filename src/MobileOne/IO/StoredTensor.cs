using System.Buffers.Binary;
using MobileOne.Tensors;

namespace MobileOne.IO;

/// <summary>
/// A tensor as a checkpoint stores it: element type, shape and little-endian bytes.
/// Keeping the raw bytes lets a file be rewritten bit for bit, whatever its dtype.
/// </summary>
public sealed class StoredTensor
{
    /// <summary>A tensor of <paramref name="dtype"/> and <paramref name="shape"/> over its little-endian bytes; the byte count must match.</summary>
    public StoredTensor(DType dtype, int[] shape, byte[] data)
    {
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentNullException.ThrowIfNull(data);
        long expected = ElementCount(shape) * DTypeInfo.SizeOf(dtype);
        if (expected != data.Length)
        {
            throw new ArgumentException(
                $"A {dtype} tensor of shape {Tensor.FormatShape(shape)} needs {expected} bytes, got {data.Length}.", nameof(data));
        }

        DType = dtype;
        Shape = (int[])shape.Clone();
        Data = data;
    }

    /// <summary>Element type as stored.</summary>
    public DType DType { get; }

    /// <summary>Dimensions (empty for a scalar).</summary>
    public int[] Shape { get; }

    /// <summary>The raw little-endian bytes.</summary>
    public byte[] Data { get; }

    /// <summary>Number of elements (the product of <see cref="Shape"/>).</summary>
    public long ElementCount() => ElementCount(Shape);

    /// <summary>Number of elements of <paramref name="shape"/>; throws when it overflows.</summary>
    public static long ElementCount(IReadOnlyList<int> shape)
    {
        long n = 1;
        foreach (int d in shape)
        {
            if (d < 0)
            {
                throw new ArgumentException($"Shape {Tensor.FormatShape(shape)} has a negative dimension.", nameof(shape));
            }

            n = checked(n * d);
        }

        return n;
    }

    /// <summary>Converts floating point data of any stored precision to float32.</summary>
    public Tensor ToTensor()
    {
        var values = new float[ElementCount()];
        ReadOnlySpan<byte> src = Data;
        switch (DType)
        {
            case DType.F32:
                for (int i = 0; i < values.Length; i++)
                {
                    values[i] = BinaryPrimitives.ReadSingleLittleEndian(src.Slice(i * 4));
                }

                break;
            case DType.F64:
                for (int i = 0; i < values.Length; i++)
                {
                    values[i] = (float)BinaryPrimitives.ReadDoubleLittleEndian(src.Slice(i * 8));
                }

                break;
            case DType.F16:
                for (int i = 0; i < values.Length; i++)
                {
                    values[i] = (float)BinaryPrimitives.ReadHalfLittleEndian(src.Slice(i * 2));
                }

                break;
            case DType.BF16:
                for (int i = 0; i < values.Length; i++)
                {
                    uint bits = (uint)BinaryPrimitives.ReadUInt16LittleEndian(src.Slice(i * 2)) << 16;
                    values[i] = BitConverter.UInt32BitsToSingle(bits);
                }

                break;
            default:
                throw new InvalidOperationException($"A {DType} tensor does not hold floating point values.");
        }

        return new Tensor(Shape, values);
    }

    /// <summary>Reads an integer tensor (any integer dtype) as 64-bit values.</summary>
    public long[] ToInt64()
    {
        var values = new long[ElementCount()];
        ReadOnlySpan<byte> src = Data;
        for (int i = 0; i < values.Length; i++)
        {
            values[i] = DType switch
            {
                DType.I64 => BinaryPrimitives.ReadInt64LittleEndian(src.Slice(i * 8)),
                DType.I32 => BinaryPrimitives.ReadInt32LittleEndian(src.Slice(i * 4)),
                DType.I16 => BinaryPrimitives.ReadInt16LittleEndian(src.Slice(i * 2)),
                DType.I8 => (sbyte)src[i],
                DType.U8 or DType.Bool => src[i],
                _ => throw new InvalidOperationException($"A {DType} tensor does not hold integer values."),
            };
        }

        return values;
    }

    /// <summary>Stores a float32 tensor as <paramref name="dtype"/>.</summary>
    public static StoredTensor FromTensor(Tensor tensor, DType dtype = DType.F32)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        int size = DTypeInfo.SizeOf(dtype);
        var bytes = new byte[(long)tensor.Length * size];
        Span<byte> dst = bytes;
        float[] v = tensor.Data;
        switch (dtype)
        {
            case DType.F32:
                for (int i = 0; i < v.Length; i++)
                {
                    BinaryPrimitives.WriteSingleLittleEndian(dst.Slice(i * 4), v[i]);
                }

                break;
            case DType.F64:
                for (int i = 0; i < v.Length; i++)
                {
                    BinaryPrimitives.WriteDoubleLittleEndian(dst.Slice(i * 8), v[i]);
                }

                break;
            case DType.F16:
                for (int i = 0; i < v.Length; i++)
                {
                    BinaryPrimitives.WriteHalfLittleEndian(dst.Slice(i * 2), (Half)v[i]);
                }

                break;
            case DType.BF16:
                for (int i = 0; i < v.Length; i++)
                {
                    BinaryPrimitives.WriteUInt16LittleEndian(dst.Slice(i * 2), FloatToBFloat16(v[i]));
                }

                break;
            default:
                throw new ArgumentException($"Cannot store float values as {dtype}.", nameof(dtype));
        }

        return new StoredTensor(dtype, tensor.Shape, bytes);
    }

    /// <summary>A 0-d I64 tensor (num_batches_tracked).</summary>
    public static StoredTensor FromInt64(long value) =>
        new(DType.I64, [], BitConverter.GetBytes(value));

    // Round to nearest even, as torch does when casting float32 to bfloat16.
    private static ushort FloatToBFloat16(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value))
        {
            return (ushort)((bits >> 16) | 0x40);
        }

        uint rounding = 0x7FFF + ((bits >> 16) & 1);
        return (ushort)((bits + rounding) >> 16);
    }
}
