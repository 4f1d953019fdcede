using System.Runtime.InteropServices;
using MobileOne.Data;
using MobileOne.Data.Loading;
using MobileOne.Data.Transforms;
using MobileOne.Imaging;
using SkiaSharp;

namespace MobileOne.Tests.Data;

public class ImageFolderTests
{
    [Fact]
    public void ClassesAreSortedFoldersAndImagesAreListedByExtension()
    {
        using var dir = new TempDir();
        WriteImage(dir.File("zebra/b.png"), Solid(5, 4, 10, 20, 30), SKEncodedImageFormat.Png);
        WriteImage(dir.File("zebra/a.PNG"), Solid(5, 4, 10, 20, 30), SKEncodedImageFormat.Png);
        WriteImage(dir.File("Apple/nested/x.jpg"), Solid(5, 4, 200, 100, 50), SKEncodedImageFormat.Jpeg);
        WriteImage(dir.File("cat/1.jpeg"), Solid(5, 4, 0, 0, 0), SKEncodedImageFormat.Jpeg);
        File.WriteAllText(dir.File("cat/notes.txt"), "not an image");
        File.WriteAllText(dir.File("README"), "ignored: not in a class folder");

        var set = ImageFolderDataset.Open(dir.Path, SkiaImageDecoder.Instance);
        Assert.Equal(new[] { "Apple", "cat", "zebra" }, set.ClassNames);
        Assert.Equal(4, set.Count);
        Assert.Equal(new[] { 1, 1, 2 }, set.CountsPerClass());
        Assert.Equal(new[] { "x.jpg", "1.jpeg", "a.PNG", "b.png" }, set.Paths.Select(Path.GetFileName));
        Assert.Equal(new[] { 0, 1, 2, 2 }, Enumerable.Range(0, 4).Select(set.GetLabel));
    }

    [Fact]
    public void PngDecodesToExactRgbGreyAndUnpremultipliedAlpha()
    {
        using var dir = new TempDir();
        var pixels = new byte[4 * 3 * 4];
        for (int i = 0; i < 12; i++)
        {
            pixels[(i * 4) + 0] = (byte)(i * 20);
            pixels[(i * 4) + 1] = (byte)(255 - (i * 9));
            pixels[(i * 4) + 2] = (byte)(i * 3);
            pixels[(i * 4) + 3] = (byte)(i == 5 ? 128 : 255);
        }

        WriteImage(dir.File("p.png"), (4, 3, pixels), SKEncodedImageFormat.Png);
        using var rgb = SkiaImageDecoder.Instance.Decode(dir.File("p.png"), 3);
        using var rgba = SkiaImageDecoder.Instance.Decode(dir.File("p.png"), 4);
        using var grey = SkiaImageDecoder.Instance.Decode(dir.File("p.png"), 1);
        Assert.Equal((4, 3, 3), (rgb.Width, rgb.Height, rgb.Channels));
        for (int i = 0; i < 12; i++)
        {
            // RGB order (not Skia's BGRA default) and the translucent pixel's colour kept as stored.
            Assert.Equal(pixels[i * 4], rgb.Pixels[i * 3]);
            Assert.Equal(pixels[(i * 4) + 1], rgb.Pixels[(i * 3) + 1]);
            Assert.Equal(pixels[(i * 4) + 2], rgb.Pixels[(i * 3) + 2]);
            Assert.Equal(pixels[(i * 4) + 3], rgba.Pixels[(i * 4) + 3]);
            int luma = ((pixels[i * 4] * 299) + (pixels[(i * 4) + 1] * 587) + (pixels[(i * 4) + 2] * 114) + 500) / 1000;
            Assert.InRange(grey.Pixels[i], luma - 1, luma + 1);
        }
    }

