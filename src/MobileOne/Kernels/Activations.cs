using System.Runtime.CompilerServices;

namespace MobileOne.Kernels;

/// <summary>
/// The point-wise activations a layer graph can hold. Each is one entry here plus its operator struct below
/// (one formula over ILanes, whose one-lane form is the scalar definition): the engine applies it as an epilogue of whichever kernel
/// produced the values, while they are still in cache.
/// </summary>
public enum ActivationKind
{
    /// <summary>The identity: no activation.</summary>
    None,

    /// <summary>max(x, 0).</summary>
    Relu,

    /// <summary>min(max(x, 0), 6).</summary>
    Relu6,

    /// <summary>x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)), PyTorch's GELU(approximate='none').</summary>
    Gelu,

    /// <summary>0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), PyTorch's GELU(approximate='tanh').</summary>
    GeluTanh,

    /// <summary>x * sigmoid(x) (Swish).</summary>
    Silu,

    /// <summary>x * min(max(x + 3, 0), 6) / 6.</summary>
    HardSwish,

    /// <summary>1 / (1 + exp(-x)).</summary>
    Sigmoid,

    /// <summary>min(max(x + 3, 0), 6) / 6, PyTorch's Hardsigmoid.</summary>
    HardSigmoid,
}

/// <summary>Forward passes of <see cref="ActivationKind"/> over float runs; vector widths chosen once per call.</summary>
public static unsafe class Activations
{
    /// <summary>The activation of one value (the definition every vector path must match).</summary>
    public static float Apply(ActivationKind kind, float x) => kind switch
    {
        ActivationKind.None => x,
        ActivationKind.Relu => ReluOp.Apply<float, Lanes1>(x),
        ActivationKind.Relu6 => Relu6Op.Apply<float, Lanes1>(x),
        ActivationKind.Gelu => GeluOp.Apply<float, Lanes1>(x),
        ActivationKind.GeluTanh => GeluTanhOp.Apply<float, Lanes1>(x),
        ActivationKind.Silu => SiluOp.Apply<float, Lanes1>(x),
        ActivationKind.HardSwish => HardSwishOp.Apply<float, Lanes1>(x),
        ActivationKind.Sigmoid => SigmoidOp.Apply<float, Lanes1>(x),
        ActivationKind.HardSigmoid => HardSigmoidOp.Apply<float, Lanes1>(x),
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, $"Unknown activation {(int)kind}."),
    };

    /// <summary>x[i] = f(x[i]) for <paramref name="count"/> floats (in place).</summary>
    public static void Apply(ActivationKind kind, float* x, long count) => Apply(kind, x, count, Lanes.Current);

    /// <summary><see cref="Apply(ActivationKind, float*, long)"/> at the widths of <paramref name="isa"/>.</summary>
    internal static void Apply(ActivationKind kind, float* x, long count, Isa isa)
    {
        switch (kind)
        {
            case ActivationKind.None:
                return;
            case ActivationKind.Relu:
                Run<ReluOp>(x, count, isa);
                return;
            case ActivationKind.Relu6:
                Run<Relu6Op>(x, count, isa);
                return;
            case ActivationKind.Gelu:
                Run<GeluOp>(x, count, isa);
                return;
            case ActivationKind.GeluTanh:
                Run<GeluTanhOp>(x, count, isa);
                return;
            case ActivationKind.Silu:
                Run<SiluOp>(x, count, isa);
                return;
            case ActivationKind.HardSwish:
                Run<HardSwishOp>(x, count, isa);
                return;
            case ActivationKind.Sigmoid:
                Run<SigmoidOp>(x, count, isa);
                return;
            case ActivationKind.HardSigmoid:
                Run<HardSigmoidOp>(x, count, isa);
                return;
            default:
                throw new ArgumentOutOfRangeException(nameof(kind), kind, $"Unknown activation {(int)kind}.");
        }
    }

    /// <summary>In-place activation of a span.</summary>
    public static void Apply(ActivationKind kind, Span<float> x)
    {
        fixed (float* p = x)
        {
            Apply(kind, p, x.Length);
        }
    }

    /// <summary>
    /// Applies <paramref name="kind"/> to <paramref name="pixels"/> rows of <paramref name="channels"/> values
    /// spaced <paramref name="stride"/> apart (NHWC with padded channels: the padding is left as it is).
    /// </summary>
    public static void ApplyRows(ActivationKind kind, float* x, long pixels, nint stride, int channels) =>
        ApplyRows(kind, x, pixels, stride, channels, Lanes.Current);

    /// <summary><see cref="ApplyRows(ActivationKind, float*, long, nint, int)"/> at the widths of <paramref name="isa"/>.</summary>
    internal static void ApplyRows(ActivationKind kind, float* x, long pixels, nint stride, int channels, Isa isa)
    {
        if (kind == ActivationKind.None)
        {
            return;
        }

        if (stride == channels)
        {
            Apply(kind, x, pixels * channels, isa);
            return;
        }

        for (long p = 0; p < pixels; p++)
        {
            Apply(kind, x + (p * stride), channels, isa);
        }
    }

    private static void Run<TOp>(float* x, long count, Isa isa)
        where TOp : struct, IActivationOp
    {
        // Lanes.Run takes int counts: whole activations of any size go through in int-sized pieces.
        for (long start = 0; start < count; start += int.MaxValue)
        {
            var loop = new ActivationLoop<TOp>(x + start);
            Lanes.Run(ref loop, (int)Math.Min(int.MaxValue, count - start), isa);
        }
    }

    private readonly struct ActivationLoop<TOp>(float* x) : IWidthLoop
        where TOp : struct, IActivationOp
    {
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public int Run<TV, TL>(int i, int n)
            where TV : struct
            where TL : struct, ILanes<TV>
        {
            for (; i + TL.Count <= n; i += TL.Count)
            {
                TL.Store(x + i, TOp.Apply<TV, TL>(TL.Load(x + i)));
            }

            return i;
        }
    }

    /// <summary>
    /// One activation, written once over <see cref="ILanes{TV}"/>: the scalar definition is its one-lane form, so
    /// every width computes the same formula and agrees to rounding.
    /// </summary>
    private interface IActivationOp
    {
        static abstract TV Apply<TV, TL>(TV x)
            where TV : struct
            where TL : struct, ILanes<TV>;
    }

    /// <summary>max(x, 0), IEEE: a NaN stays NaN (as PyTorch's relu).</summary>
    private readonly struct ReluOp : IActivationOp
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static TV Apply<TV, TL>(TV x)
            where TV : struct
            where TL : struct, ILanes<TV>
            => TL.Max(x, TL.Zero);
    }

    private readonly struct Relu6Op : IActivationOp
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static TV Apply<TV, TL>(TV x)
            where TV : struct
            where TL : struct, ILanes<TV>
            => TL.Min(TL.Max(x, TL.Zero), TL.Splat(6f));
    }

    private readonly struct HardSigmoidOp : IActivationOp
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static TV Apply<TV, TL>(TV x)
            where TV : struct
            where TL : struct, ILanes<TV>
            => TL.Divide(Relu6Op.Apply<TV, TL>(TL.Add(x, TL.Splat(3f))), TL.Splat(6f));
    }

    private readonly struct HardSwishOp : IActivationOp
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static TV Apply<TV, TL>(TV x)
            where TV : struct
            where TL : struct, ILanes<TV>
            => TL.Multiply(x, HardSigmoidOp.Apply<TV, TL>(x));
    }

    private readonly struct SigmoidOp : IActivationOp
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static TV Apply<TV, TL>(TV x)
            where TV : struct
            where TL : struct, ILanes<TV>
        {
            TV one = TL.Splat(1f);
            return TL.Divide(one, TL.Add(one, TL.Exp(TL.Subtract(TL.Zero, x))));
        }
    }

    private readonly struct SiluOp : IActivationOp
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static TV Apply<TV, TL>(TV x)
            where TV : struct
            where TL : struct, ILanes<TV>
            => TL.Multiply(x, SigmoidOp.Apply<TV, TL>(x));
    }

    /// <summary>tanh(z) = 1 - 2 / (exp(2z) + 1): exact limits at both ends (exp overflows to +inf, or underflows to 0).</summary>
    private readonly struct GeluTanhOp : IActivationOp
    {
        private const float C = 0.7978845608028654f; // sqrt(2 / pi)
        private const float A = 0.044715f;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static TV Apply<TV, TL>(TV x)
            where TV : struct
            where TL : struct, ILanes<TV>
        {
            TV one = TL.Splat(1f);
            TV cube = TL.Multiply(TL.Multiply(TL.Multiply(TL.Splat(A), x), x), x);
            TV z = TL.Multiply(TL.Splat(C), TL.Add(x, cube));
            TV tanh = TL.Subtract(one, TL.Divide(TL.Splat(2f), TL.Add(TL.Exp(TL.Add(z, z)), one)));
            return TL.Multiply(TL.Multiply(TL.Splat(0.5f), x), TL.Add(one, tanh));
        }
    }

    /// <summary>
    /// erf by Abramowitz and Stegun 7.1.26 (absolute error below 1.5e-7, under float32's resolution near 1):
    /// erf(|u|) = 1 - (a1 t + ... + a5 t^5) exp(-u^2), t = 1 / (1 + p |u|); odd in u.
    /// </summary>
    private readonly struct GeluOp : IActivationOp
    {
        private const float InvSqrt2 = 0.70710678118654752f;
        private const float P = 0.3275911f;
        private const float A1 = 0.254829592f;
        private const float A2 = -0.284496736f;
        private const float A3 = 1.421413741f;
        private const float A4 = -1.453152027f;
        private const float A5 = 1.061405429f;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static TV Apply<TV, TL>(TV x)
            where TV : struct
            where TL : struct, ILanes<TV>
        {
            TV one = TL.Splat(1f);
            TV u = TL.Multiply(TL.Abs(x), TL.Splat(InvSqrt2));
            TV t = TL.Divide(one, TL.Add(one, TL.Multiply(TL.Splat(P), u)));
            TV poly = TL.Add(TL.Multiply(TL.Splat(A5), t), TL.Splat(A4));
            poly = TL.Add(TL.Multiply(poly, t), TL.Splat(A3));
            poly = TL.Add(TL.Multiply(poly, t), TL.Splat(A2));
            poly = TL.Add(TL.Multiply(poly, t), TL.Splat(A1));
            poly = TL.Multiply(poly, t);

            // erf(|u|) is at least 0, so the sign of x makes it odd.
            TV erf = TL.CopySign(TL.Subtract(one, TL.Multiply(poly, TL.Exp(TL.Subtract(TL.Zero, TL.Multiply(u, u))))), x);
            return TL.Multiply(TL.Multiply(TL.Splat(0.5f), x), TL.Add(one, erf));
        }
    }
}
