using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using MobileOne.IO;
using Spectre.Console;

namespace MobileOne.Cli.Benchmarking;

/// <summary>Renders benchmark results: a Spectre table, plain aligned text, JSON, or a Markdown section for docs/benchmarks.md.</summary>
internal static class BenchReport
{
    /// <summary>The section of the fused benchmark; --unfused runs write <see cref="UnfusedSection"/> instead.</summary>
    public const string FusedSection = "bench";
    public const string UnfusedSection = "bench-unfused";

    /// <summary>The section of a registry run (<c>bench --model</c>): the zoo against ONNX Runtime.</summary>
    public const string ZooSection = "bench-zoo";
    public const string BeginMarker = "<!-- bench:begin -->";
    public const string EndMarker = "<!-- bench:end -->";

    public static (string Begin, string End) Markers(string section) => ($"<!-- {section}:begin -->", $"<!-- {section}:end -->");

    private static readonly CultureInfo C = CultureInfo.InvariantCulture;

    private static readonly string[] Columns =
        ["variant", "threads", "batch", "size", "engine", "median ms", "p10 ms", "p90 ms", "GFLOP/s", "% of peak", "max |diff|", "max |logit|", "runs", "time / ORT"];

    public static JsonArray ToJson(IReadOnlyList<BenchResult> results, Machine machine) =>
        new(results.Select(r =>
        {
            var row = new JsonObject
            {
                ["engine"] = r.Engine,
                ["variant"] = r.Variant,
                ["form"] = r.Form,
                ["threads"] = r.Threads,
                ["batch"] = r.Batch,
                ["size"] = r.Size,
                ["median_ms"] = r.MedianMs,
                ["p10_ms"] = r.P10Ms,
                ["p90_ms"] = r.P90Ms,
                ["gflops"] = r.Gflops,
                ["peak_share"] = r.PeakShare,
                ["peak_gflops_per_core"] = machine.PeakGflopsPerCore,
                ["max_abs_diff"] = double.IsFinite(r.MaxAbsDiff) ? r.MaxAbsDiff : null,
                ["max_abs_logit"] = r.MaxAbsLogit,
                ["iterations"] = r.Iterations,
                ["warmup"] = r.Warmup,
                ["macs_per_image"] = r.MacsPerImage,
            };
            if (r.Profile is not null)
            {
                row["profile"] = new JsonArray(r.Profile.Select(l => (JsonNode)new JsonObject
                {
                    ["layer"] = l.Name,
                    ["kind"] = l.Kind,
                    ["algorithm"] = l.Algorithm,
                    ["in_channels"] = l.InChannels,
                    ["out_channels"] = l.OutChannels,
                    ["out_height"] = l.OutHeight,
                    ["out_width"] = l.OutWidth,
                    ["macs_per_image"] = l.MacsPerImage,
                    ["ms"] = l.Ms,
                    ["share"] = l.Share,
                }).ToArray());
            }

            return (JsonNode)row;
        }).ToArray());

    /// <summary>The per-layer profile of every managed row that has one: a table per combination, then totals per layer kind.</summary>
    public static void WriteProfiles(IReadOnlyList<BenchResult> results, TextWriter output)
    {
        foreach (var r in results.Where(r => r.Profile is not null))
        {
            var layers = r.Profile!;
            output.WriteLine();
            output.WriteLine(string.Create(C, $"profile: {r.Variant}, {r.Threads} thread(s), batch {r.Batch}, {r.Size}x{r.Size}: {layers.Sum(l => l.Ms):0.###} ms over {layers.Count} layers (each its own step; timed median {r.MedianMs:0.###} ms)"));
            int nameWidth = Math.Max(5, layers.Max(l => l.Name.Length));
            int algoWidth = Math.Max(9, layers.Max(l => l.Algorithm.Length));
            output.WriteLine($"{"layer".PadRight(nameWidth)}  {"kind",-17}  {"algorithm".PadRight(algoWidth)}  {"shape",16}  {"MMACs",8}  {"ms",8}  {"share",6}  {"GFLOP/s",8}");
            foreach (var l in layers)
            {
                string shape = $"{l.InChannels}->{l.OutChannels}@{l.OutHeight}x{l.OutWidth}";
                double gflops = l.Ms > 0 ? 2.0 * l.MacsPerImage * r.Batch / (l.Ms / 1e3) / 1e9 : 0;
                output.WriteLine(string.Create(C, $"{l.Name.PadRight(nameWidth)}  {l.Kind,-17}  {l.Algorithm.PadRight(algoWidth)}  {shape,16}  {l.MacsPerImage / 1e6,8:0.00}  {l.Ms,8:0.000}  {l.Share * 100,5:0.0}%  {gflops,8:0.0}"));
            }

            output.WriteLine("by kind:");
            foreach (var group in layers.GroupBy(l => l.Kind).OrderByDescending(g => g.Sum(l => l.Ms)))
            {
                output.WriteLine(string.Create(C, $"  {group.Key,-17} {group.Count(),4} layers  {group.Sum(l => l.Ms),8:0.000} ms  {group.Sum(l => l.Share) * 100,5:0.0}%"));
            }
        }
    }

