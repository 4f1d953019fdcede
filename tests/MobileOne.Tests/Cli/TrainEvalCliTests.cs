using System.Text.Json;
using MobileOne.Tests.Training.Loop;

namespace MobileOne.Tests.Cli;

public class TrainEvalCliTests
{
    private const string TinyModel = "units=1/1/1/1,widths=0.25/0.25/0.25/0.25,k=2";

    [Fact]
    public void Train_then_eval_unfused_and_fused_with_predictions()
    {
        using var dir = new TempDir();
        string data = TinyFashionData.Write(dir.File("data"));
        string output = dir.File("run");
        var train = CliRunner.Run("train", "--model", TinyModel, "--data", data, "--epochs", "2", "--batch-size", "32", "--threads", "1", "--output", output, "--log-interval", "4", "--ema");
        Assert.True(train.ExitCode == 0, train.StdErr);
        Assert.Contains("epoch 2: train_loss", train.StdOut);
        Assert.Contains("epoch 1/2 step 4/8", train.StdOut);
        foreach (string file in new[] { "last.safetensors", "best.safetensors", "last_ema.safetensors", "train_state.safetensors", "summary.csv", "summary.png" })
        {
            Assert.True(File.Exists(Path.Combine(output, file)), file);
        }

        Assert.StartsWith("epoch,train_loss,eval_loss,eval_top1,eval_top5,lr", File.ReadAllText(Path.Combine(output, "summary.csv")));

        string checkpoint = Path.Combine(output, "last.safetensors");
        var unfused = CliRunner.Run("eval", checkpoint, "--data", data, "--json", "--predictions", dir.File("pred.csv"));
        Assert.True(unfused.ExitCode == 0, unfused.StdErr);
        using var u = JsonDocument.Parse(unfused.StdOut);
        Assert.Equal(100, u.RootElement.GetProperty("count").GetInt32());
        double top1 = u.RootElement.GetProperty("top1").GetDouble();
        Assert.InRange(top1, 0, 1);

        string[] rows = File.ReadAllLines(dir.File("pred.csv"));
        Assert.Equal("index,label,predicted,probability", rows[0]);
        Assert.Equal(101, rows.Length);
        Assert.Equal(top1, rows.Skip(1).Count(r => r.Split(',')[1] == r.Split(',')[2]) / 100.0, 6);
        Assert.StartsWith("0,0,", rows[1]);

        var fused = CliRunner.Run("eval", checkpoint, "--data", data, "--fuse");
        Assert.True(fused.ExitCode == 0, fused.StdErr);
        Assert.Matches(@"^ \* Acc@1 \d+\.\d{3} \(\d+\.\d{3}\) Acc@5 \d+\.\d{3} \(\d+\.\d{3}\)$", fused.StdOut.Split('\n')[1].TrimEnd('\r'));
        Assert.Contains($"Acc@1 {100 * top1:0.000}", fused.StdOut);
    }

