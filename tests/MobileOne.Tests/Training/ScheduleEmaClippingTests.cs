using MobileOne.IO.Checkpoints;
using MobileOne.Models;
using MobileOne.Nn;
using MobileOne.Tensors;
using MobileOne.Training;

namespace MobileOne.Tests.Training;

public class ScheduleEmaClippingTests
{
    [Fact]
    public void Cosine_schedule_with_warmup_matches_timm_values()
    {
        // timm CosineLRScheduler(t_initial=100, lr_min=1e-5, warmup_t=5, warmup_lr_init=1e-6), base lr 0.1, per update.
        var s = new CosineSchedule(0.1, 1e-5, cycleSteps: 100, warmupSteps: 5, warmupInitValue: 1e-6);
        Assert.Equal(1e-6, s.ValueAt(0), 15);
        Assert.Equal(1e-6 + (2 * ((0.1 - 1e-6) / 5)), s.ValueAt(2), 15);
        Assert.Equal(1e-5 + (0.5 * (0.1 - 1e-5) * (1 + Math.Cos(Math.PI * 5 / 100))), s.ValueAt(5), 15);
        Assert.Equal(1e-5 + (0.5 * (0.1 - 1e-5) * (1 + Math.Cos(Math.PI * 50 / 100))), s.ValueAt(50), 15);
        Assert.Equal(1e-5, s.ValueAt(100), 15);
        Assert.Equal(1e-5, s.ValueAt(1000), 15);

        // warmup_prefix=True: the cosine starts after the warm-up.
        var prefixed = new CosineSchedule(0.1, 0, cycleSteps: 10, warmupSteps: 4, warmupInitValue: 0, warmupPrefix: true);
        Assert.Equal(0.1, prefixed.ValueAt(4), 15);
        Assert.Equal(0.5 * 0.1 * (1 + Math.Cos(Math.PI * 3 / 10)), prefixed.ValueAt(7), 15);
        Assert.Equal(14, prefixed.TotalSteps);
        Assert.Equal(0.0, prefixed.ValueAt(14), 15);
    }

    [Fact]
    public void Weight_decay_annealing_goes_from_1e4_to_1e5_along_a_cosine()
    {
        var wd = CosineSchedule.WeightDecayAnnealing(300);
        Assert.Equal(1e-4, wd.ValueAt(0), 15);
        Assert.Equal(1e-5 + (0.5 * 9e-5 * (1 + Math.Cos(Math.PI * 150 / 300))), wd.ValueAt(150), 15);
        Assert.Equal(1e-5, wd.ValueAt(300), 15);
    }

    [Fact]
    public void Schedules_reject_bad_arguments()
    {
        Assert.Contains("needs at least one step", Assert.Throws<ArgumentOutOfRangeException>(() => new CosineSchedule(0.1, 0, 0)).Message);
        Assert.Contains("Warm-up steps cannot be negative", Assert.Throws<ArgumentOutOfRangeException>(() => new CosineSchedule(0.1, 0, 10, -1)).Message);
        Assert.Contains("must be finite", Assert.Throws<ArgumentException>(() => new CosineSchedule(double.NaN, 0, 10)).Message);
        Assert.Contains("Steps start at 0", Assert.Throws<ArgumentOutOfRangeException>(() => new CosineSchedule(0.1, 0, 10).ValueAt(-1)).Message);
    }

    [Fact]
    public void Clipping_scales_gradients_to_the_global_norm_like_pytorch()
    {
        var a = new Parameter(new Tensor(2));
        var b = new Parameter(new Tensor(1));
        a.EnsureGrad().Data[0] = 3;
        a.Grad!.Data[1] = 0;
        b.EnsureGrad().Data[0] = 4;
        double norm = GradientClipping.ClipByGlobalNorm([a, b], maxNorm: 1.0);
        Assert.Equal(5.0, norm, 12);
        double c = 1.0 / (5.0 + 1e-6);
        Assert.Equal(3 * c, a.Grad.Data[0], 6);
        Assert.Equal(4 * c, b.Grad!.Data[0], 6);

        norm = GradientClipping.ClipByGlobalNorm([a, b], maxNorm: 10.0);
        Assert.Equal(1.0, norm, 5);
        Assert.Equal((float)(3 * c), a.Grad.Data[0]);
        Assert.Contains("must be positive", Assert.Throws<ArgumentOutOfRangeException>(() => GradientClipping.ClipByGlobalNorm([a], 0)).Message);
    }

    [Theory]
    [InlineData(EmaBuffers.Average)]
    [InlineData(EmaBuffers.Copy)]
    public void Ema_averages_parameters_and_follows_buffers_as_configured(EmaBuffers buffers)
    {
        var config = MobileOneConfig.Parse("units=1/1/1/1,widths=0.125/0.125/0.125/0.125,k=1,classes=3");
        var model = MobileOneNetwork.Create(config);
        WeightInit.Initialize(model, 1);
        var initial = model.State().Select(e => e.Value.Clone()).ToList();
        var ema = new ModelEma(model, decay: 0.75, buffers);
        foreach (var e in model.State())
        {
            for (int i = 0; i < e.Value.Length; i++)
            {
                e.Value.Data[i] += e.Kind == StateKind.Counter ? 3 : 1;
            }
        }

        ema.Update(model);
        Assert.Equal(1, ema.Updates);
        foreach (var ((e, m), start) in ema.Network.State().Zip(model.State()).Zip(initial))
        {
            for (int i = 0; i < e.Value.Length; i++)
            {
                // lerp(ema, model, 0.25): start + 0.25 * (model - start) with model = start + 1.
                float expected = e.Kind switch
                {
                    StateKind.Parameter => start.Data[i] + 0.25f,
                    StateKind.Buffer when buffers == EmaBuffers.Average => start.Data[i] + 0.25f,
                    _ => m.Value.Data[i],
                };
                Assert.Equal(expected, e.Value.Data[i], 5);
            }
        }
    }

    [Fact]
    public void Ema_model_evaluates_and_saves_as_a_checkpoint()
    {
        using var dir = new TempDir();
        var config = MobileOneConfig.Parse("units=1/1/1/1,widths=0.125/0.125/0.125/0.125,k=2,classes=3");
        var model = MobileOneNetwork.Create(config);
        WeightInit.Initialize(model, 2);
        WeightInit.RandomizeBatchNorm(model, 3);
        var ema = new ModelEma(model, 0.9);
        WeightInit.Initialize(model, 4);
        ema.Update(model);
        string path = dir.File("ema.safetensors");
        ema.Save(path);
        var loaded = ModelCheckpoint.Load(path).Network;
        var x = new Tensor([2, 3, 16, 16], Reference.RandomArray(new Random(5), 2 * 3 * 16 * 16));
        Assert.False(ema.Network.Training);
        Assert.Equal(ema.Network.Forward(x).Data, loaded.Forward(x).Data);

        var other = MobileOneNetwork.Create(MobileOneConfig.Parse("units=1/1/1/1,widths=0.125/0.125/0.125/0.125,k=1,classes=3"));
        Assert.Contains("The EMA was built for", Assert.Throws<ArgumentException>(() => ema.Update(other)).Message);
        Assert.Contains("EMA decay must be between 0 and 1", Assert.Throws<ArgumentOutOfRangeException>(() => new ModelEma(model, 1.5)).Message);
    }
}
