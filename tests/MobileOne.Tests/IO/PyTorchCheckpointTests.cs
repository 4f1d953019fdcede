using System.Buffers.Binary;
using System.Formats.Tar;
using System.IO.Compression;
using System.Text;
using System.Text.Json;
using MobileOne.IO;
using MobileOne.IO.PyTorch;

namespace MobileOne.Tests.IO;

public sealed class PyTorchCheckpointTests
{
    private static readonly string AppleUnfused = Fixtures.Path("mobileone_s0_apple_unfused.pth.tar");
    private static readonly string AppleFused = Fixtures.Path("mobileone_s0_apple_unfused_fused.pth.tar");

    // ---------------------------------------------------------------- fixtures

    [Fact]
    public void ReadsAppleUnfusedStateDict()
    {
        TensorFile file = PyTorchCheckpointReader.Read(AppleUnfused);

        Assert.Equal(1323, file.Tensors.Count);
        Assert.Equal(1097, file.Tensors.Values.Count(t => t.DType == DType.F16));
        Assert.Equal(226, file.Tensors.Values.Count(t => t.DType == DType.I64));
        AssertKeysAndShapes(ReferenceKeyMap("apple.unfused_keys"), file);
        AssertConsistentSizes(file);

        StoredTensor conv = file.Tensors["stage0.rbr_conv.0.conv.weight"];
        Assert.Equal(DType.F16, conv.DType);
        Assert.Equal([48, 3, 3, 3], conv.Shape);
        Assert.Equal([0.044158935546875f, -0.045806884765625f, 0.052764892578125f], conv.ToTensor().Data[..3]);

        StoredTensor linear = file.Tensors["linear.weight"];
        Assert.Equal([1000, 1024], linear.Shape);
        float[] lw = linear.ToTensor().Data;
        Assert.Equal(0.01364898681640625f, lw[1024]); // [1, 0]
        Assert.Equal(-0.02044677734375f, lw[^1]); // [999, 1023]

        StoredTensor var = file.Tensors["stage1.1.rbr_skip.running_var"];
        Assert.Equal([48], var.Shape);
        Assert.Equal([1.8681640625f, 3.17578125f, 2.1015625f], var.ToTensor().Data[..3]);

        StoredTensor tracked = file.Tensors["stage0.rbr_conv.0.bn.num_batches_tracked"];
        Assert.Equal(DType.I64, tracked.DType);
        Assert.Empty(tracked.Shape);
        Assert.Equal([1563L], tracked.ToInt64());
        Assert.All(file.Tensors.Where(kv => kv.Key.EndsWith(".num_batches_tracked", StringComparison.Ordinal)),
            kv => Assert.Equal(DType.I64, kv.Value.DType));
    }

    [Fact]
    public void ReadsAppleFusedStateDict()
    {
        TensorFile fused = PyTorchCheckpointReader.Read(AppleFused);

        Assert.Equal(88, fused.Tensors.Count);
        Assert.All(fused.Tensors.Values, t => Assert.Equal(DType.F32, t.DType));
        AssertKeysAndShapes(ReferenceKeyMap("apple.fused_keys"), fused);
        AssertConsistentSizes(fused);

        StoredTensor stem = fused.Tensors["stage0.reparam_conv.weight"];
        Assert.Equal([48, 3, 3, 3], stem.Shape);
        Assert.Equal([0.047502581030130386f, -0.04927530884742737f, 0.056760165840387344f], stem.ToTensor().Data[..3]);

        // Fusing leaves the classifier alone: the fused F32 linear layer is the unfused F16 one, widened.
        TensorFile unfused = PyTorchCheckpointReader.Read(AppleUnfused);
        foreach (string key in new[] { "linear.weight", "linear.bias" })
        {
            Assert.Equal(unfused.Tensors[key].Shape, fused.Tensors[key].Shape);
            Assert.Equal(unfused.Tensors[key].ToTensor().Data, fused.Tensors[key].ToTensor().Data);
        }
    }

    [Fact]
    public void ReadsTrainingCheckpointWrittenByTorch()
    {
        using var dir = new TempDir();
        string path = dir.File("train.pth.tar");
        File.WriteAllBytes(path, TorchTrainingCheckpoint());

        TensorFile file = PyTorchCheckpointReader.Read(path);

        Assert.Equal(
            ["0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var", "1.num_batches_tracked",
             "view.t", "view.slice", "view.step", "param", "bf16", "bool", "i8", "expand"],
            file.Tensors.Keys);
        Assert.Equal([3, 2, 1, 1], file.Tensors["0.weight"].Shape);
        Assert.Equal([-0.0059366836212575436f, 0.38028648495674133f, -0.5810486078262329f, -0.5194475054740906f, -0.2732764482498169f, 0.19054096937179565f],
            file.Tensors["0.weight"].ToTensor().Data);
        Assert.Equal([0.9100503325462341f, 0.9350329637527466f, 0.9069823622703552f], file.Tensors["1.running_var"].ToTensor().Data);
        Assert.Equal([1L], file.Tensors["1.num_batches_tracked"].ToInt64());
        Assert.Empty(file.Tensors["1.num_batches_tracked"].Shape);

        // Views of one 3x4 storage holding 0..11: transpose, slice with offset, step, and an expand (stride 0).
        Assert.Equal([4, 3], file.Tensors["view.t"].Shape);
        Assert.Equal([0f, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11], file.Tensors["view.t"].ToTensor().Data);
        Assert.Equal([6f, 7, 10, 11], file.Tensors["view.slice"].ToTensor().Data);
        Assert.Equal([0f, 2, 4, 6, 8, 10], file.Tensors["view.step"].ToTensor().Data);
        Assert.Equal([1f, 2, 1, 2, 1, 2], file.Tensors["expand"].ToTensor().Data);
        Assert.Equal([3, 2], file.Tensors["expand"].Shape);

        Assert.Equal([1.5f, -2], file.Tensors["param"].ToTensor().Data);
        Assert.Equal(DType.BF16, file.Tensors["bf16"].DType);
        Assert.Equal([1f, -0.5f, 3], file.Tensors["bf16"].ToTensor().Data);
        Assert.Equal(DType.Bool, file.Tensors["bool"].DType);
        Assert.Equal([1L, 0, 1], file.Tensors["bool"].ToInt64());
        Assert.Equal([-3L, 4], file.Tensors["i8"].ToInt64());
    }

