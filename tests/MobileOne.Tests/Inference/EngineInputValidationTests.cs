using MobileOne.Inference;
using MobileOne.Kernels;
using MobileOne.Kernels.Conv;
using MobileOne.Models;
using MobileOne.Tensors;

namespace MobileOne.Tests.Inference;

/// <summary>Every bad input gets an ArgumentException (or a subtype) that says what was expected.</summary>
public class EngineInputValidationTests : IDisposable
{
    private readonly CompiledModel model = CompiledModel.Compile(
        EngineTestSupport.RandomFused(MobileOneConfig.Parse("units=1/1/1/1,widths=0.25/0.25/0.25/0.25,classes=4"), 1));

    public void Dispose() => model.Dispose();

    [Fact]
    public void Wrong_channel_count_is_reported_with_the_expected_count()
    {
        var e = Assert.Throws<ArgumentException>(() => model.Run(new Tensor(1, 4, 8, 8)));
        Assert.Equal("The engine input must have 3 channels; got shape [1, 4, 8, 8].", e.Message);
    }

    [Fact]
    public void Wrong_rank_is_reported()
    {
        var e = Assert.Throws<ArgumentException>(() => model.Run(new Tensor(3, 8, 8)));
        Assert.Equal("The engine input must be an NCHW tensor of rank 4; got shape [3, 8, 8].", e.Message);
    }

    [Fact]
    public void Zero_sized_tensor_is_reported()
    {
        var e = Assert.Throws<ArgumentException>(() => model.Run(new Tensor(0, 3, 8, 8)));
        Assert.Equal("The engine input has an empty dimension: shape [0, 3, 8, 8].", e.Message);
    }

    [Fact]
    public void Input_span_of_the_wrong_length_is_reported()
    {
        var e = Assert.Throws<ArgumentException>(() => model.Run(new float[3 * 8 * 8 - 1], 1, 8, 8, new float[4]));
        Assert.StartsWith("The input holds 191 floats; batch 1 x 3 channels x 8 x 8 (NCHW) needs exactly 192.", e.Message);
        e = Assert.Throws<ArgumentException>(() => model.Run(new float[2 * 3 * 8 * 8], 1, 8, 8, new float[4]));
        Assert.StartsWith("The input holds 384 floats; batch 1 x 3 channels x 8 x 8 (NCHW) needs exactly 192.", e.Message);
    }

    [Fact]
    public void Logits_span_too_small_is_reported()
    {
        var e = Assert.Throws<ArgumentException>(() => model.Run(new float[2 * 3 * 8 * 8], 2, 8, 8, new float[7]));
        Assert.StartsWith("The logits span holds 7 floats; batch 2 x 4 classes needs 8.", e.Message);
    }

    [Fact]
    public void Logits_tensor_of_the_wrong_shape_is_reported()
    {
        var e = Assert.Throws<ArgumentException>(() => model.Run(new Tensor(2, 3, 8, 8), new Tensor(2, 5)));
        Assert.StartsWith("The logits tensor must have shape [2, 4]; got [2, 5].", e.Message);
    }

    [Theory]
    [InlineData(0, 8, 8, "The batch size must be positive; got 0.")]
    [InlineData(-1, 8, 8, "The batch size must be positive; got -1.")]
    [InlineData(1, 0, 8, "The input height and width must be positive; got 0x8.")]
    [InlineData(1, 8, -2, "The input height and width must be positive; got 8x-2.")]
    public void Non_positive_sizes_are_reported(int batch, int height, int width, string message)
    {
        var e = Assert.ThrowsAny<ArgumentException>(() => model.Run(new float[3], batch, height, width, new float[4]));
        Assert.StartsWith(message, e.Message);
    }

    [Fact]
    public void A_too_short_timing_span_is_reported()
    {
        var e = Assert.Throws<ArgumentException>(() => model.Run(new float[3 * 8 * 8], 1, 8, 8, new float[4], new long[2]));
        Assert.StartsWith($"The layer timing span holds 2 entries; this plan has {model.Layers.Count} layers.", e.Message);
    }

    [Fact]
    public void An_oversized_batch_is_refused_before_allocating()
    {
        var e = Assert.Throws<ArgumentException>(() => model.Run(default, 100_000, 4000, 4000, default));
        Assert.StartsWith("The input holds 0 floats; batch 100000 x 3 channels x 4000 x 4000 (NCHW) needs exactly 4800000000000.", e.Message);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-3)]
    [InlineData(1000)]
    public void Invalid_thread_counts_are_refused(int threads)
    {
        var network = EngineTestSupport.RandomFused(MobileOneConfig.Parse("units=1/1/1/1,widths=0.25/0.25/0.25/0.25,classes=4"), 1);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => CompiledModel.Compile(network, new InferenceOptions { Threads = threads }));
        Assert.StartsWith($"InferenceOptions.Threads must be between 1 and 256; got {threads}.", e.Message);
    }

    [Fact]
    public void Undefined_enum_values_are_refused()
    {
        var network = EngineTestSupport.RandomFused(MobileOneConfig.Parse("units=1/1/1/1,widths=0.25/0.25/0.25/0.25,classes=4"), 1);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => CompiledModel.Compile(network, new InferenceOptions { Isa = (IsaLevel)9 }));
        Assert.StartsWith("InferenceOptions.Isa 9 is not one of Auto, Avx512, Avx2, Scalar.", e.Message);
        e = Assert.Throws<ArgumentOutOfRangeException>(() => CompiledModel.Compile(network, new InferenceOptions { ConvAlgorithm = (ConvAlgorithm)9 }));
        Assert.StartsWith("InferenceOptions.ConvAlgorithm 9 is not one of Auto, Direct, Im2Col, Im2Win.", e.Message);
    }

    [Fact]
    public void A_null_network_is_refused()
    {
        Assert.Throws<ArgumentNullException>(() => CompiledModel.Compile((MobileOneNetwork)null!));
    }

    [Fact]
    public void A_disposed_model_refuses_to_run()
    {
        var network = EngineTestSupport.RandomFused(MobileOneConfig.Parse("units=1/1/1/1,widths=0.25/0.25/0.25/0.25,classes=4"), 1);
        var disposed = CompiledModel.Compile(network, new InferenceOptions { Threads = 2 });
        disposed.Run(new Tensor(1, 3, 8, 8));
        disposed.Dispose();
        disposed.Dispose();
        Assert.Throws<ObjectDisposedException>(() => disposed.Run(new Tensor(1, 3, 8, 8)));
    }
}
