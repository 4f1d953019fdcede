namespace MobileOne.Data.Transforms;

/// <summary>Resampling used by the geometric operations of AutoAugment / RandAugment.</summary>
public enum Interpolation
{
    /// <summary>Nearest neighbour.</summary>
    Nearest,
    /// <summary>Bilinear.</summary>
    Bilinear,
}

/// <summary>
/// The photometric and geometric operations of AutoAugment and RandAugment on 8-bit images, with
/// PIL's semantics (ImageOps / ImageEnhance / Image.transform), which is what torchvision and timm call
/// for PIL inputs. Each returns a new image or changes the input in place, as documented.
/// </summary>
public static class ImageOps
{
    /// <summary>ImageOps.posterize: keep the top <paramref name="bits"/> bits of every value (in place).</summary>
    public static void Posterize(ByteImage image, int bits)
    {
        if (bits is < 0 or > 8)
        {
            throw new ArgumentOutOfRangeException(nameof(bits), bits, "Posterize keeps 0 to 8 bits.");
        }

        byte mask = (byte)(0xFF << (8 - bits));
        foreach (ref byte v in image.Span)
        {
            v &= mask;
        }
    }

    /// <summary>ImageOps.solarize: values at or above the threshold are inverted (in place).</summary>
    public static void Solarize(ByteImage image, double threshold)
    {
        Span<byte> lut = stackalloc byte[256];
        for (int i = 0; i < 256; i++)
        {
            lut[i] = (byte)(i < threshold ? i : 255 - i);
        }

        ApplyLut(image, lut);
    }

    /// <summary>timm's solarize_add: values below the threshold get min(255, v + add) (in place).</summary>
    public static void SolarizeAdd(ByteImage image, int add, int threshold = 128)
    {
        Span<byte> lut = stackalloc byte[256];
        for (int i = 0; i < 256; i++)
        {
            lut[i] = (byte)(i < threshold ? Math.Min(255, i + add) : i);
        }

        ApplyLut(image, lut);
    }

    /// <summary>ImageOps.invert (in place).</summary>
    public static void Invert(ByteImage image)
    {
        foreach (ref byte v in image.Span)
        {
            v = (byte)(255 - v);
        }
    }

    /// <summary>
    /// ImageOps.autocontrast with no cutoff, per channel: the lowest present value maps to 0 and the
    /// highest to 255 via int(v * scale + offset); a channel with a single value is left alone (in place).
    /// </summary>
    public static void AutoContrast(ByteImage image)
    {
        int c = image.Channels;
        Span<int> hist = stackalloc int[256];
        Span<byte> lut = stackalloc byte[256];
        for (int ch = 0; ch < c; ch++)
        {
            Histogram(image, ch, hist);
            int lo = 0, hi = 255;
            while (lo < 256 && hist[lo] == 0)
            {
                lo++;
            }

            while (hi >= 0 && hist[hi] == 0)
            {
                hi--;
            }

            if (hi <= lo)
            {
                continue;
            }

            double scale = 255.0 / (hi - lo);
            double offset = -lo * scale;
            for (int i = 0; i < 256; i++)
            {
                int v = (int)((i * scale) + offset);
                lut[i] = (byte)Math.Clamp(v, 0, 255);
            }

            ApplyLut(image, ch, lut);
        }
    }

    /// <summary>
    /// ImageOps.equalize, per channel: step = (pixels - count of the highest present value) / 256
    /// (integer division); value i maps to (step/2 + pixels below i) / step (in place).
    /// </summary>
    public static void Equalize(ByteImage image)
    {
        int c = image.Channels;
        Span<int> hist = stackalloc int[256];
        Span<byte> lut = stackalloc byte[256];
        for (int ch = 0; ch < c; ch++)
        {
            Histogram(image, ch, hist);
            int nonZero = 0, last = 0;
            long total = 0;
            for (int i = 0; i < 256; i++)
            {
                if (hist[i] != 0)
                {
                    nonZero++;
                    last = hist[i];
                    total += hist[i];
                }
            }

            if (nonZero <= 1)
            {
                continue;
            }

            long step = (total - last) / 256;
            if (step == 0)
            {
                continue;
            }

            long n = step / 2;
            for (int i = 0; i < 256; i++)
            {
                lut[i] = (byte)Math.Min(255, n / step);
                n += hist[i];
            }

            ApplyLut(image, ch, lut);
        }
    }

