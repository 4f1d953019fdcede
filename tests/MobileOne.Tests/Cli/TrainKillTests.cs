using System.Diagnostics;
using MobileOne.IO;

namespace MobileOne.Tests.Cli;

/// <summary>
/// Crash consistency of `mobileone train`: the real process is killed with SIGKILL at random moments (during steps,
/// evaluations and checkpoint writes alike) and resumed until it finishes; its final checkpoint must equal an
/// uninterrupted run's byte for byte, and no temporary file may be left. MOBILEONE_KILL_TRIALS sets the number of
/// trials (default 4 in the suite; docs/reliability.md records a run of 20).
/// </summary>
public class TrainKillTests
{
    private static readonly string[] TrainArgs =
    [
        "train", "--model", "units=1/1/1/1,widths=0.25/0.25/0.25/0.25,k=2,classes=10", "--data", "bundled",
        "--epochs", "3", "--batch-size", "64", "--threads", "1", "--seed", "5",
    ];

    [Fact]
    public void Training_killed_at_random_moments_and_resumed_ends_with_the_uninterrupted_weights()
    {
        int trials = int.TryParse(Environment.GetEnvironmentVariable("MOBILEONE_KILL_TRIALS"), out int t) && t > 0 ? t : 4;
        using var temp = new TempDir();
        string reference = Path.Combine(temp.Path, "reference");
        var done = CliRunner.Run([.. TrainArgs, "--output", reference]);
        Assert.True(done.ExitCode == 0, done.StdErr);
        byte[] expected = File.ReadAllBytes(Path.Combine(reference, "last.safetensors"));

        var rng = new Random(2026);
        int kills = 0;
        var log = new List<string>();
        for (int trial = 0; trial < trials; trial++)
        {
            string output = Path.Combine(temp.Path, $"trial{trial}");
            int attempts = 0;
            while (true)
            {
                Assert.True(++attempts <= 12, $"trial {trial}: did not finish after {attempts - 1} attempts");
                string state = Path.Combine(output, "train_state.safetensors");
                string[] args = File.Exists(state) ? [.. TrainArgs, "--output", output, "--resume", state] : [.. TrainArgs, "--output", output];

                // Kill somewhere in the first ~3 s (a whole run takes about that); every third attempt runs to the end.
                int? killAfterMs = attempts % 3 == 0 ? null : rng.Next(200, 3000);
                var result = killAfterMs is int ms
                    ? CliRunner.RunUntil(new Dictionary<string, string>(), args, TimeSpan.FromMilliseconds(ms), killOnTimeout: true)
                    : CliRunner.Run(args);
                if (result is null)
                {
                    kills++;
                    continue;
                }

                Assert.True(result.ExitCode == 0, $"trial {trial}, attempt {attempts}: exit {result.ExitCode}: {result.StdErr}");
                break;
            }

            log.Add($"trial {trial}: {attempts} attempts");
            Assert.Equal(expected, File.ReadAllBytes(Path.Combine(output, "last.safetensors")));
            Assert.Empty(Directory.GetFiles(output, "*.tmp"));
        }

        Assert.True(kills > 0, "no run was killed: the test did not exercise a crash");
        if (Environment.GetEnvironmentVariable("MOBILEONE_KILL_LOG") is { Length: > 0 } path)
        {
            File.WriteAllLines(path, [.. log, $"{kills} kills in {trials} trials"]);
        }
    }

    [Fact]
    public void Temporaries_of_dead_writers_are_removed_and_those_of_live_ones_kept()
    {
        using var temp = new TempDir();
        string guid = Guid.NewGuid().ToString("N");
        string dead = Path.Combine(temp.Path, $".last.safetensors.{DeadPid()}.{guid}.tmp");
        string live = Path.Combine(temp.Path, $".last.safetensors.{Environment.ProcessId}.{guid}.tmp");
        string unrelated = Path.Combine(temp.Path, ".notes.tmp");
        foreach (string f in new[] { dead, live, unrelated })
        {
            File.WriteAllText(f, "partial");
        }

        var removed = AtomicFile.RemoveStaleTemporaries(temp.Path);

        Assert.Equal([Path.GetFileName(dead)], removed);
        Assert.False(File.Exists(dead));
        Assert.True(File.Exists(live));
        Assert.True(File.Exists(unrelated));
    }

    /// <summary>The pid of a process that has exited (so no live process holds it, barring reuse in these milliseconds).</summary>
    private static int DeadPid()
    {
        using var process = Process.Start(new ProcessStartInfo("true") { UseShellExecute = false })!;
        process.WaitForExit();
        return process.Id;
    }
}