    /// <summary>
    /// torch.save (PyTorch 1.13, pickle protocol 2) of {'epoch': 3, 'arch': 'tiny', 'state_dict': sd,
    /// 'optimizer': Adam(...).state_dict() after one step, 'best_acc': 0.5, 'none': None}, where sd is the
    /// state dict (an OrderedDict with _metadata) of Sequential(Conv2d(2, 3, 1), BatchNorm2d(3)) plus
    /// views of base = arange(12.).reshape(3, 4) ('view.t': base.t(), 'view.slice': base[1:, 2:],
    /// 'view.step': base[:, ::2]), 'param': nn.Parameter([1.5, -2.0]), 'bf16', 'bool', 'i8' tensors and
    /// 'expand': tensor([1., 2.]).expand(3, 2). Gzipped, then base64.
    /// </summary>
    private static byte[] TorchTrainingCheckpoint()
    {
        const string Base64 = """
        H4sIAAAAAAACA72YC3xT1R3Hb5oSaCj0wWNsKDAKLmgpTfpMGQ0EbccuYrlUlzEwu01um0Ca5J+clNcinZXSImNuQzcfc7AhyuaYK84NQWDIxqYFp/iW
        CQM38QXqHqh7uPO4ze69p9hy+Xx2Pz3N8/v7/c/jf87/pkG0ZgvCsGECdxUK+QJKyOFoSRyFZgRlJJfEl0fqvLnCYs3VnpUGweEbggElHguEwCJafVhR
        kBP4RRZ9isLRVWD12fHTJJKR4g+GAwiyA4FYJKIEUDgWTdqvSwSVhBK8Gn9ihyHTJLA5fCSo0pIVSrglhGBoAMWwZIk/hcKRpN2fUJpS4UjQj5RoMpbw
        t7nsMMzh8A2lJrGE3KJADkPsdZGYjBaxN+1g91mILgz3WfFjIJ6CXNGGYMRCUXCIVjFLtIgWBCMd7Bl5ntcdIhHlIyiQoNBno2E1heUkjAphz1BOiGk6
        YXQoV7QiGIO1ROs6GCta1sGnGD0Owacl+AztlLOvU+N1vAsuY/zlKj+B8BMZPwnBZyWYTN2dzL1IR5fBFEZPVekrCP05RjsQ4P9X+kZSOpGKRsPRFn+r
        IkfhKp1KORQzlemqSglRmcFUShE4JXD5RuhU2uQElOlEKqCciVSoIpVEpIqJVCNwS1DjG0NFoqlWf5OMAiEl6cerLbBcCcJMJqbO3vxYtCUzeZ+n+pUw
        C+vjmanF+tOmMV0PgtkSzKED1BZWVpQg8OqiqoK5mMpFcDWJKlu0dsI1eIKzO6GOKdQj+IIE8+hCpQrJSDigwBf7VEIqLy4UbXh1ZHXCfCxj6YRrGb8A
        wXUSNPhyMjxS4rDQiEt0UAi+COP4oZHh1yO4QYIv0VyKywm5FXwXWPP0UwUpCTt8WdfFaliMPbIQfIV4ZK2DJWTglzL9GxH4JfhqF30hr4cmCQI0P5ua
        nZUQ1A26l+aMszIz8ArVd0Mzm9gWdWJDRD/M9JchWC5BhEnGYhFo1UvitzJyUV8Wmf5SiDG9uKoHRC/B9JIIkAQp+s1wNbTp1OaG5ERGbQVTc8JK1vtV
        au9XE7U1TO1rCNIS3ESXh7IyLkeDsDYzdhR3QTvDv56ZoJvxEzy/HUziFgTrJOhMpWE9nWOcP0gmGyOwMe12+MjGCRvScCvdiNqURBLvbrBRtCTVXecb
        adgUyrx2wjfTcBt+nZVMJZuoaCyOwq3h1UoCvpWGb7Odle6a8J00bHaIQhpud9AxpqvrDn0fyuC7LDO+p8mMOxHcJcHdNCTcdb/c1gL36Lly+H6IboP3
        6rfBH2i2wS1MbSuCH0rwI5olqpo/CbBNL1gB9zHB7XrB+zWCDzDBHQh+LMFPUqIlDQ86QoYeVcJPWY92anr0MwQPSfDzkKEXVdDDltMudTk9TBbALxjz
        CIJfSvCrkCHQatjNmEdVZg9h9jLmMQT7JNifEvEpd4ALzQ2/ZqEd1IT2OIJDEvzGEJqrFH7LbA6rNr8jNr9nzBMInpSg1xCaywlHGHNUZZ4izB8Y8zSC
        ZyQ4lhKtaXjWGJrLBc+x0J7XhPYCghcleMkYWhm8zGxeUW2OE5s/MuZVBCckOGkMrRz+xJhTKnOaMK8x5s8I/iLB66mUL7dvK/O3JGKpeBLOLIU30vCm
        g6pEEvBWvaeh6dpn3tvxL7rQm3BCJeHtes/bveQ6Uu85d/7oS2PXX9UJ79DjWsEaZ+trr1m16VTpxhqqz45Sf1AJyKvgnCjQZS63JlsSchDe7aYHbqu8
        kiYVvNdNP26OJRQZ1yfvL6DLOCDHUSohN0UU+Gs3PSOD4eZmXI9EUZi++7duGl5zKomPp793002E9isJ/1gK5x1km8Dr2qqk5BQ1bFKSyC8HAvBBveck
        q6dozkZjUQU+XJAqaRCHDtv90cT6apzzpDVcsA7LF+yGOmxGaZ3XplZhHV0H97zx8MHau/aP3t/xUfb+1968dV/x5XNrif5zJzpmjMMKpH2S/pVGfWed
        9wpdlXfh64YNyt7Z6/M8r3a0P0Y8PRNP7yazkvuJngVCBeeJO+UcpKnmsggWYrur45Zusj6sA9jWcra4rzUXb5u5/p1N7MfO2/46WdFZA9h7OHtXnXfm
        JdgvFoR2D5aeTaJou89TQmyHDRCFm4uirM5bIZj2J97Llm19kCzw7AG8Z3He5XVet/kR8LrPl+5adLrn8JRIT9fazh6pPeSqmdzYQ2Lat+6FNQOv/wJh
        GhdTRZ136uBi2vrxvkn2m7ZOyZ+7s6hm4qmiFe88UHTblo1FxL+xtMttzr9y0P6XPv5VlzT+R3rnbz/SuxG3+VNJHIumZa82l//VpvI/Vtgx/OWj54fj
        xxyaiQWPu835u035X9z45/MbkOvS9h/l0FrPKxPaPU8cXkvjaC4ad9ZU/13m9t9j24pdox7Z0LNm4lNO4j/7yYfuMOfvNOUfnVdTdPvN7xa9n9c5mZ4/
        4zbdb87f9X+Y/37yz1V2qfnn6WskjjvX7iw21/9ys/k3q68R/w/O/TNnYP98odLoj4fBZWIYooUdj/Y14v/WsebNpvzLzfmf7u3ck7dq8ay7g9P3Ev+p
        /1m41JR/hTn/vA9DHunGmOfjGSE6//VofLsp/0pz/hZVkXifP9G1Y+D6I1+oMXrjI6hSMFv/kIvVQPgPt3bctuB2ALeTuAlzsCduk3ArnUPiXJluri0l
        d+MDxFlojBMfUSMFo/8B4n2A6NYUn+g11X+3+f7jnu+fTau/zdO3HSL3JbYBMn+mxl39gaLOW2V2ByqzE++n7225/n/1r4U8ZNy1dzmFXDz8L8xGXnsX
        k69ju3IE7s7ISGvvR/T0GZ52GmntbUWBjl5i52nOXHtboMeP9YNz7tp6Xo9Lw3ncZcS1R5Ief7EfvMyIa6tnPd6Yy+PlRlxb/OrxM/3gFYMPPjSCxyuN
        uLYM1ePP9oNXcROnqSIN8z6Sx6sHH/zxfnC3EdfWcPo125jH4dy0ayswg3k/NJ8wmgLK0PV8HndeRNf7wbngteWLYdEV8Di3ZrXVh8G9H5xbs9riQT/w
        Swo5nDPXHv16+jhPc97ag9vgPYqjuXTRHr0Gb57mskV7IOpp32iO5pJFe+zpaWEMR3O5oj22DN48zaWK9uDRT/jzOlo96BpEm61Y/cIE6/TMl8cbHu+x
        qfvs2L7qxkZ+NhTOXsZeW+h7Q2yMGU+/z777X1spGQpQHQAA
        """;
        using var gz = new GZipStream(new MemoryStream(Convert.FromBase64String(Base64)), CompressionMode.Decompress);
        using var output = new MemoryStream();
        gz.CopyTo(output);
        return output.ToArray();
    }

