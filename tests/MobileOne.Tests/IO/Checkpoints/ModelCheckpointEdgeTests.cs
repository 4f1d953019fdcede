using MobileOne.Compression;
using MobileOne.IO;
using MobileOne.IO.Checkpoints;
using MobileOne.IO.Safetensors;
using MobileOne.Models;
using MobileOne.Nn;
using MobileOne.Tensors;

namespace MobileOne.Tests.IO.Checkpoints;

/// <summary>
/// Loading and saving MobileOne checkpoints on tensor files built here from a tiny network (no fixtures): every refusal
/// with its exact message and key as the file spells it, the listed keys at the limit of twelve, counters, finite
/// values and variances at zero, the loaded classifier's fields, and which names and dtypes each network can be saved
/// in. Aimed, from the code, at what the model-level tests cannot detect, for the Stryker runs of
/// IO/Checkpoints/ModelCheckpoint.cs (docs/reliability.md).
/// </summary>
public sealed class ModelCheckpointEdgeTests
{
    private const string Path = "tiny.safetensors";

    /// <summary>Widths 0.25, one unit per stage, k = 1, one input channel, 10 classes: 27 blocks' worth of small tensors.</summary>
    private static MobileOneNetwork Tiny(bool fused = false)
    {
        var config = MobileOneConfig.FromWidths("custom", [0.25, 0.25, 0.25, 0.25], 1, [1, 1, 1, 1], null, numClasses: 10, inChans: 1);
        var net = MobileOneNetwork.Create(config);
        WeightInit.Initialize(net, 5);
        WeightInit.RandomizeBatchNorm(net, 6);
        return fused ? MobileOne.Reparam.Reparameterizer.Fuse(net) : net;
    }

    private static TensorFile TinyFile(KeyLayout layout = KeyLayout.Timm, bool fused = false) => ModelCheckpoint.ToTensorFile(Tiny(fused), layout);

    private static CheckpointException Refused(TensorFile file)
    {
        var ex = Assert.Throws<CheckpointException>(() => ModelCheckpoint.FromTensorFile(file, Path, CheckpointFormat.Safetensors));
        Assert.Equal(Path, ex.FilePath);
        return ex;
    }

    private static LoadedModel Loaded(TensorFile file) => ModelCheckpoint.FromTensorFile(file, Path, CheckpointFormat.Safetensors);

    private static string Quoted(IEnumerable<string> keys) => string.Join(", ", keys.Select(k => $"'{k}'"));

    private static void Replace(TensorFile file, string key, Action<float[]> edit)
    {
        var tensor = file.Tensors[key].ToTensor();
        edit(tensor.Data);
        file.Tensors[key] = StoredTensor.FromTensor(tensor);
    }

    [Fact]
    public void A_compressed_file_is_refused_as_a_trainable_network()
    {
        var file = TinyFile(fused: true);
        file.Metadata[CompressedCheckpoint.MetadataKey] = CompressedCheckpoint.MetadataValue;
        Assert.Equal(
            "holds a compressed (low-rank + sparse) MobileOne: it runs on the engine (eval, forward, bench, export) but is not a trainable MobileOne network (fine-tuning compressed layers is not supported yet; docs/ideas.md).",
            Refused(file).Problem);
    }

    [Fact]
    public void A_naming_problem_is_reported_as_a_sentence_about_the_file()
    {
        var file = new TensorFile([KeyValuePair.Create("features.0.weight", StoredTensor.FromTensor(new Tensor(2, 2)))]);
        var ex = Refused(file);
        Assert.Equal("has no MobileOne parameter names (expected timm's stem./stages./head.fc. or Apple's stage0..stage4./linear.).", ex.Problem);
        Assert.Null(ex.Key);
    }

    [Fact]
    public void Two_apple_keys_for_one_parameter_are_refused_naming_both()
    {
        // Apple's "rbr_skip" is timm's "identity"; an Apple file that also spells it timm's way names it twice.
        var file = TinyFile(KeyLayout.Apple);
        file.Tensors.Add("stage1.1.identity.weight", file.Tensors["stage1.1.rbr_skip.weight"]);
        var ex = Refused(file);
        Assert.Equal("names the same parameter as 'stage1.1.rbr_skip.weight'.", ex.Problem);
        Assert.Equal("stage1.1.identity.weight", ex.Key);
    }

