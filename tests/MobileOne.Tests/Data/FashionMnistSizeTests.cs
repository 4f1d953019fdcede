using MobileOne.Data;
using MobileOne.Data.Transforms;
using MobileOne.Training;

namespace MobileOne.Tests.Data;

/// <summary>Fashion-MNIST at other training sizes (progressive resizing, --img-size 24,32) and with random erasing.</summary>
public class FashionMnistSizeTests
{
    private static readonly float White = (1f - 0.2860f) / 0.3530f, Black = (0f - 0.2860f) / 0.3530f;

    private static float[] Sample(SampleTransform transform, ByteImage image, SampleRandom random)
    {
        var output = new float[transform.SampleLength];
        using var copy = image.Clone();
        transform.Apply(copy, ref random, output);
        return output;
    }

    [Fact]
    public void At_32_the_pipelines_are_the_recipes_bit_for_bit()
    {
        // The default Fashion-MNIST run must not change: size 32 adds no resize, and without erasing nothing after the flip.
        var train = FashionMnist.LoadBundled(FashionMnistSplit.Train);
        var data = TrainingData.Open(TrainingData.Bundled, decoder: null);
        var noAug = TrainingData.Open(TrainingData.Bundled, decoder: null, augment: false);
        for (int i = 0; i < 300; i++)
        {
            using var image = train.Load(i);
            var random = SampleRandom.ForSample(5, 2, i);
            float[] recipe = Sample(DataTransforms.FashionMnistTrain(), image, random);
            Assert.Equal(recipe, Sample(DataTransforms.FashionMnistAtSize(32), image, random));
            Assert.Equal(recipe, Sample(data.TrainTransform(32), image, random));
            float[] eval = Sample(DataTransforms.FashionMnistEval(), image, random);
            Assert.Equal(eval, Sample(DataTransforms.FashionMnistAtSize(32, augment: false), image, random));
            Assert.Equal(eval, Sample(noAug.TrainTransform(32), image, random));
            Assert.Equal(eval, Sample(data.EvalTransform(32, MobileOne.Models.ModelRegistry.PretrainedFor("mobileone_s0")), image, random));
        }

        Assert.Empty(DataTransforms.FashionMnistAtSize(32).ImageTransforms);
        Assert.Equal(new[] { 32 }, new TrainingOptions().ImageSizesFor(fashionMnist: true));
        Assert.Equal(new[] { 224 }, new TrainingOptions().ImageSizesFor(fashionMnist: false));
    }

    /// <summary>Also the evaluation transform at that size, which a model trained to a final size other than 32 is evaluated with.</summary>
    [Theory]
    [InlineData(24, false)]
    [InlineData(16, false)]
    [InlineData(28, false)]
    [InlineData(48, false)]
    [InlineData(24, true)]
    [InlineData(64, true)]
    public void Without_augmentation_another_size_is_the_image_resized_to_size_minus_4_inside_the_black_border(int size, bool evaluation)
    {
        var train = FashionMnist.LoadBundled(FashionMnistSplit.Train);
        var transform = evaluation
            ? TrainingData.EvalTransform(fashionMnist: true, size, MobileOne.Models.ModelRegistry.PretrainedFor("mobileone_s0"))
            : DataTransforms.FashionMnistAtSize(size, augment: false);
        Assert.Equal((1, size, size), (transform.Channels, transform.Height, transform.Width));
        int inner = size - 4;
        for (int i = 0; i < 20; i++)
        {
            using var image = train.Load(i);
            float[] output = Sample(transform, image, SampleRandom.ForSample(0, 0, i));

            // The expected interior: Pillow-exact bilinear (tested against Pillow in TransformTests), then ToTensor + Normalize.
            using var resized = Resample.Bilinear(image, inner, inner);
            for (int y = 0; y < size; y++)
            {
                for (int x = 0; x < size; x++)
                {
                    bool inside = y >= 2 && y < 2 + inner && x >= 2 && x < 2 + inner;
                    float expected = inside ? Normalization.FashionMnist.Apply(resized.Span[((y - 2) * inner) + x - 2], 0) : Black;
                    Assert.Equal(expected, output[(y * size) + x]);
                }
            }
        }
    }

    [Fact]
    public void At_24_the_random_crop_shifts_a_20_pixel_image_by_up_to_3_pixels()
    {
        // A white image: at 24 it becomes a white 20x20 square in a 2-pixel black border, padded by round(24 / 8) = 3
        // and cropped back to 24, so its visible offset takes 7 values per axis (4 at 32 gives 9, TransformTests).
        using var white = new ByteImage(28, 28, 1, Enumerable.Repeat((byte)255, 28 * 28).ToArray());
        var transform = DataTransforms.FashionMnistAtSize(24);
        var rowSpans = new HashSet<(int, int)>();
        for (int i = 0; i < 1000; i++)
        {
            float[] output = Sample(transform, white, SampleRandom.ForSample(1, 0, i));
            Assert.Equal(24 * 24, output.Length);
            Assert.All(output, v => Assert.True(v == White || v == Black));
            var lit = Enumerable.Range(0, output.Length).Where(p => output[p] == White).ToArray();
            int top = lit.Min(p => p / 24), bottom = lit.Max(p => p / 24), left = lit.Min(p => p % 24), right = lit.Max(p => p % 24);
            Assert.Equal((bottom - top + 1) * (right - left + 1), lit.Length);
            Assert.InRange(bottom - top + 1, 19, 20);
            Assert.InRange(right - left + 1, 19, 20);
            rowSpans.Add((top, bottom));
        }

        Assert.Equal(7, rowSpans.Count);
        Assert.Equal(3, DataTransforms.FashionMnistShift(24));
        Assert.Equal(4, DataTransforms.FashionMnistShift(32));
    }

    [Fact]
    public void Random_erasing_comes_last_in_the_training_pipeline_and_never_in_evaluation()
    {
        using var white = new ByteImage(28, 28, 1, Enumerable.Repeat((byte)255, 28 * 28).ToArray());
        var data = TrainingData.Open(TrainingData.Bundled, null, new TrainingOptions { ReProb = 1.0 });
        var transform = data.TrainTransform(24);
        Assert.IsType<RandomErasing>(transform.TensorTransforms[^1]);
        Assert.Equal(0, data.EvalTransform(32, MobileOne.Models.ModelRegistry.PretrainedFor("mobileone_s0")).TensorTransforms.Count(t => t is RandomErasing));

        // With p = 1 every sample has noise values (neither the white garment nor the black background).
        for (int i = 0; i < 50; i++)
        {
            float[] output = Sample(transform, white, SampleRandom.ForSample(2, 0, i));
            Assert.Contains(output, v => v != White && v != Black);
        }

        var noAug = Assert.Throws<ArgumentException>(() => new TrainingOptions { ReProb = 0.25, Augment = false }.Validate());
        Assert.Equal("--reprob 0.25 asks for augmentation that --no-aug turns off; give one of them.", noAug.Message);
        Assert.Equal("--reprob must be a probability in [0, 1]; got 1.5.", Assert.Throws<ArgumentException>(() => new TrainingOptions { ReProb = 1.5 }.Validate()).Message);
        Assert.Equal("--recount must be a positive integer; got 0.", Assert.Throws<ArgumentException>(() => new TrainingOptions { ReCount = 0 }.Validate()).Message);
    }
}
