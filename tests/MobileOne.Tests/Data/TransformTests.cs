using MobileOne.Data;
using MobileOne.Data.Transforms;
using static MobileOne.Tests.Data.DataTestHelpers;

namespace MobileOne.Tests.Data;

public class TransformTests
{
    private static readonly byte[] MeanFill = [124, 116, 104];

    [Theory]
    [InlineData(nameof(PilReference.ResizeDown7x5), 0, 0, 13, 11, 7, 5)]
    [InlineData(nameof(PilReference.ResizeUp29x23), 0, 0, 13, 11, 29, 23)]
    [InlineData(nameof(PilReference.CropResize5x6), 2, 1, 9, 8, 5, 6)]
    [InlineData(nameof(PilReference.ResizeVertical13x6), 0, 0, 13, 11, 13, 6)]
    [InlineData(nameof(PilReference.ResizeHorizontal4x11), 0, 0, 13, 11, 4, 11)]
    public void BilinearResizeMatchesPillowExactly(string reference, int left, int top, int width, int height, int outW, int outH)
    {
        using var source = FormulaImage();
        using var resized = Resample.Bilinear(source, left, top, width, height, outW, outH);
        AssertClose(Reference(reference), resized);
    }

    [Fact]
    public void BilinearResizeAgreesWithADoubleTriangleFilter()
    {
        // Textbook antialiased bilinear in double: weight(t) = max(0, 1 - |t| / s) over the source pixel
        // centres, s = max(1, in/out), centre (o + 0.5) * in/out, normalized. Rounding twice (after each
        // pass, as PIL does) may move a value by one.
        using var source = FormulaImage();
        foreach (var (ow, oh) in new[] { (5, 4), (20, 17), (13, 3) })
        {
            using var ours = Resample.Bilinear(source, ow, oh);
            double[] horizontal = new double[ow * source.Height * 3];
            for (int y = 0; y < source.Height; y++)
            {
                for (int ox = 0; ox < ow; ox++)
                {
                    var w = Weights(source.Width, ow, ox);
                    for (int c = 0; c < 3; c++)
                    {
                        horizontal[(((y * ow) + ox) * 3) + c] = w.Sum(p => p.Weight * source.Pixels[(((y * source.Width) + p.Index) * 3) + c]);
                    }
                }
            }

            for (int oy = 0; oy < oh; oy++)
            {
                var w = Weights(source.Height, oh, oy);
                for (int ox = 0; ox < ow; ox++)
                {
                    for (int c = 0; c < 3; c++)
                    {
                        double expected = w.Sum(p => p.Weight * horizontal[(((p.Index * ow) + ox) * 3) + c]);
                        Assert.InRange(ours.Pixels[(((oy * ow) + ox) * 3) + c], Math.Floor(expected - 1), Math.Ceiling(expected + 1));
                    }
                }
            }
        }
    }

    [Theory]
    [InlineData(nameof(PilReference.Posterize3))]
    [InlineData(nameof(PilReference.Solarize128))]
    [InlineData(nameof(PilReference.AutoContrast))]
    [InlineData(nameof(PilReference.Equalize))]
    [InlineData(nameof(PilReference.Invert))]
    [InlineData(nameof(PilReference.Color1_7))]
    [InlineData(nameof(PilReference.Color0_3))]
    [InlineData(nameof(PilReference.Contrast1_4))]
    [InlineData(nameof(PilReference.Contrast0_2))]
    [InlineData(nameof(PilReference.Brightness1_3))]
    [InlineData(nameof(PilReference.Sharpness1_8))]
    [InlineData(nameof(PilReference.Sharpness0_1))]
    public void PhotometricOperationsMatchPillow(string reference)
    {
        var image = FormulaImage(narrow: reference is nameof(PilReference.AutoContrast) or nameof(PilReference.Equalize));
        ByteImage result = image;
        switch (reference)
        {
            case nameof(PilReference.Posterize3): ImageOps.Posterize(image, 3); break;
            case nameof(PilReference.Solarize128): ImageOps.Solarize(image, 128); break;
            case nameof(PilReference.AutoContrast): ImageOps.AutoContrast(image); break;
            case nameof(PilReference.Equalize): ImageOps.Equalize(image); break;
            case nameof(PilReference.Invert): ImageOps.Invert(image); break;
            case nameof(PilReference.Color1_7): ImageOps.Color(image, 1.7); break;
            case nameof(PilReference.Color0_3): ImageOps.Color(image, 0.3); break;
            case nameof(PilReference.Contrast1_4): ImageOps.Contrast(image, 1.4); break;
            case nameof(PilReference.Contrast0_2): ImageOps.Contrast(image, 0.2); break;
            case nameof(PilReference.Brightness1_3): ImageOps.Brightness(image, 1.3); break;
            case nameof(PilReference.Sharpness1_8): result = ImageOps.Sharpness(image, 1.8); break;
            case nameof(PilReference.Sharpness0_1): result = ImageOps.Sharpness(image, 0.1); break;
        }

        AssertClose(Reference(reference), result);
    }

