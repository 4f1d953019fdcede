using System.Globalization;
using MobileOne.Kernels.Conv;
using MobileOne.Kernels.Engine;
using DepthwiseWeights = MobileOne.Kernels.Engine.DepthwiseWeights;
using MobileOne.Models;

namespace MobileOne.Inference;

/// <summary>
/// The compiled form of a fused network: weights packed for the kernels, bias and ReLU in each kernel's
/// epilogue, squeeze-excite, pooling and the classifier as steps, and the public layer list.
/// </summary>
internal sealed class EnginePlan
{
    private readonly GeneralConvolutionFactory? general;
    private readonly ConvAlgorithm algorithm;

    public EnginePlan(MobileOneNetwork fused, ConvAlgorithm algorithm, EngineIsa isa, int threads, GeneralConvolutionFactory? general)
    {
        this.algorithm = algorithm;
        this.general = algorithm == ConvAlgorithm.Auto ? null : general ?? GeneralConvolutions.Create;
        Isa = isa;
        Threads = threads;
        InChannels = fused.Config.InChans;
        Classes = fused.Config.NumClasses;
        var layers = new List<EngineLayer>();
        var steps = new List<EngineStep>();
        var convs = new List<ConvLayer>();
        string algo = algorithm.ToString().ToLowerInvariant();
        if (this.general is not null)
        {
            layers.Add(new EngineLayer("input", EngineLayerKind.InputLayout, InChannels, InChannels, 1, 1, "nchw-to-nhwc"));
            steps.Add(new InputLayoutStep(InChannels) { Layer = 0 });
        }

        foreach (var (prefix, block) in fused.Blocks())
        {
            var spec = block.Spec;
            var conv = block.ReparamConv ?? throw new ArgumentException($"Block {prefix} is not fused.");
            string name = prefix.TrimEnd('.');
            float[] weight = conv.Weight.Value.Data, bias = conv.Bias!.Value.Data;
            SqueezeExciteWeights? se = block.Attn is { } attn
                ? new SqueezeExciteWeights(attn.Reduce.Weight.Value.Data, attn.Reduce.Bias!.Value.Data, attn.Expand.Weight.Value.Data, attn.Expand.Bias!.Value.Data, attn.Channels, attn.ReducedChannels)
                : null;
            var layer = new ConvLayer
            {
                Name = name,
                Index = convs.Count,
                InChannels = spec.InChannels,
                OutChannels = spec.OutChannels,
                Kernel = spec.KernelSize,
                Stride = spec.Stride,
                Padding = spec.Padding,
                Groups = spec.Groups,
                // The general kernels are built per input size, later: they get a private copy, so the compiled
                // model never depends on the network's arrays after Compile returns.
                Weight = this.general is null ? [] : (float[])weight.Clone(),
                Bias = this.general is null ? [] : (float[])bias.Clone(),
                SqueezeExcite = se,
            };
            convs.Add(layer);
            bool relu = se is null;
            int index = layers.Count;
            bool depthwise = spec.Groups == spec.InChannels && spec.Groups == spec.OutChannels;
            if (this.general is not null)
            {
                layer.Kind = EngineLayerKind.Convolution;
                layers.Add(Describe(layer, EngineLayerKind.Convolution, algo));
                steps.Add(new GeneralConvStep(layer, relu) { Layer = index });
            }
            else if (layer.Index == 0 && spec.Groups == 1)
            {
                var packed = new PackedPanels(weight, bias, spec.OutChannels, spec.InChannels * spec.KernelSize * spec.KernelSize);
                layer.Kind = EngineLayerKind.Stem;
                layers.Add(Describe(layer, EngineLayerKind.Stem, "patch-" + GemmName(isa)));
                steps.Add(new StemStep(layer, packed, relu) { Layer = index });
            }
            else if (depthwise && spec.KernelSize == 3 && spec.Padding == 1 && spec.Stride is 1 or 2)
            {
                layer.Kind = EngineLayerKind.Depthwise;
                layers.Add(Describe(layer, EngineLayerKind.Depthwise, "depthwise-3x3-" + IsaName(isa)));
                steps.Add(new DepthwiseStep(layer, new DepthwiseWeights(weight, bias, spec.InChannels), relu) { Layer = index });
            }
            else if (spec.KernelSize == 1 && spec.Stride == 1 && spec.Padding == 0 && spec.Groups == 1)
            {
                var packed = new PackedPanels(weight, bias, spec.OutChannels, spec.InChannels);
                layer.Kind = EngineLayerKind.Pointwise;
                layers.Add(Describe(layer, EngineLayerKind.Pointwise, GemmName(isa)));
                steps.Add(new PointwiseStep(layer, packed, relu, PointwiseKBlock) { Layer = index });
            }
            else
            {
                throw new NotSupportedException(
                    $"Layer {name} ({spec.InChannels}->{spec.OutChannels}, {spec.KernelSize}x{spec.KernelSize}, stride {spec.Stride}, padding {spec.Padding}, groups {spec.Groups}) has no specialized engine kernel; choose a general InferenceOptions.ConvAlgorithm.");
            }

            if (se is not null)
            {
                int seIndex = layers.Count;
                layers.Add(new EngineLayer(name + ".attn", EngineLayerKind.SqueezeExcite, spec.OutChannels, spec.OutChannels, 1, 1, $"squeeze-excite-{se.Reduced}"));
                steps.Add(new SqueezeMeanStep(layer) { Layer = seIndex });
                steps.Add(new ExciteGateStep(layer) { Layer = seIndex });
                steps.Add(new GateReluStep(layer) { Layer = seIndex });
            }
        }

        var last = convs[^1];
        layers.Add(new EngineLayer("pool", EngineLayerKind.GlobalAveragePool, last.OutChannels, last.OutChannels, 0, 1, "channel-mean-" + IsaName(isa)));
        steps.Add(new PoolStep(last) { Layer = layers.Count - 1 });
        Head = new PackedPanels(fused.Head.Weight.Value.Data, fused.Head.Bias.Value.Data, Classes, fused.Config.FeatureChannels);
        layers.Add(new EngineLayer("head.fc", EngineLayerKind.Linear, fused.Config.FeatureChannels, Classes, 1, 1, GemmName(isa)));
        steps.Add(new LinearStep(Head) { Layer = layers.Count - 1 });
        Convs = convs.ToArray();
        Steps = steps.ToArray();
        Layers = layers.AsReadOnly();
    }

