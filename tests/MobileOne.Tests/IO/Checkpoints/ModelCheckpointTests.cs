using MobileOne.IO;
using MobileOne.IO.Checkpoints;
using MobileOne.IO.Safetensors;
using MobileOne.Models;
using MobileOne.Nn;

namespace MobileOne.Tests.IO.Checkpoints;

public class ModelCheckpointTests
{
    private static MobileOneNetwork SmallNetwork(bool se = true, int seed = 3)
    {
        var config = MobileOneConfig.FromWidths("custom", [0.25, 0.25, 0.25, 0.25], 2, [1, 2, 2, 1], se ? [0, 0, 1, 1] : null, numClasses: 7, inChans: 2);
        var net = MobileOneNetwork.Create(config);
        WeightInit.Initialize(net, seed);
        WeightInit.RandomizeBatchNorm(net, seed + 1);
        return net;
    }

    private static void AssertSameState(MobileOneNetwork expected, MobileOneNetwork actual)
    {
        var a = expected.State().ToList();
        var b = actual.State().ToList();
        Assert.Equal(a.Select(e => e.Name), b.Select(e => e.Name));
        for (int i = 0; i < a.Count; i++)
        {
            Assert.Equal(a[i].Value.Shape, b[i].Value.Shape);
            Assert.Equal(a[i].Value.Data, b[i].Value.Data);
        }
    }

    [Fact]
    public void Detects_all_four_fixture_schemes_and_variants()
    {
        var cases = new (string File, string Scheme, CheckpointFormat Format)[]
        {
            ("mobileone_s0_timm.safetensors", "timm", CheckpointFormat.Safetensors),
            ("mobileone_s0_timm_fused.safetensors", "timm-fused", CheckpointFormat.Safetensors),
            ("mobileone_s0_apple_unfused.pth.tar", "apple", CheckpointFormat.PyTorch),
            ("mobileone_s0_apple_unfused_fused.pth.tar", "apple-fused", CheckpointFormat.PyTorch),
        };
        foreach (var (file, scheme, format) in cases)
        {
            var info = ModelCheckpoint.Load(Fixtures.Path(file)).Info;
            Assert.Equal(scheme, info.Scheme.Name);
            Assert.Equal(format, info.Format);
            Assert.Equal("s0", info.Variant);
            Assert.Equal(1000, info.Config.NumClasses);
            Assert.Equal(3, info.Config.InChans);
        }
    }

    [Fact]
    public void Apple_to_timm_to_apple_round_trip_keeps_every_value()
    {
        using var dir = new TempDir();
        var apple = ModelCheckpoint.Load(Fixtures.Path("mobileone_s0_apple_unfused.pth.tar")).Network;
        ModelCheckpoint.Save(apple, dir.File("timm.safetensors"));
        var timm = ModelCheckpoint.Load(dir.File("timm.safetensors"));
        Assert.Equal("timm", timm.Info.Scheme.Name);
        AssertSameState(apple, timm.Network);

        ModelCheckpoint.Save(timm.Network, dir.File("apple.pth"), KeyLayout.Apple);
        var back = ModelCheckpoint.Load(dir.File("apple.pth"));
        Assert.Equal("apple", back.Info.Scheme.Name);
        AssertSameState(apple, back.Network);

        // Apple's names are exactly the fixture's names.
        var original = CheckpointFile.Read(Fixtures.Path("mobileone_s0_apple_unfused.pth.tar")).File;
        var written = CheckpointFile.Read(dir.File("apple.pth")).File;
        Assert.Equal(original.Tensors.Keys.Order(), written.Tensors.Keys.Order());
    }

    [Fact]
    public void Timm_names_we_write_are_exactly_timms_state_dict_keys()
    {
        var original = CheckpointFile.Read(Fixtures.Path("mobileone_s0_timm.safetensors")).File;
        var ours = ModelCheckpoint.ToTensorFile(ModelCheckpoint.Load(Fixtures.Path("mobileone_s0_timm.safetensors")).Network, KeyLayout.Timm);
        Assert.Equal(original.Tensors.Keys.Order(), ours.Tensors.Keys.Order());
        foreach (var (key, tensor) in ours.Tensors)
        {
            Assert.Equal(original.Tensors[key].Shape, tensor.Shape);
            Assert.Equal(key.EndsWith("num_batches_tracked", StringComparison.Ordinal) ? DType.I64 : DType.F32, tensor.DType);
        }
    }

