using System.Diagnostics;
using System.IO.Compression;
using System.Text.RegularExpressions;
using MobileOne.Data;
using MobileOne.IO;
using MobileOne.IO.Checkpoints;
using MobileOne.Imaging;
using MobileOne.Models;
using MobileOne.Tests.Inference;

namespace MobileOne.Tests.IO;

/// <summary>
/// An in-process mutation fuzzer for the checkpoint and dataset readers: valid small checkpoints (timm safetensors,
/// timm and Apple torch.save) and IDX files (images and labels, raw and gzip) are mutated (bit flips, interesting
/// bytes, inserted, deleted and duplicated chunks, truncation, splices of two seeds) and loaded; the pickle target
/// mutates data.pkl inside an otherwise valid zip, so the unpickler sees the mutations instead of the zip's CRC check.
/// The oracle: a file is either loaded or refused with the reader's own error (<see cref="CheckpointException"/>,
/// <see cref="DatasetException"/>: the CLI's one-line error), within a time and allocation budget; any other
/// exception, or an input over budget, is a finding. The image target decodes mutated PNG, JPEG and GIF files (the
/// predict tests' images, every mode they cover) as predict and serve do, refusals being <see cref="ImageDecodeException"/>.
/// The suite runs a short smoke campaign; MOBILEONE_FUZZ_ITERATIONS
/// sets the iterations per target for a real one (docs/reliability.md).
/// </summary>
public partial class ParserFuzzTests
{
    private const long AllocationBudget = 256L << 20;

    /// <summary>
    /// An image's budget is the documented pixel limit's: a header may declare up to <see cref="IImageDecoder.MaxPixels"/>
    /// pixels, whose RGBA buffer (358 MB) is allocated before the decoder finds out whether the data is all there;
    /// 64 MB more for everything else (docs/reliability.md).
    /// </summary>
    private const long ImageAllocationBudget = (IImageDecoder.MaxPixels * 4) + (64L << 20);
    private static readonly TimeSpan TimeBudget = TimeSpan.FromSeconds(2);

    public static TheoryData<string> Targets => new() { "safetensors", "torch-zip", "pickle", "idx", "onnx", "image" };

    [Theory]
    [MemberData(nameof(Targets))]
    public void Mutated_checkpoints_are_loaded_or_refused_with_a_checkpoint_error(string target)
    {
        int iterations = int.TryParse(Environment.GetEnvironmentVariable("MOBILEONE_FUZZ_ITERATIONS"), out int n) && n > 0 ? n : 300;
        using var temp = new TempDir();
        var seeds = Seeds(temp.Path, target);
        string scratch = Path.Combine(Directory.Exists("/dev/shm") ? "/dev/shm" : temp.Path, $"fuzz-{Guid.NewGuid():N}{Extension(target)}");
        var rng = new Random(target.GetHashCode(StringComparison.Ordinal) ^ 20261204);
        var outcomes = new Dictionary<string, int>();
        var findings = new List<string>();
        var clock = Stopwatch.StartNew();
        try
        {
            for (int i = 0; i < iterations && findings.Count < 5; i++)
            {
                byte[] input = target == "pickle" ? PickleInZip(seeds, rng) : Mutate(seeds[rng.Next(seeds.Count)].Bytes, seeds, rng);
                File.WriteAllBytes(scratch, input);
                string outcome = LoadOnce(scratch, target, i, out string? finding);
                outcomes[outcome] = outcomes.GetValueOrDefault(outcome) + 1;
                if (finding is not null)
                {
                    // Next to the campaign's log when there is one: the temporary folder goes away with the test.
                    string folder = Environment.GetEnvironmentVariable("MOBILEONE_FUZZ_LOG") is { Length: > 0 } logFile
                        ? Path.GetDirectoryName(Path.GetFullPath(logFile))!
                        : temp.Path;
                    string kept = Path.Combine(folder, $"finding-{target}-{findings.Count}{Extension(target)}");
                    File.Copy(scratch, kept, overwrite: true);
                    findings.Add($"{finding} (input kept as {kept})");
                }
            }
        }
        finally
        {
            File.Delete(scratch);
        }

        if (Environment.GetEnvironmentVariable("MOBILEONE_FUZZ_LOG") is { Length: > 0 } log)
        {
            File.AppendAllLines(log,
            [
                $"target {target}: {iterations} inputs in {clock.Elapsed.TotalSeconds:F1} s, {outcomes.Count} distinct outcomes, {findings.Count} findings",
                .. outcomes.OrderByDescending(o => o.Value).Select(o => $"  {o.Value,8}  {o.Key}"),
                .. findings.Select(f => "  FINDING " + f),
            ]);
        }

        Assert.True(findings.Count == 0, string.Join(Environment.NewLine, findings));
        Assert.True(outcomes.Count > 3, $"only {outcomes.Count} distinct outcomes: the mutations do not reach the parser");
    }

