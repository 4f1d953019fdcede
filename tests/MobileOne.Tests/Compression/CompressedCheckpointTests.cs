using MobileOne.Compression;
using MobileOne.Inference;
using MobileOne.IO;
using MobileOne.IO.Checkpoints;
using MobileOne.IO.Safetensors;
using MobileOne.Tests.Inference;

namespace MobileOne.Tests.Compression;

/// <summary>The compressed checkpoint: its documented keys, a lossless round trip, and refusals that name the key.</summary>
public class CompressedCheckpointTests
{
    private static CompressedNetwork Compressed()
    {
        var fused = ModelCheckpoint.Load(Fixtures.Path("mobileone_s0_timm_fused.safetensors")).Network;
        var options = new CompressionOptions { RankRatio = 0.25, Sparsity = 0.01, Layers = CompressionLayers.All, Alternation = new LowRankSparseOptions { MaxIterations = 1 } };
        return NetworkCompressor.Compress(fused, options).Network;
    }

    [Fact]
    public void A_compressed_network_round_trips_through_its_documented_keys()
    {
        using var dir = new TempDir();
        var network = Compressed();
        string path = dir.File("c.safetensors");
        CompressedCheckpoint.Save(network, path);

        var file = SafetensorsReader.Read(path);
        Assert.Equal(CompressedCheckpoint.MetadataValue, file.Metadata[CompressedCheckpoint.MetadataKey]);
        Assert.DoesNotContain("stages.0.1.reparam_conv.weight", file.Tensors.Keys);
        Assert.Equal([12, 48, 1, 1], file.Tensors["stages.0.1.reparam_conv.lowrank.0.weight"].Shape);
        Assert.Equal([48, 12, 1, 1], file.Tensors["stages.0.1.reparam_conv.lowrank.1.weight"].Shape);
        Assert.Equal([48], file.Tensors["stages.0.1.reparam_conv.lowrank.1.bias"].Shape);
        Assert.Equal(DType.I64, file.Tensors["stages.0.1.reparam_conv.sparse.indices"].DType);
        Assert.Equal([23], file.Tensors["stages.0.1.reparam_conv.sparse.values"].Shape);

        // The stem (3x3 over 3 channels, 48 x 27) is among the compressed layers with --layers all.
        Assert.Contains("stem.reparam_conv.lowrank.0.weight", file.Tensors.Keys);
        Assert.Contains("stages.0.0.reparam_conv.weight", file.Tensors.Keys);

        var loaded = ModelCheckpoint.LoadClassifier(path);
        var back = Assert.IsType<CompressedNetwork>(loaded.Network);
        Assert.Equal(network.Layers.Count, back.Layers.Count);
        var input = EngineTestSupport.RandomInput(new Random(4), 1, 3, 64, 64);
        using var a = CompiledModel.Compile(network);
        using var b = CompiledModel.Compile(back);
        Assert.Equal(a.Run(input).Data, b.Run(input).Data);
        Assert.Equal(network.ToGraph().Parameters(), back.ToGraph().Parameters());
    }

    [Fact]
    public void Bad_sparse_indices_and_plain_loading_are_refused_by_name()
    {
        using var dir = new TempDir();
        var file = CompressedCheckpoint.ToTensorFile(Compressed());
        string key = "stages.0.1.reparam_conv.sparse.indices";
        var indices = file.Tensors[key].ToInt64();
        indices[^1] = 48L * 48;
        var bytes = new byte[indices.Length * 8];
        for (int i = 0; i < indices.Length; i++)
        {
            BitConverter.TryWriteBytes(bytes.AsSpan(i * 8), indices[i]);
        }

        file.Tensors[key] = new StoredTensor(DType.I64, [indices.Length], bytes);
        string path = dir.File("bad.safetensors");
        SafetensorsWriter.Write(path, file);
        var e = Assert.Throws<CheckpointException>(() => ModelCheckpoint.LoadClassifier(path));
        Assert.Equal(key, e.Key);

        // Rank-1 factors of 100,000 x 100,000: 800 KB in the file, 40 GB as the dense view; refused before allocating.
        var huge = new TensorFile();
        huge.Metadata[CompressedCheckpoint.MetadataKey] = CompressedCheckpoint.MetadataValue;
        huge.Tensors.Add("stem.reparam_conv.lowrank.0.weight", new StoredTensor(DType.F32, [1, 100_000, 1, 1], new byte[400_000]));
        huge.Tensors.Add("stem.reparam_conv.lowrank.1.weight", new StoredTensor(DType.F32, [100_000, 1, 1, 1], new byte[400_000]));
        huge.Tensors.Add("stem.reparam_conv.lowrank.1.bias", new StoredTensor(DType.F32, [100_000], new byte[400_000]));
        string hugePath = dir.File("huge.safetensors");
        SafetensorsWriter.Write(hugePath, huge);
        long before = GC.GetTotalAllocatedBytes(precise: true);
        var refused = Assert.Throws<CheckpointException>(() => ModelCheckpoint.LoadClassifier(hugePath));
        Assert.Equal("stem.reparam_conv.lowrank.0.weight", refused.Key);
        Assert.True(GC.GetTotalAllocatedBytes(precise: true) - before < 64L << 20, "refused before allocating the dense view");

        string good = dir.File("good.safetensors");
        CompressedCheckpoint.Save(Compressed(), good);
        var plain = Assert.Throws<CheckpointException>(() => ModelCheckpoint.Load(good));
        Assert.Contains("compressed", plain.Message);
    }
}
