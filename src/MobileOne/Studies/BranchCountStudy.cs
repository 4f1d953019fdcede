using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using MobileOne.Data;
using MobileOne.Data.Loading;
using MobileOne.IO;
using MobileOne.Models;
using MobileOne.Reparam;
using MobileOne.Training;

namespace MobileOne.Studies;

/// <summary>One cell of the k study: a MobileOne variant trained with <see cref="K"/> parallel conv-BN branches and one seed.</summary>
public sealed record BranchStudyCell(string Model, int K, int Seed)
{
    /// <summary>The cell's folder under the study's output folder, e.g. <c>s0-k3-seed1</c>.</summary>
    public string Folder => string.Create(CultureInfo.InvariantCulture, $"{Model}-k{K}-seed{Seed}");

    /// <summary>The model description the trainer takes, e.g. <c>s0,k=3</c>.</summary>
    public string Description => string.Create(CultureInfo.InvariantCulture, $"{Model},k={K}");
}

/// <summary>
/// What every cell is trained with: the project's recipe (SGD Nesterov 0.9, 1 epoch linear warm-up then cosine to 0,
/// weight decay 5e-4 off BatchNorm and biases, label smoothing 0.1, as `train`), with these values. Two runs with the
/// same recipe, cell and thread count give the same numbers bit for bit.
/// </summary>
public sealed record BranchStudyRecipe(string? Data, int Epochs, int BatchSize, double LearningRate, long? MaxSteps)
{
    /// <summary>The recipe as one line; a finished cell is reused only when its line is this one.</summary>
    public override string ToString() => string.Create(
        CultureInfo.InvariantCulture,
        $"data={Data ?? "default"} epochs={Epochs} batch={BatchSize} lr={LearningRate:R} max_steps={(MaxSteps is long m ? m.ToString(CultureInfo.InvariantCulture) : "none")} sgd-nesterov wd=5e-4 smoothing=0.1 warmup=1");
}

/// <summary>A trained and evaluated cell, as stored in its folder's <see cref="BranchCountStudy.ResultFile"/>.</summary>
public sealed record BranchStudyResult(
    string Model, int K, int Seed, string Recipe, int Epochs, int EpochsRun, long Steps, int Threads,
    double Top1, double Top5, double Top1Fused, double Top5Fused, double EvalLoss, int EvalImages,
    long ParamsUnfused, long ParamsFused, long MacsUnfused, long MacsFused, int ImageSize,
    double TrainSeconds, string TrainSource, string EvalSource)
{
    /// <summary>Wall seconds of the trainer per epoch run (training steps plus the trainer's evaluation after each epoch).</summary>
    public double SecondsPerEpoch => TrainSeconds / Math.Max(1, EpochsRun);
}

/// <summary>One k of one model over its seeds: top-1 mean, sample standard deviation and range; sizes and time.</summary>
public sealed record BranchStudySummary(
    string Model, int K, int Runs, double Top1Mean, double Top1Std, double Top1Min, double Top1Max,
    long ParamsUnfused, long ParamsFused, double SecondsPerEpoch, double? PaperImageNetTop1);

/// <summary>
/// The paper's over-parameterization study (MobileOne, Table 7: ImageNet top-1 of S0 and S1 for k = 1..5): each
/// (model, k, seed) trained with the project's recipe, evaluated unfused and fused on the evaluation set. Every cell
/// keeps its own folder (the trainer's checkpoints and summary.csv) and a result file written atomically last, so a
/// stopped study run again skips its finished cells; a cell without a result file is trained again from scratch.
/// </summary>
public static class BranchCountStudy
{
    /// <summary>A finished cell's result, in the cell's folder (written last, atomically).</summary>
    public const string ResultFile = "result.json";

    /// <summary>The largest number of branches a study accepts.</summary>
    public const int MaxK = 8;

    /// <summary>The paper's ImageNet top-1 (%) for k = 1..5 (Table 7), or null where it gives none.</summary>
    public static double? PaperImageNetTop1(string model, int k)
    {
        double[]? row = model.ToLowerInvariant() switch
        {
            "s0" => [70.9, 70.7, 71.3, 71.4, 71.1],
            "s1" => [75.9, 75.7, 75.6, 75.6, 75.2],
            _ => null,
        };
        return row is not null && k >= 1 && k <= row.Length ? row[k - 1] : null;
    }

    /// <summary>Reads a finished cell's result, or null when the cell has none yet. A result of another recipe is an error.</summary>
    public static BranchStudyResult? TryLoad(string outDir, BranchStudyCell cell, BranchStudyRecipe recipe)
    {
        string path = Path.Combine(outDir, cell.Folder, ResultFile);
        if (!File.Exists(path))
        {
            return null;
        }

        BranchStudyResult result;
        try
        {
            result = FromJson(JsonNode.Parse(File.ReadAllText(path)) ?? throw new InvalidDataException("empty"));
        }
        catch (Exception e) when (e is JsonException or InvalidDataException or InvalidOperationException or FormatException)
        {
            throw new InvalidDataException($"{path}: not a k-study result ({e.Message}); delete it to train the cell again.");
        }

        if (result.Recipe != recipe.ToString() || result.Model != cell.Model || result.K != cell.K || result.Seed != cell.Seed)
        {
            throw new ArgumentException($"{path}: this cell was trained with '{result.Recipe}', not '{recipe}'; use another --out or delete the folder.");
        }

        return result;
    }

