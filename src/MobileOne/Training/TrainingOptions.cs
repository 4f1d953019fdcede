using System.Globalization;

namespace MobileOne.Training;

/// <summary>Which optimizer <see cref="Trainer"/> builds (--opt).</summary>
public enum OptimizerKind
{
    /// <see cref="Training.Sgd"/> with Nesterov momentum <see cref="TrainingOptions.Momentum"/> (timm's "sgd").
    Sgd,
    /// <see cref="Training.AdamW"/> with PyTorch's default betas and eps; <see cref="TrainingOptions.Momentum"/> is not used.
    AdamW,
}

/// <summary>
/// Everything `mobileone train` can be told, with timm train.py's meanings. <see cref="Validate"/> checks
/// every value before any work starts and names the command-line option in its message.
/// </summary>
public sealed record TrainingOptions
{
    /// <summary>s0..s4 or a description (MobileOneConfig.Parse); classes and in_chans default to the data set's.</summary>
    public string Model { get; init; } = "s0";

    /// <summary>A checkpoint to fine-tune from (timm or Apple, unfused); a new classifier when num_classes differs.</summary>
    public string? Init { get; init; }

    /// <summary>Fashion-MNIST IDX folder, or an image folder with train/ and val/; null = Fashion-MNIST from the system or the bundled subset.</summary>
    public string? Data { get; init; }

    /// <summary>--epochs: passes over the training data; the schedules span all of them.</summary>
    public int Epochs { get; init; } = 10;

    /// <summary>--batch-size: images per optimizer step (the last partial batch of an epoch is dropped); also the evaluation batch size.</summary>
    public int BatchSize { get; init; } = 256;

    /// <summary>--lr: the peak learning rate, reached after the warm-up.</summary>
    public double LearningRate { get; init; } = 0.1;

    /// <summary>--opt: SGD (Nesterov) or AdamW.</summary>
    public OptimizerKind Optimizer { get; init; } = OptimizerKind.Sgd;

    /// <summary>--momentum: SGD's momentum, in [0, 1).</summary>
    public double Momentum { get; init; } = 0.9;

    /// <summary>--weight-decay: decoupled for AdamW, added to the gradient for SGD; not applied to biases and other 1-D parameters.</summary>
    public double WeightDecay { get; init; } = 5e-4;

    /// <summary>When set, weight decay follows a cosine from <see cref="WeightDecay"/> to this value over training (the paper: 1e-4 to 1e-5).</summary>
    public double? WeightDecayEnd { get; init; }

    /// <summary>--smoothing: label smoothing of the cross entropy, in [0, 1).</summary>
    public double Smoothing { get; init; } = 0.1;

    /// <summary>EMA decay (timm --model-ema-decay); null disables the EMA.</summary>
    public double? Ema { get; init; }

    /// <summary>--warmup-epochs: linear warm-up from 0 to <see cref="LearningRate"/>, in epochs (fractions allowed, rounded to whole steps).</summary>
    public double WarmupEpochs { get; init; } = 1;

    /// <summary>--min-lr: the learning rate the cosine ends at.</summary>
    public double MinLearningRate { get; init; }

    /// <summary>--clip-grad: maximum global L2 norm of the gradients; null disables clipping.</summary>
    public double? ClipGrad { get; init; }

    /// <summary>--ortho-reg: weight of OCNN's orthogonality penalty on every branch kernel (<see cref="BranchRegularization"/>); 0 is off.</summary>
    public double OrthoReg { get; init; }

    /// <summary>--branch-diversity: weight of the mean squared cosine between each block's BN-folded branch kernels; 0 is off.</summary>
    public double BranchDiversity { get; init; }

    /// <summary>--seed: seeds weight initialization, data order and augmentation; a resumed run must use the same.</summary>
    public int Seed { get; init; }

    /// <summary>--threads: compute threads of training and evaluation (<see cref="Kernels.ComputeThreads"/>); all cores by default.</summary>
    public int Threads { get; init; } = Environment.ProcessorCount;

    /// <summary>--workers: threads that load and transform batches ahead of training; 0 loads on the training thread.</summary>
    public int Workers { get; init; } = 2;

