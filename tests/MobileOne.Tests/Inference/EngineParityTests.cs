using MobileOne.Inference;
using MobileOne.Kernels;
using Xunit.Abstractions;

namespace MobileOne.Tests.Inference;

/// <summary>
/// The engine against the PyTorch float64 references (the unfused timm and Apple S0 fixtures) on every
/// instruction-set path and with 1 and 2 threads, at 224 and 64.
/// </summary>
public class EngineParityTests : IClassFixture<EngineFixtures>
{
    private readonly EngineFixtures fixtures;
    private readonly ITestOutputHelper output;

    public EngineParityTests(EngineFixtures fixtures, ITestOutputHelper output)
    {
        this.fixtures = fixtures;
        this.output = output;
    }

    public static TheoryData<string, IsaLevel, int> Cases()
    {
        var data = new TheoryData<string, IsaLevel, int>();
        foreach (string prefix in new[] { "timm", "apple" })
        {
            foreach (var isa in EngineTestSupport.AllIsas)
            {
                data.Add(prefix, isa, 1);
                data.Add(prefix, isa, 2);
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Logits_at_224_and_64_match_the_float64_reference(string prefix, IsaLevel isa, int threads)
    {
        using var model = EngineTestSupport.TryCompile(fixtures.Fused(prefix), isa, threads, out string skipped);
        if (model is null)
        {
            output.WriteLine(skipped);
            return;
        }

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
