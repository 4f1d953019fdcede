using System.Text.Json;
using MobileOne.IO;
using MobileOne.IO.Checkpoints;
using MobileOne.IO.Safetensors;
using MobileOne.Models;
using MobileOne.Nn;
using MobileOne.Reparam;
using MobileOne.Tensors;

namespace MobileOne.Tests.Models;

public sealed class BlockTensors
{
    public TensorFile File { get; } = SafetensorsReader.Read(Fixtures.Path("mobileone_blocks_train.safetensors"));
}

/// <summary>
/// The six single Apple MobileOneBlocks: eval-mode output, Apple's fused weights and fused output.
/// The references are float64 math; we compute in float32, so the tolerance is 1e-5 of the largest magnitude.
/// </summary>
public class BlockFixtureTests : IClassFixture<BlockTensors>
{
    private const double Tolerance = 1e-5;

    private readonly TensorFile file;

    public BlockFixtureTests(BlockTensors tensors)
    {
        file = tensors.File;
    }

    public static TheoryData<string> Blocks => new() { "dw_s1_k2", "dw_s2_k2", "pw_16to32_k2", "pw_32to32_k3_se", "dw_s1_k1_se", "stem_3to16_s2_k1" };

    [Theory]
    [MemberData(nameof(Blocks))]
    public void Eval_output_matches_the_reference(string name)
    {
        var block = LoadBlock(name, "before.");
        AssertClose(Get($"{name}.eval_output"), block.Forward(Get($"{name}.input")), $"{name} eval output");
    }

    [Theory]
    [MemberData(nameof(Blocks))]
    public void Fused_weights_and_output_match_Apples_reparameterization(string name)
    {
        var block = LoadBlock(name, "before.");
        var kernel = BlockFusion.Fuse(block);
        AssertClose(Get($"{name}.fused.reparam_conv.weight"), kernel.WeightTensor(), $"{name} fused weight");
        AssertClose(Get($"{name}.fused.reparam_conv.bias"), kernel.BiasTensor(), $"{name} fused bias");

        var fused = LoadBlock(name, "fused.", fused: true);
        AssertClose(Get($"{name}.fused_output"), fused.Forward(Get($"{name}.input")), $"{name} fused output (Apple's weights)");

        kernel.WeightTensor().Data.CopyTo(fused.ReparamConv!.Weight.Value.Data, 0);
        kernel.BiasTensor().Data.CopyTo(fused.ReparamConv.Bias!.Value.Data, 0);
        AssertClose(Get($"{name}.fused_output"), fused.Forward(Get($"{name}.input")), $"{name} fused output (our weights)");
    }

    private Tensor Get(string key) => file.Tensors[key].ToTensor();

    private MobileOneBlock LoadBlock(string name, string stage, bool fused = false)
    {
        using var meta = JsonDocument.Parse(file.Metadata[name]);
        var m = meta.RootElement;
        int outChannels = m.GetProperty("out_channels").GetInt32();
        int se = m.GetProperty("use_se").GetBoolean() ? file.Tensors[$"{name}.before.se.reduce.weight"].Shape[0] : 0;
        var spec = new BlockSpec(
            m.GetProperty("in_channels").GetInt32(), outChannels, m.GetProperty("kernel_size").GetInt32(),
            m.GetProperty("stride").GetInt32(), m.GetProperty("padding").GetInt32(), m.GetProperty("groups").GetInt32(),
            m.GetProperty("num_conv_branches").GetInt32(), se);
        var block = fused ? MobileOneBlock.CreateFused(spec) : MobileOneBlock.CreateTrainTime(spec);
        foreach (var entry in block.State())
        {
            // Apple's block-local names, through the stem mapping (stage0. <-> stem.).
            // The references ran one train-mode step first, so eval mode and fusion see the updated running statistics.
            string apple = KeyNames.TimmToApple("stem." + entry.Name)["stage0.".Length..];
            var stored = file.Tensors.TryGetValue($"{name}.after.{apple}", out var after) && stage == "before."
                ? after
                : file.Tensors[$"{name}.{stage}{apple}"];
            if (entry.Kind == StateKind.Counter)
            {
                entry.Value.Data[0] = stored.ToInt64()[0];
            }
            else
            {
                stored.ToTensor().Data.CopyTo(entry.Value.Data, 0);
            }
        }

        return block;
    }

    private static void AssertClose(Tensor expected, Tensor actual, string what)
    {
        Assert.Equal(expected.Shape, actual.Shape);
        double scale = Math.Max(1.0, Reference.MaxAbs(expected.Data));
        double diff = Reference.MaxAbsDiff(actual.Data, expected.Data);
        Assert.True(diff <= Tolerance * scale, $"{what}: max diff {diff:e3} > {Tolerance} x {scale:g4}");
    }
}
