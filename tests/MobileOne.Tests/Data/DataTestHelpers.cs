using MobileOne.Data;

namespace MobileOne.Tests.Data;

/// <summary>Skips a test, with the reason, when Debian's Fashion-MNIST files are not installed.</summary>
public sealed class FashionMnistSystemFactAttribute : FactAttribute
{
    public FashionMnistSystemFactAttribute()
    {
        if (!FashionMnist.TryFind(FashionMnist.SystemDirectory, FashionMnistSplit.Train, out _, out _)
            || !FashionMnist.TryFind(FashionMnist.SystemDirectory, FashionMnistSplit.Test, out _, out _))
        {
            Skip = $"Debian's dataset-fashion-mnist is not installed ({FashionMnist.SystemDirectory}); the bundled-subset tests still run.";
        }
    }
}

internal static class DataTestHelpers
{
    /// <summary>The formula image of tools/data/pil-reference.py.</summary>
    public static ByteImage FormulaImage(bool narrow = false)
    {
        const int w = 13, h = 11;
        var image = new ByteImage(w, h, 3, new byte[w * h * 3]);
        for (int y = 0; y < h; y++)
        {
            for (int x = 0; x < w; x++)
            {
                for (int c = 0; c < 3; c++)
                {
                    int v = ((x * 37) + (y * 91) + (c * 53) + ((x * y % 17) * 7)) % 256;
                    image.Pixels[(((y * w) + x) * 3) + c] = (byte)(narrow ? 60 + (v % 97) : v);
                }
            }
        }

        return image;
    }

    /// <summary>Parses "WxHxC:hex" from <see cref="PilReference"/>.</summary>
    public static ByteImage Parse(string reference)
    {
        string[] parts = reference.Split(':');
        int[] dims = parts[0].Split('x').Select(int.Parse).ToArray();
        return new ByteImage(dims[0], dims[1], dims[2], Convert.FromHexString(parts[1]));
    }

    /// <summary>Asserts equal size and at most <paramref name="tolerance"/> difference per value; returns the largest difference.</summary>
    public static int AssertClose(string reference, ByteImage actual, int tolerance = 0)
    {
        var expected = Parse(reference);
        Assert.Equal((expected.Width, expected.Height, expected.Channels), (actual.Width, actual.Height, actual.Channels));
        int worst = 0, at = -1;
        for (int i = 0; i < expected.Length; i++)
        {
            int d = Math.Abs(expected.Pixels[i] - actual.Span[i]);
            if (d > worst)
            {
                worst = d;
                at = i;
            }
        }

        Assert.True(worst <= tolerance, $"largest difference {worst} at value {at} (expected {(at >= 0 ? expected.Pixels[at] : 0)}, got {(at >= 0 ? actual.Span[at] : 0)}); tolerance {tolerance}");
        return worst;
    }

    public static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "MobileOne.slnx")))
            {
                return dir.FullName;
            }
        }

        throw new DirectoryNotFoundException("Repository root (MobileOne.slnx) not found above the test binaries.");
    }
}
