using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using MobileOne.Cli.Rendering;
using MobileOne.Data;
using MobileOne.Imaging;

namespace MobileOne.Cli.Serving;

/// <summary>
/// The HTTP server of `mobileone serve`: Kestrel with minimal APIs around one <see cref="ServedModel"/>.
/// <c>POST /v1/predict</c> reads the image (<see cref="ImageUpload"/>), decodes and preprocesses it on the request's
/// thread (at most <see cref="ServeOptions.Decoders"/> at once), and queues it on the <see cref="DynamicBatcher"/>;
/// the answer is predict's JSON for the image plus <c>latency_ms</c>. Every refusal is a status code with
/// <c>{"error": "..."}</c>, and the server goes on. <c>GET /v1/model</c>, <c>/healthz</c>, <c>/readyz</c>,
/// <c>/metrics</c> (Prometheus text) and <c>/</c> (a page to try it) complete it.
/// </summary>
internal sealed class ClassificationServer : IAsyncDisposable
{
    /// <summary>The prediction endpoint; also the route whose latency /metrics records.</summary>
    public const string PredictRoute = "/v1/predict";

    private const string PageResource = "MobileOne.Cli.Serving.index.html";

    private readonly WebApplication app;
    private readonly ServedModel model;
    private readonly ServeOptions options;
    private readonly DynamicBatcher batcher;
    private readonly SemaphoreSlim decoders;
    private readonly ImageDecodeOptions decodeOptions;
    private int admitted;
    private long answered;
    private volatile bool ready;

