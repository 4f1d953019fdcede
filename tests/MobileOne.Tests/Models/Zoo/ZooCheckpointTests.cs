using MobileOne.IO;
using MobileOne.IO.Checkpoints;
using MobileOne.IO.Safetensors;
using MobileOne.Models;
using MobileOne.Models.Zoo;
using MobileOne.Tensors;

namespace MobileOne.Tests.Models.Zoo;

/// <summary>Zoo checkpoints in timm's names: round trips for every family and form, and one clear error for files that match no variant.</summary>
public class ZooCheckpointTests
{
    [Theory]
    [InlineData("repvgg_a0", false)]
    [InlineData("repvgg_a0", true)]
    [InlineData("resnet34", false)]
    [InlineData("mobilenetv1_125", false)]
    [InlineData("mobilenetv2_035", false)]
    [InlineData("mobilenetv2_050", false)]
    public void A_saved_network_loads_back_as_the_same_variant_with_the_same_state(string name, bool fused)
    {
        var network = ModelRegistry.Get(name).Create(numClasses: 7, inChans: 2, fused: fused, seed: 3);
        using var dir = new TempDir();
        string path = dir.File("model.safetensors");
        ModelCheckpoint.Save(network, path);
        var loaded = ModelCheckpoint.LoadClassifier(path);
        var zoo = Assert.IsType<ZooNetwork>(loaded.Network);
        Assert.Equal((name, 7, 2, fused), (zoo.Architecture, zoo.NumClasses, zoo.InChans, zoo.IsFused));
        Assert.Equal(network.State().Select(e => (e.Name, e.Value.Data)), zoo.State().Select(e => (e.Name, e.Value.Data)));
    }

    /// <summary>torch.save in bf16 and sharded safetensors in f16: the same loader, the values rounded as the dtype says.</summary>
    [Fact]
    public void Torch_save_bf16_and_sharded_f16_files_load_as_the_same_variant()
    {
        var network = ModelRegistry.Get("mobilenetv2_050").Create(numClasses: 5, seed: 7);
        using var dir = new TempDir();
        string pth = dir.File("model.pth"), index = dir.File("model.safetensors.index.json");
        MobileOne.IO.PyTorch.PyTorchCheckpointWriter.Write(pth, ModelCheckpoint.ToTensorFile(network, KeyLayout.Timm, DType.BF16));
        SafetensorsWriter.WriteSharded(index, ModelCheckpoint.ToTensorFile(network, KeyLayout.Timm, DType.F16), maxShardBytes: 1 << 20);
        Assert.True(Directory.GetFiles(dir.Path, "*.safetensors").Length > 1);
        foreach (var (path, dtype, format) in new[] { (pth, DType.BF16, CheckpointFormat.PyTorch), (index, DType.F16, CheckpointFormat.SafetensorsSharded) })
        {
            var loaded = ModelCheckpoint.LoadClassifier(path);
            Assert.Equal(format, loaded.Format);
            Assert.Equal("mobilenetv2_050", loaded.Network.Architecture);
            foreach (var (a, b) in network.State().Zip(loaded.Network.State()))
            {
                var rounded = StoredTensor.FromTensor(a.Value, a.Kind == MobileOne.Nn.StateKind.Counter ? DType.F32 : dtype).ToTensor().Data;
                Assert.Equal(rounded, b.Value.Data);
            }
        }
    }

    [Fact]
    public void MobileOne_checkpoints_still_load_through_the_same_entry_point()
    {
        var network = ModelRegistry.Get("mobileone_s0").Create(numClasses: 4, seed: 1);
        using var dir = new TempDir();
        string path = dir.File("s0.safetensors");
        ModelCheckpoint.Save(network, path);
        var loaded = ModelCheckpoint.LoadClassifier(path);
        Assert.IsType<MobileOneNetwork>(loaded.Network);
        Assert.Equal("mobileone_s0", loaded.Network.Architecture);
    }

    [Fact]
    public void A_file_matching_no_variant_names_the_closest_and_its_differences()
    {
        var file = ModelCheckpoint.ToTensorFile(ModelRegistry.Get("resnet18").Create(), KeyLayout.Timm);
        file.Tensors["layer4.1.conv2.weight"] = StoredTensor.FromTensor(new Tensor(512, 512, 1, 1));
        file.Tensors["layer5.0.conv1.weight"] = StoredTensor.FromTensor(new Tensor(1, 1, 1, 1));
        using var dir = new TempDir();
        string path = dir.File("odd.safetensors");
        SafetensorsWriter.Write(path, file);
        var e = Assert.Throws<CheckpointException>(() => ModelCheckpoint.LoadClassifier(path));
        Assert.Contains("is a resnet checkpoint but matches no variant; the closest, resnet18, differs in 2 tensor(s)", e.Message);
        Assert.Contains("'layer4.1.conv2.weight' is [512, 512, 1, 1], expected [512, 512, 3, 3]", e.Message);
        Assert.Contains("'layer5.0.conv1.weight' unexpected", e.Message);
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void A_missing_classifier_is_named()
    {
        var file = ModelCheckpoint.ToTensorFile(ModelRegistry.Get("mobilenetv2_050").Create(), KeyLayout.Timm);
        file.Tensors.Remove("classifier.weight");
        using var dir = new TempDir();
        string path = dir.File("headless.safetensors");
        SafetensorsWriter.Write(path, file);
        var e = Assert.Throws<CheckpointException>(() => ModelCheckpoint.LoadClassifier(path));
        Assert.Equal("classifier.weight", e.Key);
        Assert.Contains("is missing", e.Message);
    }

    [Fact]
    public void Apple_names_are_refused_for_a_zoo_network()
    {
        var e = Assert.Throws<ArgumentException>(() => ModelCheckpoint.ToTensorFile(ModelRegistry.Get("resnet18").Create(), KeyLayout.Apple));
        Assert.Contains("resnet18: Apple's names are MobileOne's; this family has timm's.", e.Message);
    }
}
