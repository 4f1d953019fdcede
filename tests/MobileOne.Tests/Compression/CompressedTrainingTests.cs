using MobileOne.Compression;
using MobileOne.Graph;
using MobileOne.Inference;
using MobileOne.IO;
using MobileOne.IO.Checkpoints;
using MobileOne.Models;
using MobileOne.Nn;
using MobileOne.Tensors;
using MobileOne.Tests.Inference;
using MobileOne.Tests.Nn;
using MobileOne.Training;

namespace MobileOne.Tests.Compression;

/// <summary>
/// Fine-tuning a compressed network: its training forward equals a float64 evaluation of its layer graph (the
/// engine's graph, parameters read by their checkpoint names) and the engine's output; its backward equals central
/// differences of the loss for every parameter, the sparse parts' stored values included; an optimizer step keeps
/// every sparsity pattern and the zeros off it, changes what the engine and the checkpoint see, and the checkpoint
/// keeps its keys and indices.
/// </summary>
public class CompressedTrainingTests
{
    /// <summary>A fused 4-block MobileOne (stem 16 channels) with random weights; every dense convolution (the 3x3 stride-2 stem and the four pointwise ones) compressed with a sparse part.</summary>
    internal static CompressedNetwork TinyCompressed(int seed, int classes = 5, int inChans = 3, string se = "0/0/0/0")
    {
        var config = MobileOneConfig.Parse($"units=1/1/1/1,widths=0.25/0.25/0.25/0.25,k=1,se={se},classes={classes},in_chans={inChans}");
        var fused = MobileOneNetwork.Create(config, fused: true);
        var rng = new Random(seed);
        foreach (var entry in fused.State().Where(e => e.Kind == StateKind.Parameter))
        {
            int[] shape = entry.Value.Shape;
            double std = shape.Length > 1 ? Math.Sqrt(2.0 / (entry.Value.Length / shape[0])) : 0.1;
            WeightInit.FillNormal(rng, entry.Value.Data, 0, std);
        }

        var options = new CompressionOptions { RankRatio = 0.25, Sparsity = 0.05, Layers = CompressionLayers.All, Alternation = new LowRankSparseOptions { MaxIterations = 2 } };
        var (network, rows) = NetworkCompressor.Compress(fused, options);
        Assert.Equal(5, rows.Count(r => r.Compressed));
        Assert.All(network.Layers, l => Assert.NotEmpty(l.SparseIndices));
        return network;
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void The_training_form_is_the_graph_and_its_backward_matches_finite_differences(bool training)
    {
        var rng = new Random(training ? 71 : 72);
        var network = TinyCompressed(training ? 1 : 2);
        var p = DoubleReference.Parameters(network);
        int n = 2, size = 16;
        var x = GradientCheckTests.Random(rng, n, 3, size, size);
        int[] labels = [1, 4];
        if (training)
        {
            network.Train();
        }
        else
        {
            network.Eval(gradEnabled: true);
        }

        var graph = network.ToGraph();
        var logits = network.Forward(x);
        var xd = DoubleReference.ToDouble(x.Data);
        double[] Forward() => GraphReference(xd, n, size, graph, p);
        GradientCheckTests.AssertClose(Forward(), logits.Data, "logits");

        var loss = new CrossEntropyLoss(0.1);
        loss.Forward(logits, labels);
        network.ZeroGrad();
        var dx = network.Backward(loss.Backward(), inputGradient: true)!;
        double Loss() => DoubleReference.CrossEntropy(Forward(), n, network.NumClasses, labels, 0.1);
        GradCheck.Check("dx", dx.Data, xd, Loss, rng, samples: 6);
        var names = network.NamedParameters().Select(np => np.Name).ToList();
        Assert.Equal(network.Parameters().Select(e => e.Name).Order(), names.Order());
        Assert.Contains("stem.reparam_conv.sparse.values", names);
        Assert.Contains("stages.3.1.reparam_conv.lowrank.0.weight", names);

        // Each trained layer is a node of the graph the engine runs, under the same name.
        var nodeNames = graph.Nodes.Select(node => node.Name).ToHashSet();
        Assert.All(names, name => Assert.Contains(name[..name.LastIndexOf('.')], nodeNames));
        foreach (var np in network.NamedParameters())
        {
            GradCheck.Check(np.Name, np.Parameter.Grad!.Data, p[np.Name], Loss, rng, samples: 3);
        }
    }

    [Fact]
    public void A_step_keeps_every_sparsity_pattern_and_the_engine_and_checkpoint_see_the_trained_weights()
    {
        var rng = new Random(73);
        var network = TinyCompressed(3);
        var patterns = network.Layers.ToDictionary(l => l.Name, l => (int[])l.SparseIndices.Clone());
        var before = network.State().ToDictionary(e => e.Name, e => (float[])e.Value.Data.Clone());
        var x = GradientCheckTests.Random(rng, 4, 3, 16, 16);

        using (var engine = CompiledModel.Compile(network))
        {
            network.Eval();
            EngineTestSupport.AssertClose(engine.Run(x).Data, network.Forward(x).Data, "untrained: training form vs engine");
        }

        // Momentum and weight decay on every weight: an entry off the pattern would move if it were a parameter.
        network.Train();
        var groups = ParameterGroups.WeightDecaySplit(network, 0.05, 0.01);
        var step = new TrainStep(network, new Sgd(groups, 0.9, nesterov: true), new CrossEntropyLoss(0.1));
        for (int i = 0; i < 3; i++)
        {
            step.Run(x, [0, 1, 2, 3]);
        }

        foreach (var layer in network.Layers)
        {
            Assert.Equal(patterns[layer.Name], layer.SparseIndices);
            var sparse = network.ToGraph().Nodes.OfType<SparseConvNode>().Single(s => s.Name == layer.Name + CompressedConv.SparseSuffix);
            var dense = sparse.ToDense().Weight;
            var on = patterns[layer.Name].ToHashSet();
            Assert.All(Enumerable.Range(0, dense.Length).Where(i => !on.Contains(i)), i => Assert.Equal(0f, dense[i]));
            Assert.NotEqual(before[layer.Name + CompressedConv.SparseSuffix + ".values"], layer.SparseValues);
            Assert.NotEqual(before[layer.Name + CompressedConv.ExpandSuffix + ".weight"], layer.Expand);
        }

        Assert.NotEqual(before["head.fc.weight"], network.State().Single(e => e.Name == "head.fc.weight").Value.Data);

        // The engine compiles the trained weights (they are the network's own arrays), and the checkpoint round trip
        // keeps keys, shapes, indices and values.
        network.Eval();
        using var trained = CompiledModel.Compile(network);
        var expected = network.Forward(x).Data;
        EngineTestSupport.AssertClose(trained.Run(x).Data, expected, "trained: training form vs engine");
        using var dir = new TempDir();
        string path = dir.File("trained.safetensors");
        CompressedCheckpoint.Save(network, path);
        var reloaded = (CompressedNetwork)ModelCheckpoint.LoadClassifier(path).Network;
        Assert.Equal(network.State().Select(e => e.Name), reloaded.State().Select(e => e.Name));
        Assert.Equal(patterns.Values, reloaded.Layers.Select(l => l.SparseIndices));
        Assert.All(network.State().Zip(reloaded.State()), pair => Assert.Equal(pair.First.Value.Data, pair.Second.Value.Data));
        using var reloadedEngine = CompiledModel.Compile(reloaded);
        Assert.Equal(trained.Run(x).Data, reloadedEngine.Run(x).Data);
    }

    [Fact]
    public void An_empty_copy_has_the_same_layers_and_patterns_and_takes_the_state()
    {
        var network = TinyCompressed(4);
        var copy = (CompressedNetwork)network.CreateEmpty();
        Assert.Equal(network.Layers.Select(l => l.SparseIndices), copy.Layers.Select(l => l.SparseIndices));
        Assert.All(copy.Layers, l => Assert.All(l.SparseValues, v => Assert.Equal(0f, v)));
        copy.CopyStateFrom(network);
        var x = GradientCheckTests.Random(new Random(74), 2, 3, 16, 16);
        network.Eval();
        copy.Eval();
        Assert.Equal(network.Forward(x).Data, copy.Forward(x).Data);
    }

    [Fact]
    public void Squeeze_excite_is_refused_when_training_starts_but_still_runs_on_the_engine()
    {
        var network = TinyCompressed(5, se: "0/0/0/1");
        var e = Assert.Throws<NotSupportedException>(() => network.NamedParameters().ToList());
        Assert.Contains("squeeze-excite", e.Message);
        using var engine = CompiledModel.Compile(network);
        Assert.Equal(5, engine.Run(GradientCheckTests.Random(new Random(75), 1, 3, 16, 16)).Length);
    }

    /// <summary>
    /// The layer graph evaluated from its nodes' definitions in float64, with the weights taken from
    /// <paramref name="p"/> by node name (so perturbing p perturbs the network): a sparse node's weight is its stored
    /// values at the positions its CSR structure names.
    /// </summary>
    private static double[] GraphReference(double[] x, int n, int size, LayerGraph graph, Dictionary<string, double[]> p)
    {
        var values = new List<(double[] Data, int C, int H, int W)> { (x, graph.InputChannels, size, size) };
        foreach (var node in graph.Nodes)
        {
            var a = values[node.Inputs[0]];
            values.Add(node switch
            {
                ConvNode c => Conv(a, n, p[c.Name + ".weight"], c.OutChannels, c.KernelHeight, c.StrideH, c.PadH, c.Groups, c.Bias is null ? null : p[c.Name + ".bias"]),
                SparseConvNode s => Conv(a, n, Scatter(s, p[s.Name + ".values"]), s.OutChannels, s.KernelHeight, s.StrideH, s.PadH, 1, null),
                ActivationNode => (DoubleReference.Relu(a.Data), a.C, a.H, a.W),
                AddNode => (node.Inputs.Select(i => values[i].Data).Aggregate((u, v) => u.Zip(v, (s, t) => s + t).ToArray()), a.C, a.H, a.W),
                GlobalAveragePoolNode => (DoubleReference.GlobalAverage(a.Data, n, a.C, a.H * a.W), a.C, 1, 1),
                LinearNode l => (DoubleReference.Linear(a.Data, n, a.C, p[l.Name + ".weight"], p[l.Name + ".bias"], l.OutFeatures), l.OutFeatures, 1, 1),
                _ => throw new NotSupportedException(node.GetType().Name),
            });
        }

        return values[^1].Data;
    }

    private static (double[], int, int, int) Conv((double[] Data, int C, int H, int W) a, int n, double[] weight, int o, int k, int stride, int pad, int groups, double[]? bias)
    {
        var y = DoubleReference.Conv(a.Data, n, a.C, a.H, a.W, weight, o, k, stride, pad, groups, bias, out int ho, out int wo);
        return (y, o, ho, wo);
    }

    private static double[] Scatter(SparseConvNode s, double[] values)
    {
        var w = new double[(long)s.OutChannels * s.PatchSize];
        for (int o = 0; o < s.OutChannels; o++)
        {
            for (int e = s.RowStarts[o]; e < s.RowStarts[o + 1]; e++)
            {
                w[((long)o * s.PatchSize) + s.Columns[e]] = values[e];
            }
        }

        return w;
    }
}
