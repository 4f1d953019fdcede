using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace MobileOne.Kernels.Conv;

/// <summary>
/// The handful of vector operations the convolution microkernels need, written once per register width so
/// the kernels themselves are generic: the JIT specializes a generic method for each struct argument and
/// folds every <c>TOps</c> call into the instruction it stands for. <see cref="ScalarOps"/> is a
/// one-lane "vector", which gives the scalar fallback the same loop shape.
/// </summary>
internal interface IVectorOps<TVec>
    where TVec : struct
{
    static abstract int Count { get; }

    /// <summary>Output-channel vectors per GEMM tile: as many as leave room for 6 rows of accumulators.</summary>
    static abstract int MaxColumnVectors { get; }

    static abstract TVec Zero { get; }

    static abstract unsafe TVec Load(float* p);

    static abstract unsafe TVec Broadcast(float* p);

    /// <summary>a * b + c.</summary>
    static abstract TVec MultiplyAdd(TVec a, TVec b, TVec c);

    static abstract TVec Relu(TVec v);

    static abstract unsafe void Store(float* p, TVec v);

    /// <summary>Stores the first <paramref name="count"/> lanes only, so a tile never writes past its channels.</summary>
    static abstract unsafe void StoreFirst(float* p, TVec v, int count);
}

internal readonly struct Vector512Ops : IVectorOps<Vector512<float>>
{
    public static int Count => Vector512<float>.Count;

    // 6 rows x 4 vectors = 24 accumulators + 4 weight vectors + 1 broadcast fit the 32 zmm registers.
    public static int MaxColumnVectors => 4;

    public static Vector512<float> Zero => Vector512<float>.Zero;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe Vector512<float> Load(float* p) => Vector512.Load(p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe Vector512<float> Broadcast(float* p) => Vector512.Create(*p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> MultiplyAdd(Vector512<float> a, Vector512<float> b, Vector512<float> c) => Vector512.FusedMultiplyAdd(a, b, c);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Relu(Vector512<float> v) => Vector512.MaxNative(v, Vector512<float>.Zero);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void Store(float* p, Vector512<float> v) => Vector512.Store(v, p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void StoreFirst(float* p, Vector512<float> v, int count)
    {
        if (Avx512F.IsSupported)
        {
            Vector512<int> mask = Vector512.LessThan(Vector512<int>.Indices, Vector512.Create(count));
            Avx512F.MaskStore(p, mask.AsSingle(), v);
            return;
        }

        for (int i = 0; i < count; i++)
        {
            p[i] = v.GetElement(i);
        }
    }
}

internal readonly struct Vector256Ops : IVectorOps<Vector256<float>>
{
    public static int Count => Vector256<float>.Count;

    // 16 ymm registers: 6 rows x 2 vectors = 12 accumulators + 2 weight vectors + 1 broadcast.
    public static int MaxColumnVectors => 2;

    public static Vector256<float> Zero => Vector256<float>.Zero;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe Vector256<float> Load(float* p) => Vector256.Load(p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe Vector256<float> Broadcast(float* p) => Vector256.Create(*p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> MultiplyAdd(Vector256<float> a, Vector256<float> b, Vector256<float> c) => Vector256.FusedMultiplyAdd(a, b, c);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Relu(Vector256<float> v) => Vector256.MaxNative(v, Vector256<float>.Zero);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void Store(float* p, Vector256<float> v) => Vector256.Store(v, p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void StoreFirst(float* p, Vector256<float> v, int count)
    {
        if (Avx.IsSupported)
        {
            Vector256<int> mask = Vector256.LessThan(Vector256<int>.Indices, Vector256.Create(count));
            Avx.MaskStore(p, mask.AsSingle(), v);
            return;
        }

        for (int i = 0; i < count; i++)
        {
            p[i] = v.GetElement(i);
        }
    }
}

/// <summary>One lane: the fallback where no 256-bit vectors are accelerated, and the channel tail of depthwise tiles.</summary>
internal readonly struct ScalarOps : IVectorOps<float>
{
    public static int Count => 1;

    public static int MaxColumnVectors => 4;

    public static float Zero => 0f;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe float Load(float* p) => *p;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe float Broadcast(float* p) => *p;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float MultiplyAdd(float a, float b, float c) => MathF.FusedMultiplyAdd(a, b, c);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Relu(float v) => v > 0f ? v : 0f;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void Store(float* p, float v) => *p = v;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void StoreFirst(float* p, float v, int count) => *p = v;
}

/// <summary>A compile-time integer: tile rows and column vectors are type arguments so unused accumulators vanish.</summary>
internal interface IConst
{
    static abstract int Value { get; }
}

internal readonly struct N1 : IConst
{
    public static int Value => 1;
}

internal readonly struct N2 : IConst
{
    public static int Value => 2;
}

internal readonly struct N3 : IConst
{
    public static int Value => 3;
}

internal readonly struct N4 : IConst
{
    public static int Value => 4;
}

internal readonly struct N5 : IConst
{
    public static int Value => 5;
}

internal readonly struct N6 : IConst
{
    public static int Value => 6;
}
