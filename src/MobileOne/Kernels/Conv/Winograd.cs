using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace MobileOne.Kernels.Conv;

/// <summary>
/// Winograd's minimal filtering F(2x2, 3x3) (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks",
/// 2016) for 3x3 stride-1 convolutions on NHWC activations with padded channel strides: each 2x2 block of outputs
/// ("tile") is A^T [(G g G^T) . (B^T d B)] A over the 4x4 input patch d, so one tile costs 16 multiplies per
/// (input, output) channel pair instead of 36. Across channels the 16 element-wise products are 16 GEMMs,
/// V_e[tiles, in] x U_e[in, out], which run on the library's packed GEMM; this class holds the three transforms.
/// The transforms use only 0, +-1 and +-1/2, so the rounding error stays within a few ulp of the products' sums.
/// </summary>
internal static unsafe class Winograd
{
    /// <summary>Elements of a transformed 4x4 tile: the number of GEMMs per convolution.</summary>
    public const int Elements = 16;

    /// <summary>Output rows and columns of one tile.</summary>
    public const int TileSize = 2;

    /// <summary>Tiles along an output dimension of <paramref name="outputs"/> pixels (the last tile may overhang).</summary>
    public static int Tiles(int outputs) => (outputs + TileSize - 1) / TileSize;

    /// <summary>
    /// U = G g G^T of every (output, input) kernel of an OIHW 3x3 weight, computed in double and rounded once, as
    /// 16 row-major [out, <paramref name="inStride"/>] matrices (element e = 4 * row + column of U; zero columns for
    /// the padded input channels): the B operands of the 16 products, one row per output channel as
    /// <see cref="Gemm.PackedPanels"/> takes them.
    /// </summary>
    public static float[][] TransformFilters(ReadOnlySpan<float> weight, int outChannels, int inChannels, int inStride)
    {
        if (weight.Length != (long)outChannels * inChannels * 9 || inStride < inChannels)
        {
            throw new ArgumentException($"A 3x3 weight of {outChannels} x {inChannels} kernels needs {(long)outChannels * inChannels * 9} values (got {weight.Length}) and an input stride of at least {inChannels} (got {inStride}).");
        }

        var u = new float[Elements][];
        for (int e = 0; e < Elements; e++)
        {
            u[e] = new float[(long)outChannels * inStride];
        }

        Span<double> g = stackalloc double[9];
        Span<double> gg = stackalloc double[12];
        for (int o = 0; o < outChannels; o++)
        {
            for (int i = 0; i < inChannels; i++)
            {
                for (int t = 0; t < 9; t++)
                {
                    g[t] = weight[(int)((((long)o * inChannels) + i) * 9) + t];
                }

                // G g: 4 x 3, G = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]].
                for (int x = 0; x < 3; x++)
                {
                    double g0 = g[x], g1 = g[3 + x], g2 = g[6 + x];
                    gg[x] = g0;
                    gg[3 + x] = 0.5 * (g0 + g1 + g2);
                    gg[6 + x] = 0.5 * (g0 - g1 + g2);
                    gg[9 + x] = g2;
                }

                // (G g) G^T: 4 x 4.
                for (int r = 0; r < 4; r++)
                {
                    double a0 = gg[(3 * r) + 0], a1 = gg[(3 * r) + 1], a2 = gg[(3 * r) + 2];
                    long at = ((long)o * inStride) + i;
                    u[(4 * r) + 0][at] = (float)a0;
                    u[(4 * r) + 1][at] = (float)(0.5 * (a0 + a1 + a2));
                    u[(4 * r) + 2][at] = (float)(0.5 * (a0 - a1 + a2));
                    u[(4 * r) + 3][at] = (float)a2;
                }
            }
        }

        return u;
    }

    /// <summary>Where the tiles of one convolution sit: the input and output images and the tile grid.</summary>
    /// <param name="Height">Input rows.</param>
    /// <param name="Width">Input columns.</param>
    /// <param name="InStride">Floats per input pixel (the padded channel count; a multiple of 16).</param>
    /// <param name="PadH">Zero rows above (and below) the input.</param>
    /// <param name="PadW">Zero columns left (and right) of the input.</param>
    /// <param name="OutHeight">Output rows.</param>
    /// <param name="OutWidth">Output columns.</param>
    public readonly record struct Geometry(int Height, int Width, int InStride, int PadH, int PadW, int OutHeight, int OutWidth)
    {
        /// <summary>Tile rows per image.</summary>
        public int TilesY => Tiles(OutHeight);

        /// <summary>Tile columns per image.</summary>
        public int TilesX => Tiles(OutWidth);

        /// <summary>Tiles per image.</summary>
        public int TilesPerImage => TilesY * TilesX;

        /// <summary>Tile <paramref name="t"/> of all images (row-major within its image): the image and its first output row and column.</summary>
        public (long Image, int Row, int Column) Origin(long t)
        {
            long n = t / TilesPerImage;
            int rem = (int)(t - (n * TilesPerImage));
            int ty = rem / TilesX;
            return (n, ty * TileSize, (rem - (ty * TilesX)) * TileSize);
        }
    }

