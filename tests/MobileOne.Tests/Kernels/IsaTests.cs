using MobileOne.Inference;
using MobileOne.Kernels;
using MobileOne.Kernels.Conv;
using MobileOne.Models;
using MobileOne.Tests.Inference;
using MobileOne.Tests.Nn;

namespace MobileOne.Tests.Kernels;

/// <summary>The one instruction-set type: what Auto resolves to, and that every option type maps onto it the same way.</summary>
[Collection(KernelSettingsCollection.Name)]
public class IsaTests
{
    [Fact]
    public void Auto_is_the_best_supported_instruction_set_everywhere()
    {
        Assert.True(Isa.Best.IsSupported());
        Assert.Equal(Isa.Best, Isa.Resolve(IsaLevel.Auto, "isa", "isa"));
        Assert.True(Isa.Scalar.IsSupported());

        // Engine and general convolutions: AVX-512, AVX2 or scalar (128-bit vectors alone run their scalar paths).
        var expected = Isa.Best.Engine.Level;
        var network = EngineTestSupport.RandomFused(MobileOneConfig.Parse("units=1/1/1/1,widths=0.25/0.25/0.25/0.25,classes=4"), 1);
        using (var model = CompiledModel.Compile(network))
        {
            Assert.Equal(expected, model.Isa);
        }

        var kernel = ConvolutionKernels.Create(ConvAlgorithm.Direct, ConvGeometry.Square(1, 3, 8, 8, 4, 3, 1, 1, 1), new float[4 * 27], []);
        Assert.Equal(expected, ((ConvolutionKernel)kernel).Isa);

        // Training kernels: the widest vectors the best instruction set has.
        Assert.Equal(IsaLevel.Auto, Lanes.Level);
        Assert.Equal(Isa.Best.WidestVector, Lanes.WidestVector);
    }

    [Theory]
    [InlineData(IsaLevel.Avx512, "Vector512")]
    [InlineData(IsaLevel.Avx2, "Vector256")]
    [InlineData(IsaLevel.Scalar, "Scalar")]
    public void Each_level_runs_its_width_or_is_refused_where_the_cpu_lacks_it(IsaLevel level, string widest)
    {
        var g = ConvGeometry.Square(1, 3, 8, 8, 4, 3, 1, 1, 1);
        if (!CompiledModel.IsSupported(level))
        {
            Assert.Throws<NotSupportedException>(() => Lanes.Level = level);
            Assert.Throws<NotSupportedException>(() => ConvolutionKernels.Create(ConvAlgorithm.Direct, g, new float[4 * 27], [], level));
            return;
        }

        try
        {
            Lanes.Level = level;
            Assert.Equal(level, Lanes.Level);
            Assert.Equal(widest, Lanes.WidestVector);
            Assert.Equal(level, ConvolutionKernels.Create(ConvAlgorithm.Direct, g, new float[4 * 27], [], level).Isa);
        }
        finally
        {
            Lanes.Level = IsaLevel.Auto;
        }
    }

    [Fact]
    public void Undefined_levels_are_refused_with_the_option_named()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => Lanes.Level = (IsaLevel)9);
        Assert.StartsWith("Lanes.Level 9 is not one of Auto, Avx512, Avx2, Scalar.", e.Message);
        Assert.Equal(IsaLevel.Auto, Lanes.Level);
        Assert.Throws<ArgumentOutOfRangeException>(() => ConvolutionKernels.Create(ConvAlgorithm.Direct, ConvGeometry.Square(1, 3, 8, 8, 4, 3, 1, 1, 1), new float[4 * 27], [], (IsaLevel)9));
    }
}
