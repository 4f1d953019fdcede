using System.IO.Compression;
using System.Text;
using MobileOne.IO;
using MobileOne.IO.Checkpoints;
using MobileOne.IO.PyTorch;
using MobileOne.IO.Safetensors;
using MobileOne.Models;
using MobileOne.Nn;
using Pk = MobileOne.Tests.IO.PyTorchCheckpointTests.Pk;

namespace MobileOne.Tests.IO;

/// <summary>
/// Small files that declare far more than they hold. Each is built here, and each must be refused within the
/// budget docs/reliability.md documents (a few seconds, a bounded allocation) with a message naming the file
/// and, where there is one, the key. Before these limits, the files below cost 1.6 GB, 31 s of CPU, quadratic
/// copying, or a stack trace.
/// </summary>
public sealed class HostileCheckpointTests
{
    private const long MB = 1 << 20;

    // ------------------------------------------------------------------ torch.save zip + pickle

    [Fact]
    public void Stride_zero_view_cannot_amplify_its_one_element_storage()
    {
        using var dir = new TempDir();
        // One stored float expanded to 20000 x 20000: an 1.6 GB copy-out from a file of a few hundred bytes.
        byte[] pickle = PyTorchCheckpointTests.StateDictPickle(p => p.Str("head.fc.weight").Tensor("FloatStorage", "0", 1, 0, [20000, 20000], [0, 0]));
        string path = PyTorchCheckpointTests.Zip(dir, "expanded.pt", ("expanded/data.pkl", pickle), ("expanded/data/0", new byte[4]));

        var ex = Budget.Refused<CheckpointException>(() => PyTorchCheckpointReader.Read(path), maxAllocatedBytes: 4 * MB);

        Assert.Contains("expanded.pt", ex.Message);
        Assert.Equal("head.fc.weight", ex.Key);
        Assert.Contains("is a view of 400000000 elements", ex.Message);
        Assert.Contains($"at most {PyTorchCheckpointReader.MaxViewAmplification} elements per stored element", ex.Message);
    }

    [Fact]
    public void Many_views_of_one_storage_are_bounded_in_total()
    {
        using var dir = new TempDir();
        // Each view alone is its storage's size; ten of them copy out ten times what the file stores.
        byte[] pickle = PyTorchCheckpointTests.StateDictPickle(p =>
        {
            for (int i = 0; i < 10; i++)
            {
                p.Str($"w{i}").Tensor("FloatStorage", "0", 1000, 0, [1000], [1]);
            }
        });
        string path = PyTorchCheckpointTests.Zip(dir, "views.pt", ("views/data.pkl", pickle), ("views/data/0", new byte[4000]));

        var ex = Budget.Refused<CheckpointException>(() => PyTorchCheckpointReader.Read(path), maxAllocatedBytes: 4 * MB);

        Assert.Equal("w4", ex.Key); // w0..w3 are exactly 4 times the storage: still accepted
        Assert.Contains("would bring the tensors read so far to 20000 bytes from only 4000 bytes", ex.Message);
    }

    [Fact]
    public void Tuple_key_of_shared_tuples_is_refused_by_the_work_budget()
    {
        using var dir = new TempDir();
        // t0 = (1,), t(i+1) = (ti, ti) through the memo: 31 levels, a few hundred bytes, 2^31 values to hash.
        var p = new Pk().Proto(2).EmptyDict().Int(1).Op(0x85).Op((byte)'q', 0).Op((byte)'0');
        for (byte i = 0; i < 30; i++)
        {
            p.Op((byte)'h', i).Op((byte)'h', i).Op(0x86).Op((byte)'q', (byte)(i + 1)).Op((byte)'0');
        }

        byte[] pickle = p.Op((byte)'h', 30).Int(1).SetItem().Stop().ToArray();
        Assert.True(pickle.Length < 400, $"{pickle.Length} bytes");
        string path = PyTorchCheckpointTests.Zip(dir, "tuples.pt", ("tuples/data.pkl", pickle));

        var ex = Budget.Refused<CheckpointException>(() => PyTorchCheckpointReader.Read(path), maxAllocatedBytes: 16 * MB);

        Assert.Contains("tuples.pt", ex.Message);
        Assert.Contains("data.pkl at byte", ex.Message);
        Assert.Contains("units of work", ex.Message);
    }

