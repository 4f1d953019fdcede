using MobileOne.Kernels;
using MobileOne.Kernels.Depthwise;
using MobileOne.Models;
using MobileOne.Nn;
using MobileOne.Tensors;
using MobileOne.Training;

namespace MobileOne.Tests.Nn;

/// <summary>Every rejected input of the training layers and kernels fails with a message that says what was expected.</summary>
public unsafe class BadInputTests
{
    [Fact]
    public void Layers_name_the_expected_gradient_shape()
    {
        var linear = new Linear(3, 2);
        linear.Train();
        linear.Forward(new Tensor(4, 3));
        Assert.Contains("Linear output gradient must have shape [4, 2]; got [4, 3]", Assert.Throws<ArgumentException>(() => linear.Backward(new Tensor(4, 3))).Message);

        var bn = new BatchNorm2d(2);
        bn.Train();
        bn.Forward(new Tensor([2, 2, 2, 2], Reference.RandomArray(new Random(1), 16)));
        Assert.Contains("BatchNorm output gradient must have shape [2, 2, 2, 2]; got [2, 2, 2, 3]", Assert.Throws<ArgumentException>(() => bn.Backward(new Tensor(2, 2, 2, 3))).Message);

        var se = new SqueezeExcite(4, 1);
        se.Train();
        se.Forward(new Tensor(1, 4, 2, 2));
        Assert.Contains("Squeeze-excite output gradient must have shape [1, 4, 2, 2]; got [1, 4, 2, 1]", Assert.Throws<ArgumentException>(() => se.Backward(new Tensor(1, 4, 2, 1))).Message);

        var block = MobileOneBlock.CreateTrainTime(new BlockSpec(2, 2, 3, 1, 1, 2, 1, 0));
        block.Train();
        block.Forward(new Tensor([2, 2, 3, 3], Reference.RandomArray(new Random(2), 36)));
        Assert.Contains("Block output gradient must have shape [2, 2, 3, 3]; got [2, 2, 3, 4]", Assert.Throws<ArgumentException>(() => block.Backward(new Tensor(2, 2, 3, 4))).Message);
    }

    [Fact]
    public void Buffers_of_the_wrong_size_are_rejected()
    {
        var conv = new Conv2d(2, 3, 3, padding: 1);
        conv.Train();
        var e = Assert.Throws<ArgumentException>(() => conv.ForwardInto(new Tensor(1, 2, 4, 4), new float[10]));
        Assert.Contains("The convolution output buffer holds 10 floats; expected 48", e.Message);
        conv.Forward(new Tensor(1, 2, 4, 4));
        e = Assert.Throws<ArgumentException>(() => conv.BackwardInto(new float[5], default, accumulate: false));
        Assert.Contains("The convolution output gradient buffer holds 5 floats; expected 48", e.Message);

        var bn = new BatchNorm2d(3);
        e = Assert.Throws<ArgumentException>(() => bn.PrepareStatistics(new float[7], 1, 2));
        Assert.Contains("BatchNorm input holds 7 floats; expected 1 x 3 x 2", e.Message);
        Assert.Contains("needs a Forward with gradients enabled first", Assert.Throws<InvalidOperationException>(() => bn.PrepareGradient(new double[3], new double[3])).Message);
        bn.Train();
        bn.PrepareStatistics(new float[12], 2, 2);
        Assert.Contains("BatchNorm gradient sums must have 3 entries", Assert.Throws<ArgumentException>(() => bn.PrepareGradient(new double[2], new double[3])).Message);
    }

    [Fact]
    public void Kernels_reject_inconsistent_arguments()
    {
        var buffer = GC.AllocateArray<float>(64, pinned: true);
        float* p = (float*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref buffer[0]);
        Assert.Contains("A depthwise pass needs at least one branch", Assert.Throws<ArgumentException>(() => DepthwiseConvolution.Forward(p, 1, 1, 2, 2, 1, 1, [])).Message);
        Assert.Contains("Invalid depthwise stride 0 or padding 1", Assert.Throws<ArgumentException>(() => DepthwiseConvolution.Forward(p, 1, 1, 2, 2, 0, 1, [new DepthwiseBranch(p, 3, p)])).Message);
        Assert.Contains("Invalid depthwise kernel size 0", Assert.Throws<ArgumentException>(() => DepthwiseConvolution.Forward(p, 1, 1, 2, 2, 1, 1, [new DepthwiseBranch(p, 0, p)])).Message);

        var g = new ConvGeometry(1, 2, 4, 4, 2, 3, 3, 2, 2, 1, 1, 1);
        Assert.Contains("needs a patch buffer (ColumnsSize floats)", Assert.Throws<ArgumentException>(() => TrainingConvolution.Forward(p, p, null, p, g, null)).Message);
        Assert.Contains("Groups 3 must divide both input channels 2", Assert.Throws<ArgumentException>(() => TrainingConvolution.Forward(p, p, null, p, g with { Groups = 3 }, p)).Message);

        Assert.Contains("A matrix view needs non-negative sizes; got -1x2", Assert.Throws<ArgumentException>(() => new MatrixView(p, -1, 2, 2, 1)).Message);
        var view = MatrixView.ChannelsByPixels(p, 2, 3, 4, 8);
        Assert.Contains("is outside a 2x12 view", Assert.Throws<ArgumentOutOfRangeException>(() => view.Slice(0, 2, 8, 5)).Message);
        Assert.Contains("must start on a batch boundary", Assert.Throws<ArgumentException>(() => view.Slice(0, 2, 2, 4)).Message);

        Assert.Contains("The thread count must be at least 1", Assert.Throws<ArgumentOutOfRangeException>(() => ComputeThreads.Count = 0).Message);
    }

    [Fact]
    public void Optimizer_state_rejects_bad_contents()
    {
        Assert.Contains("The step count cannot be negative", Assert.Throws<ArgumentOutOfRangeException>(() => new OptimizerState("sgd", -1, [])).Message);
        var file = new OptimizerState("sgd", 1, []).ToTensorFile();
        file.Tensors.Add("momentum_buffer.w", MobileOne.IO.StoredTensor.FromInt64(3));
        Assert.Contains("opt.safetensors: optimizer tensor 'momentum_buffer.w' is I64; expected floating point", Assert.Throws<InvalidDataException>(() => OptimizerState.FromTensorFile(file, "opt.safetensors")).Message);
        Assert.Contains("The maximum gradient norm must be positive", Assert.Throws<ArgumentOutOfRangeException>(() => GradientClipping.ClipByGlobalNorm(new Linear(1, 1), -1)).Message);
    }
}