    // ---------------------------------------------------------------- writer

    [Theory]
    [InlineData("mobileone_s0_apple_unfused.pth.tar")]
    [InlineData("mobileone_s0_apple_unfused_fused.pth.tar")]
    public void RoundTripsAppleCheckpoint(string fixture)
    {
        using var dir = new TempDir();
        TensorFile original = PyTorchCheckpointReader.Read(Fixtures.Path(fixture));
        string path = dir.File("copy.pth");

        PyTorchCheckpointWriter.Write(path, original);
        TensorFile copy = PyTorchCheckpointReader.Read(path);

        AssertSameTensors(original, copy);
        var entries = LocalEntries(File.ReadAllBytes(path));
        Assert.Equal("copy/data.pkl", entries[0].Name);
        Assert.Contains(entries, e => e.Name == "copy/byteorder");
        Assert.Contains(entries, e => e.Name == "copy/version");
        Assert.Equal(original.Tensors.Count, entries.Count(e => e.Name.StartsWith("copy/data/", StringComparison.Ordinal)));
        Assert.All(entries, e => Assert.Equal(0, e.Method));
        Assert.All(entries, e => Assert.Equal(0, e.DataOffset % 64));
    }

    [Fact]
    public void RoundTripsEveryDTypeAndShape()
    {
        using var dir = new TempDir();
        TensorFile file = EveryDTypeFile();
        string path = dir.File("all.pt");

        PyTorchCheckpointWriter.Write(path, file);

        AssertSameTensors(file, PyTorchCheckpointReader.Read(path));
        using var zip = ZipFile.OpenRead(path);
        Assert.Equal("3\n", Encoding.ASCII.GetString(ReadEntry(zip, "all/version")));
        Assert.Equal("little", Encoding.ASCII.GetString(ReadEntry(zip, "all/byteorder")));
    }

    [Fact]
    public void Zip64LayoutIsReadable()
    {
        using var dir = new TempDir();
        TensorFile file = EveryDTypeFile();
        string path = dir.File("zip64.pt");
        using (var stream = File.Create(path))
        {
            PyTorchCheckpointWriter.WriteArchive(path, stream, file, "zip64", forceZip64: true);
        }

        AssertSameTensors(file, PyTorchCheckpointReader.Read(path));
    }

    [Fact]
    public void EmptyStateDictRoundTrips()
    {
        using var dir = new TempDir();
        string path = dir.File("empty.pt");
        PyTorchCheckpointWriter.Write(path, new TensorFile());
        Assert.Empty(PyTorchCheckpointReader.Read(path).Tensors);
    }

    [Theory]
    [InlineData("model.pth.tar", "model.pth")]
    [InlineData("weights.pt", "weights")]
    [InlineData("has space.pt", "archive")]
    [InlineData(".pt", "archive")]
    public void ArchiveFolderFollowsTheFileName(string name, string stem) =>
        Assert.Equal(stem, PyTorchCheckpointWriter.ArchiveStem(Path.Combine("some", "dir", name)));

    [Fact]
    public void FailedWriteLeavesExistingFileIntact()
    {
        using var dir = new TempDir();
        string path = dir.File("keep.pt");
        PyTorchCheckpointWriter.Write(path, SmallFile());
        byte[] before = File.ReadAllBytes(path);

        // The failure comes after the first tensors have been processed, inside the atomic write.
        var bad = SmallFile();
        bad.Tensors.Add("bad.weight", null!);
        var ex = Assert.Throws<CheckpointException>(() => PyTorchCheckpointWriter.Write(path, bad));

        Assert.Contains("keep.pt", ex.Message);
        Assert.Contains("key 'bad.weight'", ex.Message);
        Assert.Contains("has no tensor", ex.Message);
        Assert.Equal(before, File.ReadAllBytes(path));
        Assert.Equal([path], Directory.GetFiles(dir.Path));
    }

    [Fact]
    public void WriterRechecksAMutatedShape()
    {
        using var dir = new TempDir();
        string path = dir.File("mutated.pt");
        var file = SmallFile();
        file.Tensors["bn.running_var"].Shape[0] = 3;

        var ex = Assert.Throws<CheckpointException>(() => PyTorchCheckpointWriter.Write(path, file));

        Assert.Contains("mutated.pt", ex.Message);
        Assert.Contains("key 'bn.running_var'", ex.Message);
        Assert.Contains("needs 12 bytes, but holds 8", ex.Message);
        Assert.False(File.Exists(path));
    }

