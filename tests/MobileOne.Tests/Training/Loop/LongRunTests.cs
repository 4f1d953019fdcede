using MobileOne.Data;
using MobileOne.Data.Loading;
using MobileOne.Data.Transforms;
using MobileOne.IO.Checkpoints;
using MobileOne.Training;

namespace MobileOne.Tests.Training.Loop;

/// <summary>
/// What issue 11's long Fashion-MNIST run needs from the trainer: --val-split (train on the first images, choose
/// checkpoints on the last, test once at the end), progressive sizes, random erasing and the EMA warm-up, all resumable.
/// </summary>
public class LongRunTests
{
    private const string TinyModel = "units=1/1/1/1,widths=0.25/0.25/0.25/0.25,k=2,se=0/0/0/1";

    private static TrainingOptions Options(string data, string output, int epochs = 2) => new()
    {
        Model = TinyModel,
        Data = data,
        Output = output,
        Epochs = epochs,
        BatchSize = 32,
        LearningRate = 0.05,
        WarmupEpochs = 0.5,
        Threads = 1,
        Workers = 1,
        Ema = 0.99,
        Seed = 5,
    };

    private static byte[] Bytes(string path) => File.ReadAllBytes(path);

    /// <summary>A Fashion-MNIST folder whose training files hold the first <paramref name="kept"/> training images of <paramref name="from"/> and whose test files hold the rest of them.</summary>
    private static string SplitByHand(string from, string to, int kept)
    {
        Directory.CreateDirectory(to);
        var images = IdxFile.Read(Path.Combine(from, "train-images-idx3-ubyte.gz"), IdxFile.ImagesMagic);
        var labels = IdxFile.Read(Path.Combine(from, "train-labels-idx1-ubyte.gz"), IdxFile.LabelsMagic);
        int n = images.Dimensions[0], pixels = images.Dimensions[1] * images.Dimensions[2];
        void Write(string prefix, int start, int count)
        {
            IdxFile.Write(Path.Combine(to, $"{prefix}-images-idx3-ubyte.gz"), new IdxArray([count, 28, 28], images.Data.AsSpan(start * pixels, count * pixels).ToArray()), gzip: true);
            IdxFile.Write(Path.Combine(to, $"{prefix}-labels-idx1-ubyte.gz"), new IdxArray([count], labels.Data.AsSpan(start, count).ToArray()), gzip: true);
        }

        Write("train", 0, kept);
        Write("t10k", kept, n - kept);
        return to;
    }

    [Fact]
    public void A_validation_split_trains_on_the_first_images_and_evaluates_on_the_last_like_a_run_on_those_files()
    {
        // Run A holds out the last 56 of 256 training images; run C trains on a folder holding only the first 200 and
        // evaluates on one holding only the last 56. If A trained on none of the 56, and evaluated (and chose its best)
        // on exactly them, the two runs are the same computation: same rows, same checkpoints, bit for bit.
        using var dir = new TempDir();
        string data = TinyFashionData.Write(dir.File("data"));
        string byHand = SplitByHand(data, dir.File("by-hand"), kept: 200);
        var observer = new RecordingObserver();
        var split = Trainer.Run(Options(data, dir.File("a")) with { ValSplit = 56 }, observer: observer);
        var reference = Trainer.Run(Options(byHand, dir.File("c")));

        Assert.Equal(12, split.Steps);
        Assert.Equal(reference.Epochs, split.Epochs);
        foreach (string file in new[] { Trainer.LastCheckpoint, Trainer.BestCheckpoint, Trainer.EmaCheckpoint })
        {
            Assert.True(Bytes(dir.File("a/" + file)).AsSpan().SequenceEqual(Bytes(dir.File("c/" + file))), file + " differs");
        }

        Assert.Contains(observer.Messages, m => m.StartsWith("data: 200 training images", StringComparison.Ordinal) && m.Contains("56 validation images") && m.Contains("100 test images"));

        // The test set (the folder's 100 t10k images) was evaluated once, at the end, on the best checkpoints by validation.
        var test = Assert.IsAssignableFrom<IReadOnlyList<TestEvaluation>>(split.Test);
        Assert.Equal([Trainer.BestCheckpoint, Trainer.BestEmaCheckpoint], test.Select(t => t.Checkpoint));
        int bestEpoch = split.Epochs.First(e => e.EvalTop1 == split.Epochs.Max(r => r.EvalTop1)).Epoch;
        int bestEmaEpoch = split.Epochs.First(e => e.EmaEvalTop1 == split.Epochs.Max(r => r.EmaEvalTop1)).Epoch;
        Assert.Equal((bestEpoch, split.Epochs[bestEpoch - 1].EvalTop1), (test[0].Epoch, test[0].ValTop1));
        Assert.Equal((bestEmaEpoch, split.Epochs[bestEmaEpoch - 1].EmaEvalTop1), (test[1].Epoch, test[1].ValTop1));
        Assert.Equal(test, TestCsv.Read(dir.File("a/" + TestCsv.FileName)));
        Assert.Equal(2, observer.Messages.Count(m => m.StartsWith("test: ", StringComparison.Ordinal)));

        // Independently: each checkpoint on the test files, through the evaluation transform.
        var testSet = FashionMnist.Load(FashionMnistSplit.Test, data);
        var loader = new DataLoader(testSet, DataTransforms.FashionMnistEval(), new DataLoaderOptions { BatchSize = 32, Shuffle = false, DropLast = false, Workers = 0 });
        foreach (var row in test)
        {
            var expected = Evaluator.Run(ModelCheckpoint.LoadClassifier(dir.File("a/" + row.Checkpoint)).Network, loader);
            Assert.Equal((expected.Top1, expected.Top5, expected.Loss, 100), (row.Top1, row.Top5, row.Loss, row.Images));
        }

        // Without a split nothing of this exists.
        Assert.Null(reference.Test);
        Assert.False(File.Exists(dir.File("c/" + TestCsv.FileName)));
        Assert.False(File.Exists(dir.File("c/" + Trainer.BestEmaCheckpoint)));
    }

