namespace MobileOne.IO;

/// <summary>
/// Writes a file through a temporary sibling and a rename, so a crash or an error part-way leaves
/// whatever was at the destination before untouched.
/// </summary>
public static class AtomicFile
{
    /// <summary>Writes <paramref name="text"/> as UTF-8 (no byte-order mark).</summary>
    public static void WriteAllText(string path, string text)
    {
        byte[] bytes = System.Text.Encoding.UTF8.GetBytes(text);
        Write(path, stream => stream.Write(bytes));
    }

    /// <summary>Writes <paramref name="path"/> through <paramref name="write"/> into a temporary file beside it, then renames it over the target, so a reader never sees a half-written file.</summary>
    public static void Write(string path, Action<Stream> write)
    {
        // Stryker disable once Statement : Path.GetFullPath(null) below throws the same ArgumentNullException for "path".
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(write);
        string full = Path.GetFullPath(path);
        string? dir = Path.GetDirectoryName(full);
        if (dir is not null && !Directory.Exists(dir))
        {
            throw new CheckpointException(path, $"the folder '{dir}' does not exist.");
        }

        if (Directory.Exists(full))
        {
            throw new CheckpointException(path, "is a directory; expected a file path to write.");
        }

        string temp = Path.Combine(dir ?? ".", $".{Path.GetFileName(full)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            // Stryker disable once Bitwise : the buffer size changes speed only (0 means unbuffered), not the bytes written.
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
            {
                write(stream);
                stream.Flush(flushToDisk: true);
            }

            File.Move(temp, full, overwrite: true);
        }
        catch
        {
            TryDelete(temp);
            throw;
        }
    }

    /// <summary>
    /// Deletes the temporary files that writes in <paramref name="directory"/> left behind when their process was
    /// killed before the rename (".NAME.PID.GUID.tmp" of a process that is no longer running); returns their names.
    /// Temporaries of running processes are left alone, so a writer in progress is never disturbed.
    /// </summary>
    public static IReadOnlyList<string> RemoveStaleTemporaries(string directory)
    {
        ArgumentNullException.ThrowIfNull(directory);
        var removed = new List<string>();
        if (!Directory.Exists(directory))
        {
            return removed;
        }

        foreach (string file in Directory.EnumerateFiles(directory, ".*.tmp"))
        {
            var match = TemporaryName.Match(Path.GetFileName(file));
            if (!match.Success || !int.TryParse(match.Groups["pid"].ValueSpan, out int pid) || IsRunning(pid))
            {
                continue;
            }

            TryDelete(file);
            if (!File.Exists(file))
            {
                removed.Add(Path.GetFileName(file));
            }
        }

        return removed;
    }

    private static readonly System.Text.RegularExpressions.Regex TemporaryName =
        new(@"^\..+\.(?<pid>[0-9]+)\.[0-9a-f]{32}\.tmp$", System.Text.RegularExpressions.RegexOptions.CultureInvariant);

    private static bool IsRunning(int pid)
    {
        if (pid == Environment.ProcessId)
        {
            return true;
        }

        try
        {
            using var process = System.Diagnostics.Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
