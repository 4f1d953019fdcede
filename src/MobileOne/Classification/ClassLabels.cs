using System.Text;
using MobileOne.Data;

namespace MobileOne.Classification;

/// <summary>
/// Class names for a classifier's outputs: ImageNet-1k (OpenCV's list, shipped in the library; see
/// Classification/Resources/NOTICE), Fashion-MNIST, or a text file with one name per line.
/// </summary>
public static class ClassLabels
{
    private const string ImageNetResource = "MobileOne.Classification.imagenet-1k-classes.txt";
    private static readonly Lazy<string[]> ImageNetNames = new(LoadImageNet);

    /// <summary>The 1000 ImageNet-1k class names in index order; a name is its line in OpenCV's list ("tench, Tinca tinca").</summary>
    public static IReadOnlyList<string> ImageNet => ImageNetNames.Value;

    /// <summary>The 10 Fashion-MNIST class names.</summary>
    public static IReadOnlyList<string> FashionMnist => Data.FashionMnist.ClassNames;

    /// <summary>
    /// The names a model with <paramref name="numClasses"/> outputs and <paramref name="inChans"/> input
    /// channels is taken to predict when nothing else is said: ImageNet-1k for 1000 outputs, Fashion-MNIST for a
    /// 10-class grey model (what `mobileone train` and `demo` make of Fashion-MNIST), otherwise none.
    /// </summary>
    public static IReadOnlyList<string>? Default(int numClasses, int inChans) => numClasses switch
    {
        1000 => ImageNet,
        10 when inChans == 1 => FashionMnist,
        _ => null,
    };

    /// <summary>
    /// Reads one class name per line (UTF-8; a trailing empty line is ignored, other empty lines are names).
    /// Throws <see cref="DatasetException"/> naming the file when it cannot be read or holds no names.
    /// </summary>
    public static IReadOnlyList<string> Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string text;
        try
        {
            text = File.ReadAllText(path, Encoding.UTF8);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new DatasetException($"{path}: the labels file cannot be read ({e.Message}).");
        }

        var names = Parse(text);
        if (names.Length == 0)
        {
            throw new DatasetException($"{path}: the labels file holds no class names (one per line expected).");
        }

        return names;
    }

    internal static string[] Parse(string text)
    {
        var lines = text.Replace("\r\n", "\n", StringComparison.Ordinal).Split('\n');
        int count = lines.Length;
        if (count > 0 && lines[count - 1].Length == 0)
        {
            count--;
        }

        return lines[..count];
    }

    private static string[] LoadImageNet()
    {
        using var stream = typeof(ClassLabels).Assembly.GetManifestResourceStream(ImageNetResource)
            ?? throw new InvalidOperationException($"The embedded resource {ImageNetResource} is missing from {typeof(ClassLabels).Assembly.GetName().Name}.");
        using var reader = new StreamReader(stream, Encoding.UTF8);
        var names = Parse(reader.ReadToEnd());
        if (names.Length != 1000)
        {
            throw new InvalidOperationException($"The embedded ImageNet class list has {names.Length} names; 1000 expected.");
        }

        return names;
    }
}
