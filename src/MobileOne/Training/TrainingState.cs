using System.Globalization;
using MobileOne.IO;
using MobileOne.IO.Checkpoints;
using MobileOne.IO.Safetensors;
using MobileOne.Models;
using MobileOne.Tensors;

namespace MobileOne.Training;

/// <summary>Running training loss and accuracy of a part-done epoch, so a resumed epoch reports what an uninterrupted one would.</summary>
public readonly record struct EpochTally(double LossSum, long Correct, long Seen);

/// <summary>
/// Everything --resume needs, in one safetensors file so it is replaced atomically: the model ("model."),
/// the optimizer state ("optimizer."), the EMA model ("ema."), and in the metadata the position (next epoch
/// and step), the best accuracy so far and the architecture. Data order and augmentation are derived from
/// (seed, epoch, index), so no random-generator state needs saving. A run with --val-split also records the split
/// ("val_split", which a resumed run must repeat) and the EMA's best validation top-1 ("best_ema_top1",
/// "best_ema_epoch"); without one these entries are not written, so such a state is what it was before they existed.
/// </summary>
public sealed record TrainingState(
    ClassifierNetwork Model, OptimizerState Optimizer, ClassifierNetwork? Ema, int Epoch, int Step, long GlobalStep,
    double BestTop1, int BestEpoch, int Seed, EpochTally Tally = default, int ValSplit = 0, double BestEmaTop1 = double.NegativeInfinity, int BestEmaEpoch = -1)
{
    /// <summary>Name of the state file in the run's output folder: "train_state.safetensors".</summary>
    public const string FileName = "train_state.safetensors";
    private const string Format = "mobileone-train-state/1";

    /// <summary>
    /// Writes the state to <paramref name="path"/> as one safetensors file (model and EMA in timm's key layout), through a
    /// temporary file, so a failed write leaves the previous state in place.
    /// </summary>
    public void Save(string path)
    {
        var file = new TensorFile();
        Add(file, "model.", ModelCheckpoint.ToTensorFile(Model, KeyLayout.Timm));
        Add(file, "optimizer.", Optimizer.ToTensorFile());
        if (Ema is not null)
        {
            Add(file, "ema.", ModelCheckpoint.ToTensorFile(Ema, KeyLayout.Timm));
        }

        var c = CultureInfo.InvariantCulture;
        file.Metadata["format"] = Format;
        file.Metadata["architecture"] = Model.Description;
        file.Metadata["epoch"] = Epoch.ToString(c);
        file.Metadata["step"] = Step.ToString(c);
        file.Metadata["global_step"] = GlobalStep.ToString(c);
        file.Metadata["best_top1"] = BestTop1.ToString("R", c);
        file.Metadata["best_epoch"] = BestEpoch.ToString(c);
        file.Metadata["seed"] = Seed.ToString(c);
        file.Metadata["epoch_loss_sum"] = Tally.LossSum.ToString("R", c);
        file.Metadata["epoch_correct"] = Tally.Correct.ToString(c);
        file.Metadata["epoch_seen"] = Tally.Seen.ToString(c);
        if (ValSplit > 0)
        {
            file.Metadata["val_split"] = ValSplit.ToString(c);
            file.Metadata["best_ema_top1"] = BestEmaTop1.ToString("R", c);
            file.Metadata["best_ema_epoch"] = BestEmaEpoch.ToString(c);
        }

        SafetensorsWriter.Write(path, file);
    }

    /// <summary>Reads a state file and checks that it belongs to a model of <paramref name="expected"/>'s architecture.</summary>
    public static TrainingState Load(string path, ClassifierNetwork expected)
    {
        var file = SafetensorsReader.Read(path);
        if (!file.Metadata.TryGetValue("format", out string? format) || format != Format)
        {
            throw new CheckpointException(path, $"is not a mobileone training state (expected metadata format '{Format}').");
        }

        var model = ModelCheckpoint.ClassifierFromTensorFile(Slice(file, "model."), path, CheckpointFormat.Safetensors).Network;
        if (model.NumClasses != expected.NumClasses)
        {
            throw new CheckpointException(path, $"was trained with num_classes {model.NumClasses}, but this run has {expected.NumClasses} classes.");
        }

        if (model.Description != expected.Description)
        {
            throw new CheckpointException(path, $"belongs to another model ({model.Description}); this run trains {expected.Description}.");
        }

        var optimizer = OptimizerState.FromTensorFile(Slice(file, "optimizer."), path);
        var emaFile = Slice(file, "ema.");
        var ema = emaFile.Tensors.Count > 0 ? ModelCheckpoint.ClassifierFromTensorFile(emaFile, path, CheckpointFormat.Safetensors).Network : null;
        return new TrainingState(
            model, optimizer, ema, Int(file, "epoch", path), Int(file, "step", path), long.Parse(Meta(file, "global_step", path), CultureInfo.InvariantCulture),
            double.Parse(Meta(file, "best_top1", path), CultureInfo.InvariantCulture), Int(file, "best_epoch", path), Int(file, "seed", path),
            new EpochTally(
                double.Parse(Meta(file, "epoch_loss_sum", path), CultureInfo.InvariantCulture),
                long.Parse(Meta(file, "epoch_correct", path), CultureInfo.InvariantCulture),
                long.Parse(Meta(file, "epoch_seen", path), CultureInfo.InvariantCulture)),
            file.Metadata.ContainsKey("val_split") ? Int(file, "val_split", path) : 0,
            file.Metadata.ContainsKey("best_ema_top1") ? double.Parse(Meta(file, "best_ema_top1", path), CultureInfo.InvariantCulture) : double.NegativeInfinity,
            file.Metadata.ContainsKey("best_ema_epoch") ? Int(file, "best_ema_epoch", path) : -1);
    }

    // Each part's metadata travels with its tensors under the same prefix: the optimizer's settings, and the marker by
    // which a compressed model's part is read back as one.
    private static void Add(TensorFile into, string prefix, TensorFile from)
    {
        foreach (var (k, v) in from.Tensors)
        {
            into.Tensors.Add(prefix + k, v);
        }

        foreach (var (k, v) in from.Metadata)
        {
            into.Metadata[prefix + k] = v;
        }
    }

    private static TensorFile Slice(TensorFile file, string prefix) =>
        new(Prefixed(file.Tensors, prefix), Prefixed(file.Metadata, prefix));

    private static IEnumerable<KeyValuePair<string, T>> Prefixed<T>(IEnumerable<KeyValuePair<string, T>> entries, string prefix) =>
        entries.Where(kv => kv.Key.StartsWith(prefix, StringComparison.Ordinal)).Select(kv => KeyValuePair.Create(kv.Key[prefix.Length..], kv.Value));

    private static string Meta(TensorFile file, string key, string path) =>
        file.Metadata.TryGetValue(key, out string? v) ? v : throw new CheckpointException(path, $"has no '{key}' metadata entry.");

    private static int Int(TensorFile file, string key, string path) =>
        int.TryParse(Meta(file, key, path), NumberStyles.Integer, CultureInfo.InvariantCulture, out int v)
            ? v
            : throw new CheckpointException(path, $"metadata '{key}' is not an integer.");
}
