# Prints an unrolled kernel body for the engine (see README.md in this folder).
R, V = 8, 4
L = []
def w(s, ind=2): L.append("    " * ind + s)
w("[MethodImpl(MethodImplOptions.AggressiveOptimization)]", 1)
w("private static void Tile<TRows, TVecs>(float* a, nint lda, float* b, nint ldb, float* bias, float* c, nint ldc, int k, int flags)", 1)
w("where TRows : struct, IDim", 2)
w("where TVecs : struct, IDim", 2)
w("{", 1)
decl = ", ".join(f"c{r}{v}" for r in range(R) for v in range(V))
w("Vector512<float> " + ", ".join(f"c{r}{v} = default" for r in range(R) for v in range(V)) + ";")
w("nint o1 = lda, o2 = 2 * lda, o3 = 3 * lda, o4 = 4 * lda, o5 = 5 * lda, o6 = 6 * lda, o7 = 7 * lda;")
w("if ((flags & Accumulate) == 0)")
w("{")
for v in range(V):
    cond = "" if v == 0 else f"if (TVecs.Value > {v}) "
    w(f"{cond}{{", 3)
    w(f"var init = Vector512.Load(bias + {16*v});", 4)
    for r in range(R):
        cr = "" if r == 0 else f"if (TRows.Value > {r}) "
        w(f"{cr}c{r}{v} = init;", 4)
    w("}", 3)
w("}")
w("else")
w("{")
for r in range(R):
    cr = "" if r == 0 else f"if (TRows.Value > {r}) "
    w(f"{cr}{{", 3)
    w(f"float* row = c + ({r} * ldc);", 4)
    for v in range(V):
        cv = "" if v == 0 else f"if (TVecs.Value > {v}) "
        w(f"{cv}c{r}{v} = Vector512.Load(row + {16*v});", 4)
    w("}", 3)
w("}")
w("")
w("for (int kk = 0; kk < k; kk++)")
w("{")
w("var b0 = Vector512.Load(b);", 3)
w("var b1 = TVecs.Value > 1 ? Vector512.Load(b + 16) : default;", 3)
w("var b2 = TVecs.Value > 2 ? Vector512.Load(b + 32) : default;", 3)
w("var b3 = TVecs.Value > 3 ? Vector512.Load(b + 48) : default;", 3)
offs = ["0", "o1", "o2", "o3", "o4", "o5", "o6", "o7"]
for r in range(R):
    cr = "" if r == 0 else f"if (TRows.Value > {r}) "
    w(f"{cr}{{", 3)
    w(f"var x = Vector512.Create(a[{offs[r]}]);", 4)
    for v in range(V):
        cv = "" if v == 0 else f"if (TVecs.Value > {v}) "
        w(f"{cv}c{r}{v} = Avx512F.FusedMultiplyAdd(x, b{v}, c{r}{v});", 4)
    w("}", 3)
w("")
w("a++;", 3)
w("b += ldb;", 3)
w("}")
w("")
w("if ((flags & Relu) != 0)")
w("{")
w("var zero = Vector512<float>.Zero;", 3)
for r in range(R):
    for v in range(V):
        conds = []
        if r: conds.append(f"TRows.Value > {r}")
        if v: conds.append(f"TVecs.Value > {v}")
        pre = f"if ({' && '.join(conds)}) " if conds else ""
        w(f"{pre}c{r}{v} = Vector512.Max(c{r}{v}, zero);", 3)
w("}")
w("")
for r in range(R):
    cr = "" if r == 0 else f"if (TRows.Value > {r}) "
    w(f"{cr}{{", 2)
    w(f"float* row = c + ({r} * ldc);", 3)
    for v in range(V):
        cv = "" if v == 0 else f"if (TVecs.Value > {v}) "
        w(f"{cv}c{r}{v}.Store(row + {16*v});", 3)
    w("}", 2)
    if r < R-1: w("")
w("}", 1)
print("\n".join(L))
