using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using MobileOne.Cli.Rendering;
using MobileOne.Data.Loading;
using MobileOne.Imaging;
using MobileOne.IO;
using MobileOne.IO.Checkpoints;
using MobileOne.Models;
using MobileOne.Kernels;
using MobileOne.Reparam;
using MobileOne.Training;

namespace MobileOne.Cli.Commands;

internal static class EvalCommand
{
    public static Command Create()
    {
        var checkpoint = new Argument<string>("checkpoint") { Description = "Model checkpoint (any supported format and scheme)." };
        var data = new Option<string?>("--data") { Description = "Fashion-MNIST IDX folder, or an image folder (DIR/val or DIR). Default: Fashion-MNIST test split from the system or the bundled subset; 'bundled' picks the subset." };
        var fuse = new Option<bool>("--fuse") { Description = "Evaluate the fused (reparameterized) model on the inference engine." };
        var batch = new Option<int>("--batch-size", "-b") { Description = "Images per batch.", DefaultValueFactory = _ => 256 };
        var size = new Option<int?>("--img-size") { Description = "Evaluation size (default: the size the checkpoint records it was trained at, else 224 for image folders and 32 for Fashion-MNIST). Image folders resize by crop_pct and centre crop; Fashion-MNIST takes 28 plus a 2-pixel border at 32, and other sizes resize to size - 4 first, as train --img-size does." };
        var threads = new Option<int>("--threads", "-j") { Description = "Compute threads.", DefaultValueFactory = _ => Environment.ProcessorCount };
        var workers = new Option<int>("--workers") { Description = "Data loading threads.", DefaultValueFactory = _ => 2 };
        var predictions = new Option<string?>("--predictions") { Description = "Write index,label,predicted,probability for every image to this CSV." };
        var json = new Option<bool>("--json") { Description = "Print one JSON object (top1/top5 as fractions)." };
        var command = new Command("eval", "Evaluate a checkpoint: top-1, top-5 and loss (timm validate.py).");
        command.Arguments.Add(checkpoint);
        foreach (var o in new Option[] { data, fuse, batch, size, threads, workers, predictions, json })
        {
            command.Options.Add(o);
        }

        CommandAction.Set(command, r =>
        {
            int batchSize = Options.Positive(r.GetValue(batch), "--batch-size");
            int? sizeGiven = r.GetValue(size) is int s ? Options.Positive(s, "--img-size") : null;
            int threadCount = Options.Positive(r.GetValue(threads), "--threads");
            ComputeThreads.Count = threadCount;
            var loaded = ModelCheckpoint.LoadClassifier(r.GetValue(checkpoint)!);
            var network = r.GetValue(fuse) && loaded.Network.Reparameterizable && !loaded.Network.IsFused ? Reparameterizer.Fuse(loaded.Network) : loaded.Network;
            string? dataDir = r.GetValue(data);
            var dataset = TrainingData.OpenEval(dataDir, SkiaImageDecoder.Instance);
            if (dataset.ClassNames.Count > network.NumClasses)
            {
                throw new ArgumentException($"{dataset.Source} has {dataset.ClassNames.Count} classes but {loaded.Path} predicts {network.NumClasses}.");
            }

            if (dataset.Channels != network.InChans)
            {
                throw new ArgumentException($"{dataset.Source} has {dataset.Channels}-channel images but {loaded.Path} expects in_chans {network.InChans}.");
            }

            bool fashion = dataDir is null || TrainingData.IsFashionMnistFolder(dataDir);
            int imageSize = sizeGiven ?? loaded.InputSize ?? (fashion ? TrainingOptions.FashionMnistSize : 224);
            if (fashion && imageSize < TrainingOptions.FashionMnistMinSize)
            {
                throw new ArgumentException($"--img-size {imageSize}: Fashion-MNIST sizes must be at least {TrainingOptions.FashionMnistMinSize} (the 28x28 image is resized to size - 4 and given a 2-pixel border).");
            }

            var loader = new DataLoader(dataset, TrainingData.EvalTransform(fashion, imageSize, ModelRegistry.PretrainedFor(network.Architecture)), new DataLoaderOptions
            {
                BatchSize = batchSize, Shuffle = false, DropLast = false, Workers = Math.Max(0, r.GetValue(workers)), NumClasses = network.NumClasses,
            });
            var rows = r.GetValue(predictions) is null ? null : new List<Prediction>();
            var result = Evaluator.Run(network, loader, rows, threadCount);
            if (rows is not null)
            {
                WritePredictions(r.GetValue(predictions)!, rows);
            }

            if (r.GetValue(json))
            {
                Report.WriteJson(new JsonObject
                {
                    ["checkpoint"] = loaded.Path,
                    ["fused"] = network.IsFused,
                    ["data"] = dataset.Source,
                    ["img_size"] = imageSize,
                    ["top1"] = result.Top1,
                    ["top5"] = result.Top5,
                    ["loss"] = result.Loss,
                    ["count"] = result.Count,
                    ["skipped"] = result.SkippedImages,
                });
            }
            else
            {
                Console.WriteLine($"{loaded.Path} ({(network.IsFused ? "fused" : "unfused")}) on {dataset.Source} at {imageSize}x{imageSize}: {result.Count} images, loss {result.Loss.ToString("0.0000", CultureInfo.InvariantCulture)}"
                    + (result.SkippedImages > 0 ? $", {result.SkippedImages} unreadable images skipped" : string.Empty));
                Console.WriteLine(TimmLine(result));
            }

            return 0;
        });
        return command;
    }

    /// <summary>timm validate.py's closing line, in percent.</summary>
    internal static string TimmLine(EvalResult r) => string.Create(
        CultureInfo.InvariantCulture, $" * Acc@1 {100 * r.Top1:0.000} ({100 - (100 * r.Top1):0.000}) Acc@5 {100 * r.Top5:0.000} ({100 - (100 * r.Top5):0.000})");

    private static void WritePredictions(string path, List<Prediction> rows)
    {
        var text = new StringBuilder("index,label,predicted,probability\n");
        foreach (var p in rows.OrderBy(p => p.Index))
        {
            text.Append(CultureInfo.InvariantCulture, $"{p.Index},{p.Label},{p.Predicted},{p.Probability:0.######}\n");
        }

        AtomicFile.WriteAllText(path, text.ToString());
    }
}
