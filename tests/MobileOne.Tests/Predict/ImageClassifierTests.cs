using MobileOne.Classification;
using MobileOne.Data;
using MobileOne.Data.Transforms;
using MobileOne.Imaging;
using MobileOne.Inference;
using MobileOne.IO.Checkpoints;
using MobileOne.Models;

namespace MobileOne.Tests.Predict;

public sealed class ImageClassifierTests
{
    [Fact]
    public void TopKSortsByLogitBreaksTiesByIndexAndUsesTheFullSoftmax()
    {
        float[] logits = [1f, 3f, 3f, -2f, 0.5f];
        var top = ImageClassifier.TopK(logits, 3, ["a", "b", "c", "d", "e"]);
        Assert.Equal([1, 2, 0], top.Select(s => s.Index));
        Assert.Equal(["b", "c", "a"], top.Select(s => s.Label));
        double sum = logits.Sum(v => Math.Exp(v));
        Assert.Equal(Math.Exp(3) / sum, top[0].Probability, 6);
        Assert.Equal(Math.Exp(1) / sum, top[2].Probability, 6);
        Assert.Equal(3f, top[0].Logit);

        var all = ImageClassifier.TopK(logits, 50);
        Assert.Equal(5, all.Count);
        Assert.Null(all[0].Label);
        Assert.Equal(1.0, all.Sum(s => (double)s.Probability), 5);

        // Large logits (random-weight models reach 100+) must not overflow the softmax.
        var big = ImageClassifier.TopK([1000f, 999f], 2);
        Assert.Equal(1 / (1 + Math.Exp(-1)), big[0].Probability, 6);
        Assert.Throws<ArgumentOutOfRangeException>(() => ImageClassifier.TopK(logits, 0));
    }

    [Fact]
    public void ImageNetLabelsAreOpenCvsList()
    {
        var names = ClassLabels.ImageNet;
        Assert.Equal(1000, names.Count);
        Assert.Equal("tench, Tinca tinca", names[0]);
        Assert.Equal("tabby, tabby cat", names[281]);
        Assert.Equal("toilet tissue, toilet paper, bathroom tissue", names[999]);
        Assert.Same(names, ClassLabels.Default(1000, 3));
        Assert.Equal("T-shirt/top", ClassLabels.Default(10, 1)![0]);
        Assert.Null(ClassLabels.Default(10, 3));
        Assert.Null(ClassLabels.Default(7, 1));
    }