    [Fact]
    public void Train_a_long_run_recipe_with_a_validation_split_tests_once_at_the_end()
    {
        using var dir = new TempDir();
        string data = TinyFashionData.Write(dir.File("data"));
        string output = dir.File("run");
        var train = CliRunner.Run(
            "train", "--model", TinyModel, "--data", data, "--epochs", "2", "--batch-size", "32", "--threads", "1", "--output", output,
            "--val-split", "56", "--reprob", "0.25", "--img-size", "24,32", "--ema", "--ema-warmup");
        Assert.True(train.ExitCode == 0, train.StdErr);
        Assert.Contains("data: 200 training images", train.StdOut);
        Assert.Contains("epoch 1: training images 24x24 (--img-size 24,32), evaluation at 32x32", train.StdOut);
        Assert.Contains("epoch 2: training images 32x32", train.StdOut);
        Assert.Matches(@"test: best\.safetensors \(epoch \d, val top-1 \d\.\d{4}\): top-1 \d\.\d{4} top-5 \d\.\d{4} loss \d+\.\d{4} on 100 test images", train.StdOut);
        Assert.Contains("test: best_ema.safetensors", train.StdOut);
        Assert.Matches(@"done: 12 steps, val top-1 \d\.\d{4}", train.StdOut);
        Assert.StartsWith("checkpoint,epoch,val_top1,test_top1,test_top5,test_loss,images\nbest.safetensors,", File.ReadAllText(Path.Combine(output, "test.csv")));
        Assert.True(File.Exists(Path.Combine(output, "best_ema.safetensors")));

        // The test line of the CLI is the eval command's number on the same checkpoint and the same test images.
        var eval = CliRunner.Run("eval", Path.Combine(output, "best.safetensors"), "--data", data, "--json");
        Assert.True(eval.ExitCode == 0, eval.StdErr);
        using var json = JsonDocument.Parse(eval.StdOut);
        string testTop1 = File.ReadAllLines(Path.Combine(output, "test.csv"))[1].Split(',')[3];
        Assert.Equal(double.Parse(testTop1, System.Globalization.CultureInfo.InvariantCulture), json.RootElement.GetProperty("top1").GetDouble(), 12);

        Assert.Equal(32, json.RootElement.GetProperty("img_size").GetInt32());

        var resumed = CliRunner.Run("train", "--model", TinyModel, "--data", data, "--epochs", "2", "--batch-size", "32", "--threads", "1", "--output", output, "--resume", "--ema");
        CliRunner.AssertCleanFailure(resumed, "resume with the same --val-split (got no --val-split)");
    }

    [Fact]
    public void A_model_trained_at_40x40_is_evaluated_at_the_size_eval_is_given()
    {
        using var dir = new TempDir();
        string data = TinyFashionData.Write(dir.File("data"));
        string output = dir.File("run");
        var train = CliRunner.Run(
            "train", "--model", TinyModel, "--data", data, "--epochs", "1", "--batch-size", "32", "--threads", "1",
            "--output", output, "--val-split", "56", "--img-size", "40", "--ema");
        Assert.True(train.ExitCode == 0, train.StdErr);
        string testTop1 = File.ReadAllLines(Path.Combine(output, "test.csv"))[1].Split(',')[3];

        var eval = CliRunner.Run("eval", Path.Combine(output, "best.safetensors"), "--data", data, "--img-size", "40", "--json");
        Assert.True(eval.ExitCode == 0, eval.StdErr);
        using var json = JsonDocument.Parse(eval.StdOut);
        Assert.Equal(40, json.RootElement.GetProperty("img_size").GetInt32());
        Assert.Equal(double.Parse(testTop1, System.Globalization.CultureInfo.InvariantCulture), json.RootElement.GetProperty("top1").GetDouble(), 12);

        var text = CliRunner.Run("eval", Path.Combine(output, "best.safetensors"), "--data", data, "--img-size", "40");
        Assert.Contains("at 40x40: 100 images", text.StdOut);
        CliRunner.AssertCleanFailure(
            CliRunner.Run("eval", Path.Combine(output, "best.safetensors"), "--data", data, "--img-size", "8"), "--img-size 8: Fashion-MNIST sizes must be at least 12");

        // The checkpoints record the size (input_size "1,40,40"): eval, info and a fused copy take it without being told.
        var byRecord = CliRunner.Run("eval", Path.Combine(output, "best.safetensors"), "--data", data, "--json");
        Assert.True(byRecord.ExitCode == 0, byRecord.StdErr);
        using var recorded = JsonDocument.Parse(byRecord.StdOut);
        Assert.Equal(40, recorded.RootElement.GetProperty("img_size").GetInt32());
        Assert.Equal(json.RootElement.GetProperty("top1").GetDouble(), recorded.RootElement.GetProperty("top1").GetDouble());
        Assert.Equal(json.RootElement.GetProperty("loss").GetDouble(), recorded.RootElement.GetProperty("loss").GetDouble());
        var at32 = CliRunner.Run("eval", Path.Combine(output, "best.safetensors"), "--data", data, "--img-size", "32", "--json");
        Assert.Equal(32, JsonDocument.Parse(at32.StdOut).RootElement.GetProperty("img_size").GetInt32());

        var info = CliRunner.Run("info", Path.Combine(output, "best_ema.safetensors"), "--json");
        Assert.True(info.ExitCode == 0, info.StdErr);
        using var infoJson = JsonDocument.Parse(info.StdOut);
        Assert.Equal(40, infoJson.RootElement.GetProperty("trained_input_size").GetInt32());
        Assert.Equal(40, infoJson.RootElement.GetProperty("image_size").GetInt32());
        Assert.Contains("40x40 (recorded in the file)", CliRunner.Run("info", Path.Combine(output, "last.safetensors")).StdOut);

        string fused = Path.Combine(output, "fused.safetensors");
        Assert.Equal(0, CliRunner.Run("convert", Path.Combine(output, "best.safetensors"), fused, "--fuse").ExitCode);
        var fusedEval = CliRunner.Run("eval", fused, "--data", data);
        Assert.Contains("(fused) on", fusedEval.StdOut);
        Assert.Contains("at 40x40: 100 images", fusedEval.StdOut);

        string compressed = Path.Combine(output, "compressed.safetensors");
        var compress = CliRunner.Run("compress", Path.Combine(output, "best.safetensors"), compressed, "--json");
        Assert.True(compress.ExitCode == 0, compress.StdErr);
        Assert.Contains("\"trained_input_size\": 40", CliRunner.Run("info", compressed, "--json").StdOut);
    }

