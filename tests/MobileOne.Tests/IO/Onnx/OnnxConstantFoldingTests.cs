using MobileOne.Graph;
using Onnx;
using static MobileOne.Tests.IO.Onnx.OnnxModelBuilder;

namespace MobileOne.Tests.IO.Onnx;

/// <summary>
/// The constants the importer computes (ConstantOfShape, Reshape, Slice, Transpose, Cast of constants), each fed to
/// a 1x1 convolution as its weight so that the weight shows every element and the shape it was given. The expected
/// values are worked out by hand from the ONNX operator definitions.
/// </summary>
public class OnnxConstantFoldingTests
{
    private const string ConstantsOnly = "computes on a value that is not a constant; the importer evaluates it only on constants (shape arithmetic such as PyTorch's pads)";

    /// <summary>The weight of a convolution of the model's input whose weight is <paramref name="value"/>.</summary>
    private static float[] Weight(OnnxModelBuilder model, string value)
    {
        var graph = model.Node("Conv", ["input", value], "conv").Output("conv").Import();
        return Assert.IsType<ConvNode>(Assert.Single(graph.Nodes)).Weight;
    }

    /// <summary><paramref name="value"/> reshaped to [dim 0, rest, 1, 1] (Reshape's 0 copies a dimension, -1 takes the rest).</summary>
    private static OnnxModelBuilder To4d(OnnxModelBuilder model, string value, params long[] target) =>
        model.Longs(value + ".shape", target.Length > 0 ? target : [0, -1, 1, 1]).Node("Reshape", [value, value + ".shape"], value + ".4d");

    private static void AssertRefused(OnnxModelBuilder model, string problem)
    {
        var e = model.Refuse();
        Assert.Equal(problem, e.Problem);
    }

    [Fact]
    public void Transpose_permutes_the_axes_as_given_or_reverses_them()
    {
        // d[i][j][k] = 6i + 2j + k over [2, 3, 2]; perm [1, 2, 0] gives t[j][k][i] = d[i][j][k], shape [3, 2, 2].
        var permuted = To4d(new OnnxModelBuilder(channels: 4).Floats("d", Ramp(12), 2, 3, 2).Node("Transpose", ["d"], "t", Ints("perm", 1, 2, 0)), "t");
        Assert.Equal([0f, 6, 1, 7, 2, 8, 3, 9, 4, 10, 5, 11], Weight(permuted, "t.4d"));

        // Without perm the axes are reversed: t[k][j][i] = d[i][j][k], shape [2, 3, 2].
        var reversed = To4d(new OnnxModelBuilder(channels: 6).Floats("d", Ramp(12), 2, 3, 2).Node("Transpose", ["d"], "t"), "t");
        Assert.Equal([0f, 6, 2, 8, 4, 10, 1, 7, 3, 9, 5, 11], Weight(reversed, "t.4d"));
    }

    [Theory]
    [InlineData(new long[] { 0, 0 }, "has perm [0, 0] for a rank-2 constant")]
    [InlineData(new long[] { 1 }, "has perm [1] for a rank-2 constant")]
    [InlineData(new long[] { 1, 2 }, "has perm [1, 2] for a rank-2 constant")]
    public void Transpose_refuses_what_is_no_permutation_of_the_axes(long[] perm, string problem) =>
        AssertRefused(
            new OnnxModelBuilder().Floats("d", Ramp(6), 2, 3).Node("Transpose", ["d"], "t", Ints("perm", perm)).Output("t"),
            $"node 't' (Transpose) {problem}.");

    [Theory]
    [InlineData("Transpose")]
    [InlineData("Cast")]
    [InlineData("Slice")]
    [InlineData("ConstantOfShape")]
    public void Folding_refuses_a_value_that_is_not_a_constant(string op) =>
        AssertRefused(
            new OnnxModelBuilder().Longs("starts", 0).Longs("ends", 1).Node(op, op == "Slice" ? ["input", "starts", "ends"] : ["input"], "f").Output("f"),
            $"node 'f' ({op}) {ConstantsOnly}.");

