using System.Net.Http.Headers;
using System.Text.Json.Nodes;
using MobileOne.Cli.Serving;
using MobileOne.Tests.Data;
using MobileOne.Tests.Predict;

namespace MobileOne.Tests.Serving;

/// <summary>`mobileone serve`'s HTTP server in-process on a loopback port, with a tiny model at 32 x 32.</summary>
public sealed class ServeTests
{
    private static byte[] Png => File.ReadAllBytes(PilPredictReference.ImagePath("rgb.png"));

    private static byte[] Jpeg => File.ReadAllBytes(PilPredictReference.ImagePath("rgb.jpg"));

    [Fact]
    public async Task Multipart_file_name_star_without_a_value_is_read_not_a_server_error()
    {
        // The upload fuzz target's finding (2026-12-05): `filename*` with no value made the header parser's RFC 5987
        // decoder throw ArgumentNullException, which the server answered with 500. The name only labels the answer.
        await using var serve = await ServeHarness.StartAsync();
        byte[] Form(byte[] file, string tail) =>
            [.. "--q\r\nContent-Disposition: form-data; name=\"file\"; filename*\r\n\r\n"u8, .. file, .. System.Text.Encoding.ASCII.GetBytes(tail)];

        var (status, body) = await ServeHarness.ReadAsync(await serve.PostAsync(Form(Png, "\r\n--q--\r\n"), "multipart/form-data; boundary=q"));
        Assert.True(status == 200, $"{status} {body}");
        Assert.Equal("upload", (string)body!["path"]!);

        // The kept input itself: the body ends right after that header line, a malformed body.
        byte[] finding = [.. "--q\r\nContent-Disposition: form-data; name=\"file\"; filename*"u8];
        (status, body) = await ServeHarness.ReadAsync(await serve.PostAsync(finding, "multipart/form-data; boundary=q"));
        Assert.True(status == 400, $"{status} {body}");
        Assert.Contains("multipart/form-data body is malformed", (string)body!["error"]!);
    }

    [Fact]
    public async Task RawAndMultipartUploadsAnswerWhatTheClassifierSaysDirectly()
    {
        await using var serve = await ServeHarness.StartAsync();
        var expected = ServeHarness.Direct(Png, 10);

        var (status, body) = await ServeHarness.ReadAsync(await serve.PostAsync(Png, "image/png", "?top=10"));
        Assert.Equal(200, status);
        Assert.Equal("upload", (string)body!["path"]!);
        Assert.True((double)body["latency_ms"]! >= 0);
        var top = body["top"]!.AsArray();
        Assert.Equal(expected.Select(s => s.Index), top.Select(t => (int)t!["index"]!));
        Assert.Equal(expected.Select(s => s.Label), top.Select(t => (string?)t!["label"]));
        Assert.Equal(expected.Select(s => s.Logit), top.Select(t => (float)t!["logit"]!));
        Assert.Equal(expected.Select(s => s.Probability), top.Select(t => (float)t!["probability"]!));

        // Predict's fields and nothing else but the latency.
        Assert.Equal(["path", "top", "latency_ms"], body.AsObject().Select(p => p.Key));
        Assert.Equal(["index", "label", "probability", "logit"], top[0]!.AsObject().Select(p => p.Key));

        using var form = new MultipartFormDataContent();
        var file = new ByteArrayContent(Jpeg);
        file.Headers.ContentType = new MediaTypeHeaderValue("image/jpeg");
        form.Add(new StringContent("ignored"), "note");
        form.Add(file, "file", "photo.jpg");
        (status, body) = await ServeHarness.ReadAsync(await serve.Client.PostAsync("/v1/predict?top=3", form));
        Assert.Equal(200, status);
        Assert.Equal("photo.jpg", (string)body!["path"]!);
        Assert.Equal(ServeHarness.Direct(Jpeg, 3).Select(s => s.Logit), body["top"]!.AsArray().Select(t => (float)t!["logit"]!));

        // Default top 5; application/octet-stream is recognised by its bytes.
        (status, body) = await ServeHarness.ReadAsync(await serve.PostAsync(Jpeg, "application/octet-stream"));
        Assert.Equal(200, status);
        Assert.Equal(5, body!["top"]!.AsArray().Count);
    }

