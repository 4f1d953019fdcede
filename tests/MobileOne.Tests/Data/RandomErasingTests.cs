using System.Buffers.Binary;
using MobileOne.Data;
using MobileOne.Data.Transforms;

namespace MobileOne.Tests.Data;

public class RandomErasingTests
{
    /// <summary>The formula image of tools/data/random-erasing-reference.py (computed in double, stored as float32).</summary>
    private static FloatImage Formula(int channels, int height, int width)
    {
        var data = new float[channels * height * width];
        for (int c = 0; c < channels; c++)
        {
            for (int y = 0; y < height; y++)
            {
                for (int x = 0; x < width; x++)
                {
                    data[(((c * height) + y) * width) + x] = (float)((((c * 131) + (y * 31) + (x * 7)) % 97 / 97.0) - 0.5);
                }
            }
        }

        return new FloatImage(channels, height, width, data);
    }

    private static float[] Floats(string hex)
    {
        byte[] bytes = Convert.FromHexString(hex);
        var values = new float[bytes.Length / 4];
        for (int i = 0; i < values.Length; i++)
        {
            values[i] = BinaryPrimitives.ReadSingleBigEndian(bytes.AsSpan(i * 4, 4));
        }

        return values;
    }

    public static TheoryData<string> ReferenceCases() => new(RandomErasingReference.Cases.Select(c => c.Name));

