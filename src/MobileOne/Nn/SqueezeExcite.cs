using MobileOne.Kernels;
using MobileOne.Tensors;

namespace MobileOne.Nn;

/// <summary>
/// Squeeze-excite as MobileOne uses it: global mean, 1x1 conv (bias) to C/16, ReLU, 1x1 conv (bias) back
/// to C, sigmoid, channel-wise scale. timm names the convs fc1/fc2; Apple names them reduce/expand.
/// </summary>
public sealed class SqueezeExcite : Module
{
    public SqueezeExcite(int channels, int reducedChannels)
    {
        Channels = channels;
        ReducedChannels = reducedChannels;
        Reduce = new Conv2d(channels, reducedChannels, 1, bias: true);
        Expand = new Conv2d(reducedChannels, channels, 1, bias: true);
    }

    /// <summary>The reduction both reference implementations use for MobileOne: int(C / 16).</summary>
    public static int DefaultReducedChannels(int channels) => Math.Max(1, channels / 16);

    public int Channels { get; }

    public int ReducedChannels { get; }

    public Conv2d Reduce { get; }

    public Conv2d Expand { get; }

    public Tensor Forward(Tensor input)
    {
        Shapes.RequireNchw(input, Channels, "squeeze-excite input");
        int n = input.Dim(0), plane = input.Dim(2) * input.Dim(3);
        var pooled = new float[n * Channels];
        Pooling.GlobalAverage(input.Data, pooled, n, Channels, plane);
        var hidden = new float[n * ReducedChannels];
        Dense.Forward(pooled, Reduce.Weight.Value.Data, Reduce.Bias!.Value.Data, hidden, n, Channels, ReducedChannels);
        Elementwise.Relu(hidden);
        var gate = new float[n * Channels];
        Dense.Forward(hidden, Expand.Weight.Value.Data, Expand.Bias!.Value.Data, gate, n, ReducedChannels, Channels);
        var output = input.Clone();
        for (int i = 0; i < gate.Length; i++)
        {
            Elementwise.Scale(output.Data.AsSpan(i * plane, plane), Elementwise.Sigmoid(gate[i]));
        }

        return output;
    }

    public long MultiplyAccumulates() => 2L * Channels * ReducedChannels;

    public override IEnumerable<StateEntry> State(string prefix = "") =>
        Reduce.State(prefix + "fc1.").Concat(Expand.State(prefix + "fc2."));
}
