using MobileOne.Kernels;
using MobileOne.Tensors;

namespace MobileOne.Nn;

/// <summary>Fully connected layer with PyTorch's [out, in] weight layout.</summary>
public sealed class Linear : Module
{
    public Linear(int inFeatures, int outFeatures)
    {
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        Weight = new Parameter(new Tensor(outFeatures, inFeatures));
        Bias = new Parameter(new Tensor(outFeatures));
    }

    public int InFeatures { get; }

    public int OutFeatures { get; }

    public Parameter Weight { get; }

    public Parameter Bias { get; }

    public Tensor Forward(Tensor input)
    {
        if (input.Rank != 2 || input.Dim(1) != InFeatures)
        {
            throw new ArgumentException($"Linear layer expects [N, {InFeatures}], got {input.ShapeString}.", nameof(input));
        }

        var output = new Tensor(input.Dim(0), OutFeatures);
        Dense.Forward(input.Data, Weight.Value.Data, Bias.Value.Data, output.Data, input.Dim(0), InFeatures, OutFeatures);
        return output;
    }

    public override IEnumerable<StateEntry> State(string prefix = "")
    {
        yield return new StateEntry(prefix + "weight", Weight.Value, StateKind.Parameter);
        yield return new StateEntry(prefix + "bias", Bias.Value, StateKind.Parameter);
    }
}
