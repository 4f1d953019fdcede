using System.Text.Json;
using MobileOne.Models;
using MobileOne.Studies;

namespace MobileOne.Tests.Cli;

/// <summary>`mobileone study k` at a smoke size: the rows, reuse of finished cells, the docs section, the chart, the refusals.</summary>
public class StudyKCommandTests
{
    private static readonly string[] Smoke = ["study", "k", "--model", "s0", "--k", "1,2", "--seeds", "1", "--epochs", "1", "--max-steps", "3", "--batch-size", "32", "--data", "bundled", "--threads", "1"];

    [Fact]
    public void Json_rows_per_cell_and_a_second_run_reuses_the_finished_cells()
    {
        using var dir = new TempDir();
        string outDir = Path.Combine(dir.Path, "study");

        // A cell stopped halfway (files but no result) is trained again from scratch.
        string half = Path.Combine(outDir, "s0-k1-seed0");
        Directory.CreateDirectory(half);
        File.WriteAllText(Path.Combine(half, "train_state.safetensors"), "a state from a run that was killed");
        var first = CliRunner.Run([.. Smoke, "--out", outDir, "--json"]);
        Assert.True(first.ExitCode == 0, first.StdErr);
        using var doc = JsonDocument.Parse(first.StdOut);
        var rows = doc.RootElement.EnumerateArray().ToList();
        Assert.Equal([(1, 0), (2, 0)], rows.Select(o => (o.GetProperty("k").GetInt32(), o.GetProperty("seed").GetInt32())));
        foreach (var o in rows)
        {
            int k = o.GetProperty("k").GetInt32();
            var stats = ModelStatistics.Compute(MobileOneConfig.Parse($"s0,k={k},classes=10,in_chans=1"), 32);
            Assert.Equal("s0", o.GetProperty("model").GetString());
            Assert.Equal((1, 1, 3L), (o.GetProperty("epochs").GetInt32(), o.GetProperty("epochs_run").GetInt32(), o.GetProperty("steps").GetInt64()));
            Assert.Equal((stats.ParamsUnfused, stats.ParamsFused), (o.GetProperty("params_unfused").GetInt64(), o.GetProperty("params_fused").GetInt64()));
            double top1 = o.GetProperty("top1").GetDouble(), top5 = o.GetProperty("top5").GetDouble();
            Assert.InRange(top1, 0, top5);
            Assert.InRange(top5, 0, 1);
            Assert.Equal(1000, o.GetProperty("eval_images").GetInt32());
            Assert.InRange(Math.Abs(top1 - o.GetProperty("top1_fused").GetDouble()), 0, 0.0015);
            Assert.True(o.GetProperty("train_seconds").GetDouble() > 0);
            Assert.Equal(BranchCountStudy.PaperImageNetTop1("s0", k), o.GetProperty("paper_imagenet_top1").GetDouble());
            Assert.True(File.Exists(Path.Combine(outDir, $"s0-k{k}-seed0", BranchCountStudy.ResultFile)));
        }

        // More branches, more train-time parameters; the same network once fused.
        Assert.True(rows[1].GetProperty("params_unfused").GetInt64() > rows[0].GetProperty("params_unfused").GetInt64());
        Assert.Equal(rows[0].GetProperty("params_fused").GetInt64(), rows[1].GetProperty("params_fused").GetInt64());
        Assert.Contains("training in", first.StdErr);

        string docs = dir.File("studies.md");
        File.WriteAllText(docs, "# Latency studies\n\n<!-- study-k:begin -->\nold\n<!-- study-k:end -->\n\ntail\n");
        string plots = Path.Combine(dir.Path, "plots");
        var second = CliRunner.Run([.. Smoke, "--out", outDir, "--json", "--plot-dir", plots, "--write-docs", docs]);
        Assert.True(second.ExitCode == 0, second.StdErr);
        Assert.Equal(first.StdOut, second.StdOut);
        Assert.DoesNotContain("training in", second.StdErr);
        Assert.Equal(2, second.StdErr.Split('\n').Count(l => l.Contains("finished before, reused", StringComparison.Ordinal)));

        string updated = File.ReadAllText(docs);
        Assert.StartsWith("# Latency studies\n\n<!-- study-k:begin -->\n### Run of ", updated);
        Assert.EndsWith("<!-- study-k:end -->\n\ntail\n", updated);
        Assert.Contains("| k | runs | top-1 % mean ± std | top-1 % min-max | params unfused | params fused | s/epoch | paper ImageNet top-1 % |", updated);
        Assert.Contains("#### s0", updated);
        Assert.Contains("| 70.9 |", updated);
        Assert.Contains("| 70.7 |", updated);
        byte[] png = File.ReadAllBytes(Path.Combine(plots, "study-k-top1.png"));
        Assert.True(png.Length > 1000);
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, png[..4]);