    /// <summary>--output: the folder for summary.csv, the checkpoints and the training state; created if missing.</summary>
    public string Output { get; init; } = "output/train";

    /// <summary>A training-state file to continue from (train_state.safetensors).</summary>
    public string? Resume { get; init; }

    /// <summary>Stop after this many optimizer steps in total (quick runs); the schedule still spans all epochs.</summary>
    public long? MaxSteps { get; init; }

    /// <summary>Print a plain progress line every N steps when output is redirected.</summary>
    public int LogInterval { get; init; } = 50;

    /// <summary>
    /// --img-size: the training resolution, or progressive sizes spread evenly over the epochs (image folders e.g. 160, 192,
    /// 224; Fashion-MNIST e.g. 24, 32), the last one also the evaluation size. null is the data's own size
    /// (<see cref="ImageSizesFor"/>): 224 for image folders, 32 for Fashion-MNIST (28 plus its 2-pixel border).
    /// Fashion-MNIST is evaluated at 32, so its last size must be 32.
    /// </summary>
    public IReadOnlyList<int>? ImageSizes { get; init; }

    /// <summary>
    /// --val-split: hold out the last N images of Fashion-MNIST's training set as a validation split (not trained on).
    /// The per-epoch evaluation then runs on it and chooses best.safetensors (and best_ema.safetensors), and the test
    /// set is evaluated once, when the last epoch has ended, on those checkpoints (test.csv). null: no split, the test
    /// set is evaluated every epoch (as before). A resumed run must use the same value.
    /// </summary>
    public int? ValSplit { get; init; }

    /// <summary>--reprob: probability of timm's random erasing per training image (after the other augmentation, on the normalized tensor); 0 is off.</summary>
    public double ReProb { get; init; }

    /// <summary>--remode: what erased pixels become, as timm's train.py: pixel (per-pixel normal noise, the default), rand (one normal value per channel) or const (0).</summary>
    public string ReMode { get; init; } = "pixel";

    /// <summary>--recount: the most rectangles erased per image (the count is drawn from 1..N; each one's area is divided by the count), as timm's.</summary>
    public int ReCount { get; init; } = 1;

    /// <summary>
    /// --ema-warmup: timm ModelEmaV3's use_warmup, the decay of update t being min(<see cref="Ema"/>, 1 - (1 + (t - 1))^(-2/3))
    /// and 0 for the first (<see cref="ModelEma.DecayAt"/>); false keeps the decay fixed from the first update.
    /// </summary>
    public bool EmaWarmup { get; init; }

    /// <summary>The sizes a run uses on data that is Fashion-MNIST (<paramref name="fashionMnist"/>) or an image folder: <see cref="ImageSizes"/> when given, else 32 or 224.</summary>
    public IReadOnlyList<int> ImageSizesFor(bool fashionMnist) => ImageSizes ?? [fashionMnist ? FashionMnistSize : 224];

    /// <summary>The training size of epoch <paramref name="epoch"/> (from 0) of <paramref name="epochs"/>: <paramref name="sizes"/> spread evenly, each for epochs x 1/count of the run.</summary>
    public static int ImageSizeAt(IReadOnlyList<int> sizes, int epoch, int epochs)
    {
        ArgumentNullException.ThrowIfNull(sizes);
        return sizes[Math.Min(sizes.Count - 1, (int)((long)epoch * sizes.Count / epochs))];
    }

    /// <summary>Fashion-MNIST's evaluation size: the 28 x 28 images with a 2-pixel border.</summary>
    public const int FashionMnistSize = 32;

    /// <summary>The smallest Fashion-MNIST size (--img-size): the image resized to size - 4 and bordered, at least 8 x 8 inside.</summary>
    public const int FashionMnistMinSize = MobileOne.Data.Transforms.DataTransforms.FashionMnistMinSize;

    /// <summary>none | autoaugment | rand-m9-mstd0.5 (image folders; the paper uses AutoAugment for S2..S4).</summary>
    public string AutoAugment { get; init; } = "none";