    private ClassificationServer(ServedModel model, ServeOptions options, bool logToConsole)
    {
        this.model = model;
        this.options = options;
        Metrics = new ServerMetrics(options.MaxBatch);
        decoders = new SemaphoreSlim(options.Decoders);
        // EXIF orientation as predict applies it: only with --exif-transpose (timm's pipeline does not), so the
        // server answers an upload as predict answers the same file with the same flags.
        decodeOptions = new ImageDecodeOptions { ApplyExifOrientation = model.ExifTranspose, MaxPixels = options.MaxPixels };

        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory });
        builder.Logging.ClearProviders();
        if (logToConsole)
        {
            // Warnings and errors of requests; a failure to start is thrown to the command, which prints its one line.
            builder.Logging.AddSimpleConsole(o => o.SingleLine = true)
                .AddFilter("Microsoft", LogLevel.Warning)
                .AddFilter("Microsoft.Extensions.Hosting", LogLevel.None);
            builder.Services.Configure<Microsoft.Extensions.Logging.Console.ConsoleLoggerOptions>(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
        }

        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = options.DrainTimeout);
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            // A backstop: the handlers stop reading at the upload limit themselves and answer 413 with a message.
            kestrel.Limits.MaxRequestBodySize = options.MaxUploadBytes + ServeOptions.MultipartSlack;
            if (string.Equals(options.Host, "localhost", StringComparison.OrdinalIgnoreCase))
            {
                kestrel.ListenLocalhost(options.Port);
            }
            else
            {
                kestrel.Listen(IPAddress.Parse(options.Host), options.Port);
            }
        });

        app = builder.Build();
        batcher = new DynamicBatcher(model.Classifier, options.MaxBatch, options.MaxWait, options.Queue, Metrics);
        app.Lifetime.ApplicationStopping.Register(() => ready = false);
        app.Use(CountAsync);
        app.MapGet("/", Page);
        app.MapGet("/healthz", () => Json(new JsonObject { ["status"] = "alive" }));
        app.MapGet("/readyz", () => ready
            ? Json(new JsonObject { ["status"] = "ready", ["model"] = model.Variant })
            : Json(new JsonObject { ["status"] = "not ready" }, StatusCodes.Status503ServiceUnavailable));
        app.MapGet("/v1/model", () => Json(model.ToJson()));
        app.MapGet("/metrics", () => Results.Text(Metrics.Exposition(Volatile.Read(ref admitted), ready), "text/plain; version=0.0.4; charset=utf-8", Encoding.UTF8));
        app.MapPost(PredictRoute, (Func<HttpContext, Task<IResult>>)PredictAsync);
    }

    /// <summary>The counters behind /metrics (tests read them directly).</summary>
    public ServerMetrics Metrics { get; }

    /// <summary>The addresses the server listens on (the real port when asked for port 0); after <see cref="StartAsync"/>.</summary>
    public IReadOnlyCollection<string> Addresses =>
        app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.ToArray();

    /// <summary>Signalled when the host begins to stop (SIGTERM, Ctrl+C, or <see cref="StopAsync"/>).</summary>
    public CancellationToken Stopping => app.Lifetime.ApplicationStopping;

    /// <summary>Requests answered so far, all routes.</summary>
    public long Answered => Interlocked.Read(ref answered);

    /// <summary>Builds the server; nothing listens until <see cref="StartAsync"/>. The classifier stays the caller's.</summary>
    public static ClassificationServer Create(ServedModel model, ServeOptions options, bool logToConsole = false) => new(model, options, logToConsole);

    /// <summary>Binds and starts taking requests. A port in use or an address not on this machine throws IOException.</summary>
    public async Task StartAsync(CancellationToken cancel = default)
    {
        await app.StartAsync(cancel);
        ready = true;
    }

    /// <summary>Waits for SIGTERM or Ctrl+C, then drains: Kestrel stops accepting and lets in-flight requests finish.</summary>
    public Task WaitForShutdownAsync() => app.WaitForShutdownAsync();

    /// <summary>Stops as SIGTERM would: readiness turns 503, Kestrel drains the requests in flight.</summary>
    public Task StopAsync() => app.StopAsync();

    /// <summary>Stops the server, then the batcher (which answers what it still holds) and the decode gate.</summary>
    public async ValueTask DisposeAsync()
    {
        ready = false;
        await app.DisposeAsync();
        batcher.Dispose(); // after the server: queued images are answered before the thread ends
        decoders.Dispose();
    }

    private async Task CountAsync(HttpContext context, RequestDelegate next)
    {
        long start = Stopwatch.GetTimestamp();
        context.Items[nameof(Stopwatch)] = start;
        await next(context);
        string route = (context.GetEndpoint() as RouteEndpoint)?.RoutePattern.RawText ?? "other";
        Metrics.Request(route, context.Response.StatusCode, Stopwatch.GetElapsedTime(start));
        Interlocked.Increment(ref answered);
    }

    // The embedded page, read once rather than on every GET /.
    private static readonly Lazy<string> PageHtml = new(() =>
    {
        using var stream = typeof(ClassificationServer).Assembly.GetManifestResourceStream(PageResource)
            ?? throw new InvalidOperationException($"The page resource {PageResource} is missing from the build.");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    });

    private static IResult Page() => Results.Content(PageHtml.Value, "text/html; charset=utf-8", Encoding.UTF8);

    // Messages quote content types and names: written as they are ('), not as \u0027. Nothing here is embedded in
    // HTML (the page sets textContent).
    private static readonly JsonSerializerOptions JsonOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private static IResult Json(JsonNode body, int status = StatusCodes.Status200OK) =>
        Results.Content(body.ToJsonString(JsonOptions), "application/json; charset=utf-8", Encoding.UTF8, status);

    private static IResult Error(int status, string message) => Json(new JsonObject { ["error"] = message }, status);

    private async Task<IResult> PredictAsync(HttpContext context)
    {
        long start = context.Items[nameof(Stopwatch)] is long s ? s : Stopwatch.GetTimestamp();
        int top = 5;
        if (context.Request.Query.TryGetValue("top", out var topText)
            && !(int.TryParse(topText.ToString(), NumberStyles.None, CultureInfo.InvariantCulture, out top) && top > 0))
        {
            return Error(StatusCodes.Status400BadRequest, $"top must be a positive integer; got '{topText}'.");
        }

        if (Interlocked.Increment(ref admitted) > options.Queue)
        {
            Interlocked.Decrement(ref admitted);
            return Error(StatusCodes.Status429TooManyRequests, $"the server is busy: {options.Queue} requests are queued (--queue); retry later.");
        }

        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
        deadline.CancelAfter(options.RequestTimeout);
        try
        {
            var (bytes, name) = await ImageUpload.ReadAsync(context.Request, options.MaxUploadBytes, deadline.Token);
            var scores = await ClassifyAsync(bytes, name, top, deadline.Token);
            var answer = PredictionJson.Item(name, scores);
            answer["latency_ms"] = Math.Round(Stopwatch.GetElapsedTime(start).TotalMilliseconds, 3);
            return Json(answer);
        }
        catch (RequestRejectedException e)
        {
            return Error(e.Status, e.Message);
        }
        catch (BadHttpRequestException e)
        {
            // Kestrel's own limits (body size, data rate) while the body was read.
            return Error(e.StatusCode, e.StatusCode == StatusCodes.Status413PayloadTooLarge
                ? $"the upload is larger than the server's limit of {options.MaxUploadBytes} bytes (--max-upload-mb)."
                : $"the request could not be read ({e.Message}).");
        }
        catch (OperationCanceledException) when (!context.RequestAborted.IsCancellationRequested)
        {
            return Error(StatusCodes.Status503ServiceUnavailable,
                string.Create(CultureInfo.InvariantCulture, $"the prediction was not answered within the request timeout of {options.RequestTimeout.TotalSeconds} s."));
        }
        catch (OperationCanceledException)
        {
            return Results.Empty; // the client has gone
        }
        catch (Exception e)
        {
            // Not the request's fault (the engine failed, memory ran out): this request fails, the server goes on.
            app.Logger.LogError(e, "prediction failed");
            return Error(StatusCodes.Status500InternalServerError, $"the prediction failed: {e.Message}");
        }
        finally
        {
            Interlocked.Decrement(ref admitted);
        }
    }

    private async Task<IReadOnlyList<Classification.ClassScore>> ClassifyAsync(byte[] bytes, string name, int top, CancellationToken cancel)
    {
        int sample = batcher.SampleLength;
        float[] input = ArrayPool<float>.Shared.Rent(sample);
        bool queued = false;
        try
        {
            await decoders.WaitAsync(cancel);
            try
            {
                model.Classifier.Preprocess(bytes, name, decodeOptions, input.AsSpan(0, sample));
            }
            catch (ImageDecodeException e)
            {
                throw new RequestRejectedException(StatusCodes.Status400BadRequest, e.Problem);
            }
            finally
            {
                decoders.Release();
            }

            var answer = batcher.TryEnqueue(input, top, cancel)
                ?? throw new RequestRejectedException(StatusCodes.Status503ServiceUnavailable, "the server is stopping.");
            queued = true;
            return await answer.WaitAsync(cancel);
        }
        finally
        {
            if (!queued)
            {
                ArrayPool<float>.Shared.Return(input);
            }
        }
    }
}
