using System.CommandLine;
using System.Diagnostics;
using System.Text.Json.Nodes;
using MobileOne.Cli.Commands;
using MobileOne.Tests.Cli;
using MobileOne.Tests.Predict;

namespace MobileOne.Tests.Serving;

/// <summary>
/// `mobileone serve` takes predict's preprocessing and label options (--labels, --img-size, --crop-pct,
/// --interpolation, --exif-transpose): a server started with them answers an image as predict does with the same
/// flags, reports the effective values on GET /v1/model, and refuses bad values with predict's own one-line error.
/// </summary>
public sealed class ServePreprocessingTests
{
    private static string Model => Fixtures.Path("mobileone_s0_timm.safetensors");

    private static readonly string[] SharedOptions = ["--labels", "--img-size", "--crop-pct", "--interpolation", "--exif-transpose"];

    [Fact]
    public void ServeDeclaresPredictsPreprocessingOptionsWithTheSameDescriptions()
    {
        Command predict = PredictCommand.Create(), serve = ServeCommand.Create();
        foreach (string name in SharedOptions)
        {
            var p = predict.Options.Single(o => o.Name == name);
            var s = serve.Options.Single(o => o.Name == name);
            Assert.Equal(p.Description, s.Description);
            Assert.Equal(p.ValueType, s.ValueType);
        }
    }

    [Fact]
    public async Task ServeWithPreprocessingFlagsAnswersAsPredictWithTheSameFlags()
    {
        using var dir = new TempDir();
        string labels = dir.File("labels.txt");
        File.WriteAllLines(labels, Enumerable.Range(0, 1000).Select(i => $"name {i}"));
        string[] images = [PilPredictReference.ImagePath("rgb.png"), PilPredictReference.ImagePath("exif6.jpg")];
        string[] flags = ["--img-size", "160", "--crop-pct", "1.0", "--interpolation", "bicubic", "--exif-transpose", "--labels", labels];

        // What predict says with the flags, with each one but --labels left out in turn, and with none: each flag
        // must change some answer, or the comparison below could not tell a server that ignores it.
        var expected = Predict(images, flags);
        Assert.All(expected, e => Assert.StartsWith("name ", (string)e["top"]![0]!["label"]!));
        foreach (var (name, values) in new[] { ("--img-size", 1), ("--crop-pct", 1), ("--interpolation", 1), ("--exif-transpose", 0) })
        {
            int at = Array.IndexOf(flags, name);
            string[] without = [.. flags[..at], .. flags[(at + 1 + values)..]];
            Assert.True(Differs(expected, Predict(images, without)), $"predict answers the same without {name}; the test could not tell a server that ignores it");
        }

        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string a in (string[])[Path.Combine(AppContext.BaseDirectory, "MobileOne.Cli.dll"), "serve", Model, "--port", "0", "--threads", "1", .. flags])
        {
            info.ArgumentList.Add(a);
        }

        using var process = Process.Start(info)!;
        var stderr = process.StandardError.ReadToEndAsync();
        try
        {
            string? line = await process.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(60));
            Assert.True(line?.StartsWith("serve: listening on ", StringComparison.Ordinal) == true, $"serve did not start: {line}");
            using var client = new HttpClient { BaseAddress = new Uri(line!["serve: listening on ".Length..]), Timeout = TimeSpan.FromSeconds(60) };

            // GET /v1/model reports the effective values, not the model's defaults (224, 0.875, bilinear).
            var model = JsonNode.Parse(await client.GetStringAsync("/v1/model"))!;
            Assert.Equal(160, (int)model["image_size"]!);
            Assert.Equal(1.0, (double)model["crop_pct"]!);
            Assert.Equal("bicubic", (string)model["interpolation"]!);
            Assert.True((bool)model["exif_transpose"]!);
            Assert.Equal(labels, (string)model["label_source"]!);
            Assert.Equal("RGB, resize 160 bicubic (crop_pct 1), centre crop 160, ImageNet mean/std", (string)model["preprocessing"]!);