    [Fact]
    public void An_inference_refusal_quotes_the_key_as_an_apple_file_spells_it()
    {
        var file = TinyFile(KeyLayout.Apple, fused: true);
        file.Tensors["stage0.reparam_conv.weight"] = StoredTensor.FromTensor(new Tensor(16, 1, 3));
        var ex = Refused(file);
        Assert.Equal("stage0.reparam_conv.weight", ex.Key);
        Assert.Equal("has shape [16, 1, 3]; expected a non-empty tensor of rank 4.", ex.Problem);
        Assert.Equal("stem.reparam_conv.weight", Assert.IsType<CheckpointException>(ex.InnerException).Key);
    }

    [Fact]
    public void An_inference_refusal_of_a_timm_file_is_passed_on_as_it_is()
    {
        var file = TinyFile(fused: true);
        file.Tensors["stem.reparam_conv.weight"] = StoredTensor.FromTensor(new Tensor(16, 1, 3));
        var ex = Refused(file);
        Assert.Equal("stem.reparam_conv.weight", ex.Key);
        Assert.Null(ex.InnerException);
    }

    [Fact]
    public void A_key_inference_needs_is_named_as_an_apple_file_would_spell_it()
    {
        var file = TinyFile(KeyLayout.Apple);
        file.Tensors.Remove("linear.weight");
        var ex = Refused(file);
        Assert.Equal("is missing; cannot infer the MobileOne configuration without it.", ex.Problem);
        Assert.Equal("linear.weight", ex.Key);
    }

    /// <summary>Twelve keys are listed whole; from thirteen on, the first twelve and a count of the rest.</summary>
    [Theory]
    [InlineData(12, "")]
    [InlineData(13, " and 1 more")]
    [InlineData(15, " and 3 more")]
    public void Missing_keys_are_listed_in_the_models_order_up_to_twelve(int count, string rest)
    {
        var network = Tiny();
        var file = ModelCheckpoint.ToTensorFile(network, KeyLayout.Timm);
        // Running means and biases of the BatchNorms: inference does not read them.
        var removed = network.State().Select(e => e.Name).Where(n => n.EndsWith(".bn.running_mean", StringComparison.Ordinal) || n.EndsWith(".bn.bias", StringComparison.Ordinal)).Take(count).ToList();
        Assert.Equal(count, removed.Count);
        foreach (string key in removed)
        {
            file.Tensors.Remove(key);
        }

        Assert.Equal($"is missing {count} tensor(s) the inferred custom model needs: {Quoted(removed.Take(12))}{rest}.", Refused(file).Problem);
    }

    [Fact]
    public void Missing_keys_of_an_apple_file_are_listed_in_apples_names()
    {
        var file = TinyFile(KeyLayout.Apple);
        file.Tensors.Remove("stage1.1.rbr_skip.running_var");
        Assert.Equal("is missing 1 tensor(s) the inferred custom model needs: 'stage1.1.rbr_skip.running_var'.", Refused(file).Problem);
    }

    [Theory]
    [InlineData(12, "")]
    [InlineData(13, " and 1 more")]
    public void Unexpected_keys_are_listed_in_the_files_order_up_to_twelve(int count, string rest)
    {
        var file = TinyFile();
        var extra = Enumerable.Range(0, count).Select(i => $"extra.{count - i}").ToList();
        foreach (string key in extra)
        {
            file.Tensors.Add(key, StoredTensor.FromInt64(1));
        }

        Assert.Equal($"has {count} tensor(s) that do not belong to the inferred custom model: {Quoted(extra.Take(12))}{rest}.", Refused(file).Problem);
    }

    [Fact]
    public void A_mobileone_file_loads_as_a_classifier_with_its_scheme()
    {
        var file = TinyFile(KeyLayout.Apple, fused: true);
        var loaded = ModelCheckpoint.ClassifierFromTensorFile(file, Path, CheckpointFormat.PyTorch);
        Assert.IsType<MobileOneNetwork>(loaded.Network);
        Assert.Same(loaded.Network, loaded.MobileOne);
        Assert.Equal(Path, loaded.Path);
        Assert.Equal(CheckpointFormat.PyTorch, loaded.Format);
        Assert.True(loaded.Fused);
        Assert.Equal(KeyLayout.Apple, loaded.Layout);
        Assert.Equal(new KeyScheme(KeyLayout.Apple, true), loaded.MobileOneInfo!.Scheme);
        Assert.Equal(Path, loaded.MobileOneInfo.Path);
        Assert.Equal(10, loaded.MobileOneInfo.Config.NumClasses);

        var unfused = ModelCheckpoint.ClassifierFromTensorFile(TinyFile(), Path, CheckpointFormat.Safetensors);
        Assert.False(unfused.Fused);
        Assert.Equal(KeyLayout.Timm, unfused.Layout);
    }

