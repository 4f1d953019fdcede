using System.CommandLine;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json.Nodes;
using MobileOne.Cli.Benchmarking;
using MobileOne.Cli.Rendering;
using MobileOne.Imaging;
using MobileOne.Imaging.Plots;
using MobileOne.Models;
using MobileOne.Studies;
using MobileOne.Training;

namespace MobileOne.Cli.Commands;

/// <summary>
/// `mobileone study k`: the paper's over-parameterization study (Table 7). Trains every (model, k, seed) with the
/// project's recipe (<see cref="BranchCountStudy"/>), one folder per cell under --out, finished cells reused; reports
/// top-1 per k over the seeds with the parameter counts and the time per epoch, beside the paper's ImageNet numbers.
/// </summary>
internal static class StudyKCommand
{
    public const string Name = "k";
    public const string Section = "study-k";
    public const string PlotFile = "study-k-top1.png";
    private static readonly CultureInfo C = CultureInfo.InvariantCulture;

    public static Command Create()
    {
        var model = new Option<string[]>("--model") { Description = "s0..s4; repeat or comma-separate for several.", DefaultValueFactory = _ => ["s0"] };
        var ks = new Option<string[]>("--k") { Description = $"Branch counts k (1..{BranchCountStudy.MaxK}), comma-separated.", DefaultValueFactory = _ => ["1,2,3,4,5"] };
        var seeds = new Option<int>("--seeds") { Description = "Seeds per (model, k): runs seeds 0..M-1.", DefaultValueFactory = _ => 1 };
        var epochs = new Option<int>("--epochs") { Description = "Epochs per run.", DefaultValueFactory = _ => 10 };
        var batch = new Option<int>("--batch-size", "-b") { Description = "Images per step.", DefaultValueFactory = _ => 256 };
        var lr = new Option<double>("--lr") { Description = "Peak learning rate.", DefaultValueFactory = _ => 0.1 };
        var maxSteps = new Option<long?>("--max-steps") { Description = "Stop each run after this many steps (quick runs)." };
        var data = new Option<string?>("--data") { Description = "Fashion-MNIST IDX folder or an image folder; 'bundled' picks the subset in the library. Default as train: /usr/share/datasets/fashion-mnist, else the subset." };
        var threads = new Option<int>("--threads", "-j") { Description = "Compute threads.", DefaultValueFactory = _ => Environment.ProcessorCount };
        var workers = new Option<int>("--workers") { Description = "Data loading threads.", DefaultValueFactory = _ => 1 };
        var output = new Option<string>("--out") { Description = "Folder with one folder per (model, k, seed); finished ones are not trained again.", DefaultValueFactory = _ => Path.Combine("output", "study-k") };
        var json = new Option<bool>("--json") { Description = "Print a JSON array, one object per run (progress goes to stderr)." };
        var plotDir = new Option<string?>("--plot-dir") { Description = $"Write {PlotFile} (top-1 against k, one point per seed) into this folder." };
        var reportOnly = new Option<bool>("--report-only") { Description = "Train nothing: report the cells of --out that have finished (a study stopped early, or with more seeds for one model than another) and say which are missing." };
        var writeDocs = new Option<string?>("--write-docs") { Description = $"Replace the <!-- {Section}:begin/end --> section of this Markdown file (default {StudyReport.DefaultDocsPath}).", Arity = ArgumentArity.ZeroOrOne };
        var command = new Command(Name, "The paper's over-parameterization study: train each model with k = 1..5 parallel conv-BN branches over several seeds, evaluate unfused and fused, report top-1 per k.");
        foreach (var o in new Option[] { model, ks, seeds, epochs, batch, lr, maxSteps, data, threads, workers, output, json, plotDir, writeDocs, reportOnly })
        {
            command.Options.Add(o);
        }

        CommandAction.Set(command, r =>
        {
            var models = Models(BenchCommand.List(r.GetValue(model)));
            var kValues = Ks(BenchCommand.List(r.GetValue(ks)));
            int seedCount = r.GetValue(seeds);
            if (seedCount <= 0)
            {
                throw new ArgumentException($"--seeds must be a positive integer; got {seedCount}.");
            }

            string outDir = r.GetValue(output)!;
            if (string.IsNullOrWhiteSpace(outDir))
            {
                throw new ArgumentException("--out must name a folder.");
            }

            var recipe = new BranchStudyRecipe(r.GetValue(data), r.GetValue(epochs), r.GetValue(batch), r.GetValue(lr), r.GetValue(maxSteps));
            int threadCount = r.GetValue(threads), workerCount = r.GetValue(workers);
            // Seed by seed: a study stopped early has every k of the first seeds rather than every seed of the first k.
            var cells = Enumerable.Range(0, seedCount).SelectMany(s => models.SelectMany(m => kValues.Select(k => new BranchStudyCell(m, k, s)))).ToList();

            // Every option is checked before the first minute of training.
            BranchCountStudy.Options(outDir, cells[0], recipe, threadCount, workerCount).Validate();
            string? docsPath = StudyCommand.DocsPath(r, writeDocs, Section);
            string? plots = StudyCommand.PlotFolder(r.GetValue(plotDir));
            string commandLine = BenchCommand.CommandLine();
            var started = DateTimeOffset.UtcNow;
            string load = Machine.ReadLoadAverage();

            bool onlyFinished = r.GetValue(reportOnly);
            if (onlyFinished && cells.All(c => BranchCountStudy.TryLoad(outDir, c, recipe) is null))
            {
                throw new ArgumentException($"--report-only: {outDir} holds no finished cell of these models, k and seeds (recipe '{recipe}').");
            }

            var results = new List<BranchStudyResult>();
            var missing = new List<BranchStudyCell>();
            for (int i = 0; i < cells.Count; i++)
            {
                var cell = cells[i];
                string label = $"[{i + 1}/{cells.Count}] {cell.Model} k={cell.K} seed {cell.Seed}";
                var result = BranchCountStudy.TryLoad(outDir, cell, recipe);
                if (result is not null)
                {
                    Console.Error.WriteLine($"{label}: finished before, reused ({Path.Combine(outDir, cell.Folder, BranchCountStudy.ResultFile)})");
                }
                else if (onlyFinished)
                {
                    Console.Error.WriteLine($"{label}: not finished in {outDir}, left out (--report-only)");
                    missing.Add(cell);
                    continue;
                }
                else
                {
                    Console.Error.WriteLine($"{label}: training in {Path.Combine(outDir, cell.Folder)}");
                    result = BranchCountStudy.Run(outDir, cell, recipe, threadCount, workerCount, SkiaImageDecoder.Instance, new ProgressObserver(label));
                }

                Console.Error.WriteLine(string.Create(C, $"{label}: top-1 {result.Top1:0.0000} (fused {result.Top1Fused:0.0000}), top-5 {result.Top5:0.0000}, {result.TrainSeconds:0} s"));
                results.Add(result);
            }

            var summaries = BranchCountStudy.Summarize(results);
            if (r.GetValue(json))
            {
                Report.WriteJson(new JsonArray(results.Select(x => (JsonNode)BranchCountStudy.ToJson(x)).ToArray()));
            }
            else
            {
                Console.Out.Write(PlainText(results, summaries));
            }

            if (plots is not null)
            {
                string path = Path.Combine(plots, PlotFile);
                Plot(path, results, summaries);
                Console.Error.WriteLine($"wrote {path}");
            }

            if (docsPath is not null)
            {
                BenchReport.WriteDocs(docsPath, Markdown(results, summaries, commandLine, started, load, missing), Section, StudyReport.DocsTitle);
                Console.Error.WriteLine($"wrote the {Section} section of {docsPath}");
            }

            return 0;
        });
        return command;
    }