    [Fact]
    public void Slice_with_step_minus_one_from_the_end_reverses_as_pytorch_writes_it()
    {
        // PyTorch's pads flip: starts -2 (the second last), ends int64 min (past the front), step -1.
        var model = new OnnxModelBuilder(channels: 1).Floats("d", Ramp(10), 10).Longs("starts", -2).Longs("ends", long.MinValue).Longs("axes", 0).Longs("steps", -1)
            .Node("Slice", ["d", "starts", "ends", "axes", "steps"], "s");
        Assert.Equal([8f, 7, 6, 5, 4, 3, 2, 1, 0], Weight(To4d(model, "s", -1, 1, 1, 1), "s.4d"));

        // A start past the end is clamped to the last element.
        var clamped = new OnnxModelBuilder(channels: 1).Floats("d", Ramp(10), 10).Longs("starts", 100).Longs("ends", -100).Longs("axes", 0).Longs("steps", -3)
            .Node("Slice", ["d", "starts", "ends", "axes", "steps"], "s");
        Assert.Equal([9f, 6, 3, 0], Weight(To4d(clamped, "s", -1, 1, 1, 1), "s.4d"));
    }

    [Fact]
    public void Slice_with_positive_steps_reads_from_start_up_to_the_clamped_end()
    {
        var model = new OnnxModelBuilder(channels: 1).Floats("d", Ramp(10), 10).Longs("starts", 1).Longs("ends", long.MaxValue).Longs("axes", 0).Longs("steps", 2)
            .Node("Slice", ["d", "starts", "ends", "axes", "steps"], "s");
        Assert.Equal([1f, 3, 5, 7, 9], Weight(To4d(model, "s", -1, 1, 1, 1), "s.4d"));

        var three = new OnnxModelBuilder(channels: 1).Floats("d", Ramp(10), 10).Longs("starts", -9).Longs("ends", 9).Longs("axes", 0).Longs("steps", 3)
            .Node("Slice", ["d", "starts", "ends", "axes", "steps"], "s");
        Assert.Equal([1f, 4, 7], Weight(To4d(three, "s", -1, 1, 1, 1), "s.4d"));
    }

    [Fact]
    public void Slice_takes_axes_in_order_by_default_and_counts_negative_axes_from_the_back()
    {
        // d[i][j] = 6i + j over [2, 6]: the columns 1..4 of both rows (axis -1, ends -1), shape [2, 4].
        var columns = new OnnxModelBuilder(channels: 4).Floats("d", Ramp(12), 2, 6).Longs("starts", 1).Longs("ends", -1).Longs("axes", -1)
            .Node("Slice", ["d", "starts", "ends", "axes"], "s");
        Assert.Equal([1f, 2, 3, 4, 7, 8, 9, 10], Weight(To4d(columns, "s", 0, 0, 1, 1), "s.4d"));

        // Without axes the one start is axis 0: row 1, shape [1, 6].
        var row = new OnnxModelBuilder(channels: 6).Floats("d", Ramp(12), 2, 6).Longs("starts", 1).Longs("ends", 2)
            .Node("Slice", ["d", "starts", "ends"], "s");
        Assert.Equal([6f, 7, 8, 9, 10, 11], Weight(To4d(row, "s", 0, 0, 1, 1), "s.4d"));

        // Both axes backwards over [3, 4]: rows 2, 1, 0 and columns 3, 2, 1, shape [3, 3].
        var both = new OnnxModelBuilder(channels: 3).Floats("d", Ramp(12), 3, 4).Longs("starts", 2, 3).Longs("ends", -100, 0).Longs("axes", 0, 1).Longs("steps", -1, -1)
            .Node("Slice", ["d", "starts", "ends", "axes", "steps"], "s");
        Assert.Equal([11f, 10, 9, 7, 6, 5, 3, 2, 1], Weight(To4d(both, "s", 0, 0, 1, 1), "s.4d"));
    }

