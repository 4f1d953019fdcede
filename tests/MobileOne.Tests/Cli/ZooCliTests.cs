using System.Text.Json;
using MobileOne.Models;

namespace MobileOne.Tests.Cli;

/// <summary>The model zoo from the command line: `models`, `info` of a zoo checkpoint, `bench --model`.</summary>
public class ZooCliTests
{
    [Fact]
    public void Models_json_lists_every_registry_entry_with_counts_and_pretrained_configuration()
    {
        var r = CliRunner.Run("models", "--json");
        Assert.True(r.ExitCode == 0, r.StdErr);
        using var doc = JsonDocument.Parse(r.StdOut);
        var rows = doc.RootElement.EnumerateArray().ToList();
        Assert.Equal(ModelRegistry.All.Select(e => e.Name), rows.Select(o => o.GetProperty("name").GetString()));
        var resnet = rows.Single(o => o.GetProperty("name").GetString() == "resnet50");
        Assert.Equal(25_557_032, resnet.GetProperty("params_unfused").GetInt64()); // timm's count (timm-architectures.json)
        Assert.Equal(JsonValueKind.Null, resnet.GetProperty("params_fused").ValueKind);
        Assert.Equal("bicubic", resnet.GetProperty("pretrained").GetProperty("interpolation").GetString());
        Assert.Equal(0.95, resnet.GetProperty("pretrained").GetProperty("crop_pct").GetDouble());
        var repvgg = rows.Single(o => o.GetProperty("name").GetString() == "repvgg_a0");
        Assert.True(repvgg.GetProperty("macs_fused").GetInt64() < repvgg.GetProperty("macs_unfused").GetInt64());
    }

    [Fact]
    public void Info_describes_a_zoo_checkpoint()
    {
        var r = CliRunner.Run("info", Fixtures.Path(Path.Combine("zoo", "repvgg_a0_timm.safetensors")), "--json");
        Assert.True(r.ExitCode == 0, r.StdErr);
        using var doc = JsonDocument.Parse(r.StdOut);
        var o = doc.RootElement;
        Assert.Equal("repvgg_a0", o.GetProperty("variant").GetString());
        Assert.Equal("repvgg", o.GetProperty("family").GetString());
        Assert.False(o.GetProperty("fused").GetBoolean());
        Assert.Equal(9_108_968, o.GetProperty("params_unfused").GetInt64());
        Assert.Equal(1_512_581_120, o.GetProperty("macs_unfused").GetInt64());
    }

    [Theory]
    [InlineData("repvgg_a0", false, "fused")]
    [InlineData("repvgg_a0", true, "unfused")]
    [InlineData("mobilenetv2_035", false, "plain")]
    public void Bench_model_measures_the_registry_entry_in_the_form_each_row_names(string name, bool unfused, string form)
    {
        string[] args = ["bench", "--model", name, "--size", "64", "--iterations", "2", "--warmup", "0", "--threads", "1", "--json"];
        var r = CliRunner.Run(unfused ? [.. args, "--unfused"] : args);
        Assert.True(r.ExitCode == 0, r.StdErr);
        using var doc = JsonDocument.Parse(r.StdOut);
        var rows = doc.RootElement.EnumerateArray().ToList();
        Assert.Equal(["managed", "onnxruntime"], rows.Select(o => o.GetProperty("engine").GetString()));
        foreach (var o in rows)
        {
            Assert.Equal(form, o.GetProperty("form").GetString());
            double scale = Math.Max(1, o.GetProperty("max_abs_logit").GetDouble());
            Assert.InRange(o.GetProperty("max_abs_diff").GetDouble() / scale, 0, 1e-4);
        }
    }

    [Fact]
    public void Bench_refuses_an_unknown_model_and_two_model_sources()
    {
        var r = CliRunner.Run("bench", "--model", "resnet51");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("--model: unknown model 'resnet51'", r.StdErr);
        r = CliRunner.Run("bench", "--model", "resnet18", "--variant", "s0");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("Give one of --variant, --model, --checkpoint or --onnx", r.StdErr);
    }

    [Fact]
    public void Convert_writes_repvgg_in_the_official_names_and_refuses_them_for_other_families()
    {
        using var dir = new TempDir();
        string official = dir.File("a0_official.pth");
        var r = CliRunner.Run("convert", Fixtures.Path(Path.Combine("zoo", "repvgg_a0_timm.safetensors")), official, "--scheme", "official", "--fuse");
        Assert.True(r.ExitCode == 0, r.StdErr);
        Assert.Contains("official-fused, repvgg_a0", r.StdOut);
        r = CliRunner.Run("info", official, "--json");
        Assert.True(r.ExitCode == 0, r.StdErr);
        using (var doc = JsonDocument.Parse(r.StdOut))
        {
            Assert.Equal("repvgg_a0", doc.RootElement.GetProperty("variant").GetString());
            Assert.True(doc.RootElement.GetProperty("fused").GetBoolean());
            Assert.Equal("official-fused", doc.RootElement.GetProperty("scheme").GetString());
        }

        r = CliRunner.Run("convert", Fixtures.Path(Path.Combine("zoo", "resnet18_timm.safetensors")), dir.File("r.pth"), "--scheme", "official");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("official names are RepVGG's only", r.StdErr);
        Assert.False(File.Exists(dir.File("r.pth")));
    }

    [Fact]
    public void Forward_runs_a_zoo_checkpoint_to_timms_reference()
    {
        using var dir = new TempDir();
        string output = dir.File("out.safetensors");
        var r = CliRunner.Run("forward", Fixtures.Path(Path.Combine("zoo", "mobilenetv2_100_timm.safetensors")), "--input", Fixtures.Path(Path.Combine("zoo", "zoo_reference.safetensors")), "--tensor", "input_224", "--output", output);
        Assert.True(r.ExitCode == 0, r.StdErr);
        var logits = MobileOne.IO.Safetensors.SafetensorsReader.Read(output).Tensors["logits"].ToTensor();
        var expected = MobileOne.IO.Safetensors.SafetensorsReader.Read(Fixtures.Path(Path.Combine("zoo", "zoo_reference.safetensors"))).Tensors["mobilenetv2_100_timm.logits_224"].ToTensor();
        Inference.EngineTestSupport.AssertClose(expected.Data, logits.Data, "forward mobilenetv2_100");

        r = CliRunner.Run("forward", Fixtures.Path(Path.Combine("zoo", "mobilenetv2_100_timm.safetensors")), "--input", Fixtures.Path(Path.Combine("zoo", "zoo_reference.safetensors")), "--tensor", "input_224", "--output", output, "--features");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("--features writes MobileOne's stem and stage outputs", r.StdErr);
    }

    [Fact]
    public void Verify_checks_repvggs_fusion_and_refuses_a_family_without_one()
    {
        var r = CliRunner.Run("verify", Fixtures.Path(Path.Combine("zoo", "repvgg_a0_timm.safetensors")), "--size", "64", "--json");
        Assert.True(r.ExitCode == 0, r.StdErr);
        using (var doc = JsonDocument.Parse(r.StdOut))
        {
            Assert.True(doc.RootElement.GetProperty("passed").GetBoolean());
            Assert.InRange(doc.RootElement.GetProperty("relative_diff").GetDouble(), 0, 1e-4);
        }

        r = CliRunner.Run("verify", Fixtures.Path(Path.Combine("zoo", "resnet18_timm.safetensors")));
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("resnet18, which has no fused form", r.StdErr);
    }
}
