using MobileOne.IO;
using MobileOne.IO.Checkpoints;
using MobileOne.IO.Safetensors;
using MobileOne.Models;
using MobileOne.Reparam;
using MobileOne.Tensors;

namespace MobileOne.Tests.Models;

/// <summary>Reads the reference tensors once for the whole class.</summary>
public sealed class ReferenceTensors
{
    public TensorFile File { get; } = SafetensorsReader.Read(Fixtures.Path("mobileone_s0_reference.safetensors"));

    public Tensor this[string key] => File.Tensors[key].ToTensor();
}

/// <summary>
/// Parity with the PyTorch references (timm 1.0.29 and Apple's mobileone.py, float64 math): logits at 224
/// and 64, every stage's feature map, and the fused weights both libraries produced.
/// </summary>
public class ReferenceParityTests : IClassFixture<ReferenceTensors>
{
    private const double Tolerance = 1e-4; // of the reference's largest magnitude, as the issue states

    private readonly ReferenceTensors refs;

    public ReferenceParityTests(ReferenceTensors refs)
    {
        this.refs = refs;
    }

    public static TheoryData<string, string> Checkpoints => new()
    {
        { "mobileone_s0_timm.safetensors", "timm" },
        { "mobileone_s0_apple_unfused.pth.tar", "apple" },
    };

    [Theory]
    [MemberData(nameof(Checkpoints))]
    public void Unfused_logits_at_224_match_the_float64_reference(string file, string prefix)
    {
        var model = ModelCheckpoint.Load(Fixtures.Path(file)).Network;
        Assert.False(model.IsFused);
        AssertClose(refs[$"{prefix}.logits_unfused_224"], model.Forward(refs["input_224"]), $"{prefix} logits 224");
    }

    [Theory]
    [MemberData(nameof(Checkpoints))]
    public void Unfused_logits_and_every_stage_at_64_match_the_float64_reference(string file, string prefix)
    {
        var model = ModelCheckpoint.Load(Fixtures.Path(file)).Network;
        var output = model.Forward(refs["input_64"], withFeatures: true);
        AssertClose(refs[$"{prefix}.logits_unfused_64"], output.Logits, $"{prefix} logits 64");
        string[] names = prefix == "timm"
            ? ["timm.feature_64.stem", "timm.feature_64.stages.0", "timm.feature_64.stages.1", "timm.feature_64.stages.2", "timm.feature_64.stages.3"]
            : ["apple.feature_64.stage0", "apple.feature_64.stage1", "apple.feature_64.stage2", "apple.feature_64.stage3", "apple.feature_64.stage4"];
        Assert.Equal(names.Length, output.Features.Count);
        for (int i = 0; i < names.Length; i++)
        {
            AssertClose(refs[names[i]], output.Features[i].Value, names[i]);
        }
    }

    [Theory]
    [InlineData("mobileone_s0_timm.safetensors", "mobileone_s0_timm_fused.safetensors", "timm")]
    [InlineData("mobileone_s0_apple_unfused.pth.tar", "mobileone_s0_apple_unfused_fused.pth.tar", "apple")]
    public void Our_fused_weights_match_the_reference_fused_checkpoint(string unfused, string referenceFused, string prefix)
    {
        var ours = Reparameterizer.Fuse(ModelCheckpoint.Load(Fixtures.Path(unfused)).Network);
        var theirs = ModelCheckpoint.Load(Fixtures.Path(referenceFused));
        Assert.True(theirs.Network.IsFused);
        Assert.Equal(prefix == "timm" ? KeyLayout.Timm : KeyLayout.Apple, theirs.Info.Scheme.Layout);
        var expected = theirs.Network.State().ToDictionary(e => e.Name, e => e.Value);
        int compared = 0;
        foreach (var entry in ours.State())
        {
            var reference = expected[entry.Name];
            Assert.Equal(reference.Shape, entry.Value.Shape);
            double diff = Reference.MaxAbsDiff(entry.Value.Data, reference.Data);
            Assert.True(diff <= 1e-5, $"{entry.Name}: max |ours - {prefix}| = {diff}");
            compared++;
        }

        Assert.Equal(expected.Count, compared);
    }

    [Theory]
    [MemberData(nameof(Checkpoints))]
    public void Our_fused_logits_match_the_references(string file, string prefix)
    {
        var fused = Reparameterizer.Fuse(ModelCheckpoint.Load(Fixtures.Path(file)).Network);
        var logits = fused.Forward(refs["input_224"]);
        AssertClose(refs[$"{prefix}.logits_fused_224"], logits, $"{prefix} fused logits vs reference fused");
        AssertClose(refs[$"{prefix}.logits_unfused_224"], logits, $"{prefix} fused logits vs reference unfused");
    }

    [Fact]
    public void Reference_fused_checkpoints_run_to_the_reference_fused_logits()
    {
        foreach (var (file, prefix) in new[] { ("mobileone_s0_timm_fused.safetensors", "timm"), ("mobileone_s0_apple_unfused_fused.pth.tar", "apple") })
        {
            var model = ModelCheckpoint.Load(Fixtures.Path(file)).Network;
            AssertClose(refs[$"{prefix}.logits_fused_224"], model.Forward(refs["input_224"]), file);
        }
    }

    internal static void AssertClose(Tensor expected, Tensor actual, string what)
    {
        Assert.Equal(expected.Shape, actual.Shape);
        double scale = Reference.MaxAbs(expected.Data);
        double diff = Reference.MaxAbsDiff(actual.Data, expected.Data);
        Assert.True(diff <= Tolerance * scale, $"{what}: max diff {diff:e3} > {Tolerance} x {scale:g4}");
    }
}
