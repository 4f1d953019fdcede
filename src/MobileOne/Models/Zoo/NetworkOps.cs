using MobileOne.Graph;
using MobileOne.Kernels;
using MobileOne.Nn;
using MobileOne.Tensors;

namespace MobileOne.Models.Zoo;

/// <summary>
/// One operation of a <see cref="ZooNetwork"/>: a layer (convolution, BatchNorm, linear) or a parameter-free step
/// (activation, residual add, pooling) over the network's values, with its training forward and backward and the
/// <see cref="GraphNode"/> it becomes for the engine, the ONNX exporter and the counters. The operations mirror the
/// layer graph's nodes one to one, so a zoo network and its graph have the same shape.
/// </summary>
public abstract class NetworkOp
{
    private protected NetworkOp(string name, int[] inputs)
    {
        Name = name;
        Inputs = inputs;
    }

    /// <summary>timm's module name (the state prefix of a layer, e.g. "layer1.0.conv1").</summary>
    public string Name { get; }

    /// <summary>The values this operation reads (0 is the network input, value i + 1 the output of operation i).</summary>
    public IReadOnlyList<int> Inputs { get; }

    /// <summary>The layer that owns this operation's parameters and buffers, or null.</summary>
    public virtual Module? Layer => null;

    /// <summary>
    /// Forward. With <paramref name="grad"/> the operation keeps what <see cref="Backward"/> needs and may return a
    /// tensor it owns (reused by its next Forward); without, it keeps nothing and returns a fresh tensor.
    /// </summary>
    internal abstract Tensor Forward(IReadOnlyList<Tensor> inputs, bool grad);

    /// <summary>
    /// Backward of the last Forward with gradients: accumulates parameter gradients and returns the gradient of each
    /// input (null where <paramref name="needed"/> is false). Returned tensors may be owned by the operation or be
    /// <paramref name="gradOutput"/> itself; callers never write into them.
    /// </summary>
    internal abstract Tensor?[] Backward(Tensor gradOutput, bool[] needed);

    /// <summary>The graph node of this operation over graph values <paramref name="inputs"/>.</summary>
    internal abstract GraphNode ToNode(int[] inputs, LayerGraph graph);

    /// <summary>Releases what this operation keeps between steps.</summary>
    internal virtual void ReleaseBuffers()
    {
    }
}

/// <summary>A convolution (PyTorch's nn.Conv2d with symmetric padding).</summary>
public sealed class ConvOp(string name, int input, Conv2d conv) : NetworkOp(name, [input])
{
    /// <summary>The layer.</summary>
    public Conv2d Conv { get; } = conv;

    /// <inheritdoc/>
    public override Module? Layer => Conv;

    internal override Tensor Forward(IReadOnlyList<Tensor> inputs, bool grad) => Conv.Forward(inputs[0]);

    internal override Tensor?[] Backward(Tensor gradOutput, bool[] needed) => [Conv.Backward(gradOutput, needed[0])];

    internal override GraphNode ToNode(int[] inputs, LayerGraph graph) =>
        ConvNode.Square(Name, inputs[0], Conv.InChannels, Conv.OutChannels, Conv.KernelSize, Conv.Stride, Conv.Padding, Conv.Groups, Conv.Weight.Value.Data, Conv.Bias?.Value.Data);
}

/// <summary>A BatchNorm2d.</summary>
public sealed class BatchNormOp(string name, int input, BatchNorm2d bn) : NetworkOp(name, [input])
{
    /// <summary>The layer.</summary>
    public BatchNorm2d Bn { get; } = bn;

    /// <inheritdoc/>
    public override Module? Layer => Bn;

    internal override Tensor Forward(IReadOnlyList<Tensor> inputs, bool grad) => Bn.Forward(inputs[0]);

    internal override Tensor?[] Backward(Tensor gradOutput, bool[] needed) => [Bn.Backward(gradOutput)];

    internal override GraphNode ToNode(int[] inputs, LayerGraph graph) =>
        new BatchNormNode(Name, inputs[0], Bn.Channels, Bn.Weight.Value.Data, Bn.Bias.Value.Data, Bn.RunningMean.Data, Bn.RunningVar.Data, Bn.Eps);
}

/// <summary>ReLU or ReLU6, the activations the zoo families train with.</summary>
public sealed class ActivationOp : NetworkOp
{
    private readonly ActivationBuffer output = new();
    private readonly ActivationBuffer gradInput = new();
    private Tensor? savedOutput;