    /// <summary>K block of the pointwise GEMMs (0: none); a tuning knob, see docs/engine.md.</summary>
    public static int PointwiseKBlock { get; } =
        int.TryParse(Environment.GetEnvironmentVariable("MOBILEONE_ENGINE_KBLOCK"), NumberStyles.Integer, CultureInfo.InvariantCulture, out int kb) ? kb : 0;

    public EngineIsa Isa { get; }

    public int Threads { get; }

    /// <summary>Shares per step: 4 per thread with several threads (see <see cref="WorkerTeam"/>), else 1.</summary>
    public int Shares => Threads == 1 ? 1 : Threads * SharesPerThread;

    private const int SharesPerThread = 4;

    public int InChannels { get; }

    public int Classes { get; }

    public ConvLayer[] Convs { get; }

    public EngineStep[] Steps { get; }

    public IReadOnlyList<EngineLayer> Layers { get; }

    public PackedPanels Head { get; }

    private static string IsaName(EngineIsa isa) => isa.ToString().ToLowerInvariant();

    private static string GemmName(EngineIsa isa) => isa switch
    {
        EngineIsa.Avx512 => "gemm-avx512-6x64",
        EngineIsa.Avx2 => "gemm-avx2-6x16",
        _ => "gemm-scalar",
    };

