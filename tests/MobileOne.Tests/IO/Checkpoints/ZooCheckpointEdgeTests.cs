using MobileOne.IO;
using MobileOne.IO.Checkpoints;
using MobileOne.Models;
using MobileOne.Models.Zoo;
using MobileOne.Tensors;

namespace MobileOne.Tests.IO.Checkpoints;

/// <summary>
/// Zoo checkpoints on shape maps and tensor files built here: family detection from each telling name (and the fused
/// RepVGG / fused MobileOne split at its exact shapes), the official RepVGG names, the first convolution's and the
/// classifier's checks, and the "matches no variant" message with its list at the limit of three. Aimed, from the code,
/// at what the model-level tests cannot detect, for the Stryker runs of IO/Checkpoints/ZooCheckpoint.cs
/// (docs/reliability.md).
/// </summary>
public sealed class ZooCheckpointEdgeTests
{
    private const string Path = "zoo.safetensors";

    private static Dictionary<string, int[]> Map(params (string Key, int[] Shape)[] entries) =>
        entries.ToDictionary(e => e.Key, e => e.Shape, StringComparer.Ordinal);

    private static Dictionary<string, int[]> ShapesOf(string name, int numClasses = 5, int inChans = 3, bool fused = false) =>
        Map([.. ModelRegistry.Get(name).ZooStateShapes(numClasses, inChans, fused)]);

    /// <summary>Matching reads only the shapes; a refusal comes before any tensor is read, so the file can be empty.</summary>
    private static CheckpointException Unmatched(Dictionary<string, int[]> shapes)
    {
        var ex = Assert.Throws<CheckpointException>(() => ZooCheckpoint.FromTimmNames(new TensorFile(), KeyLayout.Timm, shapes, Path, CheckpointFormat.Safetensors));
        Assert.Equal(Path, ex.FilePath);
        return ex;
    }

    private static StoredTensor Zeros(params int[] shape) => StoredTensor.FromTensor(new Tensor(shape));

    /// <summary>Same names, shapes and values (compared as spans: xUnit's element-by-element comparison of millions of floats takes minutes).</summary>
    private static void AssertSameState(ClassifierNetwork expected, ClassifierNetwork actual)
    {
        var a = expected.State().ToList();
        var b = actual.State().ToList();
        Assert.Equal(a.Select(e => e.Name), b.Select(e => e.Name));
        for (int i = 0; i < a.Count; i++)
        {
            Assert.Equal(a[i].Value.Shape, b[i].Value.Shape);
            Assert.True(a[i].Value.Data.AsSpan().SequenceEqual(b[i].Value.Data), a[i].Name);
        }
    }

    [Fact]
    public void Resnet_needs_both_its_stem_and_its_first_block()
    {
        Assert.Equal("resnet", ZooCheckpoint.DetectFamily(Map(("conv1.weight", [64, 3, 7, 7]), ("layer1.0.conv1.weight", [64, 64, 3, 3]))));
        Assert.Null(ZooCheckpoint.DetectFamily(Map(("conv1.weight", [64, 3, 7, 7]))));
        Assert.Null(ZooCheckpoint.DetectFamily(Map(("layer1.0.conv1.weight", [64, 64, 3, 3]))));
    }

    [Fact]
    public void Mobilenet_v2_is_told_from_v1_by_a_linear_bottleneck()
    {
        Assert.Equal("mobilenetv1", ZooCheckpoint.DetectFamily(Map(("conv_stem.weight", [32, 3, 3, 3]))));
        Assert.Equal("mobilenetv2", ZooCheckpoint.DetectFamily(Map(("conv_stem.weight", [32, 3, 3, 3]), ("blocks.1.0.conv_pwl.weight", [24, 96, 1, 1]))));
        Assert.Equal("mobilenetv1", ZooCheckpoint.DetectFamily(Map(("conv_stem.weight", [32, 3, 3, 3]), ("conv_pwl.weight", [24, 96, 1, 1]))));
        Assert.Null(ZooCheckpoint.DetectFamily(Map(("blocks.1.0.conv_pwl.weight", [24, 96, 1, 1]))));
    }

    [Fact]
    public void Train_time_repvgg_is_told_by_its_stems_1x1_branch()
    {
        Assert.Equal("repvgg", ZooCheckpoint.DetectFamily(Map(("stem.conv_1x1.conv.weight", [48, 3, 1, 1]))));
        Assert.Null(ZooCheckpoint.DetectFamily(Map(("stem.conv_kxk.conv.weight", [48, 3, 3, 3]))));
    }