    /// <summary>An activation of <paramref name="kind"/> (ReLU or ReLU6: the ones with a training backward here).</summary>
    public ActivationOp(string name, int input, ActivationKind kind)
        : base(name, [input])
    {
        if (kind is not (ActivationKind.Relu or ActivationKind.Relu6))
        {
            throw new ArgumentException($"Activation '{name}': {kind} has no training backward; the zoo trains with ReLU or ReLU6.", nameof(kind));
        }

        Kind = kind;
    }

    /// <summary>The activation.</summary>
    public ActivationKind Kind { get; }

    internal override Tensor Forward(IReadOnlyList<Tensor> inputs, bool grad)
    {
        var x = inputs[0];
        var y = grad ? output.Get(x.Shape) : Tensor.Uninitialized(x.Shape);
        x.Data.AsSpan(0, x.Length).CopyTo(y.Data);
        Activations.Apply(Kind, y.Data.AsSpan(0, y.Length));
        savedOutput = grad ? y : null;
        return y;
    }

    internal override unsafe Tensor?[] Backward(Tensor gradOutput, bool[] needed)
    {
        var y = savedOutput ?? throw new InvalidOperationException($"Activation '{Name}': Backward needs a Forward with gradients first.");
        var dx = gradInput.Get(y.Shape);
        fixed (float* dy = gradOutput.Data)
        fixed (float* yp = y.Data)
        fixed (float* d = dx.Data)
        {
            if (Kind == ActivationKind.Relu)
            {
                ActivationBackward.Relu(dy, yp, d, y.Length);
            }
            else
            {
                ActivationBackward.Relu6(dy, yp, d, y.Length);
            }
        }

        return [dx];
    }

    internal override GraphNode ToNode(int[] inputs, LayerGraph graph) => new ActivationNode(Name, inputs[0], Kind);

    internal override void ReleaseBuffers()
    {
        output.Release();
        gradInput.Release();
        savedOutput = null;
    }
}

/// <summary>The element-wise sum of several values of one shape (a residual add, or the branches of a RepVGG block).</summary>
public sealed class AddOp(string name, int[] inputs) : NetworkOp(name, inputs)
{
    private readonly ActivationBuffer output = new();

    internal override Tensor Forward(IReadOnlyList<Tensor> inputs, bool grad)
    {
        var first = inputs[0];
        var y = grad ? output.Get(first.Shape) : Tensor.Uninitialized(first.Shape);
        first.Data.AsSpan(0, first.Length).CopyTo(y.Data);
        for (int i = 1; i < inputs.Count; i++)
        {
            if (!inputs[i].HasShape(first.Shape))
            {
                throw new ArgumentException($"Add '{Name}': input {i} is {inputs[i].ShapeString}, input 0 is {first.ShapeString}.");
            }

            Elementwise.Add(y.Data.AsSpan(0, y.Length), inputs[i].Data.AsSpan(0, y.Length));
        }

        return y;
    }

    // The sum passes its gradient unchanged to every input.
    internal override Tensor?[] Backward(Tensor gradOutput, bool[] needed) =>
        [.. needed.Select(n => n ? gradOutput : null)];

    internal override GraphNode ToNode(int[] inputs, LayerGraph graph) => new AddNode(Name, inputs);

    internal override void ReleaseBuffers() => output.Release();
}

/// <summary>PyTorch's nn.MaxPool2d (square window, symmetric padding, floor mode).</summary>
public sealed class MaxPoolOp(string name, int input, int kernel, int stride, int padding) : NetworkOp(name, [input])
{
    private readonly ActivationBuffer output = new();
    private readonly ActivationBuffer gradInput = new();
    private int[] argmax = [];
    private int[] savedShape = [];

    /// <summary>Window side.</summary>
    public int Kernel { get; } = kernel;

    /// <summary>Step between windows.</summary>
    public int Stride { get; } = stride;

    /// <summary>Padding on every side.</summary>
    public int Padding { get; } = padding;

    internal override Tensor Forward(IReadOnlyList<Tensor> inputs, bool grad)
    {
        var x = inputs[0];
        int n = x.Dim(0), c = x.Dim(1), h = x.Dim(2), w = x.Dim(3);
        int outH = ((h + (2 * Padding) - Kernel) / Stride) + 1, outW = ((w + (2 * Padding) - Kernel) / Stride) + 1;
        if (outH <= 0 || outW <= 0)
        {
            throw new ArgumentException($"Max pool '{Name}': a {h}x{w} input is smaller than its {Kernel}x{Kernel} window.");
        }

        var y = grad ? output.Get(n, c, outH, outW) : Tensor.Uninitialized(n, c, outH, outW);
        if (grad && argmax.Length != y.Length)
        {
            argmax = new int[y.Length];
        }

        Pooling.MaxPool(x.Data, y.Data, grad ? argmax : [], n * c, h, w, Kernel, Stride, Padding);
        savedShape = grad ? x.Shape : [];
        return y;
    }

