namespace MobileOne.Imaging;

/// <summary>Choices of <see cref="SkiaImageDecoder"/> beyond the channel count.</summary>
public sealed record ImageDecodeOptions
{
    /// <summary>What <see cref="MobileOne.Data.IImageDecoder"/> callers get: EXIF orientation applied, the decoder's own size limit.</summary>
    public static ImageDecodeOptions Default { get; } = new();

    /// <summary>
    /// Turn the image upright by its EXIF orientation (what a photo viewer shows). PIL's Image.open and timm's
    /// pipelines do not; ImageOps.exif_transpose does.
    /// </summary>
    public bool ApplyExifOrientation { get; init; } = true;

    /// <summary>
    /// Images with more pixels than this are refused before any pixel is decoded; the decoder never goes above
    /// <see cref="MobileOne.Data.IImageDecoder.MaxPixels"/> (Pillow's Image.MAX_IMAGE_PIXELS) whatever this says.
    /// </summary>
    public long MaxPixels { get; init; } = long.MaxValue;

    /// <summary>
    /// Refuse a file too small to hold the pixels its header declares (<see cref="EncodedSizeBound"/>). Off only in the
    /// fuzzer, which decodes what the bound refused once more without it to check that no decodable file was refused.
    /// </summary>
    internal bool CheckEncodedSize { get; init; } = true;
}