    [Fact]
    public void Repeated_OrderedDict_copies_of_one_large_dict_are_refused_by_the_work_budget()
    {
        using var dir = new TempDir();
        const int Keys = 20_000, Copies = 20_000;
        var p = new Pk().Proto(2).Global("collections", "OrderedDict").Op((byte)'q', 0).Op((byte)'0');
        p.EmptyDict().Op((byte)'q', 1).Mark();
        for (int i = 0; i < Keys; i++)
        {
            p.Op((byte)'J').Raw(BitConverter.GetBytes(i)).Int(0);
        }

        p.SetItems().Op((byte)'0');
        for (int i = 0; i < Copies; i++)
        {
            // OrderedDict(d) with d from the memo: 7 bytes that copy 20,000 entries (4e8 in all).
            p.Op((byte)'h', 0).Op((byte)'h', 1).Op(0x85).Reduce().Op((byte)'0');
        }

        byte[] pickle = p.EmptyDict().Stop().ToArray();
        string path = PyTorchCheckpointTests.Zip(dir, "copies.pt", ("copies/data.pkl", pickle));

        var ex = Budget.Refused<CheckpointException>(() => PyTorchCheckpointReader.Read(path), maxAllocatedBytes: 128 * MB);

        Assert.Contains("copies.pt", ex.Message);
        Assert.Contains("units of work", ex.Message);
    }

    [Fact]
    public void Colliding_int_keys_cannot_be_aimed_at_one_hash_bucket()
    {
        // long.GetHashCode() folds the halves with XOR: (i << 32) | i all hash to 0. The pickle's keys are
        // hashed with a seeded mix of both halves instead, so 20,000 such keys load in linear time.
        var p = new Pk().Proto(2).EmptyDict().Mark();
        for (long i = 0; i < 20_000; i++)
        {
            long key = (i << 32) | i;
            p.Op(0x8a, 8).Raw(BitConverter.GetBytes(key)).Int(0);
        }

        byte[] pickle = p.SetItems().Stop().ToArray();
        var work = new PickleWork(RestrictedUnpickler.WorkBudget(pickle.Length));
        var dict = Assert.IsType<PyDict>(RestrictedUnpickler.Load(pickle, work));

        Assert.Equal(20_000, dict.Count);
        Assert.True(work.Used < 4 * pickle.Length, $"used {work.Used} units for {pickle.Length} bytes");
    }

    [Fact]
    public void Decimal_text_long_beyond_pythons_digit_limit_is_refused()
    {
        var p = new Pk().Proto(2).Op((byte)'L').Raw(Encoding.ASCII.GetBytes(new string('7', 100_000) + "L\n")).Stop();

        var ex = Budget.Refused<UnpicklingException>(() => RestrictedUnpickler.Load(p.ToArray()), maxAllocatedBytes: 4 * MB);

        Assert.Contains($"at most {RestrictedUnpickler.MaxDecimalDigits} digits", ex.Message);
    }

