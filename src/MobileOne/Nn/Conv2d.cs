using System.Buffers;
using MobileOne.Kernels;
using MobileOne.Tensors;

namespace MobileOne.Nn;

/// <summary>2-D convolution with an OIHW weight [C_out, C_in/groups, K, K] and an optional bias.</summary>
public sealed class Conv2d : Module
{
    private readonly ActivationBuffer output = new();
    private readonly ActivationBuffer gradInput = new();
    private readonly ActivationBuffer columns = new();
    private readonly ActivationBuffer patchGrad = new();
    private Tensor? savedInput;
    private bool columnsHoldInput;

    /// <summary>A square convolution with zero weights (see <see cref="Models.WeightInit"/>), PyTorch's nn.Conv2d arguments.</summary>
    public Conv2d(int inChannels, int outChannels, int kernelSize, int stride = 1, int padding = 0, int groups = 1, bool bias = false)
        : this(inChannels, outChannels, kernelSize, stride, padding, groups, weight: null, bias: bias ? [] : null)
    {
    }

    /// <summary>
    /// A square convolution whose parameters hold <paramref name="weight"/> (OIHW, [out, in / groups, k, k]) and
    /// <paramref name="bias"/> ([out], or null for none) themselves, not copies: a training view of weights another
    /// object owns (a layer graph's, a compressed network's), so that steps on this layer update them.
    /// </summary>
    internal static Conv2d Over(int inChannels, int outChannels, int kernelSize, int stride, int padding, int groups, float[] weight, float[]? bias)
    {
        ArgumentNullException.ThrowIfNull(weight);
        return new Conv2d(inChannels, outChannels, kernelSize, stride, padding, groups, weight, bias);
    }

    // weight null: zeros; bias null: none, empty: zeros.
    private Conv2d(int inChannels, int outChannels, int kernelSize, int stride, int padding, int groups, float[]? weight, float[]? bias)
    {
        if (inChannels <= 0 || outChannels <= 0 || kernelSize <= 0 || stride <= 0 || padding < 0 || groups <= 0)
        {
            throw new ArgumentException(
                $"Invalid convolution: {inChannels}->{outChannels}, kernel {kernelSize}, stride {stride}, padding {padding}, groups {groups}.");
        }

        if (inChannels % groups != 0 || outChannels % groups != 0)
        {
            throw new ArgumentException($"Groups {groups} must divide input channels {inChannels} and output channels {outChannels}.");
        }

        InChannels = inChannels;
        OutChannels = outChannels;
        KernelSize = kernelSize;
        Stride = stride;
        Padding = padding;
        Groups = groups;
        int[] weightShape = [outChannels, inChannels / groups, kernelSize, kernelSize];
        Weight = new Parameter(weight is null ? new Tensor(weightShape) : new Tensor(weightShape, weight));
        Bias = bias switch
        {
            null => null,
            [] => new Parameter(new Tensor(outChannels)),
            _ => new Parameter(new Tensor([outChannels], bias)),
        };
    }

    /// <summary>Input channels.</summary>
    public int InChannels { get; }

    /// <summary>Output channels.</summary>
    public int OutChannels { get; }

    /// <summary>Kernel height and width.</summary>
    public int KernelSize { get; }

    /// <summary>Stride in both directions.</summary>
    public int Stride { get; }

    /// <summary>Zero padding on every side.</summary>
    public int Padding { get; }

    /// <summary>Convolution groups.</summary>
    public int Groups { get; }

    /// <summary>OIHW weights [out, in / groups, k, k].</summary>
    public Parameter Weight { get; }

    /// <summary>The bias, when the convolution has one.</summary>
    public Parameter? Bias { get; }

    /// <summary>The kernels' description of this convolution for a batch x height x width input.</summary>
    public ConvGeometry Geometry(int batch, int height, int width) =>
        ConvGeometry.Square(batch, InChannels, height, width, OutChannels, KernelSize, Stride, Padding, Groups);

