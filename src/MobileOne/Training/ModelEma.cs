using MobileOne.IO.Checkpoints;
using MobileOne.Models;
using MobileOne.Nn;

namespace MobileOne.Training;

/// <summary>How the EMA model follows the model's BatchNorm running statistics.</summary>
public enum EmaBuffers
{
    /// <summary>Averaged like the parameters (timm ModelEmaV3's default, and ModelEmaV2).</summary>
    Average,

    /// <summary>Copied (timm ModelEmaV3 with exclude_buffers=True).</summary>
    Copy,
}

/// <summary>
/// An exponential moving average of a model's weights, timm's ModelEmaV3 update without warm-up:
/// ema = lerp(ema, model, 1 - decay) for every parameter (and, with <see cref="EmaBuffers.Average"/>, every BatchNorm
/// running statistic); batch counters are copied. The average lives in its own <see cref="MobileOneNetwork"/> in eval
/// mode, so it can be evaluated, fused or saved like any model.
/// </summary>
public sealed class ModelEma
{
    /// <summary>The decay when none is given (also the CLI's --ema-decay default): each update moves the average 0.05% of the way to the model.</summary>
    public const double DefaultDecay = 0.9995;

    private ClassifierNetwork? pairedModel;
    private List<(StateEntry Ema, StateEntry Model)>? pairs;

    /// <summary>
    /// An average that starts as a copy of <paramref name="model"/> (an empty network of the same architecture, filled by
    /// <see cref="CopyFrom"/>), with <paramref name="decay"/> in [0, 1] and <paramref name="buffers"/> deciding how BatchNorm statistics follow.
    /// </summary>
    public ModelEma(ClassifierNetwork model, double decay = DefaultDecay, EmaBuffers buffers = EmaBuffers.Average)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (!(decay >= 0 && decay <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(decay), decay, "EMA decay must be between 0 and 1.");
        }

        Decay = decay;
        Buffers = buffers;
        Network = model.CreateEmpty();
        CopyFrom(model);
    }

    /// <summary>Weight of the old average per <see cref="Update"/>: ema = decay * ema + (1 - decay) * model. Can be changed between updates.</summary>
    public double Decay { get; set; }

    /// <summary>Whether BatchNorm running statistics are averaged like the parameters or copied.</summary>
    public EmaBuffers Buffers { get; }

    /// <summary>The averaged model (eval mode).</summary>
    public ClassifierNetwork Network { get; }

    /// <summary>Updates applied since construction (or <see cref="CopyFrom"/>).</summary>
    public long Updates { get; private set; }

    /// <summary>Moves the average toward <paramref name="model"/> (call after each optimizer step).</summary>
    public void Update(ClassifierNetwork model)
    {
        float weight = (float)(1 - Decay);
        foreach (var (ema, current) in Pairs(model))
        {
            bool average = ema.Kind == StateKind.Parameter || (ema.Kind == StateKind.Buffer && Buffers == EmaBuffers.Average);
            float[] e = ema.Value.Data, m = current.Value.Data;
            if (!average)
            {
                m.CopyTo(e, 0);
                continue;
            }

            for (int i = 0; i < e.Length; i++)
            {
                e[i] += weight * (m[i] - e[i]);
            }
        }

        Updates++;
    }

    /// <summary>Resets the average to a copy of <paramref name="model"/> (e.g. after loading a checkpoint).</summary>
    public void CopyFrom(ClassifierNetwork model)
    {
        foreach (var (ema, current) in Pairs(model))
        {
            current.Value.Data.CopyTo(ema.Value.Data, 0);
        }

        Updates = 0;
    }

    /// <summary>Saves the averaged model as a checkpoint (format from the extension, timm's names by default).</summary>
    public void Save(string path, KeyLayout layout = KeyLayout.Timm) => ModelCheckpoint.Save(Network, path, layout);

    private List<(StateEntry Ema, StateEntry Model)> Pairs(ClassifierNetwork model)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (ReferenceEquals(model, pairedModel) && pairs is not null)
        {
            // A network's state tensors never change identity, so the pairing of one model is computed once.
            return pairs;
        }

        var found = Network.State().Zip(model.State()).ToList();
        bool same = found.Count == Network.State().Count() && found.Count == model.State().Count()
            && found.All(p => p.First.Name == p.Second.Name && p.First.Value.HasShape(p.Second.Value.Shape));
        if (!same)
        {
            throw new ArgumentException($"The EMA was built for {Network.Description}; got {model.Description}.", nameof(model));
        }

        pairedModel = model;
        pairs = found;
        return found;
    }
}
