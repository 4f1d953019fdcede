using System.Text.Json;
using MobileOne.Cli.Benchmarking;

namespace MobileOne.Tests.Cli;

/// <summary>`mobileone bench` at toy sizes: the schema and the agreement of the engines, not the speed.</summary>
public class BenchCommandTests
{
    private static readonly string[] Tiny = ["bench", "--variant", "s0", "--size", "32", "--iterations", "3", "--threads", "1", "--batch", "1"];

    [Fact]
    public void Json_has_one_object_per_engine_with_timings_and_agreeing_outputs()
    {
        var r = CliRunner.Run([.. Tiny, "--json"]);
        Assert.True(r.ExitCode == 0, r.StdErr);
        using var doc = JsonDocument.Parse(r.StdOut);
        var rows = doc.RootElement.EnumerateArray().ToList();
        Assert.Equal(["managed", "onnxruntime"], rows.Select(o => o.GetProperty("engine").GetString()));
        foreach (var o in rows)
        {
            Assert.Equal("s0", o.GetProperty("variant").GetString());
            Assert.Equal(1, o.GetProperty("threads").GetInt32());
            Assert.Equal(1, o.GetProperty("batch").GetInt32());
            Assert.Equal(32, o.GetProperty("size").GetInt32());
            Assert.Equal(3, o.GetProperty("iterations").GetInt32());
            double median = o.GetProperty("median_ms").GetDouble(), p10 = o.GetProperty("p10_ms").GetDouble(), p90 = o.GetProperty("p90_ms").GetDouble();
            Assert.True(p10 > 0 && p10 <= median && median <= p90, $"p10 {p10}, median {median}, p90 {p90}");

            // GFLOP/s follows from the fused MAC count (S0 at 32x32: counted from the architecture by ModelStatistics) and the median.
            long macs = o.GetProperty("macs_per_image").GetInt64();
            Assert.Equal(MobileOne.Models.ModelStatistics.Compute(MobileOne.Models.MobileOneConfig.S0, 32).MacsFused, macs);
            Assert.Equal(2.0 * macs / (median / 1e3) / 1e9, o.GetProperty("gflops").GetDouble(), 6);
            double peak = o.GetProperty("peak_gflops_per_core").GetDouble();
            Assert.InRange(peak, 1, 10_000);
            Assert.Equal(o.GetProperty("gflops").GetDouble() / peak, o.GetProperty("peak_share").GetDouble(), 9);

            // The logits of a calibrated random S0 are O(1..1000); the engines must agree to float32 rounding.
            double scale = Math.Max(1, o.GetProperty("max_abs_logit").GetDouble());
            Assert.InRange(o.GetProperty("max_abs_diff").GetDouble() / scale, 0, 1e-4);
        }

        Assert.Equal(0, rows[0].GetProperty("max_abs_diff").GetDouble());
    }

    [Fact]
    public void Checkpoint_is_fused_and_compared_with_the_managed_engine_even_when_only_onnxruntime_is_timed()
    {
        var r = CliRunner.Run("bench", "--checkpoint", Fixtures.Path("mobileone_s0_apple_unfused.pth.tar"), "--engines", "onnxruntime", "--size", "32", "--iterations", "2", "--warmup", "0", "--batch", "2", "--json");
        Assert.True(r.ExitCode == 0, r.StdErr);
        using var doc = JsonDocument.Parse(r.StdOut);
        var o = Assert.Single(doc.RootElement.EnumerateArray().ToList());
        Assert.Equal("onnxruntime", o.GetProperty("engine").GetString());
        Assert.Equal("s0", o.GetProperty("variant").GetString());
        Assert.Equal(2, o.GetProperty("batch").GetInt32());
        Assert.Equal(0, o.GetProperty("warmup").GetInt32());
        double scale = o.GetProperty("max_abs_logit").GetDouble();
        Assert.True(scale > 0);
        Assert.InRange(o.GetProperty("max_abs_diff").GetDouble(), 0, 1e-4 * Math.Max(1, scale));
    }

