using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json.Nodes;

namespace MobileOne.Tests.Serving;

/// <summary>A fact that is reported as skipped, with the reason, where Debian's chromium is not installed.</summary>
public sealed class ChromiumFactAttribute : FactAttribute
{
    public ChromiumFactAttribute()
    {
        Skip = Chromium.Executable is null ? "chromium is not installed (apt-get install chromium)" : null;
    }
}

/// <summary>
/// Headless Chromium driven over the Chrome DevTools Protocol (a WebSocket to one page target): commands by id,
/// events waited for by name. Enough for loading a page, setting a file input, reading the DOM and taking a
/// screenshot; no Playwright.
/// </summary>
internal sealed class Chromium : IAsyncDisposable
{
    private readonly Process process;
    private readonly TempDir profile;
    private readonly ClientWebSocket socket = new();
    private readonly ConcurrentDictionary<int, TaskCompletionSource<JsonNode>> pending = new();
    private readonly ConcurrentDictionary<string, TaskCompletionSource<JsonNode>> awaited = new();
    private readonly Task receiving;
    private int nextId;

    private Chromium(Process process, TempDir profile, Uri page)
    {
        this.process = process;
        this.profile = profile;
        socket.ConnectAsync(page, CancellationToken.None).GetAwaiter().GetResult();
        receiving = Task.Run(ReceiveAsync);
    }

    public static string? Executable { get; } =
        new[] { "/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome" }.FirstOrDefault(File.Exists);

    /// <summary>Starts a headless browser (a fresh profile, window <paramref name="width"/> x <paramref name="height"/>) and attaches to its page.</summary>
    public static async Task<Chromium> StartAsync(int width, int height)
    {
        var profile = new TempDir();
        var info = new ProcessStartInfo(Executable!) { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (string a in new[]
        {
            "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check", "--hide-scrollbars",
            "--remote-debugging-port=0", $"--user-data-dir={profile.Path}", $"--window-size={width},{height}", "about:blank",
        })
        {
            info.ArgumentList.Add(a);
        }

        var process = Process.Start(info)!;
        _ = process.StandardError.ReadToEndAsync();
        _ = process.StandardOutput.ReadToEndAsync();
        // Chromium writes the port it took (and the browser's path) here once it listens.
        string portFile = profile.File("DevToolsActivePort");
        var clock = Stopwatch.StartNew();
        string[] lines = [];
        while (lines.Length < 2)
        {
            if (clock.Elapsed > TimeSpan.FromSeconds(30) || process.HasExited)
            {
                process.Kill(entireProcessTree: true);
                throw new TimeoutException("chromium did not open its DevTools port.");
            }

            await Task.Delay(50);
            try
            {
                lines = File.Exists(portFile) ? File.ReadAllLines(portFile) : [];
            }
            catch (IOException)
            {
            }
        }

        using var http = new HttpClient();
        var targets = JsonNode.Parse(await http.GetStringAsync($"http://127.0.0.1:{lines[0]}/json/list"))!.AsArray();
        string socket = (string)targets.First(t => (string)t!["type"]! == "page")!["webSocketDebuggerUrl"]!;
        return new Chromium(process, profile, new Uri(socket));
    }

    /// <summary>Sends a command and returns its result (throws on a protocol error).</summary>
    public async Task<JsonNode> SendAsync(string method, JsonObject? parameters = null)
    {
        int id = Interlocked.Increment(ref nextId);
        var done = new TaskCompletionSource<JsonNode>(TaskCreationOptions.RunContinuationsAsynchronously);
        pending[id] = done;
        var message = new JsonObject { ["id"] = id, ["method"] = method, ["params"] = parameters ?? [] };
        await socket.SendAsync(Encoding.UTF8.GetBytes(message.ToJsonString()), WebSocketMessageType.Text, true, CancellationToken.None);
        return await done.Task.WaitAsync(TimeSpan.FromSeconds(30));
    }

    /// <summary>Arms a wait for the next event <paramref name="method"/>; await the task after causing it.</summary>
    public Task<JsonNode> NextEvent(string method) =>
        awaited.GetOrAdd(method, _ => new TaskCompletionSource<JsonNode>(TaskCreationOptions.RunContinuationsAsynchronously)).Task.WaitAsync(TimeSpan.FromSeconds(30));

    /// <summary>Evaluates a JavaScript expression in the page and returns its value (JSON-serializable).</summary>
    public async Task<JsonNode?> EvaluateAsync(string expression)
    {
        var result = await SendAsync("Runtime.evaluate", new JsonObject { ["expression"] = expression, ["returnByValue"] = true, ["awaitPromise"] = true });
        return result["exceptionDetails"] is { } error
            ? throw new InvalidOperationException($"{expression}: {error.ToJsonString()}")
            : result["result"]!["value"]?.DeepClone();
    }

    /// <summary>Polls <paramref name="condition"/> (a JavaScript expression) until it is true.</summary>
    public async Task WaitForAsync(string condition, TimeSpan limit)
    {
        var clock = Stopwatch.StartNew();
        while (!(await EvaluateAsync($"Boolean({condition})"))!.GetValue<bool>())
        {
            if (clock.Elapsed > limit)
            {
                throw new TimeoutException($"the page never satisfied {condition}");
            }

            await Task.Delay(50);
        }
    }

    private async Task ReceiveAsync()
    {
        var buffer = new byte[1 << 16];
        var message = new MemoryStream();
        while (socket.State == WebSocketState.Open)
        {
            WebSocketReceiveResult received;
            try
            {
                received = await socket.ReceiveAsync(buffer, CancellationToken.None);
            }
            catch (WebSocketException)
            {
                break;
            }

            if (received.MessageType == WebSocketMessageType.Close)
            {
                break;
            }

            message.Write(buffer, 0, received.Count);
            if (!received.EndOfMessage)
            {
                continue;
            }

            var node = JsonNode.Parse(message.ToArray())!;
            message.SetLength(0);
            if (node["id"] is { } id && pending.TryRemove((int)id, out var done))
            {
                if (node["error"] is { } error)
                {
                    done.TrySetException(new InvalidOperationException(error.ToJsonString()));
                }
                else
                {
                    done.TrySetResult(node["result"]!.DeepClone());
                }
            }
            else if (node["method"] is { } method && awaited.TryRemove((string)method!, out var waiter))
            {
                waiter.TrySetResult(node["params"]?.DeepClone() ?? new JsonObject());
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await SendAsync("Browser.close").WaitAsync(TimeSpan.FromSeconds(5));
        }
        catch (Exception e) when (e is TimeoutException or InvalidOperationException or WebSocketException)
        {
        }

        if (!process.WaitForExit(TimeSpan.FromSeconds(5)))
        {
            process.Kill(entireProcessTree: true);
        }

        socket.Dispose();
        await receiving.WaitAsync(TimeSpan.FromSeconds(5)).ContinueWith(_ => { }, TaskScheduler.Default);
        process.Dispose();
        profile.Dispose();
    }
}
