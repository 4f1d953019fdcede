using MobileOne.Kernels.Gemm;
using MobileOne.Kernels;
using MobileOne.Nn;
using MobileOne.Tensors;
using MobileOne.Kernels.Depthwise;

namespace MobileOne.Models;

/// <summary>
/// One MobileOne block, in either of its two forms:
/// train-time: sum of k conv+BN branches, a 1x1 conv+BN scale branch (K > 1) and a BN skip (shapes equal);
/// fused: one convolution with bias. Either form is followed by optional squeeze-excite and ReLU.
/// State names are timm's (identity, conv_kxk.i, conv_scale, attn.fc1/fc2, reparam_conv).
/// </summary>
public sealed class MobileOneBlock : Module
{
    private readonly ActivationBuffer branchOutputs = new();
    private readonly ActivationBuffer preActivation = new();
    private readonly ActivationBuffer output = new();
    private readonly ActivationBuffer gradPre = new();
    private readonly ActivationBuffer gradInput = new();
    private readonly ActivationBuffer concatWeights = new();
    private readonly ActivationBuffer concatGrad = new();
    private readonly ActivationBuffer inputRows = new();
    private readonly ActivationBuffer rowScratch = new();
    private readonly ActivationBuffer gradRows = new();
    private readonly PointwiseMoments moments = new();
    private readonly DepthwiseMoments depthwiseMoments = new();
    private Tensor? savedInput;
    private Tensor? savedOutput;
    private bool usedMoments;
    private bool usedDepthwiseMoments;
    private ActivationLayout inputLayout;
    private ActivationLayout outputLayout;

    private MobileOneBlock(BlockSpec spec, bool fused)
    {
        spec.Validate();
        Spec = spec;
        if (fused)
        {
            ReparamConv = new Conv2d(spec.InChannels, spec.OutChannels, spec.KernelSize, spec.Stride, spec.Padding, spec.Groups, bias: true);
            ConvKxk = [];
        }
        else
        {
            Identity = spec.HasIdentity ? new BatchNorm2d(spec.InChannels) : null;
            ConvKxk = Enumerable.Range(0, spec.NumConvBranches)
                .Select(_ => new ConvBn(spec.InChannels, spec.OutChannels, spec.KernelSize, spec.Stride, spec.Padding, spec.Groups))
                .ToArray();
            ConvScale = spec.HasScaleBranch ? new ConvBn(spec.InChannels, spec.OutChannels, 1, spec.Stride, 0, spec.Groups) : null;
        }

        Attn = spec.HasSqueezeExcite ? new SqueezeExcite(spec.OutChannels, spec.SeChannels) : null;
    }

    /// <summary>The block's geometry.</summary>
    public BlockSpec Spec { get; }

    /// <summary>The kind of layer and its output size in <see cref="OpProfile"/> rows: "dw 3x3/2 -> 8x8", "pw 1x1 -> 4x4".</summary>
    private string ProfileLayer(int ho, int wo) => (Spec.IsDepthwise ? $"dw {Spec.KernelSize}x{Spec.KernelSize}/{Spec.Stride}"
        : Spec.KernelSize == 1 && Spec.Groups == 1 ? (Spec.Stride == 1 ? "pw 1x1" : $"pw 1x1/{Spec.Stride}")
        : $"conv {Spec.KernelSize}x{Spec.KernelSize}/{Spec.Stride}") + $" -> {ho}x{wo}";

    /// <summary>Floating-point operations of one pass of every branch convolution over a batch (forward, or either gradient).</summary>
    private double ConvFlops(int n, int plane)
    {
        int taps = ConvScale is null ? 0 : ConvScale.Conv.KernelSize * ConvScale.Conv.KernelSize;
        foreach (var b in ConvKxk)
        {
            taps += b.Conv.KernelSize * b.Conv.KernelSize;
        }

        return 2.0 * n * plane * Spec.OutChannels * (Spec.InChannels / Spec.Groups) * taps;
    }

    /// <summary>An <see cref="OpProfile"/> scope for this block; nothing is built while profiling is off.</summary>
    private OpProfile.Scope Profile(int ho, int wo, string op, double flops = 0, double bytes = 0) =>
        OpProfile.Enabled ? OpProfile.Measure(ProfileLayer(ho, wo), op, flops, bytes) : default;

    /// <summary>Whether the block is one fused convolution (reparam_conv).</summary>
    public bool IsFused => ReparamConv is not null;

    /// <summary>The BatchNorm skip branch (timm's identity), when the block has one and is not fused.</summary>
    public BatchNorm2d? Identity { get; }

    /// <summary>The k conv+BN branches (timm's conv_kxk), empty when fused.</summary>
    public IReadOnlyList<ConvBn> ConvKxk { get; }

    /// <summary>The 1x1 conv+BN scale branch (timm's conv_scale), when the block has one and is not fused.</summary>
    public ConvBn? ConvScale { get; }

    /// <summary>The fused convolution with bias, when the block is fused.</summary>
    public Conv2d? ReparamConv { get; }

    /// <summary>Squeeze-excite (timm's attn), when the block has it.</summary>
    public SqueezeExcite? Attn { get; }