    [Fact]
    public async Task ConcurrentRequestsAreBatchedAndEachGetsItsOwnAnswer()
    {
        await using var serve = await ServeHarness.StartAsync(new ServeOptions { MaxBatch = 8, MaxWait = TimeSpan.FromMilliseconds(50) });
        byte[][] images = [Png, Jpeg];
        var expected = images.Select(i => ServeHarness.Direct(i, 1)[0].Index).ToArray();

        var answers = await Task.WhenAll(Enumerable.Range(0, 24).Select(async i =>
            (i, await ServeHarness.ReadAsync(await serve.PostAsync(images[i % 2], "image/*", "?top=1")))));

        foreach (var (i, (status, body)) in answers)
        {
            Assert.Equal(200, status);
            Assert.Equal(expected[i % 2], (int)body!["top"]![0]!["index"]!);
        }

        double batches = await serve.MetricAsync("mobileone_batch_size_count");
        double singles = await serve.MetricAsync("mobileone_batch_size_bucket{le=\"1\"}");
        Assert.Equal(24, await serve.MetricAsync("mobileone_batch_size_sum"));
        Assert.True(batches < 24 && singles < batches, $"{batches} batches for 24 images, {singles} of one image");
        Assert.Equal(24, await serve.MetricAsync("mobileone_http_requests_total{route=\"/v1/predict\",code=\"200\"}"));
    }

    [Fact]
    public async Task AFullQueueAnswers429AndTheServerRecovers()
    {
        // Each batch waits 300 ms for company, so the first requests sit in the queue while the rest arrive.
        await using var serve = await ServeHarness.StartAsync(new ServeOptions { Queue = 2, MaxBatch = 8, MaxWait = TimeSpan.FromMilliseconds(300) });

        var answers = await Task.WhenAll(Enumerable.Range(0, 12).Select(async _ => await ServeHarness.ReadAsync(await serve.PostAsync(Png, "image/png"))));

        Assert.All(answers, a => Assert.Contains(a.Status, new[] { 200, 429 }));
        Assert.InRange(answers.Count(a => a.Status == 200), 1, 11);
        var refused = answers.First(a => a.Status == 429);
        Assert.Contains("--queue", (string)refused.Body!["error"]!);
        Assert.Equal(200, (await ServeHarness.ReadAsync(await serve.PostAsync(Png, "image/png"))).Status);
        Assert.Equal(answers.Count(a => a.Status == 429), await serve.MetricAsync("mobileone_http_request_errors_total{route=\"/v1/predict\",code=\"429\"}"));
    }

    [Fact]
    public async Task BadInputGetsItsStatusAndAJsonErrorAndTheServerGoesOn()
    {
        await using var serve = await ServeHarness.StartAsync(new ServeOptions { MaxUploadBytes = 64 * 1024, MaxPixels = 1_000_000 });
        var random = new Random(3);
        byte[] garbage = new byte[3000];
        random.NextBytes(garbage);
        byte[] tooLarge = new byte[64 * 1024 + 1];
        Png.CopyTo(tooLarge, 0);
        using var noFile = new MultipartFormDataContent { { new StringContent("x"), "image", "a.png" } };
        using var textPart = new MultipartFormDataContent { { new StringContent("hello"), "file", "a.txt" } };

        var cases = new (string Name, Func<Task<HttpResponseMessage>> Send, int Status, string Message)[]
        {
            ("empty", () => serve.PostAsync([], "image/png"), 400, "empty"),
            ("garbage", () => serve.PostAsync(garbage, "image/jpeg"), 400, "not a decodable image"),
            ("truncated png", () => serve.PostAsync(Png[..(Png.Length / 2)], "image/png"), 400, "truncated"),
            ("truncated jpeg", () => serve.PostAsync(Jpeg[..200], "image/jpeg"), 400, "truncated"),
            ("giant dimensions", () => serve.PostAsync(HostileDataTests.PngHeaderOnly(65535, 65535), "image/png"), 400, "declares 65535x65535"),
            ("over --max-pixels", () => serve.PostAsync(HostileDataTests.PngHeaderOnly(2000, 1000), "image/png"), 400, "more than the 1000000"),
            ("too large", () => serve.PostAsync(tooLarge, "image/png"), 413, "--max-upload-mb"),
            ("too large, chunked", () => PostChunked(serve, tooLarge), 413, "--max-upload-mb"),
            ("text/plain", () => serve.PostAsync(Png, "text/plain"), 415, "'text/plain' is not accepted"),
            ("application/json", () => serve.PostAsync(Png, "application/json"), 415, "not accepted"),
            ("multipart without file", () => serve.Client.PostAsync("/v1/predict", noFile), 400, "no field 'file'"),
            ("multipart text file", () => serve.Client.PostAsync("/v1/predict", textPart), 415, "'text/plain'"),
            ("bad top", () => serve.PostAsync(Png, "image/png", "?top=0"), 400, "top must be a positive integer"),
        };

        foreach (var (name, send, status, message) in cases)
        {
            var (got, body) = await ServeHarness.ReadAsync(await send());
            Assert.True(status == got, $"{name}: {got} {body}");
            Assert.Equal(["error"], body!.AsObject().Select(p => p.Key));
            Assert.Contains(message, (string)body["error"]!);

            // The next good request is answered as usual.
            var (ok, answer) = await ServeHarness.ReadAsync(await serve.PostAsync(Png, "image/png", "?top=1"));
            Assert.Equal(200, ok);
            Assert.Equal(ServeHarness.Direct(Png, 1)[0].Index, (int)answer!["top"]![0]!["index"]!);
        }

        Assert.Equal(0, await serve.MetricAsync("mobileone_http_requests_total{route=\"/v1/predict\",code=\"500\"}"));
    }

