using System.Globalization;
using MobileOne.Graph;
using MobileOne.Kernels.Gemm;
using MobileOne.Kernels;
using MobileOne.Kernels.Conv;
using MobileOne.Kernels.Engine;
using MobileOne.Kernels.Depthwise;

namespace MobileOne.Inference;

/// <summary>
/// The compiled form of a layer graph: the lowered program (<see cref="GraphProgram"/>), every weight packed once
/// for its kernel, one step (or, for squeeze-excite, three) per operation, and the public layer list. Sizes that
/// depend on the input (value layouts, the arena, general kernels) are planned per shape by <see cref="CreateShape"/>.
/// </summary>
internal sealed class EnginePlan
{
    private const int SharesPerThread = 4;

    private readonly GeneralConvolutionFactory? general;
    private readonly ConvAlgorithm algorithm;
    private readonly int[] strides;

    public EnginePlan(LayerGraph graph, ConvAlgorithm algorithm, Isa isa, int threads, GeneralConvolutionFactory? general)
    {
        this.algorithm = algorithm;
        bool generalMode = algorithm != ConvAlgorithm.Auto;
        this.general = generalMode ? general ?? ((algo, geometry, weight, bias) => GeneralConvolutions.Create(algo, geometry, weight, bias, isa)) : null;
        Graph = graph;
        Isa = isa;
        Threads = threads;
        Program = GraphProgram.Lower(graph, generalMode);
        InChannels = graph.InputChannels;
        OutputChannels = graph.ChannelsOf(graph.Output);

        // Channels are padded to 16 so that vector kernels never need a tail; the general algorithms read dense NHWC.
        // GEMM outputs (the classifier) and pooled vectors keep the padding either way: the GEMM writes whole panels.
        var ops = Program.Ops;
        strides = new int[Program.ValueSources.Count];
        for (int v = 0; v < strides.Length; v++)
        {
            int channels = graph.ChannelsOf(Program.ValueSources[v]);
            var producer = ops.FirstOrDefault(o => o.Output == v);
            bool padded = !generalMode || producer?.Kind is OpKind.Linear or OpKind.GlobalPool;
            strides[v] = v == GraphProgram.RawInput ? channels : padded ? RoundUp16(channels) : channels;
        }

        var layers = new List<EngineLayer>();
        var steps = new List<EngineStep>();
        for (int j = 0; j < ops.Count; j++)
        {
            var op = ops[j];
            layers.Add(Describe(op));
            foreach (var step in CreateSteps(op, j))
            {
                steps.Add(step);
            }
        }

        Steps = steps.ToArray();
        Layers = layers.AsReadOnly();
    }

    /// <summary>K block of the pointwise GEMMs (0: none); a tuning knob, see docs/engine.md.</summary>
    public static int PointwiseKBlock { get; } =
        int.TryParse(Environment.GetEnvironmentVariable("MOBILEONE_ENGINE_KBLOCK"), NumberStyles.Integer, CultureInfo.InvariantCulture, out int kb) ? kb : 0;

    public LayerGraph Graph { get; }

    public GraphProgram Program { get; }

    public Isa Isa { get; }

    public int Threads { get; }

    /// <summary>Shares per step: 4 per thread with several threads (see <see cref="WorkerPool"/>), else 1.</summary>
    public int Shares => Threads == 1 ? 1 : Threads * SharesPerThread;

    public int InChannels { get; }

    public int OutputChannels { get; }

    /// <summary>Every operation as its own step (the profiling order: no depthwise + pointwise pairs).</summary>
    public EngineStep[] Steps { get; }

    public IReadOnlyList<EngineLayer> Layers { get; }

