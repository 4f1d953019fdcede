# Prints an unrolled register tile of GemmAvx2.cs (see README.md in this folder).
#   gemm_avx2_tile.py tile      Tile<TRows>: A row r, step kk at a[r * lda + kk] (a++ per k step)
#   gemm_avx2_tile.py indirect  TileIndirect<TRows>: A row r, step kk at a[r * lda + offsets[kk]]
# Up to 6 rows x 2 ymm; rows beyond TRows are compiled out by the type constant.
from _writer import Writer, main

R = 6


def generate(args):
    if args not in (["tile"], ["indirect"]):
        raise ValueError(f"expected 'tile' or 'indirect', got {args}")
    indirect = args[0] == "indirect"
    w = Writer()
    name, extra = ("TileIndirect", ", int* offsets") if indirect else ("Tile", "")
    arow = "ak" if indirect else "a"
    w("[MethodImpl(MethodImplOptions.AggressiveOptimization)]", 0)
    w(f"private static void {name}<TRows>(float* a, nint lda, float* b, nint ldb, float* bias, float* c, nint ldc, int k, int flags{extra})", 0)
    w("where TRows : struct, IDim", 1)
    w("{", 0)
    w("Vector256<float> " + ", ".join(f"c{r}{v} = default" for r in range(R) for v in range(2)) + ";", 1)
    w("nint o1 = lda, o2 = 2 * lda, o3 = 3 * lda, o4 = 4 * lda, o5 = 5 * lda;", 1)
    w("if ((flags & GemmAvx512.Accumulate) == 0)", 1)
    w("{", 1)
    w("var init0 = Vector256.Load(bias);", 2)
    w("var init1 = Vector256.Load(bias + 8);", 2)
    for r in range(R):
        if r:
            w.block(f"TRows.Value > {r}", 2)
        ind = 3 if r else 2
        w(f"c{r}0 = init0;", ind)
        w(f"c{r}1 = init1;", ind)
        if r:
            w("}", 2)
    w("}", 1)
    w("else", 1)
    w("{", 1)
    for r in range(R):
        w.block(r and f"TRows.Value > {r}", 2)
        w(f"c{r}0 = Vector256.Load(c + ({r} * ldc));", 3)
        w(f"c{r}1 = Vector256.Load(c + ({r} * ldc) + 8);", 3)
        w("}", 2)
    w("}", 1)
    w("", 1)
    w("for (int kk = 0; kk < k; kk++)", 1)
    w("{", 1)
    if indirect:
        w("float* ak = a + offsets[kk];", 2)
    w("var b0 = Vector256.Load(b);", 2)
    w("var b1 = Vector256.Load(b + 8);", 2)
    offs = ["0"] + [f"o{r}" for r in range(1, R)]
    for r in range(R):
        w.block(r and f"TRows.Value > {r}", 2)
        w(f"var x = Vector256.Create({arow}[{offs[r]}]);", 3)
        w(f"c{r}0 = Fma.MultiplyAdd(x, b0, c{r}0);", 3)
        w(f"c{r}1 = Fma.MultiplyAdd(x, b1, c{r}1);", 3)
        w("}", 2)
    w("", 2)
    if not indirect:
        w("a++;", 2)
    w("b += ldb;", 2)
    w("}", 1)
    w("", 1)
    w("if ((flags & GemmAvx512.Relu) != 0)", 1)
    w("{", 1)
    w("var zero = Vector256<float>.Zero;", 2)
    for r in range(R):
        w.block(r and f"TRows.Value > {r}", 2)
        w(f"c{r}0 = Vector256.Max(c{r}0, zero);", 3)
        w(f"c{r}1 = Vector256.Max(c{r}1, zero);", 3)
        w("}", 2)
    w("}", 1)
    w("", 1)
    for r in range(R):
        w.block(r and f"TRows.Value > {r}", 1)
        w(f"c{r}0.Store(c + ({r} * ldc));", 2)
        w(f"c{r}1.Store(c + ({r} * ldc) + 8);", 2)
        w("}", 1)
        if r < R - 1:
            w("", 1)
    w("}", 0)
    return w.lines


if __name__ == "__main__":
    main(generate, "gemm_avx2_tile.py tile|indirect")