    [Fact]
    public void A_loaded_model_says_what_the_file_was()
    {
        var loaded = Loaded(TinyFile(fused: true));
        Assert.Equal(Path, loaded.Info.Path);
        Assert.Equal(CheckpointFormat.Safetensors, loaded.Info.Format);
        Assert.True(loaded.Info.Fused);
        Assert.Equal("custom", loaded.Info.Variant);
        Assert.Equal(1, loaded.Info.Config.InChans);
    }

    [Fact]
    public void Floats_are_saved_in_the_chosen_dtype_and_counters_as_int64_with_the_format_metadata()
    {
        var network = Tiny();
        var counter = network.State().First(e => e.Kind == StateKind.Counter);
        counter.Value.Data[0] = 42;
        var file = ModelCheckpoint.ToTensorFile(network, KeyLayout.Timm, DType.F16);
        Assert.Equal("pt", file.Metadata["format"]);
        Assert.Equal(DType.I64, file.Tensors[counter.Name].DType);
        Assert.Equal([42L], file.Tensors[counter.Name].ToInt64());
        Assert.All(network.State().Where(e => e.Kind != StateKind.Counter), e => Assert.Equal(DType.F16, file.Tensors[e.Name].DType));
    }

    [Fact]
    public void A_counter_stored_as_float_is_refused_and_one_stored_as_int32_is_read()
    {
        var file = TinyFile();
        string key = file.Tensors.Keys.First(k => k.EndsWith(".num_batches_tracked", StringComparison.Ordinal));
        file.Tensors[key] = StoredTensor.FromTensor(new Tensor([], [3f]));
        var ex = Refused(file);
        Assert.Equal("is a F32 tensor; a batch counter must be an integer.", ex.Problem);
        Assert.Equal(key, ex.Key);

        file.Tensors[key] = new StoredTensor(DType.I32, [], BitConverter.GetBytes(77));
        var counter = Loaded(file).Network.State().Single(e => e.Name == key);
        Assert.Equal(77f, counter.Value.Data[0]);
    }

    [Fact]
    public void Zero_running_variances_and_negative_weights_and_means_are_accepted()
    {
        var file = TinyFile();
        string variance = file.Tensors.Keys.First(k => k.EndsWith(".running_var", StringComparison.Ordinal));
        string mean = variance[..^"running_var".Length] + "running_mean";
        string weight = variance[..^"running_var".Length] + "weight";
        Replace(file, variance, v => v.AsSpan().Clear());
        Replace(file, mean, v => v.AsSpan().Fill(-2f));
        Replace(file, weight, v => v.AsSpan().Fill(-0.5f));
        var state = Loaded(file).Network.State().ToDictionary(e => e.Name, e => e.Value.Data);
        Assert.All(state[variance], v => Assert.Equal(0f, v));
        Assert.All(state[mean], v => Assert.Equal(-2f, v));
        Assert.All(state[weight], v => Assert.Equal(-0.5f, v));
    }

    [Fact]
    public void A_non_finite_first_element_and_a_negative_last_variance_are_found()
    {
        var file = TinyFile();
        Replace(file, "head.fc.weight", v => v[0] = float.NaN);
        var ex = Refused(file);
        Assert.Equal("head.fc.weight", ex.Key);
        Assert.Equal("holds NaN at element 0; weights must be finite (the model's output would be NaN).", ex.Problem);

        file = TinyFile();
        string variance = file.Tensors.Keys.Last(k => k.EndsWith(".running_var", StringComparison.Ordinal));
        int last = (int)file.Tensors[variance].ElementCount() - 1;
        Replace(file, variance, v => v[^1] = -1e-30f);
        ex = Refused(file);
        Assert.Equal(variance, ex.Key);
        Assert.Equal($"holds the negative running variance -1E-30 at element {last}; a variance cannot be negative (normalizing by it gives NaN).", ex.Problem);
    }