    private IEnumerable<EngineStep> CreateSteps(EngineOp op, int j)
    {
        switch (op.Kind)
        {
            case OpKind.InputLayout:
                yield return new InputLayoutStep(op, j) { Layer = j };
                break;
            case OpKind.Conv when op.ConvKernel == ConvKernelKind.Winograd:
                var winograd = new WinogradWeights(op.Conv!, strides[op.Reads[0]]);
                for (int phase = 0; phase < WinogradStep.Phases; phase++)
                {
                    yield return new WinogradStep(op, j, winograd, phase) { Layer = j };
                }

                break;
            case OpKind.Conv:
                yield return CreateConvStep(op, j);
                break;
            case OpKind.Add:
                yield return new AddStep(op, j) { Layer = j };
                break;
            case OpKind.Activation:
                yield return new ActivationStep(op, j) { Layer = j };
                break;
            case OpKind.SqueezeExcite:
                var se = op.SqueezeExcite!;
                var weights = new SqueezeExciteWeights(se.ReduceWeight, se.ReduceBias, se.ExpandWeight, se.ExpandBias, se.Channels, se.Reduced, se.InnerActivation, se.GateActivation);
                yield return new SqueezeMeanStep(op, j) { Layer = j };
                yield return new ExciteGateStep(op, j, weights) { Layer = j };
                yield return new GateStep(op, j) { Layer = j };
                break;
            case OpKind.DyRelu:
                yield return new SqueezeMeanStep(op, j) { Layer = j };
                yield return new DynamicCoefficientStep(op, j) { Layer = j };
                yield return new DyReluApplyStep(op, j) { Layer = j };
                break;
            case OpKind.DynamicShiftMax:
                yield return new SqueezeMeanStep(op, j) { Layer = j };
                yield return new DynamicCoefficientStep(op, j) { Layer = j };
                yield return new ShiftMaxApplyStep(op, j) { Layer = j };
                break;
            case OpKind.Pool:
                yield return new PoolStep(op, j) { Layer = j };
                break;
            case OpKind.GlobalPool:
                yield return new GlobalPoolStep(op, j) { Layer = j };
                break;
            case OpKind.Softmax:
                yield return new SoftmaxStep(op, j) { Layer = j };
                break;
            case OpKind.Concat:
                yield return new ConcatStep(op, j) { Layer = j };
                break;
            case OpKind.Pad:
                yield return new PadStep(op, j) { Layer = j };
                break;
            case OpKind.SparseConv:
                var sp = op.Sparse!;
                yield return new SparseConvStep(op, j, new SparseConvolution(sp.InChannels, sp.OutChannels, sp.KernelHeight, sp.KernelWidth, sp.StrideH, sp.StrideW, sp.PadH, sp.PadW, sp.RowStarts, sp.Columns, sp.Values)) { Layer = j };
                break;
            case OpKind.Linear:
                var l = op.Linear!;
                yield return new LinearStep(op, j, new PackedPanels(l.Weight, l.Bias ?? new float[l.OutFeatures], l.OutFeatures, l.InFeatures)) { Layer = j };
                break;
            default:
                throw new InvalidOperationException($"Operation {op.Name} of kind {op.Kind} has no step.");
        }
    }

    private EngineStep CreateConvStep(EngineOp op, int j)
    {
        var c = op.Conv!;
        int outStride = strides[op.Output];
        return op.ConvKernel switch
        {
            ConvKernelKind.Stem => new StemStep(op, j, new PackedPanels(c.Weight, c.Bias, c.OutChannels, c.InChannels * c.KernelH * c.KernelW)) { Layer = j },
            ConvKernelKind.Depthwise => new DepthwiseStep(op, j, new DepthwiseTapWeights(c.Weight, c.Bias, c.OutChannels, c.KernelH, c.KernelW, outStride)) { Layer = j },
            ConvKernelKind.Pointwise => new PointwiseStep(op, j, new PackedPanels(c.Weight, c.Bias, c.OutChannels, c.InChannels), PointwiseKBlock) { Layer = j },
            ConvKernelKind.PatchGemm => new PatchGemmStep(op, j, new PackedPanels(PatchGemmStep.PatchOrder(c, strides[op.Reads[0]]), c.Bias, c.OutChannels, c.KernelH * c.KernelW * strides[op.Reads[0]])) { Layer = j },
            _ => new GeneralConvStep(op, j) { Layer = j },
        };
    }

