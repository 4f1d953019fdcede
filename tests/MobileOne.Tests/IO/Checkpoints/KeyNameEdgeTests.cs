using MobileOne.IO.Checkpoints;

namespace MobileOne.Tests.IO.Checkpoints;

/// <summary>
/// The name mappings on strings written here: Apple's and DingXiaoH/RepVGG's names to timm's and back at the edges of
/// their stage patterns (anchors, leading zeros, the largest stage index, keys too short to hold a stage), and the key-
/// scheme detection from each kind of name alone, with its exact messages. Aimed, from the code, at what the model-
/// level tests cannot detect, for the Stryker runs of IO/Checkpoints/ (docs/reliability.md).
/// </summary>
public sealed class KeyNameEdgeTests
{
    private const string Mixed = "mixes Apple (stage0., linear.) and timm (stem., stages., head.fc.) parameter names";
    private const string NoNames = "has no MobileOne parameter names (expected timm's stem./stages./head.fc. or Apple's stage0..stage4./linear.)";
    private const string MixedFusion = "mixes fused (reparam_conv) and train-time (conv branches) blocks";
    private const string NoBlocks = "has neither train-time conv branches nor fused reparam_conv weights";

    [Theory]
    [InlineData("linear.bias", "head.fc.bias")]
    [InlineData("stage0.reparam_conv.weight", "stem.reparam_conv.weight")]
    [InlineData("stage10.3.rbr_conv.1.bn.weight", "stages.9.3.conv_kxk.1.bn.weight")]
    [InlineData("stage2.0.rbr_skip.running_mean", "stages.1.0.identity.running_mean")]
    [InlineData("stage4.1.se.reduce.weight", "stages.3.1.attn.fc1.weight")]
    [InlineData("stage2147483647.0.w", "stages.2147483646.0.w")] // the largest index int holds
    [InlineData("stage2147483648.0.w", "stage2147483648.0.w")] // beyond int: left as written
    [InlineData("stage01.0.w", "stage01.0.w")] // Apple never writes a leading zero
    [InlineData("xstage1.0.w", "xstage1.0.w")] // the stage must start the key
    [InlineData("stage1x0.w", "stage1x0.w")] // a dot ends the stage number
    [InlineData("stage1", "stage1")]
    [InlineData("extra.rbr_conv.w", "extra.conv_kxk.w")] // block parts are renamed wherever they are
    public void Apple_names_map_to_timms_at_the_edges_of_the_stage_pattern(string apple, string timm)
    {
        Assert.Equal(timm, KeyNames.AppleToTimm(apple));
        Assert.Equal(timm, KeyNames.ToTimm(apple, KeyLayout.Apple));
    }

    [Theory]
    [InlineData("head.fc.weight", "linear.weight")]
    [InlineData("stem.conv_scale.bn.bias", "stage0.rbr_scale.bn.bias")]
    [InlineData("stages.0.1.identity.num_batches_tracked", "stage1.1.rbr_skip.num_batches_tracked")]
    [InlineData("stages.12.0.attn.fc2.bias", "stage13.0.se.expand.bias")]
    [InlineData("stages.2147483646.0.w", "stage2147483647.0.w")] // the largest index whose successor int holds
    [InlineData("stages.2147483647.0.w", "stages.2147483647.0.w")] // its successor would overflow: left as written
    [InlineData("stages.99999999999.0.w", "stages.99999999999.0.w")]
    [InlineData("xstages.0.0.w", "xstages.0.0.w")]
    [InlineData("stagesX0.0.w", "stagesX0.0.w")] // the dot after "stages" is a dot
    [InlineData("stages..0.w", "stages..0.w")]
    public void Timm_names_map_to_apples_at_the_edges_of_the_stage_pattern(string timm, string apple)
    {
        Assert.Equal(apple, KeyNames.TimmToApple(timm));
        Assert.Equal(apple, KeyNames.ToLayout(timm, KeyLayout.Apple));
    }

    [Theory]
    [InlineData("linear.weight")]
    [InlineData("stage0.rbr_conv.0.conv.weight")]
    [InlineData("head.fc.weight")]
    public void The_timm_layout_leaves_every_name_as_it_is(string key)
    {
        Assert.Equal(key, KeyNames.ToTimm(key, KeyLayout.Timm));
        Assert.Equal(key, KeyNames.ToLayout(key, KeyLayout.Timm));
    }

    /// <summary>Each kind of name decides the layout alone; a second name, which says nothing about the layout, says fused or not.</summary>
    [Theory]
    [InlineData("stage0.bn.weight", "x.rbr_conv.0.w", KeyLayout.Apple, false)]
    [InlineData("linear.weight", "x.reparam_conv.weight", KeyLayout.Apple, true)]
    [InlineData("stage3.0.bn.weight", "x.conv_kxk.0.w", KeyLayout.Apple, false)]
    [InlineData("stem.bn.weight", "x.conv_kxk.0.w", KeyLayout.Timm, false)]
    [InlineData("head.fc.weight", "x.reparam_conv.weight", KeyLayout.Timm, true)]
    [InlineData("stages.0.0.bn.weight", "x.rbr_conv.0.w", KeyLayout.Timm, false)]
    public void One_name_of_a_kind_decides_the_layout(string layoutKey, string blockKey, KeyLayout layout, bool fused)
    {
        var scheme = KeyNames.Detect([layoutKey, blockKey], out string? problem);
        Assert.Null(problem);
        Assert.Equal(new KeyScheme(layout, fused), scheme);
    }