    [Fact]
    public void Finding_a_tiny_gif_declaring_83_million_pixels_is_refused_before_its_rgba_buffer()
    {
        // The image target's first finding (2026-12-05): a 72-byte GIF87a whose screen and frame declare 57136 x 1461
        // pixels, under the pixel limit, failed as truncated after its RGBA buffer was allocated (334 MB, which the pool
        // had rounded up to 512 MB). Rebuilt here in 34 bytes. LZW yields at most 4096 pixels per 12-bit code, so 34 bytes
        // hold at most 92,842 pixels: the header alone refuses it now, allocating next to nothing.
        const int Width = 57136, Height = 1461;
        var gif = new List<byte>("GIF87a"u8.ToArray());
        gif.AddRange([(byte)(Width & 0xFF), (byte)(Width >> 8), (byte)(Height & 0xFF), (byte)(Height >> 8), 0x80, 0, 0]); // screen, 2-colour table
        gif.AddRange([0, 0, 0, 255, 255, 255]);
        gif.AddRange([0x2C, 0, 0, 0, 0, (byte)(Width & 0xFF), (byte)(Width >> 8), (byte)(Height & 0xFF), (byte)(Height >> 8), 0]); // one frame, the whole screen
        gif.AddRange([2, 3, 0x84, 0x8F, 0x01]); // LZW minimum code size 2, a 3-byte data block, then the file ends
        using var temp = new TempDir();
        string path = Path.Combine(temp.Path, "tall.gif");
        File.WriteAllBytes(path, [.. gif]);

        var e = Budget.Refused<ImageDecodeException>(() => SkiaImageDecoder.Instance.Decode(path, channels: 3), maxAllocatedBytes: 1L << 20);

        Assert.Equal(
            $"{path}: declares 57136x1461 = 83475696 pixels, more than a GIF of {gif.Count} bytes can hold: its first frame's 57136x1461 pixels need at least 30570 bytes of LZW codes (at most 4096 pixels per 12-bit code); refused before decoding.",
            e.Message);
    }

    /// <summary>
    /// Loads one input as a model (or, for IDX, as images on even iterations and labels on odd ones); returns its
    /// outcome class and sets <paramref name="finding"/> when the oracle is broken.
    /// </summary>
    private static string LoadOnce(string path, string target, int iteration, out string? finding)
    {
        finding = null;
        long before = GC.GetAllocatedBytesForCurrentThread();
        var clock = Stopwatch.StartNew();
        string outcome;
        try
        {
            if (target == "idx")
            {
                IdxFile.Read(path, iteration % 2 == 0 ? IdxFile.ImagesMagic : IdxFile.LabelsMagic);
            }
            else if (target == "onnx")
            {
                MobileOne.IO.Onnx.OnnxImporter.Load(path);
            }
            else if (target == "image")
            {
                SkiaImageDecoder.Instance.Decode(path, channels: 3);
            }
            else
            {
                ModelCheckpoint.Load(path);
            }

            outcome = "loaded";
        }
        catch (Exception e) when (e is CheckpointException or DatasetException or ImageDecodeException)
        {
            // Numbers and quoted names vary with the mutation; the rest of the message is the kind of refusal.
            outcome = "refused: " + Digits().Replace(Quoted().Replace(e.Message[(e.Message.IndexOf(':', StringComparison.Ordinal) + 1)..], "'…'"), "#");
            outcome = outcome[..Math.Min(outcome.Length, 120)];
        }
        catch (Exception e)
        {
            outcome = "FINDING " + e.GetType().Name;
            finding = $"{e.GetType().FullName}: {e.Message}{Environment.NewLine}{e.StackTrace}";
        }

        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        if (clock.Elapsed > TimeBudget || allocated > (target == "image" ? ImageAllocationBudget : AllocationBudget))
        {
            finding ??= $"over budget: {clock.Elapsed.TotalSeconds:F2} s, {allocated >> 20} MB allocated ({outcome})";
        }

        return outcome;
    }

