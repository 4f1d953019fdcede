using MobileOne.Models;
using MobileOne.Tensors;

namespace MobileOne.Inference;

/// <summary>
/// A MobileOne backbone compiled for its feature maps, for detection and segmentation heads (an FPN, a U-Net
/// decoder): what timm's <c>create_model("mobileone_s0", features_only=True)</c> returns. <see cref="Run"/> gives the
/// stage outputs at strides 4, 8, 16 and 32 (by default) as NCHW tensors [N, C_stage, ceil(H / stride), ceil(W / stride)];
/// the classifier head is not run. The network runs in the form it is in: fuse it first
/// (<see cref="Reparam.Reparameterizer.Fuse(MobileOneNetwork)"/>) for speed; the maps of the fused and the train-time network agree to
/// float32 rounding.
/// <para>Thread safety and determinism are those of <see cref="CompiledModel"/>, which this wraps.</para>
/// </summary>
/// <example>
/// <code>
/// var fused = Reparameterizer.Fuse(ModelCheckpoint.Load("mobileone_s0.pth.tar").Network);
/// using var backbone = FeatureExtractor.Compile(fused, new InferenceOptions { Threads = 2 });
/// IReadOnlyList&lt;Tensor&gt; maps = backbone.Run(images);          // images: [N, 3, H, W]
/// // maps[0]: [N, 48, H/4, W/4], maps[1]: [N, 128, H/8, W/8], maps[2]: [N, 256, H/16, W/16], maps[3]: [N, 1024, H/32, W/32] (S0)
/// </code>
/// </example>
public sealed class FeatureExtractor : IDisposable
{
    private readonly CompiledModel model;

    private FeatureExtractor(CompiledModel model, IReadOnlyList<FeatureMapInfo> features)
    {
        this.model = model;
        Features = features;
    }

    /// <summary>
    /// Compiles the stem and stages of <paramref name="network"/> (up to the deepest stride asked for) with the
    /// outputs at <paramref name="strides"/>: null for 4, 8, 16, 32; 2 (the stem) may be added. The compiled model
    /// copies the weights.
    /// </summary>
    /// <exception cref="ArgumentException">A stride the network has no feature map at.</exception>
    public static FeatureExtractor Compile(MobileOneNetwork network, InferenceOptions? options = null, IReadOnlyList<int>? strides = null)
    {
        var graph = network.ToFeatureGraph(strides);
        var names = graph.Taps.Select(t => t.Name).ToHashSet();
        var features = network.FeatureInfo().Where(f => names.Contains(f.Module)).ToArray();
        return new FeatureExtractor(CompiledModel.Compile(graph, options), features);
    }

    /// <summary>The maps <see cref="Run"/> returns, in order: timm's module name, channels and stride of each.</summary>
    public IReadOnlyList<FeatureMapInfo> Features { get; }

    /// <summary>Channels of the input images.</summary>
    public int InChannels => model.InChannels;

    /// <summary>
    /// Runs an NCHW batch [N, in_chans, H, W] and returns one NCHW tensor per entry of <see cref="Features"/>,
    /// shallowest first.
    /// </summary>
    public IReadOnlyList<Tensor> Run(Tensor inputNchw)
    {
        var (_, maps) = model.RunWithFeatures(inputNchw);
        var result = new Tensor[Features.Count];
        for (int i = 0; i < result.Length; i++)
        {
            var (name, value) = maps[i];
            if (name != Features[i].Module)
            {
                throw new InvalidOperationException($"Feature {i} came back as {name}, expected {Features[i].Module}.");
            }

            // A 1x1 map (an input of at most the stride) comes back as [N, C]; give every map its NCHW rank.
            result[i] = value.Rank == 4 ? value : value.Reshape(value.Dim(0), value.Dim(1), 1, 1);
        }

        return result;
    }

    /// <summary>Releases the engine's workers and buffers.</summary>
    public void Dispose() => model.Dispose();
}