    [Theory]
    [InlineData("model.safetensors", KeyLayout.Timm)]
    [InlineData("model.pth", KeyLayout.Apple)]
    [InlineData("model.pth.tar", KeyLayout.Timm)]
    [InlineData("model.pt", KeyLayout.Apple)]
    public void A_file_we_write_reads_back_bit_identical(string name, KeyLayout layout)
    {
        using var dir = new TempDir();
        var net = SmallNetwork();
        string path = dir.File(name);
        ModelCheckpoint.Save(net, path, layout);
        var expected = ModelCheckpoint.ToTensorFile(net, layout);
        var actual = CheckpointFile.Read(path).File;
        Assert.Equal(expected.Tensors.Keys, actual.Tensors.Keys);
        foreach (var (key, tensor) in expected.Tensors)
        {
            Assert.Equal(tensor.DType, actual.Tensors[key].DType);
            Assert.Equal(tensor.Shape, actual.Tensors[key].Shape);
            Assert.Equal(tensor.Data, actual.Tensors[key].Data);
        }

        var loaded = ModelCheckpoint.Load(path);
        Assert.Equal("custom", loaded.Info.Variant);
        Assert.Equal(7, loaded.Info.Config.NumClasses);
        Assert.Equal(2, loaded.Info.Config.InChans);
        Assert.Equal(new[] { 0, 0, 1, 1 }, loaded.Info.Config.SeUnits);
        AssertSameState(net, loaded.Network);
    }

    [Fact]
    public void Fused_models_round_trip_in_both_layouts()
    {
        using var dir = new TempDir();
        var fused = MobileOne.Reparam.Reparameterizer.Fuse(SmallNetwork());
        foreach (var layout in new[] { KeyLayout.Timm, KeyLayout.Apple })
        {
            string path = dir.File($"fused-{layout}.safetensors");
            ModelCheckpoint.Save(fused, path, layout);
            var loaded = ModelCheckpoint.Load(path);
            Assert.True(loaded.Info.Fused);
            Assert.Equal(layout, loaded.Info.Scheme.Layout);
            AssertSameState(fused, loaded.Network);
        }
    }

    [Fact]
    public void Sharded_checkpoint_loads_through_its_index()
    {
        using var dir = new TempDir();
        var timm = ModelCheckpoint.Load(Fixtures.Path("mobileone_s0_timm.safetensors")).Network;
        string index = dir.File("model.safetensors.index.json");
        SafetensorsWriter.WriteSharded(index, ModelCheckpoint.ToTensorFile(timm, KeyLayout.Timm), 4 << 20);
        Assert.True(Directory.GetFiles(dir.Path, "model-*.safetensors").Length > 1);
        var loaded = ModelCheckpoint.Load(index);
        Assert.Equal(CheckpointFormat.SafetensorsSharded, loaded.Info.Format);
        Assert.Equal("s0", loaded.Info.Variant);
        AssertSameState(timm, loaded.Network);
    }

    [Fact]
    public void Module_prefix_and_wrapped_state_dict_are_accepted()
    {
        using var dir = new TempDir();
        var net = SmallNetwork();
        var file = ModelCheckpoint.ToTensorFile(net, KeyLayout.Timm);
        var prefixed = new TensorFile(file.Tensors.Select(kv => KeyValuePair.Create("module." + kv.Key, kv.Value)));
        MobileOne.IO.PyTorch.PyTorchCheckpointWriter.Write(dir.File("ddp.pth"), prefixed);
        AssertSameState(net, ModelCheckpoint.Load(dir.File("ddp.pth")).Network);
    }

    private static string WriteVariant(TempDir dir, Action<TensorFile> edit, string name = "edited.safetensors")
    {
        var file = ModelCheckpoint.ToTensorFile(SmallNetwork(), KeyLayout.Timm);
        edit(file);
        string path = dir.File(name);
        SafetensorsWriter.Write(path, file);
        return path;
    }