    [Fact]
    public void WriteIntoMissingFolderFails()
    {
        using var dir = new TempDir();
        string path = Path.Combine(dir.Path, "nope", "x.pt");
        var ex = Assert.Throws<CheckpointException>(() => PyTorchCheckpointWriter.Write(path, SmallFile()));
        Assert.Contains("does not exist", ex.Message);
        Assert.Contains("x.pt", ex.Message);
    }

    // ---------------------------------------------------------------- structure of the top-level object

    [Theory]
    [InlineData("state_dict")]
    [InlineData("model")]
    [InlineData("state_dict_ema")]
    public void ReadsStateDictWrappedInTrainingCheckpoint(string wrapper)
    {
        using var dir = new TempDir();
        TensorFile expected = SmallFile();
        string path = WrappedCheckpoint(dir, expected, p => p
            .Str("epoch").Int(7)
            .Str(wrapper).Body()
            .Str("optimizer").EmptyDict()
            .Str("arch").Str("mobileone_s0"));

        AssertSameTensors(expected, PyTorchCheckpointReader.Read(path));
    }

    [Fact]
    public void PrefersStateDictThenModelThenEma()
    {
        using var dir = new TempDir();
        TensorFile expected = SmallFile();

        // 'state_dict' wins over 'model' even when it comes second.
        string first = WrappedCheckpoint(dir, expected, p => p
            .Str("model").EmptyDict()
            .Str("state_dict").Body());
        AssertSameTensors(expected, PyTorchCheckpointReader.Read(first));

        // 'model' wins over 'state_dict_ema'.
        string second = WrappedCheckpoint(dir, expected, p => p
            .Str("state_dict_ema").EmptyDict()
            .Str("model").Body());
        AssertSameTensors(expected, PyTorchCheckpointReader.Read(second));
    }

    [Fact]
    public void StripsDataParallelPrefixOnlyWhenEveryKeyHasIt()
    {
        using var dir = new TempDir();
        TensorFile plain = SmallFile();
        var prefixed = new TensorFile(plain.Tensors.Select(kv => KeyValuePair.Create("module." + kv.Key, kv.Value)));
        string path = dir.File("dp.pt");
        PyTorchCheckpointWriter.Write(path, prefixed);
        AssertSameTensors(plain, PyTorchCheckpointReader.Read(path));

        string wrapped = WrappedCheckpoint(dir, prefixed, p => p.Str("state_dict").Body().Str("epoch").Int(3));
        AssertSameTensors(plain, PyTorchCheckpointReader.Read(wrapped));

        var mixed = new TensorFile(prefixed.Tensors);
        mixed.Tensors.Add("head.scale", new StoredTensor(DType.F32, [], new byte[4]));
        string mixedPath = dir.File("mixed.pt");
        PyTorchCheckpointWriter.Write(mixedPath, mixed);
        Assert.Equal(mixed.Tensors.Keys, PyTorchCheckpointReader.Read(mixedPath).Tensors.Keys);
    }

    [Fact]
    public void TopLevelWithoutTensorsNamesItsKeys()
    {
        using var dir = new TempDir();
        string path = WrappedCheckpoint(dir, SmallFile(), p => p.Str("epoch").Int(1).Str("net").Body());
        var ex = Assert.Throws<CheckpointException>(() => PyTorchCheckpointReader.Read(path));
        Assert.Contains("wrapped.pt", ex.Message);
        Assert.Contains("holds no tensors", ex.Message);
        Assert.Contains("epoch, net", ex.Message);
    }

    [Fact]
    public void TopLevelTensorIsNotAStateDict()
    {
        using var dir = new TempDir();
        byte[] pickle = new Pk().Proto(2).Tensor("FloatStorage", "0", 1, 0, [], []).Stop().ToArray();
        string path = Zip(dir, "tensor.pt", ("tensor/data.pkl", pickle), ("tensor/data/0", new byte[4]));
        var ex = Assert.Throws<CheckpointException>(() => PyTorchCheckpointReader.Read(path));
        Assert.Contains("tensor.pt", ex.Message);
        Assert.Contains("holds a tensor at the top level, not a state dict", ex.Message);
    }

    // ---------------------------------------------------------------- views, parameters, byte order

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void GathersStridedViewsAndSwapsBigEndian(bool bigEndian)
    {
        using var dir = new TempDir();
        // torch.save(model.state_dict()) from an nn.Module: an OrderedDict, then BUILD with its _metadata.
        // Protocol 4 opcodes (FRAME, STACK_GLOBAL, MEMOIZE, SHORT_BINUNICODE) appear too.
        var p = new Pk().Proto(4).Op(0x95).Raw(new byte[8])
            .ShortStr("collections").ShortStr("OrderedDict").Op(0x93).Op(0x94).EmptyTuple().Reduce().Op(0x94)
            .Mark()
            .Str("w").Tensor("FloatStorage", "0", 6, 0, [2, 3], [3, 1])
            .Str("wt").Tensor("FloatStorage", "0", 6, 0, [3, 2], [1, 3])
            .Str("tail").Tensor("FloatStorage", "0", 6, 4, [2], [1])
            .Str("p").Global("torch._utils", "_rebuild_parameter")
                .Mark().Tensor("FloatStorage", "0", 6, 1, [2], [2]).True().Global("collections", "OrderedDict").EmptyTuple().Reduce().Tuple()
                .Reduce()
            .Str("bcast").Tensor("FloatStorage", "0", 6, 2, [2, 2], [0, 1])
            .Str("unit").Tensor("FloatStorage", "0", 6, 5, [1, 1], [7, 9])
            .Str("count").Tensor("LongStorage", "1", 1, 0, [], [])
            .Str("empty").Tensor("HalfStorage", "2", 0, 0, [0, 4], [4, 1])
            .Str("_note").Int(5)
            .SetItems()
            .EmptyDict().Str("_metadata").Global("collections", "OrderedDict").EmptyTuple().Reduce().SetItem().Build()
            .Stop();

        var floats = new byte[24];
        for (int i = 0; i < 6; i++)
        {
            if (bigEndian)
            {
                BinaryPrimitives.WriteSingleBigEndian(floats.AsSpan(i * 4), i);
            }
            else
            {
                BinaryPrimitives.WriteSingleLittleEndian(floats.AsSpan(i * 4), i);
            }
        }

        var count = new byte[8];
        if (bigEndian)
        {
            BinaryPrimitives.WriteInt64BigEndian(count, 42);
        }
        else
        {
            BinaryPrimitives.WriteInt64LittleEndian(count, 42);
        }

        string path = Zip(dir, "views.pt",
            ("views/data.pkl", p.ToArray()),
            ("views/byteorder", Encoding.ASCII.GetBytes(bigEndian ? "big" : "little")),
            ("views/data/0", floats),
            ("views/data/1", count),
            ("views/data/2", []),
            ("views/version", "3\n"u8.ToArray()));

        TensorFile file = PyTorchCheckpointReader.Read(path);

        Assert.Equal(["w", "wt", "tail", "p", "bcast", "unit", "count", "empty"], file.Tensors.Keys);
        Assert.Equal([0f, 1, 2, 3, 4, 5], file.Tensors["w"].ToTensor().Data);
        Assert.Equal([3, 2], file.Tensors["wt"].Shape);
        Assert.Equal([0f, 3, 1, 4, 2, 5], file.Tensors["wt"].ToTensor().Data);
        Assert.Equal([4f, 5], file.Tensors["tail"].ToTensor().Data);
        Assert.Equal([1f, 3], file.Tensors["p"].ToTensor().Data);
        Assert.Equal([2f, 3, 2, 3], file.Tensors["bcast"].ToTensor().Data);
        Assert.Equal([5f], file.Tensors["unit"].ToTensor().Data);
        Assert.Equal([42L], file.Tensors["count"].ToInt64());
        Assert.Empty(file.Tensors["count"].Shape);
        Assert.Equal(DType.F16, file.Tensors["empty"].DType);
        Assert.Equal([0, 4], file.Tensors["empty"].Shape);
    }