    [Theory]
    [InlineData("mobileone_s0_apple_unfused.pth.tar")]
    [InlineData("mobileone_s0_apple_unfused_fused.pth.tar")]
    public void Real_checkpoints_use_a_small_part_of_the_work_budget(string fixture)
    {
        using var zip = ZipFile.OpenRead(Fixtures.Path(fixture));
        var entry = zip.Entries.Single(e => e.FullName.EndsWith("/data.pkl", StringComparison.Ordinal));
        using var stream = entry.Open();
        using var buffer = new MemoryStream();
        stream.CopyTo(buffer);
        byte[] pickle = buffer.ToArray();

        var work = new PickleWork(RestrictedUnpickler.WorkBudget(pickle.Length));
        RestrictedUnpickler.Load(pickle, work);

        // About half a unit per byte: the allowance of RestrictedUnpickler.MaxWorkPerByte (8) leaves a wide margin.
        Assert.True(work.Used < 2 * pickle.Length, $"{fixture}: {work.Used} units for {pickle.Length} bytes");
    }

    [Fact]
    public void Storage_record_larger_than_the_pickle_declares_is_refused()
    {
        using var dir = new TempDir();
        byte[] pickle = PyTorchCheckpointTests.StateDictPickle(p => p.Str("w").Tensor("FloatStorage", "0", 10, 0, [10], [1]));
        string path = PyTorchCheckpointTests.Zip(dir, "long.pt", ("long/data.pkl", pickle), ("long/data/0", new byte[4000]));

        var ex = Budget.Refused<CheckpointException>(() => PyTorchCheckpointReader.Read(path), maxAllocatedBytes: 1 * MB);

        Assert.Equal("w", ex.Key);
        Assert.Contains("declares storage '0' as 10 x F32 = 40 bytes, but record 'long/data/0' holds 4000", ex.Message);
    }

    [Fact]
    public void Deflated_storage_beyond_the_compression_ratio_is_refused_before_inflating()
    {
        using var dir = new TempDir();
        const int Floats = 2 << 20; // 8 MB of zeros deflate to about 8 KB: a ratio near 1000
        byte[] pickle = PyTorchCheckpointTests.StateDictPickle(p => p.Str("w").Tensor("FloatStorage", "0", Floats, 0, [Floats], [1]));
        string path = DeflatedZip(dir.File("bomb.pt"), ("bomb/data.pkl", pickle), ("bomb/data/0", new byte[Floats * 4]));

        var ex = Budget.Refused<CheckpointException>(() => PyTorchCheckpointReader.Read(path), maxAllocatedBytes: 2 * MB);

        Assert.Equal("w", ex.Key);
        Assert.Contains("record 'bomb/data/0' declares 8388608 bytes compressed into", ex.Message);
        Assert.Contains($"above the {PyTorchCheckpointReader.MaxCompressionRatio}:1", ex.Message);
    }

    [Fact]
    public void Deflated_pickle_beyond_the_compression_ratio_is_refused_before_inflating()
    {
        using var dir = new TempDir();
        byte[] pickle = new byte[8 << 20];
        pickle[0] = 0x80;
        pickle[1] = 2;
        string path = DeflatedZip(dir.File("pkl.pt"), ("pkl/data.pkl", pickle));

        var ex = Budget.Refused<CheckpointException>(() => PyTorchCheckpointReader.Read(path), maxAllocatedBytes: 2 * MB);

        Assert.Contains("pkl.pt", ex.Message);
        Assert.Contains("record 'pkl/data.pkl' declares 8388608 bytes", ex.Message);
    }

    // ------------------------------------------------------------------ architecture declared by names and shapes

    private static TensorFile SmallModelFile()
    {
        var config = MobileOneConfig.FromWidths("custom", [0.25, 0.25, 0.25, 0.25], 1, [1, 1, 1, 1], null, numClasses: 10, inChans: 1);
        var net = MobileOneNetwork.Create(config);
        WeightInit.Initialize(net, 5);
        return ModelCheckpoint.ToTensorFile(net, KeyLayout.Timm);
    }

    private static string Write(TempDir dir, string name, TensorFile file)
    {
        string path = dir.File(name);
        SafetensorsWriter.Write(path, file);
        return path;
    }

    [Fact]
    public void Small_model_file_loads()
    {
        using var dir = new TempDir();
        Assert.Equal("custom", ModelCheckpoint.Load(Write(dir, "ok.safetensors", SmallModelFile())).Info.Variant);
    }

