#:project ../../src/MobileOne.Imaging/MobileOne.Imaging.csproj
// Measures DataLoader throughput (images/s, consumer doing nothing) for
//   1. Fashion-MNIST train, 32x32 batches of 256 with the recipe's augmentation (pad 4 + crop + flip);
//   2. an ImageFolder of generated 256x256 JPEGs with RandomResizedCrop 224 + flip, batches of 64;
// each with 1 and 2 workers, 5 timed epochs after a warm-up; prints median, min and max.
// Run from the repository root:  dotnet run -c Release tools/data/loader-throughput.cs [jpeg-count]
using System.Diagnostics;
using System.Runtime.InteropServices;
using MobileOne.Data;
using MobileOne.Data.Loading;
using MobileOne.Data.Transforms;
using MobileOne.Imaging;
using SkiaSharp;

int jpegCount = args.Length > 0 ? int.Parse(args[0]) : 1024;
var fashion = FashionMnist.Load(FashionMnistSplit.Train);
Console.WriteLine($"Fashion-MNIST train from {fashion.Source}: {fashion.Count} images");
foreach (int workers in new[] { 1, 2 })
{
    var loader = new DataLoader(fashion, DataTransforms.FashionMnistTrain(), new DataLoaderOptions { BatchSize = 256, Workers = workers, Seed = 1 });
    Report($"fashion-mnist 32x32 b256 augment, {workers} worker(s)", loader, fashion.Count);
}

string root = Path.Combine(Path.GetTempPath(), "mobileone-jpeg-bench");
if (!Directory.Exists(root) || Directory.EnumerateFiles(root, "*.jpg", SearchOption.AllDirectories).Count() != jpegCount)
{
    if (Directory.Exists(root))
    {
        Directory.Delete(root, true);
    }

    var rng = new Random(5);
    var rgba = new byte[256 * 256 * 4];
    for (int i = 0; i < jpegCount; i++)
    {
        string dir = Path.Combine(root, $"class{i % 8}");
        Directory.CreateDirectory(dir);
        // Smooth gradients plus noise: compresses like a photo rather than a flat colour.
        int fx = rng.Next(1, 5), fy = rng.Next(1, 5), phase = rng.Next(256);
        for (int p = 0; p < 256 * 256; p++)
        {
            int x = p % 256, y = p / 256;
            rgba[(p * 4) + 0] = (byte)((x * fx) + phase + rng.Next(16));
            rgba[(p * 4) + 1] = (byte)((y * fy) + rng.Next(16));
            rgba[(p * 4) + 2] = (byte)(((x + y) * (fx + fy) / 2) + rng.Next(16));
            rgba[(p * 4) + 3] = 255;
        }

        var handle = GCHandle.Alloc(rgba, GCHandleType.Pinned);
        try
        {
            using var pixmap = new SKPixmap(new SKImageInfo(256, 256, SKColorType.Rgba8888, SKAlphaType.Unpremul), handle.AddrOfPinnedObject());
            using var data = pixmap.Encode(SKEncodedImageFormat.Jpeg, 90) ?? throw new InvalidOperationException("JPEG encoding failed");
            File.WriteAllBytes(Path.Combine(dir, $"{i:D5}.jpg"), data.ToArray());
        }
        finally
        {
            handle.Free();
        }
    }
}

var folder = ImageFolderDataset.Open(root, SkiaImageDecoder.Instance);
Console.WriteLine($"ImageFolder {root}: {folder.Count} JPEGs 256x256 (quality 90), {folder.ClassNames.Count} classes");
foreach (int workers in new[] { 1, 2 })
{
    var loader = new DataLoader(folder, DataTransforms.ImageNetTrain(224), new DataLoaderOptions { BatchSize = 64, Workers = workers, Seed = 1 });
    Report($"imagefolder jpeg 256->RRC 224 + flip b64, {workers} worker(s)", loader, folder.Count);
}

// Decode alone, to separate JPEG decoding from the transforms.
var sw = Stopwatch.StartNew();
for (int i = 0; i < folder.Count; i++)
{
    folder.Load(i).Dispose();
}

Console.WriteLine($"  decode only, 1 thread: {folder.Count / sw.Elapsed.TotalSeconds:F0} images/s");

static void Report(string name, DataLoader loader, int count)
{
    foreach (var b in loader.Epoch(0).Take(Math.Min(20, loader.BatchesPerEpoch)))
    {
        b.Dispose();
    }

    var rates = new List<double>();
    for (int run = 1; run <= 5; run++)
    {
        var sw = Stopwatch.StartNew();
        int images = 0;
        foreach (var batch in loader.Epoch(run))
        {
            images += batch.Count;
            batch.Dispose();
        }

        rates.Add(images / sw.Elapsed.TotalSeconds);
    }

    rates.Sort();
    Console.WriteLine($"  {name}: median {rates[2]:F0} images/s (min {rates[0]:F0}, max {rates[4]:F0}) over 5 epochs of {count}");
}
