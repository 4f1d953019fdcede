using MobileOne.Compression;
using MobileOne.IO;
using MobileOne.IO.Checkpoints;
using MobileOne.IO.Safetensors;
using MobileOne.Models;
using MobileOne.Tensors;

namespace MobileOne.Tests.IO.Checkpoints;

/// <summary>
/// Compressed checkpoints of a tiny fused MobileOne whose low-rank and sparse layers are written here by hand (no
/// compression run, no fixture): the documented keys and dtypes, a lossless round trip, and each refusal of the
/// factors, the dense-size bound, the sparse part and the layers' geometry at its exact edge, with the key the file
/// holds. Aimed, from the code, at what the model-level tests cannot detect, for the Stryker runs of
/// IO/Checkpoints/CompressedCheckpoint.cs (docs/reliability.md).
/// </summary>
public sealed class CompressedCheckpointEdgeTests
{
    private const string Path = "compressed.safetensors";
    private const string Stem = "stem.reparam_conv";
    private const string Pointwise = "stages.1.1.reparam_conv";

    /// <summary>
    /// Widths 0.25 (stem 16 from one input channel; stages 16, 32, 64, 128), units 1, 2, 1, 1, SE on the last unit,
    /// 10 classes, fused. stages.1.1 is a pointwise 16 to 32 that is not the last block of its stage.
    /// </summary>
    private static MobileOneNetwork Fused()
    {
        var config = MobileOneConfig.FromWidths("custom", [0.25, 0.25, 0.25, 0.25], 1, [1, 2, 1, 1], [0, 0, 0, 1], numClasses: 10, inChans: 1);
        var net = MobileOneNetwork.Create(config);
        WeightInit.Initialize(net, 8);
        WeightInit.RandomizeBatchNorm(net, 9);
        return MobileOne.Reparam.Reparameterizer.Fuse(net);
    }

    private static float[] Values(int count, float start) => Enumerable.Range(0, count).Select(i => start + (0.125f * i)).ToArray();

    /// <summary>The stem (3x3, stride 2, 1 to 16) at rank 2 with three sparse entries of its 144, and stages.1.1 (1x1, 16 to 32) at rank 1 without any.</summary>
    private static CompressedNetwork Network() => new(Fused(), [
        new CompressedConv(Stem, 1, 16, 3, 3, 2, 2, 1, 1, 2, Values(18, 0.5f), Values(32, -1f), Values(16, 0.25f), [0, 7, 143], [0.5f, -0.25f, 2f]),
        new CompressedConv(Pointwise, 16, 32, 1, 1, 1, 1, 0, 0, 1, Values(16, 1f), Values(32, -2f), Values(32, 3f), [], []),
    ]);

    private static TensorFile File() => CompressedCheckpoint.ToTensorFile(Network());

    private static StoredTensor Floats(int[] shape, float value = 0.5f) =>
        StoredTensor.FromTensor(new Tensor(shape, Enumerable.Repeat(value, (int)StoredTensor.ElementCount(shape)).ToArray()));

    private static StoredTensor Int64s(int[] shape, params long[] values)
    {
        var bytes = new byte[values.Length * 8];
        for (int i = 0; i < values.Length; i++)
        {
            BitConverter.TryWriteBytes(bytes.AsSpan(i * 8), values[i]);
        }

        return new StoredTensor(DType.I64, shape, bytes);
    }

    private static LoadedClassifier Load(TensorFile file) => CompressedCheckpoint.FromTensorFile(file, Path, CheckpointFormat.Safetensors);

    private static CheckpointException Refused(TensorFile file)
    {
        var ex = Assert.Throws<CheckpointException>(() => Load(file));
        Assert.Equal(Path, ex.FilePath);
        return ex;
    }

    /// <summary>Replaces a layer's dense weight and bias in <paramref name="file"/> by factors of rank 1 (what a hand-edited file would hold).</summary>
    private static void Factor(TensorFile file, string name, int[] denseShape)
    {
        file.Tensors.Remove(name + ".weight");
        file.Tensors.Remove(name + ".bias");
        file.Tensors.Add(name + ".lowrank.0.weight", Floats([1, denseShape[1], denseShape[2], denseShape[3]]));
        file.Tensors.Add(name + ".lowrank.1.weight", Floats([denseShape[0], 1, 1, 1]));
        file.Tensors.Add(name + ".lowrank.1.bias", Floats([denseShape[0]]));
    }