            for (int i = 0; i < images.Length; i++)
            {
                var content = new ByteArrayContent(File.ReadAllBytes(images[i]));
                content.Headers.TryAddWithoutValidation("Content-Type", "application/octet-stream");
                var response = await client.PostAsync("/v1/predict?top=3", content);
                string body = await response.Content.ReadAsStringAsync();
                Assert.True(response.IsSuccessStatusCode, body);
                AssertSameTop(expected[i]["top"]!.AsArray(), JsonNode.Parse(body)!["top"]!.AsArray());
            }
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }

        Assert.Contains($"resize 160 bicubic (crop_pct 1), centre crop 160, ImageNet mean/std, EXIF orientation applied; labels: {labels};", await stderr);
    }

    [Fact]
    public void BadPreprocessingValuesFailAsInPredict()
    {
        using var dir = new TempDir();
        File.WriteAllLines(dir.File("labels.txt"), ["cat", "dog"]);
        string image = PilPredictReference.ImagePath("rgb.png");
        string[][] cases =
        [
            ["--crop-pct", "0"],
            ["--crop-pct", "1.5"],
            ["--img-size", "0"],
            ["--img-size", "5000"],
            ["--interpolation", "lanczos"],
            ["--labels", dir.File("labels.txt")],
            ["--labels", dir.File("missing.txt")],
        ];
        foreach (string[] bad in cases)
        {
            // A server that accepted the value would listen until killed: a minute is plenty to refuse it.
            var served = CliRunner.RunUntil(new Dictionary<string, string>(), ["serve", Model, "--port", "0", .. bad], TimeSpan.FromSeconds(60), killOnTimeout: true);
            Assert.True(served is not null, $"serve {string.Join(' ', bad)} started instead of refusing it");
            var predicted = CliRunner.Run(["predict", Model, image, .. bad]);
            CliRunner.AssertCleanFailure(served, bad[0]);
            Assert.Equal(CommandAction.Failure, served.ExitCode);
            Assert.Equal(predicted.ExitCode, served.ExitCode);
            Assert.Single(served.StdErr.TrimEnd('\n').Split('\n'));
            Assert.Equal(predicted.StdErr, served.StdErr); // the same message, word for word
            Assert.Empty(served.StdOut); // refused before it listens
        }

        Assert.Equal("error: --crop-pct must lie in (0, 1]; got 0.\n", CliRunner.Run("serve", Model, "--crop-pct", "0").StdErr);
    }

    /// <summary>predict --json --top 3 on <paramref name="images"/>, one at a time (as the server runs them), on one thread.</summary>
    private static JsonNode[] Predict(string[] images, string[] flags)
    {
        var result = CliRunner.Run(["predict", Model, .. images, "--top", "3", "--batch-size", "1", "--threads", "1", "--json", .. flags]);
        Assert.True(result.ExitCode == 0, result.StdErr);
        return JsonNode.Parse(result.StdOut)!.AsArray().Select(e => e!).ToArray();
    }

    private static bool Differs(JsonNode[] a, JsonNode[] b) =>
        a.Zip(b).Any(p => !Same(p.First["top"]!.AsArray(), p.Second["top"]!.AsArray()));

    private static bool Same(JsonArray expected, JsonArray actual) =>
        expected.Count == actual.Count && expected.Zip(actual).All(p =>
            (int)p.First!["index"]! == (int)p.Second!["index"]!
            && (string?)p.First!["label"] == (string?)p.Second!["label"]
            && Math.Abs((float)p.First!["logit"]! - (float)p.Second!["logit"]!) <= 1e-3f
            && Math.Abs((float)p.First!["probability"]! - (float)p.Second!["probability"]!) <= 1e-6f);

    private static void AssertSameTop(JsonArray expected, JsonArray actual) =>
        Assert.True(Same(expected, actual), $"served {actual.ToJsonString()}, predict said {expected.ToJsonString()}");
}
