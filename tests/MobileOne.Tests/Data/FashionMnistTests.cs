using MobileOne.Data;

namespace MobileOne.Tests.Data;

public class FashionMnistTests
{
    [Fact]
    public void BundledSubsetHasBalancedClasses()
    {
        var train = FashionMnist.LoadBundled(FashionMnistSplit.Train);
        var test = FashionMnist.LoadBundled(FashionMnistSplit.Test);
        Assert.Equal(FashionMnist.BundledSource, train.Source);
        Assert.Equal(5000, train.Count);
        Assert.Equal(1000, test.Count);
        Assert.Equal((28, 28, 1), (train.Height, train.Width, train.Channels));
        Assert.Equal(10, train.ClassNames.Count);
        Assert.All(Enumerable.Range(0, 10), c => Assert.Equal(500, train.Labels.ToArray().Count(l => l == c)));
        Assert.All(Enumerable.Range(0, 10), c => Assert.Equal(100, test.Labels.ToArray().Count(l => l == c)));

        // Real images, not blanks: the mean pixel of Fashion-MNIST is about 0.286 * 255.
        double mean = Enumerable.Range(0, train.Count).Average(i => train.Pixels(i).ToArray().Average(b => (double)b));
        Assert.InRange(mean / 255, 0.25, 0.33);
    }

    [FashionMnistSystemFact]
    public void BundledSubsetEqualsTheDebianFilesAtTheRecordedIndices()
    {
        string record = Path.Combine(DataTestHelpers.RepositoryRoot(), "src", "MobileOne", "Data", "Resources", "fashion-mnist-subset-indices.txt");
        var lines = File.ReadAllLines(record).Where(l => !l.StartsWith('#')).ToDictionary(l => l[..l.IndexOf(':')], l => l[(l.IndexOf(':') + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse).ToArray());
        foreach (var (split, key) in new[] { (FashionMnistSplit.Train, "train"), (FashionMnistSplit.Test, "test") })
        {
            var full = FashionMnist.LoadDirectory(FashionMnist.SystemDirectory, split);
            var bundled = FashionMnist.LoadBundled(split);
            int[] indices = lines[key];
            Assert.Equal(bundled.Count, indices.Length);
            for (int k = 0; k < indices.Length; k++)
            {
                Assert.Equal(full.GetLabel(indices[k]), bundled.GetLabel(k));
                Assert.True(full.Pixels(indices[k]).SequenceEqual(bundled.Pixels(k)), $"{key} image {k} differs from index {indices[k]}");
            }
        }
    }

    [FashionMnistSystemFact]
    public void LoadsTheDebianFilesWhenNoFolderIsGiven()
    {
        var train = FashionMnist.Load(FashionMnistSplit.Train);
        var test = FashionMnist.Load(FashionMnistSplit.Test);
        Assert.Equal(FashionMnist.SystemDirectory, train.Source);
        Assert.Equal(60000, train.Count);
        Assert.Equal(10000, test.Count);
        Assert.All(Enumerable.Range(0, 10), c => Assert.Equal(6000, train.Labels.ToArray().Count(l => l == c)));
    }

    [Fact]
    public void AnExplicitFolderIsUsedAndReported()
    {
        using var dir = new TempDir();
        IdxFile.Write(dir.File("t10k-images-idx3-ubyte"), new IdxArray([2, 28, 28], new byte[2 * 28 * 28]), gzip: false);
        IdxFile.Write(dir.File("t10k-labels-idx1-ubyte.gz"), new IdxArray([2], [3, 4]), gzip: true);
        var set = FashionMnist.Load(FashionMnistSplit.Test, dir.Path);
        Assert.Equal(Path.GetFullPath(dir.Path), set.Source);
        Assert.Equal(2, set.Count);
        Assert.Equal(4, set.GetLabel(1));
    }

    [Fact]
    public void MissingOrEmptyFoldersAreClearErrors()
    {
        using var dir = new TempDir();
        string missing = dir.File("nope");
        var e = Assert.Throws<DatasetException>(() => FashionMnist.Load(FashionMnistSplit.Train, missing));
        Assert.Equal($"Fashion-MNIST folder '{missing}' does not exist; expected a folder holding train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz].", e.Message);

        e = Assert.Throws<DatasetException>(() => FashionMnist.Load(FashionMnistSplit.Train, dir.Path));
        Assert.Equal($"Fashion-MNIST folder '{dir.Path}' is empty; expected train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz].", e.Message);

        IdxFile.Write(dir.File("train-images-idx3-ubyte.gz"), new IdxArray([1, 28, 28], new byte[28 * 28]), gzip: true);
        e = Assert.Throws<DatasetException>(() => FashionMnist.Load(FashionMnistSplit.Train, dir.Path));
        Assert.Equal($"Fashion-MNIST folder '{dir.Path}' has no train-labels-idx1-ubyte[.gz]; expected train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz].", e.Message);
    }
}