    [Theory]
    [InlineData(nameof(PilReference.RotateNearest17))]
    [InlineData(nameof(PilReference.RotateBilinearMinus23))]
    [InlineData(nameof(PilReference.ShearXNearest))]
    [InlineData(nameof(PilReference.ShearYBilinear))]
    [InlineData(nameof(PilReference.TranslateBilinear))]
    public void GeometricOperationsMatchPillow(string reference)
    {
        using var image = FormulaImage();
        using var result = reference switch
        {
            nameof(PilReference.RotateNearest17) => ImageOps.Rotate(image, 17, Interpolation.Nearest, []),
            nameof(PilReference.RotateBilinearMinus23) => ImageOps.Rotate(image, -23, Interpolation.Bilinear, MeanFill),
            nameof(PilReference.ShearXNearest) => ImageOps.Affine(image, [1, 0.25, 0, 0, 1, 0], Interpolation.Nearest, []),
            nameof(PilReference.ShearYBilinear) => ImageOps.Affine(image, [1, 0, 0, -0.2, 1, 0], Interpolation.Bilinear, MeanFill),
            _ => ImageOps.Affine(image, [1, 0, 3.6, 0, 1, 0], Interpolation.Bilinear, MeanFill),
        };
        AssertClose(Reference(reference), result);
    }

    [Fact]
    public void GreyConversionMatchesPillow()
    {
        using var image = FormulaImage();
        var grey = new ByteImage(image.Width, image.Height, 1, new byte[image.Width * image.Height]);
        for (int i = 0; i < grey.Length; i++)
        {
            grey.Pixels[i] = ImageOps.Luma(image.Pixels[3 * i], image.Pixels[(3 * i) + 1], image.Pixels[(3 * i) + 2]);
        }

        AssertClose(PilReference.Grey, grey);
    }

    [Fact]
    public void RandomResizedCropBoxesFollowTheTorchvisionDistribution()
    {
        var crop = new RandomResizedCrop(224);
        int n = 20000, fallbacks = 0;
        double logRatioSum = 0, areaSum = 0;
        for (int i = 0; i < n; i++)
        {
            var random = SampleRandom.ForSample(7, 0, i);
            var box = crop.Sample(500, 375, ref random);
            Assert.InRange(box.Width, 1, 500);
            Assert.InRange(box.Height, 1, 375);
            Assert.InRange(box.Left, 0, 500 - box.Width);
            Assert.InRange(box.Top, 0, 375 - box.Height);
            double area = (double)box.Width * box.Height / (500 * 375);
            double ratio = (double)box.Width / box.Height;
            if (box.Width == 500 && box.Height == 375)
            {
                fallbacks++;
                continue;
            }

            // Rounding w and h moves area and ratio a little outside the drawn ranges, never far.
            Assert.InRange(area, 0.075, 1.0);
            Assert.InRange(ratio, 0.74, 1.35);
            logRatioSum += Math.Log(ratio);
            areaSum += area;
        }

        // With a 4:3 image nearly every first attempt fits except large areas with tall ratios: the
        // log-ratio mean stays near 0 and the area mean below the uniform mean 0.54 (big draws fail more).
        int kept = n - fallbacks;
        Assert.InRange(logRatioSum / kept, -0.03, 0.05);
        Assert.InRange(areaSum / kept, 0.40, 0.54);
        Assert.True(fallbacks < n / 100, $"{fallbacks} fallbacks");
    }

    [Fact]
    public void RandomResizedCropFallsBackToTheClampedCentreCrop()
    {
        // A 1000x10 strip: no drawn box fits (heights exceed 10 or widths exceed the ratio), so after 10
        // attempts torchvision takes h = 10, w = round(10 * 4/3) = 13, centred.
        var crop = new RandomResizedCrop(8, scaleMin: 0.5, scaleMax: 1.0);
        var random = SampleRandom.ForSample(1, 0, 0);
        var box = crop.Sample(1000, 10, ref random);
        Assert.Equal(new CropBox(0, (1000 - 13) / 2, 10, 13), box);

        var tall = crop.Sample(10, 1000, ref random);
        Assert.Equal(new CropBox((1000 - 13) / 2, 0, 13, 10), tall);
    }

