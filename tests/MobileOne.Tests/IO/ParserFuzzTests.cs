using System.Diagnostics;
using System.Text;
using Microsoft.AspNetCore.Http;
using MobileOne.Classification;
using MobileOne.Cli.Serving;
using System.IO.Compression;
using System.Text.Json;
using System.Text.RegularExpressions;
using MobileOne.Data;
using MobileOne.IO;
using MobileOne.IO.Checkpoints;
using MobileOne.IO.Safetensors;
using MobileOne.Imaging;
using MobileOne.Models;
using MobileOne.Tests.Inference;
using MobileOne.Tests.Serving;

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
/// The safetensors-index target mutates the index of a sharded checkpoint (and now and then one of its shards) in a folder
/// laid out as a Hugging Face cache snapshot, with links and files around it that the index must not reach.
/// The suite runs a short smoke campaign; MOBILEONE_FUZZ_ITERATIONS
/// sets the iterations per target for a real one, MOBILEONE_FUZZ_SEED its seed (docs/reliability.md).
/// </summary>
public partial class ParserFuzzTests
{
    private const long AllocationBudget = 256L << 20;

    /// <summary>
    /// Slack on top of an image's pixel buffers, for everything else a decode allocates (the codec, the file's bytes, a
    /// 16-bit PNG's image data, the classifier's resized copies).
    /// </summary>
    private const long ImageSlack = 64L << 20;

    private static readonly TimeSpan TimeBudget = TimeSpan.FromSeconds(2);

    public static TheoryData<string> Targets => new() { "safetensors", "torch-zip", "pickle", "idx", "onnx", "image", "upload", "safetensors-index" };

