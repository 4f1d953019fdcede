namespace MobileOne.Training;

/// <summary>
/// A per-step cosine schedule with linear warm-up, timm's CosineLRScheduler with <c>t_in_epochs=False</c> (one
/// cycle, cycle_mul 1, k_decay 1):
/// for t &lt; <see cref="WarmupSteps"/>: <see cref="WarmupInitValue"/> + t * (<see cref="BaseValue"/> - WarmupInitValue) / WarmupSteps;
/// otherwise, with t' = t - WarmupSteps when <see cref="WarmupPrefix"/> else t:
/// <see cref="MinValue"/> + (BaseValue - MinValue) * (1 + cos(pi * t' / <see cref="CycleSteps"/>)) / 2 while t' &lt; CycleSteps,
/// and MinValue after. In timm's train.py with <c>--sched-on-updates</c>, the optimizer update with 0-based index t uses
/// <c>_get_lr(t)</c>, so <see cref="ValueAt"/>(t) is the value for step t; CycleSteps is timm's t_initial
/// (epochs * updates per epoch, minus the warm-up steps when warmup_prefix is set).
/// The same schedule without warm-up anneals weight decay (MobileOne's paper: 1e-4 to 1e-5 over training).
/// </summary>
public sealed record CosineSchedule
{
    /// <summary>
    /// A schedule from <paramref name="baseValue"/> down to <paramref name="minValue"/> over <paramref name="cycleSteps"/> (&gt; 0),
    /// after <paramref name="warmupSteps"/> of linear warm-up from <paramref name="warmupInitValue"/>; <paramref name="warmupPrefix"/> as timm's.
    /// </summary>
    public CosineSchedule(double baseValue, double minValue, long cycleSteps, long warmupSteps = 0, double warmupInitValue = 0, bool warmupPrefix = false)
    {
        if (cycleSteps <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(cycleSteps), cycleSteps, "A cosine schedule needs at least one step.");
        }

        if (warmupSteps < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(warmupSteps), warmupSteps, "Warm-up steps cannot be negative.");
        }

        if (!double.IsFinite(baseValue) || !double.IsFinite(minValue) || !double.IsFinite(warmupInitValue))
        {
            throw new ArgumentException("Schedule values must be finite numbers.");
        }

        BaseValue = baseValue;
        MinValue = minValue;
        CycleSteps = cycleSteps;
        WarmupSteps = warmupSteps;
        WarmupInitValue = warmupInitValue;
        WarmupPrefix = warmupPrefix;
    }

    /// <summary>The peak value: where warm-up ends and the cosine starts (timm's base learning rate).</summary>
    public double BaseValue { get; }

    /// <summary>The value the cosine ends at and keeps after <see cref="TotalSteps"/> (timm's lr_min).</summary>
    public double MinValue { get; }

    /// <summary>timm's t_initial, in optimizer steps.</summary>
    public long CycleSteps { get; }

    /// <summary>Optimizer steps of linear warm-up; 0 for none.</summary>
    public long WarmupSteps { get; }

    /// <summary>The value at step 0 when there is a warm-up (timm's warmup_lr_init).</summary>
    public double WarmupInitValue { get; }

    /// <summary>timm's warmup_prefix: the cosine starts after the warm-up instead of counting it.</summary>
    public bool WarmupPrefix { get; }

    /// <summary>Steps until the value settles at <see cref="MinValue"/>.</summary>
    public long TotalSteps => CycleSteps + (WarmupPrefix ? WarmupSteps : 0);

    /// <summary>The paper's weight-decay annealing: cosine from <paramref name="start"/> to <paramref name="end"/> over <paramref name="steps"/>.</summary>
    public static CosineSchedule WeightDecayAnnealing(long steps, double start = 1e-4, double end = 1e-5) => new(start, end, steps);

    /// <summary>The value for the optimizer step with 0-based index <paramref name="step"/> (&gt;= 0), by the formula above.</summary>
    public double ValueAt(long step)
    {
        if (step < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(step), step, "Steps start at 0.");
        }

        if (step < WarmupSteps)
        {
            return WarmupInitValue + (step * ((BaseValue - WarmupInitValue) / WarmupSteps));
        }

        long t = WarmupPrefix ? step - WarmupSteps : step;
        if (t >= CycleSteps)
        {
            return MinValue;
        }

        return MinValue + (0.5 * (BaseValue - MinValue) * (1 + Math.Cos(Math.PI * t / CycleSteps)));
    }
}