    /// <summary>
    /// Convolution of an NCHW batch with the training kernels (<see cref="TrainingConvolution"/>). With gradients enabled
    /// (see <see cref="Module"/>) it keeps the input for <see cref="Backward"/> and returns a tensor this layer owns;
    /// without, it keeps nothing and returns a fresh tensor.
    /// </summary>
    public Tensor Forward(Tensor input)
    {
        Shapes.RequireNchw(input, InChannels, "convolution input");
        var g = Geometry(input.Dim(0), input.Dim(2), input.Dim(3));
        g.Validate();
        if (!GradEnabled)
        {
            var fresh = Tensor.Uninitialized(g.Batch, OutChannels, g.OutHeight, g.OutWidth);
            ForwardStateless(input, fresh.Data);
            return fresh;
        }

        var y = output.Get(g.Batch, OutChannels, g.OutHeight, g.OutWidth);
        ForwardInto(input, y.Data);
        return y;
    }

    /// <summary>Training forward into a caller-owned NCHW buffer (e.g. one branch of a block); keeps the input for backward.</summary>
    public void ForwardInto(Tensor input, Span<float> destination)
    {
        var g = CheckedGeometry(input, destination);
        long columnsSize = TrainingConvolution.ColumnsSize(g);
        Run(input, destination, g, columnsSize > 0 ? columns.GetFlat(columnsSize) : []);
        savedInput = input;
        columnsHoldInput = columnsSize > 0;
    }

    /// <summary>
    /// Inference forward into a caller-owned NCHW buffer with the same kernels as <see cref="ForwardInto"/>, keeping
    /// nothing: the patch matrix of the im2col path is rented for this call only, so several threads may run it on one
    /// layer at once.
    /// </summary>
    internal void ForwardStateless(Tensor input, Span<float> destination)
    {
        var g = CheckedGeometry(input, destination);
        long columnsSize = TrainingConvolution.ColumnsSize(g);
        float[]? cols = columnsSize > 0 ? ArrayPool<float>.Shared.Rent(checked((int)columnsSize)) : null;
        try
        {
            Run(input, destination, g, cols ?? []);
        }
        finally
        {
            if (cols is not null)
            {
                ArrayPool<float>.Shared.Return(cols);
            }
        }
    }

    private ConvGeometry CheckedGeometry(Tensor input, Span<float> destination)
    {
        Shapes.RequireNchw(input, InChannels, "convolution input");
        var g = Geometry(input.Dim(0), input.Dim(2), input.Dim(3));
        g.Validate();
        RequireLength(destination.Length, (long)g.Batch * OutChannels * g.OutPlane, "output");
        return g;
    }

    /// <summary>The training kernel with <paramref name="cols"/> as its patch matrix (empty when the layer needs none).</summary>
    private unsafe void Run(Tensor input, Span<float> destination, in ConvGeometry g, float[] cols)
    {
        fixed (float* x = input.Data)
        fixed (float* w = Weight.Value.Data)
        fixed (float* b = Bias is null ? null : Bias.Value.Data)
        fixed (float* y = destination)
        fixed (float* c = cols)
        {
            TrainingConvolution.Forward(x, w, b, y, g, c);
        }
    }

    /// <summary>
    /// Accumulates the weight (and bias) gradient for the last training Forward and returns the input gradient,
    /// a tensor this layer owns (null when <paramref name="inputGradient"/> is false, e.g. for a network's first layer).
    /// </summary>
    public Tensor? Backward(Tensor gradOutput, bool inputGradient = true)
    {
        var x = RequireSaved();
        var gi = inputGradient ? gradInput.Get(x.Shape) : null;
        BackwardInto(gradOutput, gi is null ? default : gi.Data, accumulate: false);
        return gi;
    }