    [Fact]
    public void Plain_table_when_redirected_and_write_docs_replaces_only_the_marked_section_of_a_copy_of_the_repository_document()
    {
        using var dir = new TempDir();
        string docs = dir.File("benchmarks.md");
        string original = File.ReadAllText(Path.Combine(RepositoryRoot(), "docs", "benchmarks.md"));
        File.WriteAllText(docs, original);
        var r = CliRunner.Run([.. Tiny, "--warmup", "1", "--engines", "onnxruntime,managed", "--write-docs", docs]);
        Assert.True(r.ExitCode == 0, r.StdErr);
        Assert.DoesNotContain("\u001b[", r.StdOut);
        Assert.Contains("measured FMA peak:", r.StdOut);
        Assert.Contains("median ms", r.StdOut);
        string[] lines = r.StdOut.Split('\n');
        Assert.Single(lines, l => l.StartsWith("s0 ", StringComparison.Ordinal) && l.Contains(" managed "));
        Assert.Single(lines, l => l.StartsWith("s0 ", StringComparison.Ordinal) && l.Contains(" onnxruntime "));

        string updated = File.ReadAllText(docs);
        int begin = original.IndexOf(BenchReport.BeginMarker, StringComparison.Ordinal);
        int end = original.IndexOf(BenchReport.EndMarker, StringComparison.Ordinal) + BenchReport.EndMarker.Length;
        Assert.StartsWith(original[..begin], updated, StringComparison.Ordinal);
        Assert.EndsWith(original[end..], updated, StringComparison.Ordinal);
        string section = updated[begin..^(original.Length - end)];
        Assert.StartsWith(BenchReport.BeginMarker, section);
        Assert.EndsWith(BenchReport.EndMarker, section);
        Assert.Contains("Command: `mobileone bench --variant s0 --size 32 --iterations 3 --threads 1 --batch 1 --warmup 1 --engines onnxruntime,managed --write-docs " + docs + "`", section);
        Assert.Contains("| CPU |", section);
        Assert.Contains("| ONNX Runtime | 1.31.1 |", section);
        Assert.Contains("| .NET | .NET 10", section);
        Assert.Contains("| load average at start (1, 5, 15 min) |", section);
        Assert.Contains("| variant | threads | batch | size | engine | median ms | p10 ms | p90 ms | GFLOP/s | % of peak | max \\|diff\\| | max \\|logit\\| | runs | time / ORT |", section);
        Assert.Contains("| s0 | 1 | 1 | 32 | onnxruntime |", section);
        Assert.Contains("| s0 | 1 | 1 | 32 | managed |", section);
        Assert.Equal([docs], Directory.GetFiles(dir.Path));
    }

    [Fact]
    public void Write_docs_creates_a_missing_file_and_appends_a_section_to_a_file_without_markers()
    {
        using var dir = new TempDir();
        string plain = dir.File("notes.md");
        File.WriteAllText(plain, "# Notes\n\nkeep me\n");
        var model = new BenchResult("managed", "s0", 1, 1, 32, 1.5, 1.4, 1.6, 10, 0.1, 0, 3, 3, 1, 100);
        var machine = new Machine("cpu", 2, "AVX2", "Vector256 FMA", 100, ".NET 10", "1.31.1", DateTimeOffset.UnixEpoch, "0.10, 0.20, 0.30");
        var settings = new BenchSettings(["managed"], 32, 3, 1, 2, 100);
        string section = BenchReport.Markdown([model], machine, "mobileone bench", settings);

        BenchReport.WriteDocs(plain, section);
        Assert.Equal("# Notes\n\nkeep me\n\n" + section, File.ReadAllText(plain));
        BenchReport.WriteDocs(plain, section.Replace("| s0 |", "| s1 |", StringComparison.Ordinal));
        string twice = File.ReadAllText(plain);
        Assert.Equal(1, Count(twice, BenchReport.BeginMarker));
        Assert.Contains("| s1 |", twice);
        Assert.DoesNotContain("| s0 |", twice);

        string fresh = dir.File("fresh.md");
        BenchReport.WriteDocs(fresh, section);
        Assert.Equal("# Benchmarks\n\n" + section, File.ReadAllText(fresh));
    }

    [Fact]
    public void The_unfused_section_has_its_own_markers_and_leaves_the_fused_one_alone()
    {
        using var dir = new TempDir();
        string path = dir.File("benchmarks.md");
        var fused = new BenchResult("managed", "s0", 1, 1, 32, 1.5, 1.4, 1.6, 10, 0.1, 0, 3, 3, 1, 100);
        var unfused = fused with { Variant = "s0 unfused", MedianMs = 4.5 };
        var machine = new Machine("cpu", 2, "AVX2", "Vector256 FMA", 100, ".NET 10", "1.31.1", DateTimeOffset.UnixEpoch, "0.10, 0.20, 0.30");
        var settings = new BenchSettings(["managed"], 32, 3, 1, 2, 100);
        string fusedSection = BenchReport.Markdown([fused], machine, "mobileone bench", settings);
        string unfusedSection = BenchReport.Markdown([unfused], machine, "mobileone bench --unfused", settings, BenchReport.UnfusedSection);
        Assert.StartsWith("<!-- bench-unfused:begin -->", unfusedSection);
        Assert.Contains("4.50", unfusedSection);

        BenchReport.WriteDocs(path, fusedSection);
        BenchReport.WriteDocs(path, unfusedSection, BenchReport.UnfusedSection);
        BenchReport.WriteDocs(path, unfusedSection.Replace("4.50", "5.50", StringComparison.Ordinal), BenchReport.UnfusedSection);
        string text = File.ReadAllText(path);
        Assert.Equal("# Benchmarks\n\n" + fusedSection.TrimEnd('\n') + "\n\n" + unfusedSection.Replace("4.50", "5.50", StringComparison.Ordinal), text);
    }