    [Theory]
    [MemberData(nameof(Targets))]
    public void Mutated_checkpoints_are_loaded_or_refused_with_a_checkpoint_error(string target)
    {
        int iterations = int.TryParse(Environment.GetEnvironmentVariable("MOBILEONE_FUZZ_ITERATIONS"), out int n) && n > 0 ? n : 300;
        using var temp = new TempDir();
        using var index = target == "safetensors-index" ? new IndexTarget() : null;
        var seeds = index?.Seeds ?? Seeds(temp.Path, target);
        string scratch = index?.IndexPath ?? Path.Combine(Directory.Exists("/dev/shm") ? "/dev/shm" : temp.Path, $"fuzz-{Guid.NewGuid():N}{Extension(target)}");
        // A fixed seed per target (MOBILEONE_FUZZ_SEED changes it), so a campaign's inputs can be drawn again: string
        // hashes are randomised per process and made every run different.
        int seed = (int.TryParse(Environment.GetEnvironmentVariable("MOBILEONE_FUZZ_SEED"), out int s) ? s : 20261204) ^ StableHash(target);
        var rng = new Random(seed);
        var outcomes = new Dictionary<string, int>();
        var findings = new List<string>();
        (long Bytes, string Input, byte[] File) largest = (0, string.Empty, []);
        using var upload = target == "upload" ? new UploadTarget() : null;

        // MOBILEONE_FUZZ_CORPUS=DIR replays DIR's files (sorted by name) instead of mutating the seeds: an AFL++ campaign's
        // queue, written out whole by `MobileOne.Fuzz materialize` (tools/fuzz), measured under coverage like this
        // fuzzer's own runs.
        string[] corpus = Environment.GetEnvironmentVariable("MOBILEONE_FUZZ_CORPUS") is { Length: > 0 } corpusDir && index is null && upload is null
            ? [.. Directory.GetFiles(corpusDir).Order(StringComparer.Ordinal)]
            : [];
        iterations = corpus.Length > 0 ? corpus.Length : iterations;
        var clock = Stopwatch.StartNew();
        try
        {
            for (int i = 0; i < iterations && findings.Count < 5; i++)
            {
                byte[] input = corpus.Length > 0 ? File.ReadAllBytes(corpus[i])
                    : target == "pickle" ? PickleInZip(seeds, rng)
                    : index is not null ? index.Next(rng)
                    : Mutate(seeds[rng.Next(seeds.Count)].Bytes, seeds, rng);
                File.WriteAllBytes(scratch, input);
                string outcome = LoadOnce(scratch, target, i, upload, out string? finding, out long allocated);
                finding ??= outcome == "loaded" ? index?.ShardOutside(input) : null;
                if (allocated > largest.Bytes)
                {
                    largest = (allocated, $"{index?.Describe() ?? Describe(input, target)}, {input.Length} bytes: {outcome}", input);
                }

                outcomes[outcome] = outcomes.GetValueOrDefault(outcome) + 1;
                if (finding is not null)
                {
                    // Next to the campaign's log when there is one: the temporary folder goes away with the test.
                    string folder = Environment.GetEnvironmentVariable("MOBILEONE_FUZZ_LOG") is { Length: > 0 } logFile
                        ? Path.GetDirectoryName(Path.GetFullPath(logFile))!
                        : temp.Path;
                    string kept = Path.Combine(folder, $"finding-{target}-{findings.Count}{Extension(target)}");
                    File.Copy(scratch, kept, overwrite: true);
                    index?.KeepShard(kept);
                    findings.Add($"{finding} (input kept as {kept})");
                }
            }
        }
        finally
        {
            File.Delete(scratch);
        }

        if (index?.Unexpected() is { } unexpected)
        {
            findings.Add(unexpected);
        }

        if (Environment.GetEnvironmentVariable("MOBILEONE_FUZZ_LOG") is { Length: > 0 } log)
        {
            // The input that allocated most is kept too: what a budget would have to allow.
            File.WriteAllBytes(Path.Combine(Path.GetDirectoryName(Path.GetFullPath(log))!, $"largest-{target}{Extension(target)}"), largest.File);
            File.AppendAllLines(log,
            [
                $"target {target}: {iterations} inputs (seed {seed}) in {clock.Elapsed.TotalSeconds:F1} s, {outcomes.Count} distinct outcomes, {findings.Count} findings",
                $"  largest allocation {largest.Bytes / 1e6:F1} MB ({largest.Input})",
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
    /// Loads one input as a model (or, for IDX, as images on even iterations and labels on odd ones; an image is decoded
    /// as predict does, an upload is read and preprocessed as serve does); returns its outcome class and sets
    /// <paramref name="finding"/> when the oracle is broken.
    /// </summary>
    private static string LoadOnce(string path, string target, int iteration, UploadTarget? upload, out string? finding, out long allocated)
    {
        finding = null;
        byte[] input = target is "image" or "upload" ? File.ReadAllBytes(path) : [];
        long budget = AllocationBudget, decodedPixels = 0;
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
                budget = ImageBudget(input, IImageDecoder.MaxPixels);
                using var image = SkiaImageDecoder.Instance.Decode(path, channels: 3);
                decodedPixels = (long)image.Width * image.Height;
            }
            else if (target == "upload")
            {
                decodedPixels = upload!.Run(input, out budget);
            }
            else
            {
                ModelCheckpoint.Load(path);
            }

            outcome = "loaded";
        }
        catch (RequestRejectedException e) when (e.Status is StatusCodes.Status400BadRequest or StatusCodes.Status413PayloadTooLarge or StatusCodes.Status415UnsupportedMediaType)
        {
            outcome = $"refused {e.Status}: " + Mask(e.Message);
        }
        catch (Exception e) when (e is CheckpointException or DatasetException or ImageDecodeException)
        {
            // Numbers and quoted names vary with the mutation; the rest of the message is the kind of refusal. A sharded
            // checkpoint's messages name files in the campaign folder (its name varies), shard names garbled or not.
            string message = e.Message[(e.Message.IndexOf(':', StringComparison.Ordinal) + 1)..];
            message = target == "safetensors-index" ? CampaignFolder().Replace(message, "…") : message;
            outcome = (target == "upload" ? "refused 400: " : "refused: ") + Mask(message);
        }
        catch (Exception e)
        {
            outcome = "FINDING " + e.GetType().Name;
            finding = $"{e.GetType().FullName}: {e.Message}{Environment.NewLine}{e.StackTrace}";
        }

        allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        // What the input cost the reader; the soundness check below decodes a refused file once more without the bound
        // (up to the whole declared screen), which is the test's own work and must not count against the reader.
        var elapsed = clock.Elapsed;
        if (target == "image" && outcome.Contains("can hold:", StringComparison.Ordinal) && !outcome.Contains("a JPEG", StringComparison.Ordinal))
        {
            // Soundness of the size bound: a file it refuses must not decode without it. JPEG is left out: libjpeg
            // fills a scan that ends early, so it decodes files that cannot be valid (docs/reliability.md).
            try
            {
                using var image = SkiaImageDecoder.Instance.Decode(input, path, 3, new ImageDecodeOptions { CheckEncodedSize = false });
                finding ??= $"the size bound refused a file that decodes to {image.Width}x{image.Height} ({outcome})";
            }
            catch (ImageDecodeException)
            {
                // refused by the decoder as well
            }
        }

        // A decoded image's 3-channel copy comes from the shared pool, which rounds it up to a power of two (at most 6
        // bytes a pixel).
        budget += 6 * decodedPixels;
        if (elapsed > TimeBudget || allocated > budget)
        {
            finding ??= $"over budget: {elapsed.TotalSeconds:F2} s, {allocated >> 20} MB allocated of {budget >> 20} MB ({outcome})";
        }

        return outcome;
    }

    private static string Mask(string message)
    {
        // The multipart reader quotes a bad header line and the upload a content type that does not parse: whatever
        // the mutation made of them.
        int quoted = message.IndexOf("Invalid header line:", StringComparison.Ordinal);
        message = quoted >= 0 ? message[..quoted] + "Invalid header line: …)" : message;
        message = message.StartsWith("the content type '", StringComparison.Ordinal) && message.EndsWith("' does not parse.", StringComparison.Ordinal)
            ? "the content type '…' does not parse."
            : message;
        string masked = Digits().Replace(Quoted().Replace(message, "'…'"), "#");
        return masked[..Math.Min(masked.Length, 120)];
    }

    /// <summary>
    /// What decoding <paramref name="encoded"/> may allocate: its RGBA buffer for the most pixels a file of its length
    /// and format can declare (EncodedSizeBound; docs/reliability.md), up to <paramref name="maxPixels"/>, and
    /// <see cref="ImageSlack"/>. The ratios are the formats' largest expansions, written out here rather than taken
    /// from the decoder: PNG 8 pixels a byte (1 bit) x deflate's 1032:1; Huffman-coded JPEG one bit per 8x8 block, 512
    /// pixels a byte. GIF (a screen larger than its first frame costs no data), arithmetic JPEG (any SOF9-15 marker in
    /// the file) and other formats may declare up to the pixel limit.
    /// </summary>
    internal static long ImageBudget(ReadOnlySpan<byte> encoded, long maxPixels)
    {
        long perByte = maxPixels;
        if (encoded.StartsWith((ReadOnlySpan<byte>)[0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A]))
        {
            perByte = 8 * 1032;
        }
        else if (encoded.StartsWith((ReadOnlySpan<byte>)[0xFF, 0xD8, 0xFF]) && !HasArithmeticFrame(encoded))
        {
            perByte = 512;
        }

        return ImageSlack + (4 * Math.Min(maxPixels, perByte * encoded.Length));

        static bool HasArithmeticFrame(ReadOnlySpan<byte> jpeg)
        {
            for (int i = 0; i + 1 < jpeg.Length; i++)
            {
                if (jpeg[i] == 0xFF && jpeg[i + 1] is 0xC9 or 0xCA or 0xCB or 0xCD or 0xCE or 0xCF)
                {
                    return true;
                }
            }

            return false;
        }
    }

    /// <summary>A short description of an input for the campaign log: an upload's content type, an image's format.</summary>
    private static string Describe(byte[] input, string target)
    {
        var span = input.AsSpan();
        if (target == "upload")
        {
            int newline = span.IndexOf((byte)'\n');
            return $"content type '{UploadTarget.HeaderText(span[..Math.Max(0, Math.Min(newline, 60))])}'";
        }

        return span.StartsWith("GIF"u8) ? "GIF"
            : span.StartsWith((ReadOnlySpan<byte>)[0xFF, 0xD8]) ? "JPEG"
            : span.Length > 4 && span[1..4].SequenceEqual("PNG"u8) ? "PNG"
            : "other";
    }

    /// <summary>FNV-1a of the name: the same number in every process.</summary>
    private static int StableHash(string name)
    {
        uint h = 2166136261;
        foreach (char c in name)
        {
            h = (h ^ c) * 16777619;
        }

        return (int)h;
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
        "upload" => ".upload",
        "safetensors-index" => ".safetensors.index.json",
        _ => ".pth",
    };

    /// <summary>Small valid checkpoints of two custom models, or IDX files, written by the library in the target's format.</summary>
    /// <summary>An uncompressed 24-bit BMP of <paramref name="image"/>: rows bottom-up, BGR, each padded to 4 bytes.</summary>
    private static byte[] Bmp24(SkiaSharp.SKBitmap image)
    {
        int w = image.Width, h = image.Height, stride = ((3 * w) + 3) & ~3;
        var data = new byte[stride * h];
        for (int y = 0; y < h; y++)
        {
            for (int x = 0; x < w; x++)
            {
                var c = image.GetPixel(x, y);
                int at = ((h - 1 - y) * stride) + (3 * x);
                (data[at], data[at + 1], data[at + 2]) = (c.Blue, c.Green, c.Red);
            }
        }

        return MobileOne.Tests.Imaging.EncodedSizeBoundTests.Bmp(w, h, bitCount: 24, compression: 0, palette: [], data);
    }

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

            // WebP (lossy and lossless) and BMP, which the decoder and its size bound also read: without seeds of their
            // own the mutations never reached their header checks (coverage, docs/reliability.md).
            using var rgb = SkiaSharp.SKBitmap.Decode(Path.Combine(AppContext.BaseDirectory, "Predict", "Images", "rgb.png"));
            using var pixmap = rgb.PeekPixels();
            using (var lossy = pixmap.Encode(new SkiaSharp.SKWebpEncoderOptions(SkiaSharp.SKWebpEncoderCompression.Lossy, 80)))
            using (var lossless = pixmap.Encode(new SkiaSharp.SKWebpEncoderOptions(SkiaSharp.SKWebpEncoderCompression.Lossless, 100)))
            {
                seeds.Add(("rgb-lossy.webp", lossy!.ToArray()));
                seeds.Add(("rgb-lossless.webp", lossless!.ToArray()));
            }

            seeds.Add(("rgb24.bmp", Bmp24(rgb)));
            return seeds;
        }

        if (target == "upload")
        {
            return UploadTarget.Seeds();
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

    [GeneratedRegex(@"\S*fuzz-[0-9a-f]{32}\S*")]
    private static partial Regex CampaignFolder();

    /// <summary>
    /// The upload target: an input is a content type line (empty: no Content-Type header) and a request body, read by
    /// the server's <see cref="ImageUpload.ReadAsync"/> from a <see cref="DefaultHttpContext"/> and preprocessed as the
    /// server does (<see cref="ClassifierImages.Preprocess(ImageClassifier, byte[], string, ImageDecodeOptions, Span{float})"/>,
    /// the default pixel limit of serve). Kestrel is not in the loop: it refuses header values outside printable ASCII
    /// and enforces Content-Length before the handler reads, so content types are reduced to printable ASCII and a
    /// body is as long as it says. The input's length picks how the body arrives (so a kept finding replays alike):
    /// with a Content-Length, chunked (none), or with a Content-Length under a 1 KiB upload limit.
    /// </summary>
    internal sealed class UploadTarget : IDisposable
    {
        private readonly ImageClassifier classifier = ServeHarness.NewClassifier();
        private readonly ImageDecodeOptions options = new() { MaxPixels = ServeOptions.DefaultMaxPixels };
        private readonly float[] sample;

        public UploadTarget() => sample = new float[classifier.SampleLength];

        /// <summary>Reads and preprocesses one input; returns the decoded image's pixels and what the input may allocate.</summary>
        public long Run(byte[] input, out long budget)
        {
            int newline = Array.IndexOf(input, (byte)'\n');
            string contentType = HeaderText(input.AsSpan(0, Math.Max(newline, 0)));
            byte[] body = input[(newline + 1)..];
            var request = new DefaultHttpContext().Request;
            request.Method = "POST";
            if (contentType.Length > 0)
            {
                request.ContentType = contentType;
            }

            request.Body = new MemoryStream(body, writable: false);
            int mode = input.Length % 3;
            if (mode != 1)
            {
                request.ContentLength = body.Length;
            }

            // The body twice (the upload buffer grows by doubling) and the multipart reader's buffers.
            budget = ImageSlack + (4L * body.Length);
            var (bytes, name) = ImageUpload.ReadAsync(request, mode == 2 ? 1024 : new ServeOptions().MaxUploadBytes, CancellationToken.None).GetAwaiter().GetResult();
            budget = ImageBudget(bytes, options.MaxPixels) + (4L * body.Length);
            classifier.Preprocess(bytes, name, options, sample);
            using var codec = SkiaSharp.SKCodec.Create(new SkiaSharp.SKMemoryStream(bytes));
            return (long)codec.Info.Width * codec.Info.Height;
        }

        /// <summary>A header value as Kestrel lets it through: printable ASCII (and tabs), surrounding whitespace trimmed.</summary>
        public static string HeaderText(ReadOnlySpan<byte> bytes)
        {
            var text = new StringBuilder(bytes.Length);
            foreach (byte b in bytes)
            {
                text.Append(b is (>= 0x20 and < 0x7F) or (byte)'\t' ? (char)b : '?');
            }

            return text.ToString().Trim();
        }

        /// <summary>
        /// Raw bodies of several images under accepted and refused content types, and multipart bodies: plain, quoted and
        /// 70-character boundaries, other fields before the file, a part type that is not an image, no part type, an RFC
        /// 5987 file name, no file field, an empty file, LF line ends, a preamble and an epilogue, no closing boundary.
        /// </summary>
        public static List<(string Name, byte[] Bytes)> Seeds()
        {
            string images = Path.Combine(AppContext.BaseDirectory, "Predict", "Images");
            var files = new[] { "rgb.png", "rgb.jpg", "palette.gif", "tiny1x1.png", "gray.jpg", "progressive.jpg", "bw1.png" }
                .Select(f => (Name: f, Bytes: File.ReadAllBytes(Path.Combine(images, f)))).ToList();
            var seeds = new List<(string, byte[])>();
            void Add(string name, string contentType, params byte[][] body) =>
                seeds.Add((name, [.. Encoding.ASCII.GetBytes(contentType + "\n"), .. body.SelectMany(b => b)]));
            byte[] Ascii(string text) => Encoding.ASCII.GetBytes(text);

            string[] rawTypes = ["image/png", "image/jpeg", "application/octet-stream", "IMAGE/GIF; q=1", "image/*", "", "text/plain", "application/json; charset=utf-8"];
            for (int i = 0; i < files.Count; i++)
            {
                Add($"raw-{files[i].Name}", rawTypes[i % rawTypes.Length], files[i].Bytes);
                Add($"raw-{files[i].Name}-2", rawTypes[(i + 3) % rawTypes.Length], files[i].Bytes);
            }

            string longBoundary = new('b', 70);
            var forms = new (string ContentType, string Boundary, string Line, bool Close, string Part)[]
            {
                ("multipart/form-data; boundary=XyZ123", "XyZ123", "\r\n", true, "Content-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\nContent-Type: image/png"),
                ("multipart/form-data; boundary=\"quoted boundary:=x\"", "quoted boundary:=x", "\r\n", true, "Content-Disposition: form-data; name=\"file\"; filename*=UTF-8''%C3%A9t%C3%A9.jpg"),
                ("Multipart/Form-Data; charset=utf-8; BOUNDARY=----WebKitFormBoundary7MA4YWxkTrZu0gW", "----WebKitFormBoundary7MA4YWxkTrZu0gW", "\r\n", true, "Content-Disposition: form-data; name=file"),
                ($"multipart/form-data; boundary={longBoundary}", longBoundary, "\r\n", true, "Content-Disposition: form-data; name=\"file\"; filename=\"../../x.gif\"\r\nContent-Type: application/octet-stream"),
                ("multipart/form-data; boundary=LF", "LF", "\n", true, "Content-Disposition: form-data; name=\"file\"; filename=\"lf.png\""),
                ("multipart/form-data; boundary=open", "open", "\r\n", false, "Content-Disposition: form-data; name=\"file\"; filename=\"open.png\""),
                ("multipart/form-data; boundary=text", "text", "\r\n", true, "Content-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\nContent-Type: text/plain"),
                ("multipart/form-data; boundary=nofile", "nofile", "\r\n", true, "Content-Disposition: form-data; name=\"image\"; filename=\"a.png\""),
                ("multipart/form-data; boundary=" + longBoundary + "b", longBoundary + "b", "\r\n", true, "Content-Disposition: form-data; name=\"file\""),
                ("multipart/form-data", "none", "\r\n", true, "Content-Disposition: form-data; name=\"file\""),
            };
            for (int i = 0; i < forms.Length; i++)
            {
                var (contentType, boundary, line, close, part) = forms[i];
                var file = files[i % files.Count].Bytes;
                string preamble = i % 3 == 0 ? "a preamble" + line : string.Empty;
                string other = $"--{boundary}{line}Content-Disposition: form-data; name=\"note\"{line}{line}hello{line}";
                Add($"form-{i}", contentType,
                    Ascii(preamble + (i % 2 == 0 ? other : string.Empty) + $"--{boundary}{line}{part.Replace("\r\n", line, StringComparison.Ordinal)}{line}{line}"),
                    file,
                    Ascii(close ? $"{line}--{boundary}--{line}" + (i % 4 == 0 ? "an epilogue" : string.Empty) : string.Empty));
            }

            Add("form-empty-file", "multipart/form-data; boundary=e", Ascii("--e\r\nContent-Disposition: form-data; name=\"file\"; filename=\"e.png\"\r\n\r\n\r\n--e--\r\n"));
            Add("form-two-files", "multipart/form-data; boundary=two", Ascii("--two\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n"), files[3].Bytes,
                Ascii("\r\n--two\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n"), files[0].Bytes, Ascii("\r\n--two--\r\n"));
            return seeds;
        }

        public void Dispose() => classifier.Dispose();
    }

    /// <summary>
    /// The safetensors-index target: sharded checkpoints (2-3 shards each, <see cref="SafetensorsWriter.WriteSharded"/>)
    /// of the checkpoint seeds' models, all in one campaign folder laid out as a Hugging Face cache snapshot
    /// (<c>root/models--fuzz/snapshots/rev</c>): one seed's first shard is a link into the repository's <c>blobs</c>, as
    /// the cache stores it. Next to the shards sit a link to a checkpoint outside the folder, a link to itself, a
    /// dangling link and a folder named like a shard; the outside checkpoint is a copy of a shard, so an index that
    /// reaches it could load. An input is an index (written as <see cref="IndexPath"/>) mutated byte by byte or as JSON
    /// (tensors pointed to other shards, missing ones, <c>../</c> and absolute paths, the links, names holding a NUL; entries duplicated,
    /// dropped, added (now and then more than the reader accepts), renamed; now and then a value of millions of numbers; metadata out of range or conflicting with the shards'; values of the wrong kind, nested
    /// deeper than the parser allows); one input in eight also mutates one of the index's shards in place, put back
    /// before the next. Only <see cref="IndexPath"/> and the shards are written, all inside the campaign folder.
    /// </summary>
    internal sealed class IndexTarget : IDisposable
    {
        private readonly string root = Path.Combine(Directory.Exists("/dev/shm") ? "/dev/shm" : Path.GetTempPath(), $"fuzz-{Guid.NewGuid():N}");
        private readonly string folder, blobs;
        private readonly List<(string Path, byte[] Bytes)> shards = [];
        private readonly List<(List<(string Key, string Raw)> Top, List<(string Key, string Raw)> Map, int[] Shards)> parsed = [];
        private readonly List<string> names = [];
        private readonly string[] listing;
        private (string Path, byte[] Bytes)? mutated;
        private string description = string.Empty;

        public IndexTarget()
        {
            folder = Path.Combine(root, "models--fuzz", "snapshots", "rev");
            blobs = Path.Combine(root, "models--fuzz", "blobs");
            Directory.CreateDirectory(folder);
            Directory.CreateDirectory(blobs);
            string[] configs = ["units=1/1/1/1,widths=0.25/0.25/0.25/0.25,k=2,classes=3", "units=1/1/1/1,widths=0.25/0.25/0.25/0.25,k=1,se=0/0/0/1,classes=2,in_chans=1"];
            var shardNames = new List<string>();
            for (int i = 0; i < configs.Length; i++)
            {
                var fused = EngineTestSupport.RandomFused(MobileOneConfig.Parse(configs[i]), i);
                var trainTime = MobileOneNetwork.Create(MobileOneConfig.Parse(configs[i]));
                foreach (var (model, dtype) in new[] { (fused, DType.F32), (trainTime, i == 1 ? DType.F16 : DType.F32) })
                {
                    var file = ModelCheckpoint.ToTensorFile(model, KeyLayout.Timm, dtype);
                    string prefix = $"seed{Seeds.Count}";
                    string indexPath = Path.Combine(folder, prefix + SafetensorsFormat.IndexSuffix);
                    SafetensorsWriter.WriteSharded(indexPath, file, (file.Tensors.Sum(t => (long)t.Value.Data.Length) / (2 + (Seeds.Count % 2))) + 1);
                    Seeds.Add((indexPath, File.ReadAllBytes(indexPath)));
                    foreach (string shard in Directory.GetFiles(folder, prefix + "-*.safetensors").Order(StringComparer.Ordinal))
                    {
                        shardNames.Add(Path.GetFileName(shard));
                        shards.Add((shard, File.ReadAllBytes(shard)));
                    }
                }
            }

            // The Hugging Face cache: snapshots/<revision>/<file> links to blobs/<hash>, which the reader accepts.
            string blob = Path.Combine(blobs, "0123456789abcdef0123456789abcdef01234567");
            File.Move(shards[0].Path, blob);
            File.CreateSymbolicLink(shards[0].Path, Path.Combine("..", "..", "blobs", Path.GetFileName(blob)));
            shards[0] = (blob, shards[0].Bytes);

            // What an index must not reach: a checkpoint outside the folder (a copy of the last seed's first shard), a link
            // to it, a link to itself, a dangling link, a folder.
            string outside = Path.Combine(root, "outside.safetensors");
            File.WriteAllBytes(outside, shards.First(s => Path.GetFileName(s.Path).StartsWith($"seed{Seeds.Count - 1}-", StringComparison.Ordinal)).Bytes);
            File.CreateSymbolicLink(Path.Combine(folder, "outside-link.safetensors"), outside);
            File.CreateSymbolicLink(Path.Combine(folder, "loop.safetensors"), "loop.safetensors");
            File.CreateSymbolicLink(Path.Combine(folder, "dangling.safetensors"), "missing.safetensors");
            Directory.CreateDirectory(Path.Combine(folder, "dir.safetensors"));

            names.AddRange(shardNames);
            names.AddRange(
            [
                "seed0-00009-of-00003.safetensors", "../../../outside.safetensors", "../outside.safetensors", outside, Path.Combine(folder, shardNames[1]),
                Path.Combine("..", "..", "blobs", Path.GetFileName(blob)), "outside-link.safetensors", "loop.safetensors", "dangling.safetensors",
                "dir.safetensors", "./" + shardNames[2], "../rev/" + shardNames[2], "dir.safetensors/../" + shardNames[2], shardNames[1].ToUpperInvariant(),
                shardNames[1] + " ", shardNames[1] + "\0", "\0", "seed0" + SafetensorsFormat.IndexSuffix, Path.GetFileName(IndexPath), ".", "..", "/", string.Empty,
            ]);
            foreach (var (_, bytes) in Seeds)
            {
                using var doc = JsonDocument.Parse(bytes);
                var top = new List<(string, string)>();
                var map = new List<(string, string)>();
                foreach (var p in doc.RootElement.EnumerateObject())
                {
                    top.Add((Quote(p.Name), p.Value.GetRawText()));
                    if (p.Name == "weight_map")
                    {
                        map.AddRange(p.Value.EnumerateObject().Select(e => (Quote(e.Name), e.Value.GetRawText())));
                    }
                }

                var own = map.Select(e => JsonSerializer.Deserialize<string>(e.Item2)!).Distinct().Select(n => shardNames.IndexOf(n)).ToArray();
                parsed.Add((top, map, own));
            }

            listing = List();
        }

        /// <summary>The seeds' index files.</summary>
        public List<(string Name, byte[] Bytes)> Seeds { get; } = [];

        /// <summary>Where each input is written: next to the shards.</summary>
        public string IndexPath => Path.Combine(folder, "fuzz" + SafetensorsFormat.IndexSuffix);

        /// <summary>The next input: an index, mutated byte by byte, as JSON or both; one in eight mutates one of its shards too.</summary>
        public byte[] Next(Random rng)
        {
            if (mutated is { } previous)
            {
                File.WriteAllBytes(previous.Path, previous.Bytes);
                mutated = null;
            }

            int seed = rng.Next(Seeds.Count);
            int how = rng.Next(8);
            byte[] index = how < 3 ? Mutate(Seeds[seed].Bytes, Seeds, rng) : MutateJson(seed, rng);
            index = how == 7 ? Mutate(index, Seeds, rng) : index;
            description = how < 3 ? "bytes" : how == 7 ? "JSON and bytes" : "JSON";
            if (rng.Next(8) == 0)
            {
                var own = parsed[seed].Shards;
                var shard = shards[own[rng.Next(own.Length)]];
                File.WriteAllBytes(shard.Path, Mutate(shard.Bytes, shards, rng));
                mutated = shard;
                description += $", shard {Path.GetFileName(shard.Path)} mutated";
            }

            return index;
        }

        /// <summary>How the last input was made, for the campaign log.</summary>
        public string Describe() => $"index of {description}";

        /// <summary>Keeps the mutated shard of a finding next to its index.</summary>
        public void KeepShard(string kept)
        {
            if (mutated is { } shard)
            {
                File.Copy(shard.Path, $"{kept}.{Path.GetFileName(shard.Path)}", overwrite: true);
            }
        }

        /// <summary>
        /// For an index that loaded: the shard it names (after links) outside the folder and the repository's blobs, if
        /// any; every shard the index names has been read, so such an index read a file it must not.
        /// </summary>
        public string? ShardOutside(byte[] index)
        {
            try
            {
                using var doc = JsonDocument.Parse(index.AsMemory(index.AsSpan().StartsWith((ReadOnlySpan<byte>)[0xEF, 0xBB, 0xBF]) ? 3 : 0));
                foreach (var p in doc.RootElement.GetProperty("weight_map").EnumerateObject())
                {
                    string full = Path.GetFullPath(Path.Combine(folder, p.Value.GetString()!));
                    string real = File.ResolveLinkTarget(full, returnFinalTarget: true)?.FullName ?? full;
                    if (!real.StartsWith(folder + Path.DirectorySeparatorChar, StringComparison.Ordinal) && !real.StartsWith(blobs + Path.DirectorySeparatorChar, StringComparison.Ordinal))
                    {
                        return $"loaded an index whose shard '{p.Value.GetString()}' is {real}, outside {folder}";
                    }
                }
            }
            catch (Exception e) when (e is JsonException or InvalidOperationException or KeyNotFoundException or IOException or ArgumentException)
            {
                return $"loaded an index that does not parse here: {e.Message}";
            }

            return null;
        }

        /// <summary>After a campaign: what appeared in, or went from, the campaign folder (the fuzzer writes only the index).</summary>
        public string? Unexpected()
        {
            var now = List().Where(p => p != IndexPath).ToArray();
            var changed = now.Except(listing).Concat(listing.Except(now)).ToList();
            return changed.Count == 0 ? null : $"the campaign folder changed: {string.Join(", ", changed)}";
        }

        public void Dispose()
        {
            try
            {
                Directory.Delete(root, recursive: true);
            }
            catch (IOException)
            {
            }
        }

        private string[] List() =>
            [.. Directory.EnumerateFileSystemEntries(root, "*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0 }).Order(StringComparer.Ordinal)];

        private static string Quote(string text) => JsonSerializer.Serialize(text);

        /// <summary>One to three structural mutations of a seed's index, written back as JSON (duplicates and all).</summary>
        private byte[] MutateJson(int seed, Random rng)
        {
            var top = parsed[seed].Top.ToList();
            var map = parsed[seed].Map.ToList();
            string? mapRaw = null;
            string Tensor() => map.Count > 0 ? map[rng.Next(map.Count)].Key : Quote("x");
            string Shard() => Quote(names[rng.Next(names.Count)]);
            string Odd() => rng.Next(12) switch
            {
                0 => "null",
                1 => "[]",
                2 => "{}",
                3 => "\"\"",
                4 => "-1",
                5 => "1e400",
                6 => "99999999999999999999999999",
                7 => "1.5",
                8 => "\"\\ud800\"",
                9 => Nested(rng),
                10 => "true",
                _ => "\"pt\"",
            };
            int rounds = 1 + rng.Next(3);
            for (int r = 0; r < rounds; r++)
            {
                int at = map.Count > 0 ? rng.Next(map.Count) : 0;
                switch (rng.Next(12))
                {
                    case 0 when map.Count > 1:
                        int other = rng.Next(map.Count);
                        (map[at], map[other]) = ((map[at].Key, map[other].Raw), (map[other].Key, map[at].Raw));
                        break;
                    case 1 when map.Count > 0:
                        map[at] = (map[at].Key, Shard());
                        break;
                    case 2 when map.Count > 0:
                        map.Insert(rng.Next(map.Count + 1), (map[at].Key, rng.Next(2) == 0 ? map[at].Raw : Shard()));
                        break;
                    case 3 when map.Count > 0:
                        map.RemoveAt(at);
                        break;
                    case 4 when rng.Next(256) == 0:
                        // More tensors than the reader accepts, all given to one shard.
                        string one = map.Count > 0 ? map[0].Raw : Shard();
                        map.AddRange(Enumerable.Range(0, SafetensorsFormat.MaxTensors + 1).Select(i => (Quote($"extra.{i}"), one)));
                        break;
                    case 4:
                        map.Insert(rng.Next(map.Count + 1), (rng.Next(2) == 0 ? Quote("extra.weight") : Tensor(), Shard()));
                        break;
                    case 5 when map.Count > 0:
                        string[] keys = [map[at].Key[..^1] + "x\"", Quote(string.Empty), "\"\\ud800\"", "\"\\u0000\"", Quote("__metadata__"), Parsed(rng.Next(parsed.Count))];
                        map[at] = (keys[rng.Next(keys.Length)], map[at].Raw);
                        break;
                    case 6 when map.Count > 0:
                        map[at] = (map[at].Key, Odd());
                        break;
                    case 7:
                        // total_size out of range, string metadata that agrees or conflicts with the shards', metadata of the wrong kind.
                        string[] metadata =
                        [
                            $"{{\"total_size\":{Odd()}}}", "{\"format\":\"pt\"}", "{\"format\":\"np\"}", "{\"total_size\":\"1\",\"format\":\"pt\",\"extra\":\"x\"}",
                            "{\"format\":\"pt\",\"format\":\"np\"}", Odd(),
                        ];
                        int existing = top.FindIndex(t => t.Key == "\"metadata\"");
                        (string, string) entry = ("\"metadata\"", metadata[rng.Next(metadata.Length)]);
                        if (existing >= 0 && rng.Next(4) != 0)
                        {
                            top[existing] = entry;
                        }
                        else
                        {
                            top.Insert(rng.Next(top.Count + 1), entry);
                        }

                        break;
                    case 8:
                        mapRaw = rng.Next(3) == 0 ? Nested(rng) : Odd();
                        break;
                    case 9:
                        // weight_map twice, gone, or the root not an object.
                        int weights = top.FindIndex(t => t.Key == "\"weight_map\"");
                        switch (rng.Next(3))
                        {
                            case 0 when weights >= 0:
                                top.Insert(rng.Next(top.Count + 1), top[weights]);
                                break;
                            case 1 when weights >= 0:
                                top.RemoveAt(weights);
                                break;
                            default:
                                return Encoding.UTF8.GetBytes(Odd());
                        }

                        break;
                    case 10:
                        top.Insert(rng.Next(top.Count + 1), (Quote(rng.Next(2) == 0 ? "extra" : "Weight_map"), rng.Next(512) == 0 ? Wide(rng) : Odd()));
                        break;
                    default:
                        // Another seed's tensor names in this seed's shards.
                        var from = parsed[rng.Next(parsed.Count)].Map;
                        var taken = from[rng.Next(from.Count)];
                        map.Insert(rng.Next(map.Count + 1), rng.Next(2) == 0 ? taken : (taken.Key, map.Count > 0 ? map[at].Raw : Shard()));
                        break;
                }
            }

            var json = new StringBuilder("{");
            foreach (var (key, raw) in top)
            {
                json.Append(json.Length > 1 ? "," : string.Empty).Append(key).Append(':');
                json.Append(key == "\"weight_map\"" ? mapRaw ?? "{" + string.Join(",", map.Select(e => $"{e.Key}:{e.Raw}")) + "}" : raw);
            }

            return Encoding.UTF8.GetBytes(json.Append('}').ToString());

            string Parsed(int other) => parsed[other].Map[rng.Next(parsed[other].Map.Count)].Key;
        }

        /// <summary>
        /// An array of 1,000 to 8 million zeros (16 MB): 4 million is under the reader's count of JSON values
        /// (<see cref="SafetensorsFormat.MaxHeaderTokens"/>), 8 million over. The first campaign drew up to 32 million
        /// (64 MB), which found the index parsed before its values were counted.
        /// </summary>
        private static string Wide(Random rng)
        {
            int count = new[] { 1000, 100_000, 4_000_000, 1 << 23 }[rng.Next(4)];
            return new StringBuilder(2 * count).Append('[').Insert(1, "0,", count - 1).Append("0]").ToString();
        }

        /// <summary>Arrays or objects nested 2 to 100,000 deep (the JSON reader allows 64).</summary>
        private static string Nested(Random rng)
        {
            int depth = new[] { 2, 63, 64, 65, 1000, 100_000 }[rng.Next(6)];
            bool objects = rng.Next(2) == 0;
            var text = new StringBuilder();
            for (int i = 0; i < depth; i++)
            {
                text.Append(objects ? "{\"a\":" : "[");
            }

            text.Append('1');
            for (int i = 0; i < depth; i++)
            {
                text.Append(objects ? '}' : ']');
            }

            return text.ToString();
        }
    }
}