    [Fact]
    public void RandomResizedCropResizesTheSampledBox()
    {
        using var image = FormulaImage();
        var crop = new RandomResizedCrop(6);
        var r1 = SampleRandom.ForSample(3, 1, 4);
        var r2 = r1;
        var box = crop.Sample(image.Width, image.Height, ref r1);
        using var expected = Resample.Bilinear(image, box.Left, box.Top, box.Width, box.Height, 6, 6);
        using var actual = crop.Apply(image, ref r2);
        Assert.Equal(expected.Span.ToArray(), actual.Span.ToArray());
    }

    [Fact]
    public void FlipMirrorsRowsOfBothImageKinds()
    {
        var bytes = new ByteImage(3, 2, 2, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        RandomHorizontalFlip.Flip(bytes);
        Assert.Equal(new byte[] { 5, 6, 3, 4, 1, 2, 11, 12, 9, 10, 7, 8 }, bytes.Span.ToArray());

        var floats = new FloatImage(2, 1, 3, [1, 2, 3, 4, 5, 6]);
        RandomHorizontalFlip.Flip(floats);
        Assert.Equal(new float[] { 3, 2, 1, 6, 5, 4 }, floats.Span.ToArray());

        int flips = 0;
        var flip = new RandomHorizontalFlip();
        for (int i = 0; i < 4000; i++)
        {
            var random = SampleRandom.ForSample(5, 0, i);
            var img = new FloatImage(1, 1, 2, [0, 1]);
            flip.Apply(img, ref random);
            flips += img.Data[0] == 1 ? 1 : 0;
        }

        Assert.InRange(flips, 1800, 2200);
    }

    [Fact]
    public void PadAndRandomCropCoverEveryOffsetWithTheFill()
    {
        var image = new FloatImage(1, 2, 2, [1, 2, 3, 4]);
        var crop = new RandomCrop(2, 1, [-9f]);
        var seen = new HashSet<string>();
        for (int i = 0; i < 400; i++)
        {
            var random = SampleRandom.ForSample(11, 0, i);
            using var output = crop.Apply(image, ref random);
            seen.Add(string.Join(",", output.Span.ToArray()));
        }

        // The padded 4x4 image has 9 distinct 2x2 windows.
        var expected = new HashSet<string>();
        float[,] padded = { { -9, -9, -9, -9 }, { -9, 1, 2, -9 }, { -9, 3, 4, -9 }, { -9, -9, -9, -9 } };
        for (int t = 0; t < 3; t++)
        {
            for (int l = 0; l < 3; l++)
            {
                expected.Add(string.Join(",", new[] { padded[t, l], padded[t, l + 1], padded[t + 1, l], padded[t + 1, l + 1] }));
            }
        }

        Assert.Equal(expected.OrderBy(s => s), seen.OrderBy(s => s));
    }

    [Fact]
    public void CenterCropAndShorterSideResizeFollowTorchvision()
    {
        var resize = new ResizeShorterSide(256);
        Assert.Equal((256, 341), resize.OutputSize(300, 400));
        Assert.Equal((341, 256), resize.OutputSize(400, 300));
        Assert.Equal((248, 330), new ResizeShorterSide(248).OutputSize(375, 500));

        // top = round((5 - 2) / 2) = round(1.5) = 2 with half-to-even; left = round((4 - 2) / 2) = 1.
        var image = new ByteImage(4, 5, 1, Enumerable.Range(0, 20).Select(i => (byte)i).ToArray());
        var random = new SampleRandom(0);
        using var cropped = new CenterCrop(2).Apply(image, ref random);
        Assert.Equal(new byte[] { 9, 10, 13, 14 }, cropped.Span.ToArray());

        // Smaller than the crop: zero padding, floor of half the shortfall on the left / top.
        using var padded = new CenterCrop(4).Apply(new ByteImage(1, 2, 1, [7, 8]), ref random);
        Assert.Equal(new byte[] { 0, 0, 0, 0, 0, 7, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0 }, padded.Span.ToArray());
    }

    [Fact]
    public void EvalPipelineUsesTheTimmScaleSize()
    {
        Assert.Equal(0.875, MobileOne.Models.ModelRegistry.PretrainedFor("mobileone_s0").CropPct);
        Assert.Equal(0.9, MobileOne.Models.ModelRegistry.PretrainedFor("mobileone_s2").CropPct);
        Assert.Equal(0.9, MobileOne.Models.ModelRegistry.PretrainedFor("mobileone_custom").CropPct);
        var s0 = DataTransforms.ImageNetEval(224, 0.875);
        Assert.Equal(256, ((ResizeShorterSide)s0.ImageTransforms[0]).Size);
        var s1 = DataTransforms.ImageNetEval(224, 0.9);
        Assert.Equal(248, ((ResizeShorterSide)s1.ImageTransforms[0]).Size);

        using var image = new ByteImage(300, 260, 3, new byte[300 * 260 * 3]);
        var output = new float[3 * 224 * 224];
        var random = new SampleRandom(0);
        s0.Apply(image, ref random, output);
        Assert.Equal((0 / 255f - 0.485f) / 0.229f, output[0]);
    }

    [Fact]
    public void NormalizationIsPyTorchsFloatArithmetic()
    {
        var norm = Normalization.ImageNet;
        for (int v = 0; v < 256; v += 17)
        {
            for (int c = 0; c < 3; c++)
            {
                float expected = ((float)v / 255f - norm.Mean[c]) / norm.Std[c];
                Assert.Equal(expected, norm.Apply(v, c));
                Assert.InRange(Math.Abs(norm.Apply(v, c) - ((v / 255.0) - norm.Mean[c]) / norm.Std[c]), 0, 1e-6);
            }
        }
    }

    [Fact]
    public void FashionMnistEvalNormalizesAndPadsWithBlack()
    {
        var pixels = Enumerable.Range(0, 28 * 28).Select(i => (byte)(i % 256)).ToArray();
        using var image = new ByteImage(28, 28, 1, pixels);
        var output = new float[32 * 32];
        var random = new SampleRandom(0);
        DataTransforms.FashionMnistEval().Apply(image, ref random, output);
        float black = (0f - 0.2860f) / 0.3530f;
        for (int y = 0; y < 32; y++)
        {
            for (int x = 0; x < 32; x++)
            {
                bool inside = x is >= 2 and < 30 && y is >= 2 and < 30;
                double expected = inside ? ((pixels[((y - 2) * 28) + x - 2] / 255.0) - 0.2860) / 0.3530 : black;
                Assert.InRange(output[(y * 32) + x] - expected, -1e-6, 1e-6);
            }
        }
    }

    [Fact]
    public void FashionMnistTrainShiftsTheImageOverABlackBorder()
    {
        // A white 28x28 image: after pad 2 + pad 4 + crop + flip, every output pixel is either white or
        // black, the white square keeps its 28x28 size, and its offset ranges over -4..4 in each axis.
        using var white = new ByteImage(28, 28, 1, Enumerable.Repeat((byte)255, 28 * 28).ToArray());
        float whiteValue = (1f - 0.2860f) / 0.3530f, black = (0f - 0.2860f) / 0.3530f;
        var transform = DataTransforms.FashionMnistTrain();
        var rowSpans = new HashSet<(int, int)>();
        var colSpans = new HashSet<(int, int)>();
        var output = new float[32 * 32];
        for (int i = 0; i < 2000; i++)
        {
            var random = SampleRandom.ForSample(1, 0, i);
            using var copy = white.Clone();
            transform.Apply(copy, ref random, output);
            Assert.All(output, v => Assert.True(v == whiteValue || v == black));
            var lit = Enumerable.Range(0, 32 * 32).Where(p => output[p] == whiteValue).ToArray();
            int top = lit.Min(p => p / 32), bottom = lit.Max(p => p / 32), left = lit.Min(p => p % 32), right = lit.Max(p => p % 32);
            Assert.Equal((bottom - top + 1) * (right - left + 1), lit.Length);
            Assert.InRange(bottom - top + 1, 26, 28);
            Assert.InRange(right - left + 1, 26, 28);
            rowSpans.Add((top, bottom));
            colSpans.Add((left, right));
        }

        // Nine crop offsets per axis (0..8 in the 40x40 padded image), each a different visible span.
        Assert.Equal(9, rowSpans.Count);
        Assert.Equal(9, colSpans.Count);

        var literal = DataTransforms.FashionMnistTrain(zeroFill: true);
        Assert.Equal(0f, ((RandomCrop)literal.TensorTransforms[1]).Fill[0]);
    }

    [Fact]
    public void AutoAugmentUsesTorchvisionMagnitudeBins()
    {
        Assert.Equal(25, AutoAugment.SubPolicyCount);
        Assert.Equal(30.0, AutoAugment.Magnitude("Rotate", 9), 12);
        Assert.Equal(0.3 * 5 / 9, AutoAugment.Magnitude("ShearX", 5), 12);
        Assert.Equal(4, AutoAugment.Magnitude("Posterize", 8));
        Assert.Equal(8, AutoAugment.Magnitude("Posterize", 0));
        Assert.Equal(6, AutoAugment.Magnitude("Posterize", 5));
        Assert.Equal(255.0 - (255.0 * 5 / 9), AutoAugment.Magnitude("Solarize", 5), 12);

        var aa = new AutoAugment();
        int changed = 0;
        for (int i = 0; i < 200; i++)
        {
            using var image = FormulaImage();
            var random = SampleRandom.ForSample(2, 0, i);
            var result = aa.Apply(image, ref random);
            Assert.Equal((13, 11, 3), (result.Width, result.Height, result.Channels));
            changed += result.Span.SequenceEqual(FormulaImage().Span) ? 0 : 1;
            if (!ReferenceEquals(result, image))
            {
                result.Dispose();
            }
        }

        Assert.InRange(changed, 120, 200);
    }

    [Fact]
    public void RandAugmentParsesTimmConfigs()
    {
        var ra = RandAugment.Parse("rand-m9-mstd0.5");
        Assert.Equal((9.0, 0.5, 2, 0.5), (ra.Magnitude, ra.MagnitudeStd, ra.Layers, ra.Probability));
        var other = RandAugment.Parse("rand-m7-n3-mstd0-p1");
        Assert.Equal((7.0, 0.0, 3, 1.0), (other.Magnitude, other.MagnitudeStd, other.Layers, other.Probability));
        Assert.Equal(15, RandAugment.OperationNames.Count);

        var e = Assert.Throws<ArgumentException>(() => RandAugment.Parse("rand-m9-inc1"));
        Assert.Equal("RandAugment config 'rand-m9-inc1': cannot use 'inc1'; supported: m<magnitude>, n<layers>, mstd<std>, p<probability>. (Parameter 'config')", e.Message);
        e = Assert.Throws<ArgumentException>(() => DataTransforms.ParsePolicy("augmix"));
        Assert.Equal("Unknown augmentation 'augmix'; expected none, autoaugment or a RandAugment config such as rand-m9-mstd0.5. (Parameter 'name')", e.Message);

        using var image = FormulaImage();
        var random = SampleRandom.ForSample(3, 0, 0);
        var result = ra.Apply(image, ref random);
        Assert.Equal((13, 11, 3), (result.Width, result.Height, result.Channels));
    }

    [Fact]
    public void ImageNetTrainProducesTheRequestedSize()
    {
        using var image = new ByteImage(40, 30, 3, Enumerable.Range(0, 3600).Select(i => (byte)(i * 7)).ToArray());
        foreach (var policy in new[] { AugmentPolicy.None, AugmentPolicy.AutoAugment, AugmentPolicy.RandAugment })
        {
            var transform = DataTransforms.ImageNetTrain(16, policy);
            var output = new float[3 * 16 * 16];
            var random = SampleRandom.ForSample(1, 0, 0);
            using var copy = image.Clone();
            transform.Apply(copy, ref random, output);
            Assert.All(output, v => Assert.InRange(v, -2.2f, 2.7f));
        }
    }

    [Fact]
    public void AMismatchedOutputSizeIsReported()
    {
        var transform = new SampleTransform(1, 32, 32, null, Normalization.FashionMnist);
        using var image = new ByteImage(28, 28, 1, new byte[28 * 28]);
        var random = new SampleRandom(0);
        var e = Assert.Throws<InvalidOperationException>(() => transform.Apply(image, ref random, new float[32 * 32]));
        Assert.Equal("The transforms produced a 1x28x28 sample; the batch expects 1x32x32 (add a crop or resize to that size).", e.Message);
    }

    private static string Reference(string name) => (string)typeof(PilReference).GetField(name)!.GetValue(null)!;

    private static List<(int Index, double Weight)> Weights(int inSize, int outSize, int o)
    {
        double scale = (double)inSize / outSize, s = Math.Max(1.0, scale), centre = (o + 0.5) * scale;
        var list = new List<(int, double)>();
        for (int i = 0; i < inSize; i++)
        {
            double w = Math.Max(0, 1 - (Math.Abs(i + 0.5 - centre) / s));
            if (w > 0)
            {
                list.Add((i, w));
            }
        }

        double sum = list.Sum(p => p.Item2);
        return list.Select(p => (p.Item1, p.Item2 / sum)).ToList();
    }
}