    private EngineLayer Describe(EngineOp op)
    {
        string isa = Isa.ToString().ToLowerInvariant();
        int inChannels = Graph.ChannelsOf(Program.ValueSources[op.Reads[0]]);
        int outChannels = Graph.ChannelsOf(Program.ValueSources[op.Output]);
        if (op.Kind == OpKind.Conv)
        {
            var c = op.Conv!;
            var (kind, name) = op.ConvKernel switch
            {
                ConvKernelKind.Stem => (EngineLayerKind.Stem, "patch-" + GemmName),
                ConvKernelKind.Depthwise => (EngineLayerKind.Depthwise, $"depthwise-{c.KernelH}x{c.KernelW}-{isa}"),
                ConvKernelKind.Pointwise => (EngineLayerKind.Pointwise, GemmName),
                ConvKernelKind.PatchGemm => (EngineLayerKind.Convolution, "patch-" + GemmName),
                ConvKernelKind.Winograd => (EngineLayerKind.Convolution, "winograd-f2x2-3x3-" + GemmName),
                _ => (EngineLayerKind.Convolution, algorithm.ToString().ToLowerInvariant()),
            };
            string suffix = (op.Accumulate ? "+accumulate" : string.Empty) + (op.Residual >= 0 ? "+residual" : string.Empty)
                + (op.Activation != ActivationKind.None ? "+" + op.Activation.ToString().ToLowerInvariant() : string.Empty);
            return new EngineLayer(op.Name, kind, c.InChannels, c.OutChannels, c.KernelH, c.StrideH, name + suffix);
        }

        return op.Kind switch
        {
            OpKind.InputLayout => new EngineLayer(op.Name, EngineLayerKind.InputLayout, inChannels, outChannels, 1, 1, "nchw-to-nhwc"),
            OpKind.Add => new EngineLayer(op.Name, EngineLayerKind.Add, inChannels, outChannels, 1, 1, $"add-{op.Reads.Length}"),
            OpKind.Activation => new EngineLayer(op.Name, EngineLayerKind.Activation, inChannels, outChannels, 1, 1, op.Activation.ToString().ToLowerInvariant()),
            OpKind.SqueezeExcite => new EngineLayer(op.Name, EngineLayerKind.SqueezeExcite, inChannels, outChannels, 1, 1, $"squeeze-excite-{op.SqueezeExcite!.Reduced}"),
            OpKind.DyRelu => new EngineLayer(op.Name, EngineLayerKind.Activation, inChannels, outChannels, 1, 1, $"dyrelu-{((DyReluNode)op.Dynamic!).Kind.ToString().ToLowerInvariant()}-k{((DyReluNode)op.Dynamic!).K}-scalar"),
            OpKind.DynamicShiftMax => new EngineLayer(op.Name, EngineLayerKind.Activation, inChannels, outChannels, 1, 1, $"dynamic-shift-max-j{((DynamicShiftMaxNode)op.Dynamic!).J}-k{((DynamicShiftMaxNode)op.Dynamic!).K}-scalar"),
            OpKind.Pool => new EngineLayer(op.Name, op.Pool!.Kind == PoolKind.Max ? EngineLayerKind.MaxPool : EngineLayerKind.AveragePool, inChannels, outChannels, op.Pool.Kernel, op.Pool.Stride, "pool-nhwc"),
            OpKind.GlobalPool => new EngineLayer(op.Name, EngineLayerKind.GlobalAveragePool, inChannels, outChannels, 0, 1, "channel-mean-" + isa),
            OpKind.Softmax => new EngineLayer(op.Name, EngineLayerKind.Softmax, inChannels, outChannels, 1, 1, "softmax-channels-scalar"),
            OpKind.Concat => new EngineLayer(op.Name, EngineLayerKind.Concat, inChannels, outChannels, 1, 1, $"concat-{op.Reads.Length}"),
            OpKind.Pad => new EngineLayer(op.Name, EngineLayerKind.Pad, inChannels, outChannels, 1, 1, "zero-pad-nhwc"),
            OpKind.SparseConv => new EngineLayer(op.Name, EngineLayerKind.SparseConvolution, inChannels, outChannels, op.Sparse!.KernelHeight, op.Sparse.StrideH,
                $"sparse-csr-{op.Sparse.NonZeros}nz-scalar" + (op.Accumulate ? "+accumulate" : string.Empty) + (op.Residual >= 0 ? "+residual" : string.Empty)
                + (op.Activation != ActivationKind.None ? "+" + op.Activation.ToString().ToLowerInvariant() : string.Empty)),
            _ => new EngineLayer(op.Name, EngineLayerKind.Linear, inChannels, outChannels, 1, 1, GemmName),
        };
    }

