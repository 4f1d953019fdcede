namespace MobileOne.IO;

/// <summary>
/// A checkpoint could not be read, written or mapped to a model. The message always names the file
/// and, where one is involved, the tensor key, so a user can act on it without a stack trace.
/// </summary>
public sealed class CheckpointException : Exception
{
    /// <summary>A refusal of <paramref name="path"/>: <paramref name="problem"/> says what is wrong, <paramref name="key"/> names the tensor when one is at fault.</summary>
    public CheckpointException(string path, string problem, string? key = null, Exception? inner = null)
        : base(Compose(path, problem, key), inner)
    {
        FilePath = path;
        Key = key;
        Problem = problem;
    }

    /// <summary>The file that was refused.</summary>
    public string FilePath { get; }

    /// <summary>The tensor or entry at fault, when there is one.</summary>
    public string? Key { get; }

    /// <summary>What is wrong, without the file name.</summary>
    public string Problem { get; }

    private static string Compose(string path, string problem, string? key) =>
        key is null ? $"{path}: {problem}" : $"{path}: key '{key}': {problem}";
}