    /// <summary>RepVGG's first stage block is a dense 3x3 (in > 1), MobileOne's a depthwise one (in = 1): both fused name it reparam_conv.</summary>
    [Theory]
    [InlineData(new[] { 48, 48, 3, 3 }, "repvgg")]
    [InlineData(new[] { 48, 2, 3, 3 }, "repvgg")]
    [InlineData(new[] { 48, 1, 3, 3 }, null)]
    [InlineData(new[] { 48, 48, 1, 1 }, null)]
    [InlineData(new[] { 48, 48, 3 }, null)]
    [InlineData(new[] { 48, 48, 3, 3, 1 }, null)]
    public void Fused_repvgg_is_told_from_fused_mobileone_by_its_first_blocks_kernel(int[] first, string? family)
    {
        var shapes = Map(("stem.reparam_conv.weight", [48, 3, 3, 3]), ("stages.0.0.reparam_conv.weight", first));
        Assert.Equal(family, ZooCheckpoint.DetectFamily(shapes));
    }

    [Fact]
    public void Fused_repvgg_needs_both_its_stem_and_its_first_block()
    {
        Assert.Null(ZooCheckpoint.DetectFamily(Map(("stages.0.0.reparam_conv.weight", [48, 48, 3, 3]))));
        Assert.Null(ZooCheckpoint.DetectFamily(Map(("stem.reparam_conv.weight", [48, 3, 3, 3]))));
    }

    [Fact]
    public void A_file_in_timms_names_is_used_as_it_is()
    {
        var file = new TensorFile([KeyValuePair.Create("stem.conv_kxk.conv.weight", Zeros(2, 1, 3, 3))]);
        var (named, layout) = ZooCheckpoint.InTimmNames(file);
        Assert.Same(file, named);
        Assert.Equal(KeyLayout.Timm, layout);
    }

    [Fact]
    public void A_file_in_the_official_names_is_renamed_and_left_unchanged()
    {
        var weight = Zeros(2, 1, 3, 3);
        var file = new TensorFile([KeyValuePair.Create("stage0.rbr_dense.conv.weight", weight), KeyValuePair.Create("linear.bias", Zeros(4))]);
        var (named, layout) = ZooCheckpoint.InTimmNames(file);
        Assert.Equal(KeyLayout.RepVggOfficial, layout);
        Assert.Equal(["stem.conv_kxk.conv.weight", "head.fc.bias"], named.Tensors.Keys);
        Assert.Same(weight, named.Tensors["stem.conv_kxk.conv.weight"]);
        Assert.Equal(["stage0.rbr_dense.conv.weight", "linear.bias"], file.Tensors.Keys);
    }

    [Fact]
    public void Two_official_keys_for_one_parameter_are_refused()
    {
        var file = new TensorFile([
            KeyValuePair.Create("stage0.rbr_dense.conv.weight", Zeros(2, 1, 3, 3)),
            KeyValuePair.Create("stem.conv_kxk.conv.weight", Zeros(2, 1, 3, 3)),
        ]);
        var ex = Assert.Throws<CheckpointException>(() => ZooCheckpoint.InTimmNames(file));
        Assert.Equal("(tensor file)", ex.FilePath);
        Assert.Equal("names the same parameter as another key ('stem.conv_kxk.conv.weight' in timm's names).", ex.Problem);
        Assert.Equal("stem.conv_kxk.conv.weight", ex.Key);

        Assert.Equal("x.pth", Assert.Throws<CheckpointException>(() => ZooCheckpoint.InTimmNames(file, "x.pth")).FilePath);
    }

    [Fact]
    public void A_file_of_no_known_family_is_refused_by_the_zoo_loader()
    {
        var file = new TensorFile([KeyValuePair.Create("features.0.weight", Zeros(2, 2))]);
        var ex = Assert.Throws<CheckpointException>(() => ZooCheckpoint.FromTensorFile(file, Path, CheckpointFormat.Safetensors));
        Assert.Equal("holds none of the model families this project knows (MobileOne, RepVGG, ResNet, MobileNet V1/V2 in timm's names).", ex.Problem);
        Assert.Null(ex.Key);
    }

    [Theory]
    [InlineData("resnet18", "fc.weight")]
    [InlineData("mobilenetv1_100", "classifier.weight")]
    [InlineData("mobilenetv2_035", "classifier.weight")]
    public void The_classifier_must_be_there(string name, string key)
    {
        var shapes = ShapesOf(name);
        shapes.Remove(key);
        var ex = Unmatched(shapes);
        Assert.Equal("is missing; the family's names require it.", ex.Problem);
        Assert.Equal(key, ex.Key);
    }

    [Fact]
    public void Repvgg_reads_its_first_convolution_from_the_branch_its_form_has()
    {
        var unfused = ShapesOf("repvgg_a0");
        unfused.Remove("stem.conv_kxk.conv.weight");
        Assert.Equal("stem.conv_kxk.conv.weight", Unmatched(unfused).Key);

        var fused = ShapesOf("repvgg_a0", fused: true);
        fused.Remove("head.fc.weight");
        Assert.Equal("head.fc.weight", Unmatched(fused).Key);
    }

