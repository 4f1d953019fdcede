using MobileOne.Models;
using MobileOne.Nn;
using MobileOne.Tensors;
using MobileOne.Training;

namespace MobileOne.Tests.Nn;

/// <summary>
/// Finite-difference checks: every backward pass of the library (float32) against central differences (h = 1e-6) of
/// the double-precision textbook forward in <see cref="DoubleReference"/>, on small random configurations. The layer
/// losses are L = sum(output * R) for a fixed random R, so dL/doutput = R is what Backward receives. Forward outputs
/// are compared with the same reference first.
/// </summary>
public class GradientCheckTests
{
    public static TheoryData<int, int, int, int, int, int, bool, int, int> Convolutions => new()
    {
        // cin, cout, kernel, stride, padding, groups, bias, height, width
        { 3, 4, 3, 1, 1, 1, false, 6, 5 },   // im2col
        { 3, 5, 3, 2, 1, 1, true, 7, 6 },    // im2col, stride 2, bias
        { 4, 6, 1, 1, 0, 1, false, 5, 4 },   // pointwise GEMM
        { 4, 6, 1, 1, 0, 2, true, 3, 5 },    // grouped pointwise
        { 3, 4, 1, 2, 0, 1, false, 7, 7 },   // strided 1x1 (im2col)
        { 4, 6, 3, 1, 0, 2, false, 6, 6 },   // grouped 3x3, no padding
        { 4, 4, 3, 1, 1, 4, false, 6, 7 },   // depthwise 3x3 (direct)
        { 5, 5, 3, 2, 1, 5, true, 7, 6 },    // depthwise 3x3 stride 2, bias
        { 3, 3, 1, 2, 0, 3, false, 5, 6 },   // depthwise 1x1 stride 2
        { 3, 3, 5, 1, 2, 3, false, 6, 6 },   // depthwise 5x5 (scalar path)
        { 2, 2, 3, 3, 0, 2, false, 8, 7 },   // depthwise stride 3 (scalar path)
        { 2, 4, 3, 2, 2, 2, false, 5, 5 },   // channel multiplier 2, padding 2 (im2col)
    };

