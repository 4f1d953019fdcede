using System.Buffers;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace MobileOne.Data.Transforms;

/// <summary>The separable filters of <see cref="Resample"/>: PIL's BILINEAR and BICUBIC.</summary>
public enum ResampleFilter
{
    /// <summary>PIL's triangle filter (support 1).</summary>
    Bilinear,

    /// <summary>PIL's cubic convolution with a = -0.5 (support 2); results are clipped to 0..255.</summary>
    Bicubic,
}

/// <summary>The filter names of timm's configurations and the CLI's --interpolation, in one place.</summary>
public static class ResampleFilters
{
    /// <summary>"bilinear" or "bicubic" (any case) as its filter, or null for any other name.</summary>
    public static ResampleFilter? TryParse(string? name) => name?.ToLowerInvariant() switch
    {
        "bilinear" => ResampleFilter.Bilinear,
        "bicubic" => ResampleFilter.Bicubic,
        _ => null,
    };

    /// <summary><see cref="TryParse"/>, refusing any other name.</summary>
    public static ResampleFilter Parse(string name) =>
        TryParse(name) ?? throw new ArgumentException($"Unknown interpolation '{name}'; expected bilinear or bicubic.", nameof(name));
}

/// <summary>
/// Separable resampling of 8-bit images with PIL's semantics (Image.resize with BILINEAR or BICUBIC, no
/// reducing_gap): a filter whose support widens with the downscale factor (so downscaling is
/// antialiased), pixel centres at +0.5, the window clipped at the edges and renormalized, a horizontal
/// pass then a vertical pass, each rounded to 8 bits through 22-bit fixed-point weights.
/// </summary>
public static class Resample
{
    private const int PrecisionBits = 32 - 8 - 2;

    /// <summary>
    /// Resizes the box (left, top, width, height) of <paramref name="source"/> to outWidth x outHeight,
    /// as PIL's image.crop(box).resize(size, BILINEAR) does: the filter sees only the box.
    /// </summary>
    public static ByteImage Bilinear(ByteImage source, int left, int top, int width, int height, int outWidth, int outHeight) =>
        Resize(source, left, top, width, height, outWidth, outHeight, ResampleFilter.Bilinear);

    /// <summary>Resizes the whole image with PIL's BILINEAR.</summary>
    public static ByteImage Bilinear(ByteImage source, int outWidth, int outHeight) =>
        Resize(source, outWidth, outHeight, ResampleFilter.Bilinear);

    /// <summary>Resizes the whole image, as PIL's image.resize(size, filter) does.</summary>
    public static ByteImage Resize(ByteImage source, int outWidth, int outHeight, ResampleFilter filter)
    {
        ArgumentNullException.ThrowIfNull(source);
        return Resize(source, 0, 0, source.Width, source.Height, outWidth, outHeight, filter);
    }

    /// <summary>
    /// Resizes the box (left, top, width, height) of <paramref name="source"/> to outWidth x outHeight,
    /// as PIL's image.crop(box).resize(size, filter) does: the filter sees only the box.
    /// </summary>
    public static ByteImage Resize(ByteImage source, int left, int top, int width, int height, int outWidth, int outHeight, ResampleFilter filter)
    {
        ArgumentNullException.ThrowIfNull(source);
        if (left < 0 || top < 0 || width <= 0 || height <= 0 || left + width > source.Width || top + height > source.Height)
        {
            throw new ArgumentException($"Box (left {left}, top {top}, {width}x{height}) is not inside the {source.Width}x{source.Height} image.");
        }

        ByteImage.CheckSize(outWidth, outHeight, source.Channels);
        int c = source.Channels;
        bool horizontal = outWidth != width;
        bool vertical = outHeight != height;
        var (yStart, yCount, yWeights, yK) = Coefficients(height, outHeight, filter);

        // Rows of the box the vertical pass reads (PIL resamples only these horizontally).
        int firstRow = vertical ? yStart[0] : 0;
        int lastRow = vertical ? yStart[outHeight - 1] + yCount[outHeight - 1] : height;

        ByteImage? temp = null;
        ReadOnlySpan<byte> rows;
        int rowsStride;
        int rowsLeft;
        if (horizontal)
        {
            var (xStart, xCount, xWeights, xK) = Coefficients(width, outWidth, filter);
            temp = ByteImage.Rent(outWidth, lastRow - firstRow, c);
            var src = source.Pixels;
            var dst = temp.Pixels;
            for (int y = firstRow; y < lastRow; y++)
            {
                int rowBase = ((top + y) * source.Stride) + (left * c);
                int outBase = (y - firstRow) * temp.Stride;
                for (int ox = 0; ox < outWidth; ox++)
                {
                    int start = xStart[ox], count = xCount[ox], kBase = ox * xK;
                    for (int ch = 0; ch < c; ch++)
                    {
                        int ss = 1 << (PrecisionBits - 1);
                        int p = rowBase + (start * c) + ch;
                        for (int k = 0; k < count; k++, p += c)
                        {
                            ss += src[p] * xWeights[kBase + k];
                        }

                        dst[outBase + (ox * c) + ch] = Clip8(ss);
                    }
                }
            }

            rows = temp.Span;
            rowsStride = temp.Stride;
            rowsLeft = 0;
        }
        else
        {
            // Horizontal pass skipped: the vertical pass reads the box straight from the source.
            rows = source.Span.Slice(top * source.Stride);
            rowsStride = source.Stride;
            rowsLeft = left * c;
            firstRow = 0;
        }

        var output = ByteImage.Rent(outWidth, outHeight, c);
        int lineLength = outWidth * c;
        if (vertical)
        {
            int[] acc = ArrayPool<int>.Shared.Rent(lineLength);
            for (int oy = 0; oy < outHeight; oy++)
            {
                int start = yStart[oy] - firstRow, count = yCount[oy], kBase = oy * yK;
                var sums = acc.AsSpan(0, lineLength);
                sums.Fill(1 << (PrecisionBits - 1));
                for (int k = 0; k < count; k++)
                {
                    AccumulateRow(rows.Slice(((start + k) * rowsStride) + rowsLeft, lineLength), yWeights[kBase + k], sums);
                }

                var line = output.Row(oy);
                for (int i = 0; i < lineLength; i++)
                {
                    line[i] = Clip8(sums[i]);
                }
            }

            ArrayPool<int>.Shared.Return(acc);
        }
        else
        {
            for (int oy = 0; oy < outHeight; oy++)
            {
                rows.Slice((oy * rowsStride) + rowsLeft, lineLength).CopyTo(output.Row(oy));
            }
        }

        temp?.Dispose();
        return output;
    }

