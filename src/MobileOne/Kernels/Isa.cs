using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace MobileOne.Kernels;

/// <summary>
/// Instruction set the kernels use (the engine's <c>InferenceOptions.Isa</c>, a general convolution's, the training
/// kernels' <see cref="Lanes.Level"/>); Auto picks the best the CPU supports.
/// </summary>
public enum IsaLevel
{
    /// <summary>The best this CPU runs, chosen once at start-up: AVX-512 where 512-bit vectors are accelerated, else AVX2 with FMA, else scalar (the training kernels also use 128-bit vectors).</summary>
    Auto,
    /// <summary>AVX-512F: Vector512, narrower widths for tails. Asking for it on a CPU without it throws <see cref="NotSupportedException"/>.</summary>
    Avx512,
    /// <summary>AVX2 and FMA: Vector256 (and Vector128 for tails). Asking for it on a CPU without it throws <see cref="NotSupportedException"/>.</summary>
    Avx2,
    /// <summary>No vectors: every kernel's scalar path, on any CPU.</summary>
    Scalar,
}

/// <summary>
/// The instruction set a kernel runs with, ordered by vector width: the one ISA type of every kernel family (the
/// engine's, the general convolutions', the training kernels'). The public option <see cref="IsaLevel"/> maps onto
/// it in one place (<see cref="IsaSupport.Resolve"/>); <c>Isa.Best</c> is picked once, at start-up.
/// </summary>
internal enum Isa
{
    /// <summary>No vectors: every kernel's scalar path.</summary>
    Scalar,

    /// <summary>
    /// 128-bit vectors only (x64 without AVX2, Arm64 AdvSIMD). Only the width-generic training kernels have a
    /// Vector128 path; the engine and the general convolutions run their scalar one (<c>isa.Engine</c>).
    /// </summary>
    Simd128,

    /// <summary>AVX2 and FMA: Vector256 (and Vector128 for the tails of width-generic loops).</summary>
    Avx2,

    /// <summary>AVX-512F: Vector512 (and the narrower widths for tails).</summary>
    Avx512,
}

internal static class IsaSupport
{
    private static readonly Isa BestSupported = Detect();

    extension(Isa)
    {
        /// <summary>
        /// The best instruction set this CPU runs, chosen once at start-up: AVX-512 where the runtime also reports
        /// 512-bit vectors as accelerated (it does not on CPUs that throttle), else AVX2+FMA, else 128-bit vectors
        /// where accelerated, else scalar.
        /// </summary>
        public static Isa Best => BestSupported;

        /// <summary>
        /// The instruction set an option asks for (Auto: <c>Isa.Best</c>). Throws <see cref="ArgumentOutOfRangeException"/>
        /// for an undefined value (naming <paramref name="paramName"/>) and <see cref="NotSupportedException"/> when
        /// the CPU cannot run it; <paramref name="option"/> names the option in the messages.
        /// </summary>
        public static Isa Resolve(IsaLevel level, string option, string paramName)
        {
            Isa isa = level switch
            {
                IsaLevel.Auto => BestSupported,
                IsaLevel.Avx512 => Isa.Avx512,
                IsaLevel.Avx2 => Isa.Avx2,
                IsaLevel.Scalar => Isa.Scalar,
                _ => throw new ArgumentOutOfRangeException(paramName, level, $"{option} {(int)level} is not one of Auto, Avx512, Avx2, Scalar."),
            };

            return isa.IsSupported()
                ? isa
                : throw new NotSupportedException($"{option} = {level} needs {(isa == Isa.Avx512 ? "AVX-512F" : "AVX2 and FMA")}, which this CPU does not support; use Auto or Scalar.");
        }
    }

    extension(Isa isa)
    {
        /// <summary>Whether this CPU can run the kernels of <paramref name="isa"/>.</summary>
        public bool IsSupported() => isa switch
        {
            Isa.Avx512 => Avx512F.IsSupported,
            Isa.Avx2 => Avx2.IsSupported && Fma.IsSupported,
            Isa.Simd128 => Vector128.IsHardwareAccelerated,
            _ => true,
        };

        /// <summary>
        /// The instruction set the engine and the general convolutions run for this one: they have AVX-512, AVX2 and
        /// scalar paths only, so <see cref="Isa.Simd128"/> runs as scalar.
        /// </summary>
        public Isa Engine => isa == Isa.Simd128 ? Isa.Scalar : isa;

        /// <summary>The public name of what the engine and the general convolutions run (<see cref="Engine"/>).</summary>
        public IsaLevel Level => isa switch
        {
            Isa.Avx512 => IsaLevel.Avx512,
            Isa.Avx2 => IsaLevel.Avx2,
            _ => IsaLevel.Scalar,
        };

        /// <summary>The widest vector type the width-generic kernels use: "Vector512", "Vector256", "Vector128" or "Scalar".</summary>
        public string WidestVector => isa switch
        {
            Isa.Avx512 => "Vector512",
            Isa.Avx2 => "Vector256",
            Isa.Simd128 => "Vector128",
            _ => "Scalar",
        };
    }

    private static Isa Detect() =>
        Avx512F.IsSupported && Vector512.IsHardwareAccelerated ? Isa.Avx512
        : Isa.Avx2.IsSupported() ? Isa.Avx2
        : Isa.Simd128.IsSupported() ? Isa.Simd128
        : Isa.Scalar;
}
