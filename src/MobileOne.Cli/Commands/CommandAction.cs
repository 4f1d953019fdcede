using System.CommandLine;
using MobileOne.Data;
using MobileOne.IO;
using MobileOne.Training;

namespace MobileOne.Cli.Commands;

/// <summary>
/// Runs a command body and turns every error into one line on stderr starting with <c>error:</c> and exit
/// code 1, never a stack trace. Errors a user can cause (bad files, bad options) print their message, which
/// names the file, key or option; anything else is a bug or a resource failure and says so on the same one
/// line. Setting <see cref="TraceVariable"/> to 1 also prints the exception with its stack trace.
/// </summary>
internal static class CommandAction
{
    public const int Failure = 1;

    /// <summary>The environment variable that asks for the stack trace of a failure.</summary>
    public const string TraceVariable = "MOBILEONE_TRACE";

    public static void Set(Command command, Func<ParseResult, int> body) =>
        command.SetAction(result => Run(() => body(result)));

    public static int Run(Func<int> body) => Run(body, Console.Error, TraceRequested);

    /// <summary>As <see cref="Run(Func{int})"/>, writing to <paramref name="error"/> (tests pass their own writer).</summary>
    internal static int Run(Func<int> body, TextWriter error, bool trace)
    {
        try
        {
            return body();
        }
        catch (Exception e) when (e is CheckpointException or DatasetException or ImageDecodeException or TrainingDivergedException or ArgumentException or IOException or InvalidDataException or UnauthorizedAccessException or InvalidOperationException or FormatException or OperationCanceledException)
        {
            return Fail(error, trace, OneLine(e.Message), e);
        }
        catch (OutOfMemoryException e)
        {
            // The readers bound what a file can make them allocate; this is the machine running out on honest work.
            return Fail(error, trace, "ran out of memory (try fewer threads or a smaller batch).", e);
        }
        catch (Exception e)
        {
            // Not an error a user can cause: a bug. Still one line, and the trace on request.
            return Fail(error, trace, $"unexpected failure: {OneLine(e.Message)} (this is a bug in mobileone; set {TraceVariable}=1 to print the stack trace).", e);
        }
    }

    private static int Fail(TextWriter error, bool trace, string line, Exception e)
    {
        error.WriteLine($"error: {line}");
        if (trace)
        {
            error.WriteLine(e.ToString());
        }

        return Failure;
    }

    private static bool TraceRequested =>
        Environment.GetEnvironmentVariable(TraceVariable) is { Length: > 0 } v && v != "0";

    // Messages that quote a file's content (a JSON parser's, an OS error) can hold line breaks.
    private static string OneLine(string message) =>
        message.ReplaceLineEndings(" ").Trim();
}