    /// <summary>A train-time block with every branch.</summary>
    public static MobileOneBlock CreateTrainTime(BlockSpec spec) => new(spec, fused: false);

    /// <summary>A fused block: one convolution with bias.</summary>
    public static MobileOneBlock CreateFused(BlockSpec spec) => new(spec, fused: true);

    /// <summary>
    /// Forward pass, through the fused training passes either way (see <see cref="Backward"/>). Without gradients (the
    /// default, eval mode) this is the stateless inference path: BatchNorm uses running statistics, every buffer is
    /// this call's own, nothing is kept and a fresh tensor is returned, so threads may share a block. With gradients
    /// enabled (<see cref="Module.Train"/> or <c>Eval(gradEnabled: true)</c>) the block keeps what Backward needs and
    /// the returned tensor is owned by the block until its next Forward.
    /// </summary>
    public Tensor Forward(Tensor input)
    {
        if (GradEnabled)
        {
            return ReparamConv is not null ? ForwardFusedTraining(input) : ForwardTraining(input, ActivationLayout.Nchw, ActivationLayout.Nchw);
        }

        return ReparamConv is not null ? ForwardFusedStateless(input) : ForwardStateless(input);
    }

    /// <summary>
    /// <see cref="Forward(Tensor)"/> with gradients enabled, the input in <paramref name="inputLayout"/> and the output written in
    /// <paramref name="outputLayout"/>; <see cref="Backward"/> then takes the output gradient in the output's layout and
    /// returns the input gradient in the input's. CHWN only where <see cref="WorksInChwn"/> says so.
    /// </summary>
    internal Tensor Forward(Tensor input, ActivationLayout inputLayout, ActivationLayout outputLayout)
    {
        if (inputLayout == ActivationLayout.Nchw && outputLayout == ActivationLayout.Nchw)
        {
            return Forward(input);
        }

        var (n, _, h, w) = inputLayout.Dims(input);
        if (!WorksInChwn(n, h, w))
        {
            throw new InvalidOperationException("This block's passes for this batch do not work in the CHWN layout.");
        }

        return ForwardTraining(input, inputLayout, outputLayout);
    }

    /// <summary>
    /// Whether this block's training passes over a batch of <paramref name="n"/> inputs of <paramref name="h"/> x
    /// <paramref name="w"/> take their input and give their output in CHWN as readily as in NCHW: the pointwise moment
    /// passes, the stacked 1x1 products on channel rows and the depthwise passes on small planes in lanes all move
    /// NCHW into that layout (or its channel rows) first and back at the end. Never with squeeze-excite (it reads
    /// NCHW) or when fused.
    /// </summary>
    internal bool WorksInChwn(int n, int h, int w)
    {
        if (!GradEnabled || ReparamConv is not null || Attn is not null)
        {
            return false;
        }

        var (ho, wo) = OutputSize(h, w);
        var (pointwise, depthwise) = MomentPasses(n, ho, wo);
        return pointwise || (depthwise && DepthwiseMoments.TakesSmallPlanes(Spec.Stride, n, h, w)) || (!depthwise && KeepsRows(ho * wo));
    }

    /// <summary>Whether the training passes over <paramref name="n"/> outputs of <paramref name="ho"/> x <paramref name="wo"/> are the pointwise or the depthwise moment passes.</summary>
    private (bool Pointwise, bool Depthwise) MomentPasses(int n, int ho, int wo)
    {
        int branchCount = ConvKxk.Count + (ConvScale is not null ? 1 : 0);
        bool pointwise = Training && StacksPointwise && (MomentsOverride ?? PointwiseMoments.Pays(Spec.InChannels, Spec.OutChannels, branchCount, (long)n * ho * wo));
        bool depthwise = Training && DepthwiseMoments.Applies(Spec, ho, wo) && (MomentsOverride ?? DepthwiseMoments.Pays(Spec.Stride, n, ho, wo));
        return (pointwise, depthwise);
    }

    /// <summary>
    /// Backward of the last Forward with gradients enabled: accumulates every parameter gradient and returns the input
    /// gradient (owned by the block), or null when <paramref name="inputGradient"/> is false (a network's stem).
    /// </summary>
    /// <remarks>
    /// The train-time block is y = ReLU(SE(sum_b BN_b(conv_b(x)) + BN_id(x))). Its training passes are fused:
    /// the branch convolutions write one buffer [branch][N][C][H][W] (k pointwise branches are one GEMM with the
    /// weights stacked; depthwise branches share one padded copy of each input plane); every BatchNorm becomes a
    /// per-channel scale and shift and one pass sums them with the ReLU. Backward makes one pass for the per-channel
    /// sums of all BatchNorms, turns each branch buffer into its own gradient in place, then runs the convolution
    /// gradients (again one GEMM for stacked pointwise branches). In training mode, k 1x1 branches over a batch with
    /// many more pixels than channels take <see cref="PointwiseMoments"/> instead, and 3x3 depthwise blocks
    /// <see cref="DepthwiseMoments"/>: the same function and gradients from the input's moments, without writing the
    /// branch outputs.
    /// </remarks>
    public Tensor? Backward(Tensor gradOutput, bool inputGradient = true)
    {
        var x = savedInput ?? throw new InvalidOperationException("MobileOneBlock.Backward needs a Forward with gradients enabled first (call Train() or Eval(gradEnabled: true)).");
        var y = savedOutput!;
        if (!gradOutput.HasShape(y.Shape))
        {
            throw new ArgumentException($"Block output gradient must have shape {y.ShapeString}; got {gradOutput.ShapeString}.", nameof(gradOutput));
        }

        var g = gradPre.Get(y.Shape);
        var (_, _, yHeight, yWidth) = outputLayout.Dims(y);
        using (Profile(yHeight, yWidth, "bwd relu", bytes: 12.0 * y.Length))
        unsafe
        {
            fixed (float* dy = gradOutput.Data)
            fixed (float* yp = y.Data)
            fixed (float* gp = g.Data)
            {
                ActivationBackward.Relu(dy, yp, gp, y.Length);
            }
        }

        var ds = Attn is not null ? Attn.Backward(g) : g;
        if (ReparamConv is not null)
        {
            return ReparamConv.Backward(ds, inputGradient);
        }

        return BackwardTraining(x, ds, inputGradient);
    }

