using MobileOne.Inference;
using MobileOne.Kernels;

namespace MobileOne.Tests.Inference;

/// <summary>
/// The engine against the PyTorch float64 references (the unfused timm and Apple S0 fixtures) on every
/// instruction-set path and with 1 and 2 threads, at 224 and 64; a path this CPU lacks is reported skipped.
/// </summary>
public class EngineParityTests : IClassFixture<EngineFixtures>
{
    private readonly EngineFixtures fixtures;

    public EngineParityTests(EngineFixtures fixtures)
    {
        this.fixtures = fixtures;
    }

    [Theory]
    [IsaData(IsaLevel.Avx512, "timm", 1)]
    [IsaData(IsaLevel.Avx512, "timm", 2)]
    [IsaData(IsaLevel.Avx2, "timm", 1)]
    [IsaData(IsaLevel.Avx2, "timm", 2)]
    [IsaData(IsaLevel.Scalar, "timm", 1)]
    [IsaData(IsaLevel.Scalar, "timm", 2)]
    [IsaData(IsaLevel.Avx512, "apple", 1)]
    [IsaData(IsaLevel.Avx512, "apple", 2)]
    [IsaData(IsaLevel.Avx2, "apple", 1)]
    [IsaData(IsaLevel.Avx2, "apple", 2)]
    [IsaData(IsaLevel.Scalar, "apple", 1)]
    [IsaData(IsaLevel.Scalar, "apple", 2)]
    public void Logits_at_224_and_64_match_the_float64_reference(IsaLevel isa, string prefix, int threads)
    {
        using var model = CompiledModel.Compile(fixtures.Fused(prefix), new InferenceOptions { Isa = isa, Threads = threads });

        foreach (int size in new[] { 224, 64 })
        {
            var input = fixtures.Refs[$"input_{size}"];
            var expected = fixtures.Refs[$"{prefix}.logits_unfused_{size}"];
            var logits = model.Run(input);
            Assert.Equal(expected.Shape, logits.Shape);
            EngineTestSupport.AssertClose(expected.Data, logits.Data, $"{prefix} {isa} x{threads} at {size}");
        }
    }
}
