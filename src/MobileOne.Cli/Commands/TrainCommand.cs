using System.CommandLine;
using System.Globalization;
using MobileOne.Cli.Rendering;
using MobileOne.Imaging;
using MobileOne.Training;

namespace MobileOne.Cli.Commands;

internal static class TrainCommand
{
    public const string PlotFileName = "summary.png";

    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "s0..s4, optionally with overrides, or a description (units=1/2/2/1,widths=0.5/0.5/0.5/0.5,k=2,se=0/0/1/1); or a registry architecture (`mobileone models`: repvgg_a0, resnet18, mobilenetv2_100, ...). Classes and in_chans follow the data.", DefaultValueFactory = _ => "s0" };
        var init = new Option<string?>("--init") { Description = "Fine-tune from a train-time checkpoint (timm or Apple; a new classifier when the class count differs) or a compressed one (`compress`; same classes, ranks and sparsity patterns kept)." };
        var data = new Option<string?>("--data") { Description = "Fashion-MNIST IDX folder, or an image folder with train/ and val/. Default: /usr/share/datasets/fashion-mnist, else the bundled subset; 'bundled' picks the subset." };
        var epochs = new Option<int>("--epochs") { Description = "Epochs.", DefaultValueFactory = _ => 10 };
        var batch = new Option<int>("--batch-size", "-b") { Description = "Images per step.", DefaultValueFactory = _ => 256 };
        var lr = new Option<double>("--lr") { Description = "Peak learning rate.", DefaultValueFactory = _ => 0.1 };
        var minLr = new Option<double>("--min-lr") { Description = "Learning rate at the end of the cosine.", DefaultValueFactory = _ => 0.0 };
        var opt = new Option<string>("--opt") { Description = "sgd (Nesterov) or adamw.", DefaultValueFactory = _ => "sgd" };
        var momentum = new Option<double>("--momentum") { Description = "SGD momentum.", DefaultValueFactory = _ => 0.9 };
        var wd = new Option<double>("--weight-decay") { Description = "Weight decay (not on BatchNorm parameters and biases).", DefaultValueFactory = _ => 5e-4 };
        var wdEnd = new Option<double?>("--wd-end") { Description = "Anneal weight decay with a cosine to this value (the paper: --weight-decay 1e-4 --wd-end 1e-5)." };
        var smoothing = new Option<double>("--smoothing") { Description = "Label smoothing.", DefaultValueFactory = _ => 0.1 };
        var ema = new Option<bool>("--ema") { Description = "Keep an EMA of the weights, evaluated and saved alongside." };
        var emaDecay = new Option<double>("--ema-decay") { Description = "EMA decay.", DefaultValueFactory = _ => ModelEma.DefaultDecay };
        var warmup = new Option<double>("--warmup-epochs") { Description = "Linear learning-rate warm-up.", DefaultValueFactory = _ => 1.0 };
        var clip = new Option<double?>("--clip-grad") { Description = "Clip gradients to this global L2 norm." };
        var orthoReg = new Option<double>("--ortho-reg") { Description = "Weight of OCNN's orthogonality penalty ||Conv(W, W) - I||^2 on every branch kernel (per group; summed over branches and blocks). 0 is off.", DefaultValueFactory = _ => 0.0 };
        var branchDiversity = new Option<double>("--branch-diversity") { Description = "Weight of the penalty on the mean squared cosine between each block's BN-folded branch kernels (summed over blocks). 0 is off.", DefaultValueFactory = _ => 0.0 };
        var seed = new Option<int>("--seed") { Description = "Seed for weights, data order and augmentation.", DefaultValueFactory = _ => 0 };
        var threads = new Option<int>("--threads", "-j") { Description = "Compute threads.", DefaultValueFactory = _ => Environment.ProcessorCount };
        var workers = new Option<int>("--workers") { Description = "Data loading threads.", DefaultValueFactory = _ => 2 };
        var output = new Option<string>("--output", "-o") { Description = "Folder for checkpoints, summary.csv, the plot and the training state.", DefaultValueFactory = _ => Path.Combine("output", "train") };
        var resume = new Option<string?>("--resume") { Description = "Continue from a training state (default: OUTPUT/train_state.safetensors).", Arity = ArgumentArity.ZeroOrOne };
        var maxSteps = new Option<long?>("--max-steps") { Description = "Stop after this many optimizer steps (quick runs)." };
        var logInterval = new Option<int>("--log-interval") { Description = "Steps between plain progress lines when output is redirected.", DefaultValueFactory = _ => 50 };
        var imgSize = new Option<string?>("--img-size") { Description = "Training size, or progressive sizes spread evenly over the epochs, the last one also the evaluation size. Image folders: default 224 (e.g. 160,192,224). Fashion-MNIST: default 32, at least 12 (e.g. 24,32: the 28x28 image resized to size - 4, bordered by 2). The checkpoints record the last size, which eval, predict and serve then take by default." };
        var valSplit = new Option<int?>("--val-split") { Description = "Hold out the last N training images (Fashion-MNIST) for validation: per-epoch evaluation and the best checkpoints use them, and the test set is evaluated once, after the last epoch (test.csv)." };
        var reprob = new Option<double>("--reprob") { Description = "Random erasing probability (timm's RandomErasing, after the other augmentation).", DefaultValueFactory = _ => 0.0 };
        var remode = new Option<string>("--remode") { Description = "Random erasing fill: pixel (per-pixel normal noise), rand (per channel) or const (0).", DefaultValueFactory = _ => "pixel" };
        var recount = new Option<int>("--recount") { Description = "Random erasing: up to this many rectangles per image.", DefaultValueFactory = _ => 1 };
        var emaWarmup = new Option<bool>("--ema-warmup") { Description = "Warm the EMA decay up as timm's ModelEmaV3 use_warmup: min(--ema-decay, 1 - (1 + t)^(-2/3)) at update t + 1." };
        var aa = new Option<string>("--aa") { Description = "Image folders: none, autoaugment or rand-m9-mstd0.5.", DefaultValueFactory = _ => "none" };
        var noAug = new Option<bool>("--no-aug") { Description = "No training augmentation (timm's --no-aug): no random crop or flip (Fashion-MNIST: the pad to 32 only; image folders: resize and centre crop)." };

        var command = new Command("train", "Train a train-time MobileOne (timm train.py's recipe) and write checkpoints, summary.csv and a plot.");
        foreach (var o in new Option[] { model, init, data, epochs, batch, lr, minLr, opt, momentum, wd, wdEnd, smoothing, ema, emaDecay, emaWarmup, warmup, clip, orthoReg, branchDiversity, seed, threads, workers, output, resume, maxSteps, logInterval, imgSize, valSplit, reprob, remode, recount, aa, noAug })
        {
            command.Options.Add(o);
        }

        CommandAction.Set(command, r =>
        {
            string outputDir = r.GetValue(output)!;
            var options = new TrainingOptions
            {
                Model = r.GetValue(model)!,
                Init = r.GetValue(init),
                Data = r.GetValue(data),
                Epochs = r.GetValue(epochs),
                BatchSize = r.GetValue(batch),
                LearningRate = r.GetValue(lr),
                MinLearningRate = r.GetValue(minLr),
                Optimizer = r.GetValue(opt)?.ToLowerInvariant() switch
                {
                    "sgd" => OptimizerKind.Sgd,
                    "adamw" => OptimizerKind.AdamW,
                    var other => throw new ArgumentException($"--opt must be sgd or adamw; got '{other}'."),
                },
                Momentum = r.GetValue(momentum),
                WeightDecay = r.GetValue(wd),
                WeightDecayEnd = r.GetValue(wdEnd),
                Smoothing = r.GetValue(smoothing),
                Ema = r.GetValue(ema) ? r.GetValue(emaDecay) : null,
                EmaWarmup = r.GetValue(emaWarmup),
                WarmupEpochs = r.GetValue(warmup),
                ClipGrad = r.GetValue(clip),
                OrthoReg = r.GetValue(orthoReg),
                BranchDiversity = r.GetValue(branchDiversity),
                Seed = r.GetValue(seed),
                Threads = r.GetValue(threads),
                Workers = r.GetValue(workers),
                Output = outputDir,
                Resume = r.GetResult(resume) is null ? null : r.GetValue(resume) ?? Path.Combine(outputDir, TrainingState.FileName),
                MaxSteps = r.GetValue(maxSteps),
                LogInterval = r.GetValue(logInterval),
                ImageSizes = r.GetValue(imgSize) is string sizes ? ParseSizes(sizes) : null,
                ValSplit = r.GetValue(valSplit),
                ReProb = r.GetValue(reprob),
                ReMode = r.GetValue(remode)!,
                ReCount = r.GetValue(recount),
                AutoAugment = r.GetValue(aa)!,
                Augment = !r.GetValue(noAug),
            };
            options.Validate();
            if (options.Resume is string state && !File.Exists(state))
            {
                throw new ArgumentException($"--resume: {state} does not exist.");
            }

            var observer = new ConsoleTrainingObserver(options.LogInterval, Path.Combine(outputDir, PlotFileName), $"MobileOne {options.Model} training");
            var result = observer.Run(() => Trainer.Run(options, SkiaImageDecoder.Instance, observer));
            var last = result.Epochs[^1];
            string evaluated = options.ValSplit is null ? "eval" : "val";
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"done: {result.Steps} steps, {evaluated} top-1 {last.EvalTop1:0.0000}, top-5 {last.EvalTop5:0.0000}; files in {result.OutputDirectory}"));
            return 0;
        });
        return command;
    }

    internal static int[] ParseSizes(string text)
    {
        try
        {
            return text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray();
        }
        catch (FormatException)
        {
            throw new ArgumentException($"--img-size must be a size or a comma-separated list of sizes; got '{text}'.");
        }
    }
}
