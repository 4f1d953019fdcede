using MobileOne.Models;
using MobileOne.Models.Zoo;
using MobileOne.Nn;
using MobileOne.Reparam;
using MobileOne.Tensors;

namespace MobileOne.Tests.Reparam;

/// <summary>
/// The fusion arithmetic on numbers worked out by hand (BatchNorm folding, centring a small kernel in a larger one,
/// the shape checks) and the paths the fixture and property tests do not take: fused inputs, refusals, the copied
/// squeeze-excite and head. Written against Stryker's survivors on Reparam/ (docs/reliability.md).
/// </summary>
public class ReparamEdgeTests
{
    // gamma 4, 9; var 3, 8; eps 1: std = sqrt(var + eps) = 2, 3, so t = gamma / std = 2, 3; beta 0.5, -1; mean 1, 2.
    private static BatchNormStats Stats() => new([4f, 9f], [0.5f, -1f], [1f, 2f], [3f, 8f], 1.0);

    // ------------------------------------------------------------------ BatchNormFolding

    [Fact]
    public void Stats_std_is_the_square_root_of_variance_plus_eps()
    {
        var bn = Stats();
        Assert.Equal(2, bn.Channels);
        Assert.Equal(2.0, bn.Std(0));
        Assert.Equal(3.0, bn.Std(1));
    }

    [Fact]
    public void Stats_from_a_batch_norm_reads_its_parameters_and_statistics()
    {
        var bn = new BatchNorm2d(2);
        bn.Weight.Value.Data[1] = 4f;
        bn.Bias.Value.Data[1] = 5f;
        bn.RunningMean.Data[1] = 6f;
        bn.RunningVar.Data[1] = 7f;

        var stats = BatchNormStats.From(bn);

        Assert.Equal([1f, 4f], stats.Gamma);
        Assert.Equal([0f, 5f], stats.Beta);
        Assert.Equal([0f, 6f], stats.Mean);
        Assert.Equal([1f, 7f], stats.Var);
        Assert.Equal((double)BatchNorm2d.DefaultEps, stats.Eps);
    }

    [Fact]
    public void Fold_scales_each_output_channel_and_shifts_its_bias()
    {
        // OIHW [2, 1, 1, 2]: channel 0 holds 1, 2 and channel 1 holds 3, 4.
        var k = BatchNormFolding.Fold([1f, 2f, 3f, 4f], [2, 1, 1, 2], Stats());

        Assert.Equal([2, 1, 1, 2], k.Shape);
        Assert.Equal([2.0, 4.0, 9.0, 12.0], k.Weight); // 1*2, 2*2, 3*3, 4*3
        Assert.Equal([-1.5, -7.0], k.Bias); // (0 - 1) * 2 + 0.5, (0 - 2) * 3 - 1
    }

    [Fact]
    public void Fold_with_a_convolution_bias_shifts_it_before_scaling()
    {
        var k = BatchNormFolding.Fold([1f, 2f, 3f, 4f], [2, 1, 1, 2], Stats(), [10f, 20f]);

        Assert.Equal([2.0, 4.0, 9.0, 12.0], k.Weight);
        Assert.Equal([18.5, 53.0], k.Bias); // (10 - 1) * 2 + 0.5, (20 - 2) * 3 - 1

        var zero = BatchNormFolding.Fold([1f, 2f, 3f, 4f], [2, 1, 1, 2], Stats(), [0f, 0f]);
        Assert.Equal([-1.5, -7.0], zero.Bias);
    }

    [Fact]
    public void Fold_refuses_a_batch_norm_over_other_channels()
    {
        // Three output channels of one weight each: the length divides, the channel count does not match.
        var ex = Assert.Throws<ArgumentException>(() => BatchNormFolding.Fold(new float[3], [3, 1, 1, 1], Stats()));
        Assert.Equal("BatchNorm over 2 channels cannot fold into a kernel with 3 output channels.", ex.Message);
    }