    [Fact]
    public void Widths_that_imply_billions_of_weights_are_refused_before_the_network_is_built()
    {
        using var dir = new TempDir();
        var file = SmallModelFile();
        // Two last-block kernels claim 20000 output channels: the first holds 320K values (1.3 MB), the second
        // 20K, but together they declare a 20000 x 20000 pointwise layer in stage 2 (1.6 GB, before gradients).
        file.Tensors["stages.0.1.conv_kxk.0.conv.weight"] = new StoredTensor(DType.F32, [20000, 16, 1, 1], new byte[20000 * 16 * 4]);
        file.Tensors["stages.1.1.conv_kxk.0.conv.weight"] = new StoredTensor(DType.F32, [20000, 1, 1, 1], new byte[20000 * 4]);
        string path = Write(dir, "wide.safetensors", file);

        var ex = Budget.Refused<CheckpointException>(() => ModelCheckpoint.Load(path), maxAllocatedBytes: 32 * MB);

        Assert.Contains("wide.safetensors", ex.Message);
        Assert.Equal("stages.1.1.conv_kxk.0.conv.weight", ex.Key);
        Assert.Contains("weights alone need", ex.Message);
        Assert.Contains("refused before building it", ex.Message);
    }

    [Theory]
    [InlineData("stages.0.99999999999.conv_kxk.0.conv.weight", "99999999999")] // beyond int: was an OverflowException
    [InlineData("stages.0.1000000.conv_kxk.0.conv.weight", "1000000")]          // fits, but would size 500,000 units
    public void Block_index_beyond_the_files_tensor_count_is_refused(string key, string index)
    {
        using var dir = new TempDir();
        var file = SmallModelFile();
        file.Tensors.Add(key, new StoredTensor(DType.F32, [1, 1, 1, 1], new byte[4]));
        string path = Write(dir, "blocks.safetensors", file);

        var ex = Budget.Refused<CheckpointException>(() => ModelCheckpoint.Load(path), maxAllocatedBytes: 16 * MB);

        Assert.Equal(key, ex.Key);
        Assert.Contains($"has block index {index}, but the file holds only {file.Tensors.Count} tensors", ex.Message);
    }

    [Fact]
    public void Apple_stage_index_beyond_int_is_reported_as_a_key_that_belongs_to_no_parameter()
    {
        using var dir = new TempDir();
        var file = new TensorFile();
        foreach (var (k, v) in SmallModelFile().Tensors)
        {
            file.Tensors.Add(KeyNames.TimmToApple(k), v);
        }

        file.Tensors.Add("stage99999999999.0.rbr_conv.0.conv.weight", new StoredTensor(DType.F32, [1], new byte[4]));
        string path = Write(dir, "apple.safetensors", file);

        var ex = Assert.Throws<CheckpointException>(() => ModelCheckpoint.Load(path));

        Assert.Contains("do not belong to the inferred", ex.Message);
        Assert.Contains("'stage99999999999.0.rbr_conv.0.conv.weight'", ex.Message);
    }

    [Theory]
    [InlineData(float.NaN, "NaN")]
    [InlineData(float.PositiveInfinity, "+Inf")]
    [InlineData(float.NegativeInfinity, "-Inf")]
    public void Non_finite_weight_is_refused_by_name(float value, string shown)
    {
        using var dir = new TempDir();
        var file = SmallModelFile();
        const string Key = "stages.2.0.conv_kxk.0.conv.weight";
        var weights = file.Tensors[Key].ToTensor();
        weights.Data[5] = value;
        file.Tensors[Key] = StoredTensor.FromTensor(weights);
        string path = Write(dir, "nan.safetensors", file);

        var ex = Assert.Throws<CheckpointException>(() => ModelCheckpoint.Load(path));

        Assert.Equal(Key, ex.Key);
        Assert.Contains($"holds {shown} at element 5; weights must be finite", ex.Message);
    }