    /// <summary>The trainer's options for a cell (the recipe of `train`, with the recipe's values); Validate names the option at fault.</summary>
    public static TrainingOptions Options(string outDir, BranchStudyCell cell, BranchStudyRecipe recipe, int threads, int workers) => new()
    {
        Model = cell.Description,
        Data = recipe.Data,
        Epochs = recipe.Epochs,
        BatchSize = recipe.BatchSize,
        LearningRate = recipe.LearningRate,
        WarmupEpochs = 1,
        WeightDecay = 5e-4,
        Smoothing = 0.1,
        Seed = cell.Seed,
        Threads = threads,
        Workers = workers,
        Output = Path.Combine(outDir, cell.Folder),
        MaxSteps = recipe.MaxSteps,
        LogInterval = 50,
    };

    /// <summary>Trains, evaluates (unfused and fused) and stores one cell; its previous partial files are overwritten.</summary>
    public static BranchStudyResult Run(
        string outDir, BranchStudyCell cell, BranchStudyRecipe recipe, int threads, int workers, IImageDecoder? decoder = null, ITrainingObserver? observer = null)
    {
        var options = Options(outDir, cell, recipe, threads, workers);
        string folder = options.Output;
        options.Validate();
        var clock = Stopwatch.StartNew();
        var trained = Trainer.Run(options, decoder, observer);
        double seconds = clock.Elapsed.TotalSeconds;

        var unfused = (MobileOneNetwork)trained.Model;
        var config = unfused.Config;
        var fused = Reparameterizer.Fuse(unfused);
        var evalData = TrainingData.OpenEval(options.Data, decoder);
        bool fashion = TrainingData.IsFashionMnistFolder(options.Data ?? TrainingData.Bundled);
        var loader = new DataLoader(evalData, TrainingData.EvalTransform(fashion, options.ImageSizesFor(fashion)[^1], ModelRegistry.PretrainedFor(unfused.Architecture)), new DataLoaderOptions
        {
            BatchSize = 256, Shuffle = false, NumClasses = config.NumClasses, Workers = workers,
        });
        // The trainer evaluated the unfused model after its last step; only the fused form is new.
        var last = trained.Epochs[^1];
        var evalFused = Evaluator.Run(fused, loader, threads: threads);
        int size = loader.Transform.Height;
        var stats = ModelStatistics.Compute(config, size);
        var result = new BranchStudyResult(
            cell.Model, cell.K, cell.Seed, recipe.ToString(), recipe.Epochs, trained.Epochs.Count, trained.Steps, threads,
            last.EvalTop1, last.EvalTop5, evalFused.Top1, evalFused.Top5, last.EvalLoss, evalFused.Count,
            stats.ParamsUnfused, stats.ParamsFused, stats.MacsUnfused, stats.MacsFused, size,
            seconds, trained.TrainSource, trained.EvalSource);
        AtomicFile.WriteAllText(Path.Combine(folder, ResultFile), ToJson(result).ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        return result;
    }

    /// <summary>One row per (model, k) in the order first seen: mean, sample standard deviation (0 for one run), min and max of top-1.</summary>
    public static List<BranchStudySummary> Summarize(IEnumerable<BranchStudyResult> results) =>
        results.GroupBy(r => (r.Model, r.K)).Select(g =>
        {
            double[] top1 = g.Select(r => r.Top1).ToArray();
            double mean = top1.Average();
            double std = top1.Length > 1 ? Math.Sqrt(top1.Sum(v => (v - mean) * (v - mean)) / (top1.Length - 1)) : 0;
            var first = g.First();
            return new BranchStudySummary(
                g.Key.Model, g.Key.K, top1.Length, mean, std, top1.Min(), top1.Max(),
                first.ParamsUnfused, first.ParamsFused, g.Average(r => r.SecondsPerEpoch), PaperImageNetTop1(g.Key.Model, g.Key.K));
        }).ToList();

    /// <summary>The result as the JSON object of the result file and of `study k --json`.</summary>
    public static JsonObject ToJson(BranchStudyResult r) => new()
    {
        ["model"] = r.Model,
        ["k"] = r.K,
        ["seed"] = r.Seed,
        ["epochs"] = r.Epochs,
        ["epochs_run"] = r.EpochsRun,
        ["steps"] = r.Steps,
        ["threads"] = r.Threads,
        ["top1"] = r.Top1,
        ["top5"] = r.Top5,
        ["top1_fused"] = r.Top1Fused,
        ["top5_fused"] = r.Top5Fused,
        ["eval_loss"] = r.EvalLoss,
        ["eval_images"] = r.EvalImages,
        ["params_unfused"] = r.ParamsUnfused,
        ["params_fused"] = r.ParamsFused,
        ["macs_unfused"] = r.MacsUnfused,
        ["macs_fused"] = r.MacsFused,
        ["image_size"] = r.ImageSize,
        ["train_seconds"] = r.TrainSeconds,
        ["seconds_per_epoch"] = r.SecondsPerEpoch,
        ["paper_imagenet_top1"] = PaperImageNetTop1(r.Model, r.K),
        ["train_source"] = r.TrainSource,
        ["eval_source"] = r.EvalSource,
        ["recipe"] = r.Recipe,
    };

    private static BranchStudyResult FromJson(JsonNode n)
    {
        T Get<T>(string name) => (n[name] ?? throw new InvalidDataException($"no '{name}'")).GetValue<T>();
        return new(
            Get<string>("model"), Get<int>("k"), Get<int>("seed"), Get<string>("recipe"),
            Get<int>("epochs"), Get<int>("epochs_run"), Get<long>("steps"), Get<int>("threads"),
            Get<double>("top1"), Get<double>("top5"), Get<double>("top1_fused"), Get<double>("top5_fused"),
            Get<double>("eval_loss"), Get<int>("eval_images"),
            Get<long>("params_unfused"), Get<long>("params_fused"), Get<long>("macs_unfused"), Get<long>("macs_fused"),
            Get<int>("image_size"), Get<double>("train_seconds"), Get<string>("train_source"), Get<string>("eval_source"));
    }
}