    /// <summary>Output height and width for a <paramref name="height"/> x <paramref name="width"/> input.</summary>
    public (int Height, int Width) OutputSize(int height, int width)
    {
        int oh = ((height + (2 * Spec.Padding) - Spec.KernelSize) / Spec.Stride) + 1;
        int ow = ((width + (2 * Spec.Padding) - Spec.KernelSize) / Spec.Stride) + 1;
        return (oh, ow);
    }

    /// <inheritdoc/>
    public override IEnumerable<Module> Children()
    {
        if (ReparamConv is not null)
        {
            yield return ReparamConv;
        }

        if (Identity is not null)
        {
            yield return Identity;
        }

        foreach (var b in ConvKxk)
        {
            yield return b;
        }

        if (ConvScale is not null)
        {
            yield return ConvScale;
        }

        if (Attn is not null)
        {
            yield return Attn;
        }
    }

    /// <inheritdoc/>
    public override IEnumerable<NamedParameter> NamedParameters(string prefix = "") =>
        Children().Zip(ChildPrefixes(prefix)).SelectMany(c => c.First.NamedParameters(c.Second));

    /// <inheritdoc/>
    public override void ReleaseBuffers()
    {
        branchOutputs.Release();
        preActivation.Release();
        output.Release();
        gradPre.Release();
        gradInput.Release();
        concatWeights.Release();
        concatGrad.Release();
        inputRows.Release();
        rowScratch.Release();
        gradRows.Release();
        moments.Release();
        depthwiseMoments.Release();
        savedInput = null;
        savedOutput = null;
        base.ReleaseBuffers();
    }

    private IEnumerable<string> ChildPrefixes(string prefix)
    {
        if (ReparamConv is not null)
        {
            yield return prefix + "reparam_conv.";
        }

        if (Identity is not null)
        {
            yield return prefix + "identity.";
        }

        for (int i = 0; i < ConvKxk.Count; i++)
        {
            yield return $"{prefix}conv_kxk.{i}.";
        }

        if (ConvScale is not null)
        {
            yield return prefix + "conv_scale.";
        }

        if (Attn is not null)
        {
            yield return prefix + "attn.";
        }
    }

    /// <summary>Branches in buffer order: conv_kxk.0 .. k-1, then conv_scale.</summary>
    private List<ConvBn> TrainBranches()
    {
        var list = new List<ConvBn>(ConvKxk);
        if (ConvScale is not null)
        {
            list.Add(ConvScale);
        }

        return list;
    }

    /// <summary>
    /// Tests: true or false forces whether training passes use the moment passes (<see cref="PointwiseMoments"/> for
    /// stacked 1x1 branches, <see cref="DepthwiseMoments"/> for 3x3 depthwise ones); null lets
    /// <see cref="PointwiseMoments.Pays"/> and <see cref="DepthwiseMoments.Pays"/> decide.
    /// </summary>
    internal static bool? MomentsOverride { get; set; }

    /// <summary>k stacked 1x1 convolutions over the same input: one GEMM with the weights stacked.</summary>
    private bool StacksPointwise => Spec.KernelSize == 1 && Spec.Stride == 1 && Spec.Padding == 0 && Spec.Groups == 1 && ConvScale is null;

    /// <summary>
    /// Whether the stacked 1x1 branches keep their training passes on channel rows: the NCHW batch transposed to
    /// (channels x pixels) x images (<see cref="MatrixTranspose"/>), so that channel c's values of every image and
    /// pixel are one row. On planes whose per-image runs are too short for the GEMM to read in place it copies every
    /// fragmented operand dense and back at every product (the input twice, the k branch outputs three times, the
    /// input gradient once per step); in rows the input and the output gradient move once each way (not at all when
    /// they arrive in CHWN, which is these rows) and the branch outputs never. A 2x2 block (256 channels, k = 4, batch 64, one thread, Zen 5) takes 2.34-2.48 ms per forward +
    /// backward in rows against 2.69-2.91 ms with the copies (<c>tools/training/block_time.fsx pw 256 2 4 64</c>).
    /// </summary>
    private bool KeepsRows(int plane) => StacksPointwise && plane < PackedSgemm.ShortRun;