    internal static List<string> Models(List<string> names)
    {
        if (names.Count == 0)
        {
            throw new ArgumentException("--model needs at least one of s0, s1, s2, s3, s4.");
        }

        var models = new List<string>();
        foreach (string name in names)
        {
            var config = MobileOneConfig.Variants.FirstOrDefault(v => string.Equals(v.Name, name, StringComparison.OrdinalIgnoreCase))
                ?? throw new ArgumentException($"--model: unknown model '{name}'; expected s0, s1, s2, s3 or s4.");
            if (!models.Contains(config.Name))
            {
                models.Add(config.Name);
            }
        }

        return models;
    }

    internal static List<int> Ks(List<string> values)
    {
        if (values.Count == 0)
        {
            throw new ArgumentException($"--k needs at least one branch count from 1 to {BranchCountStudy.MaxK}.");
        }

        var result = new List<int>();
        foreach (string item in values)
        {
            if (!int.TryParse(item, NumberStyles.Integer, C, out int k) || k < 1 || k > BranchCountStudy.MaxK)
            {
                throw new ArgumentException($"--k takes branch counts from 1 to {BranchCountStudy.MaxK} separated by commas; got '{item}'.");
            }

            if (!result.Contains(k))
            {
                result.Add(k);
            }
        }

        return result;
    }

