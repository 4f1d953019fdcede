using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using MobileOne.Data;
using MobileOne.Data.Loading;
using MobileOne.IO;
using MobileOne.IO.Checkpoints;
using MobileOne.Kernels;
using MobileOne.Models;

namespace MobileOne.Training;

/// <summary>What a finished (or step-limited) run leaves behind.</summary>
/// <remarks>
/// <see cref="Test"/> is the test set's evaluation of a run with --val-split whose last epoch has ended (the best
/// checkpoints by validation; read back from test.csv when a finished run is resumed); null otherwise.
/// </remarks>
public sealed record TrainingResult(
    ClassifierNetwork Model, ClassifierNetwork? Ema, IReadOnlyList<EpochSummary> Epochs, string OutputDirectory,
    string TrainSource, string EvalSource, long Steps, bool StoppedByMaxSteps, IReadOnlyList<TestEvaluation>? Test = null);

/// <summary>
/// timm train.py's loop for a train-time MobileOne, any registry architecture (RepVGG, ResNet, MobileNet) or a compressed MobileOne (fine-tuning; docs/ideas.md): per-step cosine learning rate with linear warm-up,
/// optional cosine weight-decay annealing, label-smoothed cross entropy, SGD (Nesterov) or AdamW with no decay on
/// BatchNorm parameters and biases, optional EMA and gradient clipping; after every epoch an evaluation, summary.csv,
/// last/best checkpoints (timm's safetensors layout) and a training state for --resume, each written atomically.
/// With --val-split the per-epoch evaluation runs on the held-out validation images, which choose best.safetensors
/// (and best_ema.safetensors), and the test set is evaluated once, on those, when the last epoch has ended (test.csv).
/// </summary>
public static partial class Trainer
{
    /// <summary>File name in the output folder of the model after the latest epoch: "last.safetensors".</summary>
    public const string LastCheckpoint = "last.safetensors";
    /// <summary>File name in the output folder of the model of the epoch with the best eval top-1 so far: "best.safetensors".</summary>
    public const string BestCheckpoint = "best.safetensors";
    /// <summary>File name in the output folder of the EMA model after the latest epoch, when the EMA is on: "last_ema.safetensors".</summary>
    public const string EmaCheckpoint = "last_ema.safetensors";
    /// <summary>File name in the output folder of the EMA model of the epoch with the best EMA validation top-1, in runs with --val-split and --ema: "best_ema.safetensors".</summary>
    public const string BestEmaCheckpoint = "best_ema.safetensors";

