using MobileOne.Graph;
using MobileOne.Nn;
using MobileOne.Tensors;

namespace MobileOne.Models.Zoo;

/// <summary>
/// A network of the model zoo (RepVGG, ResNet, MobileNet V1/V2): a list of <see cref="NetworkOp"/>s over values in
/// the order timm registers its modules, so <see cref="State"/> is timm's state_dict (names, shapes and order).
/// It trains with the same layers as MobileOne (Forward with gradients, Backward accumulating into every
/// parameter) and becomes a <see cref="LayerGraph"/> of the same shape for the engine, the ONNX exporter and the
/// counters (<see cref="ToGraph"/>). Built by the family builders (<see cref="RepVgg"/>, <see cref="ResNet"/>,
/// <see cref="MobileNet"/>) through <see cref="NetworkBuilder"/>.
/// </summary>
public sealed class ZooNetwork : ClassifierNetwork
{
    private readonly NetworkOp[] ops;
    private readonly int[] valueChannels;
    private readonly int[] lastUse;
    private readonly int[] consumers;
    private readonly ActivationBuffer[] gradBuffers;
    private Tensor?[] values = [];

    internal ZooNetwork(string architecture, bool isFused, IReadOnlyList<NetworkOp> ops, IReadOnlyList<int> valueChannels, IReadOnlyList<LayerInit> init)
    {
        Architecture = architecture;
        IsFused = isFused;
        this.ops = [.. ops];
        this.valueChannels = [.. valueChannels];
        Init = init;
        int count = this.ops.Length + 1;
        lastUse = new int[count];
        consumers = new int[count];
        for (int i = 0; i < this.ops.Length; i++)
        {
            foreach (int v in this.ops[i].Inputs)
            {
                if (v < 0 || v > i)
                {
                    throw new ArgumentException($"Operation '{this.ops[i].Name}' reads value {v}, which is not computed before it.");
                }

                lastUse[v] = i;
                consumers[v]++;
            }
        }

        if (this.ops.Length == 0 || this.ops[^1] is not LinearOp head)
        {
            throw new ArgumentException($"{architecture}: a zoo network ends with its classifier.");
        }

        NumClasses = head.Linear.OutFeatures;
        gradBuffers = [.. Enumerable.Range(0, count).Select(_ => new ActivationBuffer())];
    }

    /// <summary>timm's architecture name (e.g. "resnet50").</summary>
    public override string Architecture { get; }

    /// <summary>Whether the re-parameterizable blocks are in their deploy (fused) form.</summary>
    public override bool IsFused { get; }

    /// <summary>Image channels the network takes.</summary>
    public override int InChans => valueChannels[0];

    /// <summary>Classifier outputs.</summary>
    public override int NumClasses { get; }

    /// <inheritdoc/>
    public override bool Reparameterizable => ModelRegistry.Find(Architecture)?.Reparameterizable ?? false;

    /// <inheritdoc/>
    public override string Description => $"{Architecture}{(IsFused ? " (fused)" : string.Empty)}: {NumClasses} classes, in_chans {InChans}";

    /// <summary>A registry architecture of the same form with zero weights (networks written outside the registry cannot be copied this way).</summary>
    public override ClassifierNetwork CreateEmpty() =>
        (ModelRegistry.Find(Architecture) ?? throw new InvalidOperationException($"{Architecture} is not a registry architecture."))
            .CreateUninitialized(NumClasses, InChans, IsFused);

    /// <summary>The operations in timm's module order.</summary>
    public IReadOnlyList<NetworkOp> Operations => ops;

    /// <summary>How each layer is initialised (timm's scheme for the family), in operation order.</summary>
    internal IReadOnlyList<LayerInit> Init { get; }

    /// <summary>Logits [N, classes] of an NCHW batch (see <see cref="Module"/> for the modes).</summary>
    public override Tensor Forward(Tensor input)
    {
        Shapes.RequireNchw(input, InChans, "network input");
        bool grad = GradEnabled;
        var current = new Tensor?[ops.Length + 1];
        current[0] = input;
        var args = new List<Tensor>(4);
        for (int i = 0; i < ops.Length; i++)
        {
            args.Clear();
            foreach (int v in ops[i].Inputs)
            {
                args.Add(current[v]!);
            }

            current[i + 1] = ops[i].Forward(args, grad);
            if (!grad)
            {
                // Without gradients nothing is kept: a value is dropped after its last reader, so evaluation holds
                // only the live activations.
                foreach (int v in ops[i].Inputs)
                {
                    if (lastUse[v] == i && v != 0)
                    {
                        current[v] = null;
                    }
                }
            }
        }

        values = grad ? current : [];
        return current[^1]!;
    }