    [Fact]
    public void ViewBeyondItsStorageIsRefused()
    {
        using var dir = new TempDir();
        byte[] pickle = StateDictPickle(p => p.Str("big.weight").Tensor("FloatStorage", "0", 6, 1, [2, 3], [3, 1]));
        string path = Zip(dir, "oob.pt", ("oob/data.pkl", pickle), ("oob/data/0", new byte[24]));

        var ex = Assert.Throws<CheckpointException>(() => PyTorchCheckpointReader.Read(path));

        Assert.Contains("oob.pt", ex.Message);
        Assert.Contains("'big.weight'", ex.Message);
        Assert.Contains("reaches element 6", ex.Message);
        Assert.Contains("holds only 6 elements", ex.Message);
    }

    [Fact]
    public void MissingStorageRecordIsNamed()
    {
        using var dir = new TempDir();
        byte[] pickle = StateDictPickle(p => p
            .Str("a").Tensor("FloatStorage", "0", 1, 0, [1], [1])
            .Str("b").Tensor("FloatStorage", "7", 1, 0, [1], [1]));
        string path = Zip(dir, "missing.pt", ("missing/data.pkl", pickle), ("missing/data/0", new byte[4]));

        var ex = Assert.Throws<CheckpointException>(() => PyTorchCheckpointReader.Read(path));

        Assert.Contains("missing.pt", ex.Message);
        Assert.Contains("key 'b'", ex.Message);
        Assert.Contains("'missing/data/7', which is missing", ex.Message);
    }

    [Fact]
    public void ShortStorageRecordIsRefused()
    {
        using var dir = new TempDir();
        byte[] pickle = StateDictPickle(p => p.Str("w").Tensor("HalfStorage", "0", 10, 0, [10], [1]));
        string path = Zip(dir, "short.pt", ("short/data.pkl", pickle), ("short/data/0", new byte[12]));

        var ex = Assert.Throws<CheckpointException>(() => PyTorchCheckpointReader.Read(path));

        Assert.Contains("short.pt", ex.Message);
        Assert.Contains("key 'w'", ex.Message);
        Assert.Contains("needs 20 bytes", ex.Message);
        Assert.Contains("holds only 12", ex.Message);
    }

    // ---------------------------------------------------------------- malicious pickles

    [Fact]
    public void RefusesOsSystemWithoutRunningIt()
    {
        using var dir = new TempDir();
        string marker = Path.Combine(Path.GetTempPath(), $"pwned_{Guid.NewGuid():N}");
        byte[] pickle = new Pk().Proto(2).Global("os", "system").Str($"touch {marker}").Op(0x85).Reduce().Stop().ToArray();
        string path = Zip(dir, "evil.pt", ("evil/data.pkl", pickle));

        var ex = Assert.Throws<CheckpointException>(() => PyTorchCheckpointReader.Read(path));

        Assert.Contains("evil.pt", ex.Message);
        Assert.Contains("refuses to load global 'os.system'", ex.Message);
        Assert.Contains("only tensors and plain containers are allowed", ex.Message);
        Assert.False(File.Exists(marker));
    }

    [Theory]
    [InlineData("builtins", "eval")]
    [InlineData("__builtin__", "eval")]
    [InlineData("torch.storage", "_load_from_bytes")]
    [InlineData("torch", "load")]
    [InlineData("posix", "system")]
    [InlineData("subprocess", "Popen")]
    public void RefusesGlobalsOutsideTheAllowList(string module, string name)
    {
        using var dir = new TempDir();
        byte[] pickle = new Pk().Proto(2).Global(module, name).Op((byte)'C', 3).Raw("abc"u8.ToArray()).Op(0x85).Reduce().Stop().ToArray();
        string path = Zip(dir, "evil.pt", ("evil/data.pkl", pickle));

        var ex = Assert.Throws<CheckpointException>(() => PyTorchCheckpointReader.Read(path));

        Assert.Contains("evil.pt", ex.Message);
        Assert.Contains($"refuses to load global '{module}.{name}'", ex.Message);
    }

    [Fact]
    public void RefusesStackGlobalToo()
    {
        using var dir = new TempDir();
        byte[] pickle = new Pk().Proto(4).ShortStr("builtins").ShortStr("exec").Op(0x93).ShortStr("print(1)").Op(0x85).Reduce().Stop().ToArray();
        string path = Zip(dir, "evil4.pt", ("evil4/data.pkl", pickle));

        var ex = Assert.Throws<CheckpointException>(() => PyTorchCheckpointReader.Read(path));

        Assert.Contains("evil4.pt", ex.Message);
        Assert.Contains("refuses to load global 'builtins.exec'", ex.Message);
    }

