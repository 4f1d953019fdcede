using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using MobileOne.Studies;
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

/// <summary>Latency against MACs and parameters over the networks of one engine, threads, batch and size (NaN where undefined).</summary>
internal sealed record LatencyCorrelation(string Engine, int Threads, int Batch, int Size, int Points, double PearsonMacs, double SpearmanMacs, double PearsonParams, double SpearmanParams);

/// <summary>Renders study rows: JSON, a Spectre or plain table, and the Markdown section of docs/studies.md.</summary>
internal static class StudyReport
{
    public const string DefaultDocsPath = "docs/studies.md";
    public const string DocsTitle = "# Latency studies";

    /// <summary>The study of latency against MACs and parameters over the model zoo and the study networks.</summary>
    public const string FlopsLatency = "flops-latency";

    private static readonly CultureInfo C = CultureInfo.InvariantCulture;

    private static readonly string[] Columns =
        ["variant", "engine", "threads", "batch", "size", "MMACs", "params", "peak act. MB", "median ms", "p10 ms", "p90 ms", "x first", "paper ms", "paper x first", "max |diff|", "runs"];

    // flops-latency compares different networks, so the network is a column and there is no first variant or paper row to divide by.
    private static readonly string[] FlopsColumns =
        ["network", "variant", "engine", "threads", "batch", "size", "MMACs", "params", "peak act. MB", "median ms", "p10 ms", "p90 ms", "max |diff|", "runs"];

    private static readonly string[] CorrelationColumns =
        ["engine", "threads", "batch", "size", "networks", "Pearson r, MACs", "Spearman rho, MACs", "Pearson r, params", "Spearman rho, params"];

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

    /// <summary>
    /// Median latency against MACs and against parameters, one entry per engine, threads, batch and size of the rows
    /// (each network's row of that combination is one point).
    /// </summary>
    public static IReadOnlyList<LatencyCorrelation> Correlations(IReadOnlyList<StudyRow> rows) =>
        rows.GroupBy(r => (r.Result.Engine, r.Result.Threads, r.Result.Batch, r.Result.Size)).Select(g =>
        {
            double[] ms = g.Select(r => r.Result.MedianMs).ToArray();
            double[] macs = g.Select(r => (double)r.Result.MacsPerImage).ToArray();
            double[] parameters = g.Select(r => (double)r.Parameters).ToArray();
            return new LatencyCorrelation(
                g.Key.Engine, g.Key.Threads, g.Key.Batch, g.Key.Size, ms.Length,
                Correlation.Pearson(macs, ms), Correlation.Spearman(macs, ms), Correlation.Pearson(parameters, ms), Correlation.Spearman(parameters, ms));
        }).ToList();

    public static JsonArray ToJson(IReadOnlyList<StudyRow> rows) =>
        new(rows.Select(row =>
        {
            var r = row.Result;
            var o = new JsonObject
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
            };
            if (row.Study != FlopsLatency)
            {
                o["relative_to_first"] = Relative(row, rows);
            }

            o["gflops"] = r.Gflops;
            o["max_abs_diff"] = double.IsFinite(r.MaxAbsDiff) ? r.MaxAbsDiff : null;
            o["max_abs_output"] = r.MaxAbsLogit;
            o["iterations"] = r.Iterations;
            o["warmup"] = r.Warmup;
            if (row.Study != FlopsLatency)
            {
                o["paper_iphone12_ms"] = row.PaperIphone12Ms;
                o["paper_relative_to_first"] = PaperRelative(row, rows);
            }

            return (JsonNode)o;
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
            var (columns, leftAligned, cells) = Table(group.ToList());
            AnsiConsole.Write(SpectreTable(Title(group.ToList()), columns, leftAligned, cells));
            if (group.Key == FlopsLatency)
            {
                AnsiConsole.Write(SpectreTable(CorrelationTitle, CorrelationColumns, c => c == 0, CorrelationCells(group.ToList())));
            }
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
            output.WriteLine(Title(group.ToList()));
            var (columns, leftAligned, cells) = Table(group.ToList());
            WritePlainTable(columns, leftAligned, cells, output);
            if (group.Key == FlopsLatency)
            {
                output.WriteLine();
                output.WriteLine(CorrelationTitle);
                WritePlainTable(CorrelationColumns, c => c == 0, CorrelationCells(group.ToList()), output);
            }
        }
    }

