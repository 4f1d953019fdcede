namespace MobileOne.Kernels;

/// <summary>
/// A compile-time integer for generic kernels: with a struct type argument the JIT specializes the method and
/// folds <c>T.Value</c> to a constant, so one source describes every register-tile shape and the unused
/// accumulators and branches disappear from the machine code.
/// </summary>
internal interface IDim
{
    static abstract int Value { get; }
}

internal readonly struct D1 : IDim
{
    public static int Value => 1;
}

internal readonly struct D2 : IDim
{
    public static int Value => 2;
}

internal readonly struct D3 : IDim
{
    public static int Value => 3;
}

internal readonly struct D4 : IDim
{
    public static int Value => 4;
}

internal readonly struct D5 : IDim
{
    public static int Value => 5;
}

internal readonly struct D6 : IDim
{
    public static int Value => 6;
}

internal readonly struct D7 : IDim
{
    public static int Value => 7;
}

internal readonly struct D8 : IDim
{
    public static int Value => 8;
}