    private static string Percent(double fraction) => (100 * fraction).ToString("0.00", C);

    private static string PlainText(IReadOnlyList<BranchStudyResult> results, IReadOnlyList<BranchStudySummary> summaries)
    {
        var sb = new StringBuilder();
        sb.AppendLine("model  k  seed  top-1 %  fused %  top-5 %  params unfused  params fused  s/epoch");
        foreach (var x in results)
        {
            sb.AppendLine(string.Create(C, $"{x.Model,-5} {x.K,2} {x.Seed,5} {Percent(x.Top1),8} {Percent(x.Top1Fused),8} {Percent(x.Top5),8} {Report.Millions(x.ParamsUnfused),15} {Report.Millions(x.ParamsFused),13} {x.SecondsPerEpoch,8:0.0}"));
        }

        sb.AppendLine();
        sb.AppendLine("model  k  runs  top-1 % mean  std   min-max        paper ImageNet top-1 %");
        foreach (var s in summaries)
        {
            sb.AppendLine(string.Create(C, $"{s.Model,-5} {s.K,2} {s.Runs,5} {Percent(s.Top1Mean),13} {100 * s.Top1Std,5:0.00}  {Percent(s.Top1Min) + "-" + Percent(s.Top1Max),-13}  {(s.PaperImageNetTop1 is double p ? p.ToString("0.0", C) : "-")}"));
        }

        return sb.ToString();
    }

    private static void Plot(string path, IReadOnlyList<BranchStudyResult> results, IReadOnlyList<BranchStudySummary> summaries)
    {
        var series = new List<PointSeries>();
        foreach (string m in summaries.Select(s => s.Model).Distinct())
        {
            var rows = summaries.Where(s => s.Model == m).OrderBy(s => s.K).ToList();
            series.Add(new PointSeries($"{m}, mean over seeds", rows.Select(s => (double)s.K).ToArray(), rows.Select(s => 100 * s.Top1Mean).ToArray(), Line: true));
            var runs = results.Where(x => x.Model == m).ToList();
            series.Add(new PointSeries($"{m}, one point per seed", runs.Select(x => (double)x.K).ToArray(), runs.Select(x => 100 * x.Top1).ToArray(), Line: false));
        }

        var first = results[0];
        string title = string.Create(C, $"study k: top-1 on {first.EvalSource} ({first.EvalImages} images), {first.Epochs} epoch{(first.Epochs == 1 ? "" : "s")}");
        PointsChart.Save(path, title, "k (parallel conv-BN branches per block)", "top-1 %", series);
    }