    /// <summary>
    /// PIL's precompute_coeffs for <paramref name="filter"/> over [0, inSize) -> outSize, quantized to
    /// 22-bit fixed point (round half away from zero).
    /// </summary>
    internal static (int[] Start, int[] Count, int[] Weights, int KSize) Coefficients(int inSize, int outSize, ResampleFilter filter = ResampleFilter.Bilinear)
    {
        double scale = (double)inSize / outSize;
        double filterScale = Math.Max(scale, 1.0);
        double support = Support(filter) * filterScale;
        int kSize = ((int)Math.Ceiling(support) * 2) + 1;
        var start = new int[outSize];
        var count = new int[outSize];
        var weights = new int[outSize * kSize];
        Span<double> w = stackalloc double[kSize];
        for (int xx = 0; xx < outSize; xx++)
        {
            double center = (xx + 0.5) * scale;
            double inverse = 1.0 / filterScale;
            int xmin = Math.Max((int)(center - support + 0.5), 0);
            int xmax = Math.Min((int)(center + support + 0.5), inSize) - xmin;
            double sum = 0;
            for (int x = 0; x < xmax; x++)
            {
                w[x] = Weight(filter, (x + xmin - center + 0.5) * inverse);
                sum += w[x];
            }

            for (int x = 0; x < xmax; x++)
            {
                double k = sum != 0.0 ? w[x] / sum : w[x];
                weights[(xx * kSize) + x] = (int)(k < 0 ? -0.5 + (k * (1 << PrecisionBits)) : 0.5 + (k * (1 << PrecisionBits)));
            }

            start[xx] = xmin;
            count[xx] = xmax;
        }

        return (start, count, weights, kSize);
    }

    private static double Support(ResampleFilter filter) => filter switch
    {
        ResampleFilter.Bilinear => 1.0,
        ResampleFilter.Bicubic => 2.0,
        _ => throw new ArgumentOutOfRangeException(nameof(filter), filter, "Unknown resampling filter."),
    };

    /// <summary>PIL's filter functions (Resample.c: bilinear_filter, bicubic_filter with a = -0.5).</summary>
    private static double Weight(ResampleFilter filter, double x)
    {
        x = Math.Abs(x);
        if (filter == ResampleFilter.Bilinear)
        {
            return x < 1.0 ? 1.0 - x : 0.0;
        }

        const double a = -0.5;
        if (x < 1.0)
        {
            return ((((a + 2.0) * x) - (a + 3.0)) * x * x) + 1;
        }

        return x < 2.0 ? ((((x - 5) * x) + 8) * x - 4) * a : 0.0;
    }

    /// <summary>sums[i] += row[i] * weight; integer arithmetic, so the order of taps cannot change a result.</summary>
    private static void AccumulateRow(ReadOnlySpan<byte> row, int weight, Span<int> sums)
    {
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var w = Vector256.Create(weight);
            ref byte src = ref MemoryMarshal.GetReference(row);
            ref int dst = ref MemoryMarshal.GetReference(sums);
            for (; i + 16 <= row.Length; i += 16)
            {
                var bytes = Vector128.LoadUnsafe(ref src, (nuint)i);
                var (lo, hi) = Vector128.Widen(bytes);
                var a = Vector256.Create(Vector128.WidenLower(lo), Vector128.WidenUpper(lo)).AsInt32();
                var b = Vector256.Create(Vector128.WidenLower(hi), Vector128.WidenUpper(hi)).AsInt32();
                (Vector256.LoadUnsafe(ref dst, (nuint)i) + (a * w)).StoreUnsafe(ref dst, (nuint)i);
                (Vector256.LoadUnsafe(ref dst, (nuint)(i + 8)) + (b * w)).StoreUnsafe(ref dst, (nuint)(i + 8));
            }
        }

        for (; i < row.Length; i++)
        {
            sums[i] += row[i] * weight;
        }
    }

    private static byte Clip8(int ss)
    {
        int v = ss >> PrecisionBits;
        return (byte)(v < 0 ? 0 : v > 255 ? 255 : v);
    }
}