    /// <summary>
    /// Whether the training passes on channel rows (<see cref="KeepsRows"/>) stack the k weights into one GEMM: when a
    /// branch has no more output channels than the batch has pixels. Wider, as the 1x1 planes of the last stage (1,024
    /// channels, 64 images), every pass copied megabytes of weights into the stack and of gradients out of it, and a
    /// GEMM per branch reads them in place instead (its other operand, the batch's rows, is the smaller one to pack k times).
    /// </summary>
    private bool StacksWeights(int n, int plane) => Spec.OutChannels <= (long)n * plane;

    private unsafe Tensor ForwardTraining(Tensor x, ActivationLayout inLayout, ActivationLayout outLayout)
    {
        if (inLayout == ActivationLayout.Nchw)
        {
            Shapes.RequireNchw(x, Spec.InChannels, "block input");
        }

        var (n, _, h, w) = inLayout.Dims(x);
        var (ho, wo) = OutputSize(h, w);
        int cout = Spec.OutChannels;
        var branches = TrainBranches();
        var pre = Attn is not null ? preActivation.Get(n, cout, ho, wo) : output.Get(outLayout.Shape(n, cout, ho, wo));
        (usedMoments, usedDepthwiseMoments) = MomentPasses(n, ho, wo);
        (inputLayout, outputLayout) = (inLayout, outLayout);
        if (usedMoments)
        {
            using var scope = Profile(ho, wo, "fwd moments", PointwiseMoments.ForwardFlops(Spec.InChannels, cout, branches.Count, (long)n * ho * wo));
            moments.Forward(x, inLayout, ConvKxk, Identity, pre, outLayout, relu: Attn is null);
        }
        else if (usedDepthwiseMoments)
        {
            using var scope = Profile(ho, wo, "fwd moments", DepthwiseMoments.ForwardFlops(cout, n, h, w, Spec.Stride));
            depthwiseMoments.Forward(x, inLayout, ConvKxk, ConvScale, Identity, pre, outLayout, relu: Attn is null, stride: Spec.Stride);
        }
        else
        {
            var z = branchOutputs.Get(branches.Count, n, cout, ho, wo);
            SumBranches(x, inLayout, branches, z.Data, pre, outLayout, training: true);
        }

        var y = pre;
        if (Attn is not null)
        {
            var excited = Attn.Forward(pre);
            y = output.Get(n, cout, ho, wo);
            for (int i = 0; i < y.Length; i++)
            {
                y.Data[i] = MathF.Max(excited.Data[i], 0f);
            }
        }

        savedInput = x;
        savedOutput = y;
        return y;
    }

    /// <summary>The no-grad train-time block: the passes of <see cref="ForwardTraining"/> on buffers of this call.</summary>
    private Tensor ForwardStateless(Tensor x)
    {
        Shapes.RequireNchw(x, Spec.InChannels, "block input");
        int n = x.Dim(0), h = x.Dim(2), w = x.Dim(3);
        var (ho, wo) = OutputSize(h, w);
        int cout = Spec.OutChannels;
        var branches = TrainBranches();
        float[] z = GC.AllocateUninitializedArray<float>(checked(branches.Count * n * cout * ho * wo));
        var pre = Tensor.Uninitialized(n, cout, ho, wo);
        SumBranches(x, ActivationLayout.Nchw, branches, z, pre, ActivationLayout.Nchw, training: false);
        return Attn is not null ? Attn.ForwardStateless(pre, relu: true) : pre;
    }