    internal static string Markdown(
        IReadOnlyList<BranchStudyResult> results, IReadOnlyList<BranchStudySummary> summaries, string command, DateTimeOffset started, string load, IReadOnlyList<BranchStudyCell>? missing = null)
    {
        var sb = new StringBuilder();
        sb.AppendLine($"<!-- {Section}:begin -->");
        sb.AppendLine(C, $"### Run of {started.ToString("yyyy-MM-dd HH:mm", C)} UTC");
        sb.AppendLine();
        sb.AppendLine(C, $"Command: `{command}`");
        sb.AppendLine();
        var first = results[0];
        int threads = first.Threads;
        sb.AppendLine(C, $"Machine: {Machine.CpuModel()}, {Environment.ProcessorCount} logical cores, {RuntimeInformation.FrameworkDescription}; {threads} compute thread{(threads == 1 ? "" : "s")} per run; load average at start (1, 5, 15 min): {load}.");
        if (missing is { Count: > 0 })
        {
            // A report of finished cells only: the machine line is the report's, the runs' own times are in the table.
            sb.AppendLine();
            sb.AppendLine(C, $"Finished cells only (`--report-only`): {results.Count} of {results.Count + missing.Count}; not run: {string.Join(", ", missing.Select(m => $"{m.Model} k={m.K} seed {m.Seed}"))}.");
        }

        sb.AppendLine();
        sb.AppendLine(C, $"Recipe: `{first.Recipe}`. Data: {first.TrainSource} for training, {first.EvalSource} ({first.EvalImages} images, {first.ImageSize}x{first.ImageSize}) for evaluation.");
        sb.AppendLine();
        sb.AppendLine("Top-1 in % of the evaluation images: mean over the seeds ± the sample standard deviation, and the range (min-max). Parameters are counted on the");
        sb.AppendLine("layer graphs for this data's classes and channels; s/epoch is the trainer's wall time per epoch (training steps and its evaluation), mean over the seeds.");
        foreach (string m in summaries.Select(s => s.Model).Distinct())
        {
            sb.AppendLine();
            sb.AppendLine(C, $"#### {m}");
            sb.AppendLine();
            sb.AppendLine("| k | runs | top-1 % mean ± std | top-1 % min-max | params unfused | params fused | s/epoch | paper ImageNet top-1 % |");
            sb.AppendLine("|---:|---:|---:|---:|---:|---:|---:|---:|");
            foreach (var s in summaries.Where(s => s.Model == m))
            {
                sb.AppendLine(string.Create(C, $"| {s.K} | {s.Runs} | {Percent(s.Top1Mean)} ± {100 * s.Top1Std:0.00} | {Percent(s.Top1Min)}-{Percent(s.Top1Max)} | {Report.Millions(s.ParamsUnfused)} | {Report.Millions(s.ParamsFused)} | {s.SecondsPerEpoch:0.0} | {(s.PaperImageNetTop1 is double p ? p.ToString("0.0", C) : "-")} |"));
            }
        }

        sb.AppendLine();
        var differ = results.Where(x => x.Top1 != x.Top1Fused).ToList();
        sb.AppendLine(differ.Count == 0
            ? $"Fused top-1 equals unfused top-1 in all {results.Count} runs."
            : string.Create(C, $"Fused top-1 differs from unfused in {differ.Count} of {results.Count} runs, by at most {differ.Max(x => Math.Abs(x.Top1 - x.Top1Fused)) * first.EvalImages:0} image(s) (float rounding at a decision boundary)."));
        sb.AppendLine($"<!-- {Section}:end -->");
        return sb.ToString();
    }

    /// <summary>Epoch lines on stderr, so that stdout carries only the result (the JSON array).</summary>
    private sealed class ProgressObserver(string label) : ITrainingObserver
    {
        public void Message(string text)
        {
        }

        public void EpochStarted(int epoch, int epochs, int stepsPerEpoch)
        {
        }

        public void StepCompleted(in StepProgress progress)
        {
        }

        public void EpochCompleted(EpochSummary summary, IReadOnlyList<EpochSummary> all) =>
            Console.Error.WriteLine(string.Create(C, $"{label}: epoch {summary.Epoch}: train_loss {summary.TrainLoss:0.0000} eval_top1 {summary.EvalTop1:0.0000}"));
    }
}