    [Fact]
    public void ExifOrientationIsApplied()
    {
        // 32x16 stored image, quadrants red / green (top) and blue / white (bottom), saved as JPEG with an
        // EXIF APP1 saying orientation 6 (rotate 90 degrees clockwise to display). Upright it is 16x32 with
        // the stored top-left (red) at the top right and the stored bottom-left (blue) at the top left.
        using var dir = new TempDir();
        var pixels = new byte[32 * 16 * 4];
        for (int y = 0; y < 16; y++)
        {
            for (int x = 0; x < 32; x++)
            {
                (byte r, byte g, byte b) = (x < 16, y < 8) switch
                {
                    (true, true) => ((byte)255, (byte)0, (byte)0),
                    (false, true) => ((byte)0, (byte)255, (byte)0),
                    (true, false) => ((byte)0, (byte)0, (byte)255),
                    _ => ((byte)255, (byte)255, (byte)255),
                };
                int p = ((y * 32) + x) * 4;
                (pixels[p], pixels[p + 1], pixels[p + 2], pixels[p + 3]) = (r, g, b, 255);
            }
        }

        byte[] jpeg = Encode((32, 16, pixels), SKEncodedImageFormat.Jpeg);
        File.WriteAllBytes(dir.File("plain.jpg"), jpeg);
        File.WriteAllBytes(dir.File("rotated.jpg"), WithExifOrientation(jpeg, 6));

        using var plain = SkiaImageDecoder.Instance.Decode(dir.File("plain.jpg"), 3);
        Assert.Equal((32, 16), (plain.Width, plain.Height));
        AssertColour(plain, 4, 4, 255, 0, 0);

        using var upright = SkiaImageDecoder.Instance.Decode(dir.File("rotated.jpg"), 3);
        Assert.Equal((16, 32), (upright.Width, upright.Height));
        AssertColour(upright, 12, 4, 255, 0, 0);
        AssertColour(upright, 4, 4, 0, 0, 255);
        AssertColour(upright, 12, 28, 0, 255, 0);
        AssertColour(upright, 4, 28, 255, 255, 255);
    }

    [Fact]
    public void EveryExifOrientationMapsTheStoredCorners()
    {
        // Stored 3x2 image with distinct values; expected upright layouts written out per EXIF definition.
        byte[] stored = [1, 2, 3, 4, 5, 6];
        var rgba = stored.SelectMany(v => new byte[] { v, v, v, 255 }).ToArray();
        var expected = new Dictionary<SKEncodedOrigin, (int W, byte[] Values)>
        {
            [SKEncodedOrigin.TopLeft] = (3, [1, 2, 3, 4, 5, 6]),
            [SKEncodedOrigin.TopRight] = (3, [3, 2, 1, 6, 5, 4]),
            [SKEncodedOrigin.BottomRight] = (3, [6, 5, 4, 3, 2, 1]),
            [SKEncodedOrigin.BottomLeft] = (3, [4, 5, 6, 1, 2, 3]),
            [SKEncodedOrigin.LeftTop] = (2, [1, 4, 2, 5, 3, 6]),
            [SKEncodedOrigin.RightTop] = (2, [4, 1, 5, 2, 6, 3]),
            [SKEncodedOrigin.RightBottom] = (2, [6, 3, 5, 2, 4, 1]),
            [SKEncodedOrigin.LeftBottom] = (2, [3, 6, 2, 5, 1, 4]),
        };
        foreach (var (origin, (w, values)) in expected)
        {
            using var image = SkiaImageDecoder.Orient(rgba, 3, 2, origin, 1);
            Assert.Equal(w, image.Width);
            Assert.Equal(values, image.Span.ToArray());
        }
    }

