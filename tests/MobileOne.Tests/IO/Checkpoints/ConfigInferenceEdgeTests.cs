using MobileOne.IO;
using MobileOne.IO.Checkpoints;
using MobileOne.Models;

namespace MobileOne.Tests.IO.Checkpoints;

/// <summary>
/// The architecture read off a checkpoint's shapes, on shape maps written here (no tensors): the published variants'
/// names, k from the first block's branches, SE from the trailing units, and each refusal at its exact edge, above all
/// the weight budget at exactly the values the file holds and one less (the needed counts are worked out by hand in the
/// comments). Aimed, from the code, at what the model-level tests cannot detect, for the Stryker runs of
/// IO/Checkpoints/ConfigInference.cs (docs/reliability.md).
/// </summary>
public sealed class ConfigInferenceEdgeTests
{
    private const string Path = "model.safetensors";

    /// <summary>
    /// Widths 0.25 of MobileOne's base: stem 16 (from 2 input channels), stages 16, 32, 64, 128 with 1, 2, 2, 1 units,
    /// 7 classes. Its convolution and classifier weights, per stage (out x in/groups x 3 x 3 for the depthwise blocks,
    /// out x in for the pointwise ones):
    /// stem 16*2*9 = 288; stage 0: 16*9 + 16*16 = 400; stage 1: 16*9 + 32*16 + 32*9 + 32*32 = 1968;
    /// stage 2: 32*9 + 64*32 + 64*9 + 64*64 = 7008; stage 3: 64*9 + 128*64 = 8768; head 7*128 = 896.
    /// Fused: 19,328 in all. Train-time with k = 2 (the stem always has one branch): 288 + 2*18,144 + 896 = 37,472.
    /// </summary>
    private static MobileOneConfig Small(int k = 1, int[]? units = null) =>
        MobileOneConfig.FromWidths("custom", [0.25, 0.25, 0.25, 0.25], k, units ?? [1, 2, 2, 1], numClasses: 7, inChans: 2);

    private const string SmallDescription = "stem 16, units [1,2,2,1], channels [16,32,64,128], SE units [0,0,0,0]";

    /// <summary>Only the convolution kernels (all k branches of each train-time block) and the classifier, in timm's names.</summary>
    private static Dictionary<string, int[]> ConvShapes(MobileOneConfig config, bool fused)
    {
        var shapes = new Dictionary<string, int[]>(StringComparer.Ordinal)
        {
            [fused ? "stem.reparam_conv.weight" : "stem.conv_kxk.0.conv.weight"] = [config.StemChannels, config.InChans, 3, 3],
        };
        foreach (var (stage, index, spec) in config.StageBlocks())
        {
            int[] kernel = [spec.OutChannels, spec.InChannels / spec.Groups, spec.KernelSize, spec.KernelSize];
            if (fused)
            {
                shapes[$"stages.{stage}.{index}.reparam_conv.weight"] = kernel;
            }
            else
            {
                for (int b = 0; b < spec.NumConvBranches; b++)
                {
                    shapes[$"stages.{stage}.{index}.conv_kxk.{b}.conv.weight"] = kernel;
                }
            }
        }

        shapes["head.fc.weight"] = [config.NumClasses, config.FeatureChannels];
        return shapes;
    }

    private static MobileOneConfig Infer(Dictionary<string, int[]> shapes, bool fused) => ConfigInference.Infer(shapes, fused, Path);

    private static CheckpointException Refused(Dictionary<string, int[]> shapes, bool fused)
    {
        var ex = Assert.Throws<CheckpointException>(() => ConfigInference.Infer(shapes, fused, Path));
        Assert.Equal(Path, ex.FilePath);
        return ex;
    }

    [Fact]
    public void A_fused_file_holding_exactly_the_weights_the_network_needs_is_accepted()
    {
        var config = Infer(ConvShapes(Small(), fused: true), fused: true);
        Assert.Equal($"custom: {SmallDescription}, k=1, classes 7, in_chans 2", config.ToString());
    }

