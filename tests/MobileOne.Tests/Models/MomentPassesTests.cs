using MobileOne.Models;
using MobileOne.Nn;
using MobileOne.Tensors;
using MobileOne.Tests.Nn;

namespace MobileOne.Tests.Models;

/// <summary>
/// The moment passes (<see cref="PointwiseMoments"/> for stacked 1x1 branches, <see cref="DepthwiseMoments"/> for 3x3
/// depthwise blocks at stride 1 and 2) against the branch passes, which the reference-parity tests check against PyTorch: the
/// same outputs, running statistics and gradients.
/// </summary>
[Collection(KernelSettingsCollection.Name)]
public sealed class MomentPassesTests
{
    [Theory]
    [InlineData(24, 24, 3, 0, 3, 5, 5)]
    [InlineData(16, 40, 4, 0, 2, 6, 3)]
    [InlineData(32, 32, 1, 8, 2, 4, 4)]
    [InlineData(12, 12, 2, 0, 2, 9, 8)]
    public void Pointwise_moment_passes_equal_the_branch_passes(int cin, int cout, int k, int se, int batch, int h, int w) =>
        CheckAgainstBranches(new BlockSpec(cin, cout, 1, 1, 0, 1, k, se), batch, h, w);

    [Theory]
    [InlineData(8, 4, 0, 3, 5, 5, false)]
    [InlineData(8, 4, 0, 3, 5, 5, true)]
    [InlineData(16, 1, 0, 2, 2, 2, false)]
    [InlineData(16, 1, 0, 20, 2, 2, true)]
    [InlineData(6, 2, 0, 4, 2, 1, false)]
    [InlineData(6, 2, 0, 4, 1, 2, true)]
    [InlineData(8, 3, 4, 2, 7, 9, false)]
    [InlineData(8, 3, 4, 17, 7, 9, true)]
    [InlineData(4, 4, 0, 12, 20, 20, false)]
    [InlineData(4, 4, 0, 12, 20, 20, true)]
    // Whole groups of 16 images: 4x4 and 2x2 planes in lanes run on SmallPlanePatches (3x3 ones keep the patch stack).
    [InlineData(8, 4, 0, 16, 4, 4, true)]
    [InlineData(16, 2, 0, 32, 2, 2, true)]
    [InlineData(6, 3, 4, 16, 3, 3, true)]
    // 80 images: a group of 64 (four vectors at once) and a remainder of 16.
    [InlineData(8, 4, 0, 80, 4, 4, true)]
    [InlineData(8, 2, 0, 80, 2, 2, true)]
    public void Depthwise_moment_passes_equal_the_branch_passes(int channels, int k, int se, int batch, int h, int w, bool imagesInLanes)
    {
        DepthwiseMoments.LayoutOverride = imagesInLanes;
        try
        {
            CheckAgainstBranches(new BlockSpec(channels, channels, 3, 1, 1, channels, k, se), batch, h, w);
        }
        finally
        {
            DepthwiseMoments.LayoutOverride = null;
        }
    }

    [Theory]
    [InlineData(8, 4, 0, 3, 5, 5)]
    [InlineData(6, 2, 0, 4, 6, 8)]
    [InlineData(16, 1, 0, 20, 2, 2)]
    [InlineData(6, 2, 0, 4, 1, 2)]
    [InlineData(5, 3, 0, 7, 3, 1)]
    [InlineData(8, 3, 4, 2, 7, 9)]
    [InlineData(4, 4, 0, 12, 20, 21)]
    [InlineData(3, 2, 0, 4, 66, 67)]
    // Whole groups of 16 images on 2x2 and 4x4 inputs run on SmallPlanePatches (80: a group of 64 and 16 more).
    [InlineData(8, 4, 0, 16, 4, 4)]
    [InlineData(16, 1, 0, 32, 2, 2)]
    [InlineData(8, 3, 4, 80, 4, 4)]
    [InlineData(8, 2, 0, 80, 2, 2)]
    // Larger inputs from 64 images up (at 16 images they keep StridedPatches).
    [InlineData(6, 4, 0, 64, 8, 8)]
    [InlineData(4, 2, 0, 80, 16, 16)]
    [InlineData(5, 3, 4, 64, 7, 9)]
    public void Strided_depthwise_moment_passes_equal_the_branch_passes(int channels, int k, int se, int batch, int h, int w) =>
        CheckAgainstBranches(new BlockSpec(channels, channels, 3, 2, 1, channels, k, se), batch, h, w);

