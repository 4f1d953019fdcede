using MobileOne.Kernels;
using MobileOne.Tensors;

namespace MobileOne.Nn;

/// <summary>2-D convolution with an OIHW weight [C_out, C_in/groups, K, K] and an optional bias.</summary>
public sealed class Conv2d : Module
{
    public Conv2d(int inChannels, int outChannels, int kernelSize, int stride = 1, int padding = 0, int groups = 1, bool bias = false)
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
        Weight = new Parameter(new Tensor(outChannels, inChannels / groups, kernelSize, kernelSize));
        Bias = bias ? new Parameter(new Tensor(outChannels)) : null;
    }

    public int InChannels { get; }

    public int OutChannels { get; }

    public int KernelSize { get; }

    public int Stride { get; }

    public int Padding { get; }

    public int Groups { get; }

    public Parameter Weight { get; }

    public Parameter? Bias { get; }

    public ConvGeometry Geometry(int batch, int height, int width) =>
        ConvGeometry.Square(batch, InChannels, height, width, OutChannels, KernelSize, Stride, Padding, Groups);

    public Tensor Forward(Tensor input)
    {
        Shapes.RequireNchw(input, InChannels, "convolution input");
        var g = Geometry(input.Dim(0), input.Dim(2), input.Dim(3));
        g.Validate();
        var output = new Tensor(g.Batch, OutChannels, g.OutHeight, g.OutWidth);
        Convolution.Forward(input.Data, Weight.Value.Data, Bias is null ? default : Bias.Value.Data, output.Data, g);
        return output;
    }

    public long MultiplyAccumulates(int height, int width) => Geometry(1, height, width).MultiplyAccumulates;

    public override IEnumerable<StateEntry> State(string prefix = "")
    {
        yield return new StateEntry(prefix + "weight", Weight.Value, StateKind.Parameter);
        if (Bias is not null)
        {
            yield return new StateEntry(prefix + "bias", Bias.Value, StateKind.Parameter);
        }
    }
}