    [Fact]
    public void A_fused_file_one_value_short_of_what_its_shapes_declare_is_refused_naming_the_widest_stage()
    {
        // The classifier declares 7 x 128 but holds 7 x 1; 888 values elsewhere bring the file to 19,327, one short.
        var shapes = ConvShapes(Small(), fused: true);
        shapes["head.fc.weight"] = [7, 1];
        shapes["extra"] = [888];
        var ex = Refused(shapes, fused: true);
        Assert.Equal(
            $"declares a network (custom: {SmallDescription}, k=1, classes 7, in_chans 2) whose convolution and classifier weights alone need 19328 values, but the file holds only 19327; refused before building it.",
            ex.Problem);
        Assert.Equal("stages.3.1.reparam_conv.weight", ex.Key); // stage 3's 8,768 are the most

        shapes["extra"] = [889];
        Assert.Equal(7, Infer(shapes, fused: true).NumClasses);
    }

    [Fact]
    public void A_train_time_file_needs_every_branch_of_every_block_but_one_for_the_stem()
    {
        var shapes = ConvShapes(Small(k: 2), fused: false);
        Assert.Equal($"custom: {SmallDescription}, k=2, classes 7, in_chans 2", Infer(shapes, fused: false).ToString());

        shapes["head.fc.weight"] = [7, 1];
        shapes["extra"] = [888];
        var ex = Refused(shapes, fused: false);
        Assert.Equal(
            $"declares a network (custom: {SmallDescription}, k=2, classes 7, in_chans 2) whose convolution and classifier weights alone need 37472 values, but the file holds only 37471; refused before building it.",
            ex.Problem);
        Assert.Equal("stages.3.1.conv_kxk.0.conv.weight", ex.Key);
    }

    [Fact]
    public void Shapes_of_the_published_variants_are_named_after_them()
    {
        Assert.Equal(
            "s0: stem 48, units [2,8,10,1], channels [48,128,256,1024], SE units [0,0,0,0], k=4, classes 1000, in_chans 3",
            Infer(ConvShapes(MobileOneConfig.S0, fused: false), fused: false).ToString());

        // A fused file cannot tell k: S0's shapes are S0's whatever k was.
        Assert.Equal(
            "s0: stem 48, units [2,8,10,1], channels [48,128,256,1024], SE units [0,0,0,0], k=1, classes 1000, in_chans 3",
            Infer(ConvShapes(MobileOneConfig.S0, fused: true), fused: true).ToString());

        // A train-time file can: S0's widths with three branches are not S0.
        Assert.Equal("custom", Infer(ConvShapes(MobileOneConfig.S0 with { NumConvBranches = 3 }, fused: false), fused: false).Name);

        var s4 = ConvShapes(MobileOneConfig.S4, fused: true);
        foreach (var (stage, index, spec) in MobileOneConfig.S4.StageBlocks().Where(b => b.Spec.SeChannels > 0))
        {
            s4[$"stages.{stage}.{index}.attn.fc1.weight"] = [spec.SeChannels, spec.OutChannels, 1, 1];
        }

        var inferred = Infer(s4, fused: true);
        Assert.Equal("s4", inferred.Name);
        Assert.Equal([0, 0, 5, 1], inferred.SeUnits);
    }

    [Fact]
    public void The_stem_must_be_there_with_rank_four_and_no_empty_dimension()
    {
        var fused = ConvShapes(Small(), fused: true);
        fused.Remove("stem.reparam_conv.weight");
        var ex = Refused(fused, fused: true);
        Assert.Equal("is missing; cannot infer the MobileOne configuration without it.", ex.Problem);
        Assert.Equal("stem.reparam_conv.weight", ex.Key);

        var unfused = ConvShapes(Small(k: 2), fused: false);
        unfused.Remove("stem.conv_kxk.0.conv.weight");
        Assert.Equal("stem.conv_kxk.0.conv.weight", Refused(unfused, fused: false).Key);

        fused = ConvShapes(Small(), fused: true);
        fused["stem.reparam_conv.weight"] = [16, 2, 3];
        ex = Refused(fused, fused: true);
        Assert.Equal("has shape [16, 2, 3]; expected a non-empty tensor of rank 4.", ex.Problem);
        Assert.Equal("stem.reparam_conv.weight", ex.Key);

        fused["stem.reparam_conv.weight"] = [16, 0, 3, 3];
        Assert.Equal("has shape [16, 0, 3, 3]; expected a non-empty tensor of rank 4.", Refused(fused, fused: true).Problem);

        // One input channel is the smallest there is (the weights needed shrink with it: 16*1*9 for the stem).
        fused["stem.reparam_conv.weight"] = [16, 1, 3, 3];
        Assert.Equal(1, Infer(fused, fused: true).InChans);
    }