    private static void CheckAgainstBranches(BlockSpec spec, int batch, int h, int w)
    {
        int cin = spec.InChannels, cout = spec.OutChannels;
        var rng = new Random((cin * 100) + cout + (h * 7) + spec.NumConvBranches);
        var viaBranches = MobileOneBlock.CreateTrainTime(spec);
        var viaMoments = MobileOneBlock.CreateTrainTime(spec);
        foreach (var e in viaBranches.State())
        {
            // Weights, BN affine and running statistics all random (variances positive), so every term is exercised.
            var values = Reference.RandomArray(rng, e.Value.Length);
            for (int i = 0; i < values.Length; i++)
            {
                e.Value.Data[i] = e.Name.EndsWith("running_var", StringComparison.Ordinal) ? 0.5f + Math.Abs(values[i]) : e.Name.EndsWith("num_batches_tracked", StringComparison.Ordinal) ? 0f : values[i];
            }
        }

        viaMoments.CopyStateFrom(viaBranches);
        viaBranches.Train();
        viaMoments.Train();
        try
        {
            for (int step = 0; step < 2; step++)
            {
                // Post-ReLU-like input with a mean far from zero, as a block's input is.
                var x = new Tensor(batch, cin, h, w);
                for (int i = 0; i < x.Length; i++)
                {
                    x.Data[i] = 1.5f + (float)rng.NextDouble() + (0.5f * (float)Math.Abs(rng.NextDouble() - 0.3));
                }

                int ho = ((h + (2 * spec.Padding) - spec.KernelSize) / spec.Stride) + 1, wo = ((w + (2 * spec.Padding) - spec.KernelSize) / spec.Stride) + 1;
                var dy = new Tensor(batch, cout, ho, wo);
                Reference.RandomArray(rng, dy.Length).CopyTo(dy.Data, 0);

                MobileOneBlock.MomentsOverride = false;
                var y1 = Copy(viaBranches.Forward(x));
                var dx1 = Copy(viaBranches.Backward(dy)!);
                MobileOneBlock.MomentsOverride = true;
                var y2 = Copy(viaMoments.Forward(x));
                var dx2 = Copy(viaMoments.Backward(dy)!);

                Close(y1, y2, $"step {step} output");
                Close(dx1, dx2, $"step {step} input gradient");
                using var other = viaMoments.State().GetEnumerator();
                foreach (var e in viaBranches.State())
                {
                    other.MoveNext();
                    Close(e.Value.Data, other.Current.Value.Data, $"step {step} {e.Name}");
                }

                var grads = viaMoments.NamedParameters().ToList();
                foreach (var (p, i) in viaBranches.NamedParameters().Select((p, i) => (p, i)))
                {
                    Close(p.Parameter.Grad!.Data, grads[i].Parameter.Grad!.Data, $"step {step} grad {p.Name}");
                }
            }
        }
        finally
        {
            MobileOneBlock.MomentsOverride = null;
        }
    }

    [Fact]
    public void Pointwise_moments_are_chosen_where_the_pixels_outnumber_the_channels()
    {
        Assert.True(PointwiseMoments.Pays(256, 256, 4, 16L * 14 * 14));
        Assert.True(PointwiseMoments.Pays(128, 128, 4, 64L * 4 * 4));
        Assert.False(PointwiseMoments.Pays(256, 256, 4, 64L * 2 * 2));
        Assert.False(PointwiseMoments.Pays(256, 1024, 4, 64L));
    }

    [Fact]
    public void Depthwise_moments_take_2x2_planes_only_where_the_small_plane_passes_run()
    {
        Assert.True(DepthwiseMoments.Pays(1, 64, 4, 4));
        Assert.True(DepthwiseMoments.Pays(1, 20, 7, 7));
        Assert.Equal(MobileOne.Kernels.Depthwise.SmallPlanePatches.Supports(64, 2, 2), DepthwiseMoments.Pays(1, 64, 2, 2));
        Assert.False(DepthwiseMoments.Pays(1, 20, 2, 2));
        Assert.False(DepthwiseMoments.Pays(1, 64, 2, 1));
        Assert.True(DepthwiseMoments.Pays(2, 64, 8, 8));
        Assert.False(DepthwiseMoments.Pays(2, 16, 14, 14));
    }

    private static float[] Copy(Tensor t) => (float[])t.Data.Clone();

    private static void Close(float[] expected, float[] actual, string what)
    {
        double scale = Math.Max(1e-3, expected.Max(v => Math.Abs((double)v)));
        double diff = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            diff = Math.Max(diff, Math.Abs((double)expected[i] - actual[i]));
        }

        Assert.True(diff <= 2e-5 * scale, $"{what}: max diff {diff:e3} (scale {scale:g3})");
    }
}