    /// <summary>
    /// Backward from the gradient of the loss with respect to the logits of the last Forward with gradients:
    /// operations in reverse, each value's gradient summed over its readers. Accumulates into every
    /// <see cref="Parameter.Grad"/>; returns the input gradient only when <paramref name="inputGradient"/> is true.
    /// </summary>
    public override Tensor? Backward(Tensor gradLogits, bool inputGradient = false)
    {
        if (values.Length == 0)
        {
            throw new InvalidOperationException($"{Architecture}: Backward needs a Forward with gradients enabled first (call Train() or Eval(gradEnabled: true)).");
        }

        var grads = new Tensor?[ops.Length + 1];
        var owned = new bool[ops.Length + 1];
        grads[^1] = gradLogits;
        for (int i = ops.Length - 1; i >= 0; i--)
        {
            var gradOutput = grads[i + 1] ?? throw new InvalidOperationException($"{Architecture}: the output of '{ops[i].Name}' is never used.");
            var needed = ops[i].Inputs.Select(v => v != 0 || inputGradient).ToArray();
            var inputGrads = ops[i].Backward(gradOutput, needed);
            for (int j = 0; j < inputGrads.Length; j++)
            {
                if (inputGrads[j] is { } g)
                {
                    Accumulate(grads, owned, ops[i].Inputs[j], g);
                }
            }

            grads[i + 1] = null;
        }

        return inputGradient ? grads[0] : null;
    }

    /// <summary>The layer graph of this network in its current form (weights shared, not copied).</summary>
    public override LayerGraph ToGraph()
    {
        var graph = new LayerGraph(InChans);
        var map = new int[ops.Length + 1];
        for (int i = 0; i < ops.Length; i++)
        {
            map[i + 1] = graph.Add(ops[i].ToNode([.. ops[i].Inputs.Select(v => map[v])], graph));
        }

        return graph;
    }

    /// <summary>Sets every weight as timm initialises this family (see <see cref="LayerInit"/>), from <paramref name="seed"/>.</summary>
    public void Initialize(int seed) => LayerInit.Apply(this, seed);

    /// <inheritdoc/>
    public override IEnumerable<StateEntry> State(string prefix = "") =>
        ops.Where(o => o.Layer is not null).SelectMany(o => o.Layer!.State(prefix + o.Name + "."));

    /// <inheritdoc/>
    public override IEnumerable<Module> Children() => ops.Select(o => o.Layer).OfType<Module>();

    /// <inheritdoc/>
    public override IEnumerable<NamedParameter> NamedParameters(string prefix = "") =>
        ops.Where(o => o.Layer is not null).SelectMany(o => o.Layer!.NamedParameters(prefix + o.Name + "."));

    /// <inheritdoc/>
    public override void ReleaseBuffers()
    {
        values = [];
        foreach (var op in ops)
        {
            op.ReleaseBuffers();
        }

        foreach (var b in gradBuffers)
        {
            b.Release();
        }

        base.ReleaseBuffers();
    }

    /// <summary>
    /// Adds one reader's gradient into a value's. A value with one reader takes the reader's tensor as it is; with
    /// several, the first is copied into the value's own buffer (the reader's tensor may be another value's
    /// gradient, which must not change) and the rest are added to it.
    /// </summary>
    private void Accumulate(Tensor?[] grads, bool[] owned, int value, Tensor g)
    {
        if (grads[value] is null)
        {
            if (consumers[value] == 1)
            {
                grads[value] = g;
                return;
            }

            var own = gradBuffers[value].Get(g.Shape);
            g.Data.AsSpan(0, g.Length).CopyTo(own.Data);
            grads[value] = own;
            owned[value] = true;
            return;
        }

        var sum = grads[value]!;
        if (!owned[value])
        {
            throw new InvalidOperationException($"{Architecture}: value {value} received two gradients but was counted with one reader.");
        }

        Kernels.Elementwise.Add(sum.Data.AsSpan(0, sum.Length), g.Data.AsSpan(0, sum.Length));
    }
}
