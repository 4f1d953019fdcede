using MobileOne.Kernels;
using MobileOne.Reparam;

namespace MobileOne.Analysis;

/// <summary>
/// Checks a stored convolution matrix against the library's own convolution: a random input (uniform in [-1, 1),
/// fixed seed) multiplied by the compressed rows, in double, against the training kernels' float32 forward
/// (<see cref="TrainingConvolution.Forward"/>) of the same kernel, without bias. A correct matrix differs only by
/// the float32 rounding of the kernel path.
/// </summary>
internal static unsafe class MatrixCheck
{
    public static double MaxAbsDiff(ConvolutionMatrix matrix, FusedKernel kernel, int seed = 0)
    {
        ArgumentNullException.ThrowIfNull(matrix);
        ArgumentNullException.ThrowIfNull(kernel);
        if (matrix.DilationH != 1 || matrix.DilationW != 1 || matrix.StrideH != matrix.StrideW || matrix.PadH != matrix.PadW)
        {
            throw new NotSupportedException("The library's convolution takes square strides and paddings without dilation; this matrix cannot be checked against it.");
        }

        var rng = new Random(seed);
        var x = new float[matrix.Columns];
        for (int i = 0; i < x.Length; i++)
        {
            x[i] = (float)((2 * rng.NextDouble()) - 1);
        }

        var sparse = matrix.ToSparse();
        var expected = new double[matrix.Rows];
        sparse.Multiply(Array.ConvertAll(x, v => (double)v), expected);

        var g = new ConvGeometry(1, matrix.InChannels, matrix.Height, matrix.Width, matrix.OutChannels, matrix.KernelH, matrix.KernelW, matrix.StrideH, matrix.StrideW, matrix.PadH, matrix.PadW, matrix.Groups);
        var weight = Array.ConvertAll(kernel.Weight, v => (float)v);
        var y = new float[matrix.Rows];
        var columns = new float[Math.Max(1, TrainingConvolution.ColumnsSize(g))];
        fixed (float* px = x, pw = weight, py = y, pc = columns)
        {
            TrainingConvolution.Forward(px, pw, null, py, g, pc);
        }

        double max = 0;
        for (int i = 0; i < y.Length; i++)
        {
            max = Math.Max(max, Math.Abs(y[i] - expected[i]));
        }

        return max;
    }
}