    private static EngineLayer Describe(ConvLayer c, EngineLayerKind kind, string algorithm) =>
        new(c.Name, kind, c.InChannels, c.OutChannels, c.Kernel, c.Stride, algorithm);

    /// <summary>Lays out the arena for one input shape.</summary>
    public ShapePlan CreateShape(int batch, int height, int width)
    {
        int n = Convs.Length;
        var shapes = new ConvShape[n];
        var kernels = general is null ? null : new IGeneralConvolution[n];
        int h = height, w = width;
        Slot input = general is null ? Slot.Input : Slot.InputNhwc;
        int inCs = InChannels;
        long maxAct = 0, zeroRow = 0, scratch = 0, workspace = 0;
        int seStride = 0, hidden = 0;
        int[]? stemOffsets = null;
        Slot previousInput = Slot.Input;
        bool anyFused = false;
        for (int i = 0; i < n; i++)
        {
            var c = Convs[i];
            var geometry = c.Geometry(h, w);
            int oh = geometry.OutHeight, ow = geometry.OutWidth;
            int outCs = general is null ? RoundUp16(c.OutChannels) : c.OutChannels;

            // A layer never writes its own input. The pointwise half of a fused pair must not write the depthwise
            // input either: other shares may still be reading their halo rows of it.
            bool fused = FusedWithPrevious(i, (long)batch * oh);
            anyFused |= fused;
            var output = new[] { Slot.Act0, Slot.Act1, Slot.Act2 }.First(a => a != input && !(fused && a == previousInput));
            shapes[i] = new ConvShape(h, w, oh, ow, input, output, inCs, outCs);
            maxAct = Math.Max(maxAct, (long)batch * oh * ow * outCs);
            if (kernels is not null)
            {
                var kernel = general!(algorithm, geometry, c.Weight, c.Bias);
                kernels[i] = kernel;
                int rowsPerCall = (int)Math.Min(oh, (((long)batch * oh) + Shares - 1) / Shares);
                workspace = Math.Max(workspace, kernel.WorkspaceFloats(rowsPerCall));
            }
            else if (c.Kind == EngineLayerKind.Depthwise)
            {
                zeroRow = Math.Max(zeroRow, (long)w * inCs);
            }
            else if (c.Kind == EngineLayerKind.Stem)
            {
                scratch = (long)StemStep.Chunk * c.InChannels * c.Kernel * c.Kernel;
                stemOffsets = StemStep.TapOffsets(c.InChannels, c.Kernel, h, w);
            }

            if (c.SqueezeExcite is { } se)
            {
                seStride = Math.Max(seStride, RoundUp16(outCs));
                hidden = Math.Max(hidden, RoundUp16(se.Reduced));
            }

            h = oh;
            w = ow;
            previousInput = input;
            input = output;
            inCs = outCs;
        }

        int pooledStride = RoundUp16(Convs[^1].OutChannels);
        long[] sizes = new long[(int)Slot.Count];
        sizes[(int)Slot.InputNhwc] = general is null ? 0 : (long)batch * height * width * InChannels;
        sizes[(int)Slot.Act0] = maxAct;
        sizes[(int)Slot.Act1] = maxAct;
        sizes[(int)Slot.Act2] = anyFused ? maxAct : 0;
        sizes[(int)Slot.ZeroRow] = zeroRow;
        sizes[(int)Slot.SeMean] = (long)batch * seStride;
        sizes[(int)Slot.SeGate] = (long)batch * seStride;
        sizes[(int)Slot.SeHidden] = (long)Shares * hidden;
        sizes[(int)Slot.Pooled] = (long)batch * pooledStride;
        sizes[(int)Slot.Logits] = (long)batch * Head.PaddedN;
        long scratchPerShare = AlignedBuffer.RoundUp(scratch);
        long workspacePerShare = AlignedBuffer.RoundUp(workspace);
        sizes[(int)Slot.Scratch] = Shares * scratchPerShare;
        sizes[(int)Slot.Workspace] = Shares * workspacePerShare;
        long[] offsets = new long[(int)Slot.Count];
        long total = 0;
        for (int s = 0; s < sizes.Length; s++)
        {
            offsets[s] = total;
            total += AlignedBuffer.RoundUp(sizes[s]);
        }

        const long Limit = int.MaxValue / 2;
        if (total > Limit || maxAct > Limit)
        {
            throw new ArgumentException(
                $"Batch {batch} at {height}x{width} needs {total} floats of activations; one engine run supports at most {Limit}. Use a smaller batch or resolution.");
        }

        return new ShapePlan
        {
            Steps = FuseSteps(shapes, batch),
            Batch = batch,
            Height = height,
            Width = width,
            Convs = shapes,
            Offsets = offsets,
            ScratchPerShare = scratchPerShare,
            WorkspacePerShare = workspacePerShare,
            ZeroRowFloats = zeroRow,
            SeStride = seStride,
            HiddenStride = hidden,
            PooledStride = pooledStride,
            TotalFloats = total,
            General = kernels,
            StemOffsets = stemOffsets,
        };
    }