    /// <summary>
    /// V = B^T d B for tiles [t0, t1) of all images (tile t is tile t % tiles-per-image of image t / tiles-per-image,
    /// row-major), every channel of the padded stride: V_e of tile t0 + j, channel c goes to
    /// <c>v[e * elementStride + j * InStride + c]</c>. Inputs outside the image read as zero (the convolution's zero
    /// padding and the overhang of the last tiles).
    /// </summary>
    public static void TransformInput(Isa isa, float* input, in Geometry g, long t0, long t1, float* v, long elementStride)
    {
        switch (isa)
        {
            case Isa.Avx512: TransformInput<Vector512<float>, Lanes512>(input, g, t0, t1, v, elementStride); break;
            case Isa.Avx2: TransformInput<Vector256<float>, Lanes256>(input, g, t0, t1, v, elementStride); break;
            default: TransformInput<float, Lanes1>(input, g, t0, t1, v, elementStride); break;
        }
    }

    /// <summary>
    /// Y = A^T M A for <paramref name="count"/> tiles from tile <paramref name="t0"/> on, channels [c0, c0 +
    /// <paramref name="channels"/>) (a multiple of 16): M_e of local tile j and channel c0 + c is
    /// <c>m[e * elementStride + j * ldm + c]</c>. Each output pixel inside the image gets init + Y, init being the bias
    /// (or, accumulating, what the output already holds), then the residual (if any) and ReLU (if asked).
    /// </summary>
    public static void TransformOutput(
        Isa isa, float* m, nint elementStride, nint ldm, long t0, int count, in Geometry g, int c0, int channels,
        float* output, nint outStride, float* bias, bool accumulate, float* residual, nint residualStride, bool relu)
    {
        var o = new OutputArgs(m, elementStride, ldm, t0, count, c0, channels, output, outStride, bias, accumulate, residual, residualStride, relu);
        switch (isa)
        {
            case Isa.Avx512: TransformOutput<Vector512<float>, Lanes512>(o, g); break;
            case Isa.Avx2: TransformOutput<Vector256<float>, Lanes256>(o, g); break;
            default: TransformOutput<float, Lanes1>(o, g); break;
        }
    }

