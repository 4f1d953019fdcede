using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using MobileOne.Classification;
using MobileOne.Cli.Rendering;
using MobileOne.Data;
using MobileOne.Data.Transforms;
using MobileOne.Imaging;
using MobileOne.Inference;
using MobileOne.IO;
using MobileOne.Tensors;

namespace MobileOne.Cli.Commands;

/// <summary>
/// `mobileone predict`: classifies image files (or every image under folders) with a checkpoint, fused, on the
/// inference engine, with timm's eval preprocessing on PIL semantics; prints the top classes, or one JSON array,
/// and optionally writes timm inference.py's CSV.
/// </summary>
internal static class PredictCommand
{
    public static Command Create()
    {
        var model = new Argument<string>("model") { Description = "Checkpoint (any supported format and scheme; fused on load). ONNX models are not supported yet." };
        var inputs = new Argument<string[]>("images") { Description = "Image files or folders (searched recursively for .jpg, .jpeg, .png, .webp, .gif, .bmp, .ico, .wbmp).", Arity = ArgumentArity.OneOrMore };
        var top = new Option<int>("--top", "--topk") { Description = "Classes to report per image.", DefaultValueFactory = _ => 5 };
        var labels = new Option<string?>("--labels") { Description = "'imagenet' (OpenCV's ImageNet-1k names), 'none', or a text file with one class name per line. Default: ImageNet for 1000 classes, Fashion-MNIST for grey 10-class models, else none." };
        var size = new Option<int?>("--img-size") { Description = "Crop size (default: the model's timm pretrained configuration, 224)." };
        var cropPct = new Option<double?>("--crop-pct") { Description = "Centre crop fraction: the shorter side is resized to floor(size / crop_pct) (default: 0.875 for S0, 0.9 for S1..S4)." };
        var interpolation = new Option<string?>("--interpolation") { Description = "Resize filter: bilinear (default) or bicubic (PIL's)." };
        var exif = new Option<bool>("--exif-transpose") { Description = "Turn photos upright by their EXIF orientation first (timm's pipeline does not)." };
        var batch = new Option<int>("--batch-size", "-b") { Description = "Images per engine run.", DefaultValueFactory = _ => 8 };
        var threads = new Option<int>("--threads", "-j") { Description = "Compute threads.", DefaultValueFactory = _ => Environment.ProcessorCount };
        var json = new Option<bool>("--json") { Description = "Print one JSON array (input order) of {path, top: [{index, label, probability, logit}]} or {path, error}; nothing else on stdout." };
        var output = new Option<string?>("--output", "-o") { Description = "Also write the predictions as CSV, in the layout of timm inference.py --results-separate-col --include-index --fullname." };
        var command = new Command("predict", "Classify images with a checkpoint: timm's eval preprocessing, the fused model on the inference engine, the top classes.");
        command.Arguments.Add(model);
        command.Arguments.Add(inputs);
        foreach (var o in new Option[] { top, labels, size, cropPct, interpolation, exif, batch, threads, json, output })
        {
            command.Options.Add(o);
        }

        CommandAction.Set(command, r =>
        {
            var settings = new PredictSettings(
                Options.Positive(r.GetValue(top), "--top"),
                Options.Positive(r.GetValue(batch), "--batch-size"),
                Options.Positive(r.GetValue(threads), "--threads"),
                r.GetValue(size) is int s ? ImageSize(s) : null,
                r.GetValue(cropPct) is double c ? CropPct(c) : null,
                r.GetValue(interpolation) is string i ? Interpolation(i) : null,
                r.GetValue(labels),
                r.GetValue(exif),
                r.GetValue(json),
                r.GetValue(output));
            return Run(r.GetValue(model)!, r.GetValue(inputs)!, settings);
        });
        return command;
    }

    internal sealed record PredictSettings(
        int Top, int BatchSize, int Threads, int? Size, double? CropPct, ResampleFilter? Interpolation, string? Labels, bool ExifTranspose, bool Json, string? Output);

    /// <summary>One input, in order: a path and either its top classes or why it failed.</summary>
    private sealed record Item(string Path, IReadOnlyList<ClassScore>? Top, string? Error);