    /// <summary>
    /// pre = sum over branches of BN_b(conv_b(x)) + BN_id(x), with the ReLU when no squeeze-excite follows. The branch
    /// convolutions write <paramref name="z"/> ([branch][N][C][H][W]); every BatchNorm becomes a per-channel scale and
    /// shift and one pass sums them. With <paramref name="training"/> the convolutions and BatchNorms keep what Backward
    /// needs (BatchNorm prepares its statistics, updating the running ones in training mode); without, the BatchNorms
    /// use their running statistics and nothing on the block or its layers changes.
    /// </summary>
    private unsafe void SumBranches(Tensor x, ActivationLayout inLayout, List<ConvBn> branches, float[] z, Tensor pre, ActivationLayout outLayout, bool training)
    {
        var (n, _, h, w) = inLayout.Dims(x);
        var (ho, wo) = OutputSize(h, w);
        int cout = Spec.OutChannels, plane = ho * wo;
        int count = branches.Count;
        long branchSize = (long)n * cout * plane;
        bool rows = training && KeepsRows(plane);
        bool inChwn = inLayout == ActivationLayout.Chwn, outChwn = outLayout == ActivationLayout.Chwn;
        if ((inChwn || outChwn) && !rows)
        {
            throw new InvalidOperationException("Only the stacked 1x1 products on channel rows take or give CHWN.");
        }

        // In CHWN the input is its channel rows already.
        float[] xRows = !rows ? [] : inChwn ? x.Data : inputRows.GetFlat(x.Length);
        var convScope = Profile(ho, wo, "fwd conv", ConvFlops(n, plane));
        fixed (float* xp = x.Data)
        fixed (float* xrp = xRows)
        fixed (float* zp = z)
        {
            if (rows && !inChwn)
            {
                MatrixTranspose.Transpose(xp, n, Spec.InChannels * plane, xrp);
            }

            if (rows && !StacksWeights(n, plane))
            {
                // Weights larger than the batch's rows: a GEMM per branch reading its weights in place.
                for (int b = 0; b < count; b++)
                {
                    fixed (float* wp = branches[b].Conv.Weight.Value.Data)
                    {
                        PackedSgemm.Multiply(MatrixView.RowMajor(wp, cout, Spec.InChannels, Spec.InChannels), RowsView(xrp, Spec.InChannels, n, plane), RowsView(zp + (b * branchSize), cout, n, plane), accumulate: false);
                    }
                }
            }
            else if (StacksPointwise && training)
            {
                // One GEMM for the k branches. Without gradients each branch runs its own GEMM below instead: stacking
                // would copy every weight on every call (megabytes for wide layers) into a buffer of that call.
                float[] stacked = concatWeights.GetFlat((long)count * cout * Spec.InChannels);
                for (int b = 0; b < count; b++)
                {
                    branches[b].Conv.Weight.Value.Data.CopyTo(stacked, b * cout * Spec.InChannels);
                }

                fixed (float* wp = stacked)
                {
                    var weights = MatrixView.RowMajor(wp, count * cout, Spec.InChannels, Spec.InChannels);
                    if (rows)
                    {
                        PackedSgemm.Multiply(weights, RowsView(xrp, Spec.InChannels, n, plane), RowsView(zp, count * cout, n, plane), accumulate: false);
                    }
                    else
                    {
                        PackedSgemm.Multiply(
                            weights,
                            MatrixView.ChannelsByPixels(xp, Spec.InChannels, n, h * w, (long)Spec.InChannels * h * w),
                            BranchView(zp, count, cout, n, plane, branchSize),
                            accumulate: false);
                    }
                }
            }
            else if (Spec.IsDepthwise)
            {
                // Weights are plain managed arrays: pinned for the duration of this call only.
                using var pins = new Pins(branches.Select(b => b.Conv.Weight.Value.Data));
                var list = PinnedDepthwise(branches, pins, zp, branchSize);
                DepthwiseConvolution.Forward(xp, n, Spec.InChannels, h, w, Spec.Stride, Spec.Padding, list);
            }
            else
            {
                for (int b = 0; b < count; b++)
                {
                    var destination = new Span<float>(zp + (b * branchSize), (int)branchSize);
                    if (training)
                    {
                        branches[b].Conv.ForwardInto(x, destination);
                    }
                    else
                    {
                        branches[b].Conv.ForwardStateless(x, destination);
                    }
                }
            }
        }

        convScope.Dispose();
        int total = count + (Identity is not null ? 1 : 0);
        var statsScope = Profile(ho, wo, "fwd bn-stats", bytes: 4.0 * total * branchSize);
        var scales = new float[total * cout];
        var shift = new float[cout];
        var inputs = new nint[total];
        var norms = branches.Select(b => b.Bn).ToList();
        if (Identity is not null)
        {
            norms.Add(Identity);
        }

        float[] runningShift = training ? [] : new float[cout];
        for (int b = 0; b < total; b++)
        {
            var bn = norms[b];
            if (training)
            {
                // In rows a channel's values are one run of n x plane (as one image of that size).
                var values = b < count ? z.AsSpan((int)(b * branchSize), (int)branchSize) : rows ? xRows.AsSpan(0, x.Length) : x.Data;
                bn.PrepareStatistics(values, rows ? 1 : n, rows ? n * plane : plane);
                bn.Scale.CopyTo(scales.AsSpan(b * cout));
                AddTo(shift, bn.Shift);
            }
            else
            {
                bn.RunningAffine(scales.AsSpan(b * cout, cout), runningShift);
                AddTo(shift, runningShift);
            }
        }

        statsScope.Dispose();
        using var sumScope = Profile(ho, wo, "fwd branch-sum", bytes: 4.0 * (total + 1) * branchSize);
        float[] preRows = rows && !outChwn ? rowScratch.GetFlat(pre.Length) : [];
        fixed (float* xp = x.Data)
        fixed (float* xrp = xRows)
        fixed (float* zp = z)
        fixed (float* sp = scales)
        fixed (float* bp = shift)
        fixed (float* yp = pre.Data)
        fixed (float* prp = preRows)
        {
            for (int b = 0; b < count; b++)
            {
                inputs[b] = (nint)(zp + (b * branchSize));
            }

            if (Identity is not null)
            {
                inputs[count] = (nint)(rows ? xrp : xp);
            }

            if (rows && outChwn)
            {
                BatchNormTraining.BranchSum(inputs, sp, bp, yp, 1, cout, n * plane, relu: Attn is null);
            }
            else if (rows)
            {
                BatchNormTraining.BranchSum(inputs, sp, bp, prp, 1, cout, n * plane, relu: Attn is null);
                MatrixTranspose.Transpose(prp, cout * plane, n, yp);
            }
            else
            {
                BatchNormTraining.BranchSum(inputs, sp, bp, yp, n, cout, plane, relu: Attn is null);
            }
        }
    }

