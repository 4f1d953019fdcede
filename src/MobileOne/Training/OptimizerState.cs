using System.Globalization;
using MobileOne.IO;
using MobileOne.Tensors;

namespace MobileOne.Training;

/// <summary>
/// What an optimizer needs to resume: its kind, the number of steps taken and named per-parameter tensors
/// ("momentum_buffer.&lt;param&gt;" for SGD, "exp_avg.&lt;param&gt;" and "exp_avg_sq.&lt;param&gt;" for AdamW, with
/// timm's parameter names). <see cref="ToTensorFile"/> turns it into a safetensors-ready file (float32 tensors, kind and
/// step in the metadata).
/// </summary>
public sealed class OptimizerState
{
    /// <summary>Metadata key of the optimizer kind in <see cref="ToTensorFile"/>'s file: "optimizer".</summary>
    public const string KindKey = "optimizer";
    /// <summary>Metadata key of the step count in <see cref="ToTensorFile"/>'s file: "step".</summary>
    public const string StepKey = "step";

    /// <summary>A state of optimizer <paramref name="kind"/> ("sgd", "adamw") after <paramref name="step"/> steps (&gt;= 0) holding <paramref name="tensors"/> as given (not copied), in their order.</summary>
    public OptimizerState(string kind, long step, IEnumerable<KeyValuePair<string, Tensor>> tensors)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(kind);
        if (step < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(step), step, "The step count cannot be negative.");
        }

        Kind = kind;
        Step = step;
        foreach (var (name, value) in tensors)
        {
            Tensors.Add(name, value);
        }
    }

    /// <summary>The <see cref="Optimizer.Kind"/> that wrote the state; only that kind imports it.</summary>
    public string Kind { get; }

    /// <summary>Optimizer steps taken when the state was exported (<see cref="Optimizer.StepCount"/>).</summary>
    public long Step { get; }

    /// <summary>Per-parameter state in parameter order.</summary>
    public OrderedDictionary<string, Tensor> Tensors { get; } = new(StringComparer.Ordinal);

    /// <summary>The state as a tensor file: every tensor as float32 under its name, <see cref="Kind"/> and <see cref="Step"/> in the metadata (<see cref="KindKey"/>, <see cref="StepKey"/>). The values are copied into the file.</summary>
    public TensorFile ToTensorFile()
    {
        var file = new TensorFile();
        foreach (var (name, value) in Tensors)
        {
            file.Tensors.Add(name, StoredTensor.FromTensor(value));
        }

        file.Metadata[KindKey] = Kind;
        file.Metadata[StepKey] = Step.ToString(CultureInfo.InvariantCulture);
        return file;
    }

    /// <summary>Reads a file written by <see cref="ToTensorFile"/>; <paramref name="source"/> names it in errors.</summary>
    public static OptimizerState FromTensorFile(TensorFile file, string source)
    {
        ArgumentNullException.ThrowIfNull(file);
        if (!file.Metadata.TryGetValue(KindKey, out string? kind) || string.IsNullOrWhiteSpace(kind))
        {
            throw new InvalidDataException($"{source}: no '{KindKey}' metadata entry; this is not an optimizer state file.");
        }

        if (!file.Metadata.TryGetValue(StepKey, out string? stepText)
            || !long.TryParse(stepText, NumberStyles.Integer, CultureInfo.InvariantCulture, out long step) || step < 0)
        {
            throw new InvalidDataException($"{source}: the '{StepKey}' metadata entry must be a non-negative integer; got '{stepText}'.");
        }

        var tensors = new List<KeyValuePair<string, Tensor>>();
        foreach (var (name, stored) in file.Tensors)
        {
            if (!IO.DTypeInfo.IsFloatingPoint(stored.DType))
            {
                throw new InvalidDataException($"{source}: optimizer tensor '{name}' is {stored.DType}; expected floating point.");
            }

            tensors.Add(KeyValuePair.Create(name, stored.ToTensor()));
        }

        return new OptimizerState(kind, step, tensors);
    }
}
