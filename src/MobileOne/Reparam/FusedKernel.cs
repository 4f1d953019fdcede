using MobileOne.Tensors;

namespace MobileOne.Reparam;

/// <summary>An OIHW kernel and per-output-channel bias in double precision, summed branch by branch.</summary>
internal sealed class FusedKernel
{
    public FusedKernel(int[] shape, double[] weight, double[] bias)
    {
        if (shape.Length != 4 || shape[0] * shape[1] * shape[2] * shape[3] != weight.Length || bias.Length != shape[0])
        {
            throw new ArgumentException($"Kernel shape {Tensor.FormatShape(shape)} does not match {weight.Length} weights and {bias.Length} biases.");
        }

        Shape = (int[])shape.Clone();
        Weight = weight;
        Bias = bias;
    }

    public int[] Shape { get; }

    public double[] Weight { get; }

    public double[] Bias { get; }

    public static FusedKernel Zero(int[] shape) =>
        new(shape, new double[shape[0] * shape[1] * shape[2] * shape[3]], new double[shape[0]]);

    /// <summary>Adds another branch of the same output channels; a smaller odd kernel is added at the centre.</summary>
    public void AddCentered(FusedKernel other)
    {
        int o = Shape[0], i = Shape[1], kh = Shape[2], kw = Shape[3];
        int okh = other.Shape[2], okw = other.Shape[3];
        if (other.Shape[0] != o || other.Shape[1] != i || okh > kh || okw > kw || (kh - okh) % 2 != 0 || (kw - okw) % 2 != 0)
        {
            throw new ArgumentException($"Cannot centre a {Tensor.FormatShape(other.Shape)} kernel inside {Tensor.FormatShape(Shape)}.");
        }

        int dy = (kh - okh) / 2, dx = (kw - okw) / 2;
        for (int oc = 0; oc < o; oc++)
        {
            for (int ic = 0; ic < i; ic++)
            {
                for (int y = 0; y < okh; y++)
                {
                    for (int x = 0; x < okw; x++)
                    {
                        Weight[((((oc * i) + ic) * kh) + y + dy) * kw + x + dx] += other.Weight[((((oc * i) + ic) * okh) + y) * okw + x];
                    }
                }
            }

            Bias[oc] += other.Bias[oc];
        }
    }

    public Tensor WeightTensor() => new(Shape, Array.ConvertAll(Weight, v => (float)v));

    public Tensor BiasTensor() => new([Shape[0]], Array.ConvertAll(Bias, v => (float)v));
}