    private string GemmName => Isa switch
    {
        Isa.Avx512 => "gemm-avx512-6x64",
        Isa.Avx2 => "gemm-avx2-6x16",
        _ => "gemm-scalar",
    };

    /// <summary>Lays out every value and the arena for one input shape.</summary>
    public ShapePlan CreateShape(int batch, int height, int width)
    {
        var ops = Program.Ops;
        var graphShapes = Graph.InferShapes(height, width);
        var values = new ValueLayout[strides.Length];
        for (int v = 0; v < values.Length; v++)
        {
            var s = graphShapes[Program.ValueSources[v]];
            values[v] = new ValueLayout(s.Height, s.Width, s.Channels, strides[v]);
        }

        // Depthwise + pointwise pairs run as one step when the depthwise rows give every share at least one row.
        var fusedPair = new bool[ops.Count];
        for (int j = 1; j < ops.Count; j++)
        {
            fusedPair[j] = ops[j].Kind == OpKind.Conv && ops[j].ConvKernel == ConvKernelKind.Pointwise
                && ops[j - 1].Kind == OpKind.Conv && ops[j - 1].ConvKernel == ConvKernelKind.Depthwise
                && ops[j].Reads[0] == ops[j - 1].Output
                && (long)batch * values[ops[j - 1].Output].Height >= Shares;
        }

        var offsets = AssignOffsets(values, batch, fusedPair, out long valueFloats);

        long scratch = 0, workspace = 0, winogradRegion = 0;
        int seStride = 0, hidden = 0, coefStride = 0;
        var kernels = new IGeneralConvolution?[ops.Count];
        var stemOffsets = new int[]?[ops.Count];
        for (int j = 0; j < ops.Count; j++)
        {
            var op = ops[j];
            var input = values[op.Reads[0]];
            var output = values[op.Output];
            if (op.Kind == OpKind.SqueezeExcite)
            {
                seStride = Math.Max(seStride, RoundUp16(output.Stride));
                hidden = Math.Max(hidden, RoundUp16(op.SqueezeExcite!.Reduced));
            }

            if (op.Kind is OpKind.DyRelu or OpKind.DynamicShiftMax)
            {
                seStride = Math.Max(seStride, RoundUp16(Math.Max(input.Stride, output.Stride)));
                (int reduced, int coefficients) = op.Dynamic switch
                {
                    DyReluNode d => (d.Reduced, d.Coefficients),
                    DynamicShiftMaxNode m => (m.Reduced, m.Coefficients),
                    _ => throw new InvalidOperationException($"Operation {op.Name} is not a dynamic activation."),
                };
                hidden = Math.Max(hidden, RoundUp16(reduced));
                coefStride = Math.Max(coefStride, RoundUp16(coefficients));
            }

            if (op.Kind != OpKind.Conv)
            {
                continue;
            }

            var c = op.Conv!;
            switch (op.ConvKernel)
            {
                case ConvKernelKind.Stem:
                    scratch = Math.Max(scratch, (long)StemStep.Chunk * c.InChannels * c.KernelH * c.KernelW);
                    stemOffsets[j] = StemStep.TapOffsets(c.InChannels, c.KernelH, input.Height, input.Width);
                    break;
                case ConvKernelKind.PatchGemm:
                    scratch = Math.Max(scratch, (long)PatchGemmStep.Chunk * PatchGemmStep.PatchStride(c.KernelH * c.KernelW * input.Stride));
                    break;
                case ConvKernelKind.Winograd:
                    scratch = Math.Max(scratch, WinogradStep.ScratchFloats(input.Stride));
                    long tiles = (long)batch * Winograd.Tiles(output.Height) * Winograd.Tiles(output.Width);
                    if (WinogradStep.SplitsElements(Shares, tiles, input.Stride, output.Stride))
                    {
                        winogradRegion = Math.Max(winogradRegion, WinogradStep.RegionFloats(tiles, input.Stride, output.Stride));
                    }

                    break;
                case ConvKernelKind.General:
                    var geometry = ConvGeometry.Square(1, c.InChannels, input.Height, input.Width, c.OutChannels, c.KernelH, c.StrideH, c.PadH, c.Groups);
                    var kernel = general!(algorithm, geometry, c.Weight, c.Bias);
                    kernels[j] = kernel;
                    int rowsPerCall = (int)Math.Min(output.Height, (((long)batch * output.Height) + Shares - 1) / Shares);
                    workspace = Math.Max(workspace, kernel.WorkspaceFloats(rowsPerCall));
                    break;
            }
        }

        long[] sizes = new long[(int)Region.Count];
        sizes[(int)Region.SeMean] = (long)batch * seStride;
        sizes[(int)Region.SeGate] = (long)batch * seStride;
        sizes[(int)Region.SeHidden] = (long)Shares * hidden;
        sizes[(int)Region.DynCoef] = (long)batch * coefStride;
        sizes[(int)Region.Winograd] = winogradRegion;
        long scratchPerShare = AlignedBuffer.RoundUp(scratch);
        long workspacePerShare = AlignedBuffer.RoundUp(workspace);
        sizes[(int)Region.Scratch] = Shares * scratchPerShare;
        sizes[(int)Region.Workspace] = Shares * workspacePerShare;
        long[] regionOffsets = new long[(int)Region.Count];
        long total = valueFloats;
        for (int r = 0; r < sizes.Length; r++)
        {
            regionOffsets[r] = total;
            total += AlignedBuffer.RoundUp(sizes[r]);
        }

        const long Limit = int.MaxValue / 2;
        if (total > Limit)
        {
            throw new ArgumentException(
                $"Batch {batch} at {height}x{width} needs {total} floats of activations; one engine run supports at most {Limit}. Use a smaller batch or resolution.");
        }

        return new ShapePlan
        {
            Steps = FuseSteps(fusedPair),
            Batch = batch,
            Height = height,
            Width = width,
            Values = values,
            ValueOffsets = offsets,
            RegionOffsets = regionOffsets,
            ScratchPerShare = scratchPerShare,
            WorkspacePerShare = workspacePerShare,
            SeStride = seStride,
            HiddenStride = hidden,
            CoefStride = coefStride,
            TotalFloats = total,
            ValueFloats = valueFloats,
            General = kernels,
            StemOffsets = stemOffsets,
        };
    }