    /// <summary>ImageEnhance.Brightness: blend with black.</summary>
    public static void Brightness(ByteImage image, double factor)
    {
        foreach (ref byte v in image.Span)
        {
            v = BlendValue(0, v, factor);
        }
    }

    /// <summary>ImageEnhance.Color: blend with the image's grey version (L replicated).</summary>
    public static void Color(ByteImage image, double factor)
    {
        int c = image.Channels;
        if (c < 3)
        {
            return;
        }

        var span = image.Span;
        for (int p = 0; p < span.Length; p += c)
        {
            byte grey = Luma(span[p], span[p + 1], span[p + 2]);
            for (int ch = 0; ch < 3; ch++)
            {
                span[p + ch] = BlendValue(grey, span[p + ch], factor);
            }
        }
    }

    /// <summary>ImageEnhance.Contrast: blend with a flat image at the rounded mean of the grey version.</summary>
    public static void Contrast(ByteImage image, double factor)
    {
        int c = image.Channels;
        var span = image.Span;
        long sum = 0;
        int count = image.Width * image.Height;
        for (int p = 0; p < span.Length; p += c)
        {
            sum += c >= 3 ? Luma(span[p], span[p + 1], span[p + 2]) : span[p];
        }

        int mean = (int)(((double)sum / count) + 0.5);
        for (int p = 0; p < span.Length; p += c)
        {
            for (int ch = 0; ch < Math.Min(c, 3); ch++)
            {
                span[p + ch] = BlendValue((byte)mean, span[p + ch], factor);
            }
        }
    }

    /// <summary>
    /// ImageEnhance.Sharpness: blend with ImageFilter.SMOOTH (3x3 kernel 1 1 1 / 1 5 1 / 1 1 1, divided by
    /// 13, rounded; the border rows and columns are kept as they are). Returns a new image.
    /// </summary>
    public static ByteImage Sharpness(ByteImage image, double factor)
    {
        int c = image.Channels, w = image.Width, h = image.Height, stride = image.Stride;
        var output = image.Clone();
        if (w < 3 || h < 3)
        {
            return output;
        }

        var src = image.Pixels;
        var dst = output.Pixels;
        const float center = 5f / 13f, edge = 1f / 13f;
        for (int y = 1; y < h - 1; y++)
        {
            for (int x = 1; x < w - 1; x++)
            {
                for (int ch = 0; ch < c; ch++)
                {
                    int p = (y * stride) + (x * c) + ch;
                    float ss = 0.5f;
                    ss += (src[p - stride - c] * edge) + (src[p - stride] * edge) + (src[p - stride + c] * edge);
                    ss += (src[p - c] * edge) + (src[p] * center) + (src[p + c] * edge);
                    ss += (src[p + stride - c] * edge) + (src[p + stride] * edge) + (src[p + stride + c] * edge);
                    byte smooth = ss <= 0 ? (byte)0 : ss >= 255 ? (byte)255 : (byte)ss;
                    dst[p] = BlendValue(smooth, src[p], factor);
                }
            }
        }

        return output;
    }

