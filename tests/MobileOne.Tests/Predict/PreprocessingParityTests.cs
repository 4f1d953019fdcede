using MobileOne.Classification;
using MobileOne.Data;
using MobileOne.Imaging;
using Xunit.Abstractions;

namespace MobileOne.Tests.Predict;

/// <summary>
/// Decoding (SkiaSharp) + preprocessing (the library's PIL-semantics transforms) against timm's eval pipeline run
/// with PIL 9.4 and torchvision 0.14 on the same files, for every image mode predict meets.
/// </summary>
public sealed class PreprocessingParityTests(ITestOutputHelper output)
{
    public static TheoryData<string> CaseNames() => new(PilPredictReference.Cases.Keys.Order(StringComparer.Ordinal));

    internal static float[] Preprocess(PilCase c) => Preprocess(c, c.Preprocessing);

    internal static float[] Preprocess(PilCase c, ImagePreprocessing p)
    {
        var transform = p.CreateTransform();
        using var image = SkiaImageDecoder.Instance.Decode(c.FilePath, p.Channels, new ImageDecodeOptions { ApplyExifOrientation = c.ExifTranspose });
        var values = new float[transform.SampleLength];
        var random = new SampleRandom(0);
        transform.Apply(image, ref random, values);
        return values;
    }

    [Theory]
    [MemberData(nameof(CaseNames))]
    public void MatchesPil(string name)
    {
        var c = PilPredictReference.Case(name);
        var ours = Preprocess(c);
        Assert.Equal(c.Expected.Length, ours.Length);
        float maxDiff = 0;
        int differing = 0;
        for (int i = 0; i < ours.Length; i++)
        {
            float d = Math.Abs(ours[i] - c.Expected[i]);
            maxDiff = Math.Max(maxDiff, d);
            differing += d > 1e-5f ? 1 : 0;
        }

        // PNG and GIF: the same 8-bit pixels, so only float rounding may differ (measured: 0, and 6e-8 where
        // Python computed the Fashion-MNIST pad value in double). JPEG: both decoders are libjpeg-turbo with the
        // same IDCT and upsampling, measured equal too; allowed one 8-bit level after Normalize (1 / 255 / 0.224)
        // so that another libjpeg-turbo build cannot fail the suite, while EXIF, CMYK or colour mistakes (tens of
        // levels) still do.
        output.WriteLine($"{name} ({c.PilMode}): max |diff| {maxDiff:g4}, {differing} of {ours.Length} values differ");
        float tolerance = c.IsJpeg ? 1f / 255 / 0.224f : 1e-6f;
        Assert.True(maxDiff <= tolerance, $"{name} ({c.PilMode}): max |diff| {maxDiff} > {tolerance}");
    }

    /// <summary>
    /// A registry architecture's own normalization (MobileNet-V1's mean and std 0.5) on the PIL reference: Normalize is
    /// affine per channel, so timm's values with 0.5/0.5 follow from the ImageNet-normalized reference exactly.
    /// </summary>
    [Fact]
    public void A_zoo_models_normalization_follows_its_pretrained_configuration()
    {
        var c = PilPredictReference.Case("rgb_png.s24_bicubic_0.9");
        var mobilenet = MobileOne.Models.ModelRegistry.Get("mobilenetv1_100").Create();
        var p = ImagePreprocessing.ForModel(mobilenet) with { Size = 24, CropPct = 0.9 };
        Assert.Equal((MobileOne.Data.Transforms.ResampleFilter.Bicubic, 0.5, 0.5), (p.Interpolation, p.Mean[1], p.Std[2]));
        var ours = Preprocess(c, p);
        double[] mean = [0.485, 0.456, 0.406], std = [0.229, 0.224, 0.225];
        int plane = 24 * 24;
        for (int i = 0; i < ours.Length; i++)
        {
            int ch = i / plane;
            double pixel = (c.Expected.Data[i] * std[ch]) + mean[ch];
            Assert.True(Math.Abs(ours[i] - ((pixel - 0.5) / 0.5)) <= 1e-5, $"value {i}: {ours[i]} vs {(pixel - 0.5) / 0.5}");
        }

        Assert.Contains("mean (0.5, 0.5, 0.5) std (0.5, 0.5, 0.5)", p.Describe());
    }

    [Fact]
    public void EveryImageModeIsCovered()
    {
        var modes = PilPredictReference.Cases.Values.Select(c => c.PilMode).ToHashSet();
        Assert.Superset(new HashSet<string> { "RGB", "RGBA", "LA", "L", "P", "1", "I", "CMYK" }, modes);
        var files = PilPredictReference.Cases.Values.Select(c => c.File).ToHashSet();
        Assert.Superset(new HashSet<string> { "large.png", "tiny1x1.png", "tiny3x1.png", "gray16_adam7.png", "rgb_icc.png", "rgb_gamma.png", "exif6.jpg" }, files);
    }

    [Fact]
    public void ExifOrientationIsAppliedOnlyWhenAsked()
    {
        var plain = PilPredictReference.Case("exif6_jpg.s24");
        var turned = PilPredictReference.Case("exif6_jpg.s24_transposed");
        Assert.Equal(plain.Expected.Data, Preprocess(plain));
        Assert.Equal(turned.Expected.Data, Preprocess(turned));
        Assert.NotEqual(plain.Expected.Data, turned.Expected.Data);
    }

    [Fact]
    public void ColourProfilesAndGammaAreIgnored()
    {
        // The same pixels with a linear-gamma ICC profile, and with gAMA 1.0 + odd cHRM: PIL ignores both.
        var plain = Preprocess(PilPredictReference.Case("rgb_png.s24"));
        Assert.Equal(plain, Preprocess(PilPredictReference.Case("rgb_icc_png.s24")));
        Assert.Equal(plain, Preprocess(PilPredictReference.Case("rgb_gamma_png.s24")));
    }
}
