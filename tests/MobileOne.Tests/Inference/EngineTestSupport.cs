using MobileOne.Inference;
using MobileOne.IO.Checkpoints;
using MobileOne.Kernels;
using MobileOne.Models;
using MobileOne.Reparam;
using MobileOne.Tensors;
using MobileOne.Tests.Models;

namespace MobileOne.Tests.Inference;

/// <summary>The two S0 fixture networks, as loaded and fused once, and the reference tensors, shared by the engine tests.</summary>
public sealed class EngineFixtures
{
    private readonly Lazy<MobileOneNetwork> timmUnfused = new(() => ModelCheckpoint.Load(Fixtures.Path("mobileone_s0_timm.safetensors")).Network);
    private readonly Lazy<MobileOneNetwork> appleUnfused = new(() => ModelCheckpoint.Load(Fixtures.Path("mobileone_s0_apple_unfused.pth.tar")).Network);
    private readonly Lazy<MobileOneNetwork> timm;
    private readonly Lazy<MobileOneNetwork> apple;

    public EngineFixtures()
    {
        timm = new(() => Reparameterizer.Fuse(timmUnfused.Value));
        apple = new(() => Reparameterizer.Fuse(appleUnfused.Value));
    }

    public ReferenceTensors Refs { get; } = new();

    public MobileOneNetwork Fused(string prefix) => prefix == "timm" ? timm.Value : apple.Value;

    /// <summary>The train-time network as loaded (not fused).</summary>
    public MobileOneNetwork Unfused(string prefix) => prefix == "timm" ? timmUnfused.Value : appleUnfused.Value;
}

internal static class EngineTestSupport
{
    public static readonly IsaLevel[] AllIsas = [IsaLevel.Avx512, IsaLevel.Avx2, IsaLevel.Scalar];

    /// <summary>Builds a model on the requested path, or returns null (with the reason) when this CPU lacks it.</summary>
    public static CompiledModel? TryCompile(MobileOneNetwork network, IsaLevel isa, int threads, out string skipped)
    {
        skipped = string.Empty;
        if (!CompiledModel.IsSupported(isa))
        {
            skipped = $"{isa} not supported by this CPU: path skipped";
            return null;
        }

        return CompiledModel.Compile(network, new InferenceOptions { Isa = isa, Threads = threads });
    }

    /// <summary>|actual - expected| within 1e-4 of the expected values' largest magnitude.</summary>
    public static void AssertClose(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, string what, double tolerance = 1e-4)
    {
        Assert.Equal(expected.Length, actual.Length);
        double scale = Math.Max(Reference.MaxAbs(expected), 1e-6);
        double diff = Reference.MaxAbsDiff(actual, expected);
        Assert.True(diff <= tolerance * scale, $"{what}: max diff {diff:e3} > {tolerance} x {scale:g4}");
    }

    public static Tensor RandomInput(Random rng, int batch, int channels, int h, int w) =>
        new([batch, channels, h, w], Reference.RandomArray(rng, batch * channels * h * w));

    /// <summary>A random fused network: every weight and bias random, so no layer is near the identity.</summary>
    public static MobileOneNetwork RandomFused(MobileOneConfig config, int seed)
    {
        var net = MobileOneNetwork.Create(config, fused: true);
        var rng = new Random(seed);
        foreach (var entry in net.State())
        {
            var data = entry.Value.Data;
            double scale = entry.Value.Rank == 4 ? Math.Sqrt(2.0 / Math.Max(1, entry.Value.Shape[1] * entry.Value.Shape[2] * entry.Value.Shape[3])) : 0.1;
            for (int i = 0; i < data.Length; i++)
            {
                data[i] = (float)((rng.NextDouble() * 2 - 1) * scale * 1.7);
            }
        }

        return net;
    }
}