    /// <summary>
    /// PIL's Image.transform(size, AFFINE, (a, b, c, d, e, f)): output pixel (x, y) samples the input at
    /// (a(x+0.5) + b(y+0.5) + c, d(x+0.5) + e(y+0.5) + f); samples outside the input take the fill.
    /// Nearest takes the pixel containing the point; bilinear interpolates between the four nearest
    /// centres (clamped at the border) and truncates. Returns a new image.
    /// </summary>
    public static ByteImage Affine(ByteImage image, ReadOnlySpan<double> matrix, Interpolation interpolation, ReadOnlySpan<byte> fill)
    {
        if (matrix.Length != 6)
        {
            throw new ArgumentException("An affine matrix has 6 coefficients.", nameof(matrix));
        }

        int c = image.Channels, w = image.Width, h = image.Height, stride = image.Stride;
        var output = ByteImage.Rent(w, h, c);
        var src = image.Pixels;
        var dst = output.Pixels;
        double a = matrix[0], b = matrix[1], cc = matrix[2], d = matrix[3], e = matrix[4], f = matrix[5];
        for (int y = 0; y < h; y++)
        {
            for (int x = 0; x < w; x++)
            {
                double xs = (a * (x + 0.5)) + (b * (y + 0.5)) + cc;
                double ys = (d * (x + 0.5)) + (e * (y + 0.5)) + f;
                int o = (y * stride) + (x * c);
                if (xs < 0 || ys < 0 || xs >= w || ys >= h)
                {
                    for (int ch = 0; ch < c; ch++)
                    {
                        dst[o + ch] = fill.Length == 0 ? (byte)0 : fill[Math.Min(ch, fill.Length - 1)];
                    }

                    continue;
                }

                if (interpolation == Interpolation.Nearest)
                {
                    int p = ((int)ys * stride) + ((int)xs * c);
                    for (int ch = 0; ch < c; ch++)
                    {
                        dst[o + ch] = src[p + ch];
                    }

                    continue;
                }

                double xi = xs - 0.5, yi = ys - 0.5;
                int x0 = (int)Math.Floor(xi), y0 = (int)Math.Floor(yi);
                double dx = xi - x0, dy = yi - y0;
                int xa = Math.Clamp(x0, 0, w - 1) * c, xb = Math.Clamp(x0 + 1, 0, w - 1) * c;
                int row0 = Math.Clamp(y0, 0, h - 1) * stride;
                bool hasRow1 = y0 + 1 >= 0 && y0 + 1 < h;
                int row1 = hasRow1 ? (y0 + 1) * stride : row0;
                for (int ch = 0; ch < c; ch++)
                {
                    double v1 = src[row0 + xa + ch] + ((src[row0 + xb + ch] - src[row0 + xa + ch]) * dx);
                    double v2 = hasRow1 ? src[row1 + xa + ch] + ((src[row1 + xb + ch] - src[row1 + xa + ch]) * dx) : v1;
                    dst[o + ch] = (byte)(v1 + ((v2 - v1) * dy));
                }
            }
        }

        return output;
    }

    /// <summary>
    /// PIL's Image.rotate(angle) without expand: counter-clockwise by <paramref name="degrees"/> about the
    /// image centre (w/2, h/2), matrix entries rounded to 15 decimals as PIL does. Returns a new image.
    /// </summary>
    public static ByteImage Rotate(ByteImage image, double degrees, Interpolation interpolation, ReadOnlySpan<byte> fill)
    {
        double angle = -degrees * Math.PI / 180.0;
        double cos = Math.Round(Math.Cos(angle), 15), sin = Math.Round(Math.Sin(angle), 15);
        double cx = image.Width / 2.0, cy = image.Height / 2.0;
        Span<double> m = [cos, sin, 0.0, -sin, cos, 0.0];
        m[2] = (cos * -cx) + (sin * -cy) + cx;
        m[5] = (-sin * -cx) + (cos * -cy) + cy;
        return Affine(image, m, interpolation, fill);
    }

    /// <summary>ITU-R 601-2 luma as PIL converts RGB to L: (299 R + 587 G + 114 B) / 1000 in 16-bit fixed point.</summary>
    public static byte Luma(byte r, byte g, byte b) => (byte)(((r * 19595) + (g * 38470) + (b * 7471) + 0x8000) >> 16);

    /// <summary>PIL's Image.blend(degenerate, image, factor) for one value: truncated and clamped.</summary>
    internal static byte BlendValue(byte degenerate, byte value, double factor)
    {
        float t = (float)(degenerate + ((float)factor * (value - degenerate)));
        return t <= 0f ? (byte)0 : t >= 255f ? (byte)255 : (byte)t;
    }

    private static void Histogram(ByteImage image, int channel, Span<int> hist)
    {
        hist.Clear();
        var span = image.Span;
        for (int p = channel; p < span.Length; p += image.Channels)
        {
            hist[span[p]]++;
        }
    }

    private static void ApplyLut(ByteImage image, ReadOnlySpan<byte> lut)
    {
        foreach (ref byte v in image.Span)
        {
            v = lut[v];
        }
    }

    private static void ApplyLut(ByteImage image, int channel, ReadOnlySpan<byte> lut)
    {
        var span = image.Span;
        for (int p = channel; p < span.Length; p += image.Channels)
        {
            span[p] = lut[span[p]];
        }
    }
}
