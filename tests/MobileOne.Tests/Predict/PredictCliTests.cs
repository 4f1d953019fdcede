using System.Globalization;
using System.Text.Json.Nodes;
using MobileOne.Classification;
using MobileOne.Inference;
using MobileOne.IO.Checkpoints;
using MobileOne.Models;
using MobileOne.Tests.Cli;

namespace MobileOne.Tests.Predict;

/// <summary>`mobileone predict` run as a user runs it (a child process), on the S0 fixture and on a grey 10-class model.</summary>
public sealed class PredictCliTests
{
    private static string Model => Fixtures.Path("mobileone_s0_timm.safetensors");

    private static string Image(string file) => PilPredictReference.ImagePath(file);

    [Fact]
    public void JsonHoldsEveryInputInOrderWithPilEqualLogitsAndReportsFailures()
    {
        using var dir = new TempDir();
        byte[] jpeg = File.ReadAllBytes(Image("rgb.jpg"));
        File.WriteAllBytes(dir.File("cut.jpg"), jpeg[..(jpeg.Length / 2)]);
        File.WriteAllText(dir.File("notes.png"), "not a picture");
        string csv = dir.File("results.csv");
        var result = CliRunner.Run(
            "predict", Model, Image("rgb.png"), dir.File("cut.jpg"), Image("rgb.jpg"), dir.File("missing.png"), dir.File("notes.png"), Image("gray16.png"),
            "--img-size", "64", "--top", "3", "--batch-size", "2", "--threads", "1", "--json", "--output", csv);

        Assert.Equal(1, result.ExitCode);
        var array = JsonNode.Parse(result.StdOut)!.AsArray(); // stdout is the JSON array and nothing else
        Assert.Equal([Image("rgb.png"), dir.File("cut.jpg"), Image("rgb.jpg"), dir.File("missing.png"), dir.File("notes.png"), Image("gray16.png")],
            array.Select(e => (string)e!["path"]!));
        Assert.Contains("truncated", (string)array[1]!["error"]!);
        Assert.Equal("no such file or folder", (string)array[3]!["error"]!);
        Assert.Contains("not a decodable image", (string)array[4]!["error"]!);
        Assert.Contains($"error: {dir.File("cut.jpg")}: ", result.StdErr);
        Assert.Contains("predict: 3 classified, 3 failed", result.StdErr);

        // The top-3 equal the engine's answer on the tensors PIL + torchvision made of the same files.
        var loaded = ModelCheckpoint.Load(Model);
        using var classifier = new ImageClassifier(loaded.Network, ImagePreprocessing.ForModel(loaded.Network.Config) with { Size = 64 }, ClassLabels.ImageNet, new InferenceOptions { Threads = 1 });
        foreach (var (entry, reference) in new[] { (array[0]!, "rgb_png.s64"), (array[2]!, "rgb_jpg.s64") })
        {
            var logits = classifier.Run(PilPredictReference.Case(reference).Expected.Reshape(1, 3, 64, 64)).Data;
            var expected = ImageClassifier.TopK(logits, 3, ClassLabels.ImageNet);
            var top = entry["top"]!.AsArray();
            Assert.Equal(expected.Select(s => s.Index), top.Select(t => (int)t!["index"]!));
            Assert.Equal(expected.Select(s => s.Label), top.Select(t => (string?)t!["label"]));
            float range = logits.Max() - logits.Min();
            for (int k = 0; k < 3; k++)
            {
                Assert.True(Math.Abs(expected[k].Logit - (float)top[k]!["logit"]!) <= 1e-4f * range);
                Assert.Equal(expected[k].Probability, (float)top[k]!["probability"]!, 5);
            }
        }

        Assert.Equal(3, array[5]!["top"]!.AsArray().Count);

        // timm inference.py's CSV (--results-separate-col --include-index --fullname): classified rows only.
        var lines = File.ReadAllLines(csv);
        Assert.Equal("filename,index_0,index_1,index_2,label_0,label_1,label_2,prob_0,prob_1,prob_2", lines[0]);
        Assert.Equal(4, lines.Length);
        var first = array[0]!["top"]![0]!;
        Assert.StartsWith($"{Image("rgb.png")},{(int)first["index"]!},", lines[1]);
        string label = (string)first["label"]!;
        Assert.Contains(label.Contains(',') ? $",\"{label}\"," : $",{label},", lines[1]);
        Assert.Contains(",\"tench, Tinca tinca\"", PredictCsv(["tench, Tinca tinca"]));
        Assert.EndsWith(((float)array[5]!["top"]![2]!["probability"]!).ToString("R", CultureInfo.InvariantCulture).Replace('E', 'e'), lines[3]);
        Assert.EndsWith(",3.1588646e-05", PredictCsv([null], 3.1588646e-05f));
    }

