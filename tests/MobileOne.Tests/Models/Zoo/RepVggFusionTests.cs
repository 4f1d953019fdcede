using MobileOne.Inference;
using MobileOne.IO.Checkpoints;
using MobileOne.Models;
using MobileOne.Models.Zoo;
using MobileOne.Reparam;
using MobileOne.Tests.Inference;

namespace MobileOne.Tests.Models.Zoo;

/// <summary>RepVGG's reparameterization against timm's own (repvgg_a0_timm_fused is timm's reparameterize_model of repvgg_a0_timm).</summary>
public class RepVggFusionTests
{
    [Fact]
    public void Fusing_the_timm_checkpoint_gives_timms_fused_weights_to_1e5()
    {
        var trainTime = ModelCheckpoint.LoadClassifier(Zoo("repvgg_a0_timm.safetensors")).Network;
        var timmFused = ModelCheckpoint.LoadClassifier(Zoo("repvgg_a0_timm_fused.safetensors")).Network;
        var ours = Reparameterizer.Fuse(trainTime);
        Assert.True(ours.IsFused);
        var expected = timmFused.State().ToDictionary(e => e.Name, e => e.Value.Data);
        Assert.Equal(expected.Keys.Order(), ours.State().Select(e => e.Name).Order());
        foreach (var e in ours.State())
        {
            double diff = Reference.MaxAbsDiff(e.Value.Data, expected[e.Name].Select(v => (double)v).ToArray());
            Assert.True(diff <= 1e-5, $"{e.Name}: max |ours - timm| = {diff:e2}");
        }
    }

    [Fact]
    public void A_fused_random_network_computes_what_its_branches_compute()
    {
        var network = (ZooNetwork)ModelRegistry.Get("repvgg_a0").Create(numClasses: 10, seed: 4);
        var rng = new Random(5);
        foreach (var bn in network.Operations.OfType<BatchNormOp>())
        {
            for (int c = 0; c < bn.Bn.Channels; c++)
            {
                bn.Bn.RunningMean.Data[c] = (float)(0.2 * (rng.NextDouble() - 0.5));
                bn.Bn.RunningVar.Data[c] = (float)(0.5 + rng.NextDouble());
            }
        }

        var input = Tensors.Tensor.Uninitialized(2, 3, 64, 64);
        for (int i = 0; i < input.Length; i++)
        {
            input.Data[i] = (float)(rng.NextDouble() - 0.5);
        }

        using var unfused = CompiledModel.Compile(network);
        using var fused = CompiledModel.Compile(Reparameterizer.Fuse(network));
        EngineTestSupport.AssertClose(unfused.Run(input).Data, fused.Run(input).Data, "fused vs branches");
        Assert.False(network.IsFused);
    }

    [Fact]
    public void Families_without_a_fused_form_are_refused()
    {
        var e = Assert.Throws<ArgumentException>(() => Reparameterizer.Fuse(ModelRegistry.Get("resnet18").Create()));
        Assert.Contains("resnet18 has no fused form", e.Message);
    }

    private static string Zoo(string name) => Fixtures.Path(Path.Combine("zoo", name));
}
