using MobileOne.Inference;
using MobileOne.IO.Checkpoints;
using MobileOne.Models;
using MobileOne.Reparam;
using MobileOne.Tensors;
using MobileOne.Tests.Models;

namespace MobileOne.Tests.Inference;

/// <summary>
/// The backbone-features API (timm's features_only): the stage outputs at strides 4, 8, 16, 32 of the fused model on
/// the engine equal the train-time network's own eval forward, the train-time graph on the engine and timm's
/// float64 feature maps, with shapes [N, C_stage, ceil(H / stride), ceil(W / stride)].
/// </summary>
public class FeatureExtractorTests : IClassFixture<ReferenceTensors>
{
    private static readonly string[] StageModules = ["stages.0", "stages.1", "stages.2", "stages.3"];

    private readonly ReferenceTensors refs;

    public FeatureExtractorTests(ReferenceTensors refs)
    {
        this.refs = refs;
    }

    [Fact]
    public void Fused_features_on_the_engine_match_the_unfused_network_and_timm()
    {
        var network = ModelCheckpoint.Load(Fixtures.Path("mobileone_s0_timm.safetensors")).Network;
        var fused = Reparameterizer.Fuse(network);
        var input = refs["input_64"];
        var own = network.Forward(input, withFeatures: true).Features.Skip(1).Select(f => f.Value).ToArray();

        using var fusedBackbone = FeatureExtractor.Compile(fused, new InferenceOptions { Threads = 2 });
        using var unfusedBackbone = FeatureExtractor.Compile(network, new InferenceOptions { Threads = 2 });
        Assert.Equal(StageModules, fusedBackbone.Features.Select(f => f.Module));
        Assert.Equal([4, 8, 16, 32], fusedBackbone.Features.Select(f => f.Stride));
        Assert.Equal([48, 128, 256, 1024], fusedBackbone.Features.Select(f => f.Channels));

        var fusedMaps = fusedBackbone.Run(input);
        var unfusedMaps = unfusedBackbone.Run(input);
        Assert.Equal(4, fusedMaps.Count);
        for (int i = 0; i < 4; i++)
        {
            int stride = fusedBackbone.Features[i].Stride;
            Assert.Equal([2, fusedBackbone.Features[i].Channels, 64 / stride, 64 / stride], fusedMaps[i].Shape);
            AssertMapsClose(own[i], unfusedMaps[i], $"unfused engine vs own forward, {StageModules[i]}");
            AssertMapsClose(refs[$"timm.feature_64.{StageModules[i]}"], unfusedMaps[i], $"unfused engine vs timm, {StageModules[i]}");
            AssertMapsClose(own[i], fusedMaps[i], $"fused engine vs own forward, {StageModules[i]}");
            AssertMapsClose(unfusedMaps[i], fusedMaps[i], $"fused vs unfused engine, {StageModules[i]}");
            AssertMapsClose(refs[$"timm.feature_64.{StageModules[i]}"], fusedMaps[i], $"fused engine vs timm, {StageModules[i]}");
        }
    }

    [Fact]
    public void Odd_sizes_give_ceil_of_size_over_stride_and_fused_equals_unfused()
    {
        var network = MobileOneNetwork.Create(MobileOneConfig.Parse("units=1/2/2/1,widths=0.5/0.5/0.5/0.5,k=2,se=0/0/1/1,classes=10"));
        WeightInit.Initialize(network, seed: 3);
        WeightInit.RandomizeBatchNorm(network, seed: 4);
        var fused = Reparameterizer.Fuse(network);
        var rng = new Random(5);
        var input = new Tensor(3, 3, 45, 70);
        for (int i = 0; i < input.Data.Length; i++)
        {
            input.Data[i] = (float)(rng.NextDouble() * 2 - 1);
        }

        var own = network.Forward(input, withFeatures: true).Features.Skip(1).Select(f => f.Value).ToArray();
        using var backbone = FeatureExtractor.Compile(fused);
        var maps = backbone.Run(input);
        for (int i = 0; i < 4; i++)
        {
            int stride = 4 << i;
            Assert.Equal([3, backbone.Features[i].Channels, (45 + stride - 1) / stride, (70 + stride - 1) / stride], maps[i].Shape);
            AssertMapsClose(own[i], maps[i], $"fused engine vs own forward, stride {stride}");
        }
    }

    [Fact]
    public void Strides_select_the_maps_and_an_unknown_stride_is_refused_by_name()
    {
        var network = MobileOneNetwork.Create(MobileOneConfig.S0, fused: true);
        Assert.Equal([2, 4, 8, 16, 32], network.FeatureInfo().Select(f => f.Stride));
        Assert.Equal(["stem", "stages.0", "stages.1", "stages.2", "stages.3"], network.FeatureInfo().Select(f => f.Module));

        using var backbone = FeatureExtractor.Compile(network, strides: [16, 2]);
        Assert.Equal(["stem", "stages.2"], backbone.Features.Select(f => f.Module));
        Assert.Equal([2, 16], backbone.Features.Select(f => f.Stride));
        var maps = backbone.Run(new Tensor(1, 3, 32, 32));
        Assert.Equal([1, 48, 16, 16], maps[0].Shape);
        Assert.Equal([1, 256, 2, 2], maps[1].Shape);

        // A 32 x 32 input has a 1 x 1 map at stride 32: still NCHW.
        using var deepest = FeatureExtractor.Compile(network, strides: [32]);
        Assert.Equal([1, 1024, 1, 1], deepest.Run(new Tensor(1, 3, 32, 32))[0].Shape);

        var error = Assert.Throws<ArgumentException>(() => FeatureExtractor.Compile(network, strides: [64]));
        Assert.StartsWith("The network has no feature map at stride 64; its strides are 2, 4, 8, 16, 32.", error.Message);
    }

    /// <summary>
    /// Any two float32 evaluations (engine fused or unfused, the network's own forward) or one against timm's float64:
    /// different summation orders and the float32 fold add up through the blocks before a stage end. Measured on the
    /// S0 fixture, relative to the map's largest magnitude: up to 6e-7 at stages.0, 4e-6 at stages.1, 1.4e-4 at
    /// stages.2 (unfused engine vs own forward; 7e-5 fused engine vs timm), 9e-5 at stages.3; the logits' 1e-4
    /// bound of ReferenceParityTests would be too tight for the deep maps, so they get 5e-4.
    /// </summary>
    private static void AssertMapsClose(Tensor expected, Tensor actual, string what)
    {
        Assert.Equal(expected.Shape, actual.Shape);
        double scale = Reference.MaxAbs(expected.Data);
        double diff = Reference.MaxAbsDiff(actual.Data, expected.Data);
        Assert.True(diff <= 5e-4 * scale, $"{what}: max diff {diff:e3} > 5e-4 x {scale:g4}");
    }
}
