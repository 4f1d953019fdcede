using System.Text.Json;
using MobileOne.Cli.Benchmarking;
using MobileOne.Models;
using MobileOne.Studies;

namespace MobileOne.Tests.Cli;

/// <summary>`mobileone study` at toy sizes: the rows, the docs section and the charts, not the speed.</summary>
public class StudyCommandTests
{
    private static readonly string[] Tiny = ["--size", "32", "--iterations", "2", "--warmup", "0", "--threads", "1", "--batch", "1"];

    [Fact]
    public void Activations_json_is_one_array_with_a_row_per_variant_and_engine_and_the_network_figures()
    {
        var r = CliRunner.Run(["study", "activations", .. Tiny, "--engines", "managed,onnxruntime", "--json"]);
        Assert.True(r.ExitCode == 0, r.StdErr);
        using var doc = JsonDocument.Parse(r.StdOut);
        var rows = doc.RootElement.EnumerateArray().ToList();
        string[] variants = ["relu", "gelu", "se-relu", "silu", "dynamic-shift-max", "dyrelu-a", "dyrelu-b"];
        Assert.Equal(variants.SelectMany(v => new[] { (v, "managed"), (v, "onnxruntime") }), rows.Select(o => (o.GetProperty("variant").GetString()!, o.GetProperty("engine").GetString()!)));
        foreach (var o in rows)
        {
            string variant = o.GetProperty("variant").GetString()!;
            var graph = StudyNetwork.Build(StudyNetwork.Activations.Single(v => v.Name == variant).Config);
            Assert.Equal("activations", o.GetProperty("study").GetString());
            Assert.Equal("conv30", o.GetProperty("network").GetString());
            Assert.Equal((1, 1, 32, 2, 0), (o.GetProperty("threads").GetInt32(), o.GetProperty("batch").GetInt32(), o.GetProperty("size").GetInt32(), o.GetProperty("iterations").GetInt32(), o.GetProperty("warmup").GetInt32()));
            Assert.Equal(graph.MultiplyAccumulates(32, 32), o.GetProperty("macs").GetInt64());
            Assert.Equal(graph.Parameters(), o.GetProperty("params").GetInt64());
            long peak = o.GetProperty("peak_activation_bytes").GetInt64();
            Assert.InRange(peak, 16 * 16 * 32 * 4, o.GetProperty("arena_bytes").GetInt64());
            double median = o.GetProperty("median_ms").GetDouble(), p10 = o.GetProperty("p10_ms").GetDouble(), p90 = o.GetProperty("p90_ms").GetDouble();
            Assert.True(p10 > 0 && p10 <= median && median <= p90, $"{variant}: p10 {p10}, median {median}, p90 {p90}");
            Assert.Equal(StudyNetwork.PaperIphone12Ms("activations", variant), o.GetProperty("paper_iphone12_ms").GetDouble());
            Assert.Equal(StudyNetwork.PaperIphone12Ms("activations", variant)!.Value / 1.53, o.GetProperty("paper_relative_to_first").GetDouble(), 9);
            double scale = Math.Max(1, o.GetProperty("max_abs_output").GetDouble());
            Assert.InRange(o.GetProperty("max_abs_diff").GetDouble() / scale, 0, 1e-4);
        }

        // The network's figures are the same on both engines' rows; the first variant is the reference of x first.
        Assert.All(rows.Chunk(2), pair => Assert.Equal(pair[0].GetProperty("peak_activation_bytes").GetInt64(), pair[1].GetProperty("peak_activation_bytes").GetInt64()));
        Assert.Equal(1.0, rows[0].GetProperty("relative_to_first").GetDouble());
        Assert.Equal(rows[2].GetProperty("median_ms").GetDouble() / rows[0].GetProperty("median_ms").GetDouble(), rows[2].GetProperty("relative_to_first").GetDouble(), 9);
    }