    [Theory]
    [InlineData(false, false, false)]
    [InlineData(true, false, false)]
    [InlineData(false, true, false)]
    [InlineData(false, false, true)]
    [InlineData(true, true, true)]
    [InlineData(true, true, false)]
    [InlineData(false, true, true)]
    [InlineData(true, false, true)]
    public void A_long_run_resumes_bit_identically_and_tests_once_at_the_end(bool erasing, bool progressive, bool emaWarmup)
    {
        using var dir = new TempDir();
        string data = TinyFashionData.Write(dir.File("data"));
        TrainingOptions Run(string output) => Options(data, output, epochs: 3) with
        {
            ValSplit = 56, ReProb = erasing ? 0.5 : 0, ImageSizes = progressive ? [16, 24, 32] : null, EmaWarmup = emaWarmup,
        };

        var straight = Trainer.Run(Run(dir.File("straight")));
        Assert.Equal(18, straight.Steps);
        Assert.NotNull(straight.Test);

        // A first session stops inside epoch 2; the test set is not looked at until the last epoch has ended.
        var observer = new RecordingObserver();
        var first = Trainer.Run(Run(dir.File("resumed")) with { MaxSteps = 8 }, observer: observer);
        Assert.Null(first.Test);
        Assert.False(File.Exists(dir.File("resumed/" + TestCsv.FileName)));
        Assert.Contains(observer.Messages, m => m.StartsWith("test set not evaluated: 1 of 3 epochs are done", StringComparison.Ordinal));

        string state = dir.File("resumed/" + TrainingState.FileName);
        var second = Trainer.Run(Run(dir.File("resumed")) with { Resume = state });
        Assert.Equal(18, second.Steps);
        Assert.Equal(straight.Test, second.Test);
        foreach (string file in new[] { Trainer.LastCheckpoint, Trainer.BestCheckpoint, Trainer.EmaCheckpoint, Trainer.BestEmaCheckpoint, TrainingState.FileName, SummaryCsv.FileName, TestCsv.FileName })
        {
            Assert.True(Bytes(dir.File("straight/" + file)).AsSpan().SequenceEqual(Bytes(dir.File("resumed/" + file))), file + " differs");
        }

        // Resuming the finished run again reports the recorded result and does not evaluate the test set again: a
        // doctored test.csv comes back as it is.
        var doctored = second.Test!.Select(t => t with { Top1 = 0.125 }).ToList();
        TestCsv.Write(dir.File("resumed/" + TestCsv.FileName), doctored);
        var third = Trainer.Run(Run(dir.File("resumed")) with { Resume = state });
        Assert.Equal(18, third.Steps);
        Assert.Equal(doctored, third.Test);

        // A new run in the same folder does not inherit the old result.
        Trainer.Run(Run(dir.File("resumed")) with { MaxSteps = 2 });
        Assert.False(File.Exists(dir.File("resumed/" + TestCsv.FileName)));
    }

    [Fact]
    public void Resuming_with_another_split_is_refused_naming_the_option()
    {
        using var dir = new TempDir();
        string data = TinyFashionData.Write(dir.File("data"));
        Trainer.Run(Options(data, dir.File("split")) with { ValSplit = 56, MaxSteps = 2 });
        string state = dir.File("split/" + TrainingState.FileName);

        var dropped = Assert.Throws<ArgumentException>(() => Trainer.Run(Options(data, dir.File("split")) with { Resume = state }));
        Assert.Equal($"{state}: the run held out the last 56 training images (--val-split 56); resume with the same --val-split (got no --val-split).", dropped.Message);
        var changed = Assert.Throws<ArgumentException>(() => Trainer.Run(Options(data, dir.File("split")) with { ValSplit = 40, Resume = state }));
        Assert.Equal($"{state}: the run held out the last 56 training images (--val-split 56); resume with the same --val-split (got --val-split 40).", changed.Message);

        Trainer.Run(Options(data, dir.File("plain")) with { MaxSteps = 2 });
        string plain = dir.File("plain/" + TrainingState.FileName);
        var added = Assert.Throws<ArgumentException>(() => Trainer.Run(Options(data, dir.File("plain")) with { ValSplit = 56, Resume = plain }));
        Assert.Equal($"{plain}: the run had no --val-split; resume with the same --val-split (got --val-split 56).", added.Message);

        // The same split resumes.
        Assert.Equal(12, Trainer.Run(Options(data, dir.File("split")) with { ValSplit = 56, Resume = state }).Steps);
    }