    private static int Run(string modelPath, string[] inputs, PredictSettings settings)
    {
        var loaded = Options.LoadCheckpoint(modelPath, "predict");
        var config = loaded.Network.Config;
        var preprocessing = Preprocessing(ImagePreprocessing.ForModel(config), settings, modelPath);
        var names = ResolveLabels(settings.Labels, config.NumClasses, config.InChans);
        var clock = Stopwatch.StartNew();
        using var classifier = new ImageClassifier(loaded.Network, preprocessing, names, new InferenceOptions { Threads = settings.Threads });
        var files = ExpandInputs(inputs);
        Console.Error.WriteLine(
            $"predict: {loaded.Info.Path} ({config.Name}, {config.NumClasses} classes, {(loaded.Info.Fused ? "fused" : "fused on load")}); "
            + $"{preprocessing.Describe()}; labels: {LabelSource(settings.Labels, names)}; {files.Count(f => f.Error is null)} image(s)");

        // Each image is decoded, preprocessed into its batch slot and released at once, so memory holds one
        // decoded image and one batch of inputs whatever the number and size of the images.
        var items = new Item[files.Count];
        var decodeOptions = new ImageDecodeOptions { ApplyExifOrientation = settings.ExifTranspose };
        int side = preprocessing.InputSize, sample = classifier.SampleLength, images = files.Count(f => f.Error is null);
        int batchSize = Math.Max(1, Math.Min(settings.BatchSize, images));
        if ((long)batchSize * sample > Array.MaxLength)
        {
            throw new ArgumentException($"--batch-size {settings.BatchSize} at {side}x{side} needs {(long)batchSize * sample} input floats, more than one array holds; lower it.");
        }

        var input = new Tensor(batchSize, classifier.Channels, side, side);
        var slots = new List<int>(batchSize);
        int printed = 0, classified = 0;
        // Runs the pending batch (when asked) and prints every finished item in input order.
        void Flush(bool run)
        {
            if (run && slots.Count > 0)
            {
                var batch = slots.Count == batchSize ? input : new Tensor([slots.Count, classifier.Channels, side, side], input.Data[..(slots.Count * sample)]);
                var results = classifier.Classify(batch, settings.Top);
                for (int b = 0; b < slots.Count; b++)
                {
                    items[slots[b]] = new Item(files[slots[b]].Path, results[b], null);
                }

                classified += slots.Count;
                slots.Clear();
                if (images > batchSize)
                {
                    Console.Error.WriteLine($"predict: {classified}/{images} images");
                }
            }

            for (; printed < items.Length && items[printed] is not null; printed++)
            {
                Report(items[printed], settings);
            }
        }

        for (int i = 0; i < files.Count; i++)
        {
            var (path, error) = files[i];
            if (error is null)
            {
                try
                {
                    classifier.Preprocess(path, decodeOptions, input.Span.Slice(slots.Count * sample, sample));
                    slots.Add(i);
                }
                catch (ImageDecodeException e)
                {
                    // Undecodable, too large, or not preprocessable: this file fails, not the run.
                    error = e.Problem;
                    images--;
                }
            }

            if (error is not null)
            {
                items[i] = new Item(path, null, error);
            }

            Flush(run: slots.Count == batchSize);
        }

        Flush(run: true);
        if (settings.Json)
        {
            Console.WriteLine(ToJson(items).ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        }

        if (settings.Output is not null)
        {
            AtomicFile.WriteAllText(settings.Output, ToCsv(items, Math.Min(settings.Top, config.NumClasses), names is not null));
        }

        int failed = items.Count(item => item.Error is not null);
        Console.Error.WriteLine(
            string.Create(CultureInfo.InvariantCulture, $"predict: {items.Length - failed} classified, {failed} failed, {clock.Elapsed.TotalSeconds:0.00} s")
            + (settings.Output is null ? string.Empty : $"; wrote {settings.Output}"));
        return failed > 0 ? CommandAction.Failure : 0;
    }

    private static ImagePreprocessing Preprocessing(ImagePreprocessing defaults, PredictSettings settings, string modelPath)
    {
        var p = defaults;
        if (p.Pipeline == InputPipeline.FashionMnist)
        {
            if (settings.Size is not null || settings.CropPct is not null)
            {
                throw new ArgumentException(
                    $"{(settings.Size is not null ? "--img-size" : "--crop-pct")} does not apply to {modelPath}: it is a grey (in_chans 1) Fashion-MNIST model, "
                    + "whose inputs are 28x28 grey images padded to 32x32.");
            }
        }
        else
        {
            p = p with { Size = settings.Size ?? p.Size, CropPct = settings.CropPct ?? p.CropPct };
        }

        return (settings.Interpolation is ResampleFilter f ? p with { Interpolation = f } : p).Validate();
    }

    /// <summary>Largest --img-size: a 4096 x 4096 RGB input is 200 MB of floats per image before the engine's buffers.</summary>
    internal const int MaxImageSize = 4096;

    private static int ImageSize(int value) =>
        Options.Positive(value, "--img-size") <= MaxImageSize ? value : throw new ArgumentException($"--img-size must be at most {MaxImageSize}; got {value}.");

    private static double CropPct(double value) =>
        value > 0 && value <= 1 ? value : throw new ArgumentException($"--crop-pct must lie in (0, 1]; got {value.ToString(CultureInfo.InvariantCulture)}.");

    private static ResampleFilter Interpolation(string value) => value.ToLowerInvariant() switch
    {
        "bilinear" => ResampleFilter.Bilinear,
        "bicubic" => ResampleFilter.Bicubic,
        _ => throw new ArgumentException($"--interpolation must be bilinear or bicubic; got '{value}'."),
    };

    private static IReadOnlyList<string>? ResolveLabels(string? option, int numClasses, int inChans)
    {
        switch (option?.ToLowerInvariant())
        {
            case null:
                return ClassLabels.Default(numClasses, inChans);
            case "none":
                return null;
            case "imagenet":
                return numClasses == ClassLabels.ImageNet.Count
                    ? ClassLabels.ImageNet
                    : throw new ArgumentException($"--labels imagenet names 1000 classes but the model predicts {numClasses}.");
        }

        IReadOnlyList<string> names;
        try
        {
            names = ClassLabels.Load(option);
        }
        catch (DatasetException e)
        {
            throw new ArgumentException($"--labels {e.Message}");
        }

        return names.Count == numClasses
            ? names
            : throw new ArgumentException($"--labels {option} holds {names.Count} class names but the model predicts {numClasses} classes.");
    }

    private static string LabelSource(string? option, IReadOnlyList<string>? names) => names switch
    {
        null => "none (class indices)",
        _ when ReferenceEquals(names, ClassLabels.ImageNet) => "ImageNet-1k (OpenCV's list)",
        _ when ReferenceEquals(names, ClassLabels.FashionMnist) => "Fashion-MNIST",
        _ => option!,
    };

    /// <summary>
    /// Files as given (whatever their extension), folders expanded recursively to their image files in ordinal
    /// order of the path; a missing path or a folder without images becomes an error entry.
    /// </summary>
    private static List<(string Path, string? Error)> ExpandInputs(string[] inputs)
    {
        var files = new List<(string, string?)>();
        var extensions = new HashSet<string>(SkiaImageDecoder.Instance.Extensions, StringComparer.OrdinalIgnoreCase);
        foreach (string input in inputs)
        {
            if (File.Exists(input))
            {
                files.Add((input, null));
            }
            else if (Directory.Exists(input))
            {
                string[] found;
                try
                {
                    found = Walk(input).Where(f => extensions.Contains(Path.GetExtension(f))).Order(StringComparer.Ordinal).ToArray();
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    files.Add((input, $"the folder cannot be listed ({e.Message})"));
                    continue;
                }

                if (found.Length == 0)
                {
                    files.Add((input, $"the folder holds no images ({string.Join(", ", extensions.Order(StringComparer.Ordinal))})"));
                }

                files.AddRange(found.Select(f => (f, (string?)null)));
            }
            else
            {
                files.Add((input, "no such file or folder"));
            }
        }

        return files;
    }

    /// <summary>
    /// Every file under <paramref name="root"/>, as Python's os.walk lists them for timm: symbolic links to files
    /// are files, symbolic links to folders are not entered (so a link cycle cannot loop).
    /// </summary>
    private static IEnumerable<string> Walk(string root)
    {
        var pending = new Stack<string>([root]);
        while (pending.Count > 0)
        {
            string dir = pending.Pop();
            foreach (string file in Directory.EnumerateFiles(dir))
            {
                yield return file;
            }

            foreach (string sub in Directory.EnumerateDirectories(dir))
            {
                if (new DirectoryInfo(sub).LinkTarget is null)
                {
                    pending.Push(sub);
                }
            }
        }
    }

    /// <summary>Text mode prints each result as it comes; errors always go to stderr.</summary>
    private static void Report(Item item, PredictSettings settings)
    {
        if (item.Error is not null)
        {
            Console.Error.WriteLine($"error: {item.Path}: {item.Error}");
            return;
        }

        if (settings.Json)
        {
            return;
        }

        var text = new StringBuilder(item.Path).Append('\n');
        foreach (var score in item.Top!)
        {
            text.Append(string.Create(CultureInfo.InvariantCulture, $"  {score.Probability,8:0.0000}  {score.Logit,9:0.000}  {score.Index,5}  {score.Label}").TrimEnd()).Append('\n');
        }

        Console.Write(text.ToString());
    }

    internal static JsonArray ToJson(IEnumerable<(string Path, IReadOnlyList<ClassScore>? Top, string? Error)> items) =>
        new(items.Select(i => (JsonNode)(i.Error is null ? PredictionJson.Item(i.Path, i.Top!) : PredictionJson.Error(i.Path, i.Error))).ToArray());

    private static JsonArray ToJson(Item[] items) => ToJson(items.Select(i => (i.Path, i.Top, i.Error)));

    /// <summary>
    /// timm inference.py's CSV with --results-separate-col --include-index --fullname: filename, index_0..k-1,
    /// label_0..k-1 (when there are names), prob_0..k-1; one row per classified image, failed images left out.
    /// </summary>
    internal static string ToCsv(IEnumerable<(string Path, IReadOnlyList<ClassScore>? Top, string? Error)> items, int k, bool withLabels)
    {
        var text = new StringBuilder("filename");
        for (int i = 0; i < k; i++)
        {
            text.Append(CultureInfo.InvariantCulture, $",index_{i}");
        }

        if (withLabels)
        {
            for (int i = 0; i < k; i++)
            {
                text.Append(CultureInfo.InvariantCulture, $",label_{i}");
            }
        }

        for (int i = 0; i < k; i++)
        {
            text.Append(CultureInfo.InvariantCulture, $",prob_{i}");
        }

        text.Append('\n');
        foreach (var (path, top, error) in items)
        {
            if (error is not null || top is null)
            {
                continue;
            }

            text.Append(CsvField(path));
            foreach (var s in top)
            {
                text.Append(CultureInfo.InvariantCulture, $",{s.Index}");
            }

            if (withLabels)
            {
                foreach (var s in top)
                {
                    text.Append(',').Append(CsvField(s.Label ?? string.Empty));
                }
            }

            foreach (var s in top)
            {
                // float32 shortest round-trip, exponent as numpy writes it (3.1588646e-05).
                text.Append(',').Append(s.Probability.ToString("R", CultureInfo.InvariantCulture).Replace('E', 'e'));
            }

            text.Append('\n');
        }

        return text.ToString();
    }

    private static string ToCsv(Item[] items, int k, bool withLabels) => ToCsv(items.Select(i => (i.Path, i.Top, i.Error)), k, withLabels);

    /// <summary>RFC 4180 quoting, as pandas writes: quote fields holding a comma, quote or line break; double quotes.</summary>
    private static string CsvField(string value) =>
        value.AsSpan().IndexOfAny(",\"\r\n") >= 0 ? "\"" + value.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"" : value;
}