    [Fact]
    public void CorruptImagesAreSkippedCountedAndReported()
    {
        using var dir = new TempDir();
        for (int i = 0; i < 3; i++)
        {
            WriteImage(dir.File($"a/{i}.png"), Solid(8, 8, 50, 60, 70), SKEncodedImageFormat.Png);
            WriteImage(dir.File($"b/{i}.jpg"), Solid(8, 8, 90, 80, 70), SKEncodedImageFormat.Jpeg);
        }

        File.WriteAllBytes(dir.File("a/garbage.png"), Enumerable.Range(0, 300).Select(i => (byte)(i * 13)).ToArray());
        byte[] good = File.ReadAllBytes(dir.File("b/0.jpg"));
        File.WriteAllBytes(dir.File("b/truncated.jpg"), good[..(good.Length / 3)]);
        File.WriteAllBytes(dir.File("b/empty.jpg"), []);

        var set = ImageFolderDataset.Open(dir.Path, SkiaImageDecoder.Instance);
        Assert.Equal(9, set.Count);
        var e = Assert.Throws<ImageDecodeException>(() => set.Load(Array.IndexOf(set.Paths.ToArray(), dir.File("a/garbage.png"))));
        Assert.Equal($"{dir.File("a/garbage.png")}: not a decodable image (unrecognised or unsupported format).", e.Message);
        e = Assert.Throws<ImageDecodeException>(() => set.Load(Array.IndexOf(set.Paths.ToArray(), dir.File("b/empty.jpg"))));
        Assert.Equal($"{dir.File("b/empty.jpg")}: the file is empty.", e.Message);

        var transform = new SampleTransform(3, 8, 8, null, Normalization.ImageNet);
        var loader = new DataLoader(set, transform, new DataLoaderOptions { BatchSize = 4, Workers = 2, Shuffle = false, NumClasses = 2 });
        var batches = loader.Epoch(0).ToList();
        Assert.Equal(3, batches.Count);
        Assert.Equal(6, batches.Sum(b => b.Count));
        Assert.Equal(3, loader.SkippedImages);
        Assert.Equal(
            new[] { dir.File("a/garbage.png"), dir.File("b/empty.jpg"), dir.File("b/truncated.jpg") },
            loader.SkippedList.Select(s => s.File).Order(StringComparer.Ordinal));
        Assert.All(batches, b => Assert.Equal(b.Count, b.Images.Dim(0)));
        Assert.Equal(3, batches.Sum(b => b.Skipped.Count));
    }

    [Fact]
    public void MissingEmptyOrClasslessRootsAreClearErrors()
    {
        using var dir = new TempDir();
        string exts = ".bmp, .gif, .ico, .jpeg, .jpg, .png, .wbmp, .webp";
        string missing = dir.File("missing");
        var e = Assert.Throws<DatasetException>(() => ImageFolderDataset.Open(missing, SkiaImageDecoder.Instance));
        Assert.Equal($"Image folder '{missing}' does not exist; expected one subfolder per class holding images ({exts}).", e.Message);

        e = Assert.Throws<DatasetException>(() => ImageFolderDataset.Open(dir.Path, SkiaImageDecoder.Instance));
        Assert.Equal($"Image folder '{dir.Path}' is empty; expected one subfolder per class holding images ({exts}).", e.Message);

        File.WriteAllText(dir.File("loose.jpg"), "x");
        e = Assert.Throws<DatasetException>(() => ImageFolderDataset.Open(dir.Path, SkiaImageDecoder.Instance));
        Assert.Equal($"Image folder '{dir.Path}' has no class subfolders; expected one subfolder per class holding images ({exts}).", e.Message);
    }

    [Fact]
    public void AClassFolderWithoutImagesIsAnErrorBeforeAnyWork()
    {
        using var dir = new TempDir();
        WriteImage(dir.File("dog/1.png"), Solid(4, 4, 1, 2, 3), SKEncodedImageFormat.Png);
        Directory.CreateDirectory(dir.File("cat"));
        File.WriteAllText(dir.File("cat/readme.txt"), "no images here");
        var e = Assert.Throws<DatasetException>(() => ImageFolderDataset.Open(dir.Path, SkiaImageDecoder.Instance));
        Assert.Equal(
            $"Class folder '{Path.Combine(dir.Path, "cat")}' holds no images (.bmp, .gif, .ico, .jpeg, .jpg, .png, .wbmp, .webp); every class needs at least one.",
            e.Message);
    }

