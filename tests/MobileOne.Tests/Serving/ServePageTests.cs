using System.Text.Json.Nodes;
using MobileOne.Classification;
using MobileOne.Cli.Serving;
using MobileOne.Imaging;
using MobileOne.Inference;
using MobileOne.IO.Checkpoints;
using MobileOne.Models;
using MobileOne.Tests.Predict;

namespace MobileOne.Tests.Serving;

/// <summary>
/// The page at `/` in headless Chromium: choose an image, see the top 5 with bars and the latency. Serves the S0
/// fixture (ImageNet names) at 64 x 64. Set MOBILEONE_SERVING_SCREENSHOT to a path to keep the screenshot
/// (docs/serving.png is made that way, docs/serving.md).
/// </summary>
public sealed class ServePageTests
{
    public const string ScreenshotVariable = "MOBILEONE_SERVING_SCREENSHOT";

    [ChromiumFact]
    public async Task ThePageClassifiesAChosenImageAndShowsTheTopFive()
    {
        var loaded = ModelCheckpoint.Load(Fixtures.Path("mobileone_s0_timm.safetensors"));
        var preprocessing = ImagePreprocessing.ForModel(loaded.Network.Config) with { Size = 64 };
        using var classifier = new ImageClassifier(loaded.Network, preprocessing, ClassLabels.ImageNet, new InferenceOptions { Threads = 1 });
        var stats = ModelStatistics.Compute(loaded.Network.Config, 64);
        await using var server = ClassificationServer.Create(
            new ServedModel(classifier, "mobileone_s0_timm.safetensors", "s0", false, stats.ParamsFused, stats.MacsFused) { LabelSource = "ImageNet-1k (OpenCV's list)" },
            new ServeOptions { Port = 0 });
        await server.StartAsync();
        string image = PilPredictReference.ImagePath("rgb.png");
        using (var warmUp = new HttpClient())
        {
            // The first request pays for the JIT; the page's latency line then shows a steady one.
            var content = new ByteArrayContent(File.ReadAllBytes(image));
            content.Headers.TryAddWithoutValidation("Content-Type", "image/png");
            Assert.True((await warmUp.PostAsync(server.Addresses.Single() + ClassificationServer.PredictRoute, content)).IsSuccessStatusCode);
        }

        await using var browser = await Chromium.StartAsync(900, 560);
        await browser.SendAsync("Page.enable");
        await browser.SendAsync("Emulation.setDeviceMetricsOverride", new JsonObject { ["width"] = 900, ["height"] = 600, ["deviceScaleFactor"] = 1, ["mobile"] = false });
        var loadedEvent = browser.NextEvent("Page.loadEventFired");
        await browser.SendAsync("Page.navigate", new JsonObject { ["url"] = server.Addresses.Single() + "/" });
        await loadedEvent;
        await browser.WaitForAsync("document.getElementById('model').textContent.startsWith('MobileOne s0')", TimeSpan.FromSeconds(15));
        Assert.Equal(
            $"Preprocessing: {preprocessing.Describe()}; labels: ImageNet-1k (OpenCV's list)",
            (string)(await browser.EvaluateAsync("document.getElementById('preprocessing').textContent"))!);

        var document = await browser.SendAsync("DOM.getDocument");
        var input = await browser.SendAsync("DOM.querySelector", new JsonObject { ["nodeId"] = (int)document["root"]!["nodeId"]!, ["selector"] = "#file" });
        await browser.SendAsync("DOM.setFileInputFiles", new JsonObject { ["nodeId"] = (int)input["nodeId"]!, ["files"] = new JsonArray(image) });
        await browser.WaitForAsync("['done', 'error'].includes(document.getElementById('result').dataset.state)", TimeSpan.FromSeconds(20));
        Assert.Equal("done", (string)(await browser.EvaluateAsync("document.getElementById('result').dataset.state"))!);

        var rows = (await browser.EvaluateAsync(
            "[...document.querySelectorAll('#result .top')].map(r => ({ index: +r.dataset.index, label: r.querySelector('.label').textContent, " +
            "percent: r.querySelector('.prob').textContent, width: parseFloat(r.querySelector('.bar').style.width) }))"))!.AsArray();
        using var reference = new ImageClassifier(loaded.Network, preprocessing, ClassLabels.ImageNet, new InferenceOptions { Threads = 1 });
        var expected = Direct(reference, image);
        Assert.Equal(expected.Select(s => s.Index), rows.Select(r => (int)r!["index"]!));
        Assert.Equal(expected.Select(s => s.Label), rows.Select(r => (string?)r!["label"]));
        Assert.Equal(expected.Select(s => $"{100 * s.Probability:0.0}%"), rows.Select(r => (string)r!["percent"]!));
        Assert.InRange((double)rows[0]!["width"]!, 100 * expected[0].Probability - 0.01, 100 * expected[0].Probability + 0.01);
        Assert.Matches(@"^rgb\.png: answered in \d+\.\d ms", (string)(await browser.EvaluateAsync("document.getElementById('latency').textContent"))!);

        var shot = await browser.SendAsync("Page.captureScreenshot", new JsonObject { ["format"] = "png" });
        byte[] png = Convert.FromBase64String((string)shot["data"]!);
        Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G'], png[..4]);
        if (Environment.GetEnvironmentVariable(ScreenshotVariable) is { Length: > 0 } path)
        {
            File.WriteAllBytes(path, png);
        }
    }

    /// <summary>A classifier's own answer on the same file (not the server's classifier: its batcher thread owns that one).</summary>
    private static IReadOnlyList<ClassScore> Direct(ImageClassifier classifier, string image)
    {
        var input = new float[classifier.SampleLength];
        classifier.Preprocess(image, new ImageDecodeOptions { ApplyExifOrientation = false }, input);
        return classifier.Classify(new Tensors.Tensor([1, classifier.Channels, 64, 64], input), 5)[0];
    }
}