    [Theory]
    [MemberData(nameof(ReferenceCases))]
    public void Erasing_follows_timms_random_erasing_draw_for_draw(string name)
    {
        // timm's own RandomErasing ran on the same image with its random calls served by the same generator
        // (tools/data/random-erasing-reference.py), so the rectangle, its fill and everything around it must agree.
        var c = RandomErasingReference.Cases.Single(k => k.Name == name);
        var expected = Floats(c.Output);
        var input = Formula(c.C, c.H, c.W);
        float[] before = input.Span.ToArray();
        var erasing = new RandomErasing(c.P, RandomErasing.ParseMode(c.Mode), maxCount: c.MaxCount);
        var random = SampleRandom.ForSample(c.Seed, c.Epoch, c.Index);
        var output = erasing.Apply(input, ref random);
        Assert.Equal((c.C, c.H, c.W), (output.Channels, output.Height, output.Width));
        float[] actual = output.Span.ToArray();
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            // Untouched pixels are the input itself; erased ones are the same Box-Muller draws rounded to float32
            // (1e-6 allows glibc's log/cos in Python and .NET to differ by an ulp, which they have not so far).
            Assert.True(
                expected[i] == before[i] ? actual[i] == before[i] : Math.Abs(expected[i] - actual[i]) <= 1e-6,
                $"{name}: value {i} is {actual[i]}, timm's is {expected[i]} (input {before[i]})");
        }
    }

    [Fact]
    public void The_reference_cases_erase_with_every_mode_and_some_leave_the_image_alone()
    {
        // Guards the fixture itself: a reference in which nothing was erased would prove nothing.
        int erased = 0, untouched = 0;
        foreach (var c in RandomErasingReference.Cases)
        {
            bool changed = !Floats(c.Output).AsSpan().SequenceEqual(Formula(c.C, c.H, c.W).Span);
            erased += changed ? 1 : 0;
            untouched += changed ? 0 : 1;
        }

        Assert.True(erased >= 8, $"{erased} erased cases");
        Assert.True(untouched >= 1, "no case with p = 0.5 was left alone");
    }

    [Fact]
    public void Probability_zero_changes_nothing()
    {
        var erasing = new RandomErasing(0.0);
        for (int i = 0; i < 300; i++)
        {
            var image = Formula(3, 20, 17);
            float[] before = image.Span.ToArray();
            var random = SampleRandom.ForSample(9, 0, i);
            Assert.Same(image, erasing.Apply(image, ref random));
            Assert.Equal(before, image.Span.ToArray());
        }
    }

    [Fact]
    public void The_erased_rectangle_keeps_timms_area_and_aspect_bounds_and_leaves_the_rest_untouched()
    {
        // 1 x 32 x 32, p = 0.5, pixel mode: the changed pixels must form one rectangle h x w with h, w the rounded
        // sqrt(A r) and sqrt(A / r) for some A in [0.02, 1/3] x 1024 and r in [0.3, 1 / 0.3], strictly inside the
        // image; the noise must look standard normal, and about half the images must be erased.
        const int size = 32;
        double minArea = 0.02 * size * size, maxArea = size * size / 3.0, minAspect = 0.3, maxAspect = 1 / 0.3;
        var erasing = new RandomErasing(0.5, ErasingMode.Pixel);
        int erasedImages = 0, n = 4000;
        double sum = 0, sumSquares = 0;
        long noise = 0;
        double smallestArea = double.MaxValue, largestArea = 0, smallestRatio = double.MaxValue, largestRatio = 0;
        for (int i = 0; i < n; i++)
        {
            var image = Formula(1, size, size);
            float[] before = image.Span.ToArray();
            var random = SampleRandom.ForSample(3, 1, i);
            erasing.Apply(image, ref random);
            float[] after = image.Span.ToArray();
            var changed = Enumerable.Range(0, after.Length).Where(p => after[p] != before[p]).ToArray();
            if (changed.Length == 0)
            {
                continue;
            }

            erasedImages++;
            int top = changed.Min(p => p / size), bottom = changed.Max(p => p / size), left = changed.Min(p => p % size), right = changed.Max(p => p % size);
            int h = bottom - top + 1, w = right - left + 1;

            // Every pixel of the bounding box changed (a draw equal to the old value is a 1-in-2^24 event) and none outside.
            Assert.Equal(h * w, changed.Length);
            Assert.True(h < size && w < size, $"{h}x{w} must be strictly smaller than the image");

            // h = round(sqrt(A r)), w = round(sqrt(A / r)) => sqrt(A r) in [h - 0.5, h + 0.5] and likewise for w, so
            // A = sqrt(A r) sqrt(A / r) and r = sqrt(A r) / sqrt(A / r) lie in these intervals.
            Assert.True((h + 0.5) * (w + 0.5) >= minArea && (h - 0.5) * (w - 0.5) <= maxArea, $"{h}x{w} outside the area bounds");
            Assert.True((h + 0.5) / Math.Max(w - 0.5, 1e-9) >= minAspect && (h - 0.5) / (w + 0.5) <= maxAspect, $"{h}x{w} outside the aspect bounds");
            smallestArea = Math.Min(smallestArea, h * w);
            largestArea = Math.Max(largestArea, h * w);
            smallestRatio = Math.Min(smallestRatio, (double)h / w);
            largestRatio = Math.Max(largestRatio, (double)h / w);
            foreach (int p in changed)
            {
                sum += after[p];
                sumSquares += after[p] * (double)after[p];
                noise++;
            }
        }

        // Binomial(4000, 0.5): sd 32 images.
        Assert.InRange(erasedImages, 1850, 2150);

        // The draws reach both ends of the ranges (a clipped range would not).
        Assert.True(smallestArea <= 30 && largestArea >= 300, $"areas {smallestArea}..{largestArea}");
        Assert.True(smallestRatio <= 0.4 && largestRatio >= 2.5, $"aspect ratios {smallestRatio}..{largestRatio}");

        double mean = sum / noise, variance = (sumSquares / noise) - (mean * mean);
        Assert.InRange(mean, -0.01, 0.01);
        Assert.InRange(variance, 0.98, 1.02);
    }

    [Fact]
    public void Erasing_is_a_function_of_seed_epoch_and_index()
    {
        var erasing = new RandomErasing(1.0);
        float[] Erase(int epoch, int index)
        {
            var image = Formula(1, 16, 16);
            var random = SampleRandom.ForSample(4, epoch, index);
            return erasing.Apply(image, ref random).Span.ToArray();
        }

        Assert.Equal(Erase(2, 5), Erase(2, 5));
        Assert.NotEqual(Erase(2, 5), Erase(2, 6));
        Assert.NotEqual(Erase(2, 5), Erase(3, 5));
    }

    [Fact]
    public void Modes_parse_as_timms_remode()
    {
        Assert.Equal(ErasingMode.Pixel, RandomErasing.ParseMode("pixel"));
        Assert.Equal(ErasingMode.Rand, RandomErasing.ParseMode("RAND"));
        Assert.Equal(ErasingMode.Const, RandomErasing.ParseMode("const"));
    }

    [Fact]
    public void An_unknown_mode_names_the_option()
    {
        var e = Assert.Throws<ArgumentException>(() => RandomErasing.ParseMode("noise"));
        Assert.Equal("--remode must be pixel, rand or const; got 'noise'.", e.Message);
    }
}
