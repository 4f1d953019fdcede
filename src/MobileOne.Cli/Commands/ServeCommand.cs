using System.CommandLine;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using MobileOne.Classification;
using MobileOne.Cli.Serving;
using MobileOne.Data;
using MobileOne.Inference;
using MobileOne.Models;

namespace MobileOne.Cli.Commands;

/// <summary>
/// `mobileone serve`: classifies images over HTTP with a checkpoint, fused, on the inference engine, with predict's
/// preprocessing and label options (<see cref="ClassifierOptions"/>) and answers; concurrent requests are batched
/// (Serving/).
/// </summary>
internal static class ServeCommand
{
    /// <summary>Bounds that keep a typo from asking for absurd resources.</summary>
    private const int MaxBatchLimit = 256, MaxWaitLimitMs = 1000, MaxUploadLimitMb = 1024;

    /// <summary>The command, its argument and options (the preprocessing and label ones from <see cref="ClassifierOptions"/>, as predict's).</summary>
    public static Command Create()
    {
        var defaults = new ServeOptions();
        var model = new Argument<string>("model") { Description = "Checkpoint (any supported format and scheme; fused on load). ONNX models are not supported yet." };
        var host = new Option<string>("--host") { Description = "Address to listen on: an IP address or localhost.", DefaultValueFactory = _ => defaults.Host };
        var port = new Option<int>("--port", "-p") { Description = "TCP port (0: any free port, printed at start).", DefaultValueFactory = _ => defaults.Port };
        var threads = new Option<int>("--threads", "-j") { Description = "Compute threads of the engine.", DefaultValueFactory = _ => Environment.ProcessorCount };
        var maxBatch = new Option<int>("--max-batch") { Description = "Most images per engine run.", DefaultValueFactory = _ => defaults.MaxBatch };
        var maxWait = new Option<int>("--max-wait-ms") { Description = "How long a batch waits for more images after its first (0: run what is there).", DefaultValueFactory = _ => (int)defaults.MaxWait.TotalMilliseconds };
        var maxUpload = new Option<int>("--max-upload-mb") { Description = "Largest image upload in MiB (413 beyond).", DefaultValueFactory = _ => (int)(defaults.MaxUploadBytes >> 20) };
        var maxPixels = new Option<long>("--max-pixels") { Description = $"Images declaring more pixels are refused from their header (at most {IImageDecoder.MaxPixels}, Pillow's limit).", DefaultValueFactory = _ => defaults.MaxPixels };
        var queue = new Option<int>("--queue") { Description = "Prediction requests admitted at once; one more gets 429.", DefaultValueFactory = _ => defaults.Queue };
        var timeout = new Option<int>("--timeout-s") { Description = "Seconds a prediction may take before it gets 503.", DefaultValueFactory = _ => (int)defaults.RequestTimeout.TotalSeconds };
        var classifierOptions = new ClassifierOptions();
        var command = new Command("serve", "Classify images over HTTP: POST /v1/predict, GET /v1/model, /healthz, /readyz, /metrics, and a page at /.");
        command.Arguments.Add(model);
        foreach (var o in new Option[] { host, port, threads, maxBatch, maxWait, maxUpload, maxPixels, queue, timeout })
        {
            command.Options.Add(o);
        }

        classifierOptions.AddTo(command);

        CommandAction.Set(command, r =>
        {
            var options = new ServeOptions
            {
                Host = Host(r.GetValue(host)!),
                Port = Port(r.GetValue(port)),
                MaxBatch = AtMost(Options.Positive(r.GetValue(maxBatch), "--max-batch"), MaxBatchLimit, "--max-batch"),
                MaxWait = TimeSpan.FromMilliseconds(Between(r.GetValue(maxWait), 0, MaxWaitLimitMs, "--max-wait-ms")),
                MaxUploadBytes = (long)AtMost(Options.Positive(r.GetValue(maxUpload), "--max-upload-mb"), MaxUploadLimitMb, "--max-upload-mb") << 20,
                MaxPixels = MaxPixels(r.GetValue(maxPixels)),
                Queue = Options.Positive(r.GetValue(queue), "--queue"),
                RequestTimeout = TimeSpan.FromSeconds(Options.Positive(r.GetValue(timeout), "--timeout-s")),
            };
            return Run(r.GetValue(model)!, Options.Positive(r.GetValue(threads), "--threads"), classifierOptions.Parse(r), options);
        });
        return command;
    }

    private static int Run(string modelPath, int threads, ClassifierChoices choices, ServeOptions options)
    {
        var model = Options.LoadClassifierModel(modelPath);
        var setup = choices.Resolve(model);
        var preprocessing = setup.Preprocessing;
        using var classifier = new ImageClassifier(model.Graph, preprocessing, setup.Labels, new InferenceOptions { Threads = threads });
        var graph = model.Graph;
        var served = new ServedModel(classifier, Path.GetFileName(model.Path), model.Name, !model.FusedOnLoad, graph.Parameters(), graph.MultiplyAccumulates(preprocessing.InputSize, preprocessing.InputSize))
        {
            LabelSource = setup.LabelSource,
            ExifTranspose = setup.ExifTranspose,
        };
        var server = ClassificationServer.Create(served, options, logToConsole: true);
        try
        {
            try
            {
                server.StartAsync().GetAwaiter().GetResult();
            }
            catch (Exception e) when (e is IOException or SocketException)
            {
                // In use (IOException from Kestrel) or not an address of this machine (SocketException).
                throw new ArgumentException($"--host {options.Host} --port {options.Port}: cannot listen there ({e.Message.TrimEnd('.')}).");
            }

            Console.Error.WriteLine(
                $"serve: {model.Path} ({model.Name}, {model.NumClasses} classes, {model.Form}); "
                + $"{preprocessing.Describe()}{(setup.ExifTranspose ? ", EXIF orientation applied" : string.Empty)}; labels: {setup.LabelSource}; "
                + string.Create(CultureInfo.InvariantCulture, $"{threads} thread(s), batches of up to {options.MaxBatch} within {options.MaxWait.TotalMilliseconds} ms, queue {options.Queue}"));
            foreach (string address in server.Addresses)
            {
                Console.WriteLine($"serve: listening on {address}");
            }

            server.WaitForShutdownAsync().GetAwaiter().GetResult();
        }
        finally
        {
            server.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }

        Console.Error.WriteLine($"serve: stopped after {server.Answered} request(s)");
        return 0;
    }

    private static string Host(string value) =>
        string.Equals(value, "localhost", StringComparison.OrdinalIgnoreCase) || IPAddress.TryParse(value, out _)
            ? value
            : throw new ArgumentException($"--host must be an IP address or localhost; got '{value}'.");

    private static int Port(int value) =>
        value is >= 0 and <= IPEndPoint.MaxPort ? value : throw new ArgumentException($"--port must lie in 0..{IPEndPoint.MaxPort}; got {value}.");

    private static int AtMost(int value, int limit, string option) =>
        value <= limit ? value : throw new ArgumentException($"{option} must be at most {limit}; got {value}.");

    private static int Between(int value, int min, int max, string option) =>
        value >= min && value <= max ? value : throw new ArgumentException($"{option} must lie in {min}..{max}; got {value}.");

    private static long MaxPixels(long value) =>
        value > 0 && value <= IImageDecoder.MaxPixels ? value : throw new ArgumentException($"--max-pixels must lie in 1..{IImageDecoder.MaxPixels}; got {value}.");
}
