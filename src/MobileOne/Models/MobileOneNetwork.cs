using MobileOne.Graph;
using MobileOne.Kernels;
using MobileOne.Nn;
using MobileOne.Tensors;

namespace MobileOne.Models;

/// <summary>Logits plus, on request, the stem output and each stage's output (timm's feature taps).</summary>
public sealed record NetworkOutput(Tensor Logits, IReadOnlyList<(string Name, Tensor Value)> Features);

/// <summary>
/// A whole MobileOne network, train-time (unfused) or fused. State names are timm's:
/// stem., stages.{s}.{b}., head.fc.
/// </summary>
public sealed class MobileOneNetwork : ClassifierNetwork
{
    private readonly ActivationBuffer pooled = new();
    private readonly ActivationBuffer gradFeatures = new();
    private Tensor? savedFeatures;
    private readonly List<ActivationLayout> handOffs = [];

    private MobileOneNetwork(MobileOneConfig config, bool fused)
    {
        Config = config;
        IsFused = fused;
        Func<BlockSpec, MobileOneBlock> create = fused ? MobileOneBlock.CreateFused : MobileOneBlock.CreateTrainTime;
        Stem = create(config.StemSpec);
        var stages = new List<MobileOneBlock>[MobileOneConfig.StageCount];
        for (int s = 0; s < stages.Length; s++)
        {
            stages[s] = [];
        }

        foreach (var (stage, _, spec) in config.StageBlocks())
        {
            stages[stage].Add(create(spec));
        }

        Stages = stages;
        Head = new Linear(config.FeatureChannels, config.NumClasses);
    }

    /// <summary>The architecture.</summary>
    public MobileOneConfig Config { get; }

    /// <summary>Whether every block is fused.</summary>
    public override bool IsFused { get; }

    /// <summary>timm's name ("mobileone_s0".."mobileone_s4") when the backbone is a published variant's (k ignored once fused), else "mobileone_custom".</summary>
    public override string Architecture => "mobileone_" + Config.MatchVariantName(ignoreBranches: IsFused);

    /// <inheritdoc/>
    public override int InChans => Config.InChans;

    /// <inheritdoc/>
    public override bool Reparameterizable => true;

    /// <inheritdoc/>
    public override string Description => Config + (IsFused ? " (fused)" : string.Empty);

    /// <inheritdoc/>
    public override ClassifierNetwork CreateEmpty() => Create(Config, IsFused);

    /// <inheritdoc/>
    public override int NumClasses => Config.NumClasses;

    /// <summary>The stem (timm's stem.).</summary>
    public MobileOneBlock Stem { get; }

    /// <summary>The blocks of each stage (timm's stages.{s}.{b}.).</summary>
    public IReadOnlyList<IReadOnlyList<MobileOneBlock>> Stages { get; }

    /// <summary>The classifier (timm's head.fc).</summary>
    public Linear Head { get; }

    /// <summary>A network of <paramref name="config"/>, train-time or fused, with zero-initialised weights (see <see cref="WeightInit"/>).</summary>
    public static MobileOneNetwork Create(MobileOneConfig config, bool fused = false) => new(config, fused);

    /// <summary>Every block with its timm prefix ("stem.", "stages.0.0.", ...).</summary>
    public IEnumerable<(string Prefix, MobileOneBlock Block)> Blocks()
    {
        yield return ("stem.", Stem);
        for (int s = 0; s < Stages.Count; s++)
        {
            for (int b = 0; b < Stages[s].Count; b++)
            {
                yield return ($"stages.{s}.{b}.", Stages[s][b]);
            }
        }
    }

    /// <summary>Logits [N, num_classes] of an NCHW batch (eval mode unless <see cref="Module.Train"/> was called).</summary>
    public override Tensor Forward(Tensor input) => Forward(input, withFeatures: false).Logits;

    /// <summary>
    /// Forward pass. Features are named stem, stage1..stage4 (stage k is timm's stages.{k-1}).
    /// Without gradients (the default, eval mode) this is the stateless inference path. With gradients enabled
    /// (<see cref="Module.Train"/>: BatchNorm batch statistics; or <c>Eval(gradEnabled: true)</c>) every layer keeps
    /// what <see cref="Backward"/> needs and the logits and features are tensors the network owns until its next Forward.
    /// </summary>
    public NetworkOutput Forward(Tensor input, bool withFeatures)
    {
        Shapes.RequireNchw(input, Config.InChans, "network input");
        var features = new List<(string, Tensor)>();
        Tensor x = Stem.Forward(input);
        if (withFeatures)
        {
            features.Add(("stem", x));
        }

        var layout = ActivationLayout.Nchw;
        handOffs.Clear();
        for (int s = 0; s < Stages.Count; s++)
        {
            for (int b = 0; b < Stages[s].Count; b++)
            {
                var block = Stages[s][b];
                var next = b + 1 < Stages[s].Count ? Stages[s][b + 1] : s + 1 < Stages.Count && !withFeatures ? Stages[s + 1][0] : null;
                var handedOn = HandOffLayout(block, next, layout.Dims(x));
                x = block.Forward(x, layout, handedOn);
                layout = handedOn;
                handOffs.Add(handedOn);
            }

            if (withFeatures)
            {
                features.Add(($"stage{s + 1}", x));
            }
        }

        int n = x.Dim(0), c = x.Dim(1);
        using var headScope = OpProfile.Measure("head", "fwd pool+linear");
        var pool = GradEnabled ? pooled.Get(n, c) : new Tensor(n, c);
        Pooling.GlobalAverage(x.Data, pool.Data, n, c, x.Dim(2) * x.Dim(3));
        savedFeatures = GradEnabled ? x : null;
        return new NetworkOutput(Head.Forward(pool), features);
    }

