using MobileOne.Models;
using MobileOne.Nn;
using MobileOne.Tensors;
using MobileOne.Training;

namespace MobileOne.Tests.Training;

/// <summary>--ema-warmup: timm ModelEmaV3's use_warmup decay, and the trainer's EMA following it step by step.</summary>
public class EmaWarmupTests
{
    private static MobileOneNetwork Tiny(int seed)
    {
        var model = MobileOneNetwork.Create(MobileOneConfig.Parse("units=1/1/1/1,widths=0.125/0.125/0.125/0.125,k=1,classes=3"));
        WeightInit.Initialize(model, seed);
        return model;
    }

    // Expected values: timm's ModelEmaV3(..., decay, use_warmup).get_decay(step), printed by
    // tools/data/ema-warmup-reference.py from timm's own model_ema.py (Python's pow, "R" precision).
    [Theory]
    [InlineData(0, 0.9995, true, 0.0)]
    [InlineData(1, 0.9995, true, 0.0)]
    [InlineData(2, 0.9995, true, 0.3700394750525634)]
    [InlineData(3, 0.9995, true, 0.5192501432308638)]
    [InlineData(10, 0.9995, true, 0.7845565309968117)]
    [InlineData(100, 0.9995, true, 0.9535841116638722)]
    [InlineData(1000, 0.9995, true, 0.99)]
    [InlineData(10000, 0.9995, true, 0.9978455653099682)]
    [InlineData(89442, 0.9995, true, 0.9994999973200546)]
    [InlineData(89443, 0.9995, true, 0.9995)]
    [InlineData(200000, 0.9995, true, 0.9995)]
    [InlineData(0, 0.9998, true, 0.0)]
    [InlineData(1, 0.9998, true, 0.0)]
    [InlineData(2, 0.9998, true, 0.3700394750525634)]
    [InlineData(3, 0.9998, true, 0.5192501432308638)]
    [InlineData(10, 0.9998, true, 0.7845565309968117)]
    [InlineData(100, 0.9998, true, 0.9535841116638722)]
    [InlineData(1000, 0.9998, true, 0.99)]
    [InlineData(10000, 0.9998, true, 0.9978455653099682)]
    [InlineData(89442, 0.9998, true, 0.9994999973200546)]
    [InlineData(89443, 0.9998, true, 0.9995000010468498)]
    [InlineData(200000, 0.9998, true, 0.9997075982261787)]
    [InlineData(0, 0.5, true, 0.0)]
    [InlineData(1, 0.5, true, 0.0)]
    [InlineData(2, 0.5, true, 0.3700394750525634)]
    [InlineData(3, 0.5, true, 0.5)]
    [InlineData(10, 0.5, true, 0.5)]
    [InlineData(100, 0.5, true, 0.5)]
    [InlineData(1000, 0.5, true, 0.5)]
    [InlineData(10000, 0.5, true, 0.5)]
    [InlineData(89442, 0.5, true, 0.5)]
    [InlineData(89443, 0.5, true, 0.5)]
    [InlineData(200000, 0.5, true, 0.5)]
    [InlineData(0, 0.9995, false, 0.0)]
    [InlineData(1, 0.9995, false, 0.0)]
    [InlineData(2, 0.9995, false, 0.9995)]
    [InlineData(3, 0.9995, false, 0.9995)]
    [InlineData(10, 0.9995, false, 0.9995)]
    [InlineData(100, 0.9995, false, 0.9995)]
    [InlineData(1000, 0.9995, false, 0.9995)]
    [InlineData(10000, 0.9995, false, 0.9995)]
    [InlineData(89442, 0.9995, false, 0.9995)]
    [InlineData(89443, 0.9995, false, 0.9995)]
    [InlineData(200000, 0.9995, false, 0.9995)]
    public void Decay_at_a_step_is_timms_get_decay(long step, double decay, bool warmup, double expected)
    {
        var ema = new ModelEma(Tiny(1), decay) { Warmup = warmup };
        Assert.Equal(expected, ema.DecayAt(step), 15);
    }

    [Fact]
    public void With_warm_up_the_first_update_copies_the_model_and_the_next_ones_lerp_as_torch()
    {
        var model = Tiny(1);
        var ema = new ModelEma(model, 0.9995) { Warmup = true };
        var first = Tiny(2);
        ema.Update(first, step: 1);
        Assert.Equal(first.State().Select(e => e.Value.Data), ema.Network.State().Select(e => e.Value.Data));

        // Step 2: decay 1 - 2^(-2/3), weight 0.63 >= 0.5, so torch.lerp computes end - (end - start) * (1 - weight) in float32.
        var second = Tiny(3);
        var before = ema.Network.State().Select(e => e.Value.Clone()).ToList();
        ema.Update(second, step: 2);
        float weight = (float)(1 - (1 - Math.Pow(2, -2.0 / 3)));
        foreach (var ((e, m), start) in ema.Network.State().Zip(second.State()).Zip(before))
        {
            for (int i = 0; i < e.Value.Length; i++)
            {
                float expected = e.Kind == StateKind.Counter ? m.Value.Data[i] : m.Value.Data[i] - ((m.Value.Data[i] - start.Data[i]) * (1 - weight));
                Assert.Equal(expected, e.Value.Data[i]);
            }
        }
    }

    [Fact]
    public void A_train_step_updates_the_ema_with_the_optimizer_step_count()
    {
        // After one step with warm-up the EMA is the model (decay 0); without warm-up it moved 0.05% of the way.
        foreach (bool warmup in new[] { true, false })
        {
            var model = Tiny(4);
            var ema = new ModelEma(model, 0.9995) { Warmup = warmup };
            var optimizer = new Sgd(ParameterGroups.WeightDecaySplit(model, 0.1, 0), 0.9, nesterov: true);
            var step = new TrainStep(model, optimizer, new CrossEntropyLoss(0)) { Ema = ema };
            var x = new Tensor([4, 3, 16, 16], Reference.RandomArray(new Random(6), 4 * 3 * 16 * 16));
            step.Run(x, new[] { 0, 1, 2, 0 });
            var emaWeights = ema.Network.State().Where(e => e.Kind == StateKind.Parameter).Select(e => e.Value.Data).ToList();
            var modelWeights = model.State().Where(e => e.Kind == StateKind.Parameter).Select(e => e.Value.Data).ToList();
            Assert.Equal(warmup, emaWeights.Zip(modelWeights).All(p => p.First.AsSpan().SequenceEqual(p.Second)));
        }
    }

    [Fact]
    public void Ema_warmup_without_ema_is_refused_naming_both_options()
    {
        var e = Assert.Throws<ArgumentException>(() => new TrainingOptions { EmaWarmup = true }.Validate());
        Assert.Equal("--ema-warmup warms up the EMA's decay; it needs --ema.", e.Message);
        new TrainingOptions { EmaWarmup = true, Ema = 0.9995 }.Validate();
    }
}