    [Fact]
    public void Null_arguments_are_argument_errors()
    {
        Assert.Throws<ArgumentNullException>(() => CompressedCheckpoint.IsCompressed(null!));
        Assert.Throws<ArgumentNullException>(() => CompressedCheckpoint.ToTensorFile(null!));
        Assert.Throws<ArgumentNullException>(() => CompressedCheckpoint.FromTensorFile(null!, Path, CheckpointFormat.Safetensors));
        Assert.Throws<ArgumentNullException>(() => CompressedCheckpoint.Save(Network(), null!));
    }

    [Fact]
    public void Compressed_layers_are_stored_as_their_factors_sparse_entries_and_the_marker()
    {
        var file = File();
        Assert.Equal("pt", file.Metadata["format"]);
        Assert.Equal("lowrank-sparse-1", file.Metadata["mobileone.compression"]);
        Assert.True(CompressedCheckpoint.IsCompressed(file));
        foreach (string name in new[] { Stem, Pointwise })
        {
            Assert.DoesNotContain(name + ".weight", file.Tensors.Keys);
            Assert.DoesNotContain(name + ".bias", file.Tensors.Keys);
        }

        Assert.Equal([2, 1, 3, 3], file.Tensors[Stem + ".lowrank.0.weight"].Shape);
        Assert.Equal([16, 2, 1, 1], file.Tensors[Stem + ".lowrank.1.weight"].Shape);
        Assert.Equal(Values(16, 0.25f), file.Tensors[Stem + ".lowrank.1.bias"].ToTensor().Data);
        var indices = file.Tensors[Stem + ".sparse.indices"];
        Assert.Equal(DType.I64, indices.DType);
        Assert.Equal([3], indices.Shape);
        Assert.Equal(Int64s([3], 0, 7, 143).Data, indices.Data); // little-endian int64s
        Assert.Equal([0.5f, -0.25f, 2f], file.Tensors[Stem + ".sparse.values"].ToTensor().Data);
        Assert.Equal([1, 16, 1, 1], file.Tensors[Pointwise + ".lowrank.0.weight"].Shape);
        Assert.DoesNotContain(Pointwise + ".sparse.indices", file.Tensors.Keys);
        Assert.DoesNotContain(Pointwise + ".sparse.values", file.Tensors.Keys);
        Assert.False(CompressedCheckpoint.IsCompressed(ModelCheckpoint.ToTensorFile(Fused(), KeyLayout.Timm)));
    }

    [Fact]
    public void A_compressed_network_round_trips_layer_by_layer()
    {
        var network = Network();
        var loaded = CompressedCheckpoint.FromTensorFile(CompressedCheckpoint.ToTensorFile(network), "c.pth", CheckpointFormat.PyTorch);
        Assert.Equal(("c.pth", CheckpointFormat.PyTorch, false), (loaded.Path, loaded.Format, loaded.Fused));
        var back = Assert.IsType<CompressedNetwork>(loaded.Network);
        Assert.Equal(network.Layers.Count, back.Layers.Count);
        foreach (var (a, b) in network.Layers.Zip(back.Layers))
        {
            Assert.Equal(
                (a.Name, a.InChannels, a.OutChannels, a.KernelHeight, a.KernelWidth, a.StrideH, a.StrideW, a.PadH, a.PadW, a.Rank),
                (b.Name, b.InChannels, b.OutChannels, b.KernelHeight, b.KernelWidth, b.StrideH, b.StrideW, b.PadH, b.PadW, b.Rank));
            Assert.Equal(a.Reduce, b.Reduce);
            Assert.Equal(a.Expand, b.Expand);
            Assert.Equal(a.Bias, b.Bias);
            Assert.Equal(a.SparseIndices, b.SparseIndices);
            Assert.Equal(a.SparseValues, b.SparseValues);
        }

        Assert.Equal(network.State().Select(e => (e.Name, e.Value.Data)), back.State().Select(e => (e.Name, e.Value.Data)));
    }

    [Fact]
    public void A_compressed_network_is_saved_only_to_a_safetensors_path()
    {
        using var dir = new TempDir();
        string pth = dir.File("c.pth");
        var ex = Assert.Throws<CheckpointException>(() => CompressedCheckpoint.Save(Network(), pth));
        Assert.Equal("a compressed network is saved as .safetensors (its metadata marks the file as compressed; torch.save files carry no metadata).", ex.Problem);
        Assert.False(System.IO.File.Exists(pth));

        string upper = dir.File("C.SAFETENSORS");
        CompressedCheckpoint.Save(Network(), upper);
        Assert.IsType<CompressedNetwork>(ModelCheckpoint.LoadClassifier(upper).Network);
        Assert.Equal("lowrank-sparse-1", SafetensorsReader.Read(upper).Metadata["mobileone.compression"]);
    }

