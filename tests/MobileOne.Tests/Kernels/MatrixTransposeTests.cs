using MobileOne.Kernels;
using MobileOne.Tests.Nn;

namespace MobileOne.Tests.Kernels;

/// <summary>
/// The blocked transpose that moves NCHW batches into images-in-lanes or channel rows and back, against its definition
/// (destination[j * rows + i] = source[i * cols + j]): whole 16 x 16 blocks, edges of every width on both sides,
/// the work split by columns and (more rows than columns) by rows, one and two workers, with and without the AVX-512
/// permutes.
/// </summary>
[Collection(KernelSettingsCollection.Name)]
public sealed unsafe class MatrixTransposeTests
{
    [Theory]
    [IsaData(IsaLevel.Avx512, 1)]
    [IsaData(IsaLevel.Avx512, 2)]
    [IsaData(IsaLevel.Scalar, 2)]
    public void Transpose_moves_every_element_to_its_transposed_place(IsaLevel level, int threads)
    {
        using var settings = new KernelSettingsScope();
        Lanes.Level = level;
        ComputeThreads.Count = threads;
        (int Rows, int Cols)[] shapes = [(16, 16), (64, 1024), (1024, 64), (17, 5), (32, 40), (48, 33), (31, 64), (1, 1), (64, 256), (1000, 37), (203, 16)];
        foreach (var (rows, cols) in shapes)
        {
            float[] source = [.. Enumerable.Range(0, rows * cols).Select(v => (float)v)];
            var destination = new float[rows * cols];
            fixed (float* s = source)
            fixed (float* d = destination)
            {
                MatrixTranspose.Transpose(s, rows, cols, d);
            }

            for (int i = 0; i < rows; i++)
            {
                for (int j = 0; j < cols; j++)
                {
                    Assert.True(destination[(j * rows) + i] == source[(i * cols) + j], $"{rows}x{cols}: element ({i}, {j})");
                }
            }
        }
    }
}
