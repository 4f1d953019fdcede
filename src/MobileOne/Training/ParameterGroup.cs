using MobileOne.Nn;

namespace MobileOne.Training;

/// <summary>
/// Parameters that share optimizer settings, like one entry of a PyTorch optimizer's param_groups. Schedules set
/// <see cref="LearningRate"/> and <see cref="WeightDecay"/> every step; groups created with
/// <see cref="ExemptFromWeightDecay"/> keep weight decay 0 whatever a schedule asks.
/// </summary>
public sealed class ParameterGroup
{
    private double weightDecay;

    /// <summary>
    /// A group named <paramref name="name"/> of <paramref name="parameters"/> (each name once) with a starting
    /// <paramref name="learningRate"/> and <paramref name="weightDecay"/>; with <paramref name="exemptFromWeightDecay"/> the decay is 0 for good.
    /// </summary>
    public ParameterGroup(string name, IEnumerable<NamedParameter> parameters, double learningRate, double weightDecay, bool exemptFromWeightDecay = false)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        Name = name;
        Parameters = parameters.ToArray();
        var duplicate = Parameters.GroupBy(p => p.Name).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
        {
            throw new ArgumentException($"Parameter group '{name}' lists '{duplicate.Key}' twice.", nameof(parameters));
        }

        ExemptFromWeightDecay = exemptFromWeightDecay;
        LearningRate = learningRate;
        WeightDecay = weightDecay;
    }

    /// <summary>The group's name in messages and <see cref="ToString"/> (timm's groups: "decay", "no_decay").</summary>
    public string Name { get; }

    /// <summary>The group's parameters with their timm names, in order.</summary>
    public IReadOnlyList<NamedParameter> Parameters { get; }

    /// <summary>Whether <see cref="WeightDecay"/> stays 0 whatever is set (timm's "no_decay" group: biases and other 1-D parameters).</summary>
    public bool ExemptFromWeightDecay { get; }

    /// <summary>The learning rate of the next step; <see cref="TrainStep"/> sets it before each step when it has a <see cref="TrainStep.LearningRateSchedule"/>.</summary>
    public double LearningRate { get; set; }

    /// <summary>The weight decay of the next step; setting it on an exempt group keeps 0.</summary>
    public double WeightDecay
    {
        get => weightDecay;
        set => weightDecay = ExemptFromWeightDecay ? 0.0 : value;
    }

    /// <summary>Name, tensor count, learning rate and weight decay on one line, for logs.</summary>
    public override string ToString() => $"{Name}: {Parameters.Count} tensors, lr {LearningRate}, weight decay {WeightDecay}";
}

/// <summary>How timm splits a model into optimizer parameter groups.</summary>
public static class ParameterGroups
{
    /// <summary>
    /// timm's param_groups_weight_decay: parameters with ndim &lt;= 1 (BatchNorm weights and biases, every bias) or a
    /// name ending in ".bias" or listed in <paramref name="noWeightDecay"/> go to group "no_decay" (weight decay 0);
    /// the rest to group "decay". Order: no_decay, decay, each in the module's parameter order (as timm returns them).
    /// </summary>
    public static IReadOnlyList<ParameterGroup> WeightDecaySplit(Module module, double learningRate, double weightDecay, IEnumerable<string>? noWeightDecay = null)
    {
        ArgumentNullException.ThrowIfNull(module);
        var skip = new HashSet<string>(noWeightDecay ?? [], StringComparer.Ordinal);
        var all = module.NamedParameters().ToList();
        bool Exempt(NamedParameter p) => p.Parameter.Value.Rank <= 1 || p.Name.EndsWith(".bias", StringComparison.Ordinal) || skip.Contains(p.Name);
        return
        [
            new ParameterGroup("no_decay", all.Where(Exempt), learningRate, 0.0, exemptFromWeightDecay: true),
            new ParameterGroup("decay", all.Where(p => !Exempt(p)), learningRate, weightDecay),
        ];
    }

    /// <summary>One group holding every parameter, all decayed.</summary>
    public static IReadOnlyList<ParameterGroup> Single(Module module, double learningRate, double weightDecay) =>
        [new ParameterGroup("all", module.NamedParameters(), learningRate, weightDecay)];
}
