using MobileOne.Tensors;

namespace MobileOne.Nn;

/// <summary>Convolution without bias followed by BatchNorm: one branch of a train-time MobileOne block.</summary>
public sealed class ConvBn : Module
{
    /// <summary>A bias-free convolution followed by BatchNorm (timm's ConvNormAct without activation).</summary>
    public ConvBn(int inChannels, int outChannels, int kernelSize, int stride, int padding, int groups)
    {
        Conv = new Conv2d(inChannels, outChannels, kernelSize, stride, padding, groups, bias: false);
        Bn = new BatchNorm2d(outChannels);
    }

    /// <summary>The convolution (timm's .conv).</summary>
    public Conv2d Conv { get; }

    /// <summary>The BatchNorm (timm's .bn).</summary>
    public BatchNorm2d Bn { get; }

    /// <summary>BatchNorm of the convolution of <paramref name="input"/>.</summary>
    public Tensor Forward(Tensor input) => Bn.Forward(Conv.Forward(input));

    /// <summary>Gradients of both layers for the last training Forward; returns the input gradient (owned by the convolution).</summary>
    public Tensor? Backward(Tensor gradOutput, bool inputGradient = true) => Conv.Backward(Bn.Backward(gradOutput), inputGradient);

    /// <inheritdoc/>
    public override IEnumerable<StateEntry> State(string prefix = "") =>
        Conv.State(prefix + "conv.").Concat(Bn.State(prefix + "bn."));

    /// <inheritdoc/>
    public override IEnumerable<Module> Children() => [Conv, Bn];

    /// <inheritdoc/>
    public override IEnumerable<NamedParameter> NamedParameters(string prefix = "") =>
        Conv.NamedParameters(prefix + "conv.").Concat(Bn.NamedParameters(prefix + "bn."));
}
