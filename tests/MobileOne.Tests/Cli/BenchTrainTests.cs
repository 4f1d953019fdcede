using System.Text.Json;

namespace MobileOne.Tests.Cli;

public class BenchTrainTests
{
    [Fact]
    public void Json_reports_the_configuration_and_step_statistics()
    {
        var r = CliRunner.Run("bench-train", "--model", "units=1/1/1/1,widths=0.125/0.125/0.125/0.125,k=2", "--num-classes", "10",
            "--batch-size", "4", "--size", "32", "--in-chans", "3", "--threads", "1", "--steps", "3", "--warmup", "1", "--json");
        Assert.Equal(0, r.ExitCode);
        using var doc = JsonDocument.Parse(r.StdOut);
        var o = doc.RootElement;
        Assert.Equal("custom", o.GetProperty("model").GetString());
        Assert.Equal(4, o.GetProperty("batch").GetInt32());
        Assert.Equal(32, o.GetProperty("size").GetInt32());
        Assert.Equal(3, o.GetProperty("in_chans").GetInt32());
        Assert.Equal(10, o.GetProperty("num_classes").GetInt32());
        Assert.Equal(1, o.GetProperty("threads").GetInt32());
        Assert.Equal(3, o.GetProperty("steps").GetInt32());
        double median = o.GetProperty("step_ms_median").GetDouble(), p10 = o.GetProperty("step_ms_p10").GetDouble(), p90 = o.GetProperty("step_ms_p90").GetDouble();
        Assert.True(p10 > 0 && p10 <= median && median <= p90, $"p10 {p10}, median {median}, p90 {p90}");
        // The JSON rounds the median and the throughput separately, so compare to the rounding of the median (1e-3 relative).
        double throughput = o.GetProperty("images_per_second").GetDouble();
        Assert.True(Math.Abs(throughput - (4 * 1000.0 / median)) <= 1e-3 * throughput, $"images/s {throughput} against 4000 / {median}");
        Assert.True(double.IsFinite(o.GetProperty("final_loss").GetDouble()));
    }

    [Fact]
    public void Profile_accounts_for_the_steps_by_layer_and_operation()
    {
        var r = CliRunner.Run("bench-train", "--model", "units=1/1/1/1,widths=0.25/0.25/0.25/0.25,k=2", "--num-classes", "10",
            "--batch-size", "8", "--size", "32", "--in-chans", "3", "--threads", "1", "--steps", "3", "--warmup", "1", "--json", "--profile");
        Assert.Equal(0, r.ExitCode);
        using var doc = JsonDocument.Parse(r.StdOut);
        var rows = doc.RootElement.GetProperty("profile").EnumerateArray().ToList();
        string Name(JsonElement e) => e.GetProperty("layer").GetString() + " " + e.GetProperty("op").GetString();

        // One stride-2 depthwise block per stage (8x8 .. 1x1 outputs at 32x32), each trained from its patch moments
        // (DepthwiseMoments.Pays: stride-2 outputs of up to 64 pixels), one forward and one backward pass.
        foreach (var size in new[] { "8x8", "4x4", "2x2", "1x1" })
        {
            foreach (var op in new[] { "fwd moments", "bwd moments" })
            {
                var row = Assert.Single(rows, e => Name(e) == $"dw 3x3/2 -> {size} {op}");
                Assert.Equal(1, row.GetProperty("calls_per_step").GetInt32());
                // A rate is reported for every product (rounded to 0.1, so a tiny model's may print 0).
                Assert.True(row.GetProperty("gflop_per_s").ValueKind == JsonValueKind.Number, Name(row));
            }
        }

        Assert.Contains(rows, e => Name(e) == "step optimizer");
        Assert.Equal(JsonValueKind.Null, rows.First(e => Name(e) == "step optimizer").GetProperty("gflop_per_s").ValueKind);
        Assert.Contains(rows, e => Name(e) == "step not in an operation above");

        // The rows share out the timed steps: their times add up to the steps' total, their shares to 1.
        double perStep = rows.Sum(e => e.GetProperty("ms_per_step").GetDouble());
        double shares = rows.Sum(e => e.GetProperty("share").GetDouble());
        Assert.True(Math.Abs(shares - 1) < 0.01, $"shares add up to {shares}");
        // Their mean per step cannot be below the fastest step (rows are means over the timed steps; 3 decimals each).
        double fastest = doc.RootElement.GetProperty("step_ms_min").GetDouble();
        Assert.True(perStep >= fastest - 0.01 * rows.Count, $"rows add up to {perStep} ms per step; fastest step {fastest} ms");
    }

    [Fact]
    public void Without_profile_the_json_has_no_profile()
    {
        var r = CliRunner.Run("bench-train", "--model", "units=1/1/1/1,widths=0.125/0.125/0.125/0.125,k=2", "--num-classes", "10",
            "--batch-size", "2", "--size", "32", "--threads", "1", "--steps", "1", "--warmup", "0", "--json");
        Assert.Equal(0, r.ExitCode);
        using var doc = JsonDocument.Parse(r.StdOut);
        Assert.Equal(JsonValueKind.Null, doc.RootElement.GetProperty("profile").ValueKind);
    }

    [Fact]
    public void Table_names_the_model_and_throughput()
    {
        var r = CliRunner.Run("bench-train", "--model", "s0,classes=10", "--batch-size", "2", "--size", "32", "--threads", "1", "--steps", "1", "--warmup", "0");
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("bench-train: MobileOne-s0, 2x3x32x32, 1 thread(s)", r.StdOut);
        Assert.Contains("images/s", r.StdOut);
    }

    [Theory]
    [InlineData("--batch-size", "0", "--batch-size must be a positive integer; got 0")]
    [InlineData("--threads", "-1", "--threads must be a positive integer; got -1")]
    [InlineData("--steps", "0", "--steps must be a positive integer; got 0")]
    [InlineData("--warmup", "-2", "--warmup must be zero or a positive integer; got -2")]
    [InlineData("--num-classes", "0", "--num-classes must be a positive integer; got 0")]
    [InlineData("--model", "s9", "Unknown MobileOne variant 's9'")]
    [InlineData("--model", "s0,k=two", "k must be an integer; got 'two'")]
    public void Bad_options_fail_with_one_line_naming_the_option(string option, string value, string message)
    {
        var args = new List<string> { "bench-train", option, value, "--size", "32" };
        if (option != "--steps")
        {
            args.AddRange(["--steps", "1"]);
        }

        CliRunner.AssertCleanFailure(CliRunner.Run([.. args]), message);
    }

    [Fact]
    public void A_batch_with_one_value_per_channel_is_reported()
    {
        var r = CliRunner.Run("bench-train", "--model", "s0", "--size", "1", "--batch-size", "1", "--steps", "1", "--warmup", "0");
        CliRunner.AssertCleanFailure(r, "Expected more than 1 value per channel when training");
    }
}
