using System.CommandLine;
using MobileOne.Data;
using MobileOne.IO;
using MobileOne.Training;

namespace MobileOne.Cli.Commands;

/// <summary>
/// Runs a command body and turns the errors a user can cause (bad files, bad options) into one line on
/// stderr and exit code 1, never a stack trace.
/// </summary>
internal static class CommandAction
{
    public const int Failure = 1;

    public static void Set(Command command, Func<ParseResult, int> body) =>
        command.SetAction(result => Run(() => body(result)));

    public static int Run(Func<int> body)
    {
        try
        {
            return body();
        }
        catch (Exception e) when (e is CheckpointException or DatasetException or TrainingDivergedException or ArgumentException or IOException or InvalidDataException or UnauthorizedAccessException or InvalidOperationException or FormatException or OperationCanceledException)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return Failure;
        }
    }
}