    [Fact]
    public void Another_marker_version_or_none_is_refused_by_value()
    {
        var file = File();
        file.Metadata[CompressedCheckpoint.MetadataKey] = "lowrank-sparse-2";
        var ex = Assert.Throws<CheckpointException>(() => ModelCheckpoint.ClassifierFromTensorFile(file, Path, CheckpointFormat.Safetensors));
        Assert.Equal("has compression marker 'lowrank-sparse-2'; this version reads 'lowrank-sparse-1'.", ex.Problem);

        file.Metadata.Remove(CompressedCheckpoint.MetadataKey);
        Assert.Equal("has compression marker ''; this version reads 'lowrank-sparse-1'.", Refused(file).Problem);
    }

    [Theory]
    [InlineData(".lowrank.1.weight")]
    [InlineData(".lowrank.1.bias")]
    public void A_layer_without_its_second_factor_or_bias_is_refused(string suffix)
    {
        var file = File();
        file.Tensors.Remove(Pointwise + suffix);
        var ex = Refused(file);
        Assert.Equal("is missing; a compressed layer needs both factors and the bias.", ex.Problem);
        Assert.Equal(Pointwise + suffix, ex.Key);
    }

    [Theory]
    [InlineData(new[] { 2, 1, 3 })]
    [InlineData(new[] { 0, 1, 3, 3 })]
    [InlineData(new[] { 2, 0, 3, 3 })]
    [InlineData(new[] { 2, 1, 3, 0 })]
    [InlineData(new[] { 2, 1, 3, 3, 1 })]
    public void A_kxk_factor_that_is_not_four_positive_dimensions_is_refused(int[] shape)
    {
        var file = File();
        file.Tensors[Stem + ".lowrank.0.weight"] = Floats(shape);
        var ex = Refused(file);
        Assert.Equal($"has shape {Tensor.FormatShape(shape)}; the KxK factor is [r, in, kh, kw] with r at least 1.", ex.Problem);
        Assert.Equal(Stem + ".lowrank.0.weight", ex.Key);
    }

    [Theory]
    [InlineData(new[] { 16, 2, 1 })]
    [InlineData(new[] { 16, 2, 1, 1, 1 })]
    [InlineData(new[] { 0, 2, 1, 1 })]
    [InlineData(new[] { 16, 3, 1, 1 })]
    [InlineData(new[] { 16, 1, 1, 1 })]
    [InlineData(new[] { 16, 2, 3, 1 })]
    [InlineData(new[] { 16, 2, 1, 3 })]
    public void A_1x1_factor_that_does_not_follow_the_kxk_factor_is_refused(int[] shape)
    {
        var file = File();
        file.Tensors[Stem + ".lowrank.1.weight"] = Floats(shape);
        var ex = Refused(file);
        Assert.Equal($"has shape {Tensor.FormatShape(shape)}; with {Stem}.lowrank.0.weight of shape [2, 1, 3, 3] it must be [out, 2, 1, 1].", ex.Problem);
        Assert.Equal(Stem + ".lowrank.1.weight", ex.Key);
    }

    /// <summary>
    /// The bound is on all compressed layers together: 1 value, then 8192 x 16384 x 1 x 1 or 8192 x 2048 x 2 x 4 = 2^27
    /// (512 MB as the dense view), one over. Refused at the second layer before its dense view is allocated; the second
    /// shape needs every factor of the product (kh and kw included) to reach the bound.
    /// </summary>
    [Theory]
    [InlineData(16384, 1, 1)]
    [InlineData(2048, 2, 4)]
    public void Compressed_layers_whose_dense_weights_exceed_two_to_the_27_in_all_are_refused_before_allocating(int inChannels, int kh, int kw)
    {
        var file = new TensorFile();
        file.Metadata[CompressedCheckpoint.MetadataKey] = CompressedCheckpoint.MetadataValue;
        file.Tensors.Add("a.lowrank.0.weight", Floats([1, 1, 1, 1]));
        file.Tensors.Add("a.lowrank.1.weight", Floats([1, 1, 1, 1]));
        file.Tensors.Add("a.lowrank.1.bias", Floats([1]));
        file.Tensors.Add("b.lowrank.0.weight", Floats([1, inChannels, kh, kw]));
        file.Tensors.Add("b.lowrank.1.weight", Floats([8192, 1, 1, 1]));
        file.Tensors.Add("b.lowrank.1.bias", Floats([8192]));

        var ex = Budget.Refused<CheckpointException>(() => Load(file), maxAllocatedBytes: 16L << 20);

        Assert.Equal($"declares compressed layers whose dense weights would hold more than 134217728 values in all (this one is 8192 x {inChannels} x {kh} x {kw}); no MobileOne is that large.", ex.Problem);
        Assert.Equal("b.lowrank.0.weight", ex.Key);
    }