    [Fact]
    public void Bad_splits_are_refused_naming_the_option()
    {
        using var dir = new TempDir();
        string data = TinyFashionData.Write(dir.File("data"));
        Assert.Equal(
            "--val-split must be a positive number of images (the last N of the training set); got 0.",
            Assert.Throws<ArgumentException>(() => Trainer.Run(Options(data, dir.File("out")) with { ValSplit = 0 })).Message);
        var all = Assert.Throws<ArgumentException>(() => Trainer.Run(Options(data, dir.File("out")) with { ValSplit = 256 }));
        Assert.StartsWith("--val-split 256 must leave images to train on;", all.Message, StringComparison.Ordinal);
        Assert.EndsWith("has 256 training images.", all.Message, StringComparison.Ordinal);
        Directory.CreateDirectory(dir.File("folder"));
        var folder = Assert.Throws<ArgumentException>(() => Trainer.Run(Options(dir.File("folder"), dir.File("out")) with { ValSplit = 10 }));
        Assert.StartsWith("--val-split holds out the last images of Fashion-MNIST's training set;", folder.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Progressive_sizes_reach_the_model_at_the_stated_size_in_each_epoch()
    {
        using var dir = new TempDir();
        string data = TinyFashionData.Write(dir.File("data"));
        var observer = new RecordingObserver();
        var run = Trainer.Run(Options(data, dir.File("p"), epochs: 3) with { ImageSizes = [16, 24, 32] }, observer: observer);
        Assert.Equal(3, run.Epochs.Count);
        Assert.Equal(
            new Dictionary<int, int[]> { [0] = [16], [1] = [24], [2] = [32] },
            observer.Sizes.ToDictionary(kv => kv.Key, kv => kv.Value.Distinct().ToArray()));
        Assert.Contains("epoch 2: training images 24x24 (--img-size 16,24,32), evaluation at 32x32", observer.Messages);

        // The default is one size, 32, and says nothing about sizes.
        var plain = new RecordingObserver();
        Trainer.Run(Options(data, dir.File("d"), epochs: 1) with { MaxSteps = 3 }, observer: plain);
        Assert.Equal([32], plain.Sizes.Values.SelectMany(s => s).Distinct());
        Assert.DoesNotContain(plain.Messages, m => m.Contains("training images", StringComparison.Ordinal) && m.StartsWith("epoch", StringComparison.Ordinal));

        // Sizes spread evenly over the epochs, as for image folders: 2 sizes over 5 epochs -> 3 small, 2 final.
        Assert.Equal([24, 24, 24, 32, 32], Enumerable.Range(0, 5).Select(e => TrainingOptions.ImageSizeAt([24, 32], e, 5)));

        // A final size other than 32 trains and evaluates at it (the evaluation transform resizes as training does).
        var larger = new RecordingObserver();
        Trainer.Run(Options(data, dir.File("l"), epochs: 2) with { ImageSizes = [32, 40] }, observer: larger);
        Assert.Equal(new Dictionary<int, int[]> { [0] = [32], [1] = [40] }, larger.Sizes.ToDictionary(kv => kv.Key, kv => kv.Value.Distinct().ToArray()));
        Assert.Contains("epoch 2: training images 40x40 (--img-size 32,40), evaluation at 40x40", larger.Messages);

        var small = Assert.Throws<ArgumentException>(() => Trainer.Run(Options(data, dir.File("x")) with { ImageSizes = [10, 32] }));
        Assert.StartsWith("--img-size 10,32: each Fashion-MNIST size must be at least 12", small.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(dir.File("x")));
    }

    private sealed class RecordingObserver : ITrainingObserver
    {
        public List<string> Messages { get; } = [];

        public SortedDictionary<int, List<int>> Sizes { get; } = [];

        public void Message(string text) => Messages.Add(text);

        public void EpochStarted(int epoch, int epochs, int stepsPerEpoch)
        {
        }

        public void StepCompleted(in StepProgress progress)
        {
            if (!Sizes.TryGetValue(progress.Epoch, out var list))
            {
                Sizes[progress.Epoch] = list = [];
            }

            list.Add(progress.ImageSize);
        }

        public void EpochCompleted(EpochSummary summary, IReadOnlyList<EpochSummary> all)
        {
        }
    }
}