    [Fact]
    public void Blocks_plain_table_plots_and_write_docs_replace_only_the_study_section()
    {
        using var dir = new TempDir();
        string docs = dir.File("studies.md");
        string original = "# Studies\n\nintro\n\n<!-- study-blocks:begin -->\nold\n<!-- study-blocks:end -->\n\n<!-- study-activations:begin -->\nkeep\n<!-- study-activations:end -->\n";
        File.WriteAllText(docs, original);
        string plots = Path.Combine(dir.Path, "charts", "blocks");
        var r = CliRunner.Run(["study", "blocks", .. Tiny, "--engines", "managed", "--plot-dir", plots, "--write-docs", docs]);
        Assert.True(r.ExitCode == 0, r.StdErr);
        Assert.DoesNotContain("\u001b[", r.StdOut);
        string[] lines = r.StdOut.Split('\n');
        foreach (string variant in new[] { "baseline", "se", "skip" })
        {
            Assert.Single(lines, l => l.StartsWith(variant + " ", StringComparison.Ordinal) && l.Contains(" managed "));
        }

        string updated = File.ReadAllText(docs);
        Assert.StartsWith("# Studies\n\nintro\n\n<!-- study-blocks:begin -->\n### Run of ", updated);
        Assert.EndsWith("<!-- study-blocks:end -->\n\n<!-- study-activations:begin -->\nkeep\n<!-- study-activations:end -->\n", updated);
        Assert.DoesNotContain("\nold\n", updated);
        Assert.Contains("| variant | engine | threads | batch | size | MMACs | params | peak act. MB | median ms |", updated);
        Assert.Contains("| skip | managed | 1 | 1 | 32 |", updated);
        Assert.Contains("| 2.62 | 1.71x |", updated);

        foreach (string name in new[] { "study-blocks-latency.png", "study-blocks-relative.png" })
        {
            byte[] png = File.ReadAllBytes(Path.Combine(plots, name));
            Assert.True(png.Length > 1000, name);
            Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, png[..4]);
        }
    }

    [Theory]
    [InlineData("nonsense", "study: unknown study 'nonsense'; expected activations, blocks or flops-latency.")]
    [InlineData("flops-latency --models resnet18,nope", "--models: unknown network 'nope'; expected conv30 or one of: mobileone_s0,")]
    [InlineData("blocks --models resnet18", "--models: only study flops-latency measures a list of networks; study blocks has its own variants.")]
    [InlineData("activations --threads 0", "--threads takes positive integers separated by commas; got '0'.")]
    [InlineData("activations --batch x", "--batch takes positive integers separated by commas; got 'x'.")]
    [InlineData("blocks --size 16", "--size must be at least 32 (the study network's and the zoo's last stage reach 1x1 at 32); got 16.")]
    [InlineData("blocks --engines managed,tensorrt", "--engines: unknown engine 'tensorrt'; expected managed or onnxruntime.")]
    [InlineData("blocks --iterations 0", "--iterations must be a positive integer; got '0'.")]
    [InlineData("blocks --warmup -1", "--warmup must be zero or a positive integer; got '-1'.")]
    [InlineData("blocks --budget 0", "--budget must be a positive number of seconds; got 0.")]
    [InlineData("blocks --write-docs /no/such/folder/s.md", "--write-docs /no/such/folder/s.md: the folder '/no/such/folder' does not exist.")]
    public void Bad_options_fail_with_one_clear_error(string options, string message)
    {
        var r = CliRunner.Run(["study", .. options.Split(' ')]);
        CliRunner.AssertCleanFailure(r, message);
        Assert.Equal(string.Empty, r.StdOut);
    }

    [Fact]
    public void Flops_latency_json_has_the_zoo_counts_fused_forms_and_planned_activations_per_size()
    {
        string[] tiny = ["--iterations", "2", "--warmup", "0", "--threads", "1", "--batch", "1", "--engines", "managed", "--json"];
        var r = CliRunner.Run(["study", "flops-latency", "--models", "mobilenetv2_035,resnet18,repvgg_a0", "--size", "64", .. tiny]);
        Assert.True(r.ExitCode == 0, r.StdErr);
        using var doc = JsonDocument.Parse(r.StdOut);
        var rows = doc.RootElement.EnumerateArray().ToList();

        // Listing order (RepVGG before ResNet before MobileNet), both forms of RepVGG, the others as they are.
        Assert.Equal(
            [("repvgg_a0", "unfused"), ("repvgg_a0", "fused"), ("resnet18", "plain"), ("mobilenetv2_035", "plain")],
            rows.Select(o => (o.GetProperty("network").GetString()!, o.GetProperty("variant").GetString()!)));
        string[] fields = ["study", "network", "variant", "engine", "threads", "batch", "size", "macs", "params", "peak_activation_bytes", "arena_bytes", "median_ms", "p10_ms", "p90_ms", "gflops", "max_abs_diff", "max_abs_output", "iterations", "warmup"];
        foreach (var o in rows)
        {
            Assert.Equal(fields, o.EnumerateObject().Select(p => p.Name));
            Assert.Equal("flops-latency", o.GetProperty("study").GetString());
            Assert.Equal(("managed", 1, 1, 64), (o.GetProperty("engine").GetString(), o.GetProperty("threads").GetInt32(), o.GetProperty("batch").GetInt32(), o.GetProperty("size").GetInt32()));
            var stats = ModelStatistics.Compute(ModelRegistry.Get(o.GetProperty("network").GetString()!), 64);
            bool fused = o.GetProperty("variant").GetString() == "fused";
            Assert.Equal(fused ? stats.MacsFused : stats.MacsUnfused, o.GetProperty("macs").GetInt64());
            Assert.Equal(fused ? stats.ParamsFused : stats.ParamsUnfused, o.GetProperty("params").GetInt64());
            Assert.InRange(o.GetProperty("peak_activation_bytes").GetInt64(), 1, o.GetProperty("arena_bytes").GetInt64());
            double median = o.GetProperty("median_ms").GetDouble(), p10 = o.GetProperty("p10_ms").GetDouble(), p90 = o.GetProperty("p90_ms").GetDouble();
            Assert.True(p10 > 0 && p10 <= median && median <= p90, $"p10 {p10}, median {median}, p90 {p90}");
        }

        Assert.True(rows[1].GetProperty("macs").GetInt64() < rows[0].GetProperty("macs").GetInt64(), "fused RepVGG has fewer MACs than unfused");
        Assert.True(rows[1].GetProperty("params").GetInt64() < rows[0].GetProperty("params").GetInt64(), "fused RepVGG has fewer parameters than unfused");

        // The buffer plan grows with the input: 96x96 has 2.25x the pixels of 64x64.
        var bigger = CliRunner.Run(["study", "flops-latency", "--models", "mobilenetv2_035", "--size", "96", .. tiny]);
        Assert.True(bigger.ExitCode == 0, bigger.StdErr);
        using var biggerDoc = JsonDocument.Parse(bigger.StdOut);
        Assert.True(
            biggerDoc.RootElement[0].GetProperty("peak_activation_bytes").GetInt64() > rows[3].GetProperty("peak_activation_bytes").GetInt64(),
            "peak activations grow with the input size");
    }

    [Fact]
    public void Flops_latency_plain_table_correlations_plots_and_docs_section()
    {
        using var dir = new TempDir();
        string docs = dir.File("studies.md");
        string original = "# Studies\n\n<!-- study-flops-latency:begin -->\nold\n<!-- study-flops-latency:end -->\n\n<!-- study-blocks:begin -->\nkeep\n<!-- study-blocks:end -->\n";
        File.WriteAllText(docs, original);
        string plots = Path.Combine(dir.Path, "charts");
        var r = CliRunner.Run(["study", "flops-latency", "--models", "conv30,mobilenetv2_035", .. Tiny, "--engines", "managed", "--plot-dir", plots, "--write-docs", docs]);
        Assert.True(r.ExitCode == 0, r.StdErr);
        string[] lines = r.StdOut.Split('\n');

        // The study networks once each: the blocks study's baseline and se are the activations study's relu and se-relu.
        foreach (string variant in new[] { "relu", "gelu", "se-relu", "silu", "dynamic-shift-max", "dyrelu-a", "dyrelu-b", "skip" })
        {
            Assert.Single(lines, l => l.StartsWith("conv30 ", StringComparison.Ordinal) && l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1] == variant);
        }

        Assert.DoesNotContain(lines, l => l.Contains(" baseline ", StringComparison.Ordinal));
        Assert.Single(lines, l => l.StartsWith("mobilenetv2_035 ", StringComparison.Ordinal) && l.Contains(" plain ", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("correlation of median latency with MACs and with parameters", StringComparison.Ordinal));
        Assert.Single(lines, l => l.StartsWith("managed ", StringComparison.Ordinal) && l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[4] == "9");

        string updated = File.ReadAllText(docs);
        Assert.StartsWith("# Studies\n\n<!-- study-flops-latency:begin -->\n### Run of ", updated);
        Assert.EndsWith("<!-- study-flops-latency:end -->\n\n<!-- study-blocks:begin -->\nkeep\n<!-- study-blocks:end -->\n", updated);
        Assert.Contains("| network | variant | engine | threads | batch | size | MMACs | params | peak act. MB | median ms | p10 ms | p90 ms | max \\|diff\\| | runs |", updated);
        Assert.Contains("| engine | threads | batch | size | networks | Pearson r, MACs | Spearman rho, MACs | Pearson r, params | Spearman rho, params |", updated);
        Assert.Contains("| managed | 1 | 1 | 32 | 9 |", updated);

        foreach (string name in new[] { "study-flops-latency-macs.png", "study-flops-latency-params.png" })
        {
            byte[] png = File.ReadAllBytes(Path.Combine(plots, name));
            Assert.True(png.Length > 1000, name);
            Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, png[..4]);
        }
    }

    [Fact]
    public void A_plot_dir_that_is_a_file_and_broken_markers_fail_before_measuring()
    {
        using var dir = new TempDir();
        string file = dir.File("not-a-folder");
        File.WriteAllText(file, "x");
        var r = CliRunner.Run(["study", "blocks", .. Tiny, "--plot-dir", file]);
        CliRunner.AssertCleanFailure(r, $"--plot-dir {file}: is a file; expected a folder.");

        string docs = dir.File("studies.md");
        File.WriteAllText(docs, "<!-- study-blocks:begin -->\n");
        r = CliRunner.Run(["study", "blocks", .. Tiny, "--write-docs", docs]);
        CliRunner.AssertCleanFailure(r, "expected one '<!-- study-blocks:begin -->' followed by one '<!-- study-blocks:end -->'");
        Assert.Equal("<!-- study-blocks:begin -->\n", File.ReadAllText(docs));
        Assert.DoesNotContain("FMA peak", r.StdErr);
    }

    [Fact]
    public void A_missing_docs_file_is_created_with_the_studies_title()
    {
        using var dir = new TempDir();
        string docs = dir.File("new.md");
        var row = new StudyRow("blocks", "conv30", "baseline", 10, 20, 30, 1.53, new BenchResult("managed", "baseline", 1, 1, 32, 1.5, 1.4, 1.6, 10, 0.1, 0, 3, 2, 0, 100));
        var machine = new Machine("cpu", 2, "AVX2", "Vector256 FMA", 100, ".NET 10", "1.31.1", DateTimeOffset.UnixEpoch, "0.10, 0.20, 0.30");
        string section = StudyReport.Markdown("blocks", [row], machine, "mobileone study blocks", new BenchSettings(["managed"], 32, 2, 0, 2, 100));
        BenchReport.WriteDocs(docs, section, StudyReport.Section("blocks"), StudyReport.DocsTitle);
        Assert.Equal(StudyReport.DocsTitle + "\n\n" + section, File.ReadAllText(docs));
        Assert.Contains("| baseline | managed | 1 | 1 | 32 | 0.0 | 0.00M | 0.00 | 1.50 | 1.40 | 1.60 | 1.00x | 1.53 | 1.00x | 0 | 2 |", section);
    }
}