    private static string PredictCsv(string?[] labels, float probability = 0.5f) => MobileOne.Cli.Commands.PredictCommand.ToCsv(
        [("a.png", labels.Select((l, i) => new ClassScore(i, l, probability, 1f)).ToArray(), null), ("b.png", null, "cannot be read")], labels.Length, withLabels: true).TrimEnd();

    [Fact]
    public void FoldersAreSearchedAndGreyModelsGetFashionMnistPreprocessingAndNames()
    {
        using var dir = new TempDir();
        var network = MobileOneNetwork.Create(MobileOneConfig.Parse("units=1/1/1/1,widths=0.25/0.25/0.25/0.25,k=2,classes=10,in_chans=1"));
        WeightInit.Initialize(network, 5);
        WeightInit.RandomizeBatchNorm(network, 6);
        string model = dir.File("fashion.safetensors");
        ModelCheckpoint.Save(network, model);

        var result = CliRunner.Run("predict", model, PilPredictReference.Folder, "--top", "2", "--threads", "1");
        Assert.Equal(0, result.ExitCode);
        int images = Directory.GetFiles(Path.Combine(PilPredictReference.Folder, "Images")).Length;
        Assert.Contains($"predict: {images} classified, 0 failed", result.StdErr);
        Assert.Contains("grey, resize 28 bilinear, centre crop 28, Fashion-MNIST mean/std, pad to 32", result.StdErr);
        var lines = result.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(images * 3, lines.Length);
        string[] paths = lines.Where(l => !l.StartsWith(' ')).ToArray();
        Assert.Equal(paths.Order(StringComparer.Ordinal), paths);
        Assert.Contains(lines, l => ClassLabels.FashionMnist.Any(name => l.EndsWith("  " + name, StringComparison.Ordinal)));

        // rgb.png's best class and logit equal the engine's answer on PIL's convert("L") + Fashion-MNIST transform.
        using var classifier = new ImageClassifier(network, ImagePreprocessing.ForModel(network.Config), ClassLabels.FashionMnist);
        var logits = classifier.Run(PilPredictReference.Case("rgb_png.fashion").Expected.Reshape(1, 1, 32, 32)).Data;
        var best = ImageClassifier.TopK(logits, 1, ClassLabels.FashionMnist)[0];
        string line = lines[Array.IndexOf(lines, Image("rgb.png")) + 1];
        Assert.EndsWith($"  {best.Index}  {best.Label}", line);
        Assert.Contains(best.Logit.ToString("0.000", CultureInfo.InvariantCulture), line);

        // A grey model trained at another size is given it; a crop fraction means nothing to it.
        var larger = CliRunner.Run("predict", model, Image("rgb.png"), "--img-size", "40", "--threads", "1");
        Assert.True(larger.ExitCode == 0, larger.StdErr);
        Assert.Contains("grey, resize 36 bilinear, centre crop 36, Fashion-MNIST mean/std, pad to 40", larger.StdErr);

        // A checkpoint that records its training size (train writes it) is classified at that size unless told otherwise.
        string recorded = dir.File("fashion-40.safetensors");
        ModelCheckpoint.Save(network, recorded, inputSize: 40);
        var byRecord = CliRunner.Run("predict", recorded, Image("rgb.png"), "--threads", "1");
        Assert.True(byRecord.ExitCode == 0, byRecord.StdErr);
        Assert.Contains("grey, resize 36 bilinear, centre crop 36, Fashion-MNIST mean/std, pad to 40", byRecord.StdErr);
        Assert.Equal(larger.StdOut.Replace(model, recorded, StringComparison.Ordinal), byRecord.StdOut);
        string onnx = dir.File("fashion-40.onnx");
        Assert.Equal(0, CliRunner.Run("export", recorded, onnx).ExitCode);
        var onnxRun = CliRunner.Run("predict", onnx, Image("rgb.png"), "--threads", "1");
        Assert.True(onnxRun.ExitCode == 0, onnxRun.StdErr);
        Assert.Contains("pad to 40", onnxRun.StdErr);
        var overridden = CliRunner.Run("predict", recorded, Image("rgb.png"), "--img-size", "32", "--threads", "1");
        Assert.Contains("pad to 32", overridden.StdErr);
        Assert.Equal(result.StdOut.Split('\n').SkipWhile(l => l != Image("rgb.png")).Skip(1).First(), overridden.StdOut.Split('\n')[1]);
        CliRunner.AssertCleanFailure(CliRunner.Run("predict", model, Image("rgb.png"), "--crop-pct", "0.5"), "--crop-pct does not apply to");
        CliRunner.AssertCleanFailure(CliRunner.Run("predict", model, Image("rgb.png"), "--img-size", "8"), "must be at least 12");
    }

