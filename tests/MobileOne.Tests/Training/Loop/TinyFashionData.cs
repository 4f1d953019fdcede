using MobileOne.Data;

namespace MobileOne.Tests.Training.Loop;

/// <summary>
/// A small Fashion-MNIST-shaped IDX folder (28x28 grey, 10 classes) whose images depend on the label, so a few
/// training steps visibly learn; keeps trainer tests independent of the system data and fast.
/// </summary>
internal static class TinyFashionData
{
    public static string Write(string dir, int trainCount = 256, int testCount = 100, int seed = 11)
    {
        Directory.CreateDirectory(dir);
        WriteSplit(dir, "train", trainCount, seed);
        WriteSplit(dir, "t10k", testCount, seed + 1);
        return dir;
    }

    private static void WriteSplit(string dir, string prefix, int count, int seed)
    {
        var rng = new Random(seed);
        var pixels = new byte[count * 28 * 28];
        var labels = new byte[count];
        for (int i = 0; i < count; i++)
        {
            int label = i % 10;
            labels[i] = (byte)label;
            for (int y = 0; y < 28; y++)
            {
                for (int x = 0; x < 28; x++)
                {
                    // A bright band whose row depends on the class, plus noise.
                    bool band = y / 3 == label;
                    pixels[(i * 784) + (y * 28) + x] = (byte)Math.Clamp((band ? 200 : 30) + rng.Next(-30, 30), 0, 255);
                }
            }
        }

        IdxFile.Write(Path.Combine(dir, $"{prefix}-images-idx3-ubyte.gz"), new IdxArray([count, 28, 28], pixels), gzip: true);
        IdxFile.Write(Path.Combine(dir, $"{prefix}-labels-idx1-ubyte.gz"), new IdxArray([count], labels), gzip: true);
    }
}