    [Fact]
    public void An_empty_slice_has_no_elements()
    {
        // Ends before starts: nothing, which the Concat then adds nothing from.
        var model = new OnnxModelBuilder(channels: 1).Floats("d", Ramp(10), 10).Floats("more", [5, 6], 2).Longs("starts", 5).Longs("ends", 2)
            .Node("Slice", ["d", "starts", "ends"], "s").Node("Concat", ["s", "more"], "joined", Int("axis", 0));
        Assert.Equal([5f, 6], Weight(To4d(model, "joined", -1, 1, 1, 1), "joined.4d"));
    }

    [Theory]
    [InlineData(new long[] { 0 }, new long[] { 1, 2 }, null, null)]
    [InlineData(new long[] { 0 }, new long[] { 1 }, new long[] { 0, 1 }, null)]
    [InlineData(new long[] { 0 }, new long[] { 1 }, null, new long[] { 1, 1 })]
    [InlineData(new long[] { 0 }, new long[] { 1 }, null, new long[] { 0 })]
    [InlineData(new long[] { 0 }, new long[] { 1 }, new long[] { 2 }, null)]
    [InlineData(new long[] { 0 }, new long[] { 1 }, new long[] { -3 }, null)]
    public void Slice_refuses_inputs_that_do_not_match_its_data(long[] starts, long[] ends, long[]? axes, long[]? steps)
    {
        var model = new OnnxModelBuilder().Floats("d", Ramp(6), 2, 3).Longs("starts", starts).Longs("ends", ends);
        var inputs = new List<string> { "d", "starts", "ends" };
        inputs.Add(axes is null ? "" : "axes");
        if (axes is not null)
        {
            model.Longs("axes", axes);
        }

        if (steps is not null)
        {
            model.Longs("steps", steps);
            inputs.Add("steps");
        }

        AssertRefused(model.Node("Slice", [.. inputs], "s").Output("s"), "node 's' (Slice) has starts, ends, axes and steps that do not match its data.");
    }

    [Fact]
    public void A_slice_of_the_last_axis_by_minus_two_is_still_in_range()
    {
        var model = new OnnxModelBuilder(channels: 2).Floats("d", Ramp(6), 3, 2).Longs("starts", 0).Longs("ends", 1).Longs("axes", -2)
            .Node("Slice", ["d", "starts", "ends", "axes"], "s");
        Assert.Equal([0f, 1], Weight(To4d(model, "s", 0, 0, 1, 1), "s.4d"));
    }

    [Fact]
    public void ConstantOfShape_fills_the_shape_with_its_value_or_zero()
    {
        var half = new OnnxModelBuilder().Longs("shape", 2, 3, 1, 1).Node("ConstantOfShape", ["shape"], "w", Tensor("value", FloatTensor("v", [0.5f], 1)));
        Assert.Equal(Enumerable.Repeat(0.5f, 6), Weight(half, "w"));
        var zeros = new OnnxModelBuilder().Longs("shape", 2, 3, 1, 1).Node("ConstantOfShape", ["shape"], "w");
        Assert.Equal(new float[6], Weight(zeros, "w"));
        var seven = new OnnxModelBuilder().Longs("shape", 1, 3, 1, 1).Node("ConstantOfShape", ["shape"], "w", Tensor("value", LongTensor("v", 7)));
        Assert.Equal([7f, 7, 7], Weight(seven, "w"));
    }

    [Theory]
    [InlineData(new long[] { 1 << 20 }, "[1048576]")]
    [InlineData(new long[] { 1024, 1024 }, "[1024, 1024]")]
    [InlineData(new long[] { 0, 5 }, "[0, 5]")]
    public void ConstantOfShape_computes_up_to_a_million_elements(long[] shape, string described) =>
        AssertRefused(
            new OnnxModelBuilder().Longs("shape", shape).Node("ConstantOfShape", ["shape"], "c").Output("c"),
            $"node 'c' uses a constant {described} as a tensor; the engine has no operation for it.");

