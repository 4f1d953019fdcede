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

        string depthwise = Path.Combine(copy, "Depthwise3x3.cs");
        string text = File.ReadAllText(depthwise);
        int region = text.IndexOf("// <generated: depthwise_rows.py 512>", StringComparison.Ordinal);
        Assert.True(region >= 0, "Depthwise3x3.cs has no region for depthwise_rows.py 512");
        const string line = "a0 = Avx512F.FusedMultiplyAdd(v1, w01, a0);";
        int at = text.IndexOf(line, region, StringComparison.Ordinal);
        Assert.True(at >= 0);
        File.WriteAllText(depthwise, text[..at] + "a0 = Avx512F.FusedMultiplyAdd(w01, v1, a0);" + text[(at + line.Length)..]);

        var result = Run(Path.Combine(copy, "Generators"), "regenerate.py", "--check");

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("Depthwise3x3.cs", result.StdErr);
        Assert.Contains("<generated: depthwise_rows.py 512>", result.StdErr);
        Assert.DoesNotContain("depthwise_rows.py 256", result.StdErr);
        Assert.Contains("FusedMultiplyAdd(w01, v1, a0)", File.ReadAllText(depthwise)); // --check rewrites nothing
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
