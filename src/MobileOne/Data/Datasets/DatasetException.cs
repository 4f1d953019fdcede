namespace MobileOne.Data;

/// <summary>
/// A data set cannot be used as given: a missing folder, an IDX file with the wrong magic number or a
/// truncated body, counts that disagree, a label outside the model's classes. The message names the file
/// or folder and what was expected, so a user can act on it without a stack trace.
/// </summary>
public sealed class DatasetException : Exception
{
    /// <summary>A data set problem described by <paramref name="message"/>.</summary>
    public DatasetException(string message, Exception? inner = null)
        : base(message, inner)
    {
    }
}

/// <summary>
/// One image could not be decoded (corrupt, truncated, unsupported). The loader skips such a sample,
/// counts it and reports the file; it is never fatal to an epoch.
/// </summary>
public sealed class ImageDecodeException : Exception
{
    /// <paramref name="path"/> could not be decoded: <paramref name="problem"/> says why.
    public ImageDecodeException(string path, string problem, Exception? inner = null)
        : base($"{path}: {problem}", inner)
    {
        FilePath = path;
        Problem = problem;
    }

    /// <summary>The image file (or sample description).</summary>
    public string FilePath { get; }

    /// <summary>Why it could not be decoded, without the file name.</summary>
    public string Problem { get; }
}
