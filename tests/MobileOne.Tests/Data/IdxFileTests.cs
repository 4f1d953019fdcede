using System.Buffers.Binary;
using System.IO.Compression;
using MobileOne.Data;

namespace MobileOne.Tests.Data;

public class IdxFileTests
{
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void RoundTripsImagesAndLabels(bool gzip)
    {
        using var dir = new TempDir();
        var pixels = Enumerable.Range(0, 3 * 4 * 5).Select(i => (byte)(i * 7)).ToArray();
        IdxFile.Write(dir.File("images"), new IdxArray([3, 4, 5], pixels), gzip);
        IdxFile.Write(dir.File("labels"), new IdxArray([3], [2, 0, 9]), gzip);

        // The header is written by hand here, independently of the writer, for the raw case.
        byte[] onDisk = File.ReadAllBytes(dir.File("images"));
        Assert.Equal(gzip, onDisk[0] == 0x1F && onDisk[1] == 0x8B);
        byte[] raw = gzip ? Gunzip(onDisk) : onDisk;
        Assert.Equal(new byte[] { 0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 5 }, raw[..16]);

        var images = IdxFile.Read(dir.File("images"), IdxFile.ImagesMagic);
        Assert.Equal(new[] { 3, 4, 5 }, images.Dimensions);
        Assert.Equal(pixels, images.Data);

        var set = InMemoryImageDataset.FromIdxFiles(dir.File("images"), dir.File("labels"), ["a", "b"]);
        Assert.Equal(3, set.Count);
        Assert.Equal((4, 5, 1), (set.Height, set.Width, set.Channels));
        Assert.Equal(new[] { 2, 0, 9 }, set.Labels.ToArray());
        using var second = set.Load(1);
        Assert.Equal(pixels.AsSpan(20, 20).ToArray(), second.Span.ToArray());
        Assert.Equal(dir.File("images") + "[1]", set.Describe(1));
    }

    [Fact]
    public void WrongMagicNamesFileAndExpectation()
    {
        using var dir = new TempDir();
        IdxFile.Write(dir.File("labels.gz"), new IdxArray([2], [1, 2]), gzip: true);
        var e = Assert.Throws<DatasetException>(() => IdxFile.Read(dir.File("labels.gz"), IdxFile.ImagesMagic));
        Assert.Equal($"{dir.File("labels.gz")}: magic number 2049 (0x00000801), expected 2051 (0x00000803: IDX images, unsigned bytes, 3 dimensions).", e.Message);

        IdxFile.Write(dir.File("images"), new IdxArray([1, 2, 2], [1, 2, 3, 4]), gzip: false);
        e = Assert.Throws<DatasetException>(() => IdxFile.Read(dir.File("images"), IdxFile.LabelsMagic));
        Assert.Equal($"{dir.File("images")}: magic number 2051 (0x00000803), expected 2049 (0x00000801: IDX labels, unsigned bytes, 1 dimension).", e.Message);
    }

    [Fact]
    public void TruncatedImagesAreReported()
    {
        using var dir = new TempDir();
        byte[] bytes = Header(IdxFile.ImagesMagic, 10, 28, 28).Concat(new byte[100]).ToArray();
        File.WriteAllBytes(dir.File("images"), bytes);
        var e = Assert.Throws<DatasetException>(() => IdxFile.Read(dir.File("images"), IdxFile.ImagesMagic));
        Assert.Equal($"{dir.File("images")}: truncated: the header declares [10, 28, 28] = 7840 bytes of data but only 100 bytes follow.", e.Message);

        File.WriteAllBytes(dir.File("short"), bytes[..10]);
        e = Assert.Throws<DatasetException>(() => IdxFile.Read(dir.File("short"), IdxFile.ImagesMagic));
        Assert.Equal($"{dir.File("short")}: truncated IDX header: 10 bytes, expected 16 for 3 dimensions.", e.Message);
    }

    [Fact]
    public void TruncatedLabelsAreReported()
    {
        using var dir = new TempDir();
        byte[] bytes = Header(IdxFile.LabelsMagic, 60000).Concat(new byte[59999]).ToArray();
        using (var z = new GZipStream(File.Create(dir.File("labels.gz")), CompressionLevel.Fastest))
        {
            z.Write(bytes);
        }

        var e = Assert.Throws<DatasetException>(() => IdxFile.Read(dir.File("labels.gz"), IdxFile.LabelsMagic));
        Assert.Equal($"{dir.File("labels.gz")}: truncated: the header declares [60000] = 60000 bytes of data but only 59999 bytes follow.", e.Message);
    }

    [Fact]
    public void TruncatedGzipStreamIsReported()
    {
        using var dir = new TempDir();
        IdxFile.Write(dir.File("images.gz"), new IdxArray([50, 28, 28], new byte[50 * 28 * 28].Select((_, i) => (byte)(i * 31 % 251)).ToArray()), gzip: true);
        byte[] whole = File.ReadAllBytes(dir.File("images.gz"));
        File.WriteAllBytes(dir.File("images.gz"), whole[..(whole.Length / 2)]);
        var e = Assert.Throws<DatasetException>(() => IdxFile.Read(dir.File("images.gz"), IdxFile.ImagesMagic));
        Assert.StartsWith($"{dir.File("images.gz")}: ", e.Message);
        Assert.True(e.Message.Contains("truncated", StringComparison.Ordinal), e.Message);
    }

    [Fact]
    public void TrailingBytesAreReported()
    {
        using var dir = new TempDir();
        File.WriteAllBytes(dir.File("labels"), Header(IdxFile.LabelsMagic, 2).Concat(new byte[] { 1, 2, 3 }).ToArray());
        var e = Assert.Throws<DatasetException>(() => IdxFile.Read(dir.File("labels"), IdxFile.LabelsMagic));
        Assert.Equal($"{dir.File("labels")}: 1 unexpected bytes after the 2 bytes of data that the header [2] declares.", e.Message);
    }

    [Fact]
    public void ImageAndLabelCountsMustMatch()
    {
        using var dir = new TempDir();
        IdxFile.Write(dir.File("images"), new IdxArray([3, 2, 2], new byte[12]), gzip: false);
        IdxFile.Write(dir.File("labels"), new IdxArray([4], [0, 1, 2, 3]), gzip: false);
        var e = Assert.Throws<DatasetException>(() => InMemoryImageDataset.FromIdxFiles(dir.File("images"), dir.File("labels"), ["x"]));
        Assert.Equal($"{dir.File("images")} holds 3 images but {dir.File("labels")} holds 4 labels; the counts must match.", e.Message);
    }

    private static byte[] Header(int magic, params int[] dims)
    {
        var header = new byte[4 + (4 * dims.Length)];
        BinaryPrimitives.WriteInt32BigEndian(header, magic);
        for (int i = 0; i < dims.Length; i++)
        {
            BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(4 + (4 * i)), dims[i]);
        }

        return header;
    }

    private static byte[] Gunzip(byte[] bytes)
    {
        using var z = new GZipStream(new MemoryStream(bytes), CompressionMode.Decompress);
        using var output = new MemoryStream();
        z.CopyTo(output);
        return output.ToArray();
    }
}