    [Fact]
    public void K_is_the_number_of_consecutive_branches_of_the_first_block_and_at_least_one()
    {
        var shapes = ConvShapes(Small(k: 3), fused: false);
        Assert.Equal(3, Infer(shapes, fused: false).NumConvBranches);

        shapes.Remove("stages.0.0.conv_kxk.0.conv.weight");
        var ex = Refused(shapes, fused: false);
        Assert.Equal("is missing the first stage's conv branches.", ex.Problem);
        Assert.Equal("stages.0.0.conv_kxk.0.conv.weight", ex.Key);
    }

    [Theory]
    [InlineData("stages.4.0.reparam_conv.weight", "4")]
    [InlineData("stages.99999999999.0.bn.weight", "99999999999")]
    public void A_stage_index_beyond_the_fourth_stage_is_refused(string key, string index)
    {
        var shapes = ConvShapes(Small(), fused: true);
        shapes[key] = [1, 1, 1, 1];
        var ex = Refused(shapes, fused: true);
        Assert.Equal($"belongs to stage index {index}, but MobileOne has 4 stages (0 to 3).", ex.Problem);
        Assert.Equal(key, ex.Key);
    }

    [Fact]
    public void A_block_index_must_be_below_the_files_tensor_count()
    {
        // 14 kernels (stem, 12 blocks, classifier) and the added key: 15 tensors.
        var shapes = ConvShapes(Small(), fused: true);
        shapes["stages.0.15.bn.weight"] = [16];
        var ex = Refused(shapes, fused: true);
        Assert.Equal("has block index 15, but the file holds only 15 tensors and every block needs at least one.", ex.Problem);
        Assert.Equal("stages.0.15.bn.weight", ex.Key);

        // Index 14 passes that check; stage 0 then has 15 blocks, an odd count.
        shapes.Remove("stages.0.15.bn.weight");
        shapes["stages.0.14.bn.weight"] = [16];
        ex = Refused(shapes, fused: true);
        Assert.Equal("stage 1 has 15 blocks; MobileOne stages hold depthwise+pointwise pairs.", ex.Problem);
        Assert.Equal("stages.0.14.reparam_conv.weight", ex.Key);
    }

    [Fact]
    public void A_stage_without_blocks_or_with_an_odd_number_of_them_is_refused()
    {
        var shapes = ConvShapes(Small(), fused: true);
        shapes.Remove("stages.2.0.reparam_conv.weight");
        shapes.Remove("stages.2.1.reparam_conv.weight");
        shapes.Remove("stages.2.2.reparam_conv.weight");
        shapes.Remove("stages.2.3.reparam_conv.weight");
        var ex = Refused(shapes, fused: true);
        Assert.Equal("has no blocks for stage 3.", ex.Problem);
        Assert.Equal("stages.2.0.reparam_conv.weight", ex.Key);

        shapes = ConvShapes(Small(k: 2), fused: false);
        shapes.Remove("stages.1.3.conv_kxk.0.conv.weight");
        shapes.Remove("stages.1.3.conv_kxk.1.conv.weight");
        ex = Refused(shapes, fused: false);
        Assert.Equal("stage 2 has 3 blocks; MobileOne stages hold depthwise+pointwise pairs.", ex.Problem);
        Assert.Equal("stages.1.2.conv_kxk.0.conv.weight", ex.Key);
    }