    [Fact]
    public void A_factor_pair_that_does_not_fit_the_architecture_is_reported_against_the_kxk_factor()
    {
        var file = File();
        file.Tensors[Pointwise + ".lowrank.1.weight"] = Floats([33, 1, 1, 1]);
        file.Tensors[Pointwise + ".lowrank.1.bias"] = Floats([33]);
        var ex = Refused(file);
        Assert.Equal(Pointwise + ".lowrank.0.weight", ex.Key);
        Assert.StartsWith("does not fit the inferred architecture: has shape [33, 16, 1, 1], but the inferred custom model (", ex.Problem);
        Assert.EndsWith(") expects [32, 16, 1, 1].", ex.Problem);
        Assert.Equal(Pointwise + ".weight", Assert.IsType<CheckpointException>(ex.InnerException).Key);
    }

    /// <summary>The dense view holds a compressed layer's bias under the dense layer's name; a refusal names the key the file holds.</summary>
    [Fact]
    public void A_bias_that_does_not_fit_or_is_not_finite_is_reported_against_the_key_the_file_holds()
    {
        var file = File();
        file.Tensors[Pointwise + ".lowrank.1.bias"] = Floats([31]);
        var ex = Refused(file);
        Assert.Equal(Pointwise + ".lowrank.1.bias", ex.Key);
        Assert.StartsWith("has shape [31], but the inferred custom model (", ex.Problem);
        Assert.EndsWith(") expects [32].", ex.Problem);

        file = File();
        var bias = file.Tensors[Stem + ".lowrank.1.bias"].ToTensor();
        bias.Data[3] = float.PositiveInfinity;
        file.Tensors[Stem + ".lowrank.1.bias"] = StoredTensor.FromTensor(bias);
        ex = Refused(file);
        Assert.Equal(Stem + ".lowrank.1.bias", ex.Key);
        Assert.Equal("holds +Inf at element 3; weights must be finite (the model's output would be NaN).", ex.Problem);
    }

    [Fact]
    public void A_classifier_stored_as_factors_is_reported_against_its_kxk_factor()
    {
        // The classifier's dense view would be [10, 128, 1, 1]: inference wants it of rank 2.
        var file = File();
        Factor(file, "head.fc", [10, 128, 1, 1]);
        var ex = Refused(file);
        Assert.Equal("head.fc.lowrank.0.weight", ex.Key);
        Assert.Equal("does not fit the inferred architecture: has shape [10, 128, 1, 1]; expected a non-empty tensor of rank 2.", ex.Problem);
    }

    [Fact]
    public void A_problem_with_a_tensor_that_is_not_a_compressed_layers_is_passed_on_as_it_is()
    {
        var file = File();
        file.Tensors["stages.1.3.reparam_conv.bias"] = Floats([5]);
        var ex = Refused(file);
        Assert.Equal("stages.1.3.reparam_conv.bias", ex.Key);
        Assert.StartsWith("has shape [5], but the inferred custom model (", ex.Problem);
    }

    [Fact]
    public void A_marked_file_of_a_train_time_network_is_refused()
    {
        var net = MobileOneNetwork.Create(MobileOneConfig.FromWidths("custom", [0.25, 0.25, 0.25, 0.25], 1, [1, 1, 1, 1], numClasses: 10, inChans: 1));
        var file = ModelCheckpoint.ToTensorFile(net, KeyLayout.Timm);
        file.Metadata[CompressedCheckpoint.MetadataKey] = CompressedCheckpoint.MetadataValue;
        Assert.Equal("is marked compressed but holds a train-time MobileOne; compression works on the fused network.", Refused(file).Problem);
    }

    [Theory]
    [InlineData("stages.0.0.reparam_conv", new[] { 16, 1, 3, 3 })] // depthwise: groups 16
    [InlineData("stages.3.1.attn.fc1", new[] { 8, 128, 1, 1 })] // squeeze-excite's reduction: a 1x1 weight, but no convolution node
    public void Factors_of_a_layer_that_is_not_a_dense_convolution_are_refused(string name, int[] denseShape)
    {
        var file = File();
        Factor(file, name, denseShape);
        var ex = Refused(file);
        Assert.Equal($"names {name}, which is not a convolution with groups 1 of the inferred custom model.", ex.Problem);
        Assert.Equal(name + ".lowrank.0.weight", ex.Key);
    }

