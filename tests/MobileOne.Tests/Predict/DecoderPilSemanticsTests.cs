using MobileOne.Data;
using MobileOne.Imaging;

namespace MobileOne.Tests.Predict;

/// <summary>What SkiaImageDecoder does where Skia alone would differ from PIL's Image.open(p).convert("RGB").</summary>
public sealed class DecoderPilSemanticsTests
{
    private static readonly ImageDecodeOptions AsPil = new() { ApplyExifOrientation = false };

    [Fact]
    public void SixteenBitGreyIsClippedNotScaled()
    {
        // PIL opens 16-bit grey as mode "I"; convert("RGB") clips: 193 stays 193, 9800 becomes 255.
        // Skia alone gives the high byte (0 and 38).
        using var image = SkiaImageDecoder.Instance.Decode(PilPredictReference.ImagePath("gray16.png"), 3, AsPil);
        Assert.Equal([255, 255, 255], image.Pixels[..3]);
        int p = ((10 * image.Width) + 0) * 3;
        Assert.Equal([193, 193, 193], image.Pixels[p..(p + 3)]);

        // The same samples Adam7-interlaced, rows filtered with all five PNG filters.
        using var interlaced = SkiaImageDecoder.Instance.Decode(PilPredictReference.ImagePath("gray16_adam7.png"), 3, AsPil);
        Assert.Equal(image.Span.ToArray(), interlaced.Span.ToArray());
        using var grey = SkiaImageDecoder.Instance.Decode(PilPredictReference.ImagePath("gray16.png"), 1, AsPil);
        Assert.Equal(193, grey.Pixels[10 * grey.Width]);
    }

    [Fact]
    public void AlphaIsDroppedNotPremultiplied()
    {
        // rgba.png has alpha 0 in its top-left block over ordinary colours; la.png likewise over grey.
        using var rgb = SkiaImageDecoder.Instance.Decode(PilPredictReference.ImagePath("rgba.png"), 3, AsPil);
        using var rgba = SkiaImageDecoder.Instance.Decode(PilPredictReference.ImagePath("rgba.png"), 4, AsPil);
        Assert.Equal(0, rgba.Pixels[3]);
        Assert.Equal(rgba.Pixels[..3], rgb.Pixels[..3]);
        Assert.NotEqual([0, 0, 0], rgb.Pixels[..3]);
        using var la = SkiaImageDecoder.Instance.Decode(PilPredictReference.ImagePath("la.png"), 3, AsPil);
        Assert.NotEqual(0, la.Pixels[0]);
    }

    [Theory]
    [InlineData("rgb.png")]
    [InlineData("rgb.jpg")]
    [InlineData("gray16.png")]
    public void TruncatedFilesAreReportedAsTruncated(string file)
    {
        byte[] bytes = File.ReadAllBytes(PilPredictReference.ImagePath(file));
        var e = Assert.Throws<ImageDecodeException>(() => SkiaImageDecoder.Instance.Decode(bytes[..(bytes.Length * 2 / 3)], "cut." + file, 3, AsPil));
        Assert.Equal("cut." + file, e.FilePath);
        Assert.Contains("truncated", e.Problem);
    }

    [Fact]
    public void EmptyGarbageAndOversizedInputsAreRefusedWithTheirReason()
    {
        var e = Assert.Throws<ImageDecodeException>(() => SkiaImageDecoder.Instance.Decode([], "empty.png", 3, AsPil));
        Assert.Contains("empty", e.Problem);
        e = Assert.Throws<ImageDecodeException>(() => SkiaImageDecoder.Instance.Decode("not an image at all"u8.ToArray(), "x.jpg", 3, AsPil));
        Assert.Contains("not a decodable image", e.Problem);
        e = Assert.Throws<ImageDecodeException>(() => SkiaImageDecoder.Instance.Decode(
            PilPredictReference.ImagePath("large.png"), 3, AsPil with { MaxPixels = 1_000_000 }));
        Assert.Contains("4000x3000 = 12000000 pixels, more than the 1000000 this decoder accepts", e.Problem);
    }
}