    /// <summary>
    /// Tests: false keeps every tensor between blocks NCHW (<see cref="HandOffLayout"/>), so the two ways can be compared.
    /// </summary>
    internal static bool HandsOffChwn { get; set; } = true;

    /// <summary>The layout each block of the last Forward wrote its output in (tests, diagnostics).</summary>
    internal IReadOnlyList<ActivationLayout> LastHandOffs => handOffs;

    /// <summary>
    /// The layout <paramref name="block"/> writes its output in for <paramref name="next"/> (null: the head or a
    /// feature map, which read NCHW): CHWN when, with gradients enabled, both blocks' training passes work in it
    /// (<see cref="MobileOneBlock.WorksInChwn"/>), so neither transposes the tensor between them (nor its gradient).
    /// </summary>
    private ActivationLayout HandOffLayout(MobileOneBlock block, MobileOneBlock? next, (int Images, int Channels, int Height, int Width) input)
    {
        if (!GradEnabled || !HandsOffChwn || next is null || !block.WorksInChwn(input.Images, input.Height, input.Width))
        {
            return ActivationLayout.Nchw;
        }

        var (ho, wo) = block.OutputSize(input.Height, input.Width);
        return next.WorksInChwn(input.Images, ho, wo) ? ActivationLayout.Chwn : ActivationLayout.Nchw;
    }

    /// <summary>
    /// Backward from the gradient of the loss with respect to the logits of the last Forward with gradients enabled:
    /// head, global pooling, stages in reverse, stem. Accumulates into every <see cref="Parameter.Grad"/>. Returns the
    /// gradient with respect to the input images only when <paramref name="inputGradient"/> is true.
    /// </summary>
    public override Tensor? Backward(Tensor gradLogits, bool inputGradient = false)
    {
        var features = savedFeatures ?? throw new InvalidOperationException("MobileOneNetwork.Backward needs a Forward with gradients enabled first (call Train() or Eval(gradEnabled: true)).");
        var headScope = OpProfile.Measure("head", "bwd linear+pool");
        var gradPooled = Head.Backward(gradLogits)!;
        int n = features.Dim(0), c = features.Dim(1), plane = features.Dim(2) * features.Dim(3);
        var g = gradFeatures.Get(features.Shape);
        float inv = 1f / plane;
        for (int i = 0; i < n * c; i++)
        {
            g.Data.AsSpan(i * plane, plane).Fill(gradPooled.Data[i] * inv);
        }

        headScope.Dispose();
        Tensor grad = g;
        for (int s = Stages.Count - 1; s >= 0; s--)
        {
            for (int b = Stages[s].Count - 1; b >= 0; b--)
            {
                grad = Stages[s][b].Backward(grad)!;
            }
        }

        return Stem.Backward(grad, inputGradient);
    }

    /// <summary>The graph of <see cref="MobileOneGraph.ToGraph"/> (logits only).</summary>
    public override LayerGraph ToGraph() => MobileOneGraph.ToGraph(this);

    /// <inheritdoc/>
    public override IEnumerable<StateEntry> State(string prefix = "") =>
        Blocks().SelectMany(b => b.Block.State(prefix + b.Prefix)).Concat(Head.State(prefix + "head.fc."));

    /// <inheritdoc/>
    public override IEnumerable<Module> Children() => Blocks().Select(b => (Module)b.Block).Append(Head);

    /// <inheritdoc/>
    public override IEnumerable<NamedParameter> NamedParameters(string prefix = "") =>
        Blocks().SelectMany(b => b.Block.NamedParameters(prefix + b.Prefix)).Concat(Head.NamedParameters(prefix + "head.fc."));

    /// <inheritdoc/>
    public override void ReleaseBuffers()
    {
        pooled.Release();
        gradFeatures.Release();
        savedFeatures = null;
        base.ReleaseBuffers();
    }
}
