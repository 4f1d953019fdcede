using System.Diagnostics;
using MobileOne.Tests.Data;

namespace MobileOne.Tests.Kernels;

/// <summary>Skips a test, with the reason, when python3 is not on PATH.</summary>
public sealed class Python3FactAttribute : FactAttribute
{
    public Python3FactAttribute()
    {
        if (GeneratedKernelsTests.FindPython3() is null)
        {
            Skip = "python3 is not on PATH, so the kernel generators (src/MobileOne/Kernels/Engine/Generators) cannot be run.";
        }
    }
}

/// <summary>
/// The unrolled engine kernels between <c>// &lt;generated: ...&gt;</c> markers are exactly what the scripts in
/// src/MobileOne/Kernels/Engine/Generators print: <c>python3 regenerate.py --check</c> would change nothing.
/// </summary>
public class GeneratedKernelsTests
{
    private static string GeneratorsDirectory(string root) =>
        Path.Combine(root, "src", "MobileOne", "Kernels", "Engine", "Generators");

    [Python3Fact]
    public void Engine_kernels_are_exactly_what_their_generators_print()
    {
        var result = Run(GeneratorsDirectory(DataTestHelpers.RepositoryRoot()), "regenerate.py", "--check");

        Assert.True(result.ExitCode == 0, $"regenerate.py --check exited {result.ExitCode}:\n{result.StdOut}\n{result.StdErr}");
        Assert.Contains("every generated region matches", result.StdOut);
    }

    [Python3Fact]
    public void The_check_names_a_region_edited_by_hand()
    {
        // On a copy of the Engine folder, so the source tree is never touched.
        using var temp = new TempDir();
        string engine = Path.GetDirectoryName(GeneratorsDirectory(DataTestHelpers.RepositoryRoot()))!;
        string copy = Path.Combine(temp.Path, "Engine");
        Directory.CreateDirectory(Path.Combine(copy, "Generators"));
        foreach (string file in Directory.GetFiles(engine, "*.cs"))
        {
            File.Copy(file, Path.Combine(copy, Path.GetFileName(file)));
        }

        foreach (string file in Directory.GetFiles(Path.Combine(engine, "Generators"), "*.py"))
        {
            File.Copy(file, Path.Combine(copy, "Generators", Path.GetFileName(file)));
        }

        string gemm = Path.Combine(copy, "GemmAvx512.cs");
        string text = File.ReadAllText(gemm);
        int tile = text.IndexOf("// <generated: gemm_avx512_tile.py tile>", StringComparison.Ordinal);
        Assert.True(tile >= 0, "GemmAvx512.cs has no region for gemm_avx512_tile.py tile");
        const string line = "c00 = Avx512F.FusedMultiplyAdd(x, b0, c00);";
        int at = text.IndexOf(line, tile, StringComparison.Ordinal);
        Assert.True(at >= 0);
        File.WriteAllText(gemm, text[..at] + "c00 = Avx512F.FusedMultiplyAdd(b0, x, c00);" + text[(at + line.Length)..]);

        var result = Run(Path.Combine(copy, "Generators"), "regenerate.py", "--check");

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("GemmAvx512.cs", result.StdErr);
        Assert.Contains("<generated: gemm_avx512_tile.py tile>", result.StdErr);
        Assert.DoesNotContain("gemm_avx512_tile.py indirect", result.StdErr);
        Assert.Contains("FusedMultiplyAdd(b0, x, c00)", File.ReadAllText(gemm)); // --check rewrites nothing
    }

    /// <summary>The python3 executable on PATH, or null.</summary>
    internal static string? FindPython3()
    {
        string[] names = OperatingSystem.IsWindows() ? ["python3.exe"] : ["python3"];
        foreach (string dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            foreach (string name in names)
            {
                string candidate = Path.Combine(dir, name);
                if (File.Exists(candidate))
                {
                    return candidate;
                }
            }
        }

        return null;
    }

    private static (int ExitCode, string StdOut, string StdErr) Run(string workingDirectory, params string[] args)
    {
        var info = new ProcessStartInfo(FindPython3()!)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.Environment["PYTHONDONTWRITEBYTECODE"] = "1";
        foreach (string a in args)
        {
            info.ArgumentList.Add(a);
        }

        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(2)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException("python3 " + string.Join(' ', args) + " did not finish.");
        }

        return (process.ExitCode, stdout.Result, stderr.Result);
    }
}
