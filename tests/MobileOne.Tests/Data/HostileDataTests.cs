using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using MobileOne.Data;
using MobileOne.Imaging;
using MobileOne.IO.PyTorch;

namespace MobileOne.Tests.Data;

/// <summary>Dataset files that declare far more than they hold, refused within budget (docs/reliability.md).</summary>
public sealed class HostileDataTests
{
    private const long MB = 1 << 20;

    private static byte[] IdxHeader(int magic, params int[] dims)
    {
        var bytes = new byte[4 + (4 * dims.Length)];
        BinaryPrimitives.WriteInt32BigEndian(bytes, magic);
        for (int i = 0; i < dims.Length; i++)
        {
            BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(4 + (4 * i)), dims[i]);
        }

        return bytes;
    }

    [Fact]
    public void Idx_dimensions_whose_product_wraps_to_zero_are_refused()
    {
        // 65536^4 = 2^64 wrapped to 0 in a long, so this 20-byte file was accepted as an empty 4-d array.
        byte[] file = IdxHeader(0x0804, 65536, 65536, 65536, 65536);

        var ex = Budget.Refused<DatasetException>(() => IdxFile.Parse(file, "wrap.idx", 0x0804), maxAllocatedBytes: 1 * MB);

        Assert.StartsWith("wrap.idx: the header declares dimensions [65536, 65536, ...]", ex.Message);
        Assert.Contains("more than the", ex.Message);
    }

    [Fact]
    public void Gzip_idx_declaring_far_more_than_it_can_inflate_to_is_refused_before_inflating()
    {
        using var dir = new TempDir();
        // 60000 x 28 x 28 = 47 MB declared by a gzip file of a few dozen bytes that holds only the header.
        string path = dir.File("train-images-idx3-ubyte.gz");
        using (var z = new GZipStream(File.Create(path), CompressionLevel.Optimal))
        {
            z.Write(IdxHeader(IdxFile.ImagesMagic, 60000, 28, 28));
        }

        var ex = Budget.Refused<DatasetException>(() => IdxFile.Read(path, IdxFile.ImagesMagic), maxAllocatedBytes: 1 * MB);

        Assert.Contains("train-images-idx3-ubyte.gz: the header declares [60000, 28, 28] = 47040000 bytes of data", ex.Message);
        Assert.Contains($"{IdxFile.MaxCompressionRatio}:1", ex.Message);
    }

    [Fact]
    public void Gzip_idx_with_a_trailing_bomb_stops_inflating_at_the_ratio()
    {
        using var dir = new TempDir();
        // A valid 2-label file followed by 64 MB of zeros (about 64 KB deflated).
        string path = dir.File("labels.gz");
        using (var z = new GZipStream(File.Create(path), CompressionLevel.Optimal))
        {
            z.Write(IdxHeader(IdxFile.LabelsMagic, 2));
            z.Write(new byte[] { 1, 2 });
            z.Write(new byte[64 << 20]);
        }

        var ex = Budget.Refused<DatasetException>(() => IdxFile.Read(path, IdxFile.LabelsMagic), maxAllocatedBytes: 2 * MB);

        Assert.Contains("labels.gz: more than", ex.Message);
        Assert.Contains("unexpected bytes after the 2 bytes of data", ex.Message);
    }

    /// <summary>A PNG that holds only its header: an RGB image of the given size.</summary>
    internal static byte[] PngHeaderOnly(int width, int height)
    {
        var png = new List<byte>([0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A]);
        var ihdr = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(ihdr, width);
        BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), height);
        ihdr[8] = 8; // bit depth
        ihdr[9] = 2; // truecolour
        Chunk(png, "IHDR", ihdr);
        Chunk(png, "IDAT", [0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]);
        Chunk(png, "IEND", []);
        return [.. png];

        static void Chunk(List<byte> png, string type, byte[] data)
        {
            var length = new byte[4];
            BinaryPrimitives.WriteInt32BigEndian(length, data.Length);
            png.AddRange(length);
            byte[] typed = [.. Encoding.ASCII.GetBytes(type), .. data];
            png.AddRange(typed);
            var crc = new byte[4];
            BinaryPrimitives.WriteUInt32BigEndian(crc, Crc32.Compute(typed));
            png.AddRange(crc);
        }
    }

    [Fact]
    public void Image_declaring_more_pixels_than_the_limit_is_refused_from_its_header()
    {
        // 20000 x 20000 = 400M pixels (1.6 GB as RGBA) declared by a 60-byte PNG; Pillow's limit is 89M.
        byte[] png = PngHeaderOnly(20000, 20000);

        var ex = Budget.Refused<ImageDecodeException>(() => SkiaImageDecoder.Instance.Decode(png, "bomb.png", 3), maxAllocatedBytes: 1 * MB);

        Assert.Contains("bomb.png", ex.Message);
        Assert.Contains($"declares 20000x20000 = 400000000 pixels, more than the {IImageDecoder.MaxPixels}", ex.Message);
    }

    [Fact]
    public void Image_folder_holds_any_decoder_to_the_pixel_limit()
    {
        using var dir = new TempDir();
        Directory.CreateDirectory(dir.File("a"));
        File.WriteAllBytes(dir.File("a/x.raw"), [0]);
        var set = ImageFolderDataset.Open(dir.Path, new HugeDecoder());

        var ex = Assert.Throws<ImageDecodeException>(() => set.Load(0));

        Assert.Contains("x.raw", ex.Message);
        Assert.Contains($"decoded to 9500x9500 = 90250000 pixels, more than the {IImageDecoder.MaxPixels}", ex.Message);
    }

    // A third-party decoder without the header check (it returns a 1-channel image to keep the test small).
    private sealed class HugeDecoder : IImageDecoder
    {
        public IReadOnlyCollection<string> Extensions => [".raw"];

        public ByteImage Decode(string path, int channels) => ByteImage.Rent(9500, 9500, 1);
    }
}