    private static byte[] Mutate(byte[] seed, IReadOnlyList<(string Name, byte[] Bytes)> seeds, Random rng)
    {
        var data = new List<byte>(seed);
        int rounds = 1 + rng.Next(4);
        for (int r = 0; r < rounds && data.Count > 0; r++)
        {
            int at = rng.Next(data.Count);
            switch (rng.Next(8))
            {
                case 0:
                    data[at] ^= (byte)(1 << rng.Next(8));
                    break;
                case 1:
                    data[at] = Interesting[rng.Next(Interesting.Length)];
                    break;
                case 2:
                    // Headers and pickles sit at the start: aim a third of the byte changes there.
                    data[rng.Next(Math.Min(data.Count, 512))] = (byte)rng.Next(256);
                    break;
                case 3:
                    data.RemoveRange(at, Math.Min(data.Count - at, 1 + rng.Next(64)));
                    break;
                case 4:
                    data.InsertRange(at, Enumerable.Range(0, 1 + rng.Next(16)).Select(_ => (byte)rng.Next(256)));
                    break;
                case 5:
                    int length = Math.Min(data.Count - at, 1 + rng.Next(128));
                    data.InsertRange(rng.Next(data.Count), data.GetRange(at, length));
                    break;
                case 6:
                    data.RemoveRange(at, data.Count - at);
                    break;
                default:
                    var other = seeds[rng.Next(seeds.Count)].Bytes;
                    int from = rng.Next(other.Length);
                    data.RemoveRange(at, data.Count - at);
                    data.AddRange(other.AsSpan(from, Math.Min(other.Length - from, 4096)).ToArray());
                    break;
            }
        }

        return [.. data];
    }

    /// <summary>A torch.save zip whose records are valid and whose data.pkl is mutated (stored, so no CRC stops it early).</summary>
    private static byte[] PickleInZip(IReadOnlyList<(string Name, byte[] Bytes)> seeds, Random rng)
    {
        var seed = seeds[rng.Next(seeds.Count)].Bytes;
        using var source = new ZipArchive(new MemoryStream(seed), ZipArchiveMode.Read);
        var entries = source.Entries.Select(e => (e.FullName, Bytes: ReadAll(e))).ToList();
        int pickle = entries.FindIndex(e => e.FullName.EndsWith("/data.pkl", StringComparison.Ordinal));
        entries[pickle] = (entries[pickle].FullName, Mutate(entries[pickle].Bytes, [(string.Empty, entries[pickle].Bytes)], rng));
        var output = new MemoryStream();
        using (var zip = new ZipArchive(output, ZipArchiveMode.Create, leaveOpen: true))
        {
            foreach (var (name, bytes) in entries)
            {
                using var stream = zip.CreateEntry(name, CompressionLevel.NoCompression).Open();
                stream.Write(bytes);
            }
        }

        return output.ToArray();
    }

    private static byte[] ReadAll(ZipArchiveEntry entry)
    {
        using var stream = entry.Open();
        var memory = new MemoryStream();
        stream.CopyTo(memory);
        return memory.ToArray();
    }

    private static readonly byte[] Interesting = [0x00, 0x01, 0x7F, 0x80, 0xFF, 0xFE, (byte)'{', (byte)'}', (byte)'"', (byte)'[', (byte)']', (byte)',', (byte)':', (byte)'.', 0x28, 0x29, 0x4B, 0x4A, 0x8A];

