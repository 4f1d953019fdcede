using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Spectre.Console;

namespace MobileOne.Cli.Benchmarking;

/// <summary>
/// One measured row of a study: the network's figures (parameters from the graph, activation memory from the managed
/// engine's buffer plan; the same on the rows of every engine), the paper's iPhone 12 latency for the variant, and
/// the engine's timings from <see cref="BenchRunner"/>.
/// </summary>
internal sealed record StudyRow(
    string Study,
    string Network,
    string Variant,
    long Parameters,
    long PeakActivationBytes,
    long ArenaBytes,
    double? PaperIphone12Ms,
    BenchResult Result);

/// <summary>Renders study rows: JSON, a Spectre or plain table, and the Markdown section of docs/studies.md.</summary>
internal static class StudyReport
{
    public const string DefaultDocsPath = "docs/studies.md";
    public const string DocsTitle = "# Latency studies";

    private static readonly CultureInfo C = CultureInfo.InvariantCulture;

    private static readonly string[] Columns =
        ["variant", "engine", "threads", "batch", "size", "MMACs", "params", "peak act. MB", "median ms", "p10 ms", "p90 ms", "x first", "paper ms", "paper x first", "max |diff|", "runs"];

    /// <summary>The docs section of a study: &lt;!-- study-NAME:begin/end --&gt;.</summary>
    public static string Section(string study) => "study-" + study;

    /// <summary>
    /// The row's median over the median of the study's first variant (ReLU, or the baseline) on the same engine,
    /// threads, batch and size: the slowdown the paper's tables show, comparable across machines.
    /// </summary>
    public static double? Relative(StudyRow row, IReadOnlyList<StudyRow> rows)
    {
        var first = rows.FirstOrDefault(r => r.Study == row.Study && r.Result.Engine == row.Result.Engine && r.Result.Threads == row.Result.Threads
            && r.Result.Batch == row.Result.Batch && r.Result.Size == row.Result.Size);
        return first is null || first.Result.MedianMs <= 0 ? null : row.Result.MedianMs / first.Result.MedianMs;
    }

    /// <summary>The paper's latency of the variant over that of the study's first variant.</summary>
    public static double? PaperRelative(StudyRow row, IReadOnlyList<StudyRow> rows)
    {
        double? first = rows.FirstOrDefault(r => r.Study == row.Study)?.PaperIphone12Ms;
        return row.PaperIphone12Ms is double p && first is double f ? p / f : null;
    }

    public static JsonArray ToJson(IReadOnlyList<StudyRow> rows) =>
        new(rows.Select(row =>
        {
            var r = row.Result;
            return (JsonNode)new JsonObject
            {
                ["study"] = row.Study,
                ["network"] = row.Network,
                ["variant"] = row.Variant,
                ["engine"] = r.Engine,
                ["threads"] = r.Threads,
                ["batch"] = r.Batch,
                ["size"] = r.Size,
                ["macs"] = r.MacsPerImage,
                ["params"] = row.Parameters,
                ["peak_activation_bytes"] = row.PeakActivationBytes,
                ["arena_bytes"] = row.ArenaBytes,
                ["median_ms"] = r.MedianMs,
                ["p10_ms"] = r.P10Ms,
                ["p90_ms"] = r.P90Ms,
                ["relative_to_first"] = Relative(row, rows),
                ["gflops"] = r.Gflops,
                ["max_abs_diff"] = double.IsFinite(r.MaxAbsDiff) ? r.MaxAbsDiff : null,
                ["max_abs_output"] = r.MaxAbsLogit,
                ["iterations"] = r.Iterations,
                ["warmup"] = r.Warmup,
                ["paper_iphone12_ms"] = row.PaperIphone12Ms,
                ["paper_relative_to_first"] = PaperRelative(row, rows),
            };
        }).ToArray());