    [Fact]
    public void LabelFilesHoldOneNamePerLine()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("crlf.txt"), "cat, feline\r\n\r\ndog\r\n");
        Assert.Equal(["cat, feline", "", "dog"], ClassLabels.Load(dir.File("crlf.txt")));
        File.WriteAllText(dir.File("empty.txt"), "");
        var e = Assert.Throws<DatasetException>(() => ClassLabels.Load(dir.File("empty.txt")));
        Assert.Contains("no class names", e.Message);
        e = Assert.Throws<DatasetException>(() => ClassLabels.Load(dir.File("missing.txt")));
        Assert.Contains("missing.txt", e.Message);
    }

    [Fact]
    public void DefaultsAreTimmsPretrainedConfigurations()
    {
        var s0 = ImagePreprocessing.ForModel(MobileOneConfig.S0);
        Assert.Equal((InputPipeline.ImageNet, 224, 0.875, ResampleFilter.Bilinear, 256), (s0.Pipeline, s0.Size, s0.CropPct, s0.Interpolation, s0.ResizeTo));
        foreach (string variant in new[] { "s1", "s2", "s3", "s4" })
        {
            var p = ImagePreprocessing.ForModel(MobileOneConfig.ByName(variant));
            Assert.Equal((224, 0.9, 248), (p.Size, p.CropPct, p.ResizeTo));
        }

        var fashion = ImagePreprocessing.ForModel(MobileOneConfig.Parse("s0,classes=10,in_chans=1"));
        Assert.Equal((InputPipeline.FashionMnist, 1, 32, 28), (fashion.Pipeline, fashion.Channels, fashion.InputSize, fashion.ResizeTo));
        Assert.Equal(32, new ImagePreprocessing { Pipeline = InputPipeline.FashionMnist }.InputSize);
        Assert.Equal((48, 44), ((fashion with { Size = 48 }).InputSize, (fashion with { Size = 48 }).ResizeTo));
        Assert.Contains("at least 12", Assert.Throws<ArgumentException>(() => (fashion with { Size = 10 }).Validate()).Message);
        var e = Assert.Throws<ArgumentException>(() => ImagePreprocessing.ForModel(MobileOneConfig.Parse("s0,in_chans=4")));
        Assert.Contains("in_chans 4", e.Message);
        Assert.Contains("crop fraction", Assert.Throws<ArgumentException>(() => (s0 with { CropPct = 1.5 }).Validate()).Message);
    }

    [Fact]
    public void LogitsFromDecodedFilesMatchLogitsOfThePilTensors()
    {
        // The S0 fixture (timm names, unfused) fused on the engine, at 64x64: the logits of our decode +
        // preprocessing against the logits of the tensors PIL + torchvision made, within 1e-4 of their range.
        var loaded = ModelCheckpoint.Load(Fixtures.Path("mobileone_s0_timm.safetensors"));
        var preprocessing = ImagePreprocessing.ForModel(loaded.Network.Config) with { Size = 64 };
        using var classifier = new ImageClassifier(loaded.Network, preprocessing, ClassLabels.ImageNet, new InferenceOptions { Threads = 1 });
        foreach (string name in new[] { "rgb_png.s64", "rgb_jpg.s64" })
        {
            var c = PilPredictReference.Case(name);
            using var image = SkiaImageDecoder.Instance.Decode(c.FilePath, 3, new ImageDecodeOptions { ApplyExifOrientation = false });
            var ours = classifier.Classify([image], 1000)[0].OrderBy(s => s.Index).Select(s => s.Logit).ToArray();
            var reference = classifier.Run(c.Expected.Reshape(1, 3, 64, 64)).Data;
            float range = reference.Max() - reference.Min();
            float worst = ours.Zip(reference, (a, b) => Math.Abs(a - b)).Max();
            Assert.True(worst <= 1e-4f * range, $"{name}: max |logit diff| {worst}, range {range}");
        }
    }

    /// <summary>
    /// A grey model trained at another size (train --img-size 48) classifies a 28x28 Fashion-MNIST image exactly as
    /// training evaluated it: predict's transform at 48 is the evaluation transform at 48, bit for bit; and at 32 the
    /// one it always was.
    /// </summary>
    [Theory]
    [InlineData(32)]
    [InlineData(48)]
    [InlineData(20)]
    public void A_grey_models_preprocessing_at_its_size_is_the_evaluation_transform(int size)
    {
        var preprocessing = ImagePreprocessing.ForModel(MobileOneConfig.Parse("s0,classes=10,in_chans=1")) with { Size = size };
        var predict = preprocessing.CreateTransform();
        var eval = MobileOne.Training.TrainingData.EvalTransform(fashionMnist: true, size, ModelRegistry.PretrainedFor("mobileone_s0"));
        Assert.Equal((1, size, size), (predict.Channels, predict.Height, predict.Width));
        var images = FashionMnist.LoadBundled(FashionMnistSplit.Test);
        for (int i = 0; i < 10; i++)
        {
            using var a = images.Load(i);
            using var b = images.Load(i);
            var random = SampleRandom.ForSample(0, 0, i);
            var x = new float[predict.SampleLength];
            var y = new float[eval.SampleLength];
            predict.Apply(a, ref random, x);
            random = SampleRandom.ForSample(0, 0, i);
            eval.Apply(b, ref random, y);
            Assert.Equal(y, x);
        }

        Assert.Equal($"grey, resize {size - 4} bilinear, centre crop {size - 4}, Fashion-MNIST mean/std, pad to {size}", preprocessing.Describe());
    }

    [Fact]
    public void MismatchedLabelsAndChannelsAreRefused()
    {
        var network = MobileOneNetwork.Create(MobileOneConfig.Parse("units=1/1/1/1,widths=0.25/0.25/0.25/0.25,k=1,classes=3"));
        var e = Assert.Throws<ArgumentException>(() => new ImageClassifier(network, new ImagePreprocessing(), ["a", "b"]));
        Assert.Contains("2 class names", e.Message);
        e = Assert.Throws<ArgumentException>(() => new ImageClassifier(network, new ImagePreprocessing { Pipeline = InputPipeline.FashionMnist }, null));
        Assert.Contains("in_chans 3", e.Message);
    }
}
