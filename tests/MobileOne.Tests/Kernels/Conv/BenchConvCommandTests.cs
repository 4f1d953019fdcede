using System.Text.Json;
using MobileOne.Tests.Cli;

namespace MobileOne.Tests.Kernels.Conv;

public class BenchConvCommandTests
{
    [Fact]
    public void Json_reports_the_three_algorithms_checked_and_timed()
    {
        var r = CliRunner.Run("bench-conv", "--layer", "stem-s0", "--iterations", "3", "--threads", "3", "--batch", "2", "--json");
        Assert.True(r.ExitCode == 0, r.StdErr);
        using var doc = JsonDocument.Parse(r.StdOut);
        var rows = doc.RootElement.EnumerateArray().ToList();
        Assert.Equal(["direct", "im2col", "im2win"], rows.Select(x => x.GetProperty("algorithm").GetString()));
        foreach (var row in rows)
        {
            Assert.Equal("stem-s0", row.GetProperty("layer").GetString());
            Assert.Equal(48L * 27 * 112 * 112, row.GetProperty("macs").GetInt64());
            Assert.Equal(3, row.GetProperty("iterations").GetInt32());
            Assert.Equal(2, row.GetProperty("batch").GetInt32());
            Assert.Equal(3, row.GetProperty("threads").GetInt32());
            Assert.True(row.GetProperty("max_abs_diff_vs_reference").GetDouble() < 1e-4);
            Assert.True(row.GetProperty("max_abs_diff_vs_direct").GetDouble() < 1e-4);
            double p10 = row.GetProperty("p10_ms").GetDouble(), median = row.GetProperty("median_ms").GetDouble(), p90 = row.GetProperty("p90_ms").GetDouble();
            Assert.True(p10 > 0 && p10 <= median && median <= p90, $"{p10} {median} {p90}");
            Assert.Equal(4 * (48 * 27 + 48), row.GetProperty("weight_bytes").GetInt64());
        }

        Assert.Equal(0, rows[0].GetProperty("workspace_bytes").GetInt64());
        Assert.Equal(1.0, rows[0].GetProperty("speedup_vs_direct").GetDouble());
        Assert.Equal(1.0, rows[1].GetProperty("speedup_vs_im2col").GetDouble());

        // 112 output rows in 3 bands: im2col unfolds 112*112 patch rows of 27 floats, im2win 112 window rows of 225*3*3.
        Assert.Equal(4L * 112 * 112 * 27, rows[1].GetProperty("workspace_bytes").GetInt64());
        Assert.Equal(4L * 112 * 225 * 9, rows[2].GetProperty("workspace_bytes").GetInt64());
    }

    [Fact]
    public void Table_is_plain_text_when_redirected()
    {
        var r = CliRunner.Run("bench-conv", "--layer", "pw 7x7", "--iterations", "2", "--simd", "256");
        Assert.True(r.ExitCode == 0, r.StdErr);
        Assert.Contains("Vector256", r.StdOut);
        Assert.Contains("median ms", r.StdOut);
        Assert.Contains("pw 7x7x256-1024  Im2Win", r.StdOut);
        Assert.DoesNotContain("\u001b[", r.StdOut);
    }

    [Theory]
    [InlineData("--iterations", "0", "--iterations must be a positive integer; got 0.")]
    [InlineData("--threads", "-2", "--threads must be a positive integer; got -2.")]
    [InlineData("--batch", "0", "--batch must be a positive integer; got 0.")]
    [InlineData("--simd", "128", "--simd must be auto, 512, 256 or scalar; got '128'.")]
    [InlineData("--layer", "9x9", "--layer '9x9' matches none of stem-s0, ")]
    public void Bad_options_fail_with_one_line_naming_the_option(string option, string value, string message)
    {
        var r = CliRunner.Run("bench-conv", option, value);
        CliRunner.AssertCleanFailure(r, message);
    }
}
