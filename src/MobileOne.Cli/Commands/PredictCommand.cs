using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using MobileOne.Classification;
using MobileOne.Cli.Rendering;
using MobileOne.Data;
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
    /// <summary>The command, its arguments and options (the preprocessing and label ones from <see cref="ClassifierOptions"/>).</summary>
    public static Command Create()
    {
        var model = new Argument<string>("model") { Description = "Checkpoint (any supported format and scheme; fused on load). ONNX models are not supported yet." };
        var inputs = new Argument<string[]>("images") { Description = "Image files or folders (searched recursively for .jpg, .jpeg, .png, .webp, .gif, .bmp, .ico, .wbmp).", Arity = ArgumentArity.OneOrMore };
        var top = new Option<int>("--top", "--topk") { Description = "Classes to report per image.", DefaultValueFactory = _ => 5 };
        var classifierOptions = new ClassifierOptions();
        var batch = new Option<int>("--batch-size", "-b") { Description = "Images per engine run.", DefaultValueFactory = _ => 8 };
        var threads = new Option<int>("--threads", "-j") { Description = "Compute threads.", DefaultValueFactory = _ => Environment.ProcessorCount };
        var json = new Option<bool>("--json") { Description = "Print one JSON array (input order) of {path, top: [{index, label, probability, logit}]} or {path, error}; nothing else on stdout." };
        var output = new Option<string?>("--output", "-o") { Description = "Also write the predictions as CSV, in the layout of timm inference.py --results-separate-col --include-index --fullname." };
        var command = new Command("predict", "Classify images with a checkpoint: timm's eval preprocessing, the fused model on the inference engine, the top classes.");
        command.Arguments.Add(model);
        command.Arguments.Add(inputs);
        command.Options.Add(top);
        classifierOptions.AddTo(command);
        foreach (var o in new Option[] { batch, threads, json, output })
        {
            command.Options.Add(o);
        }

        CommandAction.Set(command, r =>
        {
            var settings = new PredictSettings(
                Options.Positive(r.GetValue(top), "--top"),
                Options.Positive(r.GetValue(batch), "--batch-size"),
                Options.Positive(r.GetValue(threads), "--threads"),
                classifierOptions.Parse(r),
                r.GetValue(json),
                r.GetValue(output));
            return Run(r.GetValue(model)!, r.GetValue(inputs)!, settings);
        });
        return command;
    }

    /// <summary>predict's options, checked; the model-dependent ones are resolved in Run, after the checkpoint is read.</summary>
    internal sealed record PredictSettings(int Top, int BatchSize, int Threads, ClassifierChoices Classifier, bool Json, string? Output);

    /// <summary>One input, in order: a path and either its top classes or why it failed.</summary>
    private sealed record Item(string Path, IReadOnlyList<ClassScore>? Top, string? Error);

    private static int Run(string modelPath, string[] inputs, PredictSettings settings)
    {
        var model = Options.LoadClassifierModel(modelPath);
        var setup = settings.Classifier.Resolve(model);
        var (preprocessing, names) = (setup.Preprocessing, setup.Labels);
        var clock = Stopwatch.StartNew();
        using var classifier = new ImageClassifier(model.Graph, preprocessing, names, new InferenceOptions { Threads = settings.Threads });
        var files = ExpandInputs(inputs);
        Console.Error.WriteLine(
            $"predict: {model.Path} ({model.Name}, {model.NumClasses} classes, {model.Form}); "
            + $"{preprocessing.Describe()}; labels: {setup.LabelSource}; {files.Count(f => f.Error is null)} image(s)");

        // Each image is decoded, preprocessed into its batch slot and released at once, so memory holds one
        // decoded image and one batch of inputs whatever the number and size of the images.
        var items = new Item[files.Count];
        var decodeOptions = setup.DecodeOptions;
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
            AtomicFile.WriteAllText(settings.Output, ToCsv(items, Math.Min(settings.Top, model.NumClasses), names is not null));
        }

        int failed = items.Count(item => item.Error is not null);
        Console.Error.WriteLine(
            string.Create(CultureInfo.InvariantCulture, $"predict: {items.Length - failed} classified, {failed} failed, {clock.Elapsed.TotalSeconds:0.00} s")
            + (settings.Output is null ? string.Empty : $"; wrote {settings.Output}"));
        return failed > 0 ? CommandAction.Failure : 0;
    }

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
