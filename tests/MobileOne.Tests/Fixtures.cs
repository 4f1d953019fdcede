namespace MobileOne.Tests;

/// <summary>Locates ../shared/fixtures (beside the repository root) without copying anything into the repo.</summary>
internal static class Fixtures
{
    private static readonly Lazy<string> Root = new(FindRoot);

    public static string Dir => Root.Value;

    public static string Path(string name) => System.IO.Path.Combine(Dir, name);

    private static string FindRoot()
    {
        string? fromEnv = Environment.GetEnvironmentVariable("MOBILEONE_FIXTURES");
        if (!string.IsNullOrEmpty(fromEnv))
        {
            return fromEnv;
        }

        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(System.IO.Path.Combine(dir.FullName, "MobileOne.slnx")))
            {
                string candidate = System.IO.Path.GetFullPath(System.IO.Path.Combine(dir.FullName, "..", "shared", "fixtures"));
                if (Directory.Exists(candidate))
                {
                    return candidate;
                }

                throw new DirectoryNotFoundException(
                    $"Reference fixtures not found at {candidate}; set MOBILEONE_FIXTURES to their folder.");
            }
        }

        throw new DirectoryNotFoundException("Repository root (MobileOne.slnx) not found above the test binaries.");
    }
}
