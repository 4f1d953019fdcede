using System.Text.Json;
using MobileOne.IO;
using MobileOne.IO.Checkpoints;
using MobileOne.Models;
using MobileOne.Nn;
using MobileOne.Tensors;
using MobileOne.Tests.Models;
using Xunit.Abstractions;

namespace MobileOne.Tests.Nn;

/// <summary>
/// The six single Apple MobileOneBlocks of mobileone_blocks_train.safetensors in train mode: output, input gradient,
/// every parameter gradient and the running statistics after the step. The references are float64 math; we compute
/// in float32, so each tensor must match to <see cref="Tolerance"/> (1e-4) of its largest magnitude, or absolutely
/// below magnitude 1. Measured: at most 6e-7 relative for outputs, input gradients and most weight gradients; the worst
/// case is the 1x1 scale-branch weight gradient, which BatchNorm's scale invariance makes nearly zero by cancellation
/// (1.1e-5 absolute on values up to 0.055 built from terms of magnitude ~10).
/// </summary>
public class BlockTrainingFixtureTests : IClassFixture<BlockTensors>
{
    private const double Tolerance = 1e-4;

    private readonly TensorFile file;
    private readonly ITestOutputHelper log;

    public BlockTrainingFixtureTests(BlockTensors tensors, ITestOutputHelper log)
    {
        file = tensors.File;
        this.log = log;
    }

    public static TheoryData<string> Blocks => new() { "dw_s1_k2", "dw_s2_k2", "pw_16to32_k2", "pw_32to32_k3_se", "dw_s1_k1_se", "stem_3to16_s2_k1" };

    [Theory]
    [MemberData(nameof(Blocks))]
    public void Train_mode_step_matches_the_reference(string name)
    {
        var block = LoadBlock(name);
        block.Train();
        block.ZeroGrad();
        var y = block.Forward(Get($"{name}.input"));
        AssertClose(Get($"{name}.output"), y, $"{name} output");
        var dx = block.Backward(Get($"{name}.grad_output"))!;
        AssertClose(Get($"{name}.grad_input"), dx, $"{name} grad_input");
        foreach (var p in block.NamedParameters())
        {
            AssertClose(Get($"{name}.grad.{Apple(p.Name)}"), p.Parameter.Grad!, $"{name} grad {p.Name}");
        }

        foreach (var e in block.State().Where(e => e.Kind != StateKind.Parameter))
        {
            var stored = file.Tensors[$"{name}.after.{Apple(e.Name)}"];
            if (e.Kind == StateKind.Counter)
            {
                Assert.Equal(stored.ToInt64()[0], (long)e.Value.Data[0]);
            }
            else
            {
                AssertClose(stored.ToTensor(), e.Value, $"{name} after {e.Name}");
            }
        }
    }

    private Tensor Get(string key) => file.Tensors[key].ToTensor();

    private static string Apple(string blockKey) => KeyNames.TimmToApple("stem." + blockKey)["stage0.".Length..];

    private MobileOneBlock LoadBlock(string name)
    {
        using var meta = JsonDocument.Parse(file.Metadata[name]);
        var m = meta.RootElement;
        int se = m.GetProperty("use_se").GetBoolean() ? file.Tensors[$"{name}.before.se.reduce.weight"].Shape[0] : 0;
        var spec = new BlockSpec(
            m.GetProperty("in_channels").GetInt32(), m.GetProperty("out_channels").GetInt32(), m.GetProperty("kernel_size").GetInt32(),
            m.GetProperty("stride").GetInt32(), m.GetProperty("padding").GetInt32(), m.GetProperty("groups").GetInt32(),
            m.GetProperty("num_conv_branches").GetInt32(), se);
        var block = MobileOneBlock.CreateTrainTime(spec);
        foreach (var entry in block.State())
        {
            var stored = file.Tensors[$"{name}.before.{Apple(entry.Name)}"];
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

    private void AssertClose(Tensor expected, Tensor actual, string what)
    {
        Assert.Equal(expected.Shape, actual.Shape);
        double scale = Math.Max(1.0, Reference.MaxAbs(expected.Data));
        double diff = Reference.MaxAbsDiff(actual.Data, expected.Data);
        log.WriteLine($"{what}: max diff {diff:e2}, scale {scale:g3}");
        Assert.True(diff <= Tolerance * scale, $"{what}: max diff {diff:e3} > {Tolerance} x {scale:g4}");
    }
}
