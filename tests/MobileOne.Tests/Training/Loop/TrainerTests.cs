using MobileOne.IO;
using MobileOne.IO.Checkpoints;
using MobileOne.Training;

namespace MobileOne.Tests.Training.Loop;

public class TrainerTests
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

    [Theory]
    [InlineData(0.0, 0.0)]
    [InlineData(1e-3, 0.5)]   // with both branch penalties
    public void A_run_killed_and_resumed_ends_bit_identical_to_an_uninterrupted_run(double orthoReg, double branchDiversity)
    {
        using var dir = new TempDir();
        string data = TinyFashionData.Write(dir.File("data"));
        TrainingOptions Run(string output) => Options(data, output) with { OrthoReg = orthoReg, BranchDiversity = branchDiversity };
        var straight = Trainer.Run(Run(dir.File("straight")));
        Assert.Equal(16, straight.Steps);
        Assert.All(straight.Epochs, e => Assert.True(e.OrthoPenalty > 0 && e.BranchDiversity >= 0, $"penalties {e.OrthoPenalty}, {e.BranchDiversity}"));

        // Stop mid-epoch 1 (step 5 of 8), as a kill after a state write would, then continue.
        Trainer.Run(Run(dir.File("resumed")) with { MaxSteps = 5 });
        var resumed = Trainer.Run(Run(dir.File("resumed")) with { Resume = dir.File("resumed/" + TrainingState.FileName) });
        Assert.Equal(16, resumed.Steps);

        foreach (string file in new[] { Trainer.LastCheckpoint, Trainer.EmaCheckpoint, TrainingState.FileName, SummaryCsv.FileName })
        {
            Assert.True(Bytes(dir.File("straight/" + file)).AsSpan().SequenceEqual(Bytes(dir.File("resumed/" + file))), file + " differs");
        }
    }

    [Fact]
    public void The_same_seed_and_threads_reproduce_a_run_and_training_learns()
    {
        using var dir = new TempDir();
        string data = TinyFashionData.Write(dir.File("data"));
        var a = Trainer.Run(Options(data, dir.File("a"), epochs: 3));
        var b = Trainer.Run(Options(data, dir.File("b"), epochs: 3));
        Assert.Equal(Bytes(dir.File("a/" + Trainer.LastCheckpoint)), Bytes(dir.File("b/" + Trainer.LastCheckpoint)));
        Assert.Equal(3, a.Epochs.Count);
        Assert.True(a.Epochs[^1].TrainLoss < a.Epochs[0].TrainLoss, $"loss {a.Epochs[0].TrainLoss} -> {a.Epochs[^1].TrainLoss}");
        Assert.True(a.Epochs[^1].EvalTop1 > 0.3, $"eval top-1 {a.Epochs[^1].EvalTop1} on separable data");

        var rows = SummaryCsv.Read(dir.File("a/" + SummaryCsv.FileName));
        Assert.Equal(a.Epochs.Select(e => e.EvalTop1), rows.Select(r => r.EvalTop1));
        Assert.True(File.Exists(dir.File("a/" + Trainer.BestCheckpoint)));
        var saved = ModelCheckpoint.Load(dir.File("a/" + Trainer.LastCheckpoint));
        Assert.Equal("timm", saved.Info.Scheme.Name);
        Assert.Equal(10, saved.Info.Config.NumClasses);
        Assert.Equal(1, saved.Info.Config.InChans);
    }

    [Fact]
    public void A_diverging_run_stops_with_a_message_and_keeps_the_last_good_checkpoint()
    {
        using var dir = new TempDir();
        string data = TinyFashionData.Write(dir.File("data"));
        Trainer.Run(Options(data, dir.File("out"), epochs: 1));
        byte[] good = Bytes(dir.File("out/" + Trainer.LastCheckpoint));

        var e = Assert.Throws<TrainingDivergedException>(() => Trainer.Run(Options(data, dir.File("out"), epochs: 1) with { LearningRate = 1e30, WarmupEpochs = 0 }));
        Assert.Contains("the loss became", e.Message);
        Assert.Contains("last good checkpoint", e.Message);
        Assert.Equal(good, Bytes(dir.File("out/" + Trainer.LastCheckpoint)));
    }

    [Theory]
    [InlineData("BatchSize", "--batch-size must be a positive integer; got 0.")]
    [InlineData("LearningRate", "--lr must be a positive number; got NaN.")]
    [InlineData("Epochs", "--epochs must be a positive integer; got 0.")]
    public void Bad_options_are_refused_before_any_work(string field, string message)
    {
        var options = new TrainingOptions { Output = "/nonexistent/never-created" };
        options = field switch
        {
            "BatchSize" => options with { BatchSize = 0 },
            "LearningRate" => options with { LearningRate = double.NaN },
            _ => options with { Epochs = 0 },
        };
        var e = Assert.Throws<ArgumentException>(() => Trainer.Run(options));
        Assert.Equal(message, e.Message);
        Assert.False(Directory.Exists("/nonexistent/never-created"));
    }

    [Fact]
    public void Data_problems_are_reported_before_training()
    {
        using var dir = new TempDir();
        var missing = Assert.Throws<MobileOne.Data.DatasetException>(() => Trainer.Run(Options(dir.File("nope"), dir.File("out"))));
        Assert.Contains("does not exist", missing.Message);
        Directory.CreateDirectory(dir.File("empty"));
        var empty = Assert.Throws<MobileOne.Data.DatasetException>(() => Trainer.Run(Options(dir.File("empty"), dir.File("out"))));
        Assert.Contains("expected Fashion-MNIST IDX files", empty.Message);
        Assert.False(Directory.Exists(dir.File("out")));
    }

    [Fact]
    public void Resume_refuses_a_state_from_another_model_or_class_count()
    {
        using var dir = new TempDir();
        string data = TinyFashionData.Write(dir.File("data"));
        Trainer.Run(Options(data, dir.File("out"), epochs: 1) with { MaxSteps = 2 });
        string state = dir.File("out/" + TrainingState.FileName);

        var other = Assert.Throws<CheckpointException>(() => Trainer.Run(Options(data, dir.File("out2")) with { Model = "units=1/1/1/1,widths=0.5/0.25/0.25/0.25,k=2", Resume = state }));
        Assert.Contains("belongs to another model", other.Message);

        var classes = Assert.Throws<CheckpointException>(() => TrainingState.Load(state, MobileOne.Models.MobileOneNetwork.Create(MobileOne.Models.MobileOneConfig.Parse(TinyModel + ",classes=7,in_chans=1"))));
        Assert.Contains("num_classes 10", classes.Message);
        Assert.Contains("7 classes", classes.Message);
    }

    [Fact]
    public void Fine_tuning_from_a_checkpoint_with_other_classes_keeps_the_backbone()
    {
        using var dir = new TempDir();
        string data = TinyFashionData.Write(dir.File("data"));
        var source = MobileOne.Models.MobileOneNetwork.Create(MobileOne.Models.MobileOneConfig.Parse(TinyModel + ",classes=1000,in_chans=1"));
        MobileOne.Models.WeightInit.Initialize(source, 1);
        ModelCheckpoint.Save(source, dir.File("init.pth"), KeyLayout.Apple);

        var run = Trainer.Run(Options(data, dir.File("out"), epochs: 1) with { Init = dir.File("init.pth"), MaxSteps = 1, LearningRate = 1e-6, WarmupEpochs = 0 });
        var trained = Assert.IsType<MobileOne.Models.MobileOneNetwork>(run.Model);
        Assert.Equal(10, trained.Config.NumClasses);
        var stemBefore = source.Stem.ConvKxk[0].Conv.Weight.Value.Data;
        var stemAfter = trained.Stem.ConvKxk[0].Conv.Weight.Value.Data;
        Assert.True(Reference.MaxAbsDiff(stemBefore, stemAfter) < 1e-4, "backbone weights were not carried over");
    }

    [Fact]
    public void A_registry_architecture_trains_resumes_and_saves_in_timms_names()
    {
        using var dir = new TempDir();
        string data = TinyFashionData.Write(dir.File("data"));
        var options = Options(data, dir.File("out"), epochs: 2) with { Model = "mobilenetv2_035", Ema = 0.9 };
        var first = Trainer.Run(options with { MaxSteps = 2 });
        var network = Assert.IsType<MobileOne.Models.Zoo.ZooNetwork>(first.Model);
        Assert.Equal(("mobilenetv2_035", 10, 1), (network.Architecture, network.NumClasses, network.InChans));
        var loaded = ModelCheckpoint.LoadClassifier(dir.File("out/" + Trainer.LastCheckpoint)).Network;
        Assert.Equal(network.State().Select(e => (e.Name, e.Value.Data)), loaded.State().Select(e => (e.Name, e.Value.Data)));

        var resumed = Trainer.Run(options with { Resume = dir.File("out/" + TrainingState.FileName) });
        Assert.True(resumed.Steps > first.Steps);
        Assert.Equal(2, resumed.Epochs.Count);
        Assert.IsType<MobileOne.Models.Zoo.ZooNetwork>(resumed.Ema);

        var penalty = Assert.Throws<ArgumentException>(() => Trainer.Run(options with { Output = dir.File("out2"), OrthoReg = 1e-3 }));
        Assert.Contains("mobilenetv2_035 has none", penalty.Message);
    }
}
