using MobileOne.Nn;

namespace MobileOne.Models.Zoo;

/// <summary>
/// How one layer of a <see cref="ZooNetwork"/> is initialised, declared by its family's builder as timm does it:
/// a normal or a uniform draw for the weight (BatchNorm's gamma) and for the bias (BatchNorm's beta). Running
/// statistics keep their construction values (mean 0, variance 1).
/// </summary>
/// <param name="Layer">The operation's name.</param>
/// <param name="Uniform">Uniform draws in [-bound, bound] (the stds are the bounds) instead of normal ones.</param>
/// <param name="WeightMean">Mean of the weight draw (a constant when <paramref name="WeightStd"/> is 0).</param>
/// <param name="WeightStd">Standard deviation of the weight draw, or its bound when uniform.</param>
/// <param name="BiasMean">Mean of the bias draw.</param>
/// <param name="BiasStd">Standard deviation of the bias draw, or its bound when uniform.</param>
internal sealed record LayerInit(string Layer, bool Uniform, double WeightMean, double WeightStd, double BiasMean = 0, double BiasStd = 0)
{
    /// <summary>Kaiming's normal for a ReLU network: N(0, sqrt(2 / fan_out)); bias zero.</summary>
    public static LayerInit KaimingNormal(string layer, double fanOut) => new(layer, false, 0, Math.Sqrt(2.0 / fanOut));

    /// <summary>A constant weight (BatchNorm's gamma) and zero bias.</summary>
    public static LayerInit Constant(string layer, double weight) => new(layer, false, weight, 0);

    /// <summary>Applies every layer's rule, in operation order, from one seeded generator.</summary>
    public static void Apply(ZooNetwork network, int seed)
    {
        var rng = new Random(seed);
        var layers = network.Operations.Where(o => o.Layer is not null).ToDictionary(o => o.Name);
        foreach (var rule in network.Init)
        {
            var (weight, bias) = layers[rule.Layer] switch
            {
                ConvOp c => (c.Conv.Weight, c.Conv.Bias),
                BatchNormOp b => (b.Bn.Weight, b.Bn.Bias),
                LinearOp l => (l.Linear.Weight, (Parameter?)l.Linear.Bias),
                var other => throw new InvalidOperationException($"No initialisation for '{other.Name}'."),
            };
            rule.Fill(rng, weight.Value.Data, rule.WeightMean, rule.WeightStd);
            if (bias is not null)
            {
                rule.Fill(rng, bias.Value.Data, rule.BiasMean, rule.BiasStd);
            }
        }
    }

    private void Fill(Random rng, float[] data, double mean, double spread)
    {
        if (spread == 0)
        {
            Array.Fill(data, (float)mean);
        }
        else if (Uniform)
        {
            for (int i = 0; i < data.Length; i++)
            {
                data[i] = (float)(mean + (spread * ((2 * rng.NextDouble()) - 1)));
            }
        }
        else
        {
            WeightInit.FillNormal(rng, data, mean, spread);
        }
    }
}