    private unsafe Tensor? BackwardTraining(Tensor x, Tensor ds, bool inputGradient)
    {
        if (usedMoments)
        {
            var (batch, _, outHeight, outWidth) = outputLayout.Dims(ds);
            using var scope = Profile(outHeight, outWidth, "bwd moments", PointwiseMoments.BackwardFlops(Spec.InChannels, Spec.OutChannels, ConvKxk.Count, (long)batch * outHeight * outWidth));
            var gradX = inputGradient ? gradInput.Get(x.Shape) : null;
            moments.Backward(ds, outputLayout, ConvKxk, Identity, gradX, inputLayout);
            return gradX;
        }

        if (usedDepthwiseMoments)
        {
            var (_, _, outHeight, outWidth) = outputLayout.Dims(ds);
            var (batch, channels, height, width) = inputLayout.Dims(x);
            using var scope = Profile(outHeight, outWidth, "bwd moments", DepthwiseMoments.BackwardFlops(channels, batch, height, width, Spec.Stride));
            var gradX = inputGradient ? gradInput.Get(x.Shape) : null;
            depthwiseMoments.Backward(x, inputLayout, ds, outputLayout, ConvKxk, ConvScale, Identity, gradX);
            return gradX;
        }

        var (n, _, h, w) = inputLayout.Dims(x);
        var (ho, wo) = OutputSize(h, w);
        int cout = Spec.OutChannels, cin = Spec.InChannels, plane = ho * wo;
        var branches = TrainBranches();
        int count = branches.Count;
        long branchSize = (long)n * cout * plane;
        var z = branchOutputs.Get(count, n, cout, ho, wo);
        int total = count + (Identity is not null ? 1 : 0);
        var norms = branches.Select(b => b.Bn).ToList();
        if (Identity is not null)
        {
            norms.Add(Identity);
        }

        var means = new float[total * cout];
        for (int b = 0; b < total; b++)
        {
            norms[b].NormalizationMean.CopyTo(means.AsSpan(b * cout));
        }

        var sumDy = new double[cout];
        var sumDyX = new double[total * cout];
        var inputs = new nint[total];
        var dx = inputGradient ? gradInput.Get(x.Shape) : null;

        // In rows (KeepsRows) x is the forward's rows, ds moves in and dx out, and every pass sees one image of n x plane.
        // A tensor in CHWN is its channel rows already.
        bool rows = KeepsRows(plane);
        bool inChwn = inputLayout == ActivationLayout.Chwn, outChwn = outputLayout == ActivationLayout.Chwn;
        float[] xRows = !rows ? [] : inChwn ? x.Data : inputRows.GetFlat(x.Length);
        float[] dsRows = !rows ? [] : outChwn ? ds.Data : rowScratch.GetFlat(ds.Length);
        float[] dxRows = !rows || dx is null ? [] : inChwn ? dx.Data : gradRows.GetFlat(x.Length);
        int images = rows ? 1 : n, pixels = rows ? n * plane : plane;
        fixed (float* xIn = x.Data)
        fixed (float* xrp = xRows)
        fixed (float* zp = z.Data)
        fixed (float* dsIn = ds.Data)
        fixed (float* dsrp = dsRows)
        fixed (float* mp = means)
        fixed (double* sdp = sumDy)
        fixed (double* sxp = sumDyX)
        fixed (float* dxOut = dx is null ? null : dx.Data)
        fixed (float* dxrp = dxRows)
        {
            if (rows && !outChwn)
            {
                MatrixTranspose.Transpose(dsIn, n, cout * plane, dsrp);
            }

            float* xp = rows ? xrp : xIn, dsp = rows ? dsrp : dsIn, dxp = rows && dxOut is not null ? dxrp : dxOut;
            for (int b = 0; b < count; b++)
            {
                inputs[b] = (nint)(zp + (b * branchSize));
            }

            if (Identity is not null)
            {
                inputs[count] = (nint)xp;
            }

            using (Profile(ho, wo, "bwd bn-sums", bytes: 4.0 * (total + 1) * branchSize))
            {
                BatchNormTraining.GradientSums(dsp, inputs, mp, images, cout, pixels, sdp, sxp);
                for (int b = 0; b < total; b++)
                {
                    norms[b].PrepareGradient(sumDy, sumDyX.AsSpan(b * cout, cout));
                }
            }

            var bnGradScope = Profile(ho, wo, "bwd bn-grad", bytes: 4.0 * ((2 * count) + 1 + (dxp is not null && Identity is not null ? 2 : 0)) * branchSize);

            // Each branch buffer becomes the gradient of its convolution output, in place.
            for (int b = 0; b < count; b++)
            {
                float* zb = zp + (b * branchSize);
                InputGradient(norms[b], dsp, zb, zb, accumulate: false, images, cout, pixels);
            }

            bool started = false;
            if (Identity is not null && dxp is not null)
            {
                InputGradient(Identity, dsp, xp, dxp, accumulate: false, images, cout, pixels);
                started = true;
            }

            bnGradScope.Dispose();
            double convFlops = ConvFlops(n, plane);

            if (rows && !StacksWeights(n, plane))
            {
                // The forward's GEMM per branch: each branch's weight gradient accumulates in place, and the input
                // gradient takes the branches in order, as the stacked product's depth would.
                using (Profile(ho, wo, "bwd weight-grad", convFlops))
                {
                    for (int b = 0; b < count; b++)
                    {
                        fixed (float* gwp = branches[b].Conv.Weight.EnsureGrad().Data)
                        {
                            PackedSgemm.Multiply(RowsView(zp + (b * branchSize), cout, n, plane), RowsView(xp, cin, n, plane).Transposed(), MatrixView.RowMajor(gwp, cout, cin, cin), accumulate: true);
                        }
                    }
                }

                if (dxp is not null)
                {
                    using var inputScope = Profile(ho, wo, "bwd input-grad", convFlops);
                    for (int b = 0; b < count; b++)
                    {
                        fixed (float* wp = branches[b].Conv.Weight.Value.Data)
                        {
                            PackedSgemm.Multiply(MatrixView.RowMajor(wp, cout, cin, cin).Transposed(), RowsView(zp + (b * branchSize), cout, n, plane), RowsView(dxp, cin, n, plane), accumulate: started || b > 0);
                        }
                    }

                    if (!inChwn)
                    {
                        MatrixTranspose.Transpose(dxp, cin * plane, n, dxOut);
                    }
                }
            }
            else if (StacksPointwise)
            {
                float[] stacked = concatWeights.GetFlat((long)count * cout * cin);
                float[] stackedGrad = concatGrad.GetFlat((long)count * cout * cin);
                var zView = rows ? RowsView(zp, count * cout, n, plane) : BranchView(zp, count, cout, n, plane, branchSize);
                var xView = rows ? RowsView(xp, cin, n, plane) : MatrixView.ChannelsByPixels(xp, cin, n, h * w, (long)cin * h * w);
                fixed (float* wp = stacked)
                fixed (float* gwp = stackedGrad)
                {
                    using (Profile(ho, wo, "bwd weight-grad", convFlops))
                    {
                        PackedSgemm.Multiply(zView, xView.Transposed(), MatrixView.RowMajor(gwp, count * cout, cin, cin), accumulate: false);
                    }

                    if (dxp is not null)
                    {
                        using var inputScope = Profile(ho, wo, "bwd input-grad", convFlops);
                        PackedSgemm.Multiply(
                            MatrixView.RowMajor(wp, count * cout, cin, cin).Transposed(), zView,
                            rows ? RowsView(dxp, cin, n, plane) : MatrixView.ChannelsByPixels(dxp, cin, n, h * w, (long)cin * h * w), accumulate: started);
                        if (rows && !inChwn)
                        {
                            MatrixTranspose.Transpose(dxp, cin * plane, n, dxOut);
                        }
                    }
                }

                for (int b = 0; b < count; b++)
                {
                    Elementwise.Add(branches[b].Conv.Weight.EnsureGrad().Data, stackedGrad.AsSpan(b * cout * cin, cout * cin));
                }
            }
            else if (Spec.IsDepthwise)
            {
                // The 1x1 scale branch's weight gradient goes to a scratch first: ScaleBranchGradient may replace it.
                bool scaleApart = ConvScale is not null && ConvScale.Conv.KernelSize == 1;
                float[] scaleGrad = scaleApart ? new float[cout] : [];
                using (Profile(ho, wo, "bwd weight-grad", convFlops))
                using (var gradPins = new Pins(branches.Select((b, i) => scaleApart && i == count - 1 ? scaleGrad : b.Conv.Weight.EnsureGrad().Data)))
                {
                    var list = PinnedDepthwise(branches, gradPins, zp, branchSize);
                    DepthwiseConvolution.BackwardWeight(xp, n, cin, h, w, Spec.Stride, Spec.Padding, list);
                }

                if (scaleApart)
                {
                    ScaleBranchGradient(scaleGrad, sumDyX.AsSpan((count - 1) * cout, cout));
                }

                if (dxp is not null)
                {
                    using var inputScope = Profile(ho, wo, "bwd input-grad", convFlops);
                    using var pins = new Pins(branches.Select(b => b.Conv.Weight.Value.Data));
                    var list = PinnedDepthwise(branches, pins, zp, branchSize);
                    DepthwiseConvolution.BackwardInput(dxp, started, n, cin, h, w, Spec.Stride, Spec.Padding, list);
                }
            }
            else
            {
                using var gradScope = Profile(ho, wo, "bwd conv-grads", convFlops * (dxp is not null ? 2 : 1));
                for (int b = 0; b < count; b++)
                {
                    var gradOut = new ReadOnlySpan<float>(zp + (b * branchSize), (int)branchSize);
                    branches[b].Conv.BackwardInto(gradOut, dx is null ? default : dx.Data, accumulate: started || b > 0);
                }
            }
        }

        return dx;
    }