    /// <summary>A body without Content-Length: the server learns its size only by reading it.</summary>
    private static Task<HttpResponseMessage> PostChunked(ServeHarness serve, byte[] body)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/v1/predict") { Content = new ByteArrayContent(body) };
        request.Content.Headers.TryAddWithoutValidation("Content-Type", "image/png");
        request.Headers.TransferEncodingChunked = true;
        return serve.Client.SendAsync(request);
    }

    [Fact]
    public async Task ARequestNotAnsweredInTimeGets503()
    {
        // A batch waits 10 s for company (closing the server cuts that short); the request's deadline is 300 ms. The
        // margin is wide because the deadline's timer runs on the thread pool, which a cold, loaded test host can
        // keep busy for a second.
        await using var serve = await ServeHarness.StartAsync(new ServeOptions { MaxWait = TimeSpan.FromSeconds(10), RequestTimeout = TimeSpan.FromMilliseconds(300) });
        var (status, body) = await ServeHarness.ReadAsync(await serve.PostAsync(Png, "image/png"));
        Assert.True(503 == status, body?.ToJsonString());
        Assert.Contains("request timeout", (string)body!["error"]!);
    }

    [Fact]
    public async Task ModelHealthReadinessMetricsAndThePageAreServed()
    {
        await using var serve = await ServeHarness.StartAsync();
        var model = JsonNode.Parse(await serve.Client.GetStringAsync("/v1/model"))!;
        Assert.Equal("mobileone", (string)model["family"]!);
        Assert.Equal("custom", (string)model["variant"]!);
        Assert.Equal(10, (int)model["classes"]!);
        Assert.Equal(32, (int)model["image_size"]!);
        Assert.True((bool)model["fused"]!);
        var stats = MobileOne.Models.ModelStatistics.Compute(MobileOne.Models.MobileOneConfig.Parse("units=1/1/1/1,widths=0.25/0.25/0.25/0.25,k=1,classes=10"), 32);
        Assert.Equal(stats.ParamsFused, (long)model["parameters"]!);
        Assert.Equal(stats.MacsFused, (long)model["macs"]!);

        Assert.Equal("alive", (string)JsonNode.Parse(await serve.Client.GetStringAsync("/healthz"))!["status"]!);
        Assert.Equal("ready", (string)JsonNode.Parse(await serve.Client.GetStringAsync("/readyz"))!["status"]!);

        var metrics = await serve.Client.GetAsync("/metrics");
        Assert.Equal("text/plain; version=0.0.4; charset=utf-8", metrics.Content.Headers.ContentType!.ToString());
        string text = await metrics.Content.ReadAsStringAsync();
        Assert.Contains("# TYPE mobileone_predict_latency_seconds histogram", text);
        Assert.Contains("# TYPE mobileone_batch_size histogram", text);
        Assert.Contains("mobileone_http_requests_total{route=\"/readyz\",code=\"200\"} 1", text);
        Assert.Contains("mobileone_model_ready 1", text);

        var page = await serve.Client.GetAsync("/");
        Assert.Equal("text/html; charset=utf-8", page.Content.Headers.ContentType!.ToString());
        string html = await page.Content.ReadAsStringAsync();
        Assert.Contains("<input type=\"file\" id=\"file\"", html);
        Assert.DoesNotContain("https://", html); // self-contained: nothing from a CDN
        Assert.Equal(404, (int)(await serve.Client.GetAsync("/nothing")).StatusCode);
        Assert.Equal(405, (int)(await serve.Client.GetAsync("/v1/predict")).StatusCode);
    }
}