    [Fact]
    public void Fold_refuses_a_kernel_whose_length_the_channels_do_not_divide()
    {
        var ex = Assert.Throws<ArgumentException>(() => BatchNormFolding.Fold(new float[3], [2, 1, 1, 1], Stats()));
        Assert.Equal("BatchNorm over 2 channels cannot fold into a kernel with 2 output channels.", ex.Message);
    }

    [Fact]
    public void Fold_refuses_a_bias_of_another_length()
    {
        var ex = Assert.Throws<ArgumentException>(() => BatchNormFolding.Fold(new float[4], [2, 1, 1, 2], Stats(), new float[3]));
        Assert.Equal("A bias of 3 values cannot fold into a kernel with 2 output channels.", ex.Message);
    }

    // ------------------------------------------------------------------ FusedKernel

    [Theory]
    [InlineData(new[] { 2, 1, 1 }, 2, 2, "Kernel shape [2, 1, 1] does not match 2 weights and 2 biases.")]
    [InlineData(new[] { 1, 2, 1, 1, 1 }, 2, 1, "Kernel shape [1, 2, 1, 1, 1] does not match 2 weights and 1 biases.")]
    [InlineData(new[] { 1, 1, 2, 2 }, 3, 1, "Kernel shape [1, 1, 2, 2] does not match 3 weights and 1 biases.")]
    [InlineData(new[] { 2, 1, 1, 1 }, 2, 1, "Kernel shape [2, 1, 1, 1] does not match 2 weights and 1 biases.")]
    [InlineData(new[] { 2, 1, 1, 1 }, 2, 3, "Kernel shape [2, 1, 1, 1] does not match 2 weights and 3 biases.")]
    public void Kernel_refuses_a_shape_its_arrays_do_not_fill(int[] shape, int weights, int biases, string message)
    {
        var ex = Assert.Throws<ArgumentException>(() => new FusedKernel(shape, new double[weights], new double[biases]));
        Assert.Equal(message, ex.Message);
    }

    [Fact]
    public void Kernel_keeps_a_copy_of_its_shape()
    {
        int[] shape = [1, 1, 1, 2];
        var k = new FusedKernel(shape, [1, 2], [3]);
        shape[3] = 7;
        Assert.Equal([1, 1, 1, 2], k.Shape);
    }

    [Fact]
    public void Zero_kernel_has_the_shapes_arrays_all_zero()
    {
        var k = FusedKernel.Zero([2, 3, 1, 5]);
        Assert.Equal([2, 3, 1, 5], k.Shape);
        Assert.Equal(new double[30], k.Weight);
        Assert.Equal(new double[2], k.Bias);
    }

    // A 3x5 block (3 rows of 5) with a, b, c at the centre of its middle row: a 1x3 kernel centred in 3x5.
    private static double[] CentredRow(double background, double a, double b, double c) =>
    [
        background, background, background, background, background,
        background, background + a, background + b, background + c, background,
        background, background, background, background, background,
    ];

    [Fact]
    public void Smaller_kernel_is_added_at_the_centre_of_each_channel_pair()
    {
        // Target [2, 2, 3, 5] filled with 0.5, bias 1, 2; the added 1x3 kernel holds 1..12 in OIHW order, bias 100, 200.
        var target = new FusedKernel([2, 2, 3, 5], Enumerable.Repeat(0.5, 60).ToArray(), [1, 2]);
        var small = new FusedKernel([2, 2, 1, 3], Enumerable.Range(1, 12).Select(v => (double)v).ToArray(), [100, 200]);

        target.AddCentered(small);

        // (o, i) = (0, 0), (0, 1), (1, 0), (1, 1) are the four 3x5 blocks, each receiving its 3 values at row 1, columns 1-3.
        double[] expected = [.. CentredRow(0.5, 1, 2, 3), .. CentredRow(0.5, 4, 5, 6), .. CentredRow(0.5, 7, 8, 9), .. CentredRow(0.5, 10, 11, 12)];
        Assert.Equal(expected, target.Weight);
        Assert.Equal([101.0, 202.0], target.Bias);

        // Adding accumulates.
        target.AddCentered(small);
        Assert.Equal([201.0, 402.0], target.Bias);
        Assert.Equal(0.5 + 24, target.Weight[(3 * 15) + 8]);
    }