    /// <summary>
    /// Adds the 1x1 depthwise scale branch's weight gradient: the well-conditioned identity of
    /// <see cref="BatchNorm2d.ScaleInvariantWeightGradient"/> where it applies, else the direct sum.
    /// </summary>
    private void ScaleBranchGradient(float[] direct, ReadOnlySpan<double> sumDyCentered)
    {
        var conv = ConvScale!.Conv;
        float[] weights = conv.Weight.Value.Data, grad = conv.Weight.EnsureGrad().Data;
        for (int c = 0; c < grad.Length; c++)
        {
            double? exact = ConvScale.Bn.ScaleInvariantWeightGradient(c, sumDyCentered[c], weights[c]);
            grad[c] += exact is double e ? (float)e : direct[c];
        }
    }

    private Tensor ForwardFusedTraining(Tensor x)
    {
        var conv = ReparamConv!.Forward(x);
        var pre = Attn is not null ? Attn.Forward(conv) : conv;
        var y = output.Get(pre.Shape);
        for (int i = 0; i < y.Length; i++)
        {
            y.Data[i] = MathF.Max(pre.Data[i], 0f);
        }

        savedInput = x;
        savedOutput = y;
        return y;
    }

    private Tensor ForwardFusedStateless(Tensor x)
    {
        var conv = ReparamConv!;
        Shapes.RequireNchw(x, conv.InChannels, "block input");
        var (ho, wo) = OutputSize(x.Dim(2), x.Dim(3));
        var y = Tensor.Uninitialized(x.Dim(0), conv.OutChannels, ho, wo);
        conv.ForwardStateless(x, y.Data);
        if (Attn is not null)
        {
            return Attn.ForwardStateless(y, relu: true);
        }

        Elementwise.Relu(y.Data);
        return y;
    }

