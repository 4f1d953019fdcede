using MobileOne.Graph;
using MobileOne.Kernels;
using MobileOne.Reparam;

namespace MobileOne.Inference;

/// <summary>What an engine operation computes.</summary>
internal enum OpKind
{
    InputLayout,
    Conv,
    Add,
    Activation,
    SqueezeExcite,
    DyRelu,
    DynamicShiftMax,
    Pool,
    GlobalPool,
    Linear,
    Softmax,
    Concat,
    Pad,

    /// <summary>A convolution with a sparse (CSR) weight: the sparse part of a compressed layer.</summary>
    SparseConv,
}

/// <summary>Which kernel runs a convolution.</summary>
internal enum ConvKernelKind
{
    /// <summary>Dense convolution of the caller's NCHW input as an (indirect) patch GEMM.</summary>
    Stem,

    /// <summary>Depthwise convolution of any size, stride, padding and dilation; can add into its output.</summary>
    Depthwise,

    /// <summary>1x1 stride-1 dense convolution: a GEMM with pixels as rows.</summary>
    Pointwise,

    /// <summary>Dense KxK convolution of an NHWC value as a GEMM over gathered patches.</summary>
    PatchGemm,

    /// <summary>Dense 3x3 stride-1 convolution of an NHWC value by Winograd's F(2x2, 3x3): 16 GEMMs between two transforms.</summary>
    Winograd,

    /// <summary>A general algorithm (direct, im2col, im2win) chosen by <see cref="InferenceOptions.ConvAlgorithm"/>.</summary>
    General,
}

/// <summary>A convolution with BatchNorm already folded in (weights OIHW, bias per output channel).</summary>
internal sealed record ConvParams(
    int InChannels, int OutChannels, int KernelH, int KernelW, int StrideH, int StrideW, int PadH, int PadW, int DilationH, int DilationW, int Groups, float[] Weight, float[] Bias)
{
    public bool IsDepthwise => Groups == InChannels && Groups == OutChannels;

    public bool IsPointwise => KernelH == 1 && KernelW == 1 && StrideH == 1 && StrideW == 1 && PadH == 0 && PadW == 0 && Groups == 1;

    public bool Undilated => DilationH == 1 && DilationW == 1;

    public bool Square => KernelH == KernelW && StrideH == StrideW && PadH == PadW;
}

/// <summary>
/// One operation of the compiled program: reads engine values, writes (or, accumulating, adds into) one, then
/// adds <see cref="Residual"/> and applies <see cref="Activation"/> as its epilogue.
/// </summary>
internal sealed class EngineOp
{
    public required OpKind Kind { get; init; }

    public required string Name { get; init; }

    /// <summary>Engine values read (the accumulated output is not listed).</summary>
    public required int[] Reads { get; set; }

    public int Output { get; set; }

    /// <summary>Adds into <see cref="Output"/>, which earlier operations wrote, instead of overwriting it.</summary>
    public bool Accumulate { get; set; }

    /// <summary>An engine value added to the output after the kernel, before the activation (-1: none).</summary>
    public int Residual { get; set; } = -1;

    public ActivationKind Activation { get; set; }

    public ConvParams? Conv { get; set; }

    public ConvKernelKind ConvKernel { get; set; }

    public SqueezeExciteNode? SqueezeExcite { get; init; }

    /// <summary>The node of a dynamic activation (<see cref="DyReluNode"/> or <see cref="DynamicShiftMaxNode"/>).</summary>
    public GraphNode? Dynamic { get; init; }

    public PoolNode? Pool { get; init; }

    public LinearNode? Linear { get; init; }

    public PadNode? Pad { get; init; }

    public SparseConvNode? Sparse { get; init; }
}

/// <summary>
/// The program a <see cref="LayerGraph"/> lowers to: engine operations in execution order over engine values.
/// Engine value 0 is the caller's NCHW input; every other value is NHWC in the arena. Lowering folds each BatchNorm
/// into the convolution before it (or turns it into a per-channel 1x1 depthwise convolution when that convolution
/// has other readers), puts activations and residual adds into the epilogue of the operation that produced their
/// input, and turns a sum of convolutions (a train-time block's branches) into a chain of convolutions that add
/// into one buffer: each branch still runs with its own weights; only their biases are summed (in double) into
/// the first branch's epilogue, since the accumulating GEMM does not add a bias.
/// </summary>
internal sealed class GraphProgram
{
    /// <summary>The caller's NCHW input.</summary>
    public const int RawInput = 0;

