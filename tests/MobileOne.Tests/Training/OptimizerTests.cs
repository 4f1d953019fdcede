using MobileOne.IO.Safetensors;
using MobileOne.Kernels;
using MobileOne.Models;
using MobileOne.Nn;
using MobileOne.Tensors;
using MobileOne.Training;

namespace MobileOne.Tests.Training;

/// <summary>
/// SGD and AdamW against values worked out by hand from PyTorch's update rules (written out in each test, not taken from
/// the optimizer), parameter groups, state export and import.
/// </summary>
public class OptimizerTests
{
    [Fact]
    public void Sgd_with_nesterov_momentum_and_weight_decay_follows_pytorch()
    {
        var (param, group) = Single([1.0f, -2.0f], lr: 0.1, wd: 0.01);
        var sgd = new Sgd([group], momentum: 0.9, nesterov: true);

        // Step 1: d = g + wd*p; buf = d; d = d + 0.9*buf; p -= lr*d.
        param.EnsureGrad().Data[0] = 0.5f;
        param.Grad!.Data[1] = -1.0f;
        sgd.Step();
        double d0 = 0.5 + (0.01 * 1.0), b0 = d0, p0 = 1.0 - (0.1 * (d0 + (0.9 * b0)));
        double d1 = -1.0 + (0.01 * -2.0), b1 = d1, p1 = -2.0 - (0.1 * (d1 + (0.9 * b1)));
        Assert.Equal(p0, param.Value.Data[0], 6);
        Assert.Equal(p1, param.Value.Data[1], 6);

        // Step 2: buf = 0.9*buf + d.
        param.Grad.Data[0] = 0.25f;
        param.Grad.Data[1] = 0.0f;
        sgd.Step();
        double e0 = 0.25 + (0.01 * p0), c0 = (0.9 * b0) + e0, q0 = p0 - (0.1 * (e0 + (0.9 * c0)));
        double e1 = 0.0 + (0.01 * p1), c1 = (0.9 * b1) + e1, q1 = p1 - (0.1 * (e1 + (0.9 * c1)));
        Assert.Equal(q0, param.Value.Data[0], 6);
        Assert.Equal(q1, param.Value.Data[1], 6);
        Assert.Equal(2, sgd.StepCount);
    }

    [Fact]
    public void Sgd_without_nesterov_uses_the_buffer_and_dampening()
    {
        var (param, group) = Single([2.0f], lr: 0.5, wd: 0);
        var sgd = new Sgd([group], momentum: 0.5, nesterov: false, dampening: 0.25);
        param.EnsureGrad().Data[0] = 1.0f;
        sgd.Step(); // buf = g (no dampening on the first step), p -= lr*buf
        Assert.Equal(2.0 - (0.5 * 1.0), param.Value.Data[0], 6);
        sgd.Step(); // buf = 0.5*1 + 0.75*1
        Assert.Equal(1.5 - (0.5 * 1.25), param.Value.Data[0], 6);
    }

    [Fact]
    public void AdamW_follows_pytorch_with_decoupled_decay_and_bias_correction()
    {
        var (param, group) = Single([1.0f, -0.5f], lr: 0.01, wd: 0.1);
        var adam = new AdamW([group], beta1: 0.9, beta2: 0.99, eps: 1e-6);
        double[] p = [1.0, -0.5], m = [0, 0], v = [0, 0];
        float[][] grads = [[0.3f, -0.2f], [-0.1f, 0.4f], [0.05f, 0.05f]];
        for (int t = 1; t <= grads.Length; t++)
        {
            param.EnsureGrad().Data[0] = grads[t - 1][0];
            param.Grad!.Data[1] = grads[t - 1][1];
            adam.Step();
            for (int i = 0; i < 2; i++)
            {
                double g = grads[t - 1][i];
                p[i] *= 1 - (0.01 * 0.1);
                m[i] = (0.9 * m[i]) + (0.1 * g);
                v[i] = (0.99 * v[i]) + (0.01 * g * g);
                double mHat = m[i] / (1 - Math.Pow(0.9, t)), vHat = v[i] / (1 - Math.Pow(0.99, t));
                p[i] -= 0.01 * mHat / (Math.Sqrt(vHat) + 1e-6);
                Assert.Equal(p[i], param.Value.Data[i], 6);
            }
        }
    }

    [Fact]
    public void Parameters_without_gradients_are_skipped_like_pytorch()
    {
        var (param, group) = Single([1.0f], lr: 0.1, wd: 0.5);
        new Sgd([group]).Step();
        new AdamW([group]).Step();
        Assert.Equal(1.0f, param.Value.Data[0]);
    }

