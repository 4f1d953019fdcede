using System.Text.Json.Nodes;
using MobileOne.Classification;
using MobileOne.Cli.Serving;
using MobileOne.Imaging;
using MobileOne.Inference;
using MobileOne.Models;

namespace MobileOne.Tests.Serving;

/// <summary>
/// A tiny RGB MobileOne (units 1/1/1/1, widths 0.25, 10 named classes) at 32 x 32 inputs, served in-process by
/// <see cref="ClassificationServer"/> on a loopback port the system picks, with an <see cref="HttpClient"/> on it.
/// </summary>
internal sealed class ServeHarness : IAsyncDisposable
{
    private static readonly Lazy<MobileOneNetwork> Network = new(() =>
    {
        var network = MobileOneNetwork.Create(MobileOneConfig.Parse("units=1/1/1/1,widths=0.25/0.25/0.25/0.25,k=1,classes=10"));
        WeightInit.Initialize(network, 11);
        WeightInit.RandomizeBatchNorm(network, 12);
        return network;
    });

    public static readonly IReadOnlyList<string> Labels = Enumerable.Range(0, 10).Select(i => $"class {i}").ToArray();

    private ServeHarness(ImageClassifier classifier, ClassificationServer server, HttpClient client)
    {
        Classifier = classifier;
        Server = server;
        Client = client;
    }

    public ImageClassifier Classifier { get; }

    public ClassificationServer Server { get; }

    public HttpClient Client { get; }

    public static ImageClassifier NewClassifier() =>
        new(Network.Value, ImagePreprocessing.ForModel(Network.Value.Config) with { Size = 32 }, Labels, new InferenceOptions { Threads = 1 });

    public static async Task<ServeHarness> StartAsync(ServeOptions? options = null)
    {
        var classifier = NewClassifier();
        var stats = ModelStatistics.Compute(Network.Value.Config, 32);
        var model = new ServedModel(classifier, "tiny.safetensors", "custom", CheckpointFused: false, stats.ParamsFused, stats.MacsFused);
        var server = ClassificationServer.Create(model, (options ?? new ServeOptions()) with { Port = 0 });
        await server.StartAsync();
        var client = new HttpClient { BaseAddress = new Uri(server.Addresses.Single()), Timeout = TimeSpan.FromSeconds(30) };
        return new ServeHarness(classifier, server, client);
    }

    /// <summary>The answer of a classifier used directly on the same bytes: what the server must say.</summary>
    public static IReadOnlyList<ClassScore> Direct(byte[] encoded, int top)
    {
        using var classifier = NewClassifier();
        var input = new float[classifier.SampleLength];
        classifier.Preprocess(encoded, "direct", new ImageDecodeOptions { ApplyExifOrientation = false }, input);
        return classifier.Classify(new Tensors.Tensor([1, classifier.Channels, 32, 32], input), top)[0];
    }

    public static async Task<(int Status, JsonNode? Body)> ReadAsync(HttpResponseMessage response)
    {
        string text = await response.Content.ReadAsStringAsync();
        return ((int)response.StatusCode, text.Length == 0 ? null : JsonNode.Parse(text));
    }

    public Task<HttpResponseMessage> PostAsync(byte[] body, string contentType, string query = "")
    {
        var content = new ByteArrayContent(body);
        content.Headers.TryAddWithoutValidation("Content-Type", contentType);
        return Client.PostAsync("/v1/predict" + query, content);
    }

    /// <summary>A value of /metrics: the sample named exactly <paramref name="series"/> (name and labels).</summary>
    public async Task<double> MetricAsync(string series)
    {
        string text = await Client.GetStringAsync("/metrics");
        string? line = text.Split('\n').FirstOrDefault(l => l.StartsWith(series + " ", StringComparison.Ordinal));
        return line is null ? 0 : double.Parse(line[(series.Length + 1)..], System.Globalization.CultureInfo.InvariantCulture);
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await Server.DisposeAsync();
        Classifier.Dispose();
    }
}
