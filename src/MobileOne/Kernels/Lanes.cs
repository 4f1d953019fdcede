using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace MobileOne.Kernels;

/// <summary>
/// The instruction set the training kernels use, and so their SIMD widths. A loop over n floats runs Vector512
/// chunks, then Vector256, Vector128 and scalar ones for what is left (see <see cref="ILanes{TV}"/>), each width
/// where the instruction set has it, so short rows such as 7 or 14 pixels still run vectorized.
/// </summary>
public static class Lanes
{
    private static IsaLevel level = IsaLevel.Auto;

    /// <summary>
    /// For tests and benchmarks: the instruction set of the training kernels; <see cref="IsaLevel.Auto"/> (the
    /// default) is the best the CPU runs. Setting one the CPU lacks throws <see cref="NotSupportedException"/>.
    /// </summary>
    public static IsaLevel Level
    {
        get => level;
        set
        {
            Current = Isa.Resolve(value, "Lanes.Level", nameof(value));
            level = value;
        }
    }

    /// <summary>The widest vectors the training kernels use: "Vector512", "Vector256", "Vector128" or "Scalar".</summary>
    public static string WidestVector => Current.WidestVector;

    /// <summary><see cref="Level"/> resolved.</summary>
    internal static Isa Current { get; private set; } = Isa.Best;

    internal static bool Use512 => Current >= Isa.Avx512;

    internal static bool Use256 => Current >= Isa.Avx2;

    internal static bool Use128 => Current >= Isa.Simd128;

    /// <summary>
    /// Runs <paramref name="loop"/> over [0, <paramref name="count"/>) at every width <see cref="Level"/> has, widest
    /// first, each width continuing where the last stopped, then one lane at a time: the one width chain of the
    /// width-generic loops, so a short run such as 7 or 14 values still runs vectorized.
    /// </summary>
    internal static void Run<TLoop>(ref TLoop loop, int count)
        where TLoop : struct, IWidthLoop => Run(ref loop, count, Current);

    /// <summary>
    /// <see cref="Run{TLoop}(ref TLoop, int)"/> at the widths of <paramref name="isa"/>: the engine passes the
    /// instruction set its model was compiled for, so one option governs all of a model's kernels.
    /// </summary>
    internal static void Run<TLoop>(ref TLoop loop, int count, Isa isa)
        where TLoop : struct, IWidthLoop
    {
        int i = 0;
        if (isa >= Isa.Avx512)
        {
            i = loop.Run<Vector512<float>, Lanes512>(i, count);
        }

        if (isa >= Isa.Avx2)
        {
            i = loop.Run<Vector256<float>, Lanes256>(i, count);
        }

        if (isa >= Isa.Simd128)
        {
            i = loop.Run<Vector128<float>, Lanes128>(i, count);
        }

        loop.Run<float, Lanes1>(i, count);
    }

    /// <summary>The width chain of <see cref="Run{TLoop}(ref TLoop, int)"/> for loops that compute in double (<see cref="IDoubleLanes{TD}"/>).</summary>
    internal static void RunDouble<TLoop>(ref TLoop loop, int count)
        where TLoop : struct, IDoubleWidthLoop
    {
        int i = 0;
        if (Use512)
        {
            i = loop.Run<Vector512<double>, Doubles512>(i, count);
        }

        if (Use256)
        {
            i = loop.Run<Vector256<double>, Doubles256>(i, count);
        }

        if (Use128)
        {
            i = loop.Run<Vector128<double>, Doubles128>(i, count);
        }

        loop.Run<double, Doubles1>(i, count);
    }
}

/// <summary>
/// A loop body written once against <see cref="ILanes{TV}"/> for <see cref="Lanes.Run{TLoop}(ref TLoop, int)"/>: it processes whole
/// vectors of <c>TL</c> from <c>start</c> while they fit before <c>end</c> and returns where it
/// stopped. Its operands are fields of the struct; state carried between widths (a partial sum) too.
/// </summary>
internal interface IWidthLoop
{
    int Run<TV, TL>(int start, int end)
        where TV : struct
        where TL : struct, ILanes<TV>;
}