    [Fact]
    public void Weight_decay_groups_follow_timm_no_decay_for_one_dimensional_parameters_and_biases()
    {
        var network = MobileOneNetwork.Create(MobileOneConfig.Parse("units=1/1/1/1,widths=0.25/0.25/0.25/0.25,k=2,se=0/0/0/1,classes=4"));
        var groups = ParameterGroups.WeightDecaySplit(network, 0.1, 1e-4);
        Assert.Equal(["no_decay", "decay"], groups.Select(g => g.Name));
        var noDecay = groups[0].Parameters.Select(p => p.Name).ToHashSet();
        var decay = groups[1].Parameters.Select(p => p.Name).ToHashSet();
        foreach (var p in network.NamedParameters())
        {
            bool exempt = p.Parameter.Value.Rank <= 1;
            Assert.True(exempt ? noDecay.Contains(p.Name) : decay.Contains(p.Name), p.Name);
        }

        Assert.Contains("stages.3.1.attn.fc1.bias", noDecay);
        Assert.Contains("head.fc.bias", noDecay);
        Assert.Contains("stem.conv_kxk.0.bn.weight", noDecay);
        Assert.Contains("head.fc.weight", decay);
        Assert.Equal(0.0, groups[0].WeightDecay);
        Assert.Equal(1e-4, groups[1].WeightDecay);

        var sgd = new Sgd(groups);
        sgd.SetWeightDecay(5e-5);
        sgd.SetLearningRate(0.02);
        Assert.Equal(0.0, groups[0].WeightDecay);
        Assert.Equal(5e-5, groups[1].WeightDecay);
        Assert.All(groups, g => Assert.Equal(0.02, g.LearningRate));
        Assert.Equal(network.NamedParameters().Count(), noDecay.Count + decay.Count);
    }

    [Fact]
    public void Optimizers_reject_bad_settings_with_a_message()
    {
        var (_, group) = Single([1f], lr: 0.1, wd: 0);
        Assert.Contains("Nesterov momentum requires a positive momentum and zero dampening", Assert.Throws<ArgumentException>(() => new Sgd([group], momentum: 0, nesterov: true)).Message);
        Assert.Contains("must be non-negative", Assert.Throws<ArgumentOutOfRangeException>(() => new Sgd([group], momentum: -1, nesterov: false)).Message);
        Assert.Contains("AdamW needs 0 <= beta1, beta2 < 1 and eps >= 0", Assert.Throws<ArgumentOutOfRangeException>(() => new AdamW([group], beta1: 1.0)).Message);
        Assert.Contains("An optimizer needs at least one parameter group", Assert.Throws<ArgumentException>(() => new Sgd([])).Message);
        var p = new NamedParameter("w", new Parameter(new Tensor(1)));
        Assert.Contains("Parameter 'w' is in both group 'a' and group 'b'", Assert.Throws<ArgumentException>(() => new Sgd([new ParameterGroup("a", [p], 0.1, 0), new ParameterGroup("b", [p], 0.1, 0)])).Message);
        Assert.Contains("lists 'w' twice", Assert.Throws<ArgumentException>(() => new ParameterGroup("a", [p, p], 0.1, 0)).Message);
    }

    [Theory]
    [InlineData("sgd")]
    [InlineData("adamw")]
    public void Exported_state_resumes_bit_for_bit_through_a_safetensors_file(string kind)
    {
        using var dir = new TempDir();
        var (a, optA) = Model(kind, 7);
        var (b, optB) = Model(kind, 7);
        var rng = new Random(1);
        for (int step = 0; step < 2; step++)
        {
            Gradients(a, rng, step);
            optA.Step();
        }

        string path = dir.File("optimizer.safetensors");
        SafetensorsWriter.Write(path, optA.ExportState().ToTensorFile());
        foreach (var (src, dst) in a.NamedParameters().Zip(b.NamedParameters()))
        {
            src.Parameter.Value.Data.CopyTo(dst.Parameter.Value.Data, 0);
        }

        optB.ImportState(OptimizerState.FromTensorFile(SafetensorsReader.Read(path), path));
        Assert.Equal(2, optB.StepCount);
        for (int step = 2; step < 4; step++)
        {
            Gradients(a, new Random(step), step);
            Gradients(b, new Random(step), step);
            optA.Step();
            optB.Step();
        }

        foreach (var (pa, pb) in a.NamedParameters().Zip(b.NamedParameters()))
        {
            Assert.Equal(pa.Parameter.Value.Data, pb.Parameter.Value.Data);
        }
    }

