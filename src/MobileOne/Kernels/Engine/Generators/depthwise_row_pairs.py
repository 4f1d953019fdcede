# Prints RowPairS1 of Depthwise3x3.Avx512Kernels (see README.md in this folder): two output rows (stride 1,
# Vector512, blocks of 8, 4, 1 outputs) from four input rows. Takes no arguments.
from _writer import Writer, main

VEC, FMA, BLOCKS = "Vector512", "Avx512F.FusedMultiplyAdd", [8, 4, 1]


def emit(w, ind, n, xname, skip):
    """n outputs of both rows from column xname on; input column `skip` (0: left edge, 2: right edge) is left out."""
    w("{", ind)
    ind += 1
    w(f"nint col = ({xname} - 1) * cs;" if xname != "0" else "nint col = -cs;", ind)
    for q in range(2):
        w(f"{VEC}<float> " + ", ".join(f"a{q}{j} = bv" for j in range(n)) + ";", ind)
    ncols = n + 2
    for ir in range(4):
        w("{", ind)
        w(f"float* src = r{ir} + col;", ind + 1)
        for c in range(ncols):
            if c == skip:
                continue
            w(f"var v{c} = {VEC}.Load(src + ({c} * cs));" if c else f"var v0 = {VEC}.Load(src);", ind + 1)
            for q in range(2):
                ky = ir - q
                if not 0 <= ky <= 2:
                    continue
                for j in range(n):
                    kx = c - j
                    if 0 <= kx <= 2:
                        w(f"a{q}{j} = {FMA}(v{c}, w{ky}{kx}, a{q}{j});", ind + 1)
        w("}", ind)
        w("", ind)
    w("if (relu)", ind)
    w("{", ind)
    for q in range(2):
        for j in range(n):
            w(f"a{q}{j} = {VEC}.Max(a{q}{j}, zero);", ind + 1)
    w("}", ind)
    w("", ind)
    for q in range(2):
        w(f"float* dst{q} = o{q} + ({xname} * ocs);" if xname != "0" else f"float* dst{q} = o{q};", ind)
        for j in range(n):
            w(f"a{q}{j}.Store(dst{q} + ({j} * ocs));" if j else f"a{q}0.Store(dst{q});", ind)
    w("}", ind - 1)


def generate(args):
    if args:
        raise ValueError(f"takes no arguments, got {args}")
    w = Writer()
    w("/// <summary>", 0)
    w("/// Two output rows at once (stride 1): the four input rows are loaded once for both, a third fewer loads than", 0)
    w("/// two single rows. Each output still accumulates its taps in (ky, kx) order, so the result is bit-identical", 0)
    w("/// to <see cref=\"RowS1\"/>. Needs inW >= 2.", 0)
    w("/// </summary>", 0)
    w("[MethodImpl(MethodImplOptions.AggressiveOptimization)]", 0)
    w("public static void RowPairS1(float* r0, float* r1, float* r2, float* r3, nint cs, int inW, float* w, float* bias, float* o0, float* o1, nint ocs, int outW, bool relu)", 0)
    w("{", 0)
    for ky in range(3):
        for kx in range(3):
            w(f"var w{ky}{kx} = {VEC}.Load(w + {(ky * 3 + kx) * 16});", 1)
    w(f"var bv = {VEC}.Load(bias);", 1)
    w(f"var zero = {VEC}<float>.Zero;", 1)
    w("int hi = Math.Max(Math.Min(inW - 1, outW), 1);", 1)
    emit(w, 1, 1, "0", 0)
    w("for (int ox = hi; ox < outW; ox++)", 1)
    w("{", 1)
    emit(w, 2, 1, "ox", 2)
    w("}", 1)
    w("", 1)
    w("int x = 1;", 1)
    for i, n in enumerate(BLOCKS):
        w(f"{'while' if i == 0 or n == 1 else 'if'} (x + {n} <= hi)", 1)
        w("{", 1)
        emit(w, 2, n, "x", None)
        w(f"x += {n};", 2)
        w("}", 1)
        if i < len(BLOCKS) - 1:
            w("", 1)
    w("}", 0)
    return w.lines


if __name__ == "__main__":
    main(generate, "depthwise_row_pairs.py")