    private static string Extension(string target) => target switch
    {
        "safetensors" => ".safetensors",
        "idx" => ".idx",
        "onnx" => ".onnx",
        "image" => ".img",
        _ => ".pth",
    };

    /// <summary>Small valid checkpoints of two custom models, or IDX files, written by the library in the target's format.</summary>
    private static List<(string Name, byte[] Bytes)> Seeds(string directory, string target)
    {
        var seeds = new List<(string, byte[])>();
        if (target == "onnx")
        {
            // PyTorch's own exports (tools/onnx/make-onnx-fixtures.py) and ours of a small MobileOne, fused and as branches.
            foreach (string file in Directory.GetFiles(Path.Combine(AppContext.BaseDirectory, "IO", "Onnx", "PyTorch"), "*.onnx").Order(StringComparer.Ordinal))
            {
                seeds.Add((file, File.ReadAllBytes(file)));
            }

            var small = MobileOneNetwork.Create(MobileOneConfig.Parse("units=1/1/1/1,widths=0.25/0.25/0.25/0.25,k=2,se=0/0/0/1,classes=3"));
            seeds.Add(("mobileone-fused", MobileOne.IO.Onnx.OnnxExporter.ToBytes(small)));
            seeds.Add(("mobileone-branches", MobileOne.IO.Onnx.OnnxExporter.ToBytes(small, fuse: false)));
            return seeds;
        }

        if (target == "image")
        {
            // Every image mode predict supports (RGB, RGBA, LA, grey, palette with transparency, 1-bit, 16-bit, CMYK and
            // progressive JPEG, GIF, tiny); the one large image is left out so each input decodes in well under a millisecond.
            foreach (string file in Directory.GetFiles(Path.Combine(AppContext.BaseDirectory, "Predict", "Images")).Order(StringComparer.Ordinal))
            {
                if (!Path.GetFileName(file).StartsWith("large", StringComparison.Ordinal))
                {
                    seeds.Add((file, File.ReadAllBytes(file)));
                }
            }

            return seeds;
        }

        if (target == "idx")
        {
            var rng = new Random(3);
            var arrays = new[] { new IdxArray([3, 28, 28], RandomBytes(rng, 3 * 28 * 28)), new IdxArray([5], RandomBytes(rng, 5)) };
            foreach (var array in arrays)
            {
                foreach (bool gzip in new[] { false, true })
                {
                    string path = Path.Combine(directory, $"seed{seeds.Count}.idx");
                    IdxFile.Write(path, array, gzip);
                    seeds.Add((path, File.ReadAllBytes(path)));
                }
            }

            return seeds;
        }

        string[] configs = ["units=1/1/1/1,widths=0.25/0.25/0.25/0.25,k=2,classes=3", "units=1/1/1/1,widths=0.25/0.25/0.25/0.25,k=1,se=0/0/0/1,classes=2,in_chans=1"];
        for (int i = 0; i < configs.Length; i++)
        {
            var network = EngineTestSupport.RandomFused(MobileOneConfig.Parse(configs[i]), i);
            var trainTime = MobileOneNetwork.Create(MobileOneConfig.Parse(configs[i]));
            foreach (var (model, layout) in new[] { (network, KeyLayout.Timm), (trainTime, KeyLayout.Timm), (trainTime, KeyLayout.Apple) })
            {
                if (target == "safetensors" && layout == KeyLayout.Apple)
                {
                    continue;
                }

                string path = Path.Combine(directory, $"seed{seeds.Count}{Extension(target)}");
                ModelCheckpoint.Save(model, path, layout);
                seeds.Add((path, File.ReadAllBytes(path)));
            }
        }

        return seeds;
    }

    private static byte[] RandomBytes(Random rng, int count)
    {
        var bytes = new byte[count];
        rng.NextBytes(bytes);
        return bytes;
    }

    [GeneratedRegex("[0-9]+")]
    private static partial Regex Digits();

    [GeneratedRegex("'[^']*'")]
    private static partial Regex Quoted();
}
