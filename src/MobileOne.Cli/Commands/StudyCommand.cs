using System.CommandLine;
using System.Globalization;
using MobileOne.Cli.Benchmarking;
using MobileOne.Cli.Rendering;
using MobileOne.Imaging.Plots;
using MobileOne.Inference;
using MobileOne.Models;
using MobileOne.Studies;

namespace MobileOne.Cli.Commands;

/// <summary>
/// `mobileone study activations|blocks|flops-latency`: the paper's latency studies (MobileOne, Tables 3 and 4) on the
/// 30-layer study network (<see cref="StudyNetwork"/>), and latency against MACs and parameters over the model zoo
/// and the study networks (flops-latency), every network timed on the managed engine and on ONNX Runtime exactly as
/// `bench` times a model (<see cref="BenchRunner"/>: same input, warm-up, budget, interleaving and statistics).
/// `study k`, the training study of the branch count, is a subcommand with its own options (<see cref="StudyKCommand"/>).
/// </summary>
internal static class StudyCommand
{
    public const string FlopsLatency = StudyReport.FlopsLatency;
    private const int WeightSeed = 0;

    public static Command Create()
    {
        var study = new Argument<string>("study") { Description = $"{StudyNetwork.ActivationsStudy}, {StudyNetwork.BlocksStudy} or {FlopsLatency}; the training study 'study {StudyKCommand.Name}' has options of its own." };
        var engines = new Option<string[]>("--engines") { Description = "managed, onnxruntime or both (comma list).", DefaultValueFactory = _ => ["managed,onnxruntime"] };
        var threads = new Option<string[]>("--threads") { Description = "Thread counts to measure, e.g. 1,2.", DefaultValueFactory = _ => ["1"] };
        var batch = new Option<string[]>("--batch") { Description = "Batch sizes to measure, e.g. 1,8.", DefaultValueFactory = _ => ["1"] };
        var size = new Option<int>("--size") { Description = $"Input resolution (at least {BenchCommand.MinSize}).", DefaultValueFactory = _ => 224 };
        var iterations = new Option<string?>("--iterations") { Description = "Timed runs per engine and combination (default: as many as fit --budget)." };
        var warmup = new Option<string?>("--warmup") { Description = "Untimed runs before timing (default: about 0.5 s worth, at least 2)." };
        var budget = new Option<double>("--budget") { Description = "Seconds of timed runs per engine and combination when --iterations is not given.", DefaultValueFactory = _ => 2.0 };
        var json = new Option<bool>("--json") { Description = "Print a JSON array, one object per network or variant, engine and combination." };
        var plotDir = new Option<string?>("--plot-dir") { Description = "Write PNG charts of the study into this folder (created if missing): bar charts, or for flops-latency scatter plots of latency against MACs and parameters." };
        var models = new Option<string[]>("--models") { Description = $"{FlopsLatency} only: the networks to measure, registry names (see `mobileone models`) or {StudyNetwork.Name} (every study-network variant); comma list (default: all)." };
        var writeDocs = new Option<string?>("--write-docs") { Description = $"Replace the study's marked section (<!-- study-NAME:begin/end -->) of this Markdown file (default {StudyReport.DefaultDocsPath}).", Arity = ArgumentArity.ZeroOrOne };
        var command = new Command("study", "The paper's latency studies, managed engine against ONNX Runtime: on a 30-layer convolutional network, activations (ReLU, GELU, SE-ReLU, SiLU, dynamic shift-max, DyReLU-A/B) or blocks (baseline, + squeeze-excite, + skip connections); flops-latency, latency against MACs and parameters over the model zoo and those networks.");
        command.Arguments.Add(study);
        foreach (var option in new Option[] { engines, threads, batch, size, iterations, warmup, budget, json, plotDir, models, writeDocs })
        {
            command.Options.Add(option);
        }

        CommandAction.Set(command, r =>
        {
            string name = (r.GetValue(study) ?? string.Empty).Trim().ToLowerInvariant();
            if (name is not (StudyNetwork.ActivationsStudy or StudyNetwork.BlocksStudy or FlopsLatency))
            {
                throw new ArgumentException($"study: unknown study '{r.GetValue(study)}'; expected {StudyNetwork.ActivationsStudy}, {StudyNetwork.BlocksStudy} or {FlopsLatency}.");
            }

            var modelNames = BenchCommand.List(r.GetValue(models));
            if (modelNames.Count > 0 && name != FlopsLatency)
            {
                throw new ArgumentException($"--models: only study {FlopsLatency} measures a list of networks; study {name} has its own variants.");
            }

            var (entries, studyNetworks) = name == FlopsLatency ? Networks(modelNames) : ([], false);

            var engineNames = BenchCommand.Engines(BenchCommand.List(r.GetValue(engines)));
            var threadCounts = BenchCommand.PositiveInts(r.GetValue(threads), "--threads");
            var batchSizes = BenchCommand.PositiveInts(r.GetValue(batch), "--batch");
            int imageSize = r.GetValue(size);
            if (imageSize < BenchCommand.MinSize)
            {
                throw new ArgumentException($"--size must be at least {BenchCommand.MinSize} (the study network's and the zoo's last stage reach 1x1 at 32); got {imageSize}.");
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
            void Add(string network, string variant, BenchModel model, double? paperMs) =>
                rows.AddRange(MeasureNetwork(name, network, variant, model, paperMs, threadCounts, batchSizes, settings));
            if (name == FlopsLatency)
            {
                foreach (var entry in entries)
                {
                    // One calibrated network per architecture: both forms of a re-parameterizable one are the same weights.
                    var network = BenchCommand.RegistryNetwork(entry);
                    foreach (bool unfused in entry.Reparameterizable ? new[] { true, false } : [false])
                    {
                        var model = BenchCommand.RegistryForm(entry, network, unfused);
                        Add(entry.Name, model.Form, model, null);
                    }
                }
            }

            foreach (var variant in name == FlopsLatency ? (studyNetworks ? FlopsStudyVariants : []) : StudyNetwork.Variants(name))
            {
                var graph = StudyNetwork.Build(variant.Config, WeightSeed);
                Add(StudyNetwork.Name, variant.Name, new BenchModel(variant.Name, graph), name == FlopsLatency ? null : StudyNetwork.PaperIphone12Ms(name, variant.Name));
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
                foreach (string written in name == FlopsLatency ? PlotFlops(rows, plots) : Plot(name, rows, plots))
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

    /// <summary>
    /// The study networks flops-latency measures: every variant of the activations and blocks studies, each distinct
    /// network once (the blocks study's baseline and se are the activations study's relu and se-relu).
    /// </summary>
    private static IReadOnlyList<StudyVariant> FlopsStudyVariants =>
        StudyNetwork.Activations.Concat(StudyNetwork.Blocks).DistinctBy(v => v.Config).ToList();

    /// <summary>The registry entries and whether the study networks are measured: all of them unless --models names some.</summary>
    private static (List<ModelEntry> Entries, bool StudyNetworks) Networks(List<string> names)
    {
        if (names.Count == 0)
        {
            return ([.. ModelRegistry.All], true);
        }

        var entries = new List<ModelEntry>();
        bool studyNetworks = false;
        foreach (string n in names)
        {
            if (string.Equals(n, StudyNetwork.Name, StringComparison.OrdinalIgnoreCase))
            {
                studyNetworks = true;
                continue;
            }

            var entry = ModelRegistry.Find(n)
                ?? throw new ArgumentException($"--models: unknown network '{n}'; expected {StudyNetwork.Name} or one of: {string.Join(", ", ModelRegistry.All.Select(e => e.Name))}.");
            if (!entries.Contains(entry))
            {
                entries.Add(entry);
            }
        }

        // Listing order, whatever the order given, so that runs with different lists line up.
        return (ModelRegistry.All.Where(entries.Contains).ToList(), studyNetworks);
    }

    /// <summary>
    /// Every engine, thread count and batch of one network, with the network's figures: parameters from the graph and
    /// activation memory from the managed engine's buffer plan (the same for every engine and thread count).
    /// </summary>
    private static List<StudyRow> MeasureNetwork(
        string study, string network, string variant, BenchModel model, double? paperMs, IReadOnlyList<int> threadCounts, IReadOnlyList<int> batchSizes, BenchSettings settings)
    {
        var rows = new List<StudyRow>();
        long parameters = model.Graph.Parameters();
        string label = network == StudyNetwork.Name ? variant : $"{network} {variant}";

        // One compiled model answers for every batch.
        using var planned = CompiledModel.Compile(model.Graph);
        foreach (int t in threadCounts)
        {
            foreach (int b in batchSizes)
            {
                var (values, arena) = planned.ActivationBytes(b, settings.Size, settings.Size);
                var measured = BenchRunner.Measure(model, t, b, settings);
                rows.AddRange(measured.Select(m => new StudyRow(study, network, variant, parameters, values, arena, paperMs, m)));
                Console.Error.WriteLine($"{study} {label} threads {t} batch {b}: " + string.Join(", ", measured.Select(m => string.Create(CultureInfo.InvariantCulture, $"{m.Engine} {m.MedianMs:0.###} ms ({m.Iterations} runs, max |diff| {m.MaxAbsDiff:0.#e+0})"))));
            }
        }

        return rows;
    }

    /// <summary>
    /// flops-latency's two scatter plots, median latency against MMACs and against millions of parameters, one
    /// series per engine, threads and batch, every point labelled with its network and form.
    /// </summary>
    private static List<string> PlotFlops(IReadOnlyList<StudyRow> rows, string folder)
    {
        var combos = rows.GroupBy(r => (r.Result.Engine, r.Result.Threads, r.Result.Batch)).ToList();
        bool manyBatches = combos.Select(c => c.Key.Batch).Distinct().Count() > 1;
        string Label((string Engine, int Threads, int Batch) c) => $"{c.Engine}, {c.Threads} thread{(c.Threads == 1 ? "" : "s")}" + (manyBatches ? $", batch {c.Batch}" : "");
        int size = rows[0].Result.Size;
        var written = new List<string>();
        foreach (var (file, axis, x) in new (string, string, Func<StudyRow, double>)[]
        {
            ("macs", "MMACs per image", r => r.Result.MacsPerImage / 1e6),
            ("params", "parameters (millions)", r => r.Parameters / 1e6),
        })
        {
            var series = combos.Select(c => new PointSeries(
                Label(c.Key), c.Select(x).ToArray(), c.Select(r => r.Result.MedianMs).ToArray(), Line: false,
                c.Select(r => r.Variant == "plain" ? r.Network : $"{r.Network} {r.Variant}").ToArray())).ToList();
            string path = Path.Combine(folder, $"study-{FlopsLatency}-{file}.png");
            PointsChart.Save(path, $"study {FlopsLatency}: median latency at {size}x{size} against {axis}", axis, "median ms", series, width: 1200, height: 800);
            written.Add(path);
        }

        return written;
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