    private static unsafe void InputGradient(BatchNorm2d bn, float* dy, float* x, float* dx, bool accumulate, int n, int channels, int plane)
    {
        fixed (float* k1 = bn.K1)
        fixed (float* md = bn.MeanDy)
        fixed (float* k2 = bn.K2)
        fixed (float* mu = bn.NormalizationMean)
        {
            BatchNormTraining.InputGradient(dy, x, dx, accumulate, n, channels, plane, k1, md, k2, mu);
        }
    }

    /// <summary>A [rows x (n x plane)] buffer in channel rows (<see cref="KeepsRows"/>) as a dense row-major matrix.</summary>
    private static unsafe MatrixView RowsView(float* data, int rows, int n, int plane) =>
        MatrixView.RowMajor(data, rows, n * plane, (long)n * plane);

    /// <summary>The rows (branch, channel) x columns (image, pixel) view of the branch buffer.</summary>
    private static unsafe MatrixView BranchView(float* z, int count, int cout, int n, int plane, long branchSize) =>
        MatrixView.ChannelsByPixels(z, count * cout, n, plane, (long)cout * plane).WithRowBatches(cout, branchSize);

    private static unsafe DepthwiseBranch[] PinnedDepthwise(List<ConvBn> branches, Pins pins, float* z, long branchSize)
    {
        var list = new DepthwiseBranch[branches.Count];
        for (int b = 0; b < branches.Count; b++)
        {
            list[b] = new DepthwiseBranch(pins[b], branches[b].Conv.KernelSize, z + (b * branchSize));
        }

        return list;
    }

    private static void AddTo(float[] target, ReadOnlySpan<float> values)
    {
        for (int i = 0; i < target.Length; i++)
        {
            target[i] += values[i];
        }
    }

    /// <summary>Pins a few managed arrays for the duration of a kernel call.</summary>
    private sealed unsafe class Pins : IDisposable
    {
        private readonly System.Runtime.InteropServices.GCHandle[] handles;

        public Pins(IEnumerable<float[]> arrays)
        {
            handles = arrays.Select(a => System.Runtime.InteropServices.GCHandle.Alloc(a, System.Runtime.InteropServices.GCHandleType.Pinned)).ToArray();
        }

        public float* this[int i] => (float*)handles[i].AddrOfPinnedObject();

        public void Dispose()
        {
            foreach (var h in handles)
            {
                h.Free();
            }
        }
    }

    /// <inheritdoc/>
    public override IEnumerable<StateEntry> State(string prefix = "")
    {
        // Registration order of timm's MobileOneBlock: reparam_conv | identity, conv_kxk, conv_scale; then attn.
        if (ReparamConv is not null)
        {
            foreach (var e in ReparamConv.State(prefix + "reparam_conv."))
            {
                yield return e;
            }
        }

        if (Identity is not null)
        {
            foreach (var e in Identity.State(prefix + "identity."))
            {
                yield return e;
            }
        }

        for (int i = 0; i < ConvKxk.Count; i++)
        {
            foreach (var e in ConvKxk[i].State($"{prefix}conv_kxk.{i}."))
            {
                yield return e;
            }
        }

        if (ConvScale is not null)
        {
            foreach (var e in ConvScale.State(prefix + "conv_scale."))
            {
                yield return e;
            }
        }

        if (Attn is not null)
        {
            foreach (var e in Attn.State(prefix + "attn."))
            {
                yield return e;
            }
        }
    }
}