    public static void WriteTerminal(IReadOnlyList<BenchResult> results, Machine machine)
    {
        var facts = new Table().Title("machine").HideHeaders().AddColumn("").AddColumn("");
        foreach (var (name, value) in machine.Rows())
        {
            facts.AddRow(Markup.Escape(name), Markup.Escape(value));
        }

        AnsiConsole.Write(facts);
        var table = new Table().Title("mobileone bench");
        for (int i = 0; i < Columns.Length; i++)
        {
            var column = new TableColumn(Markup.Escape(Columns[i]));
            table.AddColumn(i is 0 or 4 ? column : column.RightAligned());
        }

        foreach (string[] row in Rows(results))
        {
            table.AddRow(row.Select(Markup.Escape).ToArray());
        }

        AnsiConsole.Write(table);
    }

    public static void WritePlain(IReadOnlyList<BenchResult> results, Machine machine, TextWriter output)
    {
        int nameWidth = machine.Rows().Max(r => r.Name.Length);
        foreach (var (name, value) in machine.Rows())
        {
            output.WriteLine($"{(name + ":").PadRight(nameWidth + 1)} {value}");
        }

        output.WriteLine();
        var rows = Rows(results).Prepend(Columns).ToList();
        int[] widths = Enumerable.Range(0, Columns.Length).Select(c => rows.Max(r => r[c].Length)).ToArray();
        foreach (string[] row in rows)
        {
            output.WriteLine(string.Join("  ", row.Select((cell, c) => c is 0 or 4 ? cell.PadRight(widths[c]) : cell.PadLeft(widths[c]))).TrimEnd());
        }
    }

    /// <summary>The section between the markers: the run's machine, command and table.</summary>
    public static string Markdown(IReadOnlyList<BenchResult> results, Machine machine, string command, BenchSettings settings, string section = FusedSection) =>
        MarkdownSection(
            section, machine, command,
            Protocol(settings) + ", engines alternating in blocks. GFLOP/s counts 2 FLOPs per multiply-add of the direct convolution (the managed engine's Winograd 3x3 layers do fewer multiplications, so its rate can pass the peak); `% of peak` = GFLOP/s / (measured FMA peak per core x threads); `max |diff|` is against the managed engine's logits; `time / ORT` = median / ONNX Runtime's median.",
            Columns, c => c is 0 or 4, Rows(results));

    /// <summary>The input and timing protocol of a run, as the method line of a written section starts.</summary>
    internal static string Protocol(BenchSettings settings)
    {
        string iterations = settings.Iterations is int n ? $"{n} timed runs per engine" : $"timed runs per engine chosen for about {settings.BudgetSeconds.ToString("0.##", C)} s each ({BenchRunner.MinAutoIterations} to {BenchRunner.MaxAutoIterations})";
        string warmup = settings.Warmup is int w ? $"{w} warm-up runs" : "about 0.5 s of warm-up";
        return $"Input {settings.Size}x{settings.Size}, seeded random normal, the same bytes for every engine; {warmup}; {iterations}";
    }

    /// <summary>
    /// A section between its markers: the run's date, command, machine table, method line and result table
    /// (<paramref name="leftAligned"/> columns are text, the others numbers), then <paramref name="after"/> if given
    /// (more Markdown, e.g. a second table). Shared by <c>bench</c> and <c>study</c>.
    /// </summary>
    internal static string MarkdownSection(
        string section, Machine machine, string command, string method, IReadOnlyList<string> columns, Func<int, bool> leftAligned, IEnumerable<string[]> rows, string? after = null)
    {
        var (beginMarker, endMarker) = Markers(section);
        var sb = new StringBuilder();
        sb.AppendLine(beginMarker);
        sb.AppendLine(C, $"### Run of {machine.Date.ToString("yyyy-MM-dd HH:mm", C)} UTC");
        sb.AppendLine();
        sb.AppendLine(C, $"Command: `{command}`");
        sb.AppendLine();
        sb.AppendLine("| machine | |");
        sb.AppendLine("|---|---|");
        foreach (var (name, value) in machine.Rows())
        {
            sb.AppendLine(C, $"| {name} | {value} |");
        }

        sb.AppendLine();
        sb.AppendLine(method);
        sb.AppendLine();
        sb.Append(MarkdownTable(columns, leftAligned, rows));
        if (after is not null)
        {
            sb.AppendLine();
            sb.Append(after);
        }

        sb.AppendLine(endMarker);
        return sb.ToString();
    }

