using System.CommandLine;
using System.Globalization;
using MobileOne.Cli.Benchmarking;
using MobileOne.Cli.Rendering;
using MobileOne.Imaging.Plots;
using MobileOne.Inference;
using MobileOne.Studies;

namespace MobileOne.Cli.Commands;

/// <summary>
/// `mobileone study activations|blocks`: the paper's latency studies (MobileOne, Tables 3 and 4) on the 30-layer study
/// network (<see cref="StudyNetwork"/>), every variant timed on the managed engine and on ONNX Runtime exactly as
/// `bench` times a model (<see cref="BenchRunner"/>: same input, warm-up, budget, interleaving and statistics).
/// `study k`, the training study of the branch count, is a subcommand with its own options (<see cref="StudyKCommand"/>).
/// </summary>
internal static class StudyCommand
{
    public const string FlopsLatency = "flops-latency";
    private const int WeightSeed = 0;

    public static Command Create()
    {
        var study = new Argument<string>("study") { Description = $"{StudyNetwork.ActivationsStudy}, {StudyNetwork.BlocksStudy} or {FlopsLatency} (not available yet: it needs the model zoo); the training study 'study {StudyKCommand.Name}' has options of its own." };
        var engines = new Option<string[]>("--engines") { Description = "managed, onnxruntime or both (comma list).", DefaultValueFactory = _ => ["managed,onnxruntime"] };
        var threads = new Option<string[]>("--threads") { Description = "Thread counts to measure, e.g. 1,2.", DefaultValueFactory = _ => ["1"] };
        var batch = new Option<string[]>("--batch") { Description = "Batch sizes to measure, e.g. 1,8.", DefaultValueFactory = _ => ["1"] };
        var size = new Option<int>("--size") { Description = $"Input resolution (at least {BenchCommand.MinSize}).", DefaultValueFactory = _ => 224 };
        var iterations = new Option<string?>("--iterations") { Description = "Timed runs per engine and combination (default: as many as fit --budget)." };
        var warmup = new Option<string?>("--warmup") { Description = "Untimed runs before timing (default: about 0.5 s worth, at least 2)." };
        var budget = new Option<double>("--budget") { Description = "Seconds of timed runs per engine and combination when --iterations is not given.", DefaultValueFactory = _ => 2.0 };
        var json = new Option<bool>("--json") { Description = "Print a JSON array, one object per variant, engine and combination." };
        var plotDir = new Option<string?>("--plot-dir") { Description = "Write PNG bar charts of the study into this folder (created if missing)." };
        var writeDocs = new Option<string?>("--write-docs") { Description = $"Replace the study's marked section (<!-- study-NAME:begin/end -->) of this Markdown file (default {StudyReport.DefaultDocsPath}).", Arity = ArgumentArity.ZeroOrOne };
        var command = new Command("study", "The paper's latency studies on a 30-layer convolutional network: activations (ReLU, GELU, SE-ReLU, SiLU, dynamic shift-max, DyReLU-A/B) or blocks (baseline, + squeeze-excite, + skip connections), managed engine against ONNX Runtime.");
        command.Arguments.Add(study);
        foreach (var option in new Option[] { engines, threads, batch, size, iterations, warmup, budget, json, plotDir, writeDocs })
        {
            command.Options.Add(option);
        }

        CommandAction.Set(command, r =>
        {
            string name = (r.GetValue(study) ?? string.Empty).Trim().ToLowerInvariant();
            if (name == FlopsLatency)
            {
                throw new ArgumentException($"study {FlopsLatency} needs the model zoo (MobileOne S0..S4 fused and unfused, RepVGG, ResNet, MobileNet V1/V2 as layer graphs), which the project does not have yet; run 'study {StudyNetwork.ActivationsStudy}' or 'study {StudyNetwork.BlocksStudy}'.");
            }

            if (name is not (StudyNetwork.ActivationsStudy or StudyNetwork.BlocksStudy))
            {
                throw new ArgumentException($"study: unknown study '{r.GetValue(study)}'; expected {StudyNetwork.ActivationsStudy}, {StudyNetwork.BlocksStudy} or {FlopsLatency}.");
            }

            var engineNames = BenchCommand.Engines(BenchCommand.List(r.GetValue(engines)));
            var threadCounts = BenchCommand.PositiveInts(r.GetValue(threads), "--threads");
            var batchSizes = BenchCommand.PositiveInts(r.GetValue(batch), "--batch");
            int imageSize = r.GetValue(size);
            if (imageSize < BenchCommand.MinSize)
            {
                throw new ArgumentException($"--size must be at least {BenchCommand.MinSize} (the study network's last stage reaches 1x1 at 32); got {imageSize}.");
            }

            int? runs = BenchCommand.OptionalInt(r.GetValue(iterations), "--iterations", min: 1, "a positive integer");
            int? warm = BenchCommand.OptionalInt(r.GetValue(warmup), "--warmup", min: 0, "zero or a positive integer");
            double seconds = r.GetValue(budget);
            if (!(seconds > 0) || double.IsInfinity(seconds))
            {
                throw new ArgumentException($"--budget must be a positive number of seconds; got {seconds.ToString(CultureInfo.InvariantCulture)}.");
            }

            // Fail before minutes of measuring, not after.
            string section = StudyReport.Section(name);
            string? docsPath = DocsPath(r, writeDocs, section);
            string? plots = PlotFolder(r.GetValue(plotDir));

            var machine = Machine.Describe();
            Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"FMA peak {machine.PeakGflopsPerCore:0.0} GFLOP/s per core ({machine.PeakKernel}); ONNX Runtime {machine.OnnxRuntime}"));
            var settings = new BenchSettings(engineNames, imageSize, runs, warm, seconds, machine.PeakGflopsPerCore);
            var rows = new List<StudyRow>();
            foreach (var variant in StudyNetwork.Variants(name))
            {
                var graph = StudyNetwork.Build(variant.Config, WeightSeed);
                var model = new BenchModel(variant.Name, graph);
                long parameters = graph.Parameters();

                // The buffer plan is the same for every thread count; one compiled model answers for every batch.
                using var planned = CompiledModel.Compile(graph);
                foreach (int t in threadCounts)
                {
                    foreach (int b in batchSizes)
                    {
                        var (values, arena) = planned.ActivationBytes(b, imageSize, imageSize);
                        var measured = BenchRunner.Measure(model, t, b, settings);
                        rows.AddRange(measured.Select(m => new StudyRow(name, StudyNetwork.Name, variant.Name, parameters, values, arena, StudyNetwork.PaperIphone12Ms(name, variant.Name), m)));
                        Console.Error.WriteLine($"{name} {variant.Name} threads {t} batch {b}: " + string.Join(", ", measured.Select(m => string.Create(CultureInfo.InvariantCulture, $"{m.Engine} {m.MedianMs:0.###} ms ({m.Iterations} runs, max |diff| {m.MaxAbsDiff:0.#e+0})"))));
                    }
                }
            }

            if (r.GetValue(json))
            {
                Report.WriteJson(StudyReport.ToJson(rows));
            }
            else if (Console.IsOutputRedirected)
            {
                StudyReport.WritePlain(rows, machine, Console.Out);
            }
            else
            {
                StudyReport.WriteTerminal(rows, machine);
            }

            if (plots is not null)
            {
                foreach (string written in Plot(name, rows, plots))
                {
                    Console.Error.WriteLine($"wrote {written}");
                }
            }

            if (docsPath is not null)
            {
                BenchReport.WriteDocs(docsPath, StudyReport.Markdown(name, rows, machine, BenchCommand.CommandLine(), settings), section, StudyReport.DocsTitle);
                Console.Error.WriteLine($"wrote the {section} section of {docsPath}");
            }

            return 0;
        });
        command.Subcommands.Add(StudyKCommand.Create());
        return command;
    }

    /// <summary>The --write-docs file (the option alone means docs/studies.md), its section's markers checked before any work; null without the option.</summary>
    internal static string? DocsPath(ParseResult r, Option<string?> writeDocs, string section)
    {
        string? docsPath = r.GetResult(writeDocs) is null ? null : r.GetValue(writeDocs) ?? StudyReport.DefaultDocsPath;
        if (docsPath is not null)
        {
            BenchReport.CheckDocs(docsPath, section, StudyReport.DocsTitle);
        }

        return docsPath;
    }

    /// <summary>The --plot-dir folder, created if missing; null without the option.</summary>
    internal static string? PlotFolder(string? plots)
    {
        if (plots is not null)
        {
            if (File.Exists(plots))
            {
                throw new ArgumentException($"--plot-dir {plots}: is a file; expected a folder.");
            }

            Directory.CreateDirectory(plots);
        }

        return plots;
    }

    /// <summary>
    /// Two charts per study: latency per variant (one bar per engine, threads and batch; the paper's iPhone 12 beside
    /// them), on a log axis when the variants span more than a decade, and the slowdown relative to the first variant,
    /// which is what can be compared across a phone and a CPU.
    /// </summary>
    private static List<string> Plot(string study, IReadOnlyList<StudyRow> rows, string folder)
    {
        var variants = rows.Select(r => r.Variant).Distinct().ToList();
        var combos = rows.Select(r => (r.Result.Engine, r.Result.Threads, r.Result.Batch)).Distinct().ToList();
        bool manyBatches = combos.Select(c => c.Batch).Distinct().Count() > 1;
        string Label((string Engine, int Threads, int Batch) c) => $"{c.Engine}, {c.Threads} thread{(c.Threads == 1 ? "" : "s")}" + (manyBatches ? $", batch {c.Batch}" : "");
        StudyRow? Find(string variant, (string Engine, int Threads, int Batch) c) =>
            rows.FirstOrDefault(r => r.Variant == variant && r.Result.Engine == c.Engine && r.Result.Threads == c.Threads && r.Result.Batch == c.Batch);

        var absolute = combos.Select(c => new BarSeries(Label(c), variants.Select(v => Find(v, c)?.Result.MedianMs ?? double.NaN).ToArray())).ToList();
        absolute.Add(new BarSeries("paper, iPhone 12", variants.Select(v => StudyNetwork.PaperIphone12Ms(study, v) ?? double.NaN).ToArray()));
        var relative = combos.Select(c => new BarSeries(Label(c), variants.Select(v => Find(v, c) is { } row ? StudyReport.Relative(row, rows) ?? double.NaN : double.NaN).ToArray())).ToList();
        relative.Add(new BarSeries("paper, iPhone 12", variants.Select(v => StudyReport.PaperRelative(rows.First(r => r.Variant == v), rows) ?? double.NaN).ToArray()));

        int size = rows[0].Result.Size;
        var all = absolute.SelectMany(s => s.Values).Where(double.IsFinite).ToList();
        bool log = all.Count > 0 && all.Max() > 10 * all.Min();
        string latencyPath = Path.Combine(folder, $"study-{study}-latency.png");
        string relativePath = Path.Combine(folder, $"study-{study}-relative.png");
        GroupedBarChart.Save(latencyPath, $"study {study}: {StudyNetwork.Name} at {size}x{size}, median latency", "ms", variants, absolute, log);
        var allRelative = relative.SelectMany(s => s.Values).Where(double.IsFinite).ToList();
        bool logRelative = allRelative.Count > 0 && allRelative.Max() > 10 * allRelative.Min();
        GroupedBarChart.Save(relativePath, $"study {study}: latency relative to {variants[0]}", $"x {variants[0]}", variants, relative, logRelative);
        return [latencyPath, relativePath];
    }
}