    [Fact]
    public void Kernel_of_the_same_size_is_added_element_by_element()
    {
        var target = new FusedKernel([1, 2, 1, 2], [1, 2, 3, 4], [5]);
        target.AddCentered(new FusedKernel([1, 2, 1, 2], [10, 20, 30, 40], [50]));
        Assert.Equal([11.0, 22.0, 33.0, 44.0], target.Weight);
        Assert.Equal([55.0], target.Bias);
    }

    [Fact]
    public void Tall_kernel_is_centred_vertically()
    {
        // A 3x1 kernel in a 5x3: rows 1-3 of the middle column.
        var target = FusedKernel.Zero([1, 1, 5, 3]);
        target.AddCentered(new FusedKernel([1, 1, 3, 1], [1, 2, 3], [0]));
        Assert.Equal([0.0, 0, 0, 0, 1, 0, 0, 2, 0, 0, 3, 0, 0, 0, 0], target.Weight);
    }

    [Theory]
    [InlineData(new[] { 3, 2, 1, 1 }, "Cannot centre a [3, 2, 1, 1] kernel inside [2, 2, 3, 5].")] // output channels
    [InlineData(new[] { 2, 1, 1, 1 }, "Cannot centre a [2, 1, 1, 1] kernel inside [2, 2, 3, 5].")] // input channels
    [InlineData(new[] { 2, 2, 5, 1 }, "Cannot centre a [2, 2, 5, 1] kernel inside [2, 2, 3, 5].")] // taller (both differences even)
    [InlineData(new[] { 2, 2, 1, 7 }, "Cannot centre a [2, 2, 1, 7] kernel inside [2, 2, 3, 5].")] // wider (both differences even)
    [InlineData(new[] { 2, 2, 2, 1 }, "Cannot centre a [2, 2, 2, 1] kernel inside [2, 2, 3, 5].")] // odd height difference
    [InlineData(new[] { 2, 2, 1, 2 }, "Cannot centre a [2, 2, 1, 2] kernel inside [2, 2, 3, 5].")] // odd width difference
    public void Kernel_that_cannot_be_centred_is_refused(int[] shape, string message)
    {
        var target = FusedKernel.Zero([2, 2, 3, 5]);
        var other = FusedKernel.Zero(shape);
        var ex = Assert.Throws<ArgumentException>(() => target.AddCentered(other));
        Assert.Equal(message, ex.Message);
        Assert.Equal(new double[60], target.Weight);
    }

    [Fact]
    public void Tensors_round_the_double_values_to_float()
    {
        var k = new FusedKernel([2, 1, 1, 1], [0.1, 1.0 / 3], [2.0 / 3, -0.7]);

        var w = k.WeightTensor();
        var b = k.BiasTensor();

        Assert.Equal([2, 1, 1, 1], w.Shape);
        Assert.Equal([0.1f, 1f / 3], w.Data);
        Assert.Equal([2], b.Shape);
        Assert.Equal([2f / 3, -0.7f], b.Data);
    }

    // ------------------------------------------------------------------ BlockFusion

    [Fact]
    public void Fusing_a_null_block_names_the_argument()
    {
        var ex = Assert.Throws<ArgumentNullException>(() => BlockFusion.Fuse(null!));
        Assert.Equal("block", ex.ParamName);
    }

    [Fact]
    public void Fused_block_gives_back_its_own_convolution()
    {
        var block = MobileOneBlock.CreateFused(new BlockSpec(2, 3, 3, 1, 1, 1, 1, 0));
        var weight = block.ReparamConv!.Weight.Value.Data;
        for (int i = 0; i < weight.Length; i++)
        {
            weight[i] = i + 0.25f;
        }

        block.ReparamConv.Bias!.Value.Data[2] = -4f;

        var k = BlockFusion.Fuse(block);

        Assert.Equal([3, 2, 3, 3], k.Shape);
        Assert.Equal(Enumerable.Range(0, 54).Select(i => i + 0.25), k.Weight);
        Assert.Equal([0.0, 0.0, -4.0], k.Bias);
    }

