namespace MobileOne.Graph;

/// <summary>
/// Zero padding of the spatial borders, each side by its own amount (nn.ZeroPad2d, F.pad with constant 0): for the
/// pads a following convolution or pooling cannot take as its own padding, which is the same on both sides of an axis.
/// No parameters, no multiply-accumulates.
/// </summary>
public sealed record PadNode(string Name, int Input, int Top, int Left, int Bottom, int Right) : GraphNode(Name, [Input])
{
    internal override void Validate(int[] inputChannels)
    {
        RequireInputs(1);
        if (Top < 0 || Left < 0 || Bottom < 0 || Right < 0)
        {
            throw new ArgumentException($"Node {Name}: pads (top {Top}, left {Left}, bottom {Bottom}, right {Right}) must not be negative.");
        }
    }

    internal override int OutputChannels(int[] inputChannels) => inputChannels[0];

    internal override ValueShape OutputShape(ValueShape[] inputs)
    {
        long height = (long)inputs[0].Height + Top + Bottom, width = (long)inputs[0].Width + Left + Right;
        if (height > int.MaxValue || width > int.MaxValue)
        {
            throw new ArgumentException($"Node {Name}: padding {inputs[0]} by ({Top}, {Left}, {Bottom}, {Right}) gives {height}x{width}, beyond any image.");
        }

        return inputs[0] with { Height = (int)height, Width = (int)width };
    }
}
