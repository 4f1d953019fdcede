using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace MobileOne.Kernels;

/// <summary>
/// The double operations of one SIMD width, for loops that keep float32 storage but compute each element in double
/// and round once (the optimizers' updates): <see cref="Count"/> floats load widened and store narrowed. Every
/// operation is element-wise IEEE arithmetic, so a loop gives the same bits at every width.
/// </summary>
internal unsafe interface IDoubleLanes<TD>
    where TD : struct
{
    static abstract int Count { get; }

    static abstract TD Splat(double value);

    /// <summary><see cref="Count"/> floats from <paramref name="p"/>, widened to double.</summary>
    static abstract TD LoadFloats(float* p);

    /// <summary>The lanes rounded to float, stored as <see cref="Count"/> floats at <paramref name="p"/>.</summary>
    static abstract void StoreFloats(float* p, TD value);

    /// <summary><see cref="Count"/> doubles from <paramref name="p"/>.</summary>
    static abstract TD Load(double* p);

    /// <summary>The lanes added, in a fixed order.</summary>
    static abstract double Sum(TD value);

    static abstract TD Add(TD a, TD b);

    static abstract TD Subtract(TD a, TD b);

    static abstract TD Multiply(TD a, TD b);

    static abstract TD Divide(TD a, TD b);

    static abstract TD Sqrt(TD a);
}

/// <summary>A loop body over <see cref="IDoubleLanes{TD}"/> for <see cref="Lanes.RunDouble{TLoop}"/>, as <see cref="IWidthLoop"/> is for floats.</summary>
internal interface IDoubleWidthLoop
{
    int Run<TD, TW>(int start, int end)
        where TD : struct
        where TW : struct, IDoubleLanes<TD>;
}

internal unsafe struct Doubles512 : IDoubleLanes<Vector512<double>>
{
    public static int Count => 8;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<double> Splat(double value) => Vector512.Create(value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<double> LoadFloats(float* p) => Vector512.WidenLower(Vector256.Load(p).ToVector512Unsafe());

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void StoreFloats(float* p, Vector512<double> value) => Vector512.Narrow(value, value).GetLower().Store(p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<double> Load(double* p) => Vector512.Load(p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static double Sum(Vector512<double> value) => Vector512.Sum(value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<double> Add(Vector512<double> a, Vector512<double> b) => a + b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<double> Subtract(Vector512<double> a, Vector512<double> b) => a - b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<double> Multiply(Vector512<double> a, Vector512<double> b) => a * b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<double> Divide(Vector512<double> a, Vector512<double> b) => a / b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<double> Sqrt(Vector512<double> a) => Vector512.Sqrt(a);
}

internal unsafe struct Doubles256 : IDoubleLanes<Vector256<double>>
{
    public static int Count => 4;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<double> Splat(double value) => Vector256.Create(value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<double> LoadFloats(float* p) => Vector256.WidenLower(Vector128.Load(p).ToVector256Unsafe());

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void StoreFloats(float* p, Vector256<double> value) => Vector256.Narrow(value, value).GetLower().Store(p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<double> Load(double* p) => Vector256.Load(p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static double Sum(Vector256<double> value) => Vector256.Sum(value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<double> Add(Vector256<double> a, Vector256<double> b) => a + b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<double> Subtract(Vector256<double> a, Vector256<double> b) => a - b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<double> Multiply(Vector256<double> a, Vector256<double> b) => a * b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<double> Divide(Vector256<double> a, Vector256<double> b) => a / b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<double> Sqrt(Vector256<double> a) => Vector256.Sqrt(a);
}

internal unsafe struct Doubles128 : IDoubleLanes<Vector128<double>>
{
    public static int Count => 2;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<double> Splat(double value) => Vector128.Create(value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<double> LoadFloats(float* p) => Vector128.WidenLower(Vector64.Load(p).ToVector128Unsafe());

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void StoreFloats(float* p, Vector128<double> value) => Vector128.Narrow(value, value).GetLower().Store(p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<double> Load(double* p) => Vector128.Load(p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static double Sum(Vector128<double> value) => Vector128.Sum(value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<double> Add(Vector128<double> a, Vector128<double> b) => a + b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<double> Subtract(Vector128<double> a, Vector128<double> b) => a - b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<double> Multiply(Vector128<double> a, Vector128<double> b) => a * b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<double> Divide(Vector128<double> a, Vector128<double> b) => a / b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<double> Sqrt(Vector128<double> a) => Vector128.Sqrt(a);
}

/// <summary>One double at a time: the scalar definition of every operation, and the tails.</summary>
internal unsafe struct Doubles1 : IDoubleLanes<double>
{
    public static int Count => 1;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static double Splat(double value) => value;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static double LoadFloats(float* p) => *p;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void StoreFloats(float* p, double value) => *p = (float)value;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static double Load(double* p) => *p;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static double Sum(double value) => value;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static double Add(double a, double b) => a + b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static double Subtract(double a, double b) => a - b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static double Multiply(double a, double b) => a * b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static double Divide(double a, double b) => a / b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static double Sqrt(double a) => Math.Sqrt(a);
}