    /// <summary>
    /// Backward with the input gradient written (or added, with <paramref name="accumulate"/>) into a caller-owned
    /// buffer; an empty <paramref name="gradInputDestination"/> skips the input gradient.
    /// </summary>
    public void BackwardInto(Tensor gradOutput, Span<float> gradInputDestination, bool accumulate)
    {
        var x = RequireSaved();
        var g = Geometry(x.Dim(0), x.Dim(2), x.Dim(3));
        if (!gradOutput.HasShape(g.Batch, OutChannels, g.OutHeight, g.OutWidth))
        {
            throw new ArgumentException($"Convolution output gradient must have shape {Tensor.FormatShape([g.Batch, OutChannels, g.OutHeight, g.OutWidth])}; got {gradOutput.ShapeString}.", nameof(gradOutput));
        }

        BackwardInto(gradOutput.Data, gradInputDestination, accumulate);
    }

    /// <summary>Backward from an output gradient stored as a dense NCHW span (e.g. one branch of a block buffer).</summary>
    public unsafe void BackwardInto(ReadOnlySpan<float> gradOutput, Span<float> gradInputDestination, bool accumulate)
    {
        var x = RequireSaved();
        var g = Geometry(x.Dim(0), x.Dim(2), x.Dim(3));
        RequireLength(gradOutput.Length, (long)g.Batch * OutChannels * g.OutPlane, "output gradient");

        long columnsSize = TrainingConvolution.ColumnsSize(g);
        float[] cols = columnsSize > 0 ? columns.GetFlat(columnsSize) : [];
        var gw = Weight.EnsureGrad();
        fixed (float* dy = gradOutput)
        fixed (float* xp = x.Data)
        fixed (float* w = Weight.Value.Data)
        fixed (float* dw = gw.Data)
        fixed (float* c = cols)
        {
            TrainingConvolution.BackwardWeight(dy, xp, dw, g, c, columnsHoldInput);
            columnsHoldInput = columnsSize > 0;
            if (Bias is not null)
            {
                fixed (float* db = Bias.EnsureGrad().Data)
                {
                    TrainingConvolution.BackwardBias(dy, db, g.Batch, OutChannels, g.OutPlane);
                }
            }

            if (!gradInputDestination.IsEmpty)
            {
                RequireLength(gradInputDestination.Length, x.Length, "input gradient");
                float[] scratch = columnsSize > 0 ? patchGrad.GetFlat((long)g.Batch * g.PatchSize * g.OutPlane) : [];
                fixed (float* dx = gradInputDestination)
                fixed (float* s = scratch)
                {
                    TrainingConvolution.BackwardInput(dy, w, dx, accumulate, g, s);
                }
            }
        }
    }

    /// <inheritdoc/>
    public override IEnumerable<StateEntry> State(string prefix = "")
    {
        yield return new StateEntry(prefix + "weight", Weight.Value, StateKind.Parameter);
        if (Bias is not null)
        {
            yield return new StateEntry(prefix + "bias", Bias.Value, StateKind.Parameter);
        }
    }

    /// <inheritdoc/>
    public override IEnumerable<NamedParameter> NamedParameters(string prefix = "")
    {
        yield return new NamedParameter(prefix + "weight", Weight);
        if (Bias is not null)
        {
            yield return new NamedParameter(prefix + "bias", Bias);
        }
    }

    /// <inheritdoc/>
    public override void ReleaseBuffers()
    {
        output.Release();
        gradInput.Release();
        columns.Release();
        patchGrad.Release();
        savedInput = null;
    }

    private Tensor RequireSaved() =>
        savedInput ?? throw new InvalidOperationException("Conv2d.Backward needs a Forward with gradients enabled first (call Train() or Eval(gradEnabled: true)).");

    private static void RequireLength(long actual, long expected, string what)
    {
        if (actual != expected)
        {
            throw new ArgumentException($"The convolution {what} buffer holds {actual} floats; expected {expected}.");
        }
    }
}
