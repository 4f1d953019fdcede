using MobileOne.Kernels;
using MobileOne.Tests.Oracle;

namespace MobileOne.Tests.Kernels.Conv;

/// <summary>NCHW <-> NHWC for one image, and the oracle convolution seen through NHWC.</summary>
internal static class ConvLayouts
{
    public static float[] ToNhwc(float[] nchw, int c, int h, int w)
    {
        var nhwc = new float[nchw.Length];
        for (int ch = 0; ch < c; ch++)
        {
            for (int y = 0; y < h; y++)
            {
                for (int x = 0; x < w; x++)
                {
                    nhwc[((y * w) + x) * c + ch] = nchw[((ch * h) + y) * w + x];
                }
            }
        }

        return nhwc;
    }

    /// <summary>Reference output in NHWC: <see cref="Convolution.Forward"/> on the NCHW image, transposed, ReLU applied here.</summary>
    public static float[] ReferenceNhwc(float[] imageNchw, float[] weight, float[]? bias, ConvGeometry g, bool relu)
    {
        var g1 = g with { Batch = 1 };
        var y = new float[g.OutChannels * g.OutPlane];
        Convolution.Forward(imageNchw, weight, bias, y, g1);
        var nhwc = ToNhwc(y, g.OutChannels, g.OutHeight, g.OutWidth);
        if (relu)
        {
            for (int i = 0; i < nhwc.Length; i++)
            {
                nhwc[i] = Math.Max(nhwc[i], 0f);
            }
        }

        return nhwc;
    }
}
