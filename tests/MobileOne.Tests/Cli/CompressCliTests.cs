using System.Text.Json;

namespace MobileOne.Tests.Cli;

/// <summary>
/// `compress` end to end on the timm S0 fixture: one JSON document with the Table 3 columns, a checkpoint that info,
/// forward, export and bench load (bench compares the managed engine's sparse kernel with ONNX Runtime running the
/// exported file, where the sparse part is a dense Conv), and one error line for bad input.
/// </summary>
public class CompressCliTests
{
    private static readonly string S0 = Fixtures.Path("mobileone_s0_timm.safetensors");

    [Fact]
    public void Compress_writes_a_checkpoint_the_other_commands_load_and_one_json_array()
    {
        using var dir = new TempDir();
        string output = dir.File("s0_compressed.safetensors");
        var r = CliRunner.Run("compress", S0, output, "--rank-ratio", "0.25", "--sparsity", "0.01", "--iterations", "2", "--json");
        Assert.True(r.ExitCode == 0, r.StdErr);
        Assert.Equal([Path.GetFileName(output)], Directory.GetFiles(dir.Path).Select(Path.GetFileName));

        using var doc = JsonDocument.Parse(r.StdOut);
        var rows = doc.RootElement.EnumerateArray().ToList();
        Assert.Equal(22, rows.Count);
        foreach (var row in rows)
        {
            foreach (string field in new[] { "layer", "weights", "low_rank_fraction", "sparse_fraction", "rate" })
            {
                Assert.True(row.TryGetProperty(field, out _), $"{row} lacks {field}");
            }
        }

        var total = rows[^1];
        Assert.Equal("total", total.GetProperty("layer").GetString());
        Assert.Equal(rows.Take(21).Sum(o => o.GetProperty("weights").GetInt64()), total.GetProperty("weights").GetInt64());
        var first = rows[0];
        Assert.Equal("stages.0.1.reparam_conv", first.GetProperty("layer").GetString());

        // 48 x 48 at a quarter of the rank: r = 12, #L = 12 (48 + 48) = 1152, #S = round(0.01 x 2304) = 23, stored with
        // 23 indices and 49 row starts: 2304 / (1152 + 46 + 49).
        Assert.Equal(2304, first.GetProperty("weights").GetInt64());
        Assert.Equal(12, first.GetProperty("rank").GetInt32());
        Assert.Equal(1152.0 / 2304, first.GetProperty("low_rank_fraction").GetDouble(), 12);
        Assert.Equal(23.0 / 2304, first.GetProperty("sparse_fraction").GetDouble(), 12);
        Assert.Equal(2304.0 / 1247, first.GetProperty("rate").GetDouble(), 12);

        var info = CliRunner.Run("info", output, "--json");
        Assert.True(info.ExitCode == 0, info.StdErr);
        using var infoDoc = JsonDocument.Parse(info.StdOut);
        long deployed = infoDoc.RootElement.GetProperty("params_fused").GetInt64();
        Assert.Equal(total.GetProperty("params_compressed").GetInt64(), deployed);
        Assert.True(deployed < infoDoc.RootElement.GetProperty("params_dense_fused").GetInt64());
        Assert.Equal(21, infoDoc.RootElement.GetProperty("compressed_layers").GetInt32());

        var export = CliRunner.Run("export", output, dir.File("s0.onnx"));
        Assert.True(export.ExitCode == 0, export.StdErr);

        var input = new MobileOne.IO.TensorFile();
        input.Tensors.Add("x", MobileOne.IO.StoredTensor.FromTensor(Inference.EngineTestSupport.RandomInput(new Random(2), 1, 3, 64, 64)));
        MobileOne.IO.Safetensors.SafetensorsWriter.Write(dir.File("in.safetensors"), input);
        var forward = CliRunner.Run("forward", output, "--input", dir.File("in.safetensors"), "--tensor", "x", "--output", dir.File("out.safetensors"), "--threads", "1");
        Assert.True(forward.ExitCode == 0, forward.StdErr);

        var bench = CliRunner.Run("bench", "--checkpoint", output, "--size", "64", "--iterations", "2", "--warmup", "0", "--json");
        Assert.True(bench.ExitCode == 0, bench.StdErr);
        using var benchDoc = JsonDocument.Parse(bench.StdOut);
        var timed = benchDoc.RootElement.EnumerateArray().ToList();
        Assert.Equal(["managed", "onnxruntime"], timed.Select(o => o.GetProperty("engine").GetString()));
        double scale = Math.Max(1, timed[1].GetProperty("max_abs_logit").GetDouble());
        Assert.InRange(timed[1].GetProperty("max_abs_diff").GetDouble() / scale, 0, 1e-4);
    }

    [Theory]
    [InlineData("--energy", "1.5", "--energy")]
    [InlineData("--sparsity", "1", "--sparsity")]
    [InlineData("--layers", "depthwise", "--layers")]
    [InlineData("--rank-ratio", "0", "--rank-ratio")]
    public void A_bad_option_is_one_error_line_naming_it(string option, string value, string mention)
    {
        using var dir = new TempDir();
        var r = CliRunner.Run("compress", S0, dir.File("out.safetensors"), option, value);
        CliRunner.AssertCleanFailure(r, mention);
        Assert.Empty(Directory.GetFiles(dir.Path));
    }

