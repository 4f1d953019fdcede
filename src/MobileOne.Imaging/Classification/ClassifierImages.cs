using MobileOne.Classification;
using MobileOne.Data;

namespace MobileOne.Imaging;

/// <summary>
/// Encoded image in, model input out: decodes with <see cref="SkiaImageDecoder"/> to the channels an
/// <see cref="ImageClassifier"/> takes, preprocesses into its slot and releases the decoded pixels at once, so a
/// caller holds one decoded image at a time. `predict` (files) and `serve` (request bodies) both go through here.
/// </summary>
public static class ClassifierImages
{
    /// <summary>Reads, decodes and preprocesses <paramref name="path"/> into <paramref name="destination"/>; see <see cref="Preprocess(ImageClassifier, byte[], string, ImageDecodeOptions, Span{float})"/>.</summary>
    public static void Preprocess(this ImageClassifier classifier, string path, ImageDecodeOptions options, Span<float> destination)
    {
        ArgumentNullException.ThrowIfNull(classifier);
        using var image = SkiaImageDecoder.Instance.Decode(path, classifier.Channels, options);
        Preprocess(classifier, image, path, destination);
    }

    /// <summary>
    /// Decodes <paramref name="encoded"/> (<paramref name="name"/> is used in messages) and writes the model input,
    /// <see cref="ImageClassifier.SampleLength"/> floats, into <paramref name="destination"/>. Throws
    /// <see cref="ImageDecodeException"/> for data that is not a decodable image, declares more pixels than
    /// <see cref="ImageDecodeOptions.MaxPixels"/>, or cannot be preprocessed (e.g. a 1 x 100000 strip whose resized
    /// form would not fit in memory).
    /// </summary>
    public static void Preprocess(this ImageClassifier classifier, byte[] encoded, string name, ImageDecodeOptions options, Span<float> destination)
    {
        ArgumentNullException.ThrowIfNull(classifier);
        using var image = SkiaImageDecoder.Instance.Decode(encoded, name, classifier.Channels, options);
        Preprocess(classifier, image, name, destination);
    }

    private static void Preprocess(ImageClassifier classifier, ByteImage image, string name, Span<float> destination)
    {
        try
        {
            classifier.Preprocess(image, destination);
        }
        catch (ArgumentException e)
        {
            throw new ImageDecodeException(name, $"cannot be preprocessed: {e.Message}", e);
        }
    }
}
