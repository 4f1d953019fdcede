using MobileOne.Graph;
using MobileOne.Models;
using MobileOne.Nn;
using MobileOne.Tensors;

namespace MobileOne.Compression;

/// <summary>
/// A fused MobileOne with some convolutions deployed as low-rank factors plus a sparse part
/// (<see cref="CompressedConv"/>): inference only. Its <see cref="ToGraph"/> is the fused network's graph with each
/// compressed layer's convolution replaced by the factor convolutions and the sparse convolution, so the engine,
/// the ONNX exporter and the counters run it like any graph. Training is not supported: the training layers (Nn)
/// have no sparse convolution and the network has no Backward (docs/ideas.md).
/// </summary>
public sealed class CompressedNetwork : ClassifierNetwork
{
    private readonly Dictionary<string, CompressedConv> layers;
    private readonly List<CompressedConv> ordered;

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

    /// <summary>Not supported: a compressed network runs on the engine (<c>CompiledModel.Compile(network)</c>).</summary>
    public override Tensor Forward(Tensor input) =>
        throw new NotSupportedException("A compressed network is inference-only: compile it (CompiledModel.Compile) and run it on the engine.");

    /// <summary>Not supported: the factorized and sparse layers have no training implementation.</summary>
    public override Tensor? Backward(Tensor gradLogits, bool inputGradient = false) =>
        throw new NotSupportedException("A compressed network cannot be trained (docs/ideas.md).");

    /// <summary>Not supported (training and EMA need it).</summary>
    public override ClassifierNetwork CreateEmpty() =>
        throw new NotSupportedException("A compressed network cannot be trained (docs/ideas.md).");

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
