using MobileOne.Graph;
using MobileOne.Kernels;
using MobileOne.Models;
using MobileOne.Models.Zoo;
using MobileOne.Nn;
using MobileOne.Tensors;

namespace MobileOne.Compression;

/// <summary>
/// A fused MobileOne with some convolutions deployed as low-rank factors plus a sparse part
/// (<see cref="CompressedConv"/>). Its <see cref="ToGraph"/> is the fused network's graph with each compressed
/// layer's convolution replaced by the factor convolutions and the sparse convolution, so the engine, the ONNX
/// exporter and the counters run it like any graph. It also trains (fine-tuning after compression): Forward and
/// Backward run a <see cref="ZooNetwork"/> of operations built one to one from that graph, whose layers hold this
/// network's weight arrays themselves (<see cref="Conv2d"/> for the fused and factor convolutions, <see cref="SparseConv2d"/>
/// for S, trained through its stored values so the pattern never changes), so a step updates what
/// <see cref="ToGraph"/>, <see cref="State"/> and the checkpoint read. Squeeze-excite (MobileOne-S4) has no such
/// training form and is refused when training starts (docs/ideas.md).
/// </summary>
public sealed class CompressedNetwork : ClassifierNetwork
{
    private readonly Dictionary<string, CompressedConv> layers;
    private readonly List<CompressedConv> ordered;
    private ZooNetwork? training;
    private string? untrainable;

    /// <summary>
    /// <paramref name="fused"/> with the layers of <paramref name="compressed"/> (by node name) replaced; the fused
    /// network's own weights for those layers are not used.
    /// </summary>
    public CompressedNetwork(MobileOneNetwork fused, IEnumerable<CompressedConv> compressed)
    {
        ArgumentNullException.ThrowIfNull(fused);
        ArgumentNullException.ThrowIfNull(compressed);
        if (!fused.IsFused)
        {
            throw new ArgumentException("A compressed network is built on a fused MobileOne.", nameof(fused));
        }

        Base = fused;
        layers = compressed.ToDictionary(c => c.Name, StringComparer.Ordinal);
        var convs = fused.ToGraph().Nodes.OfType<ConvNode>().ToList();
        var names = convs.Select(c => c.Name).ToHashSet(StringComparer.Ordinal);
        foreach (string name in layers.Keys.Where(n => !names.Contains(n)))
        {
            throw new ArgumentException($"The network has no convolution named {name}.", nameof(compressed));
        }

        ordered = convs.Where(c => layers.ContainsKey(c.Name)).Select(c => layers[c.Name]).ToList();
    }

    /// <summary>The fused network whose other layers this one keeps.</summary>
    public MobileOneNetwork Base { get; }

    /// <summary>The compressed layers, in graph order.</summary>
    public IReadOnlyList<CompressedConv> Layers => ordered;

    /// <summary>The fused network's architecture name (preprocessing and labels follow it).</summary>
    public override string Architecture => Base.Architecture;

    /// <inheritdoc/>
    public override int InChans => Base.InChans;

    /// <inheritdoc/>
    public override int NumClasses => Base.NumClasses;

    /// <summary>False: it is already the deployed form.</summary>
    public override bool Reparameterizable => false;

    /// <summary>False: there are no branches to fuse (see <see cref="Reparameterizable"/>).</summary>
    public override bool IsFused => false;

    /// <inheritdoc/>
    public override string Description => $"{Base.Config} (fused, {layers.Count} convolutions low-rank + sparse)";

    /// <summary>The graph with the compressed layers' nodes (the dense weights of those layers are left out).</summary>
    public override LayerGraph ToGraph() => CompressedGraph.Replace(Base.ToGraph(), layers);

    /// <summary>
    /// Logits [N, classes] of an NCHW batch with the training layers (see <see cref="Module"/> for the modes); the engine
    /// (<c>CompiledModel.Compile(network)</c>) computes the same with its own kernels.
    /// </summary>
    public override Tensor Forward(Tensor input) => TrainingForm().Forward(input);

    /// <summary>Backward of the last Forward with gradients (see <see cref="ZooNetwork.Backward"/>).</summary>
    public override Tensor? Backward(Tensor gradLogits, bool inputGradient = false) => TrainingForm().Backward(gradLogits, inputGradient);

