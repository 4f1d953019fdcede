# Prints an unrolled kernel body for the engine (see README.md in this folder).
import sys
def emit(w, ind, n, stride, xname, skip, vec, fma):
    if skip is None:
        w(f"nint col = (({xname} * {stride}) - 1) * cs;", ind)
    else:
        w(f"{{", ind); ind += 1
        w(f"nint col = (({xname} * {stride}) - 1) * cs;", ind)
    decl = ", ".join(f"a{j} = bv" for j in range(n))
    w(f"{vec}<float> {decl};", ind)
    ncols = (n - 1) * stride + 3
    for ky in range(3):
        w("{", ind)
        w(f"float* src = r{ky} + col;", ind + 1)
        for c in range(ncols):
            if c == skip:
                continue
            w(f"var v{c} = {vec}.Load(src + ({c} * cs));" if c else f"var v0 = {vec}.Load(src);", ind + 1)
            for j in range(n):
                kx = c - j * stride
                if 0 <= kx <= 2:
                    w(f"a{j} = {fma}(v{c}, w{ky}{kx}, a{j});", ind + 1)
        w("}", ind)
        w("", ind)
    w("if (relu)", ind)
    w("{", ind)
    for j in range(n):
        w(f"a{j} = {vec}.Max(a{j}, zero);", ind + 1)
    w("}", ind)
    w("", ind)
    w(f"float* dst = o + ({xname} * ocs);", ind)
    for j in range(n):
        w(f"a{j}.Store(dst + ({j} * ocs));" if j else "a0.Store(dst);", ind)
    if skip is not None:
        ind -= 1
        w("}", ind)

def gen(vec, width, fma, blocks, stride):
    L = []
    def w(s, ind=2): L.append("    " * ind + s)
    name = f"RowS{stride}"
    w("[MethodImpl(MethodImplOptions.AggressiveOptimization)]", 1)
    w(f"private static void {name}(float* r0, float* r1, float* r2, nint cs, int inW, float* w, float* bias, float* o, nint ocs, int outW, bool relu)", 1)
    w("{", 1)
    for ky in range(3):
        for kx in range(3):
            w(f"var w{ky}{kx} = {vec}.Load(w + {(ky*3+kx)*16});")
    w(f"var bv = {vec}.Load(bias);")
    w(f"var zero = {vec}<float>.Zero;")
    w(f"int lo = Math.Min(1, outW);")
    w(f"int hi = inW >= 2 ? Math.Min(((inW - 2) / {stride}) + 1, outW) : lo;")
    w("hi = Math.Max(hi, lo);")
    w("if (inW == 1)")
    w("{")
    w(f"Edge(r0, r1, r2, cs, inW, w, bv, o, 0, relu);", 3)
    w("}")
    w("else")
    w("{")
    w("// The first column has no left neighbour, the last (if any is an edge) no right one: the same code as an", 3)
    w("// interior column with that tap column left out.", 3)
    emit(w, 3, 1, stride, "0", skip=0, vec=vec, fma=fma)
    w("for (int ox = hi; ox < outW; ox++)", 3)
    w("{", 3)
    emit(w, 4, 1, stride, "ox", skip=2, vec=vec, fma=fma)
    w("}", 3)
    w("}")
    w("")
    w("int x = lo;")
    for n in blocks:
        loop = "while" if n == blocks[0] or n == 1 else "if"
        w(f"{loop} (x + {n} <= hi)")
        w("{")
        emit(w, 3, n, stride, "x", skip=None, vec=vec, fma=fma)
        w(f"x += {n};", 3)
        w("}")
        w("")
    L.pop()
    w("}", 1)
    return "\n".join(L)

isa = sys.argv[1]
if isa == "512":
    print(gen("Vector512", 16, "Avx512F.FusedMultiplyAdd", [8, 4, 1], 1)); print()
    print(gen("Vector512", 16, "Avx512F.FusedMultiplyAdd", [8, 4, 1], 2))
else:
    print(gen("Vector256", 8, "Fma.MultiplyAdd", [4, 1], 1)); print()
    print(gen("Vector256", 8, "Fma.MultiplyAdd", [4, 1], 2))