    [Theory]
    [MemberData(nameof(Convolutions))]
    public void Conv2d_gradients_match_finite_differences(int cin, int cout, int k, int stride, int pad, int groups, bool bias, int h, int w)
    {
        var rng = new Random((cin * 1000) + (k * 100) + (stride * 10) + groups);
        int n = 2;
        var conv = new Conv2d(cin, cout, k, stride, pad, groups, bias);
        Fill(conv, rng);
        var x = Random(rng, n, cin, h, w);
        conv.Train();
        var y = conv.Forward(x);

        var p = DoubleReference.Parameters(conv);
        var xd = DoubleReference.ToDouble(x.Data);
        double[] Forward() => DoubleReference.Conv(xd, n, cin, h, w, p["weight"], cout, k, stride, pad, groups, bias ? p["bias"] : null, out _, out _);
        AssertClose(Forward(), y.Data, "conv output");

        var r = Random(rng, y.Shape);
        conv.ZeroGrad();
        var dx = conv.Backward(r)!;
        double Loss() => DoubleReference.Dot(Forward(), r.Data);
        GradCheck.Check("dx", dx.Data, xd, Loss, rng);
        GradCheck.Check("dW", conv.Weight.Grad!.Data, p["weight"], Loss, rng);
        if (bias)
        {
            GradCheck.Check("db", conv.Bias!.Grad!.Data, p["bias"], Loss, rng);
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void BatchNorm2d_gradients_match_finite_differences_in_train_and_eval_mode(bool training)
    {
        var rng = new Random(training ? 11 : 12);
        int n = 3, c = 4, h = 3, w = 5;
        var bn = new BatchNorm2d(c);
        Fill(bn, rng);
        for (int i = 0; i < c; i++)
        {
            bn.RunningVar.Data[i] = 0.5f + (float)rng.NextDouble();
        }

        var p = DoubleReference.Parameters(bn);
        var x = Random(rng, n, c, h, w);
        if (training)
        {
            bn.Train();
        }
        else
        {
            bn.Eval(gradEnabled: true);
        }

        var y = bn.Forward(x);
        var xd = DoubleReference.ToDouble(x.Data);
        double[] Forward() => DoubleReference.BatchNorm(xd, n, c, h * w, p, "", training);
        AssertClose(Forward(), y.Data, "BatchNorm output");

        var r = Random(rng, y.Shape);
        bn.ZeroGrad();
        var dx = bn.Backward(r);
        double Loss() => DoubleReference.Dot(Forward(), r.Data);
        GradCheck.Check("dx", dx.Data, xd, Loss, rng, samples: 20);
        GradCheck.Check("dgamma", bn.Weight.Grad!.Data, p["weight"], Loss, rng);
        GradCheck.Check("dbeta", bn.Bias.Grad!.Data, p["bias"], Loss, rng);
    }

    [Fact]
    public void BatchNorm2d_training_updates_running_statistics_like_pytorch()
    {
        var rng = new Random(5);
        int n = 2, c = 3, h = 2, w = 3, m = n * h * w;
        var bn = new BatchNorm2d(c);
        var x = Random(rng, n, c, h, w);
        var before = (bn.RunningMean.Clone(), bn.RunningVar.Clone());
        bn.Train();
        bn.Forward(x);
        bn.Forward(x);
        Assert.Equal(2f, bn.NumBatchesTracked.Data[0]);
        for (int ch = 0; ch < c; ch++)
        {
            var values = Enumerable.Range(0, n).SelectMany(b => Enumerable.Range(0, h * w).Select(q => (double)x.Data[(((b * c) + ch) * h * w) + q])).ToArray();
            double mean = values.Average(), unbiased = values.Sum(v => (v - mean) * (v - mean)) / (m - 1);
            double rm = before.Item1.Data[ch], rv = before.Item2.Data[ch];
            for (int step = 0; step < 2; step++)
            {
                rm = (0.9 * rm) + (0.1 * mean);
                rv = (0.9 * rv) + (0.1 * unbiased);
            }

            Assert.Equal(rm, bn.RunningMean.Data[ch], 6);
            Assert.Equal(rv, bn.RunningVar.Data[ch], 6);
        }
    }

    [Fact]
    public void BatchNorm2d_training_rejects_a_single_value_per_channel()
    {
        var bn = new BatchNorm2d(2);
        bn.Train();
        var e = Assert.Throws<ArgumentException>(() => bn.Forward(new Tensor(1, 2, 1, 1)));
        Assert.Contains("Expected more than 1 value per channel when training", e.Message);
    }

    [Fact]
    public void SqueezeExcite_gradients_flow_through_gate_and_scaled_input()
    {
        var rng = new Random(21);
        int n = 2, c = 8, h = 3, w = 4;
        var se = new SqueezeExcite(c, 2);
        Fill(se, rng);
        var x = Random(rng, n, c, h, w);
        se.Train();
        var y = se.Forward(x);
        var p = DoubleReference.Parameters(se);
        var xd = DoubleReference.ToDouble(x.Data);
        double[] Forward() => DoubleReference.SqueezeExcite(xd, n, c, h * w, p, "");
        AssertClose(Forward(), y.Data, "SE output");

        var r = Random(rng, y.Shape);
        se.ZeroGrad();
        var dx = se.Backward(r);
        double Loss() => DoubleReference.Dot(Forward(), r.Data);
        GradCheck.Check("dx", dx.Data, xd, Loss, rng, samples: 20);
        foreach (var np in se.NamedParameters())
        {
            GradCheck.Check(np.Name, np.Parameter.Grad!.Data, p[np.Name], Loss, rng);
        }
    }

    [Fact]
    public void Linear_gradients_match_finite_differences()
    {
        var rng = new Random(31);
        int n = 3, fin = 7, fout = 5;
        var linear = new Linear(fin, fout);
        Fill(linear, rng);
        var x = Random(rng, n, fin);
        linear.Train();
        var y = linear.Forward(x);
        var p = DoubleReference.Parameters(linear);
        var xd = DoubleReference.ToDouble(x.Data);
        double[] Forward() => DoubleReference.Linear(xd, n, fin, p["weight"], p["bias"], fout);
        AssertClose(Forward(), y.Data, "linear output");

        var r = Random(rng, y.Shape);
        linear.ZeroGrad();
        var dx = linear.Backward(r)!;
        double Loss() => DoubleReference.Dot(Forward(), r.Data);
        GradCheck.Check("dx", dx.Data, xd, Loss, rng);
        GradCheck.Check("dW", linear.Weight.Grad!.Data, p["weight"], Loss, rng);
        GradCheck.Check("db", linear.Bias.Grad!.Data, p["bias"], Loss, rng);
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(0.1)]
    [InlineData(0.3)]
    public void Cross_entropy_with_label_smoothing_matches_its_definition_and_finite_differences(double smoothing)
    {
        var rng = new Random(41);
        int n = 4, classes = 6;
        var logits = Random(rng, n, classes);
        for (int i = 0; i < logits.Length; i++)
        {
            logits.Data[i] *= 3;
        }

        int[] labels = [0, 5, 2, 2];
        var loss = new CrossEntropyLoss(smoothing);
        double value = loss.Forward(logits, labels);
        var xd = DoubleReference.ToDouble(logits.Data);
        double Loss() => DoubleReference.CrossEntropy(xd, n, classes, labels, smoothing);
        Assert.Equal(Loss(), value, 10);
        GradCheck.Check("dlogits", loss.Backward().Data, xd, Loss, rng, samples: 24, tolerance: 1e-5);
    }

    [Fact]
    public void Cross_entropy_with_soft_targets_equals_smoothed_one_hot_targets()
    {
        var rng = new Random(42);
        int n = 3, classes = 5;
        var logits = Random(rng, n, classes);
        int[] labels = [4, 0, 2];
        var targets = new Tensor(n, classes);
        for (int i = 0; i < n; i++)
        {
            for (int c = 0; c < classes; c++)
            {
                targets.Data[(i * classes) + c] = (float)((c == labels[i] ? 0.9 : 0.0) + (0.1 / classes));
            }
        }

        var hard = new CrossEntropyLoss(0.1);
        var soft = new CrossEntropyLoss();
        Assert.Equal(hard.Forward(logits, labels), soft.Forward(logits, targets), 6);
        Assert.Equal(hard.Backward().Data, soft.Backward().Data, (a, b) => Math.Abs(a - b) < 1e-7);
    }

    [Fact]
    public void Cross_entropy_reports_bad_labels_and_shapes()
    {
        var loss = new CrossEntropyLoss(0.1);
        var e = Assert.Throws<ArgumentException>(() => loss.Forward(new Tensor(2, 3), [0, 3]));
        Assert.Contains("Label 3 at batch index 1 is outside [0, 3)", e.Message);
        e = Assert.Throws<ArgumentException>(() => loss.Forward(new Tensor(2, 3), [0]));
        Assert.Contains("Got 1 labels for a batch of 2 logits", e.Message);
        e = Assert.Throws<ArgumentException>(() => loss.Forward(new Tensor(2, 3, 1), [0, 1]));
        Assert.Contains("expects logits [N, classes]", e.Message);
        e = Assert.Throws<ArgumentException>(() => loss.Forward(new Tensor(2, 3), new Tensor(2, 4)));
        Assert.Contains("Soft targets must have the logits' shape [2, 3]", e.Message);
        var o = Assert.Throws<ArgumentOutOfRangeException>(() => new CrossEntropyLoss(1.5));
        Assert.Contains("Label smoothing must be between 0 and 1", o.Message);
        Assert.Contains("needs a Forward first", Assert.Throws<InvalidOperationException>(() => new CrossEntropyLoss().Backward()).Message);
    }

    public static TheoryData<int, int, int, int, int, int, int, int, bool> BlockSpecs => new()
    {
        // in, out, kernel, stride, groups, k, se channels, size, training
        { 4, 4, 3, 1, 4, 2, 0, 6, true },    // depthwise with skip and scale branch
        { 4, 4, 3, 2, 4, 3, 0, 7, true },    // depthwise stride 2
        { 4, 6, 1, 1, 1, 2, 0, 5, true },    // pointwise, stacked GEMM
        { 6, 6, 1, 1, 1, 3, 2, 4, true },    // pointwise with skip and SE
        { 3, 5, 3, 2, 1, 1, 0, 7, true },    // stem-like (im2col)
        { 4, 6, 3, 1, 2, 2, 0, 5, true },    // grouped, not depthwise
        { 4, 4, 3, 1, 4, 2, 2, 6, false },   // eval mode with gradients
    };

    [Theory]
    [MemberData(nameof(BlockSpecs))]
    public void MobileOneBlock_gradients_match_finite_differences(int cin, int cout, int kernel, int stride, int groups, int k, int se, int size, bool training)
    {
        var rng = new Random((cin * 100) + (cout * 10) + kernel + stride + se);
        int n = 2;
        var spec = new BlockSpec(cin, cout, kernel, stride, kernel / 2, groups, k, se);
        var block = MobileOneBlock.CreateTrainTime(spec);
        WeightInit.Initialize(block, rng.Next());
        WeightInit.RandomizeBatchNorm(block, rng.Next());
        var p = DoubleReference.Parameters(block);
        var x = Random(rng, n, cin, size, size + 1);
        if (training)
        {
            block.Train();
        }
        else
        {
            block.Eval(gradEnabled: true);
        }

        var y = block.Forward(x);
        var xd = DoubleReference.ToDouble(x.Data);
        double[] Forward() => DoubleReference.Block(xd, n, size, size + 1, spec, p, "", training, out _, out _);
        AssertClose(Forward(), y.Data, "block output");

        var r = Random(rng, y.Shape);
        block.ZeroGrad();
        var dx = block.Backward(r)!;
        double Loss() => DoubleReference.Dot(Forward(), r.Data);
        GradCheck.Check("dx", dx.Data, xd, Loss, rng);
        foreach (var np in block.NamedParameters())
        {
            GradCheck.Check(np.Name, np.Parameter.Grad!.Data, p[np.Name], Loss, rng, samples: 6);
        }
    }

    [Fact]
    public void Fused_block_trains_through_its_convolution_squeeze_excite_and_relu()
    {
        var rng = new Random(61);
        int n = 2, c = 8, size = 6;
        var spec = new BlockSpec(c, c, 3, 1, 1, 1, 1, 2);
        var block = MobileOneBlock.CreateFused(spec);
        Fill(block, rng);
        var p = DoubleReference.Parameters(block);
        var x = Random(rng, n, c, size, size);
        block.Train();
        var y = block.Forward(x);
        var xd = DoubleReference.ToDouble(x.Data);
        double[] Forward()
        {
            var z = DoubleReference.Conv(xd, n, c, size, size, p["reparam_conv.weight"], c, 3, 1, 1, 1, p["reparam_conv.bias"], out _, out _);
            return DoubleReference.Relu(DoubleReference.SqueezeExcite(z, n, c, size * size, p, "attn."));
        }

        AssertClose(Forward(), y.Data, "fused block output");
        var r = Random(rng, y.Shape);
        block.ZeroGrad();
        var dx = block.Backward(r)!;
        double Loss() => DoubleReference.Dot(Forward(), r.Data);
        GradCheck.Check("dx", dx.Data, xd, Loss, rng);
        foreach (var np in block.NamedParameters())
        {
            GradCheck.Check(np.Name, np.Parameter.Grad!.Data, p[np.Name], Loss, rng, samples: 6);
        }
    }

    [Fact]
    public void MobileOneNetwork_gradients_match_finite_differences_through_the_loss()
    {
        var rng = new Random(51);
        var config = MobileOneConfig.Parse("units=1/1/1/1,widths=0.125/0.125/0.0625/0.0625,k=2,se=0/0/1/1,classes=5");
        var network = MobileOneNetwork.Create(config);
        WeightInit.Initialize(network, 3);
        WeightInit.RandomizeBatchNorm(network, 4);
        foreach (var e in network.State().Where(e => e.Name.StartsWith("head.", StringComparison.Ordinal)))
        {
            WeightInit.FillNormal(rng, e.Value.Data, 0, 0.3);
        }

        var p = DoubleReference.Parameters(network);
        int n = 3, size = 20;
        var x = Random(rng, n, 3, size, size);
        int[] labels = [1, 4, 0];
        network.Train();
        var logits = network.Forward(x);
        var xd = DoubleReference.ToDouble(x.Data);
        double[] Forward() => DoubleReference.Network(xd, n, size, network, p, training: true);
        AssertClose(Forward(), logits.Data, "logits");

        var loss = new CrossEntropyLoss(0.1);
        loss.Forward(logits, labels);
        network.ZeroGrad();
        var dx = network.Backward(loss.Backward(), inputGradient: true)!;
        double Loss() => DoubleReference.CrossEntropy(Forward(), n, config.NumClasses, labels, 0.1);
        GradCheck.Check("dx", dx.Data, xd, Loss, rng, samples: 4);
        var named = network.NamedParameters().ToList();
        foreach (var np in named.Where((_, i) => i % 7 == 0).Append(named[^1]))
        {
            GradCheck.Check(np.Name, np.Parameter.Grad!.Data, p[np.Name], Loss, rng, samples: 3);
        }
    }

    [Fact]
    public void Backward_before_a_recorded_forward_explains_what_to_do()
    {
        const string hint = "needs a Forward with gradients enabled first (call Train() or Eval(gradEnabled: true))";
        Assert.Contains(hint, Assert.Throws<InvalidOperationException>(() => new Conv2d(2, 2, 1).Backward(new Tensor(1, 2, 2, 2))).Message);
        Assert.Contains(hint, Assert.Throws<InvalidOperationException>(() => new BatchNorm2d(2).Backward(new Tensor(1, 2, 2, 2))).Message);
        Assert.Contains(hint, Assert.Throws<InvalidOperationException>(() => new Linear(2, 2).Backward(new Tensor(1, 2))).Message);
        Assert.Contains(hint, Assert.Throws<InvalidOperationException>(() => new SqueezeExcite(4, 1).Backward(new Tensor(1, 4, 2, 2))).Message);
        var block = MobileOneBlock.CreateTrainTime(new BlockSpec(2, 2, 3, 1, 1, 2, 1, 0));
        Assert.Contains(hint, Assert.Throws<InvalidOperationException>(() => block.Backward(new Tensor(1, 2, 2, 2))).Message);
        var network = MobileOneNetwork.Create(MobileOneConfig.Parse("units=1/1/1/1,widths=0.125/0.125/0.125/0.125,k=1,classes=2"));
        Assert.Contains(hint, Assert.Throws<InvalidOperationException>(() => network.Backward(new Tensor(1, 2))).Message);

        var conv = new Conv2d(2, 3, 3, padding: 1);
        conv.Train();
        conv.Forward(new Tensor(1, 2, 4, 4));
        Assert.Contains("must have shape [1, 3, 4, 4]", Assert.Throws<ArgumentException>(() => conv.Backward(new Tensor(1, 3, 4, 5))).Message);
    }

    internal static Tensor Random(Random rng, params int[] shape)
    {
        var t = new Tensor(shape);
        for (int i = 0; i < t.Length; i++)
        {
            t.Data[i] = (float)((rng.NextDouble() * 2) - 1);
        }

        return t;
    }

    private static void Fill(Module module, Random rng)
    {
        foreach (var e in module.State())
        {
            if (e.Kind == StateKind.Parameter)
            {
                for (int i = 0; i < e.Value.Length; i++)
                {
                    e.Value.Data[i] = (float)((rng.NextDouble() * 1.6) - 0.8);
                }
            }
        }
    }

    internal static void AssertClose(double[] expected, float[] actual, string what)
    {
        double scale = Math.Max(1e-3, expected.Max(Math.Abs));
        double diff = Reference.MaxAbsDiff(actual, expected);
        Assert.True(diff <= 1e-5 * scale, $"{what}: max diff {diff:e3} vs scale {scale:e3}");
    }
}
