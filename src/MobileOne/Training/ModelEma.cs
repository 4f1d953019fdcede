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
/// An exponential moving average of a model's weights, timm's ModelEmaV3 update: ema = lerp(ema, model, 1 - decay)
/// for every parameter (and, with <see cref="EmaBuffers.Average"/>, every BatchNorm running statistic), as torch.lerp
/// computes it in float32; batch counters are copied. <see cref="Update(ClassifierNetwork)"/> uses <see cref="Decay"/>
/// from the first update (no warm-up); <see cref="Update(ClassifierNetwork, long)"/> uses timm's get_decay(step),
/// <see cref="DecayAt"/>, with or without <see cref="Warmup"/>. The average lives in its own network in eval mode, so it
/// can be evaluated, fused or saved like any model.
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

    /// <summary>Weight of the old average per <see cref="Update(ClassifierNetwork)"/>: ema = decay * ema + (1 - decay) * model (the ceiling of the warm-up's decay). Can be changed between updates.</summary>
    public double Decay { get; set; }

    /// <summary>Whether BatchNorm running statistics are averaged like the parameters or copied.</summary>
    public EmaBuffers Buffers { get; }

    /// <summary>The averaged model (eval mode).</summary>
    public ClassifierNetwork Network { get; }

    /// <summary>Updates applied since construction (or <see cref="CopyFrom"/>).</summary>
    public long Updates { get; private set; }

    /// <summary>
    /// timm ModelEmaV3's use_warmup: the decay rises as 1 - (1 + t / <see cref="WarmupGamma"/>)^(-<see cref="WarmupPower"/>)
    /// towards <see cref="Decay"/> (<see cref="DecayAt"/>), so the average is not dominated by the random initial
    /// weights early on. Used by <see cref="Update(ClassifierNetwork, long)"/> only.
    /// </summary>
    public bool Warmup { get; init; }

    /// <summary>timm's warmup_gamma (inv_gamma), 1 by default: the step scale of the warm-up.</summary>
    public double WarmupGamma { get; init; } = 1.0;

    /// <summary>timm's warmup_power, 2/3 by default (decay 0.999 after about 31.6K updates, 0.9999 after 1M).</summary>
    public double WarmupPower { get; init; } = 2.0 / 3;

    /// <summary>timm's min_decay, 0 by default: the warm-up's decay never falls below it.</summary>
    public double MinDecay { get; init; }

    /// <summary>
    /// timm ModelEmaV3.get_decay(step) with update_after_step 0, for the update after optimizer step
    /// <paramref name="step"/> (counted from 1, as timm's num_updates): 0 for the first (the average becomes the model),
    /// then with t = step - 1 either <see cref="Decay"/> or, with <see cref="Warmup"/>,
    /// max(min(1 - (1 + t / gamma)^(-power), <see cref="Decay"/>), <see cref="MinDecay"/>).
    /// </summary>
    public double DecayAt(long step)
    {
        long t = Math.Max(0, step - 1);
        if (t <= 0)
        {
            return 0.0;
        }

        if (!Warmup)
        {
            return Decay;
        }

        double decay = 1 - Math.Pow(1 + (t / WarmupGamma), -WarmupPower);
        return Math.Max(Math.Min(decay, Decay), MinDecay);
    }

    /// <summary>Moves the average toward <paramref name="model"/> with <see cref="Decay"/> (call after each optimizer step).</summary>
    public void Update(ClassifierNetwork model) => Apply(model, Decay);

    /// <summary>
    /// Moves the average toward <paramref name="model"/> after optimizer step <paramref name="step"/> (from 1), with
    /// <see cref="DecayAt"/>(<paramref name="step"/>), as timm's train.py calls model_ema.update(model, step=num_updates).
    /// </summary>
    public void Update(ClassifierNetwork model, long step) => Apply(model, DecayAt(step));

    private void Apply(ClassifierNetwork model, double decay)
    {
        float weight = (float)(1 - decay);
        foreach (var (ema, current) in Pairs(model))
        {
            bool average = ema.Kind == StateKind.Parameter || (ema.Kind == StateKind.Buffer && Buffers == EmaBuffers.Average);
            float[] e = ema.Value.Data, m = current.Value.Data;
            if (!average)
            {
                m.CopyTo(e, 0);
                continue;
            }

            if (weight < 0.5f)
            {
                for (int i = 0; i < e.Length; i++)
                {
                    e[i] += weight * (m[i] - e[i]);
                }
            }
            else
            {
                // torch.lerp's other branch (end - (end - start) * (1 - weight)), exact at weight 1: a warm-up's first
                // update copies the model. Decays above 0.5 never come here, so they keep their numbers.
                float rest = 1 - weight;
                for (int i = 0; i < e.Length; i++)
                {
                    e[i] = m[i] - ((m[i] - e[i]) * rest);
                }
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

    /// <summary>Saves the averaged model as a checkpoint (format from the extension, timm's names by default), recording <paramref name="inputSize"/> when given (<see cref="IO.InputSizeRecord"/>).</summary>
    public void Save(string path, KeyLayout layout = KeyLayout.Timm, int? inputSize = null) => ModelCheckpoint.Save(Network, path, layout, inputSize: inputSize);

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
