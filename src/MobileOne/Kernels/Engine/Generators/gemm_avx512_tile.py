# Prints an unrolled register tile of GemmAvx512.cs (see README.md in this folder).
#   gemm_avx512_tile.py tile      Tile<TRows, TVecs>: A row r, step kk at a[r * lda + kk] (a++ per k step)
#   gemm_avx512_tile.py indirect  TileIndirect<TRows, TVecs>: A row r, step kk at a[r * lda + offsets[kk]]
# Up to 8 rows x 4 zmm; rows and vectors beyond TRows / TVecs are compiled out by the type constants.
from _writer import Writer, main

R, V = 8, 4


def generate(args):
    if args not in (["tile"], ["indirect"]):
        raise ValueError(f"expected 'tile' or 'indirect', got {args}")
    indirect = args[0] == "indirect"
    w = Writer()
    name, extra = ("TileIndirect", ", int* offsets") if indirect else ("Tile", "")
    arow = "ak" if indirect else "a"
    w("[MethodImpl(MethodImplOptions.AggressiveOptimization)]", 0)
    w(f"private static void {name}<TRows, TVecs>(float* a, nint lda, float* b, nint ldb, float* bias, float* c, nint ldc, int k, int flags{extra})", 0)
    w("where TRows : struct, IDim", 1)
    w("where TVecs : struct, IDim", 1)
    w("{", 0)
    w("Vector512<float> " + ", ".join(f"c{r}{v} = default" for r in range(R) for v in range(V)) + ";", 1)
    w("nint o1 = lda, o2 = 2 * lda, o3 = 3 * lda, o4 = 4 * lda, o5 = 5 * lda, o6 = 6 * lda, o7 = 7 * lda;", 1)
    w("if ((flags & Accumulate) == 0)", 1)
    w("{", 1)
    for v in range(V):
        w.block(v and f"TVecs.Value > {v}", 2)
        w(f"var init = Vector512.Load(bias + {16 * v});", 3)
        for r in range(R):
            cr = f"if (TRows.Value > {r}) " if r else ""
            w(f"{cr}c{r}{v} = init;", 3)
        w("}", 2)
    w("}", 1)
    w("else", 1)
    w("{", 1)
    for r in range(R):
        w.block(r and f"TRows.Value > {r}", 2)
        w(f"float* row = c + ({r} * ldc);", 3)
        for v in range(V):
            cv = f"if (TVecs.Value > {v}) " if v else ""
            w(f"{cv}c{r}{v} = Vector512.Load(row + {16 * v});", 3)
        w("}", 2)
    w("}", 1)
    w("", 1)
    w("for (int kk = 0; kk < k; kk++)", 1)
    w("{", 1)
    if indirect:
        w("float* ak = a + offsets[kk];", 2)
    w("var b0 = Vector512.Load(b);", 2)
    for v in range(1, V):
        w(f"var b{v} = TVecs.Value > {v} ? Vector512.Load(b + {16 * v}) : default;", 2)
    offs = ["0"] + [f"o{r}" for r in range(1, R)]
    for r in range(R):
        w.block(r and f"TRows.Value > {r}", 2)
        w(f"var x = Vector512.Create({arow}[{offs[r]}]);", 3)
        for v in range(V):
            cv = f"if (TVecs.Value > {v}) " if v else ""
            w(f"{cv}c{r}{v} = Avx512F.FusedMultiplyAdd(x, b{v}, c{r}{v});", 3)
        w("}", 2)
    w("", 2)
    if not indirect:
        w("a++;", 2)
    w("b += ldb;", 2)
    w("}", 1)
    w("", 1)
    w("if ((flags & Relu) != 0)", 1)
    w("{", 1)
    w("var zero = Vector512<float>.Zero;", 2)
    for r in range(R):
        for v in range(V):
            conds = ([f"TRows.Value > {r}"] if r else []) + ([f"TVecs.Value > {v}"] if v else [])
            pre = f"if ({' && '.join(conds)}) " if conds else ""
            w(f"{pre}c{r}{v} = Vector512.Max(c{r}{v}, zero);", 2)
    w("}", 1)
    w("", 1)
    for r in range(R):
        if r:
            w(f"if (TRows.Value > {r})", 1)
            if indirect:
                w("", 1)  # as pasted: TileIndirect has a blank line between these guards and their braces
        w("{", 1)
        w(f"float* row = c + ({r} * ldc);", 2)
        for v in range(V):
            cv = f"if (TVecs.Value > {v}) " if v else ""
            w(f"{cv}c{r}{v}.Store(row + {16 * v});", 2)
        w("}", 1)
        if r < R - 1:
            w("", 1)
    w("}", 0)
    return w.lines


if __name__ == "__main__":
    main(generate, "gemm_avx512_tile.py tile|indirect")
