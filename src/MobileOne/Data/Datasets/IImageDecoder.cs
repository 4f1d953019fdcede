namespace MobileOne.Data;

/// <summary>
/// Turns an image file into 8-bit pixels. The core library stays free of native code; MobileOne.Imaging
/// implements this with SkiaSharp (SkiaImageDecoder).
/// </summary>
public interface IImageDecoder
{
    /// <summary>
    /// The largest image, in pixels, a decoder may produce: Pillow's default decompression-bomb limit
    /// (Image.MAX_IMAGE_PIXELS, 1024 * 1024 * 1024 / 4 / 3, about 89M pixels, 358 MB as RGBA). A few hundred
    /// bytes of PNG or GIF header can declare 65535 x 65535 pixels; decoders refuse anything larger than this
    /// from the header, before allocating pixels. Pillow only warns between this and twice this; we refuse.
    /// </summary>
    public const long MaxPixels = 1024L * 1024 * 1024 / 4 / 3;

    /// <summary>File extensions (lower case, with the dot) this decoder reads; ImageFolder lists only these.</summary>
    IReadOnlyCollection<string> Extensions { get; }

    /// <summary>
    /// Decodes <paramref name="path"/> to <paramref name="channels"/> interleaved channels (1 grey, 3 RGB,
    /// 4 RGBA), upright (EXIF orientation applied). Throws <see cref="ImageDecodeException"/> when the file
    /// cannot be decoded or declares more than <see cref="MaxPixels"/> pixels.
    /// </summary>
    ByteImage Decode(string path, int channels);
}
