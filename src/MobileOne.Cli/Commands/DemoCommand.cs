using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using MobileOne.Cli.Rendering;
using MobileOne.Data.Loading;
using MobileOne.Imaging;
using MobileOne.Inference;
using MobileOne.Kernels;
using MobileOne.Models;
using MobileOne.Reparam;
using MobileOne.Tensors;
using MobileOne.Training;

namespace MobileOne.Cli.Commands;

/// <summary>
/// The README's main job, with nothing downloaded: train MobileOne-S0 (train-time, k=4) on the Fashion-MNIST
/// subset bundled with the library for a short schedule, fuse it, evaluate the unfused and the fused model,
/// and show accuracy, size, MACs and latency before and after fusing, plus the training-curve plot.
/// </summary>
internal static class DemoCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "s0..s4 or a description; classes and in_chans follow the data.", DefaultValueFactory = _ => "s0" };
        var data = new Option<string>("--data") { Description = "'bundled' (the subset shipped with the library), a Fashion-MNIST folder or an image folder.", DefaultValueFactory = _ => TrainingData.Bundled };
        var epochs = new Option<int>("--epochs") { Description = "Epochs.", DefaultValueFactory = _ => 12 };
        var batch = new Option<int>("--batch-size", "-b") { Description = "Images per step.", DefaultValueFactory = _ => 64 };
        var lr = new Option<double>("--lr") { Description = "Peak learning rate.", DefaultValueFactory = _ => 0.5 };
        var clip = new Option<double>("--clip-grad") { Description = "Clip gradients to this global L2 norm.", DefaultValueFactory = _ => 1.0 };
        var augment = new Option<bool>("--augment") { Description = "Train with the recipe's augmentation (pad 4, random crop, flip); off by default: on 5,000 images for a dozen epochs it slows learning more than it regularizes (docs/training.md)." };
        var maxSteps = new Option<long?>("--max-steps") { Description = "Stop after this many steps (quick checks)." };
        var threads = new Option<int>("--threads", "-j") { Description = "Compute threads.", DefaultValueFactory = _ => Environment.ProcessorCount };
        var seed = new Option<int>("--seed") { Description = "Seed.", DefaultValueFactory = _ => 0 };
        var output = new Option<string>("--output", "-o") { Description = "Folder for checkpoints, summary.csv and the plot.", DefaultValueFactory = _ => Path.Combine("output", "demo") };
        var command = new Command("demo", "Train MobileOne-S0 on the bundled Fashion-MNIST subset, fuse it, evaluate both forms and compare size, MACs and latency.");
        foreach (var o in new Option[] { model, data, epochs, batch, lr, clip, augment, maxSteps, threads, seed, output })
        {
            command.Options.Add(o);
        }

        CommandAction.Set(command, r =>
        {
            string outputDir = r.GetValue(output)!;
            var options = new TrainingOptions
            {
                Model = r.GetValue(model)!,
                Data = r.GetValue(data),
                Epochs = r.GetValue(epochs),
                BatchSize = r.GetValue(batch),
                LearningRate = r.GetValue(lr),
                WarmupEpochs = 0.5,
                ClipGrad = r.GetValue(clip),
                Augment = r.GetValue(augment),
                WeightDecay = 5e-4,
                Smoothing = 0.1,
                Seed = r.GetValue(seed),
                Threads = r.GetValue(threads),
                Output = outputDir,
                MaxSteps = r.GetValue(maxSteps),
                LogInterval = 10,
            };
            options.Validate();
            string plot = Path.Combine(outputDir, TrainCommand.PlotFileName);
            var observer = new ConsoleTrainingObserver(options.LogInterval, plot, $"MobileOne {options.Model} on Fashion-MNIST");
            var clock = Stopwatch.StartNew();
            var result = observer.Run(() => Trainer.Run(options, SkiaImageDecoder.Instance, observer));
            double trainSeconds = clock.Elapsed.TotalSeconds;

            var unfused = (MobileOneNetwork)result.Model;
            var fused = Reparameterizer.Fuse(unfused);
            var evalData = TrainingData.OpenEval(options.Data, SkiaImageDecoder.Instance);
            var config = unfused.Config;
            bool fashion = TrainingData.IsFashionMnistFolder(options.Data ?? TrainingData.Bundled);
            var loader = new DataLoader(evalData, TrainingData.EvalTransform(fashion, options.ImageSizesFor(fashion)[^1], ModelRegistry.PretrainedFor(unfused.Architecture)), new DataLoaderOptions
            {
                BatchSize = 256, Shuffle = false, NumClasses = config.NumClasses, Workers = options.Workers,
            });
            // The trainer evaluated the unfused model on this data after its last step; only the fused form is new.
            var evalUnfused = result.Epochs[^1];
            var evalFused = Evaluator.Run(fused, loader, threads: options.Threads);
            int size = loader.Transform.Height;
            var stats = ModelStatistics.Compute(config, size);
            // Both forms on the same engine and kernels, so the difference is what reparameterization buys.
            using var unfusedEngine = CompiledModel.Compile(unfused, new InferenceOptions { Threads = 1 });
            using var fusedEngine = CompiledModel.Compile(fused, new InferenceOptions { Threads = 1 });
            double unfusedMs = Latency(x => unfusedEngine.Run(x), config.InChans, size);
            double fusedMs = Latency(x => fusedEngine.Run(x), config.InChans, size);

            var c = CultureInfo.InvariantCulture;
            new Report($"MobileOne-{config.Name} on {evalData.Source} ({result.Steps} steps, {trainSeconds:0} s of training)")
                .Add("eval top-1 (unfused / fused)", string.Create(c, $"{evalUnfused.EvalTop1:0.0000} / {evalFused.Top1:0.0000}"))
                .Add("eval top-5 (unfused / fused)", string.Create(c, $"{evalUnfused.EvalTop5:0.0000} / {evalFused.Top5:0.0000}"))
                .Add("eval loss (unfused / fused)", string.Create(c, $"{evalUnfused.EvalLoss:0.00000} / {evalFused.Loss:0.00000}"))
                .Add("parameters (unfused / fused)", $"{Report.Millions(stats.ParamsUnfused)} / {Report.Millions(stats.ParamsFused)}")
                .Add($"MACs at {size}x{size} (unfused / fused)", $"{Report.Millions(stats.MacsUnfused)} / {Report.Millions(stats.MacsFused)}")
                .Add($"engine latency, batch 1, 1 thread (unfused branches / fused)", string.Create(c, $"{unfusedMs:0.000} ms / {fusedMs:0.000} ms ({unfusedMs / fusedMs:0.0}x)"))
                .Add("checkpoints", $"{Path.Combine(outputDir, Trainer.LastCheckpoint)} (train-time, timm names)")
                .Add("curves", $"{Path.Combine(outputDir, SummaryCsv.FileName)}, {plot}")
                .Write();
            if (evalUnfused.EvalTop1 != evalFused.Top1)
            {
                Console.WriteLine($"note: fused and unfused top-1 differ by {Math.Abs(evalUnfused.EvalTop1 - evalFused.Top1) * evalFused.Count:0} image(s) (float rounding at a decision boundary).");
            }

            return 0;
        });
        return command;
    }

    /// <summary>Median latency of one image after warm-up.</summary>
    private static double Latency(Func<Tensor, Tensor> run, int channels, int size)
    {
        var input = new Tensor(1, channels, size, size);
        WeightInit.FillNormal(new Random(1), input.Data, 0, 1);
        for (int i = 0; i < 5; i++)
        {
            run(input);
        }

        var times = new double[30];
        for (int i = 0; i < times.Length; i++)
        {
            long start = Stopwatch.GetTimestamp();
            run(input);
            times[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        }

        Array.Sort(times);
        return times[times.Length / 2];
    }
}