    /// <summary>A Markdown table (header, alignment row, one line per row), each line ending in a newline.</summary>
    internal static string MarkdownTable(IReadOnlyList<string> columns, Func<int, bool> leftAligned, IEnumerable<string[]> rows)
    {
        var sb = new StringBuilder();
        sb.AppendLine("| " + string.Join(" | ", columns.Select(c => c.Replace("|", "\\|", StringComparison.Ordinal))) + " |");
        sb.AppendLine("|" + string.Concat(columns.Select((_, c) => leftAligned(c) ? "---|" : "---:|")));
        foreach (string[] row in rows)
        {
            sb.AppendLine("| " + string.Join(" | ", row) + " |");
        }

        return sb.ToString();
    }

    /// <summary>
    /// Replaces the marked section of <paramref name="path"/> (or appends one, or creates the file) through a
    /// temporary file and a rename, so the rest of the document survives and a failure leaves it as it was.
    /// </summary>
    public static void WriteDocs(string path, string text, string section = FusedSection, string newFileTitle = DefaultTitle)
    {
        string updated = Splice(path, text, section, newFileTitle);
        AtomicFile.Write(path, s => s.Write(new UTF8Encoding(encoderShouldEmitUTF8Identifier: false).GetBytes(updated)));
    }

    /// <summary>Checks, before any measuring, that <paramref name="path"/> can take the section: its folder exists and its markers are sound.</summary>
    public static void CheckDocs(string path, string section = FusedSection, string newFileTitle = DefaultTitle)
    {
        string? folder = Path.GetDirectoryName(Path.GetFullPath(path));
        if (folder is not null && !Directory.Exists(folder))
        {
            throw new ArgumentException($"--write-docs {path}: the folder '{folder}' does not exist.");
        }

        if (Directory.Exists(path))
        {
            throw new ArgumentException($"--write-docs {path}: is a directory; expected a Markdown file.");
        }

        Splice(path, string.Empty, section, newFileTitle);
    }

    /// <summary>The first line of a document that --write-docs creates.</summary>
    private const string DefaultTitle = "# Benchmarks";

    private static string Splice(string path, string text, string section, string newFileTitle)
    {
        var (beginMarker, endMarker) = Markers(section);
        string existing = File.Exists(path) ? File.ReadAllText(path) : newFileTitle + "\n";
        int begin = existing.IndexOf(beginMarker, StringComparison.Ordinal);
        int end = existing.IndexOf(endMarker, StringComparison.Ordinal);
        string updated;
        if (begin < 0 && end < 0)
        {
            updated = existing.TrimEnd('\n') + "\n\n" + text;
        }
        else if (begin >= 0 && end > begin && existing.IndexOf(beginMarker, begin + 1, StringComparison.Ordinal) < 0)
        {
            updated = string.Concat(existing.AsSpan(0, begin), text.TrimEnd('\n'), existing.AsSpan(end + endMarker.Length));
        }
        else
        {
            throw new InvalidDataException($"{path}: expected one '{beginMarker}' followed by one '{endMarker}' around the {section} section; found them missing, repeated or out of order. Fix the markers or remove both.");
        }

        return updated;
    }

    private static IEnumerable<string[]> Rows(IReadOnlyList<BenchResult> results)
    {
        foreach (var r in results)
        {
            var ort = results.FirstOrDefault(o => o.Engine == EngineNames.OnnxRuntime && o.Variant == r.Variant && o.Threads == r.Threads && o.Batch == r.Batch && o.Size == r.Size);
            yield return
            [
                r.Variant,
                r.Threads.ToString(C),
                r.Batch.ToString(C),
                r.Size.ToString(C),
                r.Engine,
                Ms(r.MedianMs),
                Ms(r.P10Ms),
                Ms(r.P90Ms),
                r.Gflops.ToString("0.0", C),
                (100 * r.PeakShare).ToString("0.0", C) + "%",
                r.MaxAbsDiff == 0 ? "0" : r.MaxAbsDiff.ToString("0.0e+0", C),
                r.MaxAbsLogit.ToString("g3", C),
                r.Iterations.ToString(C),
                ort is null ? "-" : (r.MedianMs / ort.MedianMs).ToString("0.00", C) + "x",
            ];
        }
    }

    private static string Ms(double ms) => ms.ToString(ms < 1 ? "0.000" : ms < 100 ? "0.00" : "0.0", C);
}
