namespace MobileOne.Tensors;

/// <summary>Shape checks shared by layers, so a wrong input fails with a message instead of an index error.</summary>
internal static class Shapes
{
    public static void RequireNchw(Tensor input, int channels, string what)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (input.Rank != 4)
        {
            throw new ArgumentException($"The {what} must be an NCHW tensor of rank 4; got shape {input.ShapeString}.");
        }

        if (input.Dim(1) != channels)
        {
            throw new ArgumentException($"The {what} must have {channels} channels; got shape {input.ShapeString}.");
        }

        if (input.Dim(0) == 0 || input.Dim(2) == 0 || input.Dim(3) == 0)
        {
            throw new ArgumentException($"The {what} has an empty dimension: shape {input.ShapeString}.");
        }
    }
}