    [Theory]
    [InlineData("<!-- bench:end -->\n<!-- bench:begin -->\n")]
    [InlineData("<!-- bench:begin -->\n")]
    [InlineData("<!-- bench:begin -->\n<!-- bench:begin -->\n<!-- bench:end -->\n")]
    public void Broken_markers_are_reported_before_any_measuring_and_the_file_is_kept(string text)
    {
        using var dir = new TempDir();
        string docs = dir.File("bench.md");
        File.WriteAllText(docs, text);
        var r = CliRunner.Run([.. Tiny, "--write-docs", docs]);
        CliRunner.AssertCleanFailure(r, docs, "expected one '<!-- bench:begin -->' followed by one '<!-- bench:end -->'");
        Assert.Equal(string.Empty, r.StdOut);
        Assert.Equal(text, File.ReadAllText(docs));
    }

    [Theory]
    [InlineData("--conv-algo fft", "--conv-algo must be auto, direct, im2col or im2win; got 'fft'.")]
    [InlineData("--isa sse", "--isa must be auto, avx512, avx2 or scalar; got 'sse'.")]
    [InlineData("--variant s9", "--variant: unknown variant 's9'; expected s0, s1, s2, s3 or s4.")]
    [InlineData("--variant s0,S7", "--variant: unknown variant 'S7'")]
    [InlineData("--engines managed,tensorrt", "--engines: unknown engine 'tensorrt'; expected managed or onnxruntime.")]
    [InlineData("--engines ,", "--engines needs at least one of managed, onnxruntime.")]
    [InlineData("--threads 0", "--threads takes positive integers separated by commas; got '0'.")]
    [InlineData("--threads 1,-2", "--threads takes positive integers separated by commas; got '-2'.")]
    [InlineData("--batch 0", "--batch takes positive integers separated by commas; got '0'.")]
    [InlineData("--batch two", "--batch takes positive integers separated by commas; got 'two'.")]
    [InlineData("--size 16", "--size must be at least 32 (stage 4 reaches 1x1 at 32); got 16.")]
    [InlineData("--iterations 0", "--iterations must be a positive integer; got '0'.")]
    [InlineData("--iterations many", "--iterations must be a positive integer; got 'many'.")]
    [InlineData("--warmup -1", "--warmup must be zero or a positive integer; got '-1'.")]
    [InlineData("--budget 0", "--budget must be a positive number of seconds; got 0.")]
    [InlineData("--variant s0 --checkpoint x.safetensors", "Give one of --variant, --model, --checkpoint or --onnx.")]
    [InlineData("--checkpoint /no/such/model.safetensors", "/no/such/model.safetensors: does not exist.")]
    [InlineData("--write-docs /no/such/folder/b.md", "--write-docs /no/such/folder/b.md: the folder '/no/such/folder' does not exist.")]
    public void Bad_options_fail_with_one_clear_error(string options, string message)
    {
        var r = CliRunner.Run(["bench", .. options.Split(' ')]);
        CliRunner.AssertCleanFailure(r, message);
        Assert.Equal(string.Empty, r.StdOut);
    }

    [Theory]
    [InlineData(new[] { 1.0, 2, 3, 4, 5 }, 0.5, 3.0)]
    [InlineData(new[] { 1.0, 2, 3, 4 }, 0.5, 2.5)]
    [InlineData(new[] { 1.0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11 }, 0.1, 2.0)]
    [InlineData(new[] { 1.0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11 }, 0.9, 10.0)]
    [InlineData(new[] { 7.0 }, 0.9, 7.0)]
    public void Percentiles_interpolate_between_ranks(double[] sorted, double q, double expected)
    {
        Assert.Equal(expected, BenchRunner.Percentile(sorted, q), 12);
    }

    private static int Count(string text, string what)
    {
        int n = 0;
        for (int i = text.IndexOf(what, StringComparison.Ordinal); i >= 0; i = text.IndexOf(what, i + 1, StringComparison.Ordinal))
        {
            n++;
        }

        return n;
    }

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "MobileOne.slnx")))
            {
                return dir.FullName;
            }
        }

        throw new DirectoryNotFoundException("Repository root (MobileOne.slnx) not found above the test binaries.");
    }
}