    /// <summary>
    /// Runs the training <paramref name="options"/> describe (validated first) on <see cref="ComputeThreads"/> set to
    /// <see cref="TrainingOptions.Threads"/>, resuming from <see cref="TrainingOptions.Resume"/> when set, writing every epoch's files to
    /// <see cref="TrainingOptions.Output"/>. <paramref name="decoder"/> reads image folders (not needed for Fashion-MNIST);
    /// <paramref name="observer"/> gets the progress (none when null). Throws <see cref="TrainingDivergedException"/> when the loss
    /// stops being finite, and stops with <see cref="OperationCanceledException"/> on <paramref name="cancellationToken"/>.
    /// </summary>
    public static TrainingResult Run(TrainingOptions options, IImageDecoder? decoder = null, ITrainingObserver? observer = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        observer ??= SilentTrainingObserver.Instance;
        ComputeThreads.Count = options.Threads;

        var data = TrainingData.Open(options.Data, decoder, options);
        var sizes = options.ImageSizesFor(data.IsFashionMnist);
        if (data.IsFashionMnist && sizes.Any(s => s < TrainingOptions.FashionMnistMinSize))
        {
            throw new ArgumentException(
                $"--img-size {string.Join(",", sizes)}: each Fashion-MNIST size must be at least {TrainingOptions.FashionMnistMinSize} (the 28x28 image is resized to size - 4 and given a 2-pixel border); e.g. --img-size 24,32.");
        }

        var model = BuildModel(options, data, observer);
        if (data.Test is { } testSet)
        {
            observer.Message($"data: {data.Train.Count} training images from {data.Train.Source}, {data.Eval.Count} validation images ({data.Eval.Source}, --val-split), {testSet.Count} test images from {testSet.Source} (evaluated once, at the end), {data.NumClasses} classes");
        }
        else
        {
            observer.Message($"data: {data.Train.Count} training images from {data.Train.Source}, {data.Eval.Count} evaluation images from {data.Eval.Source}, {data.NumClasses} classes");
        }

        observer.Message($"model: {model.Description}");

        Directory.CreateDirectory(options.Output);

        // A run killed while writing a checkpoint leaves its temporary file beside the last good one.
        foreach (string stale in AtomicFile.RemoveStaleTemporaries(options.Output))
        {
            observer.Message($"removed {stale}, a partial write of a run that was stopped");
        }

        int finalSize = sizes[^1];
        var loaderOptions = new DataLoaderOptions { BatchSize = options.BatchSize, Shuffle = true, DropLast = true, Workers = options.Workers, Seed = (ulong)options.Seed, NumClasses = model.NumClasses };
        var evalLoader = new DataLoader(data.Eval, data.EvalTransform(finalSize, ModelRegistry.PretrainedFor(model.Architecture)), loaderOptions with { Shuffle = false, DropLast = false });
        var trainLoaders = new Dictionary<int, DataLoader>();
        DataLoader TrainLoader(int epoch)
        {
            int size = TrainingOptions.ImageSizeAt(sizes, epoch, options.Epochs);
            if (!trainLoaders.TryGetValue(size, out var loader))
            {
                loader = new DataLoader(data.Train, data.TrainTransform(size), loaderOptions);
                trainLoaders[size] = loader;
            }

            return loader;
        }

        int stepsPerEpoch = TrainLoader(0).BatchesPerEpoch;
        if (stepsPerEpoch == 0)
        {
            throw new ArgumentException($"--batch-size {options.BatchSize} is larger than the {data.Train.Count} training images.");
        }

        long totalSteps = (long)options.Epochs * stepsPerEpoch;
        long warmupSteps = Math.Min(totalSteps - 1, (long)Math.Round(options.WarmupEpochs * stepsPerEpoch));
        var lrSchedule = new CosineSchedule(options.LearningRate, options.MinLearningRate, Math.Max(1, totalSteps - warmupSteps), warmupSteps, warmupInitValue: 0, warmupPrefix: true);
        var wdSchedule = options.WeightDecayEnd is double wdEnd ? new CosineSchedule(options.WeightDecay, wdEnd, totalSteps) : null;
        var groups = ParameterGroups.WeightDecaySplit(model, options.LearningRate, options.WeightDecay);
        Optimizer optimizer = options.Optimizer == OptimizerKind.Sgd ? new Sgd(groups, options.Momentum, nesterov: true) : new AdamW(groups);
        var ema = options.Ema is double decay ? new ModelEma(model, decay) { Warmup = options.EmaWarmup } : null;
        var regularization = new BranchRegularization(options.OrthoReg, options.BranchDiversity);
        if (regularization.IsActive && model is not MobileOneNetwork)
        {
            throw new ArgumentException($"--ortho-reg and --branch-diversity act on MobileOne's k branches; {model.Architecture} has none.");
        }

        if (regularization.IsActive)
        {
            observer.Message(string.Create(CultureInfo.InvariantCulture, $"branch penalties: loss + {options.OrthoReg} * orthogonality + {options.BranchDiversity} * branch diversity"));
        }

        var step = new TrainStep(model, optimizer, new CrossEntropyLoss(options.Smoothing))
        {
            LearningRateSchedule = lrSchedule,
            WeightDecaySchedule = wdSchedule,
            ClipGradientNorm = options.ClipGrad,
            Ema = ema,
            Regularization = regularization.IsActive ? regularization : null,
        };

        string statePath = Path.Combine(options.Output, TrainingState.FileName);
        int startEpoch = 0, startStep = 0;
        var tally = default(EpochTally);
        double bestTop1 = double.NegativeInfinity, bestEmaTop1 = double.NegativeInfinity;
        int bestEpoch = -1, bestEmaEpoch = -1;
        int valSplit = options.ValSplit ?? 0;
        var summaries = new List<EpochSummary>();
        string testPath = Path.Combine(options.Output, TestCsv.FileName);
        if (options.Resume is string resume)
        {
            var state = TrainingState.Load(resume, model);
            model.CopyStateFrom(state.Model);
            optimizer.ImportState(state.Optimizer);
            if (ema is not null)
            {
                ema.CopyFrom(state.Ema ?? throw new ArgumentException($"{resume}: the state has no EMA model, but --ema is set."));
            }

            if (state.Seed != options.Seed)
            {
                throw new ArgumentException($"{resume}: the run used --seed {state.Seed}; resume with the same seed (got {options.Seed}).");
            }

            if (state.ValSplit != valSplit)
            {
                // Another split would train on images the best checkpoint was chosen by, or choose by images trained on.
                string was = state.ValSplit > 0 ? $"held out the last {state.ValSplit} training images (--val-split {state.ValSplit})" : "had no --val-split";
                string got = valSplit > 0 ? $"--val-split {valSplit}" : "no --val-split";
                throw new ArgumentException($"{resume}: the run {was}; resume with the same --val-split (got {got}).");
            }

            (startEpoch, startStep, bestTop1, bestEpoch, tally) = (state.Epoch, state.Step, state.BestTop1, state.BestEpoch, state.Tally);
            (bestEmaTop1, bestEmaEpoch) = (state.BestEmaTop1, state.BestEmaEpoch);
            summaries = SummaryCsv.Read(Path.Combine(options.Output, SummaryCsv.FileName)).Where(s => s.Epoch <= startEpoch).ToList();
            observer.Message($"resumed from {resume}: epoch {startEpoch + 1}, step {startStep}, {optimizer.StepCount} optimizer steps done");
        }
        else if (data.Test is not null && File.Exists(testPath))
        {
            // A new run in an old folder: the old test result must not stand for this run's.
            File.Delete(testPath);
        }

        bool progressive = sizes.Distinct().Count() > 1;
        // The state's epoch is the next one to run (a part-done epoch counts as not done).
        int epochsDone = startEpoch;
        bool ranAnEpoch = false;

        var clock = Stopwatch.StartNew();
        long stepsThisRun = 0;
        bool stoppedByMaxSteps = false;
        for (int epoch = startEpoch; epoch < options.Epochs && !stoppedByMaxSteps; epoch++)
        {
            var loader = TrainLoader(epoch);
            ranAnEpoch = true;
            if (progressive)
            {
                observer.Message($"epoch {epoch + 1}: training images {loader.Transform.Width}x{loader.Transform.Height} (--img-size {string.Join(",", sizes)}), evaluation at {finalSize}x{finalSize}");
            }

            observer.EpochStarted(epoch, options.Epochs, stepsPerEpoch);
            int stepInEpoch = epoch == startEpoch ? startStep : 0;
            var (lossSum, correct, seen) = stepInEpoch > 0 ? tally : default;
            foreach (var batch in loader.Epoch(epoch, stepInEpoch, cancellationToken))
            {
                using (batch)
                {
                    var (images, labels) = batch;
                    var result = step.Run(images, labels);
                    if (!double.IsFinite(result.Loss))
                    {
                        string kept = File.Exists(Path.Combine(options.Output, LastCheckpoint))
                            ? $"the last good checkpoint is {Path.Combine(options.Output, LastCheckpoint)}"
                            : "no checkpoint was written yet";
                        throw new TrainingDivergedException(
                            $"the loss became {result.Loss.ToString(CultureInfo.InvariantCulture)} at epoch {epoch + 1}, step {batch.Step + 1}; training stopped and {kept}. Try a lower --lr or --clip-grad.");
                    }

                    lossSum += result.Loss * labels.Length;
                    correct += CountCorrect(result.Logits, labels);
                    seen += labels.Length;
                    stepInEpoch = batch.Step + 1;
                    stepsThisRun++;
                    double seconds = clock.Elapsed.TotalSeconds;
                    long remaining = Math.Min(totalSteps, options.MaxSteps ?? long.MaxValue) - optimizer.StepCount;
                    observer.StepCompleted(new StepProgress(
                        epoch, options.Epochs, batch.Step, stepsPerEpoch, optimizer.StepCount, totalSteps, lossSum / seen, (double)correct / seen,
                        result.LearningRate, stepsThisRun * options.BatchSize / Math.Max(seconds, 1e-9),
                        TimeSpan.FromSeconds(Math.Max(0, remaining) * seconds / stepsThisRun),
                        regularization.IsActive ? result.Penalties : null, images.Dim(3)));
                    if (options.MaxSteps is long max && optimizer.StepCount >= max)
                    {
                        stoppedByMaxSteps = true;
                        break;
                    }
                }
            }

            var eval = Evaluator.Run(model, evalLoader, threads: options.Threads, cancellationToken: cancellationToken);
            var emaEval = ema is null ? null : Evaluator.Run(ema.Network, evalLoader, threads: options.Threads, cancellationToken: cancellationToken);
            bool finished = stepInEpoch >= stepsPerEpoch;
            var penalties = BranchRegularization.Measure(model);
            var summary = new EpochSummary(
                epoch + 1, seen > 0 ? lossSum / seen : double.NaN, seen > 0 ? (double)correct / seen : double.NaN, eval.Loss, eval.Top1, eval.Top5,
                optimizer.Groups[^1].LearningRate, emaEval?.Top1 ?? double.NaN, emaEval?.Top5 ?? double.NaN, penalties.Orthogonality, penalties.Diversity);
            summaries.RemoveAll(s => s.Epoch == summary.Epoch);
            summaries.Add(summary);

            // Summary first, state last: a kill in between makes --resume redo this epoch and rewrite its row.
            SummaryCsv.Write(Path.Combine(options.Output, SummaryCsv.FileName), summaries);
            ModelCheckpoint.Save(model, Path.Combine(options.Output, LastCheckpoint), inputSize: finalSize);
            // With a validation split only whole epochs compete for best: a part-done epoch's evaluation (a session
            // stopped by --max-steps) must not choose a checkpoint that an uninterrupted run never had.
            bool mayBeBest = data.Test is null || finished;
            if (mayBeBest && eval.Top1 > bestTop1)
            {
                (bestTop1, bestEpoch) = (eval.Top1, epoch + 1);
                ModelCheckpoint.Save(model, Path.Combine(options.Output, BestCheckpoint), inputSize: finalSize);
            }

            ema?.Save(Path.Combine(options.Output, EmaCheckpoint), inputSize: finalSize);
            if (data.Test is not null && finished && emaEval is not null && emaEval.Top1 > bestEmaTop1)
            {
                // The EMA is often the better model late in a long run; the test set then sees the EMA chosen by validation too.
                (bestEmaTop1, bestEmaEpoch) = (emaEval.Top1, epoch + 1);
                ema!.Save(Path.Combine(options.Output, BestEmaCheckpoint), inputSize: finalSize);
            }

            new TrainingState(
                model, optimizer.ExportState(), ema?.Network, finished ? epoch + 1 : epoch, finished ? 0 : stepInEpoch, optimizer.StepCount, bestTop1, bestEpoch, options.Seed,
                finished ? default : new EpochTally(lossSum, correct, seen), valSplit, bestEmaTop1, bestEmaEpoch)
                .Save(statePath);
            observer.EpochCompleted(summary, summaries);
            if (finished)
            {
                epochsDone = epoch + 1;
            }
        }

        IReadOnlyList<TestEvaluation>? test = null;
        if (data.Test is { } testData)
        {
            if (epochsDone < options.Epochs)
            {
                observer.Message($"test set not evaluated: {epochsDone} of {options.Epochs} epochs are done; it is evaluated once, when the last epoch has ended (continue with --resume).");
            }
            else if (!ranAnEpoch && TestCsv.Read(testPath) is { } earlier)
            {
                // A finished run resumed again: the test set was evaluated when it finished, and is not looked at twice.
                test = earlier;
                observer.Message($"test set already evaluated when the run finished ({testPath}):");
                Report(test, observer);
            }
            else
            {
                var testLoader = new DataLoader(testData, data.EvalTransform(finalSize, ModelRegistry.PretrainedFor(model.Architecture)), loaderOptions with { Shuffle = false, DropLast = false });
                var rows = new List<TestEvaluation> { EvaluateTest(BestCheckpoint, bestEpoch, bestTop1) };
                if (ema is not null)
                {
                    rows.Add(EvaluateTest(BestEmaCheckpoint, bestEmaEpoch, bestEmaTop1));
                }

                TestCsv.Write(testPath, rows);
                test = rows;
                Report(test, observer);

                TestEvaluation EvaluateTest(string checkpoint, int epoch, double valTop1)
                {
                    var network = ModelCheckpoint.LoadClassifier(Path.Combine(options.Output, checkpoint)).Network;
                    var r = Evaluator.Run(network, testLoader, threads: options.Threads, cancellationToken: cancellationToken);
                    return new TestEvaluation(checkpoint, epoch, valTop1, r.Top1, r.Top5, r.Loss, r.Count);
                }
            }
        }

        model.Eval();
        return new TrainingResult(model, ema?.Network, summaries, options.Output, data.Train.Source, data.Eval.Source, optimizer.StepCount, stoppedByMaxSteps, test);
    }

