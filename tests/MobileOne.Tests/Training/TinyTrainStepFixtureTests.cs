using MobileOne.IO;
using MobileOne.IO.Checkpoints;
using MobileOne.IO.Safetensors;
using MobileOne.Models;
using MobileOne.Nn;
using MobileOne.Tensors;
using MobileOne.Training;
using Xunit.Abstractions;

namespace MobileOne.Tests.Training;

public sealed class TinyTrainStepTensors
{
    public TensorFile File { get; } = SafetensorsReader.Read(Fixtures.Path("mobileone_tiny_trainstep.safetensors"));
}

/// <summary>
/// Two optimizer steps of the tiny Apple MobileOne (units 1/2/2/1, widths 0.5, k=2, SE in the last units of stages 3
/// and 4, 10 classes) on one batch, against PyTorch (mobileone_tiny_trainstep.safetensors): logits and loss of both
/// steps, every first-step gradient and the full state after the second step (parameters, running statistics,
/// num_batches_tracked). We compute in float32 and compare relative to each tensor's largest magnitude (absolute below 1).
/// Everything before the first update (logits, loss, every gradient) and every AdamW quantity must match to 1e-4
/// (measured: logits 2e-6, gradients 2.3e-5 at worst). SGD's quantities after an update get 2e-3: this fixture's SGD
/// step (lr 0.1) pushes several 1x1 scale-branch weights into BatchNorm's eps regime (weights ~1e-3, gradients up to
/// -5), where float32 rounding of the first gradient is amplified about a hundredfold. The same two steps in
/// PyTorch 1.13 float32 (a same-machine mirror of the model) miss the fixture by 2e-4 relative on the step-1 logits
/// and 1.4e-3 on the final state; we measure 1.5e-4 and 1.3e-3.
/// </summary>
public class TinyTrainStepFixtureTests : IClassFixture<TinyTrainStepTensors>
{
    private const double Tolerance = 1e-4;
    private const double SgdAfterUpdateTolerance = 2e-3;

    private readonly TensorFile file;
    private readonly ITestOutputHelper log;

    public TinyTrainStepFixtureTests(TinyTrainStepTensors tensors, ITestOutputHelper log)
    {
        file = tensors.File;
        this.log = log;
    }

    [Fact]
    public void Sgd_nesterov_steps_match_pytorch() =>
        RunSteps("sgd", groups => new Sgd(groups, momentum: 0.9, nesterov: true), learningRate: 0.1, weightDecay: 1e-4, SgdAfterUpdateTolerance);

    [Fact]
    public void AdamW_steps_match_pytorch() =>
        RunSteps("adamw", groups => new AdamW(groups, beta1: 0.9, beta2: 0.999, eps: 1e-8), learningRate: 1e-3, weightDecay: 0.05, Tolerance);

    [Fact]
    public void The_fixture_model_is_the_described_configuration()
    {
        var net = Load("sgd");
        Assert.Equal(MobileOneConfig.Parse("units=1/2/2/1,widths=0.5/0.5/0.5/0.5,k=2,se=0/0/1/1,classes=10").ToString(), net.Config.ToString());
    }

    private void RunSteps(string prefix, Func<IReadOnlyList<ParameterGroup>, Optimizer> create, double learningRate, double weightDecay, double afterUpdate)
    {
        var net = Load(prefix);
        var optimizer = create(ParameterGroups.WeightDecaySplit(net, learningRate, weightDecay));
        var step = new TrainStep(net, optimizer, new CrossEntropyLoss(labelSmoothing: 0.1));
        var input = Get($"{prefix}.input");
        int[] labels = file.Tensors[$"{prefix}.labels"].ToInt64().Select(v => (int)v).ToArray();

        var first = step.Run(input, labels);
        AssertClose(Get($"{prefix}.step0.logits"), first.Logits, "step0 logits");
        AssertScalar(Get($"{prefix}.step0.loss").Data[0], first.Loss, "step0 loss");
        foreach (var p in net.NamedParameters())
        {
            AssertClose(Get($"{prefix}.step0.grad.{KeyNames.TimmToApple(p.Name)}"), p.Parameter.Grad!, $"step0 grad {p.Name}");
        }

        var second = step.Run(input, labels);
        AssertClose(Get($"{prefix}.step1.logits"), second.Logits, "step1 logits", afterUpdate);
        AssertScalar(Get($"{prefix}.step1.loss").Data[0], second.Loss, "step1 loss", afterUpdate);
        foreach (var e in net.State())
        {
            var stored = file.Tensors[$"{prefix}.final.{KeyNames.TimmToApple(e.Name)}"];
            if (e.Kind == StateKind.Counter)
            {
                Assert.Equal(stored.ToInt64()[0], (long)e.Value.Data[0]);
            }
            else
            {
                AssertClose(stored.ToTensor(), e.Value, $"final {e.Name}", afterUpdate);
            }
        }
    }

    private MobileOneNetwork Load(string prefix)
    {
        string head = $"{prefix}.init.";
        var init = new TensorFile(file.Tensors.Where(kv => kv.Key.StartsWith(head, StringComparison.Ordinal))
            .Select(kv => KeyValuePair.Create(kv.Key[head.Length..], kv.Value)));
        return ModelCheckpoint.FromTensorFile(init, $"mobileone_tiny_trainstep.safetensors ({head}*)", CheckpointFormat.Safetensors).Network;
    }

    private Tensor Get(string key) => file.Tensors[key].ToTensor();

    private void AssertScalar(double expected, double actual, string what, double tolerance = Tolerance)
    {
        log.WriteLine($"{what}: {actual} vs {expected}");
        Assert.True(Math.Abs(actual - expected) <= tolerance * Math.Max(1, Math.Abs(expected)), $"{what}: {actual} vs {expected}");
    }

    private void AssertClose(Tensor expected, Tensor actual, string what, double tolerance = Tolerance)
    {
        Assert.Equal(expected.Shape, actual.Shape);
        double scale = Math.Max(1.0, Reference.MaxAbs(expected.Data));
        double diff = Reference.MaxAbsDiff(actual.Data, expected.Data);
        log.WriteLine($"{what}: max diff {diff:e2}, scale {scale:g3}");
        Assert.True(diff <= tolerance * scale, $"{what}: max diff {diff:e3} > {tolerance} x {scale:g4}");
    }
}