    [Fact]
    public void Train_refuses_bad_options_before_any_work()
    {
        using var dir = new TempDir();
        string output = dir.File("never");
        CliRunner.AssertCleanFailure(CliRunner.Run("train", "--batch-size", "0", "--output", output), "--batch-size must be a positive integer");
        CliRunner.AssertCleanFailure(CliRunner.Run("train", "--data", dir.File("missing"), "--output", output), "does not exist");
        CliRunner.AssertCleanFailure(CliRunner.Run("train", "--opt", "lamb", "--output", output), "--opt must be sgd or adamw");
        CliRunner.AssertCleanFailure(CliRunner.Run("train", "--ortho-reg", "-0.5", "--output", output), "--ortho-reg must be a number >= 0; got -0.5.");
        CliRunner.AssertCleanFailure(CliRunner.Run("train", "--branch-diversity", "NaN", "--output", output), "--branch-diversity must be a number >= 0; got NaN.");
        CliRunner.AssertCleanFailure(CliRunner.Run("train", "--resume", dir.File("none.safetensors"), "--output", output), "--resume");
        CliRunner.AssertCleanFailure(CliRunner.Run("train", "--val-split", "0", "--output", output), "--val-split must be a positive number of images");
        CliRunner.AssertCleanFailure(CliRunner.Run("train", "--reprob", "2", "--output", output), "--reprob must be a probability in [0, 1]; got 2.");
        CliRunner.AssertCleanFailure(CliRunner.Run("train", "--remode", "noise", "--output", output), "--remode must be pixel, rand or const; got 'noise'.");
        CliRunner.AssertCleanFailure(CliRunner.Run("train", "--ema-warmup", "--output", output), "--ema-warmup warms up the EMA's decay; it needs --ema.");
        CliRunner.AssertCleanFailure(CliRunner.Run("train", "--data", "bundled", "--img-size", "8,32", "--output", output), "--img-size 8,32: each Fashion-MNIST size must be at least 12");
        var notANumber = CliRunner.Run("train", "--lr", "fast", "--output", output);
        Assert.NotEqual(0, notANumber.ExitCode);
        Assert.Contains("--lr", notANumber.StdErr);
        Assert.DoesNotContain("   at ", notANumber.StdErr);
        Assert.False(Directory.Exists(output));
    }

    [Fact]
    public void Demo_trains_fuses_and_compares_on_the_bundled_subset()
    {
        using var dir = new TempDir();
        var r = CliRunner.Run("demo", "--model", TinyModel, "--epochs", "1", "--max-steps", "2", "--batch-size", "32", "--threads", "1", "--output", dir.File("demo"));
        Assert.True(r.ExitCode == 0, r.StdErr);
        Assert.Contains("bundled subset", r.StdOut);
        Assert.Contains("eval top-1 (unfused / fused)", r.StdOut);
        Assert.Contains("latency, batch 1", r.StdOut);
        Assert.True(File.Exists(dir.File("demo/summary.png")));
    }
}