    /// <summary>The section between the markers: the run's machine, command, method line and table (for flops-latency, then the correlations).</summary>
    public static string Markdown(string study, IReadOnlyList<StudyRow> rows, Machine machine, string command, BenchSettings settings)
    {
        var (columns, leftAligned, cells) = Table(rows);
        string protocol = BenchReport.Protocol(settings) + ", engines alternating in blocks (the protocol of `mobileone bench`). ";
        const string Common = "`peak act. MB` = the managed engine's planned peak of live activations per run; `max |diff|` is against the managed engine's output.";
        return study == FlopsLatency
            ? BenchReport.MarkdownSection(
                Section(study), machine, command,
                protocol + "`MMACs` per image, counted on the layer graph at the input size; `params` = trainable parameters. " + Common,
                columns, leftAligned, cells,
                CorrelationTitle + ":\n\n" + BenchReport.MarkdownTable(CorrelationColumns, c => c == 0, CorrelationCells(rows)))
            : BenchReport.MarkdownSection(
                Section(study), machine, command,
                protocol + "`x first` = median / the median of the study's first variant on the same engine and threads; `paper ms` = iPhone 12 (MobileOne, Tables 3 and 4) and `paper x first` its ratio to the paper's first row; " + Common,
                columns, leftAligned, cells);
    }

    private const string CorrelationTitle = "correlation of median latency with MACs and with parameters (one point per network and form)";

    private static string Title(IReadOnlyList<StudyRow> rows) =>
        rows[0].Study == FlopsLatency ? $"study {FlopsLatency}, {rows.Select(r => r.Network).Distinct().Count()} networks" : $"study {rows[0].Study}, network {rows[0].Network}";

    /// <summary>The study's columns, which of them are text, and its cells.</summary>
    private static (string[] Columns, Func<int, bool> LeftAligned, IEnumerable<string[]> Cells) Table(IReadOnlyList<StudyRow> rows) =>
        rows.Count > 0 && rows[0].Study == FlopsLatency
            // A paper study's cells less x first, paper ms and paper x first (columns 11..13), the network in front.
            ? (FlopsColumns, c => c is 0 or 1 or 2, rows.Select(row => Cells([row]).Single() is var c ? (string[])[row.Network, .. c[..11], .. c[14..]] : []))
            : (Columns, c => c is 0 or 1, Cells(rows));

    private static IEnumerable<string[]> CorrelationCells(IReadOnlyList<StudyRow> rows) =>
        Correlations(rows).Select(c => new[]
        {
            c.Engine, c.Threads.ToString(C), c.Batch.ToString(C), c.Size.ToString(C), c.Points.ToString(C),
            R(c.PearsonMacs), R(c.SpearmanMacs), R(c.PearsonParams), R(c.SpearmanParams),
        });

    private static string R(double r) => double.IsFinite(r) ? r.ToString("0.00", C) : "-";

    private static Table SpectreTable(string title, IReadOnlyList<string> columns, Func<int, bool> leftAligned, IEnumerable<string[]> cells)
    {
        var table = new Table().Title(Markup.Escape(title));
        for (int i = 0; i < columns.Count; i++)
        {
            var column = new TableColumn(Markup.Escape(columns[i]));
            table.AddColumn(leftAligned(i) ? column : column.RightAligned());
        }

        foreach (string[] row in cells)
        {
            table.AddRow(row.Select(Markup.Escape).ToArray());
        }

        return table;
    }

    private static void WritePlainTable(IReadOnlyList<string> columns, Func<int, bool> leftAligned, IEnumerable<string[]> cells, TextWriter output)
    {
        var all = cells.Prepend(columns.ToArray()).ToList();
        int[] widths = Enumerable.Range(0, columns.Count).Select(c => all.Max(r => r[c].Length)).ToArray();
        foreach (string[] row in all)
        {
            output.WriteLine(string.Join("  ", row.Select((cell, c) => leftAligned(c) ? cell.PadRight(widths[c]) : cell.PadLeft(widths[c]))).TrimEnd());
        }
    }

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