    [Fact]
    public void Negative_running_variance_is_refused_by_name()
    {
        using var dir = new TempDir();
        var file = SmallModelFile();
        const string Key = "stages.1.0.conv_kxk.0.bn.running_var";
        var variance = file.Tensors[Key].ToTensor();
        variance.Data[2] = -0.5f;
        file.Tensors[Key] = StoredTensor.FromTensor(variance);
        string path = Write(dir, "var.safetensors", file);

        var ex = Assert.Throws<CheckpointException>(() => ModelCheckpoint.Load(path));

        Assert.Equal(Key, ex.Key);
        Assert.Contains("holds the negative running variance -0.5 at element 2", ex.Message);
    }

    // ------------------------------------------------------------------ safetensors

    private static string ManyKeys(TempDir dir, string name, int keys)
    {
        // Each key is a 1x1x1x1 "block" of stage 1 (about 85 header bytes and 4 data bytes each).
        var header = new StringBuilder("{");
        for (int i = 0; i < keys; i++)
        {
            header.Append(i == 0 ? "" : ",").Append($"\"stages.0.{i}.conv_kxk.0.conv.weight\":{{\"dtype\":\"F32\",\"shape\":[1,1,1,1],\"data_offsets\":[{4 * i},{(4 * i) + 4}]}}");
        }

        byte[] json = Encoding.UTF8.GetBytes(header.Append('}').ToString());
        string path = dir.File(name);
        using var f = File.Create(path);
        f.Write(BitConverter.GetBytes((long)json.Length));
        f.Write(json);
        f.Write(new byte[4 * keys]);
        return path;
    }

    [Fact]
    public void Header_with_three_hundred_thousand_keys_is_refused_before_it_is_parsed()
    {
        using var dir = new TempDir();
        string path = ManyKeys(dir, "keys.safetensors", 300_000); // a 26 MB header

        var ex = Budget.Refused<CheckpointException>(() => ModelCheckpoint.Load(path), maxAllocatedBytes: 64 * MB);

        Assert.Contains("keys.safetensors", ex.Message);
        Assert.Equal($"stages.0.{SafetensorsFormat.MaxTensors}.conv_kxk.0.conv.weight", ex.Key);
        Assert.Contains($"lists more than {SafetensorsFormat.MaxTensors} tensors", ex.Message);
    }

    [Fact]
    public void Header_with_fifty_thousand_keys_is_read_and_refused_as_a_model_within_budget()
    {
        using var dir = new TempDir();
        string path = ManyKeys(dir, "keys.safetensors", 50_000);

        // The whole file is read (every entry validated), then the model load refuses it by name: about 1.3 KB
        // and 20 us per entry, so the 131,072 entries a header may have stay near 170 MB.
        var ex = Budget.Refused<CheckpointException>(() => ModelCheckpoint.Load(path), maxAllocatedBytes: 96 * MB, maxSeconds: 10);

        Assert.Equal("stem.conv_kxk.0.conv.weight", ex.Key);
        Assert.Contains("is missing", ex.Message);
    }

    [Fact]
    public void Shard_linked_outside_the_index_folder_is_refused()
    {
        using var dir = new TempDir();
        Directory.CreateDirectory(dir.File("model"));
        SafetensorsWriter.Write(dir.File("secret.safetensors"), new TensorFile([KeyValuePair.Create("a", StoredTensor.FromInt64(1))]));
        File.CreateSymbolicLink(dir.File("model/model-00001-of-00001.safetensors"), "../secret.safetensors");
        string index = dir.File("model/model.safetensors.index.json");
        File.WriteAllText(index, "{\"weight_map\": {\"a\": \"model-00001-of-00001.safetensors\"}}");

        var ex = Assert.Throws<CheckpointException>(() => SafetensorsReader.Read(index));

        Assert.Equal("a", ex.Key);
        Assert.Contains("model.safetensors.index.json", ex.Message);
        Assert.Contains("which is outside the index's folder", ex.Message);
    }