    [Fact]
    public void Missing_keys_are_listed_by_name()
    {
        using var dir = new TempDir();
        string path = WriteVariant(dir, f =>
        {
            f.Tensors.Remove("stages.1.2.conv_kxk.1.bn.running_var");
            f.Tensors.Remove("stages.2.3.attn.fc2.bias");
        });
        var e = Assert.Throws<CheckpointException>(() => ModelCheckpoint.Load(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("missing 2 tensor(s)", e.Message);
        Assert.Contains("'stages.1.2.conv_kxk.1.bn.running_var'", e.Message);
        Assert.Contains("'stages.2.3.attn.fc2.bias'", e.Message);
    }

    [Fact]
    public void Unexpected_keys_are_listed_by_name()
    {
        using var dir = new TempDir();
        string path = WriteVariant(dir, f => f.Tensors.Add("stages.0.0.conv_kxk.0.extra", StoredTensor.FromInt64(1)));
        var e = Assert.Throws<CheckpointException>(() => ModelCheckpoint.Load(path));
        Assert.Contains("do not belong", e.Message);
        Assert.Contains("'stages.0.0.conv_kxk.0.extra'", e.Message);
    }

    [Fact]
    public void A_tensor_that_does_not_fit_the_inferred_variant_names_its_key_and_both_shapes()
    {
        using var dir = new TempDir();
        string path = WriteVariant(dir, f => f.Tensors["stages.1.1.conv_kxk.0.bn.weight"] = StoredTensor.FromTensor(new MobileOne.Tensors.Tensor(5)));
        var e = Assert.Throws<CheckpointException>(() => ModelCheckpoint.Load(path));
        Assert.Equal("stages.1.1.conv_kxk.0.bn.weight", e.Key);
        Assert.Contains("has shape [5]", e.Message);
        Assert.Contains("expects [32]", e.Message);
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void A_fixture_tensor_with_the_wrong_shape_is_reported_against_the_fixture_key()
    {
        using var dir = new TempDir();
        var file = CheckpointFile.Read(Fixtures.Path("mobileone_s0_apple_unfused.pth.tar")).File;
        file.Tensors["stage2.3.rbr_conv.1.conv.weight"] = StoredTensor.FromTensor(new MobileOne.Tensors.Tensor(128, 64, 1, 1));
        string path = dir.File("bad.safetensors");
        SafetensorsWriter.Write(path, file);
        var e = Assert.Throws<CheckpointException>(() => ModelCheckpoint.Load(path));
        Assert.Equal("stage2.3.rbr_conv.1.conv.weight", e.Key);
        Assert.Contains("expects [128, 128, 1, 1]", e.Message);
    }

    [Fact]
    public void Mixed_or_foreign_names_are_refused()
    {
        using var dir = new TempDir();
        string mixed = WriteVariant(dir, f => f.Tensors.Add("linear.weight", StoredTensor.FromTensor(new MobileOne.Tensors.Tensor(7, 8))), "mixed.safetensors");
        Assert.Contains("mixes Apple", Assert.Throws<CheckpointException>(() => ModelCheckpoint.Load(mixed)).Message);

        var foreign = new TensorFile([KeyValuePair.Create("features.0.weight", StoredTensor.FromTensor(new MobileOne.Tensors.Tensor(2, 2)))]);
        SafetensorsWriter.Write(dir.File("resnet.safetensors"), foreign);
        var e = Assert.Throws<CheckpointException>(() => ModelCheckpoint.Load(dir.File("resnet.safetensors")));
        Assert.Contains("no MobileOne parameter names", e.Message);
    }

    [Fact]
    public void Integer_weights_are_refused_with_the_key()
    {
        using var dir = new TempDir();
        string path = WriteVariant(dir, f => f.Tensors["head.fc.bias"] = new StoredTensor(DType.I64, [7], new byte[56]));
        var e = Assert.Throws<CheckpointException>(() => ModelCheckpoint.Load(path));
        Assert.Equal("head.fc.bias", e.Key);
        Assert.Contains("expected floating point", e.Message);
    }

    [Fact]
    public void Files_that_are_not_checkpoints_get_one_clear_error()
    {
        using var dir = new TempDir();
        File.WriteAllBytes(dir.File("empty.safetensors"), []);
        Assert.Contains("is empty", Assert.Throws<CheckpointException>(() => ModelCheckpoint.Load(dir.File("empty.safetensors"))).Message);
        Assert.Contains("is a directory", Assert.Throws<CheckpointException>(() => ModelCheckpoint.Load(dir.Path)).Message);
        Assert.Contains("does not exist", Assert.Throws<CheckpointException>(() => ModelCheckpoint.Load(dir.File("nope.pth"))).Message);
        File.WriteAllText(dir.File("notes.txt"), "hello, this is not a model");
        Assert.Contains("not a recognised checkpoint", Assert.Throws<CheckpointException>(() => ModelCheckpoint.Load(dir.File("notes.txt"))).Message);

        var bytes = File.ReadAllBytes(Fixtures.Path("mobileone_s0_timm_fused.safetensors"));
        File.WriteAllBytes(dir.File("truncated.safetensors"), bytes[..(bytes.Length / 2)]);
        var e = Assert.Throws<CheckpointException>(() => ModelCheckpoint.Load(dir.File("truncated.safetensors")));
        Assert.StartsWith(dir.File("truncated.safetensors"), e.Message);
    }

    [Fact]
    public void Key_names_map_both_ways()
    {
        string[] timm =
        [
            "stem.conv_kxk.0.conv.weight", "stem.conv_scale.bn.running_var", "stages.0.1.identity.weight",
            "stages.3.1.attn.fc1.bias", "stages.2.19.attn.fc2.weight", "stages.1.4.reparam_conv.bias", "head.fc.weight",
        ];
        string[] apple =
        [
            "stage0.rbr_conv.0.conv.weight", "stage0.rbr_scale.bn.running_var", "stage1.1.rbr_skip.weight",
            "stage4.1.se.reduce.bias", "stage3.19.se.expand.weight", "stage2.4.reparam_conv.bias", "linear.weight",
        ];
        Assert.Equal(apple, timm.Select(KeyNames.TimmToApple));
        Assert.Equal(timm, apple.Select(KeyNames.AppleToTimm));
    }

    [Fact]
    public void Counters_are_written_as_int64_and_restored()
    {
        var net = SmallNetwork();
        var bn = (BatchNorm2d)net.Stages[0][1].Identity!;
        bn.NumBatchesTracked.Data[0] = 1234567;
        using var dir = new TempDir();
        ModelCheckpoint.Save(net, dir.File("n.safetensors"));
        var back = ModelCheckpoint.Load(dir.File("n.safetensors")).Network;
        Assert.Equal(1234567f, back.Stages[0][1].Identity!.NumBatchesTracked.Data[0]);
    }
}