    /// <summary>
    /// The same architecture (fused network, layers, ranks and sparsity patterns) with zero weights: the EMA copy and
    /// the resume state are of this form.
    /// </summary>
    public override ClassifierNetwork CreateEmpty() =>
        new CompressedNetwork(
            (MobileOneNetwork)Base.CreateEmpty(),
            ordered.Select(c => c with
            {
                Reduce = new float[c.Reduce.Length],
                Expand = new float[c.Expand.Length],
                Bias = new float[c.Bias.Length],
                SparseIndices = (int[])c.SparseIndices.Clone(),
                SparseValues = new float[c.SparseValues.Length],
            }));

    /// <summary>Trainable parameters in the graph's order, named as in <see cref="State"/> (e.g. <c>X.lowrank.0.weight</c>, <c>X.sparse.values</c>).</summary>
    public override IEnumerable<NamedParameter> NamedParameters(string prefix = "") => TrainingForm().NamedParameters(prefix);

    /// <summary>The training form, so that modes and buffer releases reach its layers; none for a network it cannot train.</summary>
    public override IEnumerable<Module> Children() => TryTrainingForm() is { } net ? [net] : [];

    private ZooNetwork TrainingForm() =>
        TryTrainingForm() ?? throw new NotSupportedException($"A compressed {Base.Config} cannot be trained: {untrainable}");

    /// <summary>
    /// The operations of <see cref="ToGraph"/>, one per node and with the node's name, over this network's own weight
    /// arrays (built once); null, with the reason kept, when a node has no training form.
    /// </summary>
    private ZooNetwork? TryTrainingForm()
    {
        if (training is not null || untrainable is not null)
        {
            return training;
        }

        var graph = ToGraph();
        var ops = new List<NetworkOp>(graph.Nodes.Count);
        var channels = new List<int> { graph.InputChannels };
        foreach (var node in graph.Nodes)
        {
            NetworkOp? op = node switch
            {
                ConvNode c when c.KernelHeight == c.KernelWidth && c.StrideH == c.StrideW && c.PadH == c.PadW && c.DilationH == 1 && c.DilationW == 1 =>
                    new ConvOp(c.Name, c.Input, Conv2d.Over(c.InChannels, c.OutChannels, c.KernelHeight, c.StrideH, c.PadH, c.Groups, c.Weight, c.Bias)),
                SparseConvNode s when s.KernelHeight == s.KernelWidth && s.StrideH == s.StrideW && s.PadH == s.PadW =>
                    new SparseConvOp(s.Name, s.Input, new SparseConv2d(s.InChannels, s.OutChannels, s.KernelHeight, s.StrideH, s.PadH, SparseOf(s).SparseIndices, s.Values)),
                ActivationNode a when a.Activation is ActivationKind.Relu or ActivationKind.Relu6 => new ActivationOp(a.Name, a.Input, a.Activation),
                AddNode a => new AddOp(a.Name, a.Inputs),
                GlobalAveragePoolNode g => new GlobalPoolOp(g.Name, g.Input),
                LinearNode l when l.Bias is not null => new LinearOp(l.Name, l.Input, new Linear(l.InFeatures, l.OutFeatures, l.Weight, l.Bias)),
                _ => null,
            };

            if (op is null)
            {
                untrainable = node is SqueezeExciteNode
                    ? $"its squeeze-excite layer {node.Name} has no training form here (fine-tuning supports the S0-S3 layers: convolutions, ReLU, pooling, the classifier)."
                    : $"its layer {node.Name} ({node.GetType().Name}) has no training form here.";
                return null;
            }

            ops.Add(op);
            channels.Add(graph.ChannelsOf(channels.Count));
        }

        if (graph.Output != graph.Nodes.Count)
        {
            untrainable = "its graph does not end with the classifier.";
            return null;
        }

        training = new ZooNetwork(Architecture, isFused: true, ops, channels, init: []);
        return training;
    }

    // The sparse node's flat indices (the node holds them as CSR); its values array is the layer's own.
    private CompressedConv SparseOf(SparseConvNode node) => layers[node.Name[..^CompressedConv.SparseSuffix.Length]];

