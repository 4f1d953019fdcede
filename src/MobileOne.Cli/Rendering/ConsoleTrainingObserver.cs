using System.Globalization;
using MobileOne.Imaging.Plots;
using MobileOne.Training;
using Spectre.Console;

namespace MobileOne.Cli.Rendering;

/// <summary>
/// Shows training progress: a Spectre progress bar with loss, accuracy, learning rate, images/s and ETA on a
/// terminal; one plain line every <c>logInterval</c> steps and one per epoch when output is redirected. Writes
/// the training-curve plot after every epoch.
/// </summary>
internal sealed class ConsoleTrainingObserver : ITrainingObserver
{
    private static readonly CultureInfo C = CultureInfo.InvariantCulture;
    private readonly int logInterval;
    private readonly string plotPath;
    private readonly string title;
    private ProgressContext? progress;
    private ProgressTask? task;

    public ConsoleTrainingObserver(int logInterval, string plotPath, string title)
    {
        this.logInterval = logInterval;
        this.plotPath = plotPath;
        this.title = title;
    }

    public static bool Interactive => !Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive;

    /// <summary>Runs <paramref name="work"/> under a live progress display when interactive.</summary>
    public T Run<T>(Func<T> work)
    {
        if (!Interactive)
        {
            return work();
        }

        return AnsiConsole.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                progress = ctx;
                return work();
            });
    }

    public void Message(string text)
    {
        if (Interactive)
        {
            AnsiConsole.MarkupLine(Markup.Escape(text));
        }
        else
        {
            Console.WriteLine(text);
        }
    }

    public void EpochStarted(int epoch, int epochs, int stepsPerEpoch)
    {
        if (progress is not null)
        {
            task = progress.AddTask(Markup.Escape($"epoch {epoch + 1}/{epochs}"), maxValue: stepsPerEpoch);
        }
    }

    public void StepCompleted(in StepProgress p)
    {
        string penalties = p.Penalties is { } q ? string.Create(C, $" ortho {q.Orthogonality:0.###} diversity {q.Diversity:0.####}") : string.Empty;
        string numbers = string.Create(C, $"loss {p.Loss:0.0000}{penalties} acc {p.Top1:0.0000} lr {p.LearningRate:0.#####} {p.ImagesPerSecond:0} img/s");
        if (task is not null)
        {
            task.Description = Markup.Escape($"epoch {p.Epoch + 1}/{p.Epochs} {numbers}");
            task.Value = p.Step + 1;
        }
        else if ((p.Step + 1) % logInterval == 0 || p.Step + 1 == p.StepsPerEpoch)
        {
            Console.WriteLine(string.Create(C, $"epoch {p.Epoch + 1}/{p.Epochs} step {p.Step + 1}/{p.StepsPerEpoch} {numbers} eta {p.Eta:hh\\:mm\\:ss}"));
        }
    }

    public void EpochCompleted(EpochSummary s, IReadOnlyList<EpochSummary> all)
    {
        if (task is not null)
        {
            task.Value = task.MaxValue;
            task.StopTask();
        }

        string ema = double.IsNaN(s.EmaEvalTop1) ? string.Empty : string.Create(C, $" ema_top1 {s.EmaEvalTop1:0.0000}");
        string penalties = double.IsNaN(s.OrthoPenalty) ? string.Empty : string.Create(C, $" ortho_penalty {s.OrthoPenalty:0.###} branch_diversity {s.BranchDiversity:0.####}");
        Message(string.Create(C, $"epoch {s.Epoch}: train_loss {s.TrainLoss:0.0000} train_top1 {s.TrainTop1:0.0000} eval_loss {s.EvalLoss:0.0000} eval_top1 {s.EvalTop1:0.0000} eval_top5 {s.EvalTop5:0.0000}{ema}{penalties} lr {s.LearningRate:0.######}"));
        TrainingCurvesPlot.Save(plotPath, all, title);
    }
}
