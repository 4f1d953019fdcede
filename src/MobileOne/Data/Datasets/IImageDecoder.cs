namespace MobileOne.Data;

/// <summary>
/// Turns an image file into 8-bit pixels. The core library stays free of native code; MobileOne.Imaging
/// implements this with SkiaSharp (SkiaImageDecoder).
/// </summary>
public interface IImageDecoder
{
    /// <summary>File extensions (lower case, with the dot) this decoder reads; ImageFolder lists only these.</summary>
    IReadOnlyCollection<string> Extensions { get; }

    /// <summary>
    /// Decodes <paramref name="path"/> to <paramref name="channels"/> interleaved channels (1 grey, 3 RGB,
    /// 4 RGBA), upright (EXIF orientation applied). Throws <see cref="ImageDecodeException"/> when the file
    /// cannot be decoded.
    /// </summary>
    ByteImage Decode(string path, int channels);
}