    private GraphProgram(List<EngineOp> ops, List<int> valueSources, int output, int[] taps)
    {
        Ops = ops;
        ValueSources = valueSources;
        Output = output;
        Taps = taps;
    }

    public IReadOnlyList<EngineOp> Ops { get; }

    /// <summary>For each engine value, the graph value whose shape it has.</summary>
    public IReadOnlyList<int> ValueSources { get; }

    public int Output { get; }

    /// <summary>The engine value of each of the graph's taps (in the graph's order); they live to the end of a run.</summary>
    public IReadOnlyList<int> Taps { get; }

    public static GraphProgram Lower(LayerGraph graph, bool general)
    {
        ArgumentNullException.ThrowIfNull(graph);
        if (graph.Nodes.Count == 0)
        {
            throw new ArgumentException("The graph has no layers.");
        }

        var consumers = graph.ConsumerCounts();
        var ops = new List<EngineOp>();
        var sources = new List<int> { LayerGraph.Input };
        var engineValue = new int[graph.Nodes.Count + 1];
        var lastWriter = new Dictionary<int, EngineOp>();

        int NewValue(int graphValue)
        {
            sources.Add(graphValue);
            return sources.Count - 1;
        }

        void Emit(EngineOp op)
        {
            ops.Add(op);
            lastWriter[op.Output] = op;
        }

        // An operation that writes a new engine value standing for graph value `produced`.
        void EmitNew(EngineOp op, int produced)
        {
            op.Output = NewValue(produced);
            Emit(op);
            engineValue[produced] = op.Output;
        }

        // An operation may take the activation, residual or gating of graph value v in place when v has no other
        // reader, is not the graph output, and is not the caller's input.
        bool Exclusive(int v) => v != LayerGraph.Input && consumers[v] == 1 && v != graph.Output;

        for (int i = 0; i < graph.Nodes.Count; i++)
        {
            int produced = i + 1;
            switch (graph.Nodes[i])
            {
                case ConvNode c:
                {
                    EmitNew(
                        new EngineOp
                        {
                            Kind = OpKind.Conv,
                            Name = c.Name,
                            Reads = [engineValue[c.Input]],
                            Conv = new ConvParams(c.InChannels, c.OutChannels, c.KernelHeight, c.KernelWidth, c.StrideH, c.StrideW, c.PadH, c.PadW, c.DilationH, c.DilationW, c.Groups,
                                (float[])c.Weight.Clone(), c.Bias is null ? new float[c.OutChannels] : (float[])c.Bias.Clone()),
                        },
                        produced);
                    break;
                }

                case BatchNormNode bn:
                {
                    int input = engineValue[bn.Input];
                    if (Exclusive(bn.Input) && lastWriter.TryGetValue(input, out var producer) && producer.Kind == OpKind.Conv
                        && producer.Activation == ActivationKind.None && producer.Residual < 0 && !producer.Accumulate)
                    {
                        producer.Conv = Fold(producer.Conv!, bn);
                        engineValue[produced] = input;
                        break;
                    }

                    // A BatchNorm whose input others read too (a block's skip branch) is a per-channel affine map:
                    // a 1x1 depthwise convolution with weight gamma / std and bias beta - mean * gamma / std.
                    var identity = new ConvParams(bn.Channels, bn.Channels, 1, 1, 1, 1, 0, 0, 1, 1, bn.Channels, Ones(bn.Channels), new float[bn.Channels]);
                    EmitNew(new EngineOp { Kind = OpKind.Conv, Name = bn.Name, Reads = [input], Conv = Fold(identity, bn) }, produced);
                    break;
                }

                case ActivationNode a:
                {
                    int input = engineValue[a.Input];
                    if (a.Activation == ActivationKind.None)
                    {
                        engineValue[produced] = input;
                        break;
                    }

                    if (Exclusive(a.Input) && lastWriter.TryGetValue(input, out var producer) && producer.Activation == ActivationKind.None)
                    {
                        producer.Activation = a.Activation;
                        engineValue[produced] = input;
                        break;
                    }

                    EmitNew(new EngineOp { Kind = OpKind.Activation, Name = a.Name, Reads = [input], Activation = a.Activation }, produced);
                    break;
                }

                case AddNode add:
                    engineValue[produced] = LowerAdd(add, produced);
                    break;

                case SqueezeExciteNode se:
                {
                    int input = engineValue[se.Input];
                    bool inPlace = Exclusive(se.Input) && lastWriter.TryGetValue(input, out var producer) && producer.Activation == ActivationKind.None;
                    var op = new EngineOp { Kind = OpKind.SqueezeExcite, Name = se.Name, Reads = [input], SqueezeExcite = se };
                    op.Output = inPlace ? input : NewValue(produced);
                    Emit(op);
                    engineValue[produced] = op.Output;
                    break;
                }

                case DyReluNode dy:
                    EmitNew(new EngineOp { Kind = OpKind.DyRelu, Name = dy.Name, Reads = [engineValue[dy.Input]], Dynamic = dy }, produced);
                    break;

                case DynamicShiftMaxNode dsm:
                    EmitNew(new EngineOp { Kind = OpKind.DynamicShiftMax, Name = dsm.Name, Reads = [engineValue[dsm.Input]], Dynamic = dsm }, produced);
                    break;

                case PoolNode pool:
                    EmitNew(new EngineOp { Kind = OpKind.Pool, Name = pool.Name, Reads = [engineValue[pool.Input]], Pool = pool }, produced);
                    break;

                case GlobalAveragePoolNode gap:
                    EmitNew(new EngineOp { Kind = OpKind.GlobalPool, Name = gap.Name, Reads = [engineValue[gap.Input]] }, produced);
                    break;

                case SparseConvNode sparse:
                    EmitNew(new EngineOp { Kind = OpKind.SparseConv, Name = sparse.Name, Reads = [engineValue[sparse.Input]], Sparse = sparse }, produced);
                    break;

                case LinearNode linear:
                    EmitNew(new EngineOp { Kind = OpKind.Linear, Name = linear.Name, Reads = [engineValue[linear.Input]], Linear = linear }, produced);
                    break;

                case SoftmaxNode softmax:
                    EmitNew(new EngineOp { Kind = OpKind.Softmax, Name = softmax.Name, Reads = [engineValue[softmax.Input]] }, produced);
                    break;

                case ConcatNode concat:
                    EmitNew(new EngineOp { Kind = OpKind.Concat, Name = concat.Name, Reads = [.. concat.Inputs.Select(v => engineValue[v])] }, produced);
                    break;

                case PadNode pad:
                    EmitNew(new EngineOp { Kind = OpKind.Pad, Name = pad.Name, Reads = [engineValue[pad.Input]], Pad = pad }, produced);
                    break;

                default:
                    throw new NotSupportedException($"Node {graph.Nodes[i].Name} ({graph.Nodes[i].GetType().Name}) has no engine operation.");
            }
        }

        int output = engineValue[graph.Output];
        if (output == RawInput)
        {
            throw new ArgumentException("The graph output is its input; there is nothing to run.");
        }

        var taps = graph.Taps.Select(t => engineValue[t.Value]).ToArray();
        if (taps.Contains(RawInput))
        {
            throw new ArgumentException("A graph tap names the input; taps must be computed values.");
        }

        ChooseKernels(ops, general);
        return new GraphProgram(AddInputLayout(ops, sources), sources, output, taps);

        int LowerAdd(AddNode add, int produced)
        {
            // Convolutions that only this sum reads add into one buffer, in graph order: the first writes (with the
            // chain's summed bias), the others accumulate. General-algorithm kernels cannot accumulate, so there only
            // the first joins the chain. Everything else is added in an epilogue (as a residual) or by an add step.
            var chain = new List<EngineOp>();
            var extras = new List<int>();
            foreach (int v in add.Inputs)
            {
                int value = engineValue[v];
                if (Exclusive(v) && lastWriter.TryGetValue(value, out var producer) && producer.Kind == OpKind.Conv && producer.Output == value
                    && !producer.Accumulate && producer.Activation == ActivationKind.None && producer.Residual < 0
                    && (!general || chain.Count == 0) && !chain.Contains(producer) && add.Inputs.Count(u => u == v) == 1)
                {
                    chain.Add(producer);
                }
                else
                {
                    extras.Add(value);
                }
            }

            if (chain.Count == 0)
            {
                var op = new EngineOp { Kind = OpKind.Add, Name = add.Name, Reads = extras.ToArray() };
                op.Output = NewValue(produced);
                Emit(op);
                return op.Output;
            }

            // The chain runs in execution order: the operation that runs first writes, the later ones accumulate.
            chain.Sort((x, y) => ops.IndexOf(x).CompareTo(ops.IndexOf(y)));
            int target = chain[0].Output;
            var bias = new double[chain[0].Conv!.OutChannels];
            foreach (var op in chain)
            {
                for (int c = 0; c < bias.Length; c++)
                {
                    bias[c] += op.Conv!.Bias[c];
                }
            }

            for (int k = 0; k < chain.Count; k++)
            {
                var op = chain[k];
                float[] b = k == 0 ? Array.ConvertAll(bias, x => (float)x) : new float[bias.Length];
                op.Conv = op.Conv! with { Bias = b };
                op.Accumulate = k > 0;
                op.Output = target;
                lastWriter[target] = op;
            }

            // Epilogue residuals go on the chain's operations from the last one back (each covers every pixel once), but
            // only where the residual is already computed when that operation runs; the rest are summed by an in-place
            // add step after the chain.
            var last = chain;
            int slot = last.Count - 1;
            var leftovers = new List<int>();
            foreach (int extra in extras)
            {
                int ready = lastWriter.TryGetValue(extra, out var writerOfExtra) ? ops.IndexOf(writerOfExtra) : -1;
                if (slot >= 0 && ready < ops.IndexOf(last[slot]))
                {
                    last[slot--].Residual = extra;
                }
                else
                {
                    leftovers.Add(extra);
                }
            }

            var writer = last[^1];
            if (leftovers.Count > 0)
            {
                writer = new EngineOp { Kind = OpKind.Add, Name = add.Name, Reads = [target, .. leftovers], Output = target };
                ops.Add(writer);
            }

            lastWriter[target] = writer;
            return target;
        }
    }