    public static void WriteTerminal(IReadOnlyList<StudyRow> rows, Machine machine)
    {
        var facts = new Table().Title("machine").HideHeaders().AddColumn("").AddColumn("");
        foreach (var (name, value) in machine.Rows())
        {
            facts.AddRow(Markup.Escape(name), Markup.Escape(value));
        }

        AnsiConsole.Write(facts);
        foreach (var group in rows.GroupBy(r => r.Study))
        {
            var table = new Table().Title(Markup.Escape($"mobileone study {group.Key} ({group.First().Network})"));
            for (int i = 0; i < Columns.Length; i++)
            {
                var column = new TableColumn(Markup.Escape(Columns[i]));
                table.AddColumn(i is 0 or 1 ? column : column.RightAligned());
            }

            foreach (string[] row in Cells(group.ToList()))
            {
                table.AddRow(row.Select(Markup.Escape).ToArray());
            }

            AnsiConsole.Write(table);
        }
    }

    public static void WritePlain(IReadOnlyList<StudyRow> rows, Machine machine, TextWriter output)
    {
        int nameWidth = machine.Rows().Max(r => r.Name.Length);
        foreach (var (name, value) in machine.Rows())
        {
            output.WriteLine($"{(name + ":").PadRight(nameWidth + 1)} {value}");
        }

        foreach (var group in rows.GroupBy(r => r.Study))
        {
            output.WriteLine();
            output.WriteLine($"study {group.Key}, network {group.First().Network}");
            var cells = Cells(group.ToList()).Prepend(Columns).ToList();
            int[] widths = Enumerable.Range(0, Columns.Length).Select(c => cells.Max(r => r[c].Length)).ToArray();
            foreach (string[] row in cells)
            {
                output.WriteLine(string.Join("  ", row.Select((cell, c) => c is 0 or 1 ? cell.PadRight(widths[c]) : cell.PadLeft(widths[c]))).TrimEnd());
            }
        }
    }

    /// <summary>The section between the markers: the run's machine, command, method line and table.</summary>
    public static string Markdown(string study, IReadOnlyList<StudyRow> rows, Machine machine, string command, BenchSettings settings) =>
        BenchReport.MarkdownSection(
            Section(study), machine, command,
            BenchReport.Protocol(settings) + ", engines alternating in blocks (the protocol of `mobileone bench`). `x first` = median / the median of the study's first variant on the same engine and threads; `paper ms` = iPhone 12 (MobileOne, Tables 3 and 4) and `paper x first` its ratio to the paper's first row; `peak act. MB` = the managed engine's planned peak of live activations per run; `max |diff|` is against the managed engine's output.",
            Columns, c => c is 0 or 1, Cells(rows));

    private static IEnumerable<string[]> Cells(IReadOnlyList<StudyRow> rows)
    {
        foreach (var row in rows)
        {
            var r = row.Result;
            double? relative = Relative(row, rows);
            double? paperRelative = PaperRelative(row, rows);
            yield return
            [
                row.Variant,
                r.Engine,
                r.Threads.ToString(C),
                r.Batch.ToString(C),
                r.Size.ToString(C),
                (r.MacsPerImage / 1e6).ToString("0.0", C),
                (row.Parameters / 1e6).ToString("0.00", C) + "M",
                (row.PeakActivationBytes / 1048576.0).ToString("0.00", C),
                Ms(r.MedianMs),
                Ms(r.P10Ms),
                Ms(r.P90Ms),
                relative is double x ? x.ToString("0.00", C) + "x" : "-",
                row.PaperIphone12Ms is double p ? p.ToString("0.00", C) : "-",
                paperRelative is double px ? px.ToString("0.00", C) + "x" : "-",
                r.MaxAbsDiff == 0 ? "0" : r.MaxAbsDiff.ToString("0.0e+0", C),
                r.Iterations.ToString(C),
            ];
        }
    }

    private static string Ms(double ms) => ms.ToString(ms < 1 ? "0.000" : ms < 100 ? "0.00" : "0.0", C);
}