    [Fact]
    public void No_input_channels_no_classes_and_wrong_ranks_are_refused_by_shape()
    {
        var shapes = ShapesOf("mobilenetv2_035");
        shapes["conv_stem.weight"] = [16, 0, 3, 3];
        var ex = Unmatched(shapes);
        Assert.Equal("has shape [16, 0, 3, 3]; expected a 4-d weight.", ex.Problem);
        Assert.Equal("conv_stem.weight", ex.Key);

        shapes = ShapesOf("resnet18");
        shapes["fc.weight"] = [0, 512];
        ex = Unmatched(shapes);
        Assert.Equal("has shape [0, 512]; expected a 2-d weight.", ex.Problem);
        Assert.Equal("fc.weight", ex.Key);

        shapes["fc.weight"] = [5, 512, 1];
        Assert.Equal("has shape [5, 512, 1]; expected a 2-d weight.", Unmatched(shapes).Problem);

        shapes = ShapesOf("mobilenetv2_035");
        shapes["conv_stem.weight"] = [16, 3, 3];
        ex = Unmatched(shapes);
        Assert.Equal("has shape [16, 3, 3]; expected a 4-d weight.", ex.Problem);
        Assert.Equal("conv_stem.weight", ex.Key);
    }

    [Fact]
    public void One_class_and_one_input_channel_are_enough_to_match()
    {
        var network = ModelRegistry.Get("mobilenetv2_035").Create(numClasses: 1, inChans: 1, seed: 2);
        var loaded = ZooCheckpoint.FromTensorFile(ModelCheckpoint.ToTensorFile(network, KeyLayout.Timm), Path, CheckpointFormat.PyTorch);
        var zoo = Assert.IsType<ZooNetwork>(loaded.Network);
        Assert.Equal(("mobilenetv2_035", 1, 1, false), (zoo.Architecture, zoo.NumClasses, zoo.InChans, loaded.Fused));
        Assert.Equal((Path, CheckpointFormat.PyTorch, KeyLayout.Timm), (loaded.Path, loaded.Format, loaded.Layout));
        Assert.Null(loaded.MobileOneInfo);
        AssertSameState(network, zoo);
    }

    [Fact]
    public void Official_repvgg_names_load_through_the_classifier_entry_point()
    {
        var network = ModelRegistry.Get("repvgg_a0").Create(numClasses: 2, fused: true, seed: 4);
        var file = ModelCheckpoint.ToTensorFile(network, KeyLayout.RepVggOfficial);
        var loaded = ModelCheckpoint.ClassifierFromTensorFile(file, Path, CheckpointFormat.Safetensors);
        Assert.Equal(("repvgg_a0", true, KeyLayout.RepVggOfficial), (loaded.Network.Architecture, loaded.Fused, loaded.Layout));
        AssertSameState(network, loaded.Network);
    }

    /// <summary>
    /// mobilenetv2_050 with one tensor removed and one reshaped: the differences are listed in the variant's order, then
    /// the unexpected names sorted; three in full, then a count of the rest.
    /// </summary>
    [Theory]
    [InlineData(new[] { "zz.a" }, "")]
    [InlineData(new[] { "zz.b", "zz.a" }, "; and 1 more")]
    [InlineData(new[] { "zz.c", "zz.b", "zz.a" }, "; and 2 more")]
    public void A_file_matching_no_variant_lists_three_differences_from_the_closest(string[] unexpected, string rest)
    {
        var expected = ModelRegistry.Get("mobilenetv2_050").ZooStateShapes(5, 3, fused: false);
        var shapes = ShapesOf("mobilenetv2_050");
        string removed = expected[2].Name, reshaped = expected[5].Name;
        int[] shape = expected[5].Shape;
        shapes.Remove(removed);
        shapes[reshaped] = [.. shape, 1];
        foreach (string key in unexpected)
        {
            shapes[key] = [1];
        }

        string listed = $"'{removed}' missing; '{reshaped}' is {Tensor.FormatShape([.. shape, 1])}, expected {Tensor.FormatShape(shape)}; 'zz.a' unexpected";
        Assert.Equal(
            $"is a mobilenetv2 checkpoint but matches no variant; the closest, mobilenetv2_050, differs in {2 + unexpected.Length} tensor(s): {listed}{rest}.",
            Unmatched(shapes).Problem);
    }

    [Fact]
    public void A_fused_file_matching_no_variant_says_it_is_fused()
    {
        var shapes = ShapesOf("repvgg_a0", fused: true);
        shapes["stages.1.0.reparam_conv.weight"] = [48, 48, 3, 3];
        var ex = Unmatched(shapes);
        // RepVGG-A0's second stage widens 48 channels to 96 (128 x 0.75).
        Assert.Equal("is a repvgg checkpoint (fused) but matches no variant; the closest, repvgg_a0, differs in 1 tensor(s): 'stages.1.0.reparam_conv.weight' is [48, 48, 3, 3], expected [96, 48, 3, 3].", ex.Problem);
    }
}