    [Theory]
    [InlineData(new long[] { (1 << 20) + 1 }, "has the shape [1048577]; small non-negative constant shapes are evaluated")]
    [InlineData(new long[] { 2, -1 }, "has the shape [2, -1]; small non-negative constant shapes are evaluated")]
    [InlineData(new long[] { 1024, 1025 }, "would compute a [1024, 1025] tensor; computed constants are small (at most 1048576 elements)")]
    [InlineData(new long[] { 1 << 20, 1 << 20, 1 << 20 }, "would compute a [1048576, 1048576, 1048576] tensor; computed constants are small (at most 1048576 elements)")]
    public void ConstantOfShape_refuses_shapes_beyond_small_constants(long[] shape, string problem) =>
        AssertRefused(
            new OnnxModelBuilder().Longs("shape", shape).Node("ConstantOfShape", ["shape"], "c").Output("c"),
            $"node 'c' (ConstantOfShape) {problem}.");

    [Fact]
    public void ConstantOfShape_value_is_one_element() =>
        AssertRefused(
            new OnnxModelBuilder().Longs("shape", 2).Node("ConstantOfShape", ["shape"], "c", Tensor("value", FloatTensor("v", [1, 2], 2))).Output("c"),
            "node 'c' (ConstantOfShape) has a 'value' of 2 elements; it is one element.");

    [Theory]
    [InlineData(new long[] { 3, -1 }, true)]
    [InlineData(new long[] { -1 }, true)]
    [InlineData(new long[] { 4 }, false)]
    [InlineData(new long[] { 4, -1 }, false)]
    [InlineData(new long[] { -1, -1 }, false)]
    [InlineData(new long[] { -2, -3 }, false)]
    [InlineData(new long[] { 2, 0 }, false)]
    [InlineData(new long[] { 2147483648L, -1 }, false)]
    public void Reshape_of_a_constant_keeps_its_elements(long[] target, bool accepted)
    {
        var model = new OnnxModelBuilder().Floats("d", Ramp(6), 6).Longs("target", target).Node("Reshape", ["d", "target"], "r").Output("r");
        var e = model.Refuse();
        string problem = accepted
            ? $"node 'r' uses a constant [{string.Join(", ", target.Select(d => d == -1 ? 6 / target.Where(t => t != -1).Aggregate(1L, (a, b) => a * b) : d))}] as a tensor; the engine has no operation for it."
            : $"node 'r' (Reshape) reshapes a constant of 6 elements to [{string.Join(", ", target.Select(d => (float)d))}].";
        Assert.Equal(problem, e.Problem);
    }

    [Theory]
    [InlineData(TensorProto.Types.DataType.Int64, true)]
    [InlineData(TensorProto.Types.DataType.Int32, true)]
    [InlineData(TensorProto.Types.DataType.Float, false)]
    [InlineData(TensorProto.Types.DataType.Double, false)]
    [InlineData(TensorProto.Types.DataType.Float16, false)]
    [InlineData(TensorProto.Types.DataType.Bfloat16, false)]
    public void Cast_to_an_integer_type_truncates_and_to_a_floating_type_keeps_the_values(TensorProto.Types.DataType to, bool truncates)
    {
        var model = new OnnxModelBuilder(channels: 1).Floats("d", [1.75f, -1.75f, 2.5f, -0.5f], 4, 1, 1, 1).Node("Cast", ["d"], "c", Int("to", (long)to));
        float[] expected = truncates ? [1, -1, 2, 0] : [1.75f, -1.75f, 2.5f, -0.5f];
        Assert.Equal(expected, Weight(model, "c"));
    }
}
