using MobileOne.Kernels;

namespace MobileOne.Graph;

/// <summary>Channels x height x width of one value of a graph (per image).</summary>
public readonly record struct ValueShape(int Channels, int Height, int Width)
{
    /// <summary>Channels x height x width.</summary>
    public long Elements => (long)Channels * Height * Width;

    /// <summary>"CxHxW".</summary>
    public override string ToString() => $"{Channels}x{Height}x{Width}";
}

/// <summary>
/// A network as a small list of layers: what every model emits and what the inference engine, the ONNX exporter
/// and the parameter/MAC counter consume. Value 0 is the NCHW input; node i produces value i + 1 and reads values
/// produced before it, so the list is already in execution order. Weights are float32 arrays the graph refers to
/// (it does not copy them; consumers that keep them copy or pack them).
/// </summary>
public sealed class LayerGraph
{
    private readonly List<GraphNode> nodes = [];

    /// <summary>An empty graph whose input (value 0) has <paramref name="inputChannels"/> channels.</summary>
    public LayerGraph(int inputChannels)
    {
        if (inputChannels <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(inputChannels), inputChannels, "A graph input needs at least one channel.");
        }

        InputChannels = inputChannels;
    }

    /// <summary>The value id of the graph input.</summary>
    public const int Input = 0;

    /// <summary>Channels of the input.</summary>
    public int InputChannels { get; }

    /// <summary>The nodes in execution order (node i produces value i + 1).</summary>
    public IReadOnlyList<GraphNode> Nodes => nodes;

    /// <summary>The value the graph returns: the last node's unless set.</summary>
    public int Output
    {
        get => output ?? nodes.Count;
        set
        {
            RequireValue(value, "Output");
            output = value;
        }
    }

    private int? output;

    private readonly List<(string Name, int Value)> taps = [];

    /// <summary>Named intermediate values a run can return besides the output (timm's feature maps).</summary>
    public IReadOnlyList<(string Name, int Value)> Taps => taps;

    /// <summary>Marks <paramref name="value"/> as a feature tap named <paramref name="name"/>.</summary>
    public void AddTap(string name, int value)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        RequireValue(value, $"Tap {name}");
        if (taps.Any(t => t.Name == name))
        {
            throw new ArgumentException($"The graph already has a tap named {name}.");
        }

        taps.Add((name, value));
    }

    /// <summary>The node that produces <paramref name="value"/> (null for the input).</summary>
    public GraphNode? Producer(int value) => value == Input ? null : nodes[value - 1];

    /// <summary>Appends a node after checking that it reads existing values with the channels it expects; returns its value id.</summary>
    public int Add(GraphNode node)
    {
        ArgumentNullException.ThrowIfNull(node);
        foreach (int input in node.Inputs)
        {
            RequireValue(input, $"Node {node.Name}: input");
        }

        var inputChannels = node.Inputs.Select(ChannelsOf).ToArray();
        node.Validate(inputChannels);
        nodes.Add(node);
        channels.Add(node.OutputChannels(inputChannels));
        return nodes.Count;
    }

    private readonly List<int> channels = [];

    /// <summary>Channels of a value (known without an input size).</summary>
    public int ChannelsOf(int value) => value == Input ? InputChannels : channels[value - 1];

    /// <summary>How many nodes read each value (the graph output and each tap count as one more reader).</summary>
    public int[] ConsumerCounts()
    {
        var counts = new int[nodes.Count + 1];
        foreach (var node in nodes)
        {
            foreach (int input in node.Inputs)
            {
                counts[input]++;
            }
        }

        counts[Output]++;
        foreach (var (_, value) in taps)
        {
            counts[value]++;
        }

        return counts;
    }

    /// <summary>The shape of every value for one input size (index = value id).</summary>
    public ValueShape[] InferShapes(int height, int width)
    {
        if (height <= 0 || width <= 0)
        {
            throw new ArgumentOutOfRangeException(height <= 0 ? nameof(height) : nameof(width), $"The input height and width must be positive; got {height}x{width}.");
        }

        var shapes = new ValueShape[nodes.Count + 1];
        shapes[0] = new ValueShape(InputChannels, height, width);
        for (int i = 0; i < nodes.Count; i++)
        {
            var node = nodes[i];
            shapes[i + 1] = node.OutputShape(node.Inputs.Select(v => shapes[v]).ToArray());
        }

        return shapes;
    }

    /// <summary>Parameters of every node (weights and biases; BatchNorm's affine terms and running statistics are counted as PyTorch counts parameters: affine only).</summary>
    public long Parameters() => nodes.Sum(n => n.Parameters);

    /// <summary>Multiply-accumulates per image for a height x width input.</summary>
    public long MultiplyAccumulates(int height, int width)
    {
        var shapes = InferShapes(height, width);
        long total = 0;
        for (int i = 0; i < nodes.Count; i++)
        {
            total += nodes[i].MultiplyAccumulates(nodes[i].Inputs.Select(v => shapes[v]).ToArray(), shapes[i + 1]);
        }

        return total;
    }

    private void RequireValue(int value, string what)
    {
        if (value < 0 || value > nodes.Count)
        {
            throw new ArgumentException($"{what} refers to value {value}; the graph has values 0..{nodes.Count}.");
        }
    }
}

