# Prints an unrolled kernel body for the engine (see README.md in this folder).
R, V = 6, 2
L = []
def w(s, ind=2): L.append("    " * ind + s)
w("[MethodImpl(MethodImplOptions.AggressiveOptimization)]", 1)
w("private static void Tile<TRows>(float* a, nint lda, float* b, nint ldb, float* bias, float* c, nint ldc, int k, int flags)", 1)
w("where TRows : struct, IDim", 2)
w("{", 1)
w("Vector256<float> " + ", ".join(f"c{r}{v} = default" for r in range(R) for v in range(V)) + ";")
w("nint o1 = lda, o2 = 2 * lda, o3 = 3 * lda, o4 = 4 * lda, o5 = 5 * lda;")
w("if ((flags & GemmAvx512.Accumulate) == 0)")
w("{")
w("var init0 = Vector256.Load(bias);", 3)
w("var init1 = Vector256.Load(bias + 8);", 3)
for r in range(R):
    cr = "" if r == 0 else f"if (TRows.Value > {r})"
    if cr:
        w(cr, 3); w("{", 3)
        w(f"c{r}0 = init0;", 4); w(f"c{r}1 = init1;", 4); w("}", 3)
    else:
        w(f"c{r}0 = init0;", 3); w(f"c{r}1 = init1;", 3)
w("}")
w("else")
w("{")
for r in range(R):
    cr = "" if r == 0 else f"if (TRows.Value > {r})"
    if cr: w(cr, 3)
    w("{", 3)
    w(f"c{r}0 = Vector256.Load(c + ({r} * ldc));", 4)
    w(f"c{r}1 = Vector256.Load(c + ({r} * ldc) + 8);", 4)
    w("}", 3)
w("}")
w("")
w("for (int kk = 0; kk < k; kk++)")
w("{")
w("var b0 = Vector256.Load(b);", 3)
w("var b1 = Vector256.Load(b + 8);", 3)
offs = ["0", "o1", "o2", "o3", "o4", "o5"]
for r in range(R):
    cr = "" if r == 0 else f"if (TRows.Value > {r})"
    if cr: w(cr, 3)
    w("{", 3)
    w(f"var x = Vector256.Create(a[{offs[r]}]);", 4)
    w(f"c{r}0 = Fma.MultiplyAdd(x, b0, c{r}0);", 4)
    w(f"c{r}1 = Fma.MultiplyAdd(x, b1, c{r}1);", 4)
    w("}", 3)
w("")
w("a++;", 3)
w("b += ldb;", 3)
w("}")
w("")
w("if ((flags & GemmAvx512.Relu) != 0)")
w("{")
w("var zero = Vector256<float>.Zero;", 3)
for r in range(R):
    cr = "" if r == 0 else f"if (TRows.Value > {r})"
    if cr: w(cr, 3)
    w("{", 3)
    w(f"c{r}0 = Vector256.Max(c{r}0, zero);", 4)
    w(f"c{r}1 = Vector256.Max(c{r}1, zero);", 4)
    w("}", 3)
w("}")
w("")
for r in range(R):
    cr = "" if r == 0 else f"if (TRows.Value > {r})"
    if cr: w(cr, 2)
    w("{", 2)
    w(f"c{r}0.Store(c + ({r} * ldc));", 3)
    w(f"c{r}1.Store(c + ({r} * ldc) + 8);", 3)
    w("}", 2)
    if r < R-1: w("")
w("}", 1)
print("\n".join(L))
