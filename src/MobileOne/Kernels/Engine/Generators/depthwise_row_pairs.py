# Prints an unrolled kernel body for the engine (see README.md in this folder).
def emit(w, ind, n, xname, skip, vec, fma):
    # Two output rows (q = 0, 1) from four input rows, stride 1.
    stride = 1
    w(f"{{", ind); ind += 1
    w(f"nint col = ({xname} - 1) * cs;" if xname != "0" else "nint col = -cs;", ind)
    for q in range(2):
        decl = ", ".join(f"a{q}{j} = bv" for j in range(n))
        w(f"{vec}<float> {decl};", ind)
    ncols = (n - 1) * stride + 3
    for ir in range(4):
        w("{", ind)
        w(f"float* src = r{ir} + col;", ind + 1)
        for c in range(ncols):
            if c == skip:
                continue
            w(f"var v{c} = {vec}.Load(src + ({c} * cs));" if c else f"var v0 = {vec}.Load(src);", ind + 1)
            for q in range(2):
                ky = ir - q
                if not 0 <= ky <= 2:
                    continue
                for j in range(n):
                    kx = c - j * stride
                    if 0 <= kx <= 2:
                        w(f"a{q}{j} = {fma}(v{c}, w{ky}{kx}, a{q}{j});", ind + 1)
        w("}", ind)
        w("", ind)
    w("if (relu)", ind)
    w("{", ind)
    for q in range(2):
        for j in range(n):
            w(f"a{q}{j} = {vec}.Max(a{q}{j}, zero);", ind + 1)
    w("}", ind)
    w("", ind)
    for q in range(2):
        w(f"float* dst{q} = o{q} + ({xname} * ocs);" if xname != "0" else f"float* dst{q} = o{q};", ind)
        for j in range(n):
            w(f"a{q}{j}.Store(dst{q} + ({j} * ocs));" if j else f"a{q}0.Store(dst{q});", ind)
    ind -= 1
    w("}", ind)

def gen(vec, fma, blocks):
    L = []
    def w(s, ind=2): L.append("    " * ind + s)
    w("/// <summary>", 1)
    w("/// Two output rows at once (stride 1): the four input rows are loaded once for both, a third fewer loads than", 1)
    w("/// two single rows. Each output still accumulates its taps in (ky, kx) order, so the result is bit-identical", 1)
    w("/// to <see cref=\"RowS1\"/>. Needs inW >= 2.", 1)
    w("/// </summary>", 1)
    w("[MethodImpl(MethodImplOptions.AggressiveOptimization)]", 1)
    w("public static void RowPairS1(float* r0, float* r1, float* r2, float* r3, nint cs, int inW, float* w, float* bias, float* o0, float* o1, nint ocs, int outW, bool relu)", 1)
    w("{", 1)
    for ky in range(3):
        for kx in range(3):
            w(f"var w{ky}{kx} = {vec}.Load(w + {(ky*3+kx)*16});")
    w(f"var bv = {vec}.Load(bias);")
    w(f"var zero = {vec}<float>.Zero;")
    w("int hi = Math.Max(Math.Min(inW - 1, outW), 1);")
    emit(w, 2, 1, "0", 0, vec, fma)
    w("for (int ox = hi; ox < outW; ox++)")
    w("{")
    emit(w, 3, 1, "ox", 2, vec, fma)
    w("}")
    w("")
    w("int x = 1;")
    for n in blocks:
        loop = "while" if n == blocks[0] or n == 1 else "if"
        w(f"{loop} (x + {n} <= hi)")
        w("{")
        emit(w, 3, n, "x", None, vec, fma)
        w(f"x += {n};", 3)
        w("}")
        w("")
    L.pop()
    w("}", 1)
    return "\n".join(L)

print(gen("Vector512", "Avx512F.FusedMultiplyAdd", [8, 4, 1]))
