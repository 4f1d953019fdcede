using System.Numerics;

namespace MobileOne.Kernels;

/// <summary>Element-wise operations over spans, vectorized with <see cref="Vector{T}"/>.</summary>
public static class Elementwise
{
    public static void Relu(Span<float> x)
    {
        int w = Vector<float>.Count;
        int i = 0;
        for (; i + w <= x.Length; i += w)
        {
            Vector.Max(new Vector<float>(x.Slice(i)), Vector<float>.Zero).CopyTo(x.Slice(i));
        }

        for (; i < x.Length; i++)
        {
            x[i] = MathF.Max(x[i], 0f);
        }
    }

    /// <summary>dst += src.</summary>
    public static void Add(Span<float> dst, ReadOnlySpan<float> src)
    {
        if (src.Length != dst.Length)
        {
            throw new ArgumentException("Spans differ in length.", nameof(src));
        }

        int w = Vector<float>.Count;
        int i = 0;
        for (; i + w <= dst.Length; i += w)
        {
            (new Vector<float>(dst.Slice(i)) + new Vector<float>(src.Slice(i))).CopyTo(dst.Slice(i));
        }

        for (; i < dst.Length; i++)
        {
            dst[i] += src[i];
        }
    }

    public static void AddScalar(Span<float> x, float value)
    {
        int w = Vector<float>.Count;
        var v = new Vector<float>(value);
        int i = 0;
        for (; i + w <= x.Length; i += w)
        {
            (new Vector<float>(x.Slice(i)) + v).CopyTo(x.Slice(i));
        }

        for (; i < x.Length; i++)
        {
            x[i] += value;
        }
    }

    /// <summary>x = x * scale + shift.</summary>
    public static void ScaleShift(Span<float> x, float scale, float shift)
    {
        int w = Vector<float>.Count;
        var vs = new Vector<float>(scale);
        var vb = new Vector<float>(shift);
        int i = 0;
        for (; i + w <= x.Length; i += w)
        {
            Vector.FusedMultiplyAdd(new Vector<float>(x.Slice(i)), vs, vb).CopyTo(x.Slice(i));
        }

        for (; i < x.Length; i++)
        {
            x[i] = MathF.FusedMultiplyAdd(x[i], scale, shift);
        }
    }

    public static void Scale(Span<float> x, float scale)
    {
        int w = Vector<float>.Count;
        var vs = new Vector<float>(scale);
        int i = 0;
        for (; i + w <= x.Length; i += w)
        {
            (new Vector<float>(x.Slice(i)) * vs).CopyTo(x.Slice(i));
        }

        for (; i < x.Length; i++)
        {
            x[i] *= scale;
        }
    }

    public static float Sigmoid(float x) => 1f / (1f + MathF.Exp(-x));

    public static float Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        if (a.Length != b.Length)
        {
            throw new ArgumentException("Spans differ in length.", nameof(b));
        }

        int w = Vector<float>.Count;
        var acc = Vector<float>.Zero;
        int i = 0;
        for (; i + w <= a.Length; i += w)
        {
            acc = Vector.FusedMultiplyAdd(new Vector<float>(a.Slice(i)), new Vector<float>(b.Slice(i)), acc);
        }

        float s = Vector.Sum(acc);
        for (; i < a.Length; i++)
        {
            s = MathF.FusedMultiplyAdd(a[i], b[i], s);
        }

        return s;
    }

    /// <summary>Sum accumulated in double so long planes do not lose precision.</summary>
    public static double Sum(ReadOnlySpan<float> x)
    {
        double s = 0;
        foreach (float v in x)
        {
            s += v;
        }

        return s;
    }
}