    private static void Report(IReadOnlyList<TestEvaluation> rows, ITrainingObserver observer)
    {
        foreach (var t in rows)
        {
            observer.Message(string.Create(
                CultureInfo.InvariantCulture,
                $"test: {t.Checkpoint} (epoch {t.Epoch}, val top-1 {t.ValTop1:0.0000}): top-1 {t.Top1:0.0000} top-5 {t.Top5:0.0000} loss {t.Loss:0.0000} on {t.Images} test images"));
        }
    }

    private static ClassifierNetwork BuildModel(TrainingOptions options, TrainingData data, ITrainingObserver observer)
    {
        if (options.Init is string init)
        {
            var loaded = ModelCheckpoint.LoadClassifier(init);
            if (loaded.Network is Compression.CompressedNetwork compressed)
            {
                return CompressedInit(compressed, init, data);
            }

            if (loaded.Network.IsFused)
            {
                throw new ArgumentException($"{init} is fused; --init needs a train-time checkpoint, since a fused model has no branches to train.");
            }

            var source = loaded.Network;
            if (source.InChans != data.Channels)
            {
                throw new ArgumentException($"{init} expects in_chans {source.InChans}, but the data has {data.Channels} channel(s).");
            }

            if (source.NumClasses == data.NumClasses)
            {
                return source;
            }

            // Fine-tuning to another label set: keep the backbone, start a fresh classifier (the only tensors whose
            // shapes change with the class count).
            ClassifierNetwork model;
            if (source is MobileOneNetwork m)
            {
                model = MobileOneNetwork.Create(m.Config.WithHead(data.NumClasses, data.Channels));
                WeightInit.Initialize(model, options.Seed);
            }
            else
            {
                model = ModelRegistry.Get(source.Architecture).Create(data.NumClasses, data.Channels, seed: options.Seed);
            }

            foreach (var (from, to) in source.State().Zip(model.State()).Where(p => p.First.Value.HasShape(p.Second.Value.Shape)))
            {
                from.Value.Data.CopyTo(to.Value.Data, 0);
            }

            observer.Message($"{init}: {source.NumClasses} classes -> new classifier with {data.NumClasses}");
            return model;
        }

        if (ModelRegistry.Find(options.Model) is { Family: not "mobileone" } entry)
        {
            return entry.Create(data.NumClasses, data.Channels, seed: options.Seed);
        }

        var config = MobileOneConfig.Parse(options.Model);
        bool explicitClasses = ClassesKey().IsMatch(options.Model), explicitChans = InChansKey().IsMatch(options.Model);
        if (explicitClasses && config.NumClasses != data.NumClasses)
        {
            throw new ArgumentException($"--model sets {config.NumClasses} classes, but the data has {data.NumClasses}.");
        }

        if (explicitChans && config.InChans != data.Channels)
        {
            throw new ArgumentException($"--model sets in_chans {config.InChans}, but the data has {data.Channels} channel(s).");
        }

        var network = MobileOneNetwork.Create(config.WithHead(data.NumClasses, data.Channels));
        WeightInit.Initialize(network, options.Seed);
        return network;
    }