    [Fact]
    public void Importing_a_mismatched_state_names_the_problem()
    {
        var (_, sgd) = Model("sgd", 1);
        var (_, adam) = Model("adamw", 1);
        Assert.Contains("Optimizer state is for 'adamw', but this optimizer is 'sgd'", Assert.Throws<ArgumentException>(() => sgd.ImportState(adam.ExportState())).Message);
        var unknown = new OptimizerState("sgd", 1, [KeyValuePair.Create("momentum_buffer.nope", new Tensor(2))]);
        Assert.Contains("'momentum_buffer.nope' does not belong to any parameter", Assert.Throws<ArgumentException>(() => sgd.ImportState(unknown)).Message);
        var misshapen = new OptimizerState("sgd", 1, [KeyValuePair.Create("momentum_buffer.fc.weight", new Tensor(2))]);
        Assert.Contains("'momentum_buffer.fc.weight' has shape [2]; the parameter has [3, 4]", Assert.Throws<ArgumentException>(() => sgd.ImportState(misshapen)).Message);
        var half = new OptimizerState("adamw", 1, [KeyValuePair.Create("exp_avg.fc.bias", new Tensor(3))]);
        Assert.Contains("only one of 'exp_avg.fc.bias' and 'exp_avg_sq.fc.bias'", Assert.Throws<ArgumentException>(() => adam.ImportState(half)).Message);

        var file = sgd.ExportState().ToTensorFile();
        file.Metadata.Remove(OptimizerState.KindKey);
        Assert.Contains("opt.safetensors: no 'optimizer' metadata entry", Assert.Throws<InvalidDataException>(() => OptimizerState.FromTensorFile(file, "opt.safetensors")).Message);
        file = sgd.ExportState().ToTensorFile();
        file.Metadata[OptimizerState.StepKey] = "-3";
        Assert.Contains("opt.safetensors: the 'step' metadata entry must be a non-negative integer; got '-3'", Assert.Throws<InvalidDataException>(() => OptimizerState.FromTensorFile(file, "opt.safetensors")).Message);
    }

    [Theory]
    [IsaData(IsaLevel.Avx512)]
    [IsaData(IsaLevel.Avx2)]
    public void Updates_give_the_same_bits_at_every_vector_width(IsaLevel level)
    {
        // 37 elements: whole vectors of every width, then 4-, 2- and 1-lane tails. Scalar is the plain definition.
        float[] Run(IsaLevel isa, string kind)
        {
            using var scope = new KernelSettingsScope();
            Lanes.Level = isa;
            var rng = new Random(7);
            var values = Enumerable.Range(0, 37).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();
            var (param, group) = Single(values, lr: 0.05, wd: 0.01);
            Optimizer optimizer = kind == "sgd" ? new Sgd([group], momentum: 0.9, nesterov: true) : new AdamW([group], eps: 1e-8);
            for (int step = 0; step < 3; step++)
            {
                var grad = param.EnsureGrad().Data;
                for (int i = 0; i < grad.Length; i++)
                {
                    grad[i] = (float)(rng.NextDouble() - 0.5);
                }

                optimizer.Step();
            }

            return param.Value.Data;
        }

        foreach (string kind in new[] { "sgd", "adamw" })
        {
            Assert.Equal(Run(IsaLevel.Scalar, kind), Run(level, kind));
        }
    }

    private static (Parameter Param, ParameterGroup Group) Single(float[] values, double lr, double wd)
    {
        var param = new Parameter(new Tensor([values.Length], (float[])values.Clone()));
        return (param, new ParameterGroup("g", [new NamedParameter("w", param)], lr, wd));
    }

    private static (Linear Model, Optimizer Optimizer) Model(string kind, int seed)
    {
        var linear = new Linear(4, 3);
        var rng = new Random(seed);
        WeightInit.FillNormal(rng, linear.Weight.Value.Data, 0, 1);
        WeightInit.FillNormal(rng, linear.Bias.Value.Data, 0, 1);
        var named = linear.NamedParameters("fc.").ToList();
        var groups = new[] { new ParameterGroup("decay", [named[0]], 0.05, 0.01), new ParameterGroup("no_decay", [named[1]], 0.05, 0, exemptFromWeightDecay: true) };
        Optimizer optimizer = kind == "sgd" ? new Sgd(groups) : new AdamW(groups);
        return (linear, optimizer);
    }

    private static void Gradients(Linear model, Random rng, int step)
    {
        foreach (var p in model.NamedParameters())
        {
            WeightInit.FillNormal(rng, p.Parameter.EnsureGrad().Data, 0, 1 + step);
        }
    }
}