    /// <summary>
    /// Places every arena value by liveness: a value lives from the first operation that writes it to the last that
    /// reads or writes it (the graph output to the end), and two values whose lives overlap never share floats
    /// (first fit, in order of definition). A fused depthwise + pointwise pair counts as one operation, so the
    /// pointwise output never overwrites the depthwise input that other shares may still be reading.
    /// </summary>
    private long[] AssignOffsets(ValueLayout[] values, int batch, bool[] fusedPair, out long totalFloats)
    {
        var ops = Program.Ops;
        int n = values.Length;
        var first = new int[n];
        var last = new int[n];
        Array.Fill(first, int.MaxValue);
        Array.Fill(last, -1);
        for (int j = 0; j < ops.Count; j++)
        {
            var op = ops[j];
            int start = fusedPair[j] ? j - 1 : j;
            first[op.Output] = Math.Min(first[op.Output], start);
            last[op.Output] = Math.Max(last[op.Output], j);
            foreach (int v in op.Reads.Append(op.Residual).Where(v => v >= 0))
            {
                last[v] = Math.Max(last[v], j + (j + 1 < ops.Count && fusedPair[j + 1] ? 1 : 0));
            }
        }

        last[Program.Output] = int.MaxValue;
        foreach (int tap in Program.Taps)
        {
            last[tap] = int.MaxValue;
        }

        var offsets = new long[n];
        var placed = new List<int>();
        totalFloats = 0;
        foreach (int v in Enumerable.Range(1, n - 1).Where(v => last[v] >= 0).OrderBy(v => first[v]))
        {
            long size = AlignedBuffer.RoundUp(values[v].Pixels(batch) * values[v].Stride);
            long offset = 0;
            bool moved = true;
            while (moved)
            {
                moved = false;
                foreach (int u in placed)
                {
                    bool alive = first[u] <= last[v] && first[v] <= last[u];
                    long uSize = AlignedBuffer.RoundUp(values[u].Pixels(batch) * values[u].Stride);
                    if (alive && offset < offsets[u] + uSize && offsets[u] < offset + size)
                    {
                        offset = offsets[u] + uSize;
                        moved = true;
                    }
                }
            }

            offsets[v] = offset;
            placed.Add(v);
            totalFloats = Math.Max(totalFloats, offset + size);
        }

        return offsets;
    }

