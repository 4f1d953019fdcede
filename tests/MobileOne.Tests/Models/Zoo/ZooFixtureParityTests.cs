using MobileOne.Inference;
using MobileOne.IO;
using MobileOne.IO.Checkpoints;
using MobileOne.IO.Safetensors;
using MobileOne.Kernels;
using MobileOne.Models.Zoo;
using MobileOne.Tests.Inference;

namespace MobileOne.Tests.Models.Zoo;

/// <summary>
/// The zoo networks against timm: the checkpoints of ../shared/fixtures/zoo (random weights, randomized BatchNorm,
/// fp16) load by name into the registry's networks, whose logits on the engine and on the training layers
/// (gradients off) match timm's float64 references. They exercise what MobileOne does not: a 7x7 stem, max pooling,
/// strided 1x1 shortcuts, residual adds after BatchNorm, ReLU6, inverted residuals.
/// </summary>
public sealed class ZooFixtureParityTests
{
    private static readonly Lazy<TensorFile> References = new(() => SafetensorsReader.Read(Zoo("zoo_reference.safetensors")));

    [Theory]
    [IsaData(IsaLevel.Avx512, "repvgg_a0_timm", "repvgg_a0")]
    [IsaData(IsaLevel.Avx512, "repvgg_a0_timm_fused", "repvgg_a0")]
    [IsaData(IsaLevel.Avx512, "resnet18_timm", "resnet18")]
    [IsaData(IsaLevel.Avx512, "mobilenetv2_100_timm", "mobilenetv2_100")]
    [IsaData(IsaLevel.Avx512, "mobilenetv1_100_timm", "mobilenetv1_100")]
    [IsaData(IsaLevel.Avx2, "repvgg_a0_timm", "repvgg_a0")]
    [IsaData(IsaLevel.Avx2, "resnet18_timm", "resnet18")]
    [IsaData(IsaLevel.Avx2, "mobilenetv2_100_timm", "mobilenetv2_100")]
    public void Timm_checkpoints_load_into_the_zoo_and_match_the_float64_reference_on_the_engine(IsaLevel isa, string fixture, string architecture)
    {
        var loaded = ModelCheckpoint.LoadClassifier(Zoo(fixture + ".safetensors"));
        var network = Assert.IsType<ZooNetwork>(loaded.Network);
        Assert.Equal(architecture, network.Architecture);
        Assert.Equal(fixture.EndsWith("_fused", StringComparison.Ordinal), network.IsFused);
        using var engine = CompiledModel.Compile(network.ToGraph(), new InferenceOptions { Isa = isa, Threads = 2 });
        var logits = engine.Run(Input());
        var expected = Expected(fixture);
        Assert.Equal(expected.Shape, logits.Shape);
        EngineTestSupport.AssertClose(expected.Data, logits.Data, $"{fixture} on {isa}");
    }

    [Theory]
    [InlineData("repvgg_a0_timm")]
    [InlineData("resnet18_timm")]
    [InlineData("mobilenetv2_100_timm")]
    [InlineData("mobilenetv1_100_timm")]
    public void The_training_layers_without_gradients_match_the_same_reference(string fixture)
    {
        var network = ModelCheckpoint.LoadClassifier(Zoo(fixture + ".safetensors")).Network;
        var logits = network.Forward(Input());
        EngineTestSupport.AssertClose(Expected(fixture).Data, logits.Data, fixture + " (training layers)");
    }

    /// <summary>
    /// DingXiaoH/RepVGG's own checkpoint (official names, torch.save, a different random model) loads, matches its
    /// reference, fuses to what repvgg_model_convert computes, and converts to timm's names and back unchanged.
    /// </summary>
    [Fact]
    public void The_official_repvgg_checkpoint_loads_fuses_and_round_trips_through_timms_names()
    {
        string path = Zoo("repvgg_a0_official.pth");
        var loaded = ModelCheckpoint.LoadClassifier(path);
        Assert.Equal(KeyLayout.RepVggOfficial, loaded.Layout);
        Assert.Equal("repvgg_a0", loaded.Network.Architecture);
        using (var engine = CompiledModel.Compile(loaded.Network))
        {
            EngineTestSupport.AssertClose(References.Value.Tensors["repvgg_a0_official.logits_224"].ToTensor().Data, engine.Run(Input()).Data, "official unfused");
        }

        using (var fused = CompiledModel.Compile(MobileOne.Reparam.Reparameterizer.Fuse(loaded.Network)))
        {
            EngineTestSupport.AssertClose(References.Value.Tensors["repvgg_a0_official.logits_fused_224"].ToTensor().Data, fused.Run(Input()).Data, "official fused");
        }

        var original = MobileOne.IO.PyTorch.PyTorchCheckpointReader.Read(path);
        var timm = ModelCheckpoint.ToTensorFile(loaded.Network, KeyLayout.Timm, DType.F16);
        Assert.Contains("stages.1.1.conv_kxk.conv.weight", timm.Tensors.Keys);
        var back = ModelCheckpoint.ToTensorFile(ModelCheckpoint.ClassifierFromTensorFile(timm, "timm", CheckpointFormat.Safetensors).Network, KeyLayout.RepVggOfficial, DType.F16);
        Assert.Equal(original.Tensors.Keys.Order(), back.Tensors.Keys.Order());
        foreach (var (key, tensor) in original.Tensors)
        {
            Assert.Equal(tensor.Shape, back.Tensors[key].Shape);
            if (DTypeInfo.IsFloatingPoint(tensor.DType))
            {
                Assert.Equal(tensor.ToTensor().Data, back.Tensors[key].ToTensor().Data);
            }
        }
    }

    /// <summary>Our ONNX export of each zoo checkpoint (RepVGG fused first, and as its branches) runs in ONNX Runtime to the same reference.</summary>
    [Theory]
    [InlineData("repvgg_a0_timm", true)]
    [InlineData("repvgg_a0_timm", false)]
    [InlineData("resnet18_timm", true)]
    [InlineData("mobilenetv2_100_timm", true)]
    [InlineData("mobilenetv1_100_timm", true)]
    public void The_onnx_export_runs_in_onnx_runtime_to_the_same_reference(string fixture, bool fuse)
    {
        var network = ModelCheckpoint.LoadClassifier(Zoo(fixture + ".safetensors")).Network;
        var model = MobileOne.IO.Onnx.OnnxExporter.Build(network, fuse: fuse);
        string form = model.MetadataProps.Single(p => p.Key == "form").Value;
        Assert.Equal(!network.Reparameterizable ? "plain" : fuse ? "fused" : "train-time", form);
        using var ort = MobileOne.Tests.IO.Onnx.OrtHarness.FromBytes(Google.Protobuf.MessageExtensions.ToByteArray(model));
        EngineTestSupport.AssertClose(Expected(fixture == "repvgg_a0_timm" && fuse ? "repvgg_a0_timm_fused" : fixture).Data, ort.Run(Input()).Data, $"{fixture} in ONNX Runtime");
    }

    private static Tensors.Tensor Input() => References.Value.Tensors["input_224"].ToTensor();

    private static Tensors.Tensor Expected(string fixture) =>
        References.Value.Tensors[fixture == "repvgg_a0_timm_fused" ? "repvgg_a0_timm.logits_fused_224" : fixture + ".logits_224"].ToTensor();

    private static string Zoo(string name) => Fixtures.Path(Path.Combine("zoo", name));
}