    private static float[] Ones(int n)
    {
        var a = new float[n];
        Array.Fill(a, 1f);
        return a;
    }

    /// <summary>The convolution with <paramref name="bn"/> folded in (BatchNormFolding: in double, rounded once).</summary>
    private static ConvParams Fold(ConvParams conv, BatchNormNode bn)
    {
        int[] shape = [conv.OutChannels, conv.InChannels / conv.Groups, conv.KernelH, conv.KernelW];
        var folded = BatchNormFolding.Fold(conv.Weight, shape, new BatchNormStats(bn.Gamma, bn.Beta, bn.Mean, bn.Var, bn.Eps), conv.Bias);
        return conv with { Weight = Array.ConvertAll(folded.Weight, v => (float)v), Bias = Array.ConvertAll(folded.Bias, v => (float)v) };
    }

    private static void ChooseKernels(List<EngineOp> ops, bool general)
    {
        foreach (var op in ops.Where(o => o.Kind == OpKind.Conv))
        {
            var c = op.Conv!;
            bool rawInput = op.Reads[0] == RawInput;
            op.ConvKernel =
                general ? ConvKernelKind.General
                : rawInput && c.Groups == 1 && c.Undilated && c.Square ? ConvKernelKind.Stem
                : c.IsDepthwise ? ConvKernelKind.Depthwise
                : c.IsPointwise ? ConvKernelKind.Pointwise
                : WinogradWeights.Suits(c) ? ConvKernelKind.Winograd
                : c.Groups == 1 && c.Undilated ? ConvKernelKind.PatchGemm
                : throw new NotSupportedException(
                    $"Layer {op.Name} ({c.InChannels}->{c.OutChannels}, {c.KernelH}x{c.KernelW}, groups {c.Groups}, dilation {c.DilationH}x{c.DilationW}) has no engine kernel: grouped convolutions run only with a general InferenceOptions.ConvAlgorithm, dilated ones only when depthwise.");
            if (op.ConvKernel == ConvKernelKind.General && (!c.Undilated || !c.Square))
            {
                throw new NotSupportedException($"Layer {op.Name}: the general convolution algorithms need a square, undilated kernel, stride and padding.");
            }
        }
    }

    /// <summary>Operations that read the input as NHWC (everything but the stem kernel) read a converted copy.</summary>
    private static List<EngineOp> AddInputLayout(List<EngineOp> ops, List<int> sources)
    {
        bool needed = ops.Any(o => o.Residual == RawInput || (o.Reads.Contains(RawInput) && !(o.Kind == OpKind.Conv && o.ConvKernel == ConvKernelKind.Stem)));
        if (!needed)
        {
            return ops;
        }

        sources.Add(LayerGraph.Input);
        int nhwc = sources.Count - 1;
        foreach (var op in ops)
        {
            if (op.Residual == RawInput)
            {
                op.Residual = nhwc;
            }

            if (!(op.Kind == OpKind.Conv && op.ConvKernel == ConvKernelKind.Stem))
            {
                op.Reads = op.Reads.Select(v => v == RawInput ? nhwc : v).ToArray();
            }
        }

        return [new EngineOp { Kind = OpKind.InputLayout, Name = "input", Reads = [RawInput], Output = nhwc }, .. ops];
    }
}
