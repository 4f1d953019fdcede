using System.Text.Json;

namespace MobileOne.Tests.Cli;

/// <summary>ONNX files on the command line: forward writes the imported graph's logits, bench times the import against ONNX Runtime on the same file.</summary>
public class OnnxCliTests
{
    private static string Onnx(string name) => Path.Combine(AppContext.BaseDirectory, "IO", "Onnx", "PyTorch", name);

    [Fact]
    public void Forward_runs_an_onnx_file_to_pytorchs_logits()
    {
        using var dir = new TempDir();
        using var doc = JsonDocument.Parse(File.ReadAllText(Onnx("reference.json")));
        var root = doc.RootElement;
        var input = new Tensors.Tensor([.. root.GetProperty("input_shape").EnumerateArray().Select(d => d.GetInt32())], [.. root.GetProperty("input").EnumerateArray().Select(v => v.GetSingle())]);
        var file = new MobileOne.IO.TensorFile();
        file.Tensors.Add("x", MobileOne.IO.StoredTensor.FromTensor(input));
        MobileOne.IO.Safetensors.SafetensorsWriter.Write(dir.File("in.safetensors"), file);
        var r = CliRunner.Run("forward", Onnx("tiny_resnet_opset17.onnx"), "--input", dir.File("in.safetensors"), "--tensor", "x", "--output", dir.File("out.safetensors"));
        Assert.True(r.ExitCode == 0, r.StdErr);
        var logits = MobileOne.IO.Safetensors.SafetensorsReader.Read(dir.File("out.safetensors")).Tensors["logits"].ToTensor();
        var expected = root.GetProperty("models").GetProperty("tiny_resnet_opset17").EnumerateArray().Select(v => (float)v.GetDouble()).ToArray();
        Inference.EngineTestSupport.AssertClose(expected, logits.Data, "forward onnx");
    }

    [Fact]
    public void Bench_onnx_times_the_file_on_both_engines_and_they_agree()
    {
        var r = CliRunner.Run("bench", "--onnx", Onnx("tiny_se_opset17.onnx"), "--size", "32", "--iterations", "2", "--warmup", "0", "--json");
        Assert.True(r.ExitCode == 0, r.StdErr);
        using var doc = JsonDocument.Parse(r.StdOut);
        var rows = doc.RootElement.EnumerateArray().ToList();
        Assert.Equal(["managed", "onnxruntime"], rows.Select(o => o.GetProperty("engine").GetString()));
        Assert.All(rows, o => Assert.Equal("onnx", o.GetProperty("form").GetString()));
        double scale = Math.Max(1, rows[1].GetProperty("max_abs_logit").GetDouble());
        Assert.InRange(rows[1].GetProperty("max_abs_diff").GetDouble() / scale, 0, 1e-4);
    }

    /// <summary>predict and serve turn logits into probabilities themselves, so a model exported with its softmax is read up to its logits.</summary>
    [Fact]
    public void A_classifier_exported_with_its_softmax_is_classified_from_its_logits()
    {
        var model = MobileOne.Cli.Commands.Options.LoadClassifierModel(Onnx("tiny_softmax_opset17.onnx"));
        Assert.IsType<MobileOne.Graph.LinearNode>(model.Graph.Producer(model.Graph.Output));
        Assert.IsType<MobileOne.Graph.SoftmaxNode>(model.Graph.Nodes[^1]);
    }

    [Fact]
    public void An_unreadable_onnx_file_is_one_error_line()
    {
        using var dir = new TempDir();
        File.WriteAllBytes(dir.File("bad.onnx"), [0xff, 0xff, 0xff, 0x01]);
        var r = CliRunner.Run("bench", "--onnx", dir.File("bad.onnx"));
        Assert.Equal(1, r.ExitCode);
        Assert.StartsWith("error: ", r.StdErr.Trim());
        Assert.Contains("is not an ONNX model", r.StdErr);
        Assert.DoesNotContain("   at ", r.StdErr);
    }
}