/// <summary>One layer of a <see cref="LayerGraph"/>. <see cref="Name"/> is the layer's prefix in the model's state (timm's names).</summary>
public abstract record GraphNode(string Name, int[] Inputs)
{
    /// <summary>Trainable parameters of the node (weights, biases, BatchNorm affine terms).</summary>
    public virtual long Parameters => 0;

    internal abstract void Validate(int[] inputChannels);

    internal abstract int OutputChannels(int[] inputChannels);

    internal abstract ValueShape OutputShape(ValueShape[] inputs);

    internal virtual long MultiplyAccumulates(ValueShape[] inputs, ValueShape output) => 0;

    private protected void RequireInputs(int count)
    {
        if (Inputs.Length != count)
        {
            throw new ArgumentException($"Node {Name} ({GetType().Name}) takes {count} input(s); got {Inputs.Length}.");
        }
    }

    /// <summary>
    /// Checks the weights of a hyper function (global mean, fc1 [reduced, channels] with bias, fc2 [outputs, reduced]
    /// with bias), the shape shared by squeeze-excite and the dynamic activations.
    /// </summary>
    private protected static void RequireHyperFunction(string name, float[] fc1, float[] fc1Bias, float[] fc2, float[] fc2Bias, int channels, int reduced, int outputs)
    {
        RequireLength(name, "fc1 weight", fc1, (long)channels * reduced);
        RequireLength(name, "fc1 bias", fc1Bias, reduced);
        RequireLength(name, "fc2 weight", fc2, (long)outputs * reduced);
        RequireLength(name, "fc2 bias", fc2Bias, outputs);
    }

    /// <summary>Parameters of such a hyper function: both weights and both biases.</summary>
    private protected static long HyperFunctionParameters(int channels, int reduced, int outputs) =>
        ((long)channels * reduced) + reduced + ((long)outputs * reduced) + outputs;

    private protected static void RequireLength(string name, string what, float[]? values, long expected)
    {
        if (values is null || values.Length != expected)
        {
            throw new ArgumentException($"Node {name}: {what} has {values?.Length ?? 0} values; expected {expected}.");
        }
    }
}

/// <summary>
/// 2-D convolution with an OIHW weight [out, in/groups, kernelH, kernelW] and an optional bias (PyTorch's Conv2d:
/// zero padding, output size floor((in + 2 pad - dilation (k - 1) - 1) / stride) + 1).
/// </summary>
public sealed record ConvNode(
    string Name,
    int Input,
    int InChannels,
    int OutChannels,
    int KernelHeight,
    int KernelWidth,
    int StrideH,
    int StrideW,
    int PadH,
    int PadW,
    int DilationH,
    int DilationW,
    int Groups,
    float[] Weight,
    float[]? Bias)
    : GraphNode(Name, [Input])
{
    /// <summary>A square convolution (one kernel size, stride, padding and dilation for both axes).</summary>
    public static ConvNode Square(string name, int input, int inChannels, int outChannels, int kernel, int stride, int padding, int groups, float[] weight, float[]? bias, int dilation = 1) =>
        new(name, input, inChannels, outChannels, kernel, kernel, stride, stride, padding, padding, dilation, dilation, groups, weight, bias);

    /// <summary>Whether each group is one input and one output channel.</summary>
    public bool IsDepthwise => Groups == InChannels && Groups == OutChannels;

    /// <inheritdoc/>
    public override long Parameters => Weight.LongLength + (Bias?.LongLength ?? 0);

    internal override void Validate(int[] inputChannels)
    {
        RequireInputs(1);
        if (InChannels <= 0 || OutChannels <= 0 || KernelHeight <= 0 || KernelWidth <= 0 || StrideH <= 0 || StrideW <= 0
            || PadH < 0 || PadW < 0 || DilationH <= 0 || DilationW <= 0 || Groups <= 0)
        {
            throw new ArgumentException(
                $"Node {Name}: invalid convolution {InChannels}->{OutChannels}, kernel {KernelHeight}x{KernelWidth}, stride {StrideH}x{StrideW}, padding {PadH}x{PadW}, dilation {DilationH}x{DilationW}, groups {Groups}.");
        }

        if (InChannels % Groups != 0 || OutChannels % Groups != 0)
        {
            throw new ArgumentException($"Node {Name}: groups {Groups} must divide input channels {InChannels} and output channels {OutChannels}.");
        }

        if (inputChannels[0] != InChannels)
        {
            throw new ArgumentException($"Node {Name}: expects {InChannels} input channels; its input has {inputChannels[0]}.");
        }

        RequireLength(Name, "weight", Weight, (long)OutChannels * (InChannels / Groups) * KernelHeight * KernelWidth);
        if (Bias is not null)
        {
            RequireLength(Name, "bias", Bias, OutChannels);
        }
    }

    internal override int OutputChannels(int[] inputChannels) => OutChannels;

    internal override ValueShape OutputShape(ValueShape[] inputs)
    {
        var x = inputs[0];
        int effH = (DilationH * (KernelHeight - 1)) + 1, effW = (DilationW * (KernelWidth - 1)) + 1;
        if (x.Height + (2 * PadH) < effH || x.Width + (2 * PadW) < effW)
        {
            throw new ArgumentException($"Node {Name}: input {x.Height}x{x.Width} with padding {PadH}x{PadW} is smaller than the kernel extent {effH}x{effW}.");
        }

        return new ValueShape(OutChannels, ((x.Height + (2 * PadH) - effH) / StrideH) + 1, ((x.Width + (2 * PadW) - effW) / StrideW) + 1);
    }

    internal override long MultiplyAccumulates(ValueShape[] inputs, ValueShape output) =>
        (long)OutChannels * (InChannels / Groups) * KernelHeight * KernelWidth * output.Height * output.Width;
}