    [Fact]
    public void A_compressed_network_is_stored_only_in_timms_names_as_f32()
    {
        var compressed = new CompressedNetwork(Tiny(fused: true), []);
        var apple = Assert.Throws<ArgumentException>(() => ModelCheckpoint.ToTensorFile(compressed, KeyLayout.Apple));
        Assert.StartsWith("A compressed network is stored in timm's names as F32 (docs/ideas.md).", apple.Message);
        Assert.Equal("layout", apple.ParamName);
        Assert.Throws<ArgumentException>(() => ModelCheckpoint.ToTensorFile(compressed, KeyLayout.Timm, DType.F16));

        var file = ModelCheckpoint.ToTensorFile(compressed, KeyLayout.Timm);
        Assert.Equal(CompressedCheckpoint.MetadataValue, file.Metadata[CompressedCheckpoint.MetadataKey]);
    }

    [Fact]
    public void A_compressed_network_is_saved_only_as_safetensors()
    {
        using var dir = new TempDir();
        var compressed = new CompressedNetwork(Tiny(fused: true), []);
        string pth = dir.File("c.pth");
        var ex = Assert.Throws<CheckpointException>(() => ModelCheckpoint.Save(compressed, pth));
        Assert.Equal("a compressed network is saved as .safetensors (its metadata marks the file as compressed; torch.save files carry no metadata).", ex.Problem);
        Assert.False(File.Exists(pth));
        Assert.Throws<CheckpointException>(() => ModelCheckpoint.Save(compressed, dir.File("c.safetensors"), format: CheckpointFormat.PyTorch));

        // The format argument wins over the extension.
        string bin = dir.File("c.bin");
        ModelCheckpoint.Save(compressed, bin, format: CheckpointFormat.Safetensors);
        Assert.Equal(CompressedCheckpoint.MetadataValue, SafetensorsReader.Read(bin).Metadata[CompressedCheckpoint.MetadataKey]);
    }

    [Fact]
    public void A_mobileone_network_has_no_official_repvgg_names()
    {
        var ex = Assert.Throws<ArgumentException>(() => ModelCheckpoint.ToTensorFile(Tiny(), KeyLayout.RepVggOfficial));
        Assert.StartsWith("mobileone_custom: DingXiaoH/RepVGG's official names are RepVGG's only.", ex.Message);
        Assert.Equal("layout", ex.ParamName);
    }

    [Fact]
    public void Zoo_networks_other_than_repvgg_have_only_timms_names()
    {
        var network = ModelRegistry.Get("mobilenetv2_035").CreateUninitialized(numClasses: 3, inChans: 3, fused: false);
        var apple = Assert.Throws<ArgumentException>(() => ModelCheckpoint.ToTensorFile(network, KeyLayout.Apple));
        Assert.StartsWith("mobilenetv2_035: Apple's names are MobileOne's; this family has timm's.", apple.Message);
        var official = Assert.Throws<ArgumentException>(() => ModelCheckpoint.ToTensorFile(network, KeyLayout.RepVggOfficial));
        Assert.StartsWith("mobilenetv2_035: DingXiaoH/RepVGG's official names are RepVGG's only.", official.Message);
    }

    [Fact]
    public void Repvgg_has_timms_and_the_official_names_but_not_apples()
    {
        // Zero weights: only the names matter here.
        var network = ModelRegistry.Get("repvgg_a0").CreateUninitialized(numClasses: 3, inChans: 3, fused: true);
        var apple = Assert.Throws<ArgumentException>(() => ModelCheckpoint.ToTensorFile(network, KeyLayout.Apple));
        Assert.StartsWith("repvgg_a0: Apple's names are MobileOne's; this family has timm's and DingXiaoH/RepVGG's (official).", apple.Message);

        var official = ModelCheckpoint.ToTensorFile(network, KeyLayout.RepVggOfficial);
        Assert.Equal(network.State().Select(e => RepVggNames.ToOfficial(e.Name)), official.Tensors.Keys);
        Assert.Contains("stage0.rbr_reparam.weight", official.Tensors.Keys);
        Assert.Contains("linear.weight", official.Tensors.Keys);
    }

    [Fact]
    public void The_input_size_a_model_was_trained_at_goes_into_safetensors_metadata_and_back()
    {
        using var dir = new TempDir();
        var net = Tiny();
        string recorded = dir.File("recorded.safetensors"), plain = dir.File("plain.safetensors"), torch = dir.File("torch.pth");
        ModelCheckpoint.Save(net, recorded, inputSize: 48);
        ModelCheckpoint.Save(net, plain);
        ModelCheckpoint.Save(net, torch, inputSize: 48);

        Assert.Equal("1,48,48", CheckpointFile.Read(recorded).File.Metadata[InputSizeRecord.Key]);
        Assert.Equal(48, ModelCheckpoint.LoadClassifier(recorded).InputSize);
        Assert.Null(ModelCheckpoint.LoadClassifier(plain).InputSize);

        // torch.save has no metadata: the size is dropped, not refused.
        Assert.Null(ModelCheckpoint.LoadClassifier(torch).InputSize);

        // The weights are the same with or without the record.
        var a = ModelCheckpoint.LoadClassifier(recorded).Network.State().Select(e => e.Value.Data).ToList();
        var b = ModelCheckpoint.LoadClassifier(plain).Network.State().Select(e => e.Value.Data).ToList();
        Assert.Equal(b, a);
    }

