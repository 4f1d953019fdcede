namespace MobileOne.Graph;

/// <summary>
/// Two or more values of one height and width joined along channels, in input order (torch.cat(xs, dim=1): an
/// Inception or DenseNet block's branches). No parameters, no multiply-accumulates.
/// </summary>
public sealed record ConcatNode(string Name, int[] Inputs) : GraphNode(Name, Inputs)
{
    internal override void Validate(int[] inputChannels)
    {
        if (Inputs.Length < 2)
        {
            throw new ArgumentException($"Node {Name}: a concatenation needs at least two inputs; got {Inputs.Length}.");
        }
    }

    internal override int OutputChannels(int[] inputChannels) => inputChannels.Sum();

    internal override ValueShape OutputShape(ValueShape[] inputs)
    {
        if (inputs.Any(s => s.Height != inputs[0].Height || s.Width != inputs[0].Width))
        {
            throw new ArgumentException($"Node {Name}: concatenated values must have one height and width; got {string.Join(", ", inputs)}.");
        }

        return new ValueShape(inputs.Sum(s => s.Channels), inputs[0].Height, inputs[0].Width);
    }
}
