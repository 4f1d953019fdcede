namespace MobileOne.Training;

/// <summary>Where a step's running numbers go: a progress bar on a terminal, plain lines in a log.</summary>
/// <param name="Epoch">The epoch, from 1.</param>
/// <param name="Epochs">Epochs in the run.</param>
/// <param name="Step">The step within the epoch, from 1.</param>
/// <param name="StepsPerEpoch">Steps in an epoch.</param>
/// <param name="GlobalStep">Steps since the start of training, this one included.</param>
/// <param name="TotalSteps">Steps in the whole run.</param>
/// <param name="Loss">Running mean of the classification loss over the epoch (without the branch penalties).</param>
/// <param name="Top1">Running training top-1 over the epoch.</param>
/// <param name="LearningRate">This step's learning rate.</param>
/// <param name="ImagesPerSecond">Training throughput so far in the epoch.</param>
/// <param name="Eta">Estimated time left in the run.</param>
/// <param name="Penalties">This step's branch penalties, unweighted; null when no penalty is on.</param>
public readonly record struct StepProgress(
    int Epoch, int Epochs, int Step, int StepsPerEpoch, long GlobalStep, long TotalSteps,
    double Loss, double Top1, double LearningRate, double ImagesPerSecond, TimeSpan Eta, BranchPenalties? Penalties = null);

/// <summary>Receives the trainer's progress; the CLI renders it, tests record it.</summary>
public interface ITrainingObserver
{
    void Message(string text);

    void EpochStarted(int epoch, int epochs, int stepsPerEpoch);

    void StepCompleted(in StepProgress progress);

    /// <summary>After evaluation and after the epoch's files were written.</summary>
    void EpochCompleted(EpochSummary summary, IReadOnlyList<EpochSummary> all);
}

/// <summary>An observer that ignores everything.</summary>
public sealed class SilentTrainingObserver : ITrainingObserver
{
    public static SilentTrainingObserver Instance { get; } = new();

    public void Message(string text)
    {
    }

    public void EpochStarted(int epoch, int epochs, int stepsPerEpoch)
    {
    }

    public void StepCompleted(in StepProgress progress)
    {
    }

    public void EpochCompleted(EpochSummary summary, IReadOnlyList<EpochSummary> all)
    {
    }
}

/// <summary>A run stopped because the loss stopped being a finite number.</summary>
public sealed class TrainingDivergedException : Exception
{
    public TrainingDivergedException(string message)
        : base(message)
    {
    }
}
