using MobileOne.Kernels;
using MobileOne.Models;
using MobileOne.Models.Zoo;
using MobileOne.Nn;
using MobileOne.Tests.Nn;
using MobileOne.Training;

namespace MobileOne.Tests.Models.Zoo;

/// <summary>
/// A zoo network trains like MobileOne: its forward equals the double-precision definitions of its operations and
/// its backward equals central differences of the loss through them, for a small network with every operation the
/// families use (strided, grouped and depthwise convolutions, a convolution with bias, BatchNorm, ReLU and ReLU6, a
/// three-way sum, a residual sum over a strided shortcut, max pooling, global pooling, the classifier) and values read
/// by several operations.
/// </summary>
public class ZooNetworkGradientTests
{
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Every_operation_trains_against_finite_differences(bool training)
    {
        var rng = new Random(training ? 61 : 62);
        var network = Tiny();
        network.Initialize(5);
        foreach (var op in network.Operations.OfType<BatchNormOp>())
        {
            WeightInit.FillNormal(rng, op.Bn.RunningMean.Data, 0, 0.2);
            for (int i = 0; i < op.Bn.Channels; i++)
            {
                op.Bn.RunningVar.Data[i] = (float)(0.5 + rng.NextDouble());
                op.Bn.Weight.Value.Data[i] = (float)(0.5 + rng.NextDouble());
                op.Bn.Bias.Value.Data[i] = (float)(rng.NextDouble() - 0.5);
            }
        }

        foreach (var fc in network.Operations.OfType<LinearOp>())
        {
            WeightInit.FillNormal(rng, fc.Linear.Weight.Value.Data, 0, 0.3);
        }

        var p = DoubleReference.Parameters(network);
        int n = 3, size = 16;
        var x = GradientCheckTests.Random(rng, n, 3, size, size);
        for (int i = 0; i < x.Length; i++)
        {
            x.Data[i] *= 3; // so that some ReLU6 inputs pass 6
        }

        int[] labels = [1, 4, 0];
        if (training)
        {
            network.Train();
        }
        else
        {
            network.Eval(gradEnabled: true);
        }

        var logits = network.Forward(x);
        var xd = DoubleReference.ToDouble(x.Data);
        double[] Forward() => DoubleReference.Zoo(xd, n, size, network, p, training);
        GradientCheckTests.AssertClose(Forward(), logits.Data, "logits");

        var loss = new CrossEntropyLoss(0.1);
        loss.Forward(logits, labels);
        network.ZeroGrad();
        var dx = network.Backward(loss.Backward(), inputGradient: true)!;
        double Loss() => DoubleReference.CrossEntropy(Forward(), n, network.NumClasses, labels, 0.1);
        GradCheck.Check("dx", dx.Data, xd, Loss, rng, samples: 6);
        foreach (var np in network.NamedParameters())
        {
            GradCheck.Check(np.Name, np.Parameter.Grad!.Data, p[np.Name], Loss, rng, samples: 3);
        }
    }

    [Fact]
    public void Without_gradients_the_forward_is_the_same_and_keeps_nothing_for_backward()
    {
        var rng = new Random(63);
        var network = Tiny();
        network.Initialize(6);
        var x = GradientCheckTests.Random(rng, 2, 3, 16, 16);
        network.Eval();
        var stateless = network.Forward(x);
        network.Eval(gradEnabled: true);
        var recorded = network.Forward(x);
        Assert.Equal(recorded.Data, stateless.Data);
        network.Eval();
        network.Forward(x);
        Assert.Contains("needs a Forward with gradients enabled first", Assert.Throws<InvalidOperationException>(() => network.Backward(recorded)).Message);
    }

    [Fact]
    public void A_zoo_network_is_its_layer_graph()
    {
        var network = Tiny();
        var graph = network.ToGraph();
        Assert.Equal(network.Operations.Select(o => o.Name), graph.Nodes.Select(n => n.Name));
        Assert.Equal(network.ParameterCount(), graph.Parameters());
    }

    [Fact]
    public void Only_activations_with_a_training_backward_are_accepted()
    {
        var e = Assert.Throws<ArgumentException>(() => new ActivationOp("act", 0, ActivationKind.Gelu));
        Assert.Contains("'act'", e.Message);
        Assert.Contains("ReLU or ReLU6", e.Message);
    }

    /// <summary>16x16 input: stem 3x3/2 to 8 channels, max pool, a RepVGG-like three-way sum, ReLU6, a depthwise/pointwise pair with a strided shortcut, the head.</summary>
    private static ZooNetwork Tiny()
    {
        var b = new NetworkBuilder("tiny", 3, groupedFanOut: true);
        int x = b.Activation("stem.act", b.ConvBn("stem.conv", "stem.bn", NetworkBuilder.Input, 8, 3, stride: 2), ActivationKind.Relu);
        x = b.MaxPool("pool", x, 3, 2, 1);
        int grouped = b.ConvBn("rep.kxk.conv", "rep.kxk.bn", x, 8, 3, groups: 2);
        int biased = b.Conv("rep.one", x, 8, 1, bias: true);
        int identity = b.BatchNorm("rep.identity", x);
        x = b.Activation("rep.act", b.Sum("rep.add", grouped, biased, identity), ActivationKind.Relu6);
        int y = b.Activation("ds.dw.act", b.ConvBn("ds.dw", "ds.bn1", x, 8, 3, stride: 2, groups: 8), ActivationKind.Relu);
        y = b.ConvBn("ds.pw", "ds.bn2", y, 6, 1);
        int shortcut = b.ConvBn("ds.down.conv", "ds.down.bn", x, 6, 1, stride: 2);
        x = b.Activation("ds.act", b.Sum("ds.add", y, shortcut), ActivationKind.Relu);
        b.Head("global_pool", "fc", x, 5, LayerInit.Constant(string.Empty, 0));
        return b.Build();
    }
}