    [Fact]
    public void RefusesForeignGlobalEvenInAnIgnoredEntry()
    {
        using var dir = new TempDir();
        string path = WrappedCheckpoint(dir, SmallFile(), p => p
            .Str("state_dict").Body()
            .Str("args").Global("argparse", "Namespace").EmptyTuple().Reduce());

        var ex = Assert.Throws<CheckpointException>(() => PyTorchCheckpointReader.Read(path));

        Assert.Contains("refuses to load global 'argparse.Namespace'", ex.Message);
    }

    [Fact]
    public void RefusesObjectBuildingOpcodes()
    {
        using var dir = new TempDir();
        byte[] pickle = new Pk().Proto(2).Mark().Str("ls").Raw("ios\nsystem\n"u8.ToArray()).Stop().ToArray();
        string path = Zip(dir, "inst.pt", ("inst/data.pkl", pickle));

        var ex = Assert.Throws<CheckpointException>(() => PyTorchCheckpointReader.Read(path));

        Assert.Contains("inst.pt", ex.Message);
        Assert.Contains("INST/OBJ", ex.Message);
    }

    [Fact]
    public void UnsupportedStorageTypeIsNamed()
    {
        using var dir = new TempDir();
        byte[] pickle = StateDictPickle(p => p.Str("z").Tensor("ComplexFloatStorage", "0", 1, 0, [1], [1]));
        string path = Zip(dir, "complex.pt", ("complex/data.pkl", pickle), ("complex/data/0", new byte[8]));

        var ex = Assert.Throws<CheckpointException>(() => PyTorchCheckpointReader.Read(path));

        Assert.Contains("complex.pt", ex.Message);
        Assert.Contains("storage type 'torch.ComplexFloatStorage'", ex.Message);
        Assert.Contains("does not support", ex.Message);
    }

    [Fact]
    public void TruncatedPickleIsReported()
    {
        using var dir = new TempDir();
        byte[] pickle = StateDictPickle(p => p.Str("w").Tensor("FloatStorage", "0", 1, 0, [1], [1]));
        string path = Zip(dir, "cut.pt", ("cut/data.pkl", pickle[..(pickle.Length / 2)]), ("cut/data/0", new byte[4]));

        var ex = Assert.Throws<CheckpointException>(() => PyTorchCheckpointReader.Read(path));

        Assert.Contains("cut.pt", ex.Message);
        Assert.Contains("data.pkl ends unexpectedly", ex.Message);
    }

    // ---------------------------------------------------------------- files that are not zip checkpoints

    [Theory]
    [InlineData("80028a0a6cfc9c46f9206aa850192e80024de9032e")] // protocol 2 (the default)
    [InlineData("8004950d000000000000008a0a6cfc9c46f9206aa850192e8004950400000000")] // pickle_protocol=4
    public void LegacyPickleFormatIsExplained(string headHex)
    {
        using var dir = new TempDir();
        string path = dir.File("old.pth");
        File.WriteAllBytes(path, Convert.FromHexString(headHex));

        var ex = Assert.Throws<CheckpointException>(() => PyTorchCheckpointReader.Read(path));

        Assert.Contains("old.pth", ex.Message);
        Assert.Contains("legacy (pre-1.6, non-zip) PyTorch checkpoint", ex.Message);
        Assert.Contains("_use_new_zipfile_serialization=True", ex.Message);
    }

    [Fact]
    public void LegacyTarFormatIsExplained()
    {
        using var dir = new TempDir();
        string path = dir.File("old.tar");
        using (var stream = File.Create(path))
        using (var tar = new TarWriter(stream, TarEntryFormat.Ustar))
        {
            var entry = new UstarTarEntry(TarEntryType.RegularFile, "sys_info") { DataStream = new MemoryStream("x"u8.ToArray()) };
            tar.WriteEntry(entry);
        }

        var ex = Assert.Throws<CheckpointException>(() => PyTorchCheckpointReader.Read(path));

        Assert.Contains("old.tar", ex.Message);
        Assert.Contains("legacy (pre-1.6, non-zip) PyTorch checkpoint", ex.Message);
    }

    [Fact]
    public void BarePickleIsExplained()
    {
        using var dir = new TempDir();
        string path = dir.File("plain.pkl");
        File.WriteAllBytes(path, new Pk().Proto(2).EmptyDict().Stop().ToArray());

        var ex = Assert.Throws<CheckpointException>(() => PyTorchCheckpointReader.Read(path));

        Assert.Contains("plain.pkl", ex.Message);
        Assert.Contains("bare pickle stream", ex.Message);
    }

    [Fact]
    public void EmptyFileIsReported()
    {
        using var dir = new TempDir();
        string path = dir.File("empty.pt");
        File.WriteAllBytes(path, []);

        var ex = Assert.Throws<CheckpointException>(() => PyTorchCheckpointReader.Read(path));

        Assert.Contains("empty.pt", ex.Message);
        Assert.Contains("is empty", ex.Message);
    }

    [Fact]
    public void DirectoryIsReported()
    {
        using var dir = new TempDir();
        var ex = Assert.Throws<CheckpointException>(() => PyTorchCheckpointReader.Read(dir.Path));
        Assert.Contains(dir.Path, ex.Message);
        Assert.Contains("is a directory", ex.Message);
    }

    [Fact]
    public void MissingFileIsReported()
    {
        using var dir = new TempDir();
        string path = dir.File("absent.pt");
        var ex = Assert.Throws<CheckpointException>(() => PyTorchCheckpointReader.Read(path));
        Assert.Contains("absent.pt", ex.Message);
        Assert.Contains("does not exist", ex.Message);
    }

    [Fact]
    public void NonZipIsReported()
    {
        using var dir = new TempDir();
        string path = dir.File("notes.pt");
        File.WriteAllText(path, "hello, this is text");

        var ex = Assert.Throws<CheckpointException>(() => PyTorchCheckpointReader.Read(path));

        Assert.Contains("notes.pt", ex.Message);
        Assert.Contains("not a zip archive", ex.Message);
    }

    [Fact]
    public void TruncatedZipIsReported()
    {
        using var dir = new TempDir();
        string path = dir.File("half.pth.tar");
        byte[] whole = File.ReadAllBytes(AppleFused);
        File.WriteAllBytes(path, whole[..(whole.Length / 2)]);

        var ex = Assert.Throws<CheckpointException>(() => PyTorchCheckpointReader.Read(path));

        Assert.Contains("half.pth.tar", ex.Message);
        Assert.Contains("not a readable zip archive (it may be truncated or corrupt)", ex.Message);
    }

