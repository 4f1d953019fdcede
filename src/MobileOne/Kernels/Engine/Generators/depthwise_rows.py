# Prints the single-row depthwise kernels RowS1 and RowS2 of Depthwise3x3.cs (see README.md in this folder).
#   depthwise_rows.py 512   Avx512Kernels (Vector512, blocks of 8, 4, 1 outputs)
#   depthwise_rows.py 256   Avx2Kernels (Vector256, blocks of 4, 1 outputs)
# Rows with inW == 1 never get here (they take the scalar row), so the first column needs no special case.
from _writer import Writer, main

ISAS = {
    "512": ("Vector512", "Avx512F.FusedMultiplyAdd", [8, 4, 1]),
    "256": ("Vector256", "Fma.MultiplyAdd", [4, 1]),
}


def column(xname, stride):
    """The input column (times cs) left of output column xname."""
    if xname == "0":
        return "-1 * cs"
    return f"({xname} - 1) * cs" if stride == 1 else f"(({xname} * {stride}) - 1) * cs"


def emit(w, ind, n, stride, xname, skip, vec, fma):
    """n outputs from column xname on; input column `skip` (0: left edge, 2: right edge) is left out."""
    if skip is not None:
        w("{", ind)
        ind += 1
    w(f"nint col = {column(xname, stride)};", ind)
    w(f"{vec}<float> " + ", ".join(f"a{j} = bv" for j in range(n)) + ";", ind)
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
    w(f"float* dst = o + ({xname} * ocs);" if xname != "0" else "float* dst = o;", ind)
    for j in range(n):
        w(f"a{j}.Store(dst + ({j} * ocs));" if j else "a0.Store(dst);", ind)
    if skip is not None:
        w("}", ind - 1)


def row(w, vec, fma, blocks, stride):
    w("[MethodImpl(MethodImplOptions.AggressiveOptimization)]", 0)
    w(f"public static void RowS{stride}(float* r0, float* r1, float* r2, nint cs, int inW, float* w, float* bias, float* o, nint ocs, int outW, bool relu)", 0)
    w("{", 0)
    for ky in range(3):
        for kx in range(3):
            w(f"var w{ky}{kx} = {vec}.Load(w + {(ky * 3 + kx) * 16});", 1)
    w(f"var bv = {vec}.Load(bias);", 1)
    w(f"var zero = {vec}<float>.Zero;", 1)
    w("int lo = Math.Min(1, outW);", 1)
    w(f"int hi = inW >= 2 ? Math.Min(((inW - 2) / {stride}) + 1, outW) : lo;", 1)
    w("hi = Math.Max(hi, lo);", 1)
    w("// The first column has no left neighbour, the last (if any is an edge) no right one: the same code as an", 1)
    w("// interior column with that tap column left out.", 1)
    emit(w, 1, 1, stride, "0", skip=0, vec=vec, fma=fma)
    w("", 1)
    w("for (int ox = hi; ox < outW; ox++)", 1)
    w("{", 1)
    emit(w, 2, 1, stride, "ox", skip=2, vec=vec, fma=fma)
    w("}", 1)
    w("", 1)
    w("int x = lo;", 1)
    for i, n in enumerate(blocks):
        w(f"{'while' if i == 0 or n == 1 else 'if'} (x + {n} <= hi)", 1)
        w("{", 1)
        emit(w, 2, n, stride, "x", skip=None, vec=vec, fma=fma)
        w(f"x += {n};", 2)
        w("}", 1)
        if i < len(blocks) - 1:
            w("", 1)
    w("}", 0)


def generate(args):
    if len(args) != 1 or args[0] not in ISAS:
        raise ValueError(f"expected 512 or 256, got {args}")
    vec, fma, blocks = ISAS[args[0]]
    w = Writer()
    row(w, vec, fma, blocks, 1)
    w("", 0)
    row(w, vec, fma, blocks, 2)
    return w.lines


if __name__ == "__main__":
    main(generate, "depthwise_rows.py 512|256")