    [Fact]
    public void A_sparse_part_needs_both_its_tensors()
    {
        var file = File();
        file.Tensors.Remove(Stem + ".sparse.values");
        var ex = Refused(file);
        Assert.Equal("is present without its partner; a sparse part needs both indices and values.", ex.Problem);
        Assert.Equal(Stem + ".sparse.indices", ex.Key);

        file = File();
        file.Tensors.Remove(Stem + ".sparse.indices");
        Assert.Equal(Stem + ".sparse.values", Refused(file).Key);
    }

    [Fact]
    public void Sparse_indices_must_be_one_integer_per_value()
    {
        var file = File();
        file.Tensors[Stem + ".sparse.indices"] = Floats([3]);
        var ex = Refused(file);
        Assert.Equal("must be a 1-d integer tensor; it is F32 [3].", ex.Problem);
        Assert.Equal(Stem + ".sparse.indices", ex.Key);

        file.Tensors[Stem + ".sparse.indices"] = Int64s([1, 3], 0, 7, 143);
        Assert.Equal("must be a 1-d integer tensor; it is I64 [1, 3].", Refused(file).Problem);

        file.Tensors[Stem + ".sparse.indices"] = Int64s([2], 0, 7);
        ex = Refused(file);
        Assert.Equal($"has 2 indices but {Stem}.sparse.values has 3 values.", ex.Problem);
        Assert.Equal(Stem + ".sparse.indices", ex.Key);

        // Any integer dtype will do.
        var int32 = new byte[12];
        BitConverter.TryWriteBytes(int32.AsSpan(4), 9);
        BitConverter.TryWriteBytes(int32.AsSpan(8), 100);
        file.Tensors[Stem + ".sparse.indices"] = new StoredTensor(DType.I32, [3], int32);
        Assert.Equal([0, 9, 100], Assert.IsType<CompressedNetwork>(Load(file).Network).Layers[0].SparseIndices);
    }

    /// <summary>The stem's weight is 16 x (1 x 3 x 3): indices run over [0, 144).</summary>
    [Fact]
    public void Sparse_indices_may_run_from_the_first_entry_to_the_last()
    {
        var file = File();
        file.Tensors[Stem + ".sparse.indices"] = Int64s([3], 0, 1, 143);
        Assert.Equal([0, 1, 143], Assert.IsType<CompressedNetwork>(Load(file).Network).Layers[0].SparseIndices);
    }

    [Theory]
    [InlineData(new long[] { -1, 7, 143 }, -1, 0)]
    [InlineData(new long[] { 0, 7, 144 }, 144, 2)]
    [InlineData(new long[] { 0, 7, 7 }, 7, 2)]
    [InlineData(new long[] { 0, 8, 7 }, 7, 2)]
    [InlineData(new long[] { 5, 5, 143 }, 5, 1)]
    [InlineData(new long[] { 0, 4294967303L, 143 }, 4294967303L, 1)] // 2^32 + 7: would be 7 as an int
    public void Sparse_indices_must_ascend_within_the_weight(long[] indices, long bad, int at)
    {
        var file = File();
        file.Tensors[Stem + ".sparse.indices"] = Int64s([3], indices);
        var ex = Refused(file);
        Assert.Equal($"holds index {bad} at {at}: indices must ascend within [0, 144).", ex.Problem);
        Assert.Equal(Stem + ".sparse.indices", ex.Key);
    }

    [Fact]
    public void Factors_and_sparse_values_must_be_finite_floats()
    {
        var file = File();
        file.Tensors[Stem + ".lowrank.0.weight"] = Int64s([2, 1, 3, 3], new long[18]);
        var ex = Refused(file);
        Assert.Equal("is a I64 tensor; expected floating point.", ex.Problem);
        Assert.Equal(Stem + ".lowrank.0.weight", ex.Key);

        file = File();
        var expand = file.Tensors[Stem + ".lowrank.1.weight"].ToTensor();
        expand.Data[0] = float.NaN;
        file.Tensors[Stem + ".lowrank.1.weight"] = StoredTensor.FromTensor(expand);
        ex = Refused(file);
        Assert.Equal("holds a non-finite value at element 0; weights must be finite.", ex.Problem);
        Assert.Equal(Stem + ".lowrank.1.weight", ex.Key);

        file = File();
        file.Tensors[Stem + ".sparse.values"] = StoredTensor.FromTensor(new Tensor([3], [1f, 2f, float.PositiveInfinity]));
        ex = Refused(file);
        Assert.Equal("holds a non-finite value at element 2; weights must be finite.", ex.Problem);
        Assert.Equal(Stem + ".sparse.values", ex.Key);
    }
}
