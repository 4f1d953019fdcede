namespace MobileOne.Graph;

/// <summary>
/// Softmax over the channels of each pixel: y_c = exp(x_c - max) / sum_k exp(x_k - max). On a classifier's
/// [classes, 1, 1] output (after a <see cref="LinearNode"/>) it turns logits into probabilities; on a feature map it is
/// ONNX's opset-13 Softmax over axis 1. No parameters, no multiply-accumulates.
/// </summary>
public sealed record SoftmaxNode(string Name, int Input) : GraphNode(Name, [Input])
{
    internal override void Validate(int[] inputChannels) => RequireInputs(1);

    internal override int OutputChannels(int[] inputChannels) => inputChannels[0];

    internal override ValueShape OutputShape(ValueShape[] inputs) => inputs[0];
}
