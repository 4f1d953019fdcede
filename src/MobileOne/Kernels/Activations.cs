using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace MobileOne.Kernels;

/// <summary>
/// The point-wise activations a layer graph can hold. Each is one entry here plus its operator struct below
/// (scalar and vector forms of the same formula): the engine applies it as an epilogue of whichever kernel
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
        ActivationKind.Relu => ReluOp.Apply(x),
        ActivationKind.Relu6 => Relu6Op.Apply(x),
        ActivationKind.Gelu => GeluOp.Apply(x),
        ActivationKind.GeluTanh => GeluTanhOp.Apply(x),
        ActivationKind.Silu => SiluOp.Apply(x),
        ActivationKind.HardSwish => HardSwishOp.Apply(x),
        ActivationKind.Sigmoid => SigmoidOp.Apply(x),
        ActivationKind.HardSigmoid => HardSigmoidOp.Apply(x),
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, $"Unknown activation {(int)kind}."),
    };

    /// <summary>x[i] = f(x[i]) for <paramref name="count"/> floats (in place).</summary>
    public static void Apply(ActivationKind kind, float* x, long count)
    {
        switch (kind)
        {
            case ActivationKind.None:
                return;
            case ActivationKind.Relu:
                Run<ReluOp>(x, count);
                return;
            case ActivationKind.Relu6:
                Run<Relu6Op>(x, count);
                return;
            case ActivationKind.Gelu:
                Run<GeluOp>(x, count);
                return;
            case ActivationKind.GeluTanh:
                Run<GeluTanhOp>(x, count);
                return;
            case ActivationKind.Silu:
                Run<SiluOp>(x, count);
                return;
            case ActivationKind.HardSwish:
                Run<HardSwishOp>(x, count);
                return;
            case ActivationKind.Sigmoid:
                Run<SigmoidOp>(x, count);
                return;
            case ActivationKind.HardSigmoid:
                Run<HardSigmoidOp>(x, count);
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
    public static void ApplyRows(ActivationKind kind, float* x, long pixels, nint stride, int channels)
    {
        if (kind == ActivationKind.None)
        {
            return;
        }

        if (stride == channels)
        {
            Apply(kind, x, pixels * channels);
            return;
        }

        for (long p = 0; p < pixels; p++)
        {
            Apply(kind, x + (p * stride), channels);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Run<TOp>(float* x, long count)
        where TOp : struct, IActivationOp
    {
        long i = 0;
        if (Lanes.Use512)
        {
            for (; i <= count - 16; i += 16)
            {
                Vector512.Store(TOp.Apply(Vector512.Load(x + i)), x + i);
            }
        }

        if (Lanes.Use256)
        {
            for (; i <= count - 8; i += 8)
            {
                Vector256.Store(TOp.Apply(Vector256.Load(x + i)), x + i);
            }
        }

        for (; i < count; i++)
        {
            x[i] = TOp.Apply(x[i]);
        }
    }

    /// <summary>One activation in scalar and vector form (the same formula, so every width agrees to rounding).</summary>
    private interface IActivationOp
    {
        static abstract float Apply(float x);

        static abstract Vector512<float> Apply(Vector512<float> x);

        static abstract Vector256<float> Apply(Vector256<float> x);
    }

    private readonly struct ReluOp : IActivationOp
    {
        public static float Apply(float x) => x > 0f ? x : 0f;

        public static Vector512<float> Apply(Vector512<float> x) => Vector512.Max(x, Vector512<float>.Zero);

        public static Vector256<float> Apply(Vector256<float> x) => Vector256.Max(x, Vector256<float>.Zero);
    }

    private readonly struct Relu6Op : IActivationOp
    {
        public static float Apply(float x) => Math.Clamp(x, 0f, 6f);

        public static Vector512<float> Apply(Vector512<float> x) => Vector512.Min(Vector512.Max(x, Vector512<float>.Zero), Vector512.Create(6f));

        public static Vector256<float> Apply(Vector256<float> x) => Vector256.Min(Vector256.Max(x, Vector256<float>.Zero), Vector256.Create(6f));
    }

    private readonly struct HardSigmoidOp : IActivationOp
    {
        public static float Apply(float x) => Math.Clamp(x + 3f, 0f, 6f) / 6f;

        public static Vector512<float> Apply(Vector512<float> x) => Relu6Op.Apply(x + Vector512.Create(3f)) / Vector512.Create(6f);

        public static Vector256<float> Apply(Vector256<float> x) => Relu6Op.Apply(x + Vector256.Create(3f)) / Vector256.Create(6f);
    }

    private readonly struct HardSwishOp : IActivationOp
    {
        public static float Apply(float x) => x * HardSigmoidOp.Apply(x);

        public static Vector512<float> Apply(Vector512<float> x) => x * HardSigmoidOp.Apply(x);

        public static Vector256<float> Apply(Vector256<float> x) => x * HardSigmoidOp.Apply(x);
    }

    private readonly struct SigmoidOp : IActivationOp
    {
        public static float Apply(float x) => 1f / (1f + MathF.Exp(-x));

        public static Vector512<float> Apply(Vector512<float> x) => Vector512<float>.One / (Vector512<float>.One + Vector512.Exp(-x));

        public static Vector256<float> Apply(Vector256<float> x) => Vector256<float>.One / (Vector256<float>.One + Vector256.Exp(-x));
    }

    private readonly struct SiluOp : IActivationOp
    {
        public static float Apply(float x) => x * SigmoidOp.Apply(x);

        public static Vector512<float> Apply(Vector512<float> x) => x * SigmoidOp.Apply(x);

        public static Vector256<float> Apply(Vector256<float> x) => x * SigmoidOp.Apply(x);
    }

    /// <summary>tanh(z) = 1 - 2 / (exp(2z) + 1): exact limits at both ends (exp overflows to +inf, or underflows to 0).</summary>
    private readonly struct GeluTanhOp : IActivationOp
    {
        private const float C = 0.7978845608028654f; // sqrt(2 / pi)
        private const float A = 0.044715f;

        public static float Apply(float x)
        {
            float z = C * (x + (A * x * x * x));
            return 0.5f * x * (1f + MathF.Tanh(z));
        }

        public static Vector512<float> Apply(Vector512<float> x)
        {
            var z = Vector512.Create(C) * (x + (Vector512.Create(A) * x * x * x));
            var tanh = Vector512<float>.One - (Vector512.Create(2f) / (Vector512.Exp(z + z) + Vector512<float>.One));
            return Vector512.Create(0.5f) * x * (Vector512<float>.One + tanh);
        }

        public static Vector256<float> Apply(Vector256<float> x)
        {
            var z = Vector256.Create(C) * (x + (Vector256.Create(A) * x * x * x));
            var tanh = Vector256<float>.One - (Vector256.Create(2f) / (Vector256.Exp(z + z) + Vector256<float>.One));
            return Vector256.Create(0.5f) * x * (Vector256<float>.One + tanh);
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

        public static float Apply(float x)
        {
            float u = MathF.Abs(x) * InvSqrt2;
            float t = 1f / (1f + (P * u));
            float poly = ((((((((A5 * t) + A4) * t) + A3) * t) + A2) * t) + A1) * t;
            float erf = 1f - (poly * MathF.Exp(-u * u));
            return 0.5f * x * (1f + (x < 0 ? -erf : erf));
        }

        public static Vector512<float> Apply(Vector512<float> x)
        {
            var u = Vector512.Abs(x) * Vector512.Create(InvSqrt2);
            var t = Vector512<float>.One / (Vector512<float>.One + (Vector512.Create(P) * u));
            var poly = ((((((((Vector512.Create(A5) * t) + Vector512.Create(A4)) * t) + Vector512.Create(A3)) * t) + Vector512.Create(A2)) * t) + Vector512.Create(A1)) * t;
            var erf = Vector512<float>.One - (poly * Vector512.Exp(-(u * u)));
            var signed = Vector512.ConditionalSelect(Vector512.LessThan(x, Vector512<float>.Zero), -erf, erf);
            return Vector512.Create(0.5f) * x * (Vector512<float>.One + signed);
        }

        public static Vector256<float> Apply(Vector256<float> x)
        {
            var u = Vector256.Abs(x) * Vector256.Create(InvSqrt2);
            var t = Vector256<float>.One / (Vector256<float>.One + (Vector256.Create(P) * u));
            var poly = ((((((((Vector256.Create(A5) * t) + Vector256.Create(A4)) * t) + Vector256.Create(A3)) * t) + Vector256.Create(A2)) * t) + Vector256.Create(A1)) * t;
            var erf = Vector256<float>.One - (poly * Vector256.Exp(-(u * u)));
            var signed = Vector256.ConditionalSelect(Vector256.LessThan(x, Vector256<float>.Zero), -erf, erf);
            return Vector256.Create(0.5f) * x * (Vector256<float>.One + signed);
        }
    }
}
