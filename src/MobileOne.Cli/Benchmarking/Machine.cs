using System.Diagnostics;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace MobileOne.Cli.Benchmarking;

/// <summary>What a benchmark ran on, and the single-core FMA throughput measured there.</summary>
internal sealed record Machine(
    string Cpu,
    int LogicalCores,
    string Isa,
    string PeakKernel,
    double PeakGflopsPerCore,
    string DotNet,
    string OnnxRuntime,
    DateTimeOffset Date,
    string LoadAverage)
{
    public static Machine Describe()
    {
        var (peak, kernel) = FmaPeak.Measure();
        return new Machine(
            CpuModel(),
            Environment.ProcessorCount,
            IsaFlags(),
            kernel,
            peak,
            RuntimeInformation.FrameworkDescription,
            EngineNames.OnnxRuntimeVersion(),
            DateTimeOffset.UtcNow,
            ReadLoadAverage());
    }

    public IEnumerable<(string Name, string Value)> Rows()
    {
        var c = CultureInfo.InvariantCulture;
        yield return ("CPU", Cpu);
        yield return ("logical cores", LogicalCores.ToString(c));
        yield return ("ISA (as .NET sees it)", Isa);
        yield return ("measured FMA peak", $"{PeakGflopsPerCore.ToString("0.0", c)} GFLOP/s per core ({PeakKernel})");
        yield return (".NET", DotNet);
        yield return ("ONNX Runtime", OnnxRuntime);
        yield return ("date (UTC)", Date.ToString("yyyy-MM-dd HH:mm", c));
        yield return ("load average at start (1, 5, 15 min)", LoadAverage);
    }

    /// <summary>The machines are shared: the load when the run started says how much to trust it.</summary>
    internal static string ReadLoadAverage()
    {
        try
        {
            string[] fields = File.ReadAllText("/proc/loadavg").Split(' ', StringSplitOptions.RemoveEmptyEntries);
            return fields.Length >= 3 ? string.Join(", ", fields[..3]) : "unknown";
        }
        catch (IOException)
        {
            return "unknown";
        }
        catch (UnauthorizedAccessException)
        {
            return "unknown";
        }
    }

    /// <summary>
    /// The model name plus family and model numbers: virtual machines often report only "AMD EPYC", and the
    /// family tells a Zen 4 (25) from a Zen 5 (26), whose 512-bit FMA throughput differs by two.
    /// </summary>
    internal static string CpuModel()
    {
        string? name = null, family = null, model = null;
        try
        {
            foreach (string line in File.ReadLines("/proc/cpuinfo"))
            {
                int colon = line.IndexOf(':');
                if (colon <= 0)
                {
                    if (name is not null)
                    {
                        break; // end of the first processor's block
                    }

                    continue;
                }

                string key = line[..colon].Trim(), value = line[(colon + 1)..].Trim();
                switch (key)
                {
                    case "model name": name ??= value; break;
                    case "cpu family": family ??= value; break;
                    case "model": model ??= value; break;
                }
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }

        if (name is null)
        {
            return $"unknown ({RuntimeInformation.ProcessArchitecture})";
        }

        return family is null ? name : $"{name} (family {family}, model {model ?? "?"})";
    }

    private static string IsaFlags()
    {
        var flags = new List<string>();
        void Add(bool supported, string name)
        {
            if (supported)
            {
                flags.Add(name);
            }
        }

        Add(Avx512F.IsSupported, "AVX-512F");
        Add(Avx512BW.IsSupported, "AVX-512BW");
        Add(Avx512DQ.IsSupported, "AVX-512DQ");
        Add(Avx512F.VL.IsSupported, "AVX-512VL");
        Add(Avx512Vbmi.IsSupported, "AVX-512VBMI");
        Add(Avx2.IsSupported, "AVX2");
        Add(Fma.IsSupported, "FMA");
        Add(System.Runtime.Intrinsics.Arm.AdvSimd.IsSupported, "AdvSIMD");
        string vectors = Vector512.IsHardwareAccelerated ? "Vector512 accelerated"
            : Vector256.IsHardwareAccelerated ? "Vector256 accelerated (Vector512 not)"
            : "no 256-bit vectors";
        return flags.Count == 0 ? vectors : $"{string.Join(", ", flags)}; {vectors}";
    }
}

/// <summary>
/// Single-core FMA throughput: twelve independent multiply-add chains, more than enough to cover the
/// FMA latency on current x86 and Arm cores, so the loop runs at the issue rate of the FMA units.
/// </summary>
internal static class FmaPeak
{
    private const int Chains = 12;
    // Short trials, many of them: on a shared machine the best one is likely to have run without preemption.
    private const long StepsPerTrial = 1_000_000;
    private static float sink;

    public static (double GflopsPerCore, string Kernel) Measure(int trials = 30)
    {
        Func<long, float> kernel;
        int lanes;
        string name;
        if (Vector512.IsHardwareAccelerated && Avx512F.IsSupported)
        {
            (kernel, lanes, name) = (Chains512, Vector512<float>.Count, "Vector512");
        }
        else if (Vector256.IsHardwareAccelerated && Fma.IsSupported)
        {
            (kernel, lanes, name) = (Chains256, Vector256<float>.Count, "Vector256");
        }
        else
        {
            (kernel, lanes, name) = (Chains128, Vector128<float>.Count, "Vector128");
        }

        kernel(1000); // compile the optimized code before timing
        double best = double.MaxValue;
        for (int t = 0; t < trials; t++)
        {
            long start = Stopwatch.GetTimestamp();
            sink += kernel(StepsPerTrial);
            best = Math.Min(best, Stopwatch.GetElapsedTime(start).TotalSeconds);
        }

        double flops = 2.0 * Chains * lanes * StepsPerTrial;
        return (flops / best / 1e9, $"{name} FMA, {Chains} independent chains, best of {trials}");
    }

    // a = a * m + c converges to c / (1 - m): values stay normal however long the loop runs.
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static float Chains512(long steps)
    {
        var m = Vector512.Create(0.999f);
        var c = Vector512.Create(0.001f);
        Vector512<float> a0 = Vector512.Create(0.10f), a1 = Vector512.Create(0.11f), a2 = Vector512.Create(0.12f), a3 = Vector512.Create(0.13f);
        Vector512<float> a4 = Vector512.Create(0.14f), a5 = Vector512.Create(0.15f), a6 = Vector512.Create(0.16f), a7 = Vector512.Create(0.17f);
        Vector512<float> a8 = Vector512.Create(0.18f), a9 = Vector512.Create(0.19f), a10 = Vector512.Create(0.20f), a11 = Vector512.Create(0.21f);
        for (long i = 0; i < steps; i++)
        {
            a0 = Vector512.FusedMultiplyAdd(a0, m, c);
            a1 = Vector512.FusedMultiplyAdd(a1, m, c);
            a2 = Vector512.FusedMultiplyAdd(a2, m, c);
            a3 = Vector512.FusedMultiplyAdd(a3, m, c);
            a4 = Vector512.FusedMultiplyAdd(a4, m, c);
            a5 = Vector512.FusedMultiplyAdd(a5, m, c);
            a6 = Vector512.FusedMultiplyAdd(a6, m, c);
            a7 = Vector512.FusedMultiplyAdd(a7, m, c);
            a8 = Vector512.FusedMultiplyAdd(a8, m, c);
            a9 = Vector512.FusedMultiplyAdd(a9, m, c);
            a10 = Vector512.FusedMultiplyAdd(a10, m, c);
            a11 = Vector512.FusedMultiplyAdd(a11, m, c);
        }

        return Vector512.Sum(a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11);
    }

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static float Chains256(long steps)
    {
        var m = Vector256.Create(0.999f);
        var c = Vector256.Create(0.001f);
        Vector256<float> a0 = Vector256.Create(0.10f), a1 = Vector256.Create(0.11f), a2 = Vector256.Create(0.12f), a3 = Vector256.Create(0.13f);
        Vector256<float> a4 = Vector256.Create(0.14f), a5 = Vector256.Create(0.15f), a6 = Vector256.Create(0.16f), a7 = Vector256.Create(0.17f);
        Vector256<float> a8 = Vector256.Create(0.18f), a9 = Vector256.Create(0.19f), a10 = Vector256.Create(0.20f), a11 = Vector256.Create(0.21f);
        for (long i = 0; i < steps; i++)
        {
            a0 = Vector256.FusedMultiplyAdd(a0, m, c);
            a1 = Vector256.FusedMultiplyAdd(a1, m, c);
            a2 = Vector256.FusedMultiplyAdd(a2, m, c);
            a3 = Vector256.FusedMultiplyAdd(a3, m, c);
            a4 = Vector256.FusedMultiplyAdd(a4, m, c);
            a5 = Vector256.FusedMultiplyAdd(a5, m, c);
            a6 = Vector256.FusedMultiplyAdd(a6, m, c);
            a7 = Vector256.FusedMultiplyAdd(a7, m, c);
            a8 = Vector256.FusedMultiplyAdd(a8, m, c);
            a9 = Vector256.FusedMultiplyAdd(a9, m, c);
            a10 = Vector256.FusedMultiplyAdd(a10, m, c);
            a11 = Vector256.FusedMultiplyAdd(a11, m, c);
        }

        return Vector256.Sum(a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11);
    }

    // Without hardware FMA this measures whatever the runtime falls back to; the report names the kernel.
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static float Chains128(long steps)
    {
        var m = Vector128.Create(0.999f);
        var c = Vector128.Create(0.001f);
        Vector128<float> a0 = Vector128.Create(0.10f), a1 = Vector128.Create(0.11f), a2 = Vector128.Create(0.12f), a3 = Vector128.Create(0.13f);
        Vector128<float> a4 = Vector128.Create(0.14f), a5 = Vector128.Create(0.15f), a6 = Vector128.Create(0.16f), a7 = Vector128.Create(0.17f);
        Vector128<float> a8 = Vector128.Create(0.18f), a9 = Vector128.Create(0.19f), a10 = Vector128.Create(0.20f), a11 = Vector128.Create(0.21f);
        for (long i = 0; i < steps; i++)
        {
            a0 = Vector128.FusedMultiplyAdd(a0, m, c);
            a1 = Vector128.FusedMultiplyAdd(a1, m, c);
            a2 = Vector128.FusedMultiplyAdd(a2, m, c);
            a3 = Vector128.FusedMultiplyAdd(a3, m, c);
            a4 = Vector128.FusedMultiplyAdd(a4, m, c);
            a5 = Vector128.FusedMultiplyAdd(a5, m, c);
            a6 = Vector128.FusedMultiplyAdd(a6, m, c);
            a7 = Vector128.FusedMultiplyAdd(a7, m, c);
            a8 = Vector128.FusedMultiplyAdd(a8, m, c);
            a9 = Vector128.FusedMultiplyAdd(a9, m, c);
            a10 = Vector128.FusedMultiplyAdd(a10, m, c);
            a11 = Vector128.FusedMultiplyAdd(a11, m, c);
        }

        return Vector128.Sum(a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11);
    }
}
