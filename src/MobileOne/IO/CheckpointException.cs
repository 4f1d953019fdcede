namespace MobileOne.IO;

/// <summary>
/// A checkpoint could not be read, written or mapped to a model. The message always names the file
/// and, where one is involved, the tensor key, so a user can act on it without a stack trace.
/// </summary>
public sealed class CheckpointException : Exception
{
    public CheckpointException(string path, string problem, string? key = null, Exception? inner = null)
        : base(Compose(path, problem, key), inner)
    {
        FilePath = path;
        Key = key;
        Problem = problem;
    }

    public string FilePath { get; }

    public string? Key { get; }

    public string Problem { get; }

    private static string Compose(string path, string problem, string? key) =>
        key is null ? $"{path}: {problem}" : $"{path}: key '{key}': {problem}";
}