    [Fact]
    public void ZipWithoutPickleIsReported()
    {
        using var dir = new TempDir();
        string path = Zip(dir, "other.zip", ("docs/readme.txt", "hi"u8.ToArray()));

        var ex = Assert.Throws<CheckpointException>(() => PyTorchCheckpointReader.Read(path));

        Assert.Contains("other.zip", ex.Message);
        Assert.Contains("no '<folder>/data.pkl' entry", ex.Message);
        Assert.Contains("docs/readme.txt", ex.Message);
    }

    [Fact]
    public void TorchScriptArchiveIsExplained()
    {
        using var dir = new TempDir();
        byte[] pickle = new Pk().Proto(2).Global("__torch__.torch.nn.modules.linear", "Linear").Stop().ToArray();
        string path = Zip(dir, "script.pt",
            ("script/data.pkl", pickle),
            ("script/code/__torch__/torch/nn/modules/linear.py", "x"u8.ToArray()),
            ("script/constants.pkl", new Pk().Proto(2).EmptyTuple().Stop().ToArray()));

        var ex = Assert.Throws<CheckpointException>(() => PyTorchCheckpointReader.Read(path));

        Assert.Contains("script.pt", ex.Message);
        Assert.Contains("is a TorchScript archive (torch.jit.save)", ex.Message);
    }

    [Fact]
    public void CorruptStorageFailsItsCrc()
    {
        using var dir = new TempDir();
        string path = dir.File("flip.pt");
        PyTorchCheckpointWriter.Write(path, SmallFile());
        byte[] bytes = File.ReadAllBytes(path);
        var record = LocalEntries(bytes).Single(e => e.Name == "flip/data/1");
        bytes[record.DataOffset] ^= 0x40;
        File.WriteAllBytes(path, bytes);

        var ex = Assert.Throws<CheckpointException>(() => PyTorchCheckpointReader.Read(path));

        Assert.Contains("flip.pt", ex.Message);
        Assert.Contains("key 'bn.running_var'", ex.Message);
        Assert.Contains("'flip/data/1' fails its CRC-32 check", ex.Message);
    }

    [Fact]
    public void StateDictEntryWithoutTensorsIsReported()
    {
        using var dir = new TempDir();
        string path = WrappedCheckpoint(dir, SmallFile(), p => p.Str("state_dict").EmptyDict().Str("backbone").Body().SetItem());

        var ex = Assert.Throws<CheckpointException>(() => PyTorchCheckpointReader.Read(path));

        Assert.Contains("wrapped.pt", ex.Message);
        Assert.Contains("'state_dict' entry that holds no tensors (its keys: backbone)", ex.Message);
    }

    [Fact]
    public void ZipWithTwoPicklesIsReported()
    {
        using var dir = new TempDir();
        byte[] pickle = StateDictPickle(_ => { });
        string path = Zip(dir, "two.pt", ("a/data.pkl", pickle), ("b/data.pkl", pickle));

        var ex = Assert.Throws<CheckpointException>(() => PyTorchCheckpointReader.Read(path));

        Assert.Contains("two.pt", ex.Message);
        Assert.Contains("several PyTorch pickles", ex.Message);
    }

    // ---------------------------------------------------------------- helpers

    private static TensorFile SmallFile()
    {
        var file = new TensorFile();
        file.Tensors.Add("conv.weight", StoredTensor.FromTensor(new MobileOne.Tensors.Tensor([2, 1, 2, 2], [1, 2, 3, 4, 5, 6, 7, 8]), DType.F16));
        file.Tensors.Add("bn.running_var", StoredTensor.FromTensor(new MobileOne.Tensors.Tensor([2], [0.5f, 2]), DType.F32));
        file.Tensors.Add("bn.num_batches_tracked", StoredTensor.FromInt64(17));
        return file;
    }

    private static TensorFile EveryDTypeFile()
    {
        var rng = new Random(1234);
        var file = new TensorFile();
        foreach (DType dtype in Enum.GetValues<DType>())
        {
            int[] shape = [2, 3, 1, 2, 2];
            var bytes = new byte[24 * DTypeInfo.SizeOf(dtype)];
            rng.NextBytes(bytes);
            if (dtype == DType.Bool)
            {
                for (int i = 0; i < bytes.Length; i++)
                {
                    bytes[i] &= 1;
                }
            }

            file.Tensors.Add($"t.{dtype}", new StoredTensor(dtype, shape, bytes));
        }

        file.Tensors.Add("scalar", StoredTensor.FromInt64(-5_000_000_000));
        file.Tensors.Add("empty", new StoredTensor(DType.F32, [0, 3], []));
        file.Tensors.Add("vector", new StoredTensor(DType.BF16, [70_000], new byte[140_000]));
        file.Tensors.Add("ключ.weight", new StoredTensor(DType.U8, [3], [1, 2, 3]));
        return file;
    }

    private static void AssertSameTensors(TensorFile expected, TensorFile actual)
    {
        Assert.Equal(expected.Tensors.Keys, actual.Tensors.Keys);
        foreach (var (key, e) in expected.Tensors)
        {
            StoredTensor a = actual.Tensors[key];
            Assert.True(e.DType == a.DType, $"{key}: dtype {a.DType}, expected {e.DType}");
            Assert.Equal(e.Shape, a.Shape);
            Assert.True(e.Data.AsSpan().SequenceEqual(a.Data), $"{key}: bytes differ");
        }
    }

    private static void AssertConsistentSizes(TensorFile file) =>
        Assert.All(file.Tensors.Values, t => Assert.Equal(t.ElementCount() * DTypeInfo.SizeOf(t.DType), t.Data.Length));

    private static void AssertKeysAndShapes(List<(string Key, int[] Shape)> expected, TensorFile file)
    {
        Assert.Equal(expected.Select(e => e.Key), file.Tensors.Keys);
        foreach (var (key, shape) in expected)
        {
            Assert.Equal(shape, file.Tensors[key].Shape);
        }
    }

    // The reference file's metadata records every checkpoint's key -> shape map, in state dict order.
    private static List<(string Key, int[] Shape)> ReferenceKeyMap(string name)
    {
        using var stream = File.OpenRead(Fixtures.Path("mobileone_s0_reference.safetensors"));
        var lengthBytes = new byte[8];
        stream.ReadExactly(lengthBytes);
        var header = new byte[BinaryPrimitives.ReadInt64LittleEndian(lengthBytes)];
        stream.ReadExactly(header);
        using var doc = JsonDocument.Parse(header);
        string json = doc.RootElement.GetProperty("__metadata__").GetProperty(name).GetString()!;
        using var map = JsonDocument.Parse(json);
        return map.RootElement.EnumerateObject()
            .Select(p => (p.Name, p.Value.EnumerateArray().Select(v => v.GetInt32()).ToArray()))
            .ToList();
    }

