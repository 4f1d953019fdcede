using MobileOne.Tests.Cli;
using MobileOne.Tests.Models;
using Onnx;

namespace MobileOne.Tests.IO.Onnx;

/// <summary>`mobileone export`, run as a user would: any checkpoint in, a fused ONNX model out (or with --unfused the train-time branches).</summary>
public class ExportCommandTests : IClassFixture<ReferenceTensors>
{
    private readonly ReferenceTensors refs;

    public ExportCommandTests(ReferenceTensors refs)
    {
        this.refs = refs;
    }

    [Fact]
    public void Apple_checkpoint_exports_to_a_model_onnxruntime_runs_to_the_pytorch_logits()
    {
        using var dir = new TempDir();
        string output = dir.File("s0.onnx");
        var r = CliRunner.Run("export", Fixtures.Path("mobileone_s0_apple_unfused.pth.tar"), output, "--opset", "13");
        Assert.True(r.ExitCode == 0, r.StdErr);
        Assert.Contains($"wrote {output} (ONNX opset 13, MobileOne-s0 fused from a train-time checkpoint", r.StdOut);
        Assert.Equal(13, Assert.Single(ModelProto.Parser.ParseFrom(File.ReadAllBytes(output)).OpsetImport).Version);
        using var ort = OrtHarness.FromFile(output);
        OnnxExporterTests.AssertClose(refs["apple.logits_unfused_64"], ort.Run(refs["input_64"]), "exported Apple S0 vs PyTorch at 64");
        Assert.Equal([output], Directory.GetFiles(dir.Path));
    }

    [Fact]
    public void Fused_timm_checkpoint_exports_with_the_default_opset()
    {
        using var dir = new TempDir();
        string output = dir.File("s0_fused.onnx");
        var r = CliRunner.Run("export", Fixtures.Path("mobileone_s0_timm_fused.safetensors"), output);
        Assert.True(r.ExitCode == 0, r.StdErr);
        Assert.Contains("ONNX opset 17, MobileOne-s0 fused, input 'input' float32 [batch, 3, height, width], output 'logits' float32 [batch, 1000]", r.StdOut);
        using var ort = OrtHarness.FromFile(output);
        OnnxExporterTests.AssertClose(refs["timm.logits_fused_224"], ort.Run(refs["input_224"]), "exported timm fused S0 vs PyTorch at 224");
    }

    [Fact]
    public void Unfused_flag_exports_the_train_time_branches_and_onnxruntime_matches_the_pytorch_logits()
    {
        using var dir = new TempDir();
        string output = dir.File("s0_unfused.onnx");
        var r = CliRunner.Run("export", Fixtures.Path("mobileone_s0_timm.safetensors"), output, "--unfused", "--opset", "14");
        Assert.True(r.ExitCode == 0, r.StdErr);
        Assert.Contains($"wrote {output} (ONNX opset 14, MobileOne-s0 unfused (train-time branches), input 'input' float32 [batch, 3, height, width], output 'logits' float32 [batch, 1000]", r.StdOut);
        var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(output));
        Assert.Equal(14, Assert.Single(model.OpsetImport).Version);

        // S0 fused is one Conv per block (1 stem + 2 x (2 + 8 + 10 + 1)); unfused, every block has several branches.
        int blocks = 1 + (2 * (2 + 8 + 10 + 1));
        int convs = model.Graph.Node.Count(n => n.OpType == "Conv");
        Assert.True(convs > 3 * blocks, $"{convs} Conv nodes for {blocks} blocks");
        Assert.Equal(convs + model.Graph.Node.Count(n => n.OpType == "BatchNormalization" && n.Name.EndsWith(".identity", StringComparison.Ordinal)), model.Graph.Node.Count(n => n.OpType == "BatchNormalization"));
        Assert.Equal(blocks, model.Graph.Node.Count(n => n.OpType == "Relu"));
        Assert.Contains(model.Graph.Initializer, t => t.Name == "stages.0.1.conv_kxk.3.bn.running_var");
        Assert.DoesNotContain(model.Graph.Initializer, t => t.Name.Contains("reparam_conv", StringComparison.Ordinal));

        using var ort = OrtHarness.FromFile(output);
        OnnxExporterTests.AssertClose(refs["timm.logits_unfused_64"], ort.Run(refs["input_64"]), "exported unfused timm S0 vs PyTorch at 64");
        Assert.Equal([output], Directory.GetFiles(dir.Path));
    }

    [Fact]
    public void Unfused_flag_refuses_a_fused_checkpoint_with_one_error_line_and_writes_nothing()
    {
        using var dir = new TempDir();
        string checkpoint = Fixtures.Path("mobileone_s0_timm_fused.safetensors");
        var r = CliRunner.Run("export", checkpoint, dir.File("out.onnx"), "--unfused");
        Assert.Equal(1, r.ExitCode);
        CliRunner.AssertCleanFailure(r, "--unfused", checkpoint, "is already fused");
        Assert.Single(r.StdErr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Empty(r.StdOut);
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));
    }

    [Theory]
    [InlineData("12")]
    [InlineData("18")]
    public void Opset_out_of_range_is_refused_before_anything_is_read_or_written(string opset)
    {
        using var dir = new TempDir();
        var r = CliRunner.Run("export", dir.File("missing.safetensors"), dir.File("out.onnx"), "--opset", opset);
        CliRunner.AssertCleanFailure(r, $"--opset must be between 13 and 17; got {opset}.");
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));
    }

    [Fact]
    public void Missing_checkpoint_is_named()
    {
        using var dir = new TempDir();
        string missing = dir.File("missing.safetensors");
        var r = CliRunner.Run("export", missing, dir.File("out.onnx"));
        CliRunner.AssertCleanFailure(r, $"{missing}: does not exist.");
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));
    }

    [Fact]
    public void Unwritable_destination_is_named_and_nothing_is_left_behind()
    {
        using var dir = new TempDir();
        string output = Path.Combine(dir.Path, "no-such-folder", "s0.onnx");
        var r = CliRunner.Run("export", Fixtures.Path("mobileone_s0_timm_fused.safetensors"), output);
        CliRunner.AssertCleanFailure(r, output, "does not exist");
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));
    }
}