    [Theory]
    [InlineData(new[] { "stage0.a", "stem.a", "x.conv_kxk.0.w" }, Mixed)]
    [InlineData(new[] { "linear.a", "stages.1.0.a", "x.conv_kxk.0.w" }, Mixed)]
    [InlineData(new[] { "features.0.weight", "x.conv_kxk.0.w" }, NoNames)]
    [InlineData(new[] { "stage00.a", "stages0.a", "xstem.a", "head.fcx", "linear", "x.conv_kxk.0.w" }, NoNames)]
    [InlineData(new[] { "stem.a", "x.reparam_conv.w", "y.conv_kxk.0.w" }, MixedFusion)]
    [InlineData(new[] { "stage0.a", "x.reparam_conv.w", "y.rbr_conv.0.w" }, MixedFusion)]
    [InlineData(new[] { "stem.a", "x.reparam_convx", "y.conv_kxk0" }, NoBlocks)]
    [InlineData(new[] { "stage0.a" }, NoBlocks)]
    public void Names_that_are_neither_layout_or_mix_them_are_refused_with_the_reason(string[] keys, string reason)
    {
        KeyNames.Detect(keys, out string? problem);
        Assert.Equal(reason, problem);
    }

    [Fact]
    public void Mixed_layouts_are_reported_before_mixed_fusion()
    {
        KeyNames.Detect(["stage0.a", "stem.a", "x.reparam_conv.w", "y.conv_kxk.0.w"], out string? problem);
        Assert.Equal(Mixed, problem);
    }

    [Theory]
    [InlineData("linear.weight", "head.fc.weight")]
    [InlineData("stage0.rbr_dense.conv.weight", "stem.conv_kxk.conv.weight")]
    [InlineData("stage0.rbr_1x1.bn.running_var", "stem.conv_1x1.bn.running_var")]
    [InlineData("stage0.rbr_reparam.bias", "stem.reparam_conv.bias")]
    [InlineData("stage1.0.rbr_dense.bn.weight", "stages.0.0.conv_kxk.bn.weight")]
    [InlineData("stage2.3.rbr_identity.running_mean", "stages.1.3.identity.running_mean")]
    [InlineData("stage3.13.rbr_1x1.conv.weight", "stages.2.13.conv_1x1.conv.weight")]
    [InlineData("stage4.0.rbr_reparam.weight", "stages.3.0.reparam_conv.weight")]
    [InlineData("stage5.0.rbr_dense.conv.weight", "stage5.0.rbr_dense.conv.weight")] // RepVGG has four stages
    [InlineData("stage1x0.rbr_dense.conv.weight", "stage1x0.rbr_dense.conv.weight")]
    [InlineData("stage1", "stage1")] // too short to hold "stageN."
    [InlineData("stage1.", "stage1.")] // the shortest stage prefix, with no part after it
    [InlineData("stage0.bn.weight", "stage0.bn.weight")] // a stage key without a branch is left as written
    [InlineData("stage1.0.post_se.weight", "stage1.0.post_se.weight")]
    [InlineData("stem.conv_kxk.conv.weight", "stem.conv_kxk.conv.weight")]
    [InlineData("block1.0.rbr_dense.conv.weight", "block1.0.rbr_dense.conv.weight")] // a stage digit and dot, but not "stage"
    public void Official_repvgg_names_map_to_timms(string official, string timm)
    {
        Assert.Equal(timm, RepVggNames.ToTimm(official));
    }

    [Theory]
    [InlineData("head.fc.bias", "linear.bias")]
    [InlineData("stem.conv_kxk.conv.weight", "stage0.rbr_dense.conv.weight")]
    [InlineData("stem.reparam_conv.weight", "stage0.rbr_reparam.weight")]
    [InlineData("stages.0.0.conv_1x1.bn.weight", "stage1.0.rbr_1x1.bn.weight")]
    [InlineData("stages.1.2.identity.num_batches_tracked", "stage2.2.rbr_identity.num_batches_tracked")]
    [InlineData("stages.3.0.reparam_conv.bias", "stage4.0.rbr_reparam.bias")]
    [InlineData("stages.4.0.conv_kxk.conv.weight", "stages.4.0.conv_kxk.conv.weight")]
    [InlineData("stages.0x0.conv_kxk.conv.weight", "stages.0x0.conv_kxk.conv.weight")]
    [InlineData("stages.0", "stages.0")] // too short to hold "stages.N."
    [InlineData("stages.0.", "stages.0.")]
    [InlineData("stem.bn.weight", "stem.bn.weight")]
    [InlineData("stages.2.1.attn.fc1.weight", "stages.2.1.attn.fc1.weight")]
    [InlineData("linear.weight", "linear.weight")]
    [InlineData("blocks.0.0.conv_kxk.conv.weight", "blocks.0.0.conv_kxk.conv.weight")] // a stage digit and dot, but not "stages."
    public void Timm_repvgg_names_map_to_the_official_ones(string timm, string official)
    {
        Assert.Equal(official, RepVggNames.ToOfficial(timm));
    }

    [Theory]
    [InlineData(new[] { "stage0.rbr_dense.conv.weight" }, true)]
    [InlineData(new[] { "head.fc.weight", "stage0.rbr_reparam.weight" }, true)]
    [InlineData(new[] { "stage1.0.rbr_dense.conv.weight", "linear.weight" }, false)] // only the stem decides
    [InlineData(new[] { "stage0.rbr_1x1.conv.weight" }, false)]
    [InlineData(new[] { "stem.conv_kxk.conv.weight" }, false)]
    public void Official_names_are_recognised_by_the_stem(string[] keys, bool official)
    {
        Assert.Equal(official, RepVggNames.IsOfficial(keys));
    }
}