    [Theory]
    [InlineData("48")]
    [InlineData("1,48")]
    [InlineData("3,48,48")]
    [InlineData("1,48,40")]
    [InlineData("1,0,0")]
    [InlineData("1,5000,5000")]
    [InlineData("1,-48,-48")]
    [InlineData("1,4 8,48")]
    [InlineData("")]
    public void A_malformed_input_size_is_refused_with_the_file_and_key(string value)
    {
        var file = TinyFile();
        file.Metadata[InputSizeRecord.Key] = value;
        var ex = Assert.Throws<CheckpointException>(() => ModelCheckpoint.ClassifierFromTensorFile(file, Path, CheckpointFormat.Safetensors));
        Assert.Equal(Path, ex.FilePath);
        Assert.Equal(InputSizeRecord.Key, ex.Key);
        Assert.Equal(
            $"has metadata input_size '{value}'; expected 'C,H,W' for a square input, C = 1 (the model's in_chans) and H = W from 1 to 4096, e.g. '1,224,224'.",
            ex.Problem);
    }

    [Fact]
    public void A_well_formed_input_size_reads_back_with_spaces_around_its_numbers()
    {
        var file = TinyFile();
        file.Metadata[InputSizeRecord.Key] = "1, 64, 64";
        Assert.Equal(64, ModelCheckpoint.ClassifierFromTensorFile(file, Path, CheckpointFormat.Safetensors).InputSize);
        file.Metadata[InputSizeRecord.Key] = "1,4096,4096";
        Assert.Equal(4096, ModelCheckpoint.ClassifierFromTensorFile(file, Path, CheckpointFormat.Safetensors).InputSize);

        // A long value is quoted by its first 40 characters.
        file.Metadata[InputSizeRecord.Key] = new string('9', 100_000);
        var ex = Assert.Throws<CheckpointException>(() => ModelCheckpoint.ClassifierFromTensorFile(file, Path, CheckpointFormat.Safetensors));
        Assert.StartsWith($"has metadata input_size '{new string('9', 40)}...'; expected", ex.Problem);
        Assert.Throws<ArgumentOutOfRangeException>(() => ModelCheckpoint.ToTensorFile(Tiny(), KeyLayout.Timm, inputSize: 0));
        Assert.Equal("1,12,12", ModelCheckpoint.ToTensorFile(Tiny(), KeyLayout.Timm, inputSize: 12).Metadata[InputSizeRecord.Key]);
    }

    [Fact]
    public void An_onnx_export_records_the_input_size_in_metadata_props_and_the_importer_reads_it_back()
    {
        using var dir = new TempDir();
        var net = Tiny();
        string recorded = dir.File("recorded.onnx"), plain = dir.File("plain.onnx"), wrong = dir.File("wrong.onnx");
        MobileOne.IO.Onnx.OnnxExporter.Export(net, recorded, inputSize: 40);
        MobileOne.IO.Onnx.OnnxExporter.Export(net, plain);
        Assert.Equal(40, MobileOne.IO.Onnx.OnnxImporter.Read(recorded).InputSize);
        Assert.Null(MobileOne.IO.Onnx.OnnxImporter.Read(plain).InputSize);

        var model = MobileOne.IO.Onnx.OnnxExporter.Build(net);
        model.MetadataProps.Add(new global::Onnx.StringStringEntryProto { Key = InputSizeRecord.Key, Value = "3,40,40" });
        File.WriteAllBytes(wrong, Google.Protobuf.MessageExtensions.ToByteArray(model));
        var ex = Assert.Throws<CheckpointException>(() => MobileOne.IO.Onnx.OnnxImporter.Read(wrong));
        Assert.Equal((wrong, InputSizeRecord.Key), (ex.FilePath, ex.Key));
        Assert.Equal(
            "has metadata input_size '3,40,40'; expected 'C,H,W' for a square input, C = 1 (the model's in_chans) and H = W from 1 to 4096, e.g. '1,224,224'.",
            ex.Problem);
    }
}