/// <summary>Eval-mode batch normalization: y = (x - mean) / sqrt(var + eps) * gamma + beta, per channel.</summary>
public sealed record BatchNormNode(string Name, int Input, int Channels, float[] Gamma, float[] Beta, float[] Mean, float[] Var, double Eps)
    : GraphNode(Name, [Input])
{
    /// <inheritdoc/>
    public override long Parameters => 2L * Channels;

    internal override void Validate(int[] inputChannels)
    {
        RequireInputs(1);
        if (inputChannels[0] != Channels)
        {
            throw new ArgumentException($"Node {Name}: BatchNorm over {Channels} channels; its input has {inputChannels[0]}.");
        }

        RequireLength(Name, "gamma", Gamma, Channels);
        RequireLength(Name, "beta", Beta, Channels);
        RequireLength(Name, "running mean", Mean, Channels);
        RequireLength(Name, "running variance", Var, Channels);
    }

    internal override int OutputChannels(int[] inputChannels) => Channels;

    internal override ValueShape OutputShape(ValueShape[] inputs) => inputs[0];
}

/// <summary>A point-wise activation.</summary>
public sealed record ActivationNode(string Name, int Input, ActivationKind Activation) : GraphNode(Name, [Input])
{
    internal override void Validate(int[] inputChannels)
    {
        RequireInputs(1);
        if (!Enum.IsDefined(Activation))
        {
            throw new ArgumentException($"Node {Name}: unknown activation {(int)Activation}.");
        }
    }

    internal override int OutputChannels(int[] inputChannels) => inputChannels[0];

    internal override ValueShape OutputShape(ValueShape[] inputs) => inputs[0];
}

/// <summary>
/// Squeeze-excite: gate = GateActivation(W2 InnerActivation(W1 mean(x) + b1) + b2), y = x * gate (per image and
/// channel). W1 is [reduced, channels], W2 [channels, reduced] (1x1 convolutions with bias).
/// </summary>
public sealed record SqueezeExciteNode(
    string Name,
    int Input,
    int Channels,
    int Reduced,
    float[] ReduceWeight,
    float[] ReduceBias,
    float[] ExpandWeight,
    float[] ExpandBias,
    ActivationKind InnerActivation = ActivationKind.Relu,
    ActivationKind GateActivation = ActivationKind.Sigmoid)
    : GraphNode(Name, [Input])
{
    /// <inheritdoc/>
    public override long Parameters => HyperFunctionParameters(Channels, Reduced, Channels);

    internal override void Validate(int[] inputChannels)
    {
        RequireInputs(1);
        if (inputChannels[0] != Channels || Reduced <= 0)
        {
            throw new ArgumentException($"Node {Name}: squeeze-excite over {Channels} channels (reduced {Reduced}); its input has {inputChannels[0]}.");
        }

        RequireHyperFunction(Name, ReduceWeight, ReduceBias, ExpandWeight, ExpandBias, Channels, Reduced, Channels);
    }

    internal override int OutputChannels(int[] inputChannels) => Channels;

    internal override ValueShape OutputShape(ValueShape[] inputs) => inputs[0];

    internal override long MultiplyAccumulates(ValueShape[] inputs, ValueShape output) => 2L * Channels * Reduced;
}

