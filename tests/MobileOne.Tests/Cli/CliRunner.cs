using System.Diagnostics;

namespace MobileOne.Tests.Cli;

internal sealed record CliResult(int ExitCode, string StdOut, string StdErr);

/// <summary>Runs the real `mobileone` program in a child process, as a user or a script would.</summary>
internal static class CliRunner
{
    public static CliResult Run(params string[] args) => RunWithEnvironment(new Dictionary<string, string>(), args);

    public static CliResult RunWithEnvironment(IReadOnlyDictionary<string, string> environment, params string[] args) =>
        RunUntil(environment, args, TimeSpan.FromMinutes(3), killOnTimeout: false)!;

    /// <summary>
    /// Runs the program for at most <paramref name="limit"/>; then kills it (SIGKILL on Unix: no handler runs, nothing is
    /// flushed) and returns null when <paramref name="killOnTimeout"/>, else throws <see cref="TimeoutException"/>.
    /// </summary>
    public static CliResult? RunUntil(IReadOnlyDictionary<string, string> environment, string[] args, TimeSpan limit, bool killOnTimeout)
    {
        var info = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var (name, value) in environment)
        {
            info.Environment[name] = value;
        }

        info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "MobileOne.Cli.dll"));
        foreach (string a in args)
        {
            info.ArgumentList.Add(a);
        }

        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(limit))
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
            if (killOnTimeout)
            {
                return null;
            }

            throw new TimeoutException("mobileone " + string.Join(' ', args) + " did not finish.");
        }

        return new CliResult(process.ExitCode, stdout.Result, stderr.Result);
    }

    /// <summary>A user error: non-zero exit, one "error:" line naming what was wrong, no stack trace.</summary>
    public static void AssertCleanFailure(CliResult result, params string[] mentions)
    {
        Assert.NotEqual(0, result.ExitCode);
        Assert.StartsWith("error: ", result.StdErr);
        Assert.DoesNotContain("   at ", result.StdErr);
        Assert.DoesNotContain("Exception", result.StdErr);
        foreach (string m in mentions)
        {
            Assert.Contains(m, result.StdErr);
        }
    }
}
