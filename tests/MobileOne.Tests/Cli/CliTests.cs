using System.Text.Json;
using MobileOne.IO;
using MobileOne.IO.Checkpoints;
using MobileOne.IO.Safetensors;
using MobileOne.Tests.Models;

namespace MobileOne.Tests.Cli;

public class CliTests
{
    [Fact]
    public void Info_json_describes_the_timm_checkpoint()
    {
        var r = CliRunner.Run("info", Fixtures.Path("mobileone_s0_timm.safetensors"), "--json");
        Assert.Equal(0, r.ExitCode);
        using var doc = JsonDocument.Parse(r.StdOut);
        var o = doc.RootElement;
        Assert.Equal("safetensors", o.GetProperty("format").GetString());
        Assert.Equal("timm", o.GetProperty("scheme").GetString());
        Assert.Equal("s0", o.GetProperty("variant").GetString());
        Assert.Equal(1000, o.GetProperty("num_classes").GetInt32());
        Assert.Equal(3, o.GetProperty("in_chans").GetInt32());
        Assert.InRange(o.GetProperty("params_unfused").GetInt64() / 1e6, 5.28, 5.30);
        Assert.InRange(o.GetProperty("params_fused").GetInt64() / 1e6, 2.07, 2.09);
        Assert.InRange(o.GetProperty("macs_unfused").GetInt64() / 1e6, 1045, 1060);
        Assert.InRange(o.GetProperty("macs_fused").GetInt64() / 1e6, 274, 276);
    }

    [Fact]
    public void Info_table_is_plain_text_when_redirected()
    {
        var r = CliRunner.Run("info", Fixtures.Path("mobileone_s0_apple_unfused_fused.pth.tar"));
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("scheme:", r.StdOut);
        Assert.Contains("apple-fused", r.StdOut);
        Assert.DoesNotContain("\u001b[", r.StdOut);
    }

    [Fact]
    public void Convert_apple_to_fused_timm_matches_timm_style_reference_fusion()
    {
        using var dir = new TempDir();
        string output = dir.File("fused.safetensors");
        var r = CliRunner.Run("convert", Fixtures.Path("mobileone_s0_apple_unfused.pth.tar"), output, "--fuse");
        Assert.Equal(0, r.ExitCode);
        var ours = ModelCheckpoint.Load(output);
        Assert.Equal("timm-fused", ours.Info.Scheme.Name);
        var apple = ModelCheckpoint.Load(Fixtures.Path("mobileone_s0_apple_unfused_fused.pth.tar")).Network.State().ToDictionary(e => e.Name, e => e.Value);
        foreach (var e in ours.Network.State())
        {
            Assert.True(Reference.MaxAbsDiff(e.Value.Data, apple[e.Name].Data) <= 1e-5, e.Name);
        }

        r = CliRunner.Run("convert", output, dir.File("fused_apple.pth"), "--scheme", "apple");
        Assert.Equal(0, r.ExitCode);
        Assert.Equal("apple-fused", ModelCheckpoint.Load(dir.File("fused_apple.pth")).Info.Scheme.Name);
    }

    [Fact]
    public void Forward_writes_logits_and_features_that_match_the_reference()
    {
        using var dir = new TempDir();
        var refs = SafetensorsReader.Read(Fixtures.Path("mobileone_s0_reference.safetensors"));
        var input = new TensorFile([KeyValuePair.Create("x", refs.Tensors["input_64"])]);
        SafetensorsWriter.Write(dir.File("input.safetensors"), input);
        var r = CliRunner.Run("forward", Fixtures.Path("mobileone_s0_timm.safetensors"), "--input", dir.File("input.safetensors"), "--tensor", "x", "--output", dir.File("out.safetensors"), "--features");
        Assert.Equal(0, r.ExitCode);
        var output = SafetensorsReader.Read(dir.File("out.safetensors"));
        ReferenceParityTests.AssertClose(refs.Tensors["timm.logits_unfused_64"].ToTensor(), output.Tensors["logits"].ToTensor(), "logits");
        ReferenceParityTests.AssertClose(refs.Tensors["timm.feature_64.stem"].ToTensor(), output.Tensors["features.stem"].ToTensor(), "stem");
        for (int s = 1; s <= 4; s++)
        {
            ReferenceParityTests.AssertClose(refs.Tensors[$"timm.feature_64.stages.{s - 1}"].ToTensor(), output.Tensors[$"features.stage{s}"].ToTensor(), $"stage{s}");
        }

        r = CliRunner.Run("forward", Fixtures.Path("mobileone_s0_apple_unfused.pth.tar"), "--input", dir.File("input.safetensors"), "--tensor", "x", "--output", dir.File("fused.safetensors"), "--fuse");
        Assert.Equal(0, r.ExitCode);
        var fused = SafetensorsReader.Read(dir.File("fused.safetensors"));
        Assert.Single(fused.Tensors);
        ReferenceParityTests.AssertClose(refs.Tensors["apple.logits_unfused_64"].ToTensor(), fused.Tensors["logits"].ToTensor(), "fused logits");
    }