/// <summary>
/// The float operations of one SIMD width, as static members of a struct so generic kernels are compiled once
/// per width with every call inlined (the operator-struct pattern of System.Numerics.Tensors): the one SIMD
/// abstraction of the width-generic kernels (training passes, general convolutions, the engine's generic
/// depthwise kernel). <see cref="Lanes1"/> is a one-lane "vector", which gives the scalar fallback and the tails
/// the same loop shape.
/// </summary>
internal unsafe interface ILanes<TV>
    where TV : struct
{
    static abstract int Count { get; }

    /// <summary>
    /// Output-channel vectors per register tile of the general convolutions' GEMM microkernel: as many as leave
    /// room for 6 rows of accumulators, the weight vectors and one broadcast.
    /// </summary>
    static abstract int MaxColumnVectors { get; }

    static abstract TV Zero { get; }

    static abstract TV Splat(float value);

    static abstract TV Load(float* p);

    static abstract void Store(float* p, TV value);

    /// <summary>Stores the first <paramref name="count"/> lanes only (so a tile never writes past its channels).</summary>
    static abstract void StoreFirst(float* p, TV value, int count);

    static abstract TV Add(TV a, TV b);

    static abstract TV Subtract(TV a, TV b);

    static abstract TV Multiply(TV a, TV b);

    /// <summary>a * b + c with one rounding.</summary>
    static abstract TV Fma(TV a, TV b, TV c);

    /// <summary>IEEE maximum (NaN propagates, -0 &lt; +0), as <see cref="MathF.Max(float, float)"/>.</summary>
    static abstract TV Max(TV a, TV b);

    /// <summary>
    /// v, or <paramref name="lower"/> where v is smaller; a NaN v stays NaN. One hardware max with the operands in
    /// this order (x86's max returns its second operand when either is NaN).
    /// </summary>
    static abstract TV AtLeast(TV lower, TV v);

    /// <summary>max(v, 0) in one instruction; a NaN stays NaN, as PyTorch's relu gives it.</summary>
    static abstract TV Relu(TV v);

    /// <summary>a where mask is positive (greater than zero), else zero.</summary>
    static abstract TV WherePositive(TV mask, TV a);

    static abstract float Sum(TV a);

    static abstract TV Divide(TV a, TV b);

    /// <summary>IEEE minimum (NaN propagates), as <see cref="MathF.Min(float, float)"/>.</summary>
    static abstract TV Min(TV a, TV b);

    static abstract TV Abs(TV a);

    /// <summary>|a| with the sign of <paramref name="sign"/>.</summary>
    static abstract TV CopySign(TV a, TV sign);

    /// <summary>e^a (the runtime's vector exponential: within a few ulp of <see cref="MathF.Exp"/>).</summary>
    static abstract TV Exp(TV a);
}

internal unsafe struct Lanes512 : ILanes<Vector512<float>>
{
    public static int Count => 16;

    // 6 rows x 4 vectors = 24 accumulators + 4 weight vectors + 1 broadcast fit the 32 zmm registers.
    public static int MaxColumnVectors => 4;

