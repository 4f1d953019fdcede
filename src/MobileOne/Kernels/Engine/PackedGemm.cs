namespace MobileOne.Kernels.Engine;

/// <summary>One entry point for the three GEMM paths; the flag bits are <see cref="GemmAvx512.Accumulate"/> and <see cref="GemmAvx512.Relu"/>.</summary>
internal static unsafe class PackedGemm
{
    public static void Run(Isa isa, float* a, nint lda, int rows, PackedPanels b, int panelStart, int panelEnd, int kStart, int kLength, float* c, nint ldc, int flags)
    {
        if (rows <= 0 || panelStart >= panelEnd || kLength <= 0)
        {
            return;
        }

        switch (isa)
        {
            case Isa.Avx512:
                GemmAvx512.Run(a, lda, rows, b, panelStart, panelEnd, kStart, kLength, c, ldc, flags);
                break;
            case Isa.Avx2:
                GemmAvx2.Run(a, lda, rows, b, panelStart, panelEnd, kStart, kLength, c, ldc, flags);
                break;
            default:
                GemmScalar.Run(a, lda, rows, b, panelStart, panelEnd, kStart, kLength, c, ldc, flags);
                break;
        }
    }

    /// <summary>
    /// The full product with K split into blocks of <paramref name="kBlock"/>: bias enters with the first block,
    /// ReLU is applied after the last, so the accumulation order per output is the same for any block size.
    /// </summary>
    public static void RunBlocked(Isa isa, float* a, nint lda, int rows, PackedPanels b, int panelStart, int panelEnd, int kBlock, float* c, nint ldc, bool relu)
    {
        int k = b.K;
        if (kBlock <= 0 || kBlock >= k)
        {
            Run(isa, a, lda, rows, b, panelStart, panelEnd, 0, k, c, ldc, relu ? GemmAvx512.Relu : 0);
            return;
        }

        for (int k0 = 0; k0 < k; k0 += kBlock)
        {
            int len = Math.Min(kBlock, k - k0);
            int flags = (k0 > 0 ? GemmAvx512.Accumulate : 0) | (relu && k0 + len == k ? GemmAvx512.Relu : 0);
            Run(isa, a, lda, rows, b, panelStart, panelEnd, k0, len, c, ldc, flags);
        }
    }
}