    [Fact]
    public void Verify_passes_on_an_unfused_checkpoint_and_refuses_a_fused_one()
    {
        var r = CliRunner.Run("verify", Fixtures.Path("mobileone_s0_timm.safetensors"), "--size", "64", "--json");
        Assert.Equal(0, r.ExitCode);
        using var doc = JsonDocument.Parse(r.StdOut);
        Assert.True(doc.RootElement.GetProperty("passed").GetBoolean());
        Assert.True(doc.RootElement.GetProperty("max_abs_diff").GetDouble() < 1e-3);

        var fused = CliRunner.Run("verify", Fixtures.Path("mobileone_s0_timm_fused.safetensors"));
        CliRunner.AssertCleanFailure(fused, "already fused");
    }

    [Fact]
    public void Verify_fails_when_the_tolerance_cannot_be_met()
    {
        var r = CliRunner.Run("verify", Fixtures.Path("mobileone_s0_timm.safetensors"), "--size", "32", "--tolerance", "1e-30");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("FAIL", r.StdOut);
    }

    [Fact]
    public void Bad_checkpoints_fail_cleanly_naming_the_file()
    {
        using var dir = new TempDir();
        File.WriteAllBytes(dir.File("empty.pth"), []);
        CliRunner.AssertCleanFailure(CliRunner.Run("info", dir.File("empty.pth")), dir.File("empty.pth"), "empty");
        CliRunner.AssertCleanFailure(CliRunner.Run("info", dir.Path), "is a directory");
        CliRunner.AssertCleanFailure(CliRunner.Run("info", dir.File("missing.safetensors")), "does not exist");

        var bytes = File.ReadAllBytes(Fixtures.Path("mobileone_s0_apple_unfused_fused.pth.tar"));
        File.WriteAllBytes(dir.File("cut.pth.tar"), bytes[..(bytes.Length / 3)]);
        CliRunner.AssertCleanFailure(CliRunner.Run("info", dir.File("cut.pth.tar")), dir.File("cut.pth.tar"));
    }

    [Fact]
    public void Bad_options_fail_cleanly_and_leave_existing_output_untouched()
    {
        using var dir = new TempDir();
        string existing = dir.File("keep.safetensors");
        File.WriteAllText(existing, "previous contents");
        File.WriteAllBytes(dir.File("broken.safetensors"), [1, 2, 3]);
        CliRunner.AssertCleanFailure(CliRunner.Run("convert", dir.File("broken.safetensors"), existing), dir.File("broken.safetensors"));
        Assert.Equal("previous contents", File.ReadAllText(existing));

        CliRunner.AssertCleanFailure(CliRunner.Run("convert", Fixtures.Path("mobileone_s0_timm_fused.safetensors"), dir.File("x.onnx")), "unknown extension");
        CliRunner.AssertCleanFailure(CliRunner.Run("convert", Fixtures.Path("mobileone_s0_timm_fused.safetensors"), dir.File("x.pth"), "--scheme", "keras"), "--scheme");
        CliRunner.AssertCleanFailure(CliRunner.Run("info", Fixtures.Path("mobileone_s0_timm_fused.safetensors"), "--size", "0"), "--size");
        Assert.Empty(Directory.GetFiles(dir.Path, "*.tmp"));
    }

    [Fact]
    public void Forward_reports_a_missing_or_misshapen_input_tensor()
    {
        using var dir = new TempDir();
        var wrong = new TensorFile([KeyValuePair.Create("x", StoredTensor.FromTensor(new MobileOne.Tensors.Tensor(1, 1, 8, 8)))]);
        SafetensorsWriter.Write(dir.File("in.safetensors"), wrong);
        string model = Fixtures.Path("mobileone_s0_timm_fused.safetensors");
        CliRunner.AssertCleanFailure(CliRunner.Run("forward", model, "--input", dir.File("in.safetensors"), "--tensor", "y", "--output", dir.File("o.safetensors")), "'y'");
        CliRunner.AssertCleanFailure(CliRunner.Run("forward", model, "--input", dir.File("in.safetensors"), "--tensor", "x", "--output", dir.File("o.safetensors")), "in_chans 3");
        Assert.False(File.Exists(dir.File("o.safetensors")));
    }
}