    [Fact]
    public void AValidationFolderMustHaveTheTrainingClasses()
    {
        using var dir = new TempDir();
        WriteImage(dir.File("a/1.png"), Solid(4, 4, 1, 2, 3), SKEncodedImageFormat.Png);
        WriteImage(dir.File("c/1.png"), Solid(4, 4, 1, 2, 3), SKEncodedImageFormat.Png);
        var e = Assert.Throws<DatasetException>(() => ImageFolderDataset.Open(dir.Path, SkiaImageDecoder.Instance, expectedClasses: ["a", "b"]));
        Assert.Equal($"Image folder '{dir.Path}' has classes that differ from the expected 2: missing [b], unexpected [c].", e.Message);
    }

    [Fact]
    public void LabelsBeyondTheModelsClassesAreReportedWithTheFile()
    {
        using var dir = new TempDir();
        foreach (string c in new[] { "a", "b", "c" })
        {
            WriteImage(dir.File($"{c}/1.png"), Solid(4, 4, 1, 2, 3), SKEncodedImageFormat.Png);
        }

        var set = ImageFolderDataset.Open(dir.Path, SkiaImageDecoder.Instance);
        var transform = new SampleTransform(3, 4, 4, null, Normalization.ImageNet);
        var e = Assert.Throws<DatasetException>(() => new DataLoader(set, transform, new DataLoaderOptions { BatchSize = 2, NumClasses = 2 }));
        Assert.Equal($"{Path.Combine(dir.Path, "c", "1.png")}: label 2 is out of range for 2 classes (expected 0..1).", e.Message);
    }

    internal static (int W, int H, byte[] Rgba) Solid(int w, int h, byte r, byte g, byte b) =>
        (w, h, Enumerable.Range(0, w * h).SelectMany(_ => new[] { r, g, b, (byte)255 }).ToArray());

    internal static void WriteImage(string path, (int W, int H, byte[] Rgba) image, SKEncodedImageFormat format)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, Encode(image, format));
    }

    internal static byte[] Encode((int W, int H, byte[] Rgba) image, SKEncodedImageFormat format, int quality = 100)
    {
        var info = new SKImageInfo(image.W, image.H, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        var handle = GCHandle.Alloc(image.Rgba, GCHandleType.Pinned);
        try
        {
            using var pixmap = new SKPixmap(info, handle.AddrOfPinnedObject(), image.W * 4);
            using var data = pixmap.Encode(format, quality) ?? throw new InvalidOperationException($"SkiaSharp could not encode {format}.");
            return data.ToArray();
        }
        finally
        {
            handle.Free();
        }
    }

    /// <summary>Inserts an APP1 Exif segment (big-endian TIFF, one IFD0 entry: Orientation) after SOI.</summary>
    private static byte[] WithExifOrientation(byte[] jpeg, int orientation)
    {
        Assert.True(jpeg[0] == 0xFF && jpeg[1] == 0xD8, "not a JPEG");
        byte[] tiff =
        [
            (byte)'M', (byte)'M', 0x00, 0x2A, 0x00, 0x00, 0x00, 0x08, // header, IFD0 at offset 8
            0x00, 0x01, // one entry
            0x01, 0x12, 0x00, 0x03, 0x00, 0x00, 0x00, 0x01, 0x00, (byte)orientation, 0x00, 0x00, // Orientation, SHORT, 1 value
            0x00, 0x00, 0x00, 0x00, // no next IFD
        ];
        byte[] exifHeader = [(byte)'E', (byte)'x', (byte)'i', (byte)'f', 0, 0];
        int length = 2 + exifHeader.Length + tiff.Length;
        byte[] segment = [0xFF, 0xE1, (byte)(length >> 8), (byte)length, .. exifHeader, .. tiff];
        return [.. jpeg[..2], .. segment, .. jpeg[2..]];
    }

    private static void AssertColour(ByteImage image, int x, int y, int r, int g, int b)
    {
        int p = ((y * image.Width) + x) * 3;
        Assert.True(
            Math.Abs(image.Pixels[p] - r) <= 8 && Math.Abs(image.Pixels[p + 1] - g) <= 8 && Math.Abs(image.Pixels[p + 2] - b) <= 8,
            $"pixel ({x}, {y}) is ({image.Pixels[p]}, {image.Pixels[p + 1]}, {image.Pixels[p + 2]}), expected about ({r}, {g}, {b})");
    }
}