/// <summary>The element-wise sum of two or more values of one shape (branch sums, residual connections).</summary>
public sealed record AddNode(string Name, int[] Inputs) : GraphNode(Name, Inputs)
{
    internal override void Validate(int[] inputChannels)
    {
        if (Inputs.Length < 2)
        {
            throw new ArgumentException($"Node {Name}: an add needs at least two inputs; got {Inputs.Length}.");
        }

        if (inputChannels.Any(c => c != inputChannels[0]))
        {
            throw new ArgumentException($"Node {Name}: inputs have different channel counts ({string.Join(", ", inputChannels)}).");
        }
    }

    internal override int OutputChannels(int[] inputChannels) => inputChannels[0];

    internal override ValueShape OutputShape(ValueShape[] inputs)
    {
        if (inputs.Any(s => s != inputs[0]))
        {
            throw new ArgumentException($"Node {Name}: inputs have different shapes ({string.Join(", ", inputs)}).");
        }

        return inputs[0];
    }
}

/// <summary>The reduction of a <see cref="PoolNode"/>.</summary>
public enum PoolKind
{
    /// <summary>The largest value of the window.</summary>
    Max,
    /// <summary>The mean of the window.</summary>
    Average,
}

/// <summary>
/// Max or average pooling (PyTorch's MaxPool2d / AvgPool2d, floor mode; average pooling divides by the full
/// window including padding unless <see cref="CountIncludePad"/> is false).
/// </summary>
public sealed record PoolNode(string Name, int Input, PoolKind Kind, int Kernel, int Stride, int Padding, bool CountIncludePad = true)
    : GraphNode(Name, [Input])
{
    internal override void Validate(int[] inputChannels)
    {
        RequireInputs(1);
        if (Kernel <= 0 || Stride <= 0 || Padding < 0 || 2 * Padding > Kernel)
        {
            throw new ArgumentException($"Node {Name}: invalid pooling kernel {Kernel}, stride {Stride}, padding {Padding} (padding may be at most half the kernel).");
        }
    }

    internal override int OutputChannels(int[] inputChannels) => inputChannels[0];

    internal override ValueShape OutputShape(ValueShape[] inputs)
    {
        var x = inputs[0];
        if (x.Height + (2 * Padding) < Kernel || x.Width + (2 * Padding) < Kernel)
        {
            throw new ArgumentException($"Node {Name}: input {x.Height}x{x.Width} with padding {Padding} is smaller than the pooling window {Kernel}.");
        }

        return new ValueShape(x.Channels, ((x.Height + (2 * Padding) - Kernel) / Stride) + 1, ((x.Width + (2 * Padding) - Kernel) / Stride) + 1);
    }
}

/// <summary>Global average pooling to [channels, 1, 1] (the flatten before a classifier is implied).</summary>
public sealed record GlobalAveragePoolNode(string Name, int Input) : GraphNode(Name, [Input])
{
    internal override void Validate(int[] inputChannels) => RequireInputs(1);

    internal override int OutputChannels(int[] inputChannels) => inputChannels[0];

    internal override ValueShape OutputShape(ValueShape[] inputs) => new(inputs[0].Channels, 1, 1);
}

/// <summary>A fully connected layer over a [features, 1, 1] value: y = W x + b, W [out, in].</summary>
public sealed record LinearNode(string Name, int Input, int InFeatures, int OutFeatures, float[] Weight, float[]? Bias) : GraphNode(Name, [Input])
{
    /// <inheritdoc/>
    public override long Parameters => Weight.LongLength + (Bias?.LongLength ?? 0);

    internal override void Validate(int[] inputChannels)
    {
        RequireInputs(1);
        if (inputChannels[0] != InFeatures)
        {
            throw new ArgumentException($"Node {Name}: expects {InFeatures} input features; its input has {inputChannels[0]} channels.");
        }

        RequireLength(Name, "weight", Weight, (long)InFeatures * OutFeatures);
        if (Bias is not null)
        {
            RequireLength(Name, "bias", Bias, OutFeatures);
        }
    }

    internal override int OutputChannels(int[] inputChannels) => OutFeatures;

    internal override ValueShape OutputShape(ValueShape[] inputs)
    {
        if (inputs[0].Height != 1 || inputs[0].Width != 1)
        {
            throw new ArgumentException($"Node {Name}: a linear layer reads a [features, 1, 1] value (after global pooling); got {inputs[0]}.");
        }

        return new ValueShape(OutFeatures, 1, 1);
    }

    internal override long MultiplyAccumulates(ValueShape[] inputs, ValueShape output) => (long)InFeatures * OutFeatures;
}
