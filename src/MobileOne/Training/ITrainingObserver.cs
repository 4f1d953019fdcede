namespace MobileOne.Training;

/// <summary>Where a step's running numbers go: a progress bar on a terminal, plain lines in a log.</summary>
/// <param name="Epoch">The epoch, counted from 0.</param>
/// <param name="Epochs">Epochs in the run.</param>
/// <param name="Step">The step within the epoch, counted from 0.</param>
/// <param name="StepsPerEpoch">Steps in an epoch.</param>
/// <param name="GlobalStep">Steps since the start of training, this one included.</param>
/// <param name="TotalSteps">Steps in the whole run.</param>
/// <param name="Loss">Running mean of the classification loss over the epoch (without the branch penalties).</param>
/// <param name="Top1">Running training top-1 over the epoch.</param>
/// <param name="LearningRate">This step's learning rate.</param>
/// <param name="ImagesPerSecond">Training throughput so far in the epoch.</param>
/// <param name="Eta">Estimated time left in the run.</param>
/// <param name="Penalties">This step's branch penalties, unweighted; null when no penalty is on.</param>
/// <param name="ImageSize">Width of this step's training images (progressive resizing changes it between epochs); 0 when not reported.</param>
public readonly record struct StepProgress(
    int Epoch, int Epochs, int Step, int StepsPerEpoch, long GlobalStep, long TotalSteps,
    double Loss, double Top1, double LearningRate, double ImagesPerSecond, TimeSpan Eta, BranchPenalties? Penalties = null, int ImageSize = 0);

/// <summary>Receives the trainer's progress; the CLI renders it, tests record it.</summary>
public interface ITrainingObserver
{
    /// <summary>A line for the log: what the run loaded, resumed, saved or skipped.</summary>
    void Message(string text);

    /// <summary>Epoch <paramref name="epoch"/> (counted from 0) of <paramref name="epochs"/> starts; it has <paramref name="stepsPerEpoch"/> optimizer steps.</summary>
    void EpochStarted(int epoch, int epochs, int stepsPerEpoch);

    /// <summary>After every optimizer step, with the epoch's running numbers.</summary>
    void StepCompleted(in StepProgress progress);

    /// <summary>After evaluation and after the epoch's files were written.</summary>
    void EpochCompleted(EpochSummary summary, IReadOnlyList<EpochSummary> all);
}

/// <summary>An observer that ignores everything.</summary>
public sealed class SilentTrainingObserver : ITrainingObserver
{
    /// <summary>The one instance (it has no state).</summary>
    public static SilentTrainingObserver Instance { get; } = new();

    /// <summary>Ignores the line.</summary>
    public void Message(string text)
    {
    }

    /// <summary>Ignores the epoch start.</summary>
    public void EpochStarted(int epoch, int epochs, int stepsPerEpoch)
    {
    }

    /// <summary>Ignores the step.</summary>
    public void StepCompleted(in StepProgress progress)
    {
    }

    /// <summary>Ignores the epoch summary.</summary>
    public void EpochCompleted(EpochSummary summary, IReadOnlyList<EpochSummary> all)
    {
    }
}

/// <summary>A run stopped because the loss stopped being a finite number.</summary>
public sealed class TrainingDivergedException : Exception
{
    /// <summary>The exception with <paramref name="message"/>: the non-finite loss, the epoch and step, and which checkpoint is left.</summary>
    public TrainingDivergedException(string message)
        : base(message)
    {
    }
}