    private static List<(string Name, int Method, long DataOffset)> LocalEntries(byte[] zip)
    {
        var entries = new List<(string, int, long)>();
        int pos = 0;
        while (BinaryPrimitives.ReadUInt32LittleEndian(zip.AsSpan(pos)) == 0x04034b50)
        {
            int method = BinaryPrimitives.ReadUInt16LittleEndian(zip.AsSpan(pos + 8));
            int size = (int)BinaryPrimitives.ReadUInt32LittleEndian(zip.AsSpan(pos + 18));
            int nameLength = BinaryPrimitives.ReadUInt16LittleEndian(zip.AsSpan(pos + 26));
            int extraLength = BinaryPrimitives.ReadUInt16LittleEndian(zip.AsSpan(pos + 28));
            string name = Encoding.UTF8.GetString(zip, pos + 30, nameLength);
            int data = pos + 30 + nameLength + extraLength;
            entries.Add((name, method, data));
            pos = data + size;
        }

        return entries;
    }

    private static byte[] ReadEntry(ZipArchive zip, string name)
    {
        using var s = zip.GetEntry(name)!.Open();
        using var ms = new MemoryStream();
        s.CopyTo(ms);
        return ms.ToArray();
    }

    internal static string Zip(TempDir dir, string fileName, params (string Name, byte[] Data)[] entries)
    {
        string path = dir.File(fileName);
        using var stream = File.Create(path);
        using var zip = new ZipArchive(stream, ZipArchiveMode.Create);
        foreach (var (name, data) in entries)
        {
            using Stream s = zip.CreateEntry(name, CompressionLevel.NoCompression).Open();
            s.Write(data);
        }

        return path;
    }

    /// <summary>A state dict pickle: a plain dict filled with one SETITEMS.</summary>
    internal static byte[] StateDictPickle(Action<Pk> items)
    {
        var p = new Pk().Proto(2).EmptyDict().Mark();
        items(p);
        return p.SetItems().Stop().ToArray();
    }

    /// <summary>
    /// Writes <paramref name="inner"/> with the writer, then replaces its data.pkl by a hand-made dict whose
    /// entries <paramref name="items"/> adds; <see cref="Pk.Body"/> splices in the writer's OrderedDict.
    /// </summary>
    private static string WrappedCheckpoint(TempDir dir, TensorFile inner, Action<Pk> items)
    {
        string source = dir.File($"inner-{Guid.NewGuid():N}.pt");
        PyTorchCheckpointWriter.Write(source, inner);
        string stem = Path.GetFileNameWithoutExtension(source);
        var entries = new List<(string Name, byte[] Data)>();
        byte[] body;
        using (var zip = ZipFile.OpenRead(source))
        {
            byte[] pickle = ReadEntry(zip, stem + "/data.pkl");
            Assert.Equal([0x80, 0x02], pickle[..2]);
            Assert.Equal((byte)'.', pickle[^1]);
            body = pickle[2..^1];
            foreach (ZipArchiveEntry e in zip.Entries.Where(e => !e.FullName.EndsWith("/data.pkl", StringComparison.Ordinal)))
            {
                entries.Add(("wrapped/" + e.FullName[(stem.Length + 1)..], ReadEntry(zip, e.FullName)));
            }
        }

        // No memo opcodes outside the spliced body, so its BINPUT/BINGET indices cannot collide.
        var p = new Pk(body).Proto(2).EmptyDict().Mark();
        items(p);
        entries.Insert(0, ("wrapped/data.pkl", p.SetItems().Stop().ToArray()));
        string path = dir.File("wrapped.pt");
        File.Delete(path);
        return Zip(dir, "wrapped.pt", [.. entries]);
    }

    /// <summary>Hand assembly of pickle opcodes, independent of the library's writer.</summary>
    internal sealed class Pk(byte[]? body = null)
    {
        private readonly List<byte> _bytes = [];

        public Pk Op(params byte[] bytes)
        {
            _bytes.AddRange(bytes);
            return this;
        }

        public Pk Raw(byte[] bytes) => Op(bytes);

        public Pk Proto(byte version) => Op(0x80, version);

        public Pk Global(string module, string name) => Op((byte)'c').Raw(Encoding.ASCII.GetBytes($"{module}\n{name}\n"));

        public Pk Str(string value)
        {
            byte[] utf8 = Encoding.UTF8.GetBytes(value);
            return Op((byte)'X').Raw(BitConverter.GetBytes(utf8.Length)).Raw(utf8);
        }

        public Pk ShortStr(string value)
        {
            byte[] utf8 = Encoding.UTF8.GetBytes(value);
            return Op(0x8c, (byte)utf8.Length).Raw(utf8);
        }

        public Pk Int(int value) => value is >= 0 and < 256 ? Op((byte)'K', (byte)value) : Op((byte)'J').Raw(BitConverter.GetBytes(value));

        public Pk Mark() => Op((byte)'(');

        public Pk Tuple() => Op((byte)'t');

        public Pk EmptyTuple() => Op((byte)')');

        public Pk EmptyDict() => Op((byte)'}');

        public Pk Reduce() => Op((byte)'R');

        public Pk SetItem() => Op((byte)'s');

        public Pk SetItems() => Op((byte)'u');

        public Pk Build() => Op((byte)'b');

        public Pk True() => Op(0x88);

        public Pk False() => Op(0x89);

        public Pk Stop() => Op((byte)'.');

        public Pk Body() => Raw(body ?? throw new InvalidOperationException("No body to splice."));

        public Pk Ints(int[] values)
        {
            Mark();
            foreach (int v in values)
            {
                Int(v);
            }

            return Tuple();
        }

        /// <summary>Pushes torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict()).</summary>
        public Pk Tensor(string storageType, string key, int numel, int offset, int[] size, int[] stride) =>
            Global("torch._utils", "_rebuild_tensor_v2")
                .Mark()
                .Mark().Str("storage").Global("torch", storageType).Str(key).Str("cpu").Int(numel).Tuple().Op((byte)'Q')
                .Int(offset).Ints(size).Ints(stride).False()
                .Global("collections", "OrderedDict").EmptyTuple().Reduce()
                .Tuple()
                .Reduce();

        public byte[] ToArray() => [.. _bytes];
    }
}