    [Fact]
    public void Train_time_block_sums_its_branches_by_hand()
    {
        // One input and output channel, 3x3, two conv branches, the 1x1 scale branch and the BN skip. Each branch's
        // t = gamma / sqrt(var + eps) is written out below from its own numbers (eps is BatchNorm2d's 1e-5f).
        var block = MobileOneBlock.CreateTrainTime(new BlockSpec(1, 1, 3, 1, 1, 1, 2, 0));
        Assert.NotNull(block.ConvScale);
        Assert.NotNull(block.Identity);
        double eps = BatchNorm2d.DefaultEps;

        // Branch 0: all nine taps 1, gamma 2, var 3, mean 1, beta 0.5.
        SetBranch(block.ConvKxk[0], 1f, gamma: 2f, beta: 0.5f, mean: 1f, var: 3f);
        // Branch 1: all nine taps 2, gamma 1, var 8, mean -1, beta 0.
        SetBranch(block.ConvKxk[1], 2f, gamma: 1f, beta: 0f, mean: -1f, var: 8f);
        // Scale branch: its one tap 5, gamma 3, var 15, mean 2, beta 1.
        SetBranch(block.ConvScale!, 5f, gamma: 3f, beta: 1f, mean: 2f, var: 15f);
        // Skip: gamma 4, var 24, mean 0.5, beta -2.
        SetBn(block.Identity!, gamma: 4f, beta: -2f, mean: 0.5f, var: 24f);

        double t0 = 2 / Math.Sqrt(3 + eps), t1 = 1 / Math.Sqrt(8 + eps), ts = 3 / Math.Sqrt(15 + eps), ti = 4 / Math.Sqrt(24 + eps);

        var k = BlockFusion.Fuse(block);

        Assert.Equal([1, 1, 3, 3], k.Shape);
        for (int tap = 0; tap < 9; tap++)
        {
            double expected = (1 * t0) + (2 * t1) + (tap == 4 ? (5 * ts) + ti : 0);
            Assert.Equal(expected, k.Weight[tap], 12);
        }

        double bias = (-1 * t0) + 0.5 + (1 * t1) + 0 + (-2 * ts) + 1 + (-0.5 * ti) - 2;
        Assert.Equal(bias, k.Bias[0], 12);
    }

    [Fact]
    public void Block_without_scale_or_skip_is_its_conv_branches()
    {
        // 1x1 kernel (no scale branch), 1 -> 2 channels (no skip).
        var block = MobileOneBlock.CreateTrainTime(new BlockSpec(1, 2, 1, 1, 0, 1, 1, 0));
        Assert.Null(block.ConvScale);
        Assert.Null(block.Identity);
        block.ConvKxk[0].Conv.Weight.Value.Data[0] = 3f;
        block.ConvKxk[0].Conv.Weight.Value.Data[1] = 5f;
        block.ConvKxk[0].Bn.Bias.Value.Data[1] = 7f;

        var k = BlockFusion.Fuse(block);

        double t = 1 / Math.Sqrt(1 + (double)BatchNorm2d.DefaultEps);
        Assert.Equal([2, 1, 1, 1], k.Shape);
        Assert.Equal(3 * t, k.Weight[0], 12);
        Assert.Equal(5 * t, k.Weight[1], 12);
        Assert.Equal([0.0, 7.0], k.Bias);
    }

    private static void SetBranch(ConvBn branch, float tap, float gamma, float beta, float mean, float var)
    {
        Array.Fill(branch.Conv.Weight.Value.Data, tap);
        SetBn(branch.Bn, gamma, beta, mean, var);
    }

    private static void SetBn(BatchNorm2d bn, float gamma, float beta, float mean, float var)
    {
        bn.Weight.Value.Data[0] = gamma;
        bn.Bias.Value.Data[0] = beta;
        bn.RunningMean.Data[0] = mean;
        bn.RunningVar.Data[0] = var;
    }

    // ------------------------------------------------------------------ Reparameterizer and RepVggFusion

    private static MobileOneConfig TinyConfig(int[]? se = null) =>
        MobileOneConfig.FromWidths("custom", [0.25, 0.25, 0.25, 0.25], 2, [1, 1, 1, 1], se, numClasses: 5, inChans: 1);