    internal override Tensor?[] Backward(Tensor gradOutput, bool[] needed)
    {
        if (savedShape.Length == 0)
        {
            throw new InvalidOperationException($"Max pool '{Name}': Backward needs a Forward with gradients first.");
        }

        var dx = gradInput.Get(savedShape);
        Pooling.MaxPoolBackward(gradOutput.Data, argmax, dx.Data, savedShape[0] * savedShape[1], savedShape[2] * savedShape[3], gradOutput.Dim(2) * gradOutput.Dim(3));
        return [dx];
    }

    internal override GraphNode ToNode(int[] inputs, LayerGraph graph) => new PoolNode(Name, inputs[0], PoolKind.Max, Kernel, Stride, Padding);

    internal override void ReleaseBuffers()
    {
        output.Release();
        gradInput.Release();
        argmax = [];
        savedShape = [];
    }
}

/// <summary>Global average pooling: [N, C, H, W] to [N, C] (timm's head.global_pool with flatten).</summary>
public sealed class GlobalPoolOp(string name, int input) : NetworkOp(name, [input])
{
    private readonly ActivationBuffer output = new();
    private readonly ActivationBuffer gradInput = new();
    private int[] savedShape = [];

    internal override Tensor Forward(IReadOnlyList<Tensor> inputs, bool grad)
    {
        var x = inputs[0];
        int n = x.Dim(0), c = x.Dim(1);
        var y = grad ? output.Get(n, c) : Tensor.Uninitialized(n, c);
        Pooling.GlobalAverage(x.Data, y.Data, n, c, x.Dim(2) * x.Dim(3));
        savedShape = grad ? x.Shape : [];
        return y;
    }

    internal override Tensor?[] Backward(Tensor gradOutput, bool[] needed)
    {
        if (savedShape.Length == 0)
        {
            throw new InvalidOperationException($"Global pool '{Name}': Backward needs a Forward with gradients first.");
        }

        var dx = gradInput.Get(savedShape);
        Pooling.GlobalAverageBackward(gradOutput.Data, dx.Data, savedShape[0] * savedShape[1], savedShape[2] * savedShape[3]);
        return [dx];
    }

    internal override GraphNode ToNode(int[] inputs, LayerGraph graph) => new GlobalAveragePoolNode(Name, inputs[0]);

    internal override void ReleaseBuffers()
    {
        output.Release();
        gradInput.Release();
        savedShape = [];
    }
}

/// <summary>A fully connected layer over pooled features (the classifier).</summary>
public sealed class LinearOp(string name, int input, Linear linear) : NetworkOp(name, [input])
{
    /// <summary>The layer.</summary>
    public Linear Linear { get; } = linear;

    /// <inheritdoc/>
    public override Module? Layer => Linear;

    internal override Tensor Forward(IReadOnlyList<Tensor> inputs, bool grad) => Linear.Forward(inputs[0]);

    internal override Tensor?[] Backward(Tensor gradOutput, bool[] needed) => [Linear.Backward(gradOutput, needed[0])];

    internal override GraphNode ToNode(int[] inputs, LayerGraph graph) =>
        new LinearNode(Name, inputs[0], Linear.InFeatures, Linear.OutFeatures, Linear.Weight.Value.Data, Linear.Bias.Value.Data);
}

/// <summary>
/// A convolution with a fixed sparsity pattern (<see cref="SparseConv2d"/>): the sparse part S of a compressed layer
/// (docs/ideas.md), trained through its stored values only.
/// </summary>
public sealed class SparseConvOp(string name, int input, SparseConv2d conv) : NetworkOp(name, [input])
{
    /// <summary>The layer.</summary>
    public SparseConv2d Conv { get; } = conv;

    /// <inheritdoc/>
    public override Module? Layer => Conv;

    internal override Tensor Forward(IReadOnlyList<Tensor> inputs, bool grad) => Conv.Forward(inputs[0]);

    internal override Tensor?[] Backward(Tensor gradOutput, bool[] needed) => [Conv.Backward(gradOutput, needed[0])];

    internal override GraphNode ToNode(int[] inputs, LayerGraph graph)
    {
        int patch = Conv.InChannels * Conv.KernelSize * Conv.KernelSize;
        var (starts, columns) = SparseConvNode.FromFlatIndices([.. Conv.Indices], Conv.OutChannels, patch);
        return new SparseConvNode(Name, inputs[0], Conv.InChannels, Conv.OutChannels, Conv.KernelSize, Conv.KernelSize, Conv.Stride, Conv.Stride, Conv.Padding, Conv.Padding, starts, columns, Conv.Values.Value.Data);
    }
}