    public static Vector512<float> Zero => Vector512<float>.Zero;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Splat(float value) => Vector512.Create(value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Load(float* p) => Vector512.Load(p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store(float* p, Vector512<float> value) => value.Store(p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void StoreFirst(float* p, Vector512<float> value, int count)
    {
        if (Avx512F.IsSupported)
        {
            Vector512<int> mask = Vector512.LessThan(Vector512<int>.Indices, Vector512.Create(count));
            Avx512F.MaskStore(p, mask.AsSingle(), value);
            return;
        }

        for (int i = 0; i < count; i++)
        {
            p[i] = value.GetElement(i);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Add(Vector512<float> a, Vector512<float> b) => a + b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Subtract(Vector512<float> a, Vector512<float> b) => a - b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Multiply(Vector512<float> a, Vector512<float> b) => a * b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Fma(Vector512<float> a, Vector512<float> b, Vector512<float> c) => Vector512.FusedMultiplyAdd(a, b, c);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Max(Vector512<float> a, Vector512<float> b) => Vector512.Max(a, b);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> AtLeast(Vector512<float> lower, Vector512<float> v) => Vector512.MaxNative(lower, v);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Relu(Vector512<float> v) => Vector512.MaxNative(Vector512<float>.Zero, v);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> WherePositive(Vector512<float> mask, Vector512<float> a) =>
        Vector512.ConditionalSelect(Vector512.GreaterThan(mask, Vector512<float>.Zero), a, Vector512<float>.Zero);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Sum(Vector512<float> a) => Vector512.Sum(a);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Divide(Vector512<float> a, Vector512<float> b) => a / b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Min(Vector512<float> a, Vector512<float> b) => Vector512.Min(a, b);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Abs(Vector512<float> a) => Vector512.Abs(a);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> CopySign(Vector512<float> a, Vector512<float> sign) => Vector512.CopySign(a, sign);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Exp(Vector512<float> a) => Vector512.Exp(a);
}

internal unsafe struct Lanes256 : ILanes<Vector256<float>>
{
    public static int Count => 8;

    // 16 ymm registers: 6 rows x 2 vectors = 12 accumulators + 2 weight vectors + 1 broadcast.
    public static int MaxColumnVectors => 2;

    public static Vector256<float> Zero => Vector256<float>.Zero;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Splat(float value) => Vector256.Create(value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Load(float* p) => Vector256.Load(p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store(float* p, Vector256<float> value) => value.Store(p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void StoreFirst(float* p, Vector256<float> value, int count)
    {
        if (Avx.IsSupported)
        {
            Vector256<int> mask = Vector256.LessThan(Vector256<int>.Indices, Vector256.Create(count));
            Avx.MaskStore(p, mask.AsSingle(), value);
            return;
        }

        for (int i = 0; i < count; i++)
        {
            p[i] = value.GetElement(i);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Add(Vector256<float> a, Vector256<float> b) => a + b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Subtract(Vector256<float> a, Vector256<float> b) => a - b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Multiply(Vector256<float> a, Vector256<float> b) => a * b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Fma(Vector256<float> a, Vector256<float> b, Vector256<float> c) => Vector256.FusedMultiplyAdd(a, b, c);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Max(Vector256<float> a, Vector256<float> b) => Vector256.Max(a, b);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> AtLeast(Vector256<float> lower, Vector256<float> v) => Vector256.MaxNative(lower, v);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Relu(Vector256<float> v) => Vector256.MaxNative(Vector256<float>.Zero, v);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> WherePositive(Vector256<float> mask, Vector256<float> a) =>
        Vector256.ConditionalSelect(Vector256.GreaterThan(mask, Vector256<float>.Zero), a, Vector256<float>.Zero);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Sum(Vector256<float> a) => Vector256.Sum(a);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Divide(Vector256<float> a, Vector256<float> b) => a / b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Min(Vector256<float> a, Vector256<float> b) => Vector256.Min(a, b);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Abs(Vector256<float> a) => Vector256.Abs(a);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> CopySign(Vector256<float> a, Vector256<float> sign) => Vector256.CopySign(a, sign);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Exp(Vector256<float> a) => Vector256.Exp(a);
}

internal unsafe struct Lanes128 : ILanes<Vector128<float>>
{
    public static int Count => 4;

    // 16 xmm registers, as for Vector256.
    public static int MaxColumnVectors => 2;

    public static Vector128<float> Zero => Vector128<float>.Zero;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Splat(float value) => Vector128.Create(value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Load(float* p) => Vector128.Load(p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store(float* p, Vector128<float> value) => value.Store(p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void StoreFirst(float* p, Vector128<float> value, int count)
    {
        for (int i = 0; i < count; i++)
        {
            p[i] = value.GetElement(i);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Add(Vector128<float> a, Vector128<float> b) => a + b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Subtract(Vector128<float> a, Vector128<float> b) => a - b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Multiply(Vector128<float> a, Vector128<float> b) => a * b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Fma(Vector128<float> a, Vector128<float> b, Vector128<float> c) => Vector128.FusedMultiplyAdd(a, b, c);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Max(Vector128<float> a, Vector128<float> b) => Vector128.Max(a, b);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> AtLeast(Vector128<float> lower, Vector128<float> v) => Vector128.MaxNative(lower, v);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Relu(Vector128<float> v) => Vector128.MaxNative(Vector128<float>.Zero, v);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> WherePositive(Vector128<float> mask, Vector128<float> a) =>
        Vector128.ConditionalSelect(Vector128.GreaterThan(mask, Vector128<float>.Zero), a, Vector128<float>.Zero);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Sum(Vector128<float> a) => Vector128.Sum(a);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Divide(Vector128<float> a, Vector128<float> b) => a / b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Min(Vector128<float> a, Vector128<float> b) => Vector128.Min(a, b);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Abs(Vector128<float> a) => Vector128.Abs(a);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> CopySign(Vector128<float> a, Vector128<float> sign) => Vector128.CopySign(a, sign);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Exp(Vector128<float> a) => Vector128.Exp(a);
}

internal unsafe struct Lanes1 : ILanes<float>
{
    public static int Count => 1;

    public static int MaxColumnVectors => 4;

    public static float Zero => 0f;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Splat(float value) => value;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Load(float* p) => *p;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store(float* p, float value) => *p = value;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void StoreFirst(float* p, float value, int count) => *p = value;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Add(float a, float b) => a + b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Subtract(float a, float b) => a - b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Multiply(float a, float b) => a * b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Fma(float a, float b, float c) => MathF.FusedMultiplyAdd(a, b, c);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Max(float a, float b) => MathF.Max(a, b);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float AtLeast(float lower, float v) => v < lower ? lower : v;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Relu(float v) => v < 0f ? 0f : v;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float WherePositive(float mask, float a) => mask > 0f ? a : 0f;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Sum(float a) => a;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Divide(float a, float b) => a / b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Min(float a, float b) => MathF.Min(a, b);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Abs(float a) => MathF.Abs(a);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float CopySign(float a, float sign) => MathF.CopySign(a, sign);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Exp(float a) => MathF.Exp(a);
}