    private EngineStep[] FuseSteps(bool[] fusedPair)
    {
        var steps = new List<EngineStep>(Steps.Length);
        for (int i = 0; i < Steps.Length; i++)
        {
            if (Steps[i] is IRowStep dw && i + 1 < Steps.Length && Steps[i + 1] is PointwiseStep pw && fusedPair[pw.Index] && ReferenceEquals(dw.Op, Program.Ops[pw.Index - 1]))
            {
                steps.Add(new DepthwisePointwiseStep(dw, pw) { Layer = pw.Layer });
                i++;
                continue;
            }

            steps.Add(Steps[i]);
        }

        return steps.ToArray();
    }

    /// <summary>Sizes and multiply-accumulates per image of every layer, for <see cref="CompiledModel.DescribeLayers"/>.</summary>
    public IReadOnlyList<EngineLayerShape> CreateShapeGeometry(int height, int width)
    {
        var graphShapes = Graph.InferShapes(height, width);
        var result = new EngineLayerShape[Layers.Count];
        for (int j = 0; j < Program.Ops.Count; j++)
        {
            var op = Program.Ops[j];
            var i = graphShapes[Program.ValueSources[op.Reads[0]]];
            var o = graphShapes[Program.ValueSources[op.Output]];
            long macs = op.Kind switch
            {
                OpKind.Conv => (long)op.Conv!.OutChannels * (op.Conv.InChannels / op.Conv.Groups) * op.Conv.KernelH * op.Conv.KernelW * o.Height * o.Width,
                OpKind.SqueezeExcite => 2L * op.SqueezeExcite!.Channels * op.SqueezeExcite.Reduced,
                OpKind.Linear => (long)op.Linear!.InFeatures * op.Linear.OutFeatures,
                OpKind.SparseConv => op.Sparse!.MultiplyAccumulates([i], o),
                OpKind.DyRelu or OpKind.DynamicShiftMax => op.Dynamic!.MultiplyAccumulates([i], o),
                _ => 0,
            };
            result[j] = new EngineLayerShape(Layers[j], i.Height, i.Width, o.Height, o.Width, macs);
        }

        return result;
    }

    private static int RoundUp16(int c) => (c + 15) / 16 * 16;
}