    [Fact]
    public void A_stages_width_is_read_from_its_last_block_which_must_have_a_kernel()
    {
        var shapes = ConvShapes(Small(), fused: true);
        shapes["stages.1.1.reparam_conv.weight"] = [99, 16, 1, 1]; // the first pointwise kernel does not decide (the load checks it)
        Assert.Equal([16, 32, 64, 128], Infer(shapes, fused: true).StageChannels);

        shapes.Remove("stages.1.3.reparam_conv.weight");
        shapes["stages.1.3.bn.weight"] = [32];
        var ex = Refused(shapes, fused: true);
        Assert.Equal("is missing; cannot infer the MobileOne configuration without it.", ex.Problem);
        Assert.Equal("stages.1.3.reparam_conv.weight", ex.Key);

        shapes["stages.1.3.reparam_conv.weight"] = [0, 32, 1, 1];
        ex = Refused(shapes, fused: true);
        Assert.Equal("has shape [0, 32, 1, 1]; expected a non-empty tensor of rank 4.", ex.Problem);
        Assert.Equal("stages.1.3.reparam_conv.weight", ex.Key);
    }

    [Theory]
    [InlineData(new[] { 4 }, 1)] // the last unit of stage 1's three
    [InlineData(new[] { 2, 4 }, 2)]
    [InlineData(new[] { 0, 2, 4 }, 3)]
    [InlineData(new int[0], 0)]
    public void Squeeze_excite_units_are_counted_from_the_end_of_a_stage(int[] blocks, int seUnits)
    {
        var shapes = ConvShapes(Small(units: [1, 3, 2, 1]), fused: true);
        foreach (int block in blocks)
        {
            shapes[$"stages.1.{block}.attn.fc1.weight"] = [2, 32, 1, 1];
        }

        Assert.Equal([0, seUnits, 0, 0], Infer(shapes, fused: true).SeUnits);
    }

    [Theory]
    [InlineData(new[] { 0, 4 }, 1)] // unit 1 has SE, unit 2 does not, unit 3 does
    [InlineData(new[] { 2 }, 2)] // unit 2 has SE, the last unit does not
    public void Squeeze_excite_before_a_unit_without_it_is_refused(int[] blocks, int unit)
    {
        var shapes = ConvShapes(Small(units: [1, 3, 2, 1]), fused: true);
        foreach (int block in blocks)
        {
            shapes[$"stages.1.{block}.attn.fc1.weight"] = [2, 32, 1, 1];
        }

        var ex = Refused(shapes, fused: true);
        Assert.Equal($"squeeze-excite in unit {unit} of stage 2 is not part of the trailing SE units MobileOne allows.", ex.Problem);
        Assert.Equal($"stages.1.{2 * (unit - 1)}.attn.fc1.weight", ex.Key);
    }

    /// <summary>Counting stops at the stage's first unit: a name one unit before it (index -2, no block's) is not counted.</summary>
    [Fact]
    public void Squeeze_excite_is_counted_over_the_stages_units_only()
    {
        var shapes = ConvShapes(Small(), fused: true);
        shapes["stages.3.0.attn.fc1.weight"] = [8, 64, 1, 1];
        shapes["stages.3.-2.attn.fc1.weight"] = [8, 64, 1, 1];
        Assert.Equal([0, 0, 0, 1], Infer(shapes, fused: true).SeUnits);
    }

    [Fact]
    public void The_classifier_must_be_there_with_rank_two()
    {
        var shapes = ConvShapes(Small(), fused: true);
        shapes["head.fc.weight"] = [7, 128, 1];
        var ex = Refused(shapes, fused: true);
        Assert.Equal("has shape [7, 128, 1]; expected a non-empty tensor of rank 2.", ex.Problem);
        Assert.Equal("head.fc.weight", ex.Key);

        shapes.Remove("head.fc.weight");
        ex = Refused(shapes, fused: true);
        Assert.Equal("is missing; cannot infer the MobileOne configuration without it.", ex.Problem);
        Assert.Equal("head.fc.weight", ex.Key);
    }

    [Fact]
    public void The_minimum_weights_are_the_kernels_and_the_classifier()
    {
        Assert.Equal(19328.0, ConfigInference.MinimumWeights(Small(), fused: true));
        Assert.Equal(37472.0, ConfigInference.MinimumWeights(Small(k: 2), fused: false));
        Assert.Equal(19328.0, ConfigInference.MinimumWeights(Small(k: 2), fused: true));
    }
}