        // --report-only trains nothing: seed 1 is not run, so the report holds seed 0's cells and names the missing ones.
        string[] twoSeeds = [.. Smoke];
        twoSeeds[Array.IndexOf(twoSeeds, "--seeds") + 1] = "2";
        var report = CliRunner.Run([.. twoSeeds, "--out", outDir, "--json", "--report-only", "--write-docs", docs]);
        Assert.True(report.ExitCode == 0, report.StdErr);
        Assert.Equal(first.StdOut, report.StdOut);
        Assert.DoesNotContain("training in", report.StdErr);
        Assert.Equal(2, report.StdErr.Split('\n').Count(l => l.Contains("not finished in", StringComparison.Ordinal) && l.Contains("left out (--report-only)", StringComparison.Ordinal)));
        Assert.False(Directory.Exists(Path.Combine(outDir, "s0-k1-seed1")));
        Assert.Contains("Finished cells only (`--report-only`): 2 of 4; not run: s0 k=1 seed 1, s0 k=2 seed 1.", File.ReadAllText(docs));
        CliRunner.AssertCleanFailure(
            CliRunner.Run([.. Smoke, "--out", Path.Combine(dir.Path, "empty"), "--report-only"]),
            "--report-only: ", "holds no finished cell of these models, k and seeds");

        // A finished cell of another recipe is not silently mixed in.
        var other = CliRunner.Run([.. Smoke, "--out", outDir, "--lr", "0.05"]);
        CliRunner.AssertCleanFailure(other, "this cell was trained with 'data=bundled epochs=1 batch=32 lr=0.1 max_steps=3", "use another --out or delete the folder");
        Assert.Equal(string.Empty, other.StdOut);

        string resultFile = Path.Combine(outDir, "s0-k1-seed0", BranchCountStudy.ResultFile);
        File.WriteAllText(resultFile, "{}");
        var broken = CliRunner.Run([.. Smoke, "--out", outDir]);
        CliRunner.AssertCleanFailure(broken, $"{resultFile}: not a k-study result", "delete it to train the cell again");
    }

    [Theory]
    [InlineData("--k 0", "--k takes branch counts from 1 to 8 separated by commas; got '0'.")]
    [InlineData("--k 9", "--k takes branch counts from 1 to 8 separated by commas; got '9'.")]
    [InlineData("--k 1,x", "--k takes branch counts from 1 to 8 separated by commas; got 'x'.")]
    [InlineData("--k ,", "--k needs at least one branch count from 1 to 8.")]
    [InlineData("--model s9", "--model: unknown model 's9'; expected s0, s1, s2, s3 or s4.")]
    [InlineData("--model s0 --model s9", "--model: unknown model 's9'; expected s0, s1, s2, s3 or s4.")]
    [InlineData("--model ,", "--model needs at least one of s0, s1, s2, s3, s4.")]
    [InlineData("--seeds 0", "--seeds must be a positive integer; got 0.")]
    [InlineData("--epochs 0", "--epochs must be a positive integer; got 0.")]
    [InlineData("--batch-size -1", "--batch-size must be a positive integer; got -1.")]
    [InlineData("--max-steps 0", "--max-steps must be a positive integer; got 0.")]
    [InlineData("--threads 0", "--threads must be a positive integer; got 0.")]
    [InlineData("--lr 0", "--lr must be a positive number; got 0.")]
    [InlineData("--write-docs /no/such/folder/s.md", "--write-docs /no/such/folder/s.md: the folder '/no/such/folder' does not exist.")]
    public void Bad_options_fail_with_one_error_line_naming_the_option(string options, string message)
    {
        var r = CliRunner.Run(["study", "k", .. options.Split(' ')]);
        CliRunner.AssertCleanFailure(r, message);
        Assert.Equal(string.Empty, r.StdOut);
        Assert.Single(r.StdErr.TrimEnd('\n').Split('\n'));
    }

    [Fact]
    public void A_latency_study_option_is_not_a_k_study_option()
    {
        var r = CliRunner.Run(["study", "k", "--engines", "managed"]);
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains("--engines", r.StdErr);
    }

    [Fact]
    public void Summaries_give_mean_sample_std_and_range_per_model_and_k()
    {
        BranchStudyResult Row(int k, int seed, double top1) => new(
            "s0", k, seed, "recipe", 5, 5, 390, 1, top1, 0.99, top1, 0.99, 0.5, 1000, 2_000_000 + k, 1_000_000, 10, 5, 32, 100 + k, "bundled", "bundled");
        var summaries = BranchCountStudy.Summarize([Row(1, 0, 0.60), Row(2, 0, 0.70), Row(1, 1, 0.64), Row(2, 1, 0.70)]);
        Assert.Equal([1, 2], summaries.Select(s => s.K));
        var one = summaries[0];
        Assert.Equal((2, 0.62, 0.60, 0.64), (one.Runs, Math.Round(one.Top1Mean, 12), one.Top1Min, one.Top1Max));
        Assert.Equal(Math.Sqrt(0.0008), one.Top1Std, 12);
        Assert.Equal(0, summaries[1].Top1Std);
        Assert.Equal((2_000_001L, 1_000_000L, 101 / 5.0, 70.9), (one.ParamsUnfused, one.ParamsFused, one.SecondsPerEpoch, one.PaperImageNetTop1));
        Assert.Null(BranchCountStudy.PaperImageNetTop1("s2", 1));
        Assert.Equal(75.2, BranchCountStudy.PaperImageNetTop1("s1", 5));
        Assert.Null(BranchCountStudy.PaperImageNetTop1("s0", 6));
    }
}