    [Fact]
    public void Shard_linked_into_the_hugging_face_cache_blobs_is_read()
    {
        using var dir = new TempDir();
        string snapshot = dir.File("models--x--y/snapshots/0123abc");
        Directory.CreateDirectory(snapshot);
        Directory.CreateDirectory(dir.File("models--x--y/blobs"));
        SafetensorsWriter.Write(dir.File("models--x--y/blobs/9f8e7d"), new TensorFile([KeyValuePair.Create("a", StoredTensor.FromInt64(7))]));
        File.CreateSymbolicLink(Path.Combine(snapshot, "model-00001-of-00001.safetensors"), "../../blobs/9f8e7d");
        string index = Path.Combine(snapshot, "model.safetensors.index.json");
        File.WriteAllText(index, "{\"weight_map\": {\"a\": \"model-00001-of-00001.safetensors\"}}");

        var file = SafetensorsReader.Read(index);

        Assert.Equal([7L], file.Tensors["a"].ToInt64());
    }

    [Fact]
    public void Shard_name_with_a_nul_character_is_refused_by_name()
    {
        // Found by trying odd shard names by hand while writing the safetensors-index fuzz target (which draws such names
        // since): JSON spells a NUL as \u0000, and a shard name holding one reached Path.GetFullPath, whose
        // ArgumentException ("Null character in path") escaped instead of the file's error.
        using var dir = new TempDir();
        string index = dir.File("model.safetensors.index.json");
        File.WriteAllText(index, "{\"weight_map\": {\"a\": \"model-00001\\u0000.safetensors\"}}");

        var ex = Assert.Throws<CheckpointException>(() => ModelCheckpoint.Load(index));

        Assert.Equal("a", ex.Key);
        Assert.Contains("model.safetensors.index.json", ex.Message);
        Assert.Contains("shard 'model-00001\\0.safetensors', which holds a NUL character", ex.Message);
    }

    [Fact]
    public void Index_with_thirty_million_json_values_is_refused_before_it_is_parsed()
    {
        // The safetensors-index fuzz target's finding: a 60 MB index (the limit is 100 MB) whose metadata holds an array
        // of 30 million zeros was parsed into a document before anything was counted, 12 bytes a value and more.
        using var dir = new TempDir();
        string index = dir.File("model.safetensors.index.json");
        byte[] head = Encoding.ASCII.GetBytes("{\"weight_map\": {\"a\": \"model-00001-of-00001.safetensors\"}, \"metadata\": {\"values\": [");
        using (var f = File.Create(index))
        {
            f.Write(head);
            byte[] zeros = new byte[2 * 1_000_000];
            for (int i = 0; i < zeros.Length; i += 2)
            {
                (zeros[i], zeros[i + 1]) = ((byte)'0', (byte)',');
            }

            for (int i = 0; i < 30; i++)
            {
                f.Write(zeros);
            }

            f.Write("0]}}"u8);
        }

        var ex = Budget.Refused<CheckpointException>(() => SafetensorsReader.Read(index), maxAllocatedBytes: 96 * MB);

        Assert.Contains("model.safetensors.index.json", ex.Message);
        Assert.Contains($"more than {SafetensorsFormat.MaxHeaderTokens} JSON values", ex.Message);
    }

    private static string DeflatedZip(string path, params (string Name, byte[] Data)[] entries)
    {
        using var stream = File.Create(path);
        using var zip = new ZipArchive(stream, ZipArchiveMode.Create);
        foreach (var (name, data) in entries)
        {
            using Stream s = zip.CreateEntry(name, CompressionLevel.Optimal).Open();
            s.Write(data);
        }

        return path;
    }
}