    [Fact]
    public void FoldersAreWalkedLikeOsWalkAndEmptyOnesAreReported()
    {
        using var dir = new TempDir();
        Directory.CreateDirectory(dir.File("a/b"));
        File.Copy(Image("rgb.png"), dir.File("a/b/z.PNG"));
        File.Copy(Image("gray.jpg"), dir.File("a/x.jpg"));
        File.WriteAllText(dir.File("a/readme.txt"), "not an image");
        Directory.CreateSymbolicLink(dir.File("a/b/loop"), dir.File("a"));
        File.CreateSymbolicLink(dir.File("a/link.png"), Image("tiny1x1.png"));
        Directory.CreateDirectory(dir.File("empty"));
        var result = CliRunner.Run("predict", Model, dir.File("a"), dir.File("empty"), "--top", "1", "--json", "--img-size", "32", "--threads", "1");
        Assert.Equal(1, result.ExitCode);
        var array = JsonNode.Parse(result.StdOut)!.AsArray();
        Assert.Equal([dir.File("a/b/z.PNG"), dir.File("a/link.png"), dir.File("a/x.jpg"), dir.File("empty")], array.Select(e => (string)e!["path"]!));
        Assert.StartsWith("the folder holds no images", (string)array[3]!["error"]!);
    }

    /// <summary>An ONNX export of the checkpoint classifies as the checkpoint does (timm's default preprocessing for both: S0's is 224, 0.875, bilinear).</summary>
    [Fact]
    public void AnOnnxModelClassifiesAsItsCheckpoint()
    {
        using var dir = new TempDir();
        string onnx = dir.File("s0.onnx"), png = Image("rgb.png");
        Assert.Equal(0, CliRunner.Run("export", Model, onnx).ExitCode);
        var fromCheckpoint = CliRunner.Run("predict", Model, png, "--json");
        var fromOnnx = CliRunner.Run("predict", onnx, png, "--json");
        Assert.True(fromOnnx.ExitCode == 0, fromOnnx.StdErr);
        Assert.Contains("ONNX, as given", fromOnnx.StdErr);
        var a = JsonNode.Parse(fromCheckpoint.StdOut)!.AsArray()[0]!["top"]!.AsArray();
        var b = JsonNode.Parse(fromOnnx.StdOut)!.AsArray()[0]!["top"]!.AsArray();
        Assert.Equal(a.Select(t => (int)t!["index"]!), b.Select(t => (int)t!["index"]!));
        Assert.Equal(a.Select(t => (string)t!["label"]!), b.Select(t => (string)t!["label"]!));
        for (int i = 0; i < a.Count; i++)
        {
            Assert.Equal((double)a[i]!["probability"]!, (double)b[i]!["probability"]!, 5);
        }
    }

    [Fact]
    public void BadOptionsFailWithOneLineNamingTheOption()
    {
        using var dir = new TempDir();
        string png = Image("rgb.png");
        CliRunner.AssertCleanFailure(CliRunner.Run("predict", Model, png, "--top", "0"), "--top");
        CliRunner.AssertCleanFailure(CliRunner.Run("predict", Model, png, "--crop-pct", "1.5"), "--crop-pct");
        CliRunner.AssertCleanFailure(CliRunner.Run("predict", Model, png, "--img-size", "5000"), "--img-size must be at most 4096");
        CliRunner.AssertCleanFailure(CliRunner.Run("predict", Model, png, "--interpolation", "lanczos"), "--interpolation", "bilinear or bicubic");
        CliRunner.AssertCleanFailure(CliRunner.Run("predict", dir.File("model.onnx"), png), dir.File("model.onnx"), "does not exist");
        File.WriteAllText(dir.File("labels.txt"), "a\nb\n");
        CliRunner.AssertCleanFailure(CliRunner.Run("predict", Model, png, "--labels", dir.File("labels.txt")), "--labels", "2 class names", "1000 classes");
        CliRunner.AssertCleanFailure(CliRunner.Run("predict", dir.File("none.safetensors"), png), dir.File("none.safetensors"));
    }
}
