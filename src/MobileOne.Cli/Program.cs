using System.CommandLine;
using MobileOne.Cli.Commands;

namespace MobileOne.Cli;

public static class Program
{
    // Commands catch their own errors (CommandAction); this outer net keeps anything thrown while parsing
    // or outside a command to the same one-line `error:` form.
    public static int Main(string[] args) => CommandAction.Run(() => BuildRoot().Parse(args).Invoke());

    public static RootCommand BuildRoot()
    {
        var root = new RootCommand("MobileOne for .NET: build, fuse, convert, inspect and run MobileOne checkpoints (timm and Apple).");
        root.Subcommands.Add(DemoCommand.Create());
        root.Subcommands.Add(ModelsCommand.Create());
        root.Subcommands.Add(InfoCommand.Create());
        root.Subcommands.Add(ConvertCommand.Create());
        root.Subcommands.Add(ForwardCommand.Create());
        root.Subcommands.Add(VerifyCommand.Create());
        root.Subcommands.Add(BenchConvCommand.Create());
        root.Subcommands.Add(ExportCommand.Create());
        root.Subcommands.Add(BenchCommand.Create());
        root.Subcommands.Add(TrainCommand.Create());
        root.Subcommands.Add(EvalCommand.Create());
        root.Subcommands.Add(PredictCommand.Create());
        root.Subcommands.Add(ServeCommand.Create());
        root.Subcommands.Add(BenchTrainCommand.Create());
        root.Subcommands.Add(AnalyzeCommand.Create());
        root.Subcommands.Add(CompressCommand.Create());
        root.Subcommands.Add(StudyCommand.Create());
        return root;
    }
}
