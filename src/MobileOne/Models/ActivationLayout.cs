using MobileOne.Tensors;

namespace MobileOne.Models;

/// <summary>
/// How a batch of activations handed from one block to the next lies in memory during training. NCHW everywhere
/// else; between two blocks whose training passes both work with each channel's pixels of every image together
/// (the small-plane depthwise passes in lanes, the stacked 1x1 products on channel rows, the pointwise moment passes),
/// CHWN, so the tensor is not transposed out of that layout by one block and back into it by the next.
/// </summary>
internal enum ActivationLayout
{
    /// <summary>[images][channels][height][width].</summary>
    Nchw,

    /// <summary>[channels][height][width][images]: the images of one pixel are adjacent (a tensor of shape [C, H, W, N]).</summary>
    Chwn,
}

/// <summary>The batch geometry of a tensor in an <see cref="ActivationLayout"/>.</summary>
internal static class ActivationLayouts
{
    /// <summary>(images, channels, height, width) of <paramref name="t"/> read in <paramref name="layout"/>.</summary>
    public static (int Images, int Channels, int Height, int Width) Dims(this ActivationLayout layout, Tensor t) =>
        layout == ActivationLayout.Chwn ? (t.Dim(3), t.Dim(0), t.Dim(1), t.Dim(2)) : (t.Dim(0), t.Dim(1), t.Dim(2), t.Dim(3));

    /// <summary>The shape of a batch of <paramref name="n"/> images of <paramref name="c"/> x <paramref name="h"/> x <paramref name="w"/> in <paramref name="layout"/>.</summary>
    public static int[] Shape(this ActivationLayout layout, int n, int c, int h, int w) =>
        layout == ActivationLayout.Chwn ? [c, h, w, n] : [n, c, h, w];
}