    [Fact]
    public void Energy_and_rank_ratio_together_a_wrong_extension_and_a_missing_file_are_refused()
    {
        using var dir = new TempDir();
        CliRunner.AssertCleanFailure(CliRunner.Run("compress", S0, dir.File("out.safetensors"), "--energy", "0.9", "--rank-ratio", "0.5"), "--energy", "--rank-ratio");
        CliRunner.AssertCleanFailure(CliRunner.Run("compress", S0, dir.File("out.pth")), "out.pth", ".safetensors");
        CliRunner.AssertCleanFailure(CliRunner.Run("compress", dir.File("missing.safetensors"), dir.File("out.safetensors")), "missing.safetensors");
        Assert.Empty(Directory.GetFiles(dir.Path));
    }

    [Fact]
    public void Train_init_fine_tunes_a_compressed_checkpoint_into_compressed_checkpoints_with_the_same_patterns()
    {
        using var dir = new TempDir();
        string compressed = dir.File("c.safetensors"), run = dir.File("run");
        var network = Compression.CompressedTrainingTests.TinyCompressed(11, classes: 10, inChans: 1);
        MobileOne.IO.Checkpoints.CompressedCheckpoint.Save(network, compressed);
        var before = MobileOne.IO.Safetensors.SafetensorsReader.Read(compressed);

        var r = CliRunner.Run("train", "--init", compressed, "--data", "bundled", "--max-steps", "2", "--batch-size", "16", "--lr", "0.05", "--threads", "1", "--workers", "1", "--ema", "--output", run);
        Assert.True(r.ExitCode == 0, r.StdErr);
        foreach (string name in new[] { "last.safetensors", "best.safetensors", "last_ema.safetensors" })
        {
            var after = MobileOne.IO.Safetensors.SafetensorsReader.Read(Path.Combine(run, name));
            Assert.Equal(before.Tensors.Keys.Order(), after.Tensors.Keys.Order());
            Assert.Equal(before.Metadata[MobileOne.IO.Checkpoints.CompressedCheckpoint.MetadataKey], after.Metadata[MobileOne.IO.Checkpoints.CompressedCheckpoint.MetadataKey]);
            foreach (string key in before.Tensors.Keys.Where(k => k.EndsWith(".sparse.indices", StringComparison.Ordinal)))
            {
                Assert.Equal(before.Tensors[key].ToInt64(), after.Tensors[key].ToInt64());
            }
        }

        var trained = MobileOne.IO.Safetensors.SafetensorsReader.Read(Path.Combine(run, "last.safetensors"));
        Assert.NotEqual(before.Tensors["stem.reparam_conv.sparse.values"].ToTensor().Data, trained.Tensors["stem.reparam_conv.sparse.values"].ToTensor().Data);
        Assert.NotEqual(before.Tensors["stages.3.1.reparam_conv.lowrank.0.weight"].ToTensor().Data, trained.Tensors["stages.3.1.reparam_conv.lowrank.0.weight"].ToTensor().Data);

        var info = CliRunner.Run("info", Path.Combine(run, "last.safetensors"), "--json");
        Assert.True(info.ExitCode == 0, info.StdErr);
        using (var doc = JsonDocument.Parse(info.StdOut))
        {
            Assert.Equal(5, doc.RootElement.GetProperty("compressed_layers").GetInt32());
        }

        var eval = CliRunner.Run("eval", Path.Combine(run, "last.safetensors"), "--data", "bundled", "--threads", "1", "--json");
        Assert.True(eval.ExitCode == 0, eval.StdErr);
        Assert.True(CliRunner.Run("export", Path.Combine(run, "last.safetensors"), dir.File("ft.onnx")).ExitCode == 0);

        // The training state holds compressed model and EMA parts, so the run resumes where it stopped.
        var resumed = CliRunner.Run("train", "--init", compressed, "--data", "bundled", "--max-steps", "3", "--batch-size", "16", "--lr", "0.05", "--threads", "1", "--workers", "1", "--ema",
            "--output", run, "--resume", Path.Combine(run, "train_state.safetensors"));
        Assert.True(resumed.ExitCode == 0, resumed.StdErr);
        Assert.Contains("2 optimizer steps done", resumed.StdOut + resumed.StdErr);
    }

    [Fact]
    public void A_compressed_checkpoint_for_another_label_set_or_with_squeeze_excite_is_refused_with_one_line()
    {
        using var dir = new TempDir();
        string compressed = dir.File("c.safetensors");
        Assert.Equal(0, CliRunner.Run("compress", S0, compressed, "--rank-ratio", "0.25").ExitCode);
        var r = CliRunner.Run("train", "--init", compressed, "--data", "bundled", "--max-steps", "1", "--threads", "1", "--output", dir.File("run"));
        CliRunner.AssertCleanFailure(r, "c.safetensors", "compressed", "1000 classes");

        string se = dir.File("se.safetensors");
        MobileOne.IO.Checkpoints.CompressedCheckpoint.Save(Compression.CompressedTrainingTests.TinyCompressed(12, classes: 10, inChans: 1, se: "0/0/0/1"), se);
        CliRunner.AssertCleanFailure(CliRunner.Run("train", "--init", se, "--data", "bundled", "--max-steps", "1", "--threads", "1", "--output", dir.File("run2")), "se.safetensors", "squeeze-excite");
    }
}