    [Fact]
    public void Fusing_a_null_network_names_the_argument()
    {
        var ex = Assert.Throws<ArgumentNullException>(() => Reparameterizer.Fuse((MobileOneNetwork)null!));
        Assert.Equal("network", ex.ParamName);
    }

    [Fact]
    public void Fused_network_is_copied_as_it_is()
    {
        var fused = MobileOneNetwork.Create(TinyConfig(), fused: true);
        WeightInit.Initialize(fused, 3);

        var copy = Reparameterizer.Fuse(fused);

        Assert.NotSame(fused, copy);
        Assert.True(copy.IsFused);
        AssertSameState(fused, copy);
    }

    [Fact]
    public void Squeeze_excite_and_head_are_copied_and_the_input_is_left_untouched()
    {
        var net = MobileOneNetwork.Create(TinyConfig(se: [0, 0, 1, 1]));
        WeightInit.Initialize(net, 11);
        WeightInit.RandomizeBatchNorm(net, 12);
        var before = net.State().ToDictionary(e => e.Name, e => (float[])e.Value.Data.Clone());

        var fused = Reparameterizer.Fuse((ClassifierNetwork)net);

        Assert.IsType<MobileOneNetwork>(fused);
        Assert.True(fused.IsFused);
        foreach (var entry in net.State())
        {
            Assert.Equal(before[entry.Name], entry.Value.Data);
        }

        // Every state entry that is not a fused convolution is the input's, value for value.
        var source = net.State().ToDictionary(e => e.Name, e => e.Value.Data);
        var copied = fused.State().Where(e => !e.Name.Contains("reparam_conv", StringComparison.Ordinal)).ToList();
        Assert.Contains(copied, e => e.Name.Contains(".attn.", StringComparison.Ordinal));
        Assert.Contains(copied, e => e.Name.StartsWith("head.", StringComparison.Ordinal));
        foreach (var e in copied)
        {
            Assert.Equal(source[e.Name], e.Value.Data);
        }
    }

    [Fact]
    public void Other_classifiers_have_no_fused_form()
    {
        // A compressed network (low-rank + sparse layers on a fused MobileOne) is neither MobileOne nor a zoo network.
        var fused = MobileOneNetwork.Create(TinyConfig(), fused: true);
        var compressed = new MobileOne.Compression.CompressedNetwork(fused, []);
        var ex = Assert.Throws<ArgumentException>(() => Reparameterizer.Fuse(compressed));
        Assert.Equal("network", ex.ParamName);
        Assert.StartsWith($"{fused.Architecture} has no fused form.", ex.Message);
    }

    [Fact]
    public void RepVgg_refuses_another_family_by_name()
    {
        var resnet = (ZooNetwork)ModelRegistry.Get("resnet18").Create(numClasses: 2);
        var ex = Assert.Throws<ArgumentException>(() => RepVggFusion.Fuse(resnet));
        Assert.Equal("network", ex.ParamName);
        Assert.StartsWith("resnet18 has no fused form: only MobileOne and RepVGG are re-parameterizable.", ex.Message);
    }

    [Fact]
    public void Fused_RepVgg_is_copied_as_it_is()
    {
        var fused = (ZooNetwork)ModelRegistry.Get("repvgg_a0").Create(numClasses: 3, inChans: 1, fused: true, seed: 7);

        var copy = Reparameterizer.Fuse(fused);

        Assert.NotSame(fused, copy);
        Assert.True(copy.IsFused);
        AssertSameState(fused, copy);
    }

    private static void AssertSameState(ClassifierNetwork expected, ClassifierNetwork actual)
    {
        var want = expected.State().ToList();
        var got = actual.State().ToList();
        Assert.Equal(want.Select(e => e.Name), got.Select(e => e.Name));
        Assert.Contains(want, e => e.Value.Data.Any(v => v != 0 && v != 1));
        for (int i = 0; i < want.Count; i++)
        {
            Assert.Equal(want[i].Value.Data, got[i].Value.Data);
        }
    }
}
