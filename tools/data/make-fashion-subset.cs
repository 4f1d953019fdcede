#:project ../../src/MobileOne/MobileOne.csproj
// Regenerates the Fashion-MNIST subset bundled in src/MobileOne/Data/Resources from Debian's
// dataset-fashion-mnist files: the first 500 training and the first 100 test images of each class,
// in file order. Run from the repository root:
//   dotnet run tools/data/make-fashion-subset.cs [source-dir]
// The IDX content (not the gzip bytes, which depend on the zlib build) is reproducible; the chosen
// indices are written next to the files and checked by the tests when the Debian files are present.
using System.Globalization;
using System.Text;
using MobileOne.Data;

string source = args.Length > 0 ? args[0] : FashionMnist.SystemDirectory;
string target = Path.Combine("src", "MobileOne", "Data", "Resources");
Directory.CreateDirectory(target);
var report = new StringBuilder();
report.AppendLine("# Indices into Debian's dataset-fashion-mnist files (0-based, file order) that form the bundled subset.");
foreach (var (split, perClass) in new[] { (FashionMnistSplit.Train, FashionMnist.BundledTrainPerClass), (FashionMnistSplit.Test, FashionMnist.BundledTestPerClass) })
{
    var full = FashionMnist.LoadDirectory(source, split);
    var taken = new int[FashionMnist.ClassNames.Count];
    var indices = new List<int>();
    for (int i = 0; i < full.Count; i++)
    {
        int label = full.GetLabel(i);
        if (taken[label] < perClass)
        {
            taken[label]++;
            indices.Add(i);
        }
    }

    int size = full.Height * full.Width;
    var pixels = new byte[indices.Count * size];
    var labels = new byte[indices.Count];
    for (int k = 0; k < indices.Count; k++)
    {
        full.Pixels(indices[k]).CopyTo(pixels.AsSpan(k * size, size));
        labels[k] = (byte)full.GetLabel(indices[k]);
    }

    IdxFile.Write(Path.Combine(target, $"fashion-mnist-{FashionMnist.ImagesFileName(split)}.gz"), new IdxArray([indices.Count, full.Height, full.Width], pixels), gzip: true);
    IdxFile.Write(Path.Combine(target, $"fashion-mnist-{FashionMnist.LabelsFileName(split)}.gz"), new IdxArray([indices.Count], labels), gzip: true);
    report.AppendLine(CultureInfo.InvariantCulture, $"{split.ToString().ToLowerInvariant()}: {string.Join(' ', indices)}");
    Console.WriteLine($"{split}: {indices.Count} images ({perClass} per class) from {full.Source}");
}

File.WriteAllText(Path.Combine(target, "fashion-mnist-subset-indices.txt"), report.ToString());