    /// <summary>The operands of <see cref="TransformOutput"/>, passed by reference to the width-specialized loops.</summary>
    private readonly struct OutputArgs(
        float* m, nint elementStride, nint ldm, long t0, int count, int c0, int channels, float* output, nint outStride,
        float* bias, bool accumulate, float* residual, nint residualStride, bool relu)
    {
        public readonly float* M = m;
        public readonly nint ElementStride = elementStride;
        public readonly nint Ldm = ldm;
        public readonly long T0 = t0;
        public readonly int Count = count;
        public readonly int C0 = c0;
        public readonly int Channels = channels;
        public readonly float* Output = output;
        public readonly nint OutStride = outStride;
        public readonly float* Bias = bias;
        public readonly bool Accumulate = accumulate;
        public readonly float* Residual = residual;
        public readonly nint ResidualStride = residualStride;
        public readonly bool Relu = relu;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void TransformInput<TV, TL>(float* input, in Geometry g, long t0, long t1, float* v, long elementStride)
        where TV : struct
        where TL : struct, ILanes<TV>
    {
        int cs = g.InStride;
        long imageFloats = (long)g.Height * g.Width * cs;
        float** rows = stackalloc float*[16];
        for (long t = t0; t < t1; t++)
        {
            var (n, oy0, ox0) = g.Origin(t);
            int iy0 = oy0 - g.PadH, ix0 = ox0 - g.PadW;
            float* image = input + (n * imageFloats);

            // The 16 taps of the patch, null outside the image (read as zero).
            for (int r = 0; r < 4; r++)
            {
                int iy = iy0 + r;
                for (int col = 0; col < 4; col++)
                {
                    int ix = ix0 + col;
                    rows[(4 * r) + col] = iy >= 0 && iy < g.Height && ix >= 0 && ix < g.Width ? image + ((((long)iy * g.Width) + ix) * cs) : null;
                }
            }

            float* dst = v + ((t - t0) * cs);
            for (int c = 0; c < cs; c += TL.Count)
            {
                // B^T d, column by column (B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]); then the
                // same combination along each row of the result, (B^T d) B, stored as elements 4 r .. 4 r + 3.
                InputColumn<TV, TL>(rows[0], rows[4], rows[8], rows[12], c, out TV w00, out TV w10, out TV w20, out TV w30);
                InputColumn<TV, TL>(rows[1], rows[5], rows[9], rows[13], c, out TV w01, out TV w11, out TV w21, out TV w31);
                InputColumn<TV, TL>(rows[2], rows[6], rows[10], rows[14], c, out TV w02, out TV w12, out TV w22, out TV w32);
                InputColumn<TV, TL>(rows[3], rows[7], rows[11], rows[15], c, out TV w03, out TV w13, out TV w23, out TV w33);
                float* at = dst + c;
                InputRow<TV, TL>(at, elementStride, w00, w01, w02, w03);
                InputRow<TV, TL>(at + (4 * elementStride), elementStride, w10, w11, w12, w13);
                InputRow<TV, TL>(at + (8 * elementStride), elementStride, w20, w21, w22, w23);
                InputRow<TV, TL>(at + (12 * elementStride), elementStride, w30, w31, w32, w33);
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void InputColumn<TV, TL>(float* p0, float* p1, float* p2, float* p3, int c, out TV w0, out TV w1, out TV w2, out TV w3)
        where TV : struct
        where TL : struct, ILanes<TV>
    {
        TV d0 = Tap<TV, TL>(p0, c), d1 = Tap<TV, TL>(p1, c), d2 = Tap<TV, TL>(p2, c), d3 = Tap<TV, TL>(p3, c);
        w0 = TL.Subtract(d0, d2);
        w1 = TL.Add(d1, d2);
        w2 = TL.Subtract(d2, d1);
        w3 = TL.Subtract(d1, d3);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void InputRow<TV, TL>(float* at, long elementStride, TV a0, TV a1, TV a2, TV a3)
        where TV : struct
        where TL : struct, ILanes<TV>
    {
        TL.Store(at, TL.Subtract(a0, a2));
        TL.Store(at + elementStride, TL.Add(a1, a2));
        TL.Store(at + (2 * elementStride), TL.Subtract(a2, a1));
        TL.Store(at + (3 * elementStride), TL.Subtract(a1, a3));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static TV Tap<TV, TL>(float* pixel, int c)
        where TV : struct
        where TL : struct, ILanes<TV> => pixel == null ? TL.Zero : TL.Load(pixel + c);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void TransformOutput<TV, TL>(in OutputArgs a, in Geometry g)
        where TV : struct
        where TL : struct, ILanes<TV>
    {
        long outImage = (long)g.OutHeight * g.OutWidth;
        float** pixels = stackalloc float*[4];
        float** residuals = stackalloc float*[4];
        for (int j = 0; j < a.Count; j++)
        {
            long t = a.T0 + j;
            var (n, oy0, ox0) = g.Origin(t);
            for (int q = 0; q < 4; q++)
            {
                int oy = oy0 + (q >> 1), ox = ox0 + (q & 1);
                bool inside = oy < g.OutHeight && ox < g.OutWidth;
                long pixel = (n * outImage) + ((long)oy * g.OutWidth) + ox;
                pixels[q] = inside ? a.Output + (pixel * a.OutStride) + a.C0 : null;
                residuals[q] = inside && a.Residual != null ? a.Residual + (pixel * a.ResidualStride) + a.C0 : null;
            }

            float* src = a.M + (j * a.Ldm);
            nint es = a.ElementStride;
            for (int c = 0; c < a.Channels; c += TL.Count)
            {
                // A^T M over each column of the 4 x 4 M (A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]), then the same along the
                // two rows of the result.
                float* e = src + c;
                OutputColumn<TV, TL>(e, es, out TV u00, out TV u10);
                OutputColumn<TV, TL>(e + es, es, out TV u01, out TV u11);
                OutputColumn<TV, TL>(e + (2 * es), es, out TV u02, out TV u12);
                OutputColumn<TV, TL>(e + (3 * es), es, out TV u03, out TV u13);
                Store<TV, TL>(a, pixels[0], residuals[0], c, TL.Add(TL.Add(u00, u01), u02));
                Store<TV, TL>(a, pixels[1], residuals[1], c, TL.Subtract(TL.Subtract(u01, u02), u03));
                Store<TV, TL>(a, pixels[2], residuals[2], c, TL.Add(TL.Add(u10, u11), u12));
                Store<TV, TL>(a, pixels[3], residuals[3], c, TL.Subtract(TL.Subtract(u11, u12), u13));
            }
        }
    }

    /// <summary>Column <c>e</c> of M (elements e, e + 4, e + 8, e + 12) times A^T's two rows.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void OutputColumn<TV, TL>(float* e, nint es, out TV top, out TV bottom)
        where TV : struct
        where TL : struct, ILanes<TV>
    {
        TV m0 = TL.Load(e), m1 = TL.Load(e + (4 * es)), m2 = TL.Load(e + (8 * es)), m3 = TL.Load(e + (12 * es));
        top = TL.Add(TL.Add(m0, m1), m2);
        bottom = TL.Subtract(TL.Subtract(m1, m2), m3);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store<TV, TL>(in OutputArgs a, float* pixel, float* residual, int c, TV y)
        where TV : struct
        where TL : struct, ILanes<TV>
    {
        if (pixel == null)
        {
            return;
        }

        TV init = a.Accumulate ? TL.Load(pixel + c) : TL.Load(a.Bias + a.C0 + c);
        y = TL.Add(init, y);
        if (residual != null)
        {
            y = TL.Add(y, TL.Load(residual + c));
        }

        TL.Store(pixel + c, a.Relu ? TL.Relu(y) : y);
    }
}
