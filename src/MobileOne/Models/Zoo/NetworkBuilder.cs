using MobileOne.Kernels;
using MobileOne.Nn;

namespace MobileOne.Models.Zoo;

/// <summary>
/// Writes a <see cref="ZooNetwork"/> operation by operation with timm's module names, tracking each value's
/// channels and each layer's initialisation rule (Kaiming's normal over the family's fan-out for convolutions,
/// gamma 1 for BatchNorm, what the family says for the classifier; a family overrides single layers with
/// <see cref="SetInit"/>). Without <paramref name="allocate"/> it only records the state's names and shapes
/// (<see cref="StateShapes"/>): what a checkpoint is compared with before any weight is allocated.
/// </summary>
internal sealed class NetworkBuilder(string architecture, int inChans, bool groupedFanOut, bool allocate = true)
{
    private readonly List<NetworkOp> ops = [];
    private readonly List<int> channels = [inChans];
    private readonly List<LayerInit> init = [];
    private readonly List<(string Name, int[] Shape)> stateShapes = [];

    /// <summary>The network input.</summary>
    public const int Input = 0;

    /// <summary>Channels of value <paramref name="value"/>.</summary>
    public int Channels(int value) => channels[value];

    /// <summary>
    /// A square convolution with timm's symmetric padding ((stride - 1) + (kernel - 1)) / 2, which is (k - 1) / 2
    /// for the odd kernels used here.
    /// </summary>
    public int Conv(string name, int x, int outChannels, int kernel, int stride = 1, int groups = 1, bool bias = false)
    {
        if (channels[x] % groups != 0 || outChannels % groups != 0)
        {
            throw new ArgumentException($"{architecture}: convolution '{name}' has {channels[x]} -> {outChannels} channels, not divisible into {groups} groups.");
        }

        stateShapes.Add((name + ".weight", [outChannels, channels[x] / groups, kernel, kernel]));
        if (bias)
        {
            stateShapes.Add((name + ".bias", [outChannels]));
        }

        // PyTorch's fan_out of a convolution weight is out_channels * k * k; timm's efficientnet and byobnet
        // initialisers divide it by the groups (so a depthwise kernel's fan-out is k * k), ResNet's does not.
        double fanOut = (double)outChannels * kernel * kernel / (groupedFanOut ? groups : 1);
        init.Add(LayerInit.KaimingNormal(name, fanOut));
        return Add(() => new ConvOp(name, x, new Conv2d(channels[x], outChannels, kernel, stride, (kernel - 1) / 2, groups, bias)), outChannels);
    }

    /// <summary>A BatchNorm2d (eps 1e-5, momentum 0.1), gamma 1 and beta 0.</summary>
    public int BatchNorm(string name, int x)
    {
        init.Add(LayerInit.Constant(name, 1));
        foreach (string entry in new[] { "weight", "bias", "running_mean", "running_var" })
        {
            stateShapes.Add(($"{name}.{entry}", [channels[x]]));
        }

        stateShapes.Add((name + ".num_batches_tracked", []));
        return Add(() => new BatchNormOp(name, x, new BatchNorm2d(channels[x])), channels[x]);
    }

    /// <summary>A convolution and its BatchNorm.</summary>
    public int ConvBn(string conv, string bn, int x, int outChannels, int kernel, int stride = 1, int groups = 1) =>
        BatchNorm(bn, Conv(conv, x, outChannels, kernel, stride, groups));

    /// <summary>ReLU or ReLU6.</summary>
    public int Activation(string name, int x, ActivationKind kind) => Add(() => new ActivationOp(name, x, kind), channels[x]);

    /// <summary>The sum of values of one shape.</summary>
    public int Sum(string name, params int[] xs) => Add(() => new AddOp(name, xs), channels[xs[0]]);

    /// <summary>Max pooling.</summary>
    public int MaxPool(string name, int x, int kernel, int stride, int padding) => Add(() => new MaxPoolOp(name, x, kernel, stride, padding), channels[x]);

    /// <summary>Global average pooling and the classifier.</summary>
    public int Head(string pool, string fc, int x, int numClasses, LayerInit fcInit)
    {
        int pooled = Add(() => new GlobalPoolOp(pool, x), channels[x]);
        init.Add(fcInit with { Layer = fc });
        stateShapes.Add((fc + ".weight", [numClasses, channels[x]]));
        stateShapes.Add((fc + ".bias", [numClasses]));
        return Add(() => new LinearOp(fc, pooled, new Linear(channels[x], numClasses)), numClasses);
    }

    /// <summary>Replaces the initialisation rule of layer <paramref name="layer"/>.</summary>
    public void SetInit(string layer, LayerInit rule)
    {
        int at = init.FindIndex(r => r.Layer == layer);
        init[at] = rule with { Layer = layer };
    }

    /// <summary>The state the network written so far has: timm's names and shapes in order, nothing allocated.</summary>
    public IReadOnlyList<(string Name, int[] Shape)> StateShapes => stateShapes;

    /// <summary>The network written so far.</summary>
    public ZooNetwork Build(bool isFused = false) =>
        allocate ? new(architecture, isFused, ops, channels, init) : throw new InvalidOperationException("This builder only records shapes.");

    private int Add(Func<NetworkOp> create, int outChannels)
    {
        if (allocate)
        {
            ops.Add(create());
        }

        channels.Add(outChannels);
        return channels.Count - 1;
    }
}