    /// <summary>
    /// false is timm's --no-aug: the training images get no random crop, flip or AutoAugment (see
    /// <see cref="TrainingData.TrainTransform"/>). Short runs on little data (the demo) learn faster without them.
    /// </summary>
    public bool Augment { get; init; } = true;

    /// <summary>Throws an <see cref="ArgumentException"/> naming the command-line option of the first value out of range; <see cref="Trainer.Run"/> calls it first.</summary>
    public void Validate()
    {
        Positive(Epochs, "--epochs");
        Positive(BatchSize, "--batch-size");
        Positive(Threads, "--threads");
        Positive(LogInterval, "--log-interval");
        if (Workers < 0)
        {
            throw new ArgumentException($"--workers must be 0 or more; got {Workers}.");
        }

        FinitePositive(LearningRate, "--lr");
        NonNegative(MinLearningRate, "--min-lr");
        NonNegative(WeightDecay, "--weight-decay");
        if (WeightDecayEnd is double end)
        {
            NonNegative(end, "--wd-end");
        }

        NonNegative(WarmupEpochs, "--warmup-epochs");
        NonNegative(OrthoReg, "--ortho-reg");
        NonNegative(BranchDiversity, "--branch-diversity");
        if (!(Momentum >= 0 && Momentum < 1))
        {
            throw new ArgumentException($"--momentum must be in [0, 1); got {Format(Momentum)}.");
        }

        if (!(Smoothing >= 0 && Smoothing < 1))
        {
            throw new ArgumentException($"--smoothing must be in [0, 1); got {Format(Smoothing)}.");
        }

        if (Ema is double decay && !(decay > 0 && decay < 1))
        {
            throw new ArgumentException($"--ema decay must be in (0, 1), e.g. 0.9995; got {Format(decay)}.");
        }

        if (ClipGrad is double clip)
        {
            FinitePositive(clip, "--clip-grad");
        }

        if (MaxSteps is long steps && steps <= 0)
        {
            throw new ArgumentException($"--max-steps must be a positive integer; got {steps}.");
        }

        if (ImageSizes is { } sizes && (sizes.Count == 0 || sizes.Any(s => s < 8)))
        {
            throw new ArgumentException($"--img-size values must be at least 8; got [{string.Join(", ", sizes)}].");
        }

        if (ValSplit is int split && split <= 0)
        {
            throw new ArgumentException($"--val-split must be a positive number of images (the last N of the training set); got {split}.");
        }

        if (!(ReProb >= 0 && ReProb <= 1))
        {
            throw new ArgumentException($"--reprob must be a probability in [0, 1]; got {Format(ReProb)}.");
        }

        _ = MobileOne.Data.Transforms.RandomErasing.ParseMode(ReMode);
        Positive(ReCount, "--recount");
        if (!Augment && ReProb > 0)
        {
            throw new ArgumentException($"--reprob {Format(ReProb)} asks for augmentation that --no-aug turns off; give one of them.");
        }

        if (EmaWarmup && Ema is null)
        {
            throw new ArgumentException("--ema-warmup warms up the EMA's decay; it needs --ema.");
        }

        if (!Augment && !string.IsNullOrEmpty(AutoAugment) && AutoAugment != "none")
        {
            throw new ArgumentException($"--aa {AutoAugment} asks for augmentation that --no-aug turns off; give one of them.");
        }

        if (string.IsNullOrWhiteSpace(Output))
        {
            throw new ArgumentException("--output must name a folder.");
        }
    }

    private static void Positive(int value, string option)
    {
        if (value <= 0)
        {
            throw new ArgumentException($"{option} must be a positive integer; got {value}.");
        }
    }

    private static void FinitePositive(double value, string option)
    {
        if (!double.IsFinite(value) || value <= 0)
        {
            throw new ArgumentException($"{option} must be a positive number; got {Format(value)}.");
        }
    }

    private static void NonNegative(double value, string option)
    {
        if (!double.IsFinite(value) || value < 0)
        {
            throw new ArgumentException($"{option} must be a number >= 0; got {Format(value)}.");
        }
    }

    private static string Format(double v) => v.ToString(CultureInfo.InvariantCulture);
}