    /// <summary>
    /// The fused network's state without the compressed layers' dense weights and biases, then each compressed layer's
    /// factors, bias and sparse values (the sparse indices are integers and live only in the checkpoint).
    /// </summary>
    public override IEnumerable<StateEntry> State(string prefix = "")
    {
        var replaced = layers.Keys.SelectMany(n => new[] { n + ".weight", n + ".bias" }).ToHashSet(StringComparer.Ordinal);
        foreach (var entry in Base.State(prefix))
        {
            if (!replaced.Contains(entry.Name[prefix.Length..]))
            {
                yield return entry;
            }
        }

        foreach (var c in Layers)
        {
            string name = prefix + c.Name;
            yield return new StateEntry(name + CompressedConv.ReduceSuffix + ".weight", new Tensor([c.Rank, c.InChannels, c.KernelHeight, c.KernelWidth], c.Reduce), StateKind.Parameter);
            yield return new StateEntry(name + CompressedConv.ExpandSuffix + ".weight", new Tensor([c.OutChannels, c.Rank, 1, 1], c.Expand), StateKind.Parameter);
            yield return new StateEntry(name + CompressedConv.ExpandSuffix + ".bias", new Tensor([c.OutChannels], c.Bias), StateKind.Parameter);
            if (c.SparseValues.Length > 0)
            {
                yield return new StateEntry(name + CompressedConv.SparseSuffix + ".values", new Tensor([c.SparseValues.Length], c.SparseValues), StateKind.Parameter);
            }
        }
    }
}

/// <summary>Rewrites a layer graph with some convolutions replaced by their compressed form.</summary>
public static class CompressedGraph
{
    /// <summary>
    /// A copy of <paramref name="graph"/> (nodes share their weight arrays) in which every <see cref="ConvNode"/> named in
    /// <paramref name="layers"/> is replaced by that layer's nodes (<see cref="CompressedConv.Emit"/>); value ids are
    /// renumbered, the output and taps follow. Node kinds a fused MobileOne or a zoo network emits are supported.
    /// </summary>
    public static LayerGraph Replace(LayerGraph graph, IReadOnlyDictionary<string, CompressedConv> layers)
    {
        ArgumentNullException.ThrowIfNull(graph);
        ArgumentNullException.ThrowIfNull(layers);
        var result = new LayerGraph(graph.InputChannels);
        var map = new int[graph.Nodes.Count + 1];
        for (int i = 0; i < graph.Nodes.Count; i++)
        {
            var node = graph.Nodes[i];
            map[i + 1] = node is ConvNode conv && layers.TryGetValue(conv.Name, out var compressed)
                ? compressed.Emit(result, map[conv.Input])
                : result.Add(Renumber(node, map));
        }

        result.Output = map[graph.Output];
        foreach (var (name, value) in graph.Taps)
        {
            result.AddTap(name, map[value]);
        }

        return result;
    }

    // Records copy their base's Inputs array on `with`, so both the typed input and Inputs are set.
    private static GraphNode Renumber(GraphNode node, int[] map) => node switch
    {
        ConvNode n => n with { Input = map[n.Input], Inputs = [map[n.Input]] },
        SparseConvNode n => n with { Input = map[n.Input], Inputs = [map[n.Input]] },
        BatchNormNode n => n with { Input = map[n.Input], Inputs = [map[n.Input]] },
        ActivationNode n => n with { Input = map[n.Input], Inputs = [map[n.Input]] },
        SqueezeExciteNode n => n with { Input = map[n.Input], Inputs = [map[n.Input]] },
        PoolNode n => n with { Input = map[n.Input], Inputs = [map[n.Input]] },
        GlobalAveragePoolNode n => n with { Input = map[n.Input], Inputs = [map[n.Input]] },
        LinearNode n => n with { Input = map[n.Input], Inputs = [map[n.Input]] },
        AddNode n => n with { Inputs = n.Inputs.Select(v => map[v]).ToArray() },
        _ => throw new NotSupportedException($"Node {node.Name} ({node.GetType().Name}) cannot be carried into a compressed graph."),
    };
}
