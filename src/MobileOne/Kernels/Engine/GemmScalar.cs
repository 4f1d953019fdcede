using System.Runtime.CompilerServices;

namespace MobileOne.Kernels.Engine;

/// <summary>
/// Portable GEMM over packed panels for CPUs without AVX2: per row, a 16-column strip of accumulators
/// on the stack, k in order (multiply then add, no FMA: a software FMA would be very slow).
/// </summary>
internal static unsafe class GemmScalar
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Run(float* a, nint lda, int rows, PackedPanels b, int panelStart, int panelEnd, int kStart, int kLength, float* c, nint ldc, int flags)
    {
        float* acc = stackalloc float[16];
        for (int p = panelStart; p < panelEnd; p++)
        {
            int width = b.Width(p);
            float* panel = b.Panel(p) + ((long)kStart * width);
            for (int r = 0; r < rows; r++)
            {
                float* ar = a + (r * lda) + kStart;
                float* cr = c + (r * ldc) + (p * PackedPanels.PanelWidth);
                for (int s = 0; s < width; s += 16)
                {
                    float* init = (flags & GemmAvx512.Accumulate) == 0 ? b.Bias + (p * PackedPanels.PanelWidth) + s : cr + s;
                    for (int j = 0; j < 16; j++)
                    {
                        acc[j] = init[j];
                    }

                    float* bp = panel + s;
                    for (int kk = 0; kk < kLength; kk++)
                    {
                        float x = ar[kk];
                        for (int j = 0; j < 16; j++)
                        {
                            acc[j] += x * bp[j];
                        }

                        bp += width;
                    }

                    bool relu = (flags & GemmAvx512.Relu) != 0;
                    for (int j = 0; j < 16; j++)
                    {
                        cr[s + j] = relu ? MathF.Max(acc[j], 0f) : acc[j];
                    }
                }
            }
        }
    }
}