    /// <summary>
    /// A compressed checkpoint is fine-tuned as it is: its factors, biases and sparse values train, its ranks and
    /// sparsity patterns do not change, and there is no BatchNorm (it is fused). A new label set would need a new
    /// classifier on a network that was compressed for the old one, so the classes and channels must match.
    /// </summary>
    private static ClassifierNetwork CompressedInit(Compression.CompressedNetwork network, string init, TrainingData data)
    {
        if (network.InChans != data.Channels || network.NumClasses != data.NumClasses)
        {
            throw new ArgumentException($"{init} is a compressed network for {network.NumClasses} classes and in_chans {network.InChans}; the data has {data.NumClasses} classes and {data.Channels} channel(s), and a compressed network is fine-tuned on its own label set.");
        }

        try
        {
            _ = network.NamedParameters().Count();
        }
        catch (NotSupportedException e)
        {
            throw new ArgumentException($"{init}: {e.Message}", e);
        }

        return network;
    }

    private static long CountCorrect(MobileOne.Tensors.Tensor logits, int[] labels)
    {
        int classes = logits.Dim(1);
        long correct = 0;
        for (int n = 0; n < labels.Length; n++)
        {
            correct += Evaluator.Argmax(logits.Data.AsSpan(n * classes, classes)) == labels[n] ? 1 : 0;
        }

        return correct;
    }


    [GeneratedRegex(@"(^|,)\s*(num_)?classes\s*=")]
    private static partial Regex ClassesKey();

    [GeneratedRegex(@"(^|,)\s*in_chans\s*=")]
    private static partial Regex InChansKey();
}