    /// <summary>
    /// Whether convolution <paramref name="index"/> (pointwise) runs fused with the depthwise layer before it: that
    /// layer has no squeeze-excite (whose means need a barrier) and its output has at least one row per share; the
    /// last stages (7x7) keep separate steps and the pointwise panel split.
    /// </summary>
    private bool FusedWithPrevious(int index, long rows) =>
        general is null && index > 0
        && Convs[index].Kind == EngineLayerKind.Pointwise
        && Convs[index - 1].Kind == EngineLayerKind.Depthwise
        && Convs[index - 1].SqueezeExcite is null
        && rows >= Shares;

    private EngineStep[] FuseSteps(ConvShape[] shapes, int batch)
    {
        var steps = new List<EngineStep>(Steps.Length);
        for (int i = 0; i < Steps.Length; i++)
        {
            if (Steps[i] is DepthwiseStep dw && i + 1 < Steps.Length && Steps[i + 1] is PointwiseStep pw
                && pw.Conv.Index == dw.Conv.Index + 1 && FusedWithPrevious(pw.Conv.Index, (long)batch * shapes[pw.Conv.Index].OutH))
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
        var result = new EngineLayerShape[Layers.Count];
        int h = height, w = width;
        foreach (var c in Convs)
        {
            var g = c.Geometry(h, w);
            int oh = g.OutHeight, ow = g.OutWidth;
            int index = IndexOf(c.Name);
            result[index] = new EngineLayerShape(Layers[index], h, w, oh, ow, g.MultiplyAccumulates);
            if (c.SqueezeExcite is { } se)
            {
                int seIndex = IndexOf(c.Name + ".attn");
                result[seIndex] = new EngineLayerShape(Layers[seIndex], oh, ow, oh, ow, 2L * se.Channels * se.Reduced);
            }

            h = oh;
            w = ow;
        }

        for (int i = 0; i < result.Length; i++)
        {
            var layer = Layers[i];
            result[i] ??= layer.Kind switch
            {
                EngineLayerKind.InputLayout => new EngineLayerShape(layer, height, width, height, width, 0),
                EngineLayerKind.GlobalAveragePool => new EngineLayerShape(layer, h, w, 1, 1, 0),
                _ => new EngineLayerShape(layer, 1, 1, 1, 1, (long)layer.InChannels * layer.OutChannels),
            };
        }

        return result;
    }

    private int IndexOf(string name)
    {
        for (int i = 0; i < Layers.Count; i++)
        {
            if (Layers[i].Name == name)
            {
                return i;
            }
        }

        throw new InvalidOperationException($"No layer named {name}.");
    }

    private static int RoundUp16(int c) => (c + 15) / 16 * 16;
}
