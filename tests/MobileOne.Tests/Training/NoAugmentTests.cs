using MobileOne.Data;
using MobileOne.Models;
using MobileOne.Training;

namespace MobileOne.Tests.Training;

/// <summary>timm's --no-aug: the training images go through the evaluation-style transform, with no random crop or flip.</summary>
public class NoAugmentTests
{
    [Fact]
    public void Without_augmentation_a_training_sample_is_its_evaluation_sample_for_every_draw()
    {
        var plain = TrainingData.Open(TrainingData.Bundled, decoder: null, augment: false);
        var augmented = TrainingData.Open(TrainingData.Bundled, decoder: null);
        var pretrained = ModelRegistry.PretrainedFor("mobileone_s0");
        var eval = plain.EvalTransform(32, pretrained);
        var image = plain.Train.Load(7);
        var expected = Sample(eval, image, seed: 0);

        // Every random draw gives the evaluation sample without augmentation; the recipe's crop and flip move pixels.
        bool anyDiffers = false;
        for (ulong seed = 1; seed <= 8; seed++)
        {
            Assert.Equal(expected, Sample(plain.TrainTransform(32), image, seed));
            anyDiffers |= !expected.AsSpan().SequenceEqual(Sample(augmented.TrainTransform(32), image, seed));
        }

        Assert.True(anyDiffers, "the augmented transform gave the evaluation sample for all 8 draws");
    }

    [Fact]
    public void No_aug_with_an_augmentation_policy_is_refused_naming_both_options()
    {
        var e = Assert.Throws<ArgumentException>(() => new TrainingOptions { Augment = false, AutoAugment = "autoaugment" }.Validate());
        Assert.Contains("--no-aug", e.Message, StringComparison.Ordinal);
        Assert.Contains("--aa", e.Message, StringComparison.Ordinal);
        new TrainingOptions { Augment = false }.Validate();
    }

    private static float[] Sample(MobileOne.Data.Transforms.SampleTransform transform, ByteImage image, ulong seed)
    {
        var destination = new float[transform.SampleLength];
        var random = new SampleRandom(seed);
        transform.Apply(image, ref random, destination);
        return destination;
    }
}
