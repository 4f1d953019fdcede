// Load test of `mobileone serve`, loopback only, bounded in time:
//   1. good requests (one image, raw body) at each concurrency for --seconds: throughput, p50/p99 latency as the
//      client sees it, and the engine batch sizes the server counted meanwhile (its /metrics);
//   2. a bad-input flood (truncated, empty, garbage, giant declared dimensions, wrong content type, too large)
//      at --flood-concurrency for --seconds with a good request interleaved after every bad one: counts by status,
//      zero 5xx expected, every good one must give the warm-up's top-1;
//   3. the server's memory (VmRSS, VmHWM from /proc/PID/status) after each phase and at most during the flood.
// Run from the repository root against a running server:
//   dotnet run tools/serving/loadtest.cs -- --url http://127.0.0.1:8080 --image tests/MobileOne.Tests/Predict/Images/rgb.jpg --pid PID
using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;

var options = new Dictionary<string, string>(StringComparer.Ordinal);
for (int i = 0; i + 1 < args.Length; i += 2)
{
    options[args[i]] = args[i + 1];
}

string Option(string name, string? fallback = null) =>
    options.TryGetValue(name, out string? v) ? v : fallback ?? throw new ArgumentException($"{name} is required.");

var url = new Uri(Option("--url", "http://127.0.0.1:8080"));
if (!(url.IsLoopback || (IPAddress.TryParse(url.Host, out var ip) && IPAddress.IsLoopback(ip))))
{
    Console.Error.WriteLine($"error: --url {url} is not a loopback address; this tool only loads a server on this machine.");
    return 1;
}

byte[] image = File.ReadAllBytes(Option("--image"));
string imageType = Path.GetExtension(Option("--image")).ToLowerInvariant() is ".png" ? "image/png" : "image/jpeg";
int pid = int.Parse(Option("--pid", "0"), CultureInfo.InvariantCulture);
double seconds = double.Parse(Option("--seconds", "10"), CultureInfo.InvariantCulture);
int[] levels = Option("--concurrency", "1,8,32").Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray();
int floodConcurrency = int.Parse(Option("--flood-concurrency", "16"), CultureInfo.InvariantCulture);
long maxUpload = long.Parse(Option("--max-upload-mb", "20"), CultureInfo.InvariantCulture) << 20;

using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 256 }) { BaseAddress = url, Timeout = TimeSpan.FromSeconds(60) };
var model = JsonNode.Parse(await http.GetStringAsync("/v1/model"))!;
Console.WriteLine($"server: {url} model {model["variant"]} ({model["source"]}), {model["image_size"]}x{model["image_size"]}, {model["classes"]} classes");
Console.WriteLine($"client: {Environment.ProcessorCount} cores, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC; image {Option("--image")} ({image.Length} bytes)");

// Warm-up, and the answer every good request must repeat.
int expectedTop = -1;
for (int i = 0; i < 20; i++)
{
    var (status, body, _) = await Post(image, imageType);
    if (status != 200)
    {
        Console.Error.WriteLine($"error: warm-up request answered {status}: {body}");
        return 1;
    }

    expectedTop = (int)JsonNode.Parse(body)!["top"]![0]!["index"]!;
}

Console.WriteLine($"warm-up: 20 requests, top-1 class {expectedTop}; {Memory()}");
Console.WriteLine();
Console.WriteLine("| concurrency | requests | throughput (img/s) | p50 (ms) | p99 (ms) | non-200 | batches | mean batch | batch sizes seen (size: count) | server RSS after |");
Console.WriteLine("|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|");
foreach (int concurrency in levels)
{
    var before = await BatchHistogram();
    var latencies = new List<double>();
    int failures = 0;
    var clock = Stopwatch.StartNew();
    await Task.WhenAll(Enumerable.Range(0, concurrency).Select(async _ =>
    {
        while (clock.Elapsed.TotalSeconds < seconds)
        {
            var (status, _, ms) = await Post(image, imageType);
            lock (latencies)
            {
                latencies.Add(ms);
                failures += status == 200 ? 0 : 1;
            }
        }
    }));
    double elapsed = clock.Elapsed.TotalSeconds;
    var after = await BatchHistogram();
    var sizes = after.Select((n, i) => (Size: i + 1, Count: n - (i < before.Length ? before[i] : 0))).Where(s => s.Count > 0).ToArray();
    long batches = sizes.Sum(s => s.Count);
    double mean = batches == 0 ? 0 : sizes.Sum(s => (double)s.Size * s.Count) / batches;
    latencies.Sort();
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"| {concurrency} | {latencies.Count} | {latencies.Count / elapsed:0.0} | {Percentile(latencies, 0.50):0.0} | {Percentile(latencies, 0.99):0.0} | {failures} | {batches} | {mean:0.00} | {string.Join(", ", sizes.Select(s => $"{s.Size}: {s.Count}"))} | {RssMb():0} MB |"));
}

// The flood: every bad request is followed by a good one on the same worker.
var garbage = new byte[4096];
new Random(7).NextBytes(garbage);
var bad = new (string Name, Func<Task<(int, string, double)>> Send)[]
{
    ("truncated", () => Post(image[..(image.Length / 2)], imageType)),
    ("empty", () => Post([], imageType)),
    ("garbage", () => Post(garbage, "image/jpeg")),
    ("giant dimensions (65535 x 65535 PNG header)", () => Post(PngHeaderOnly(65535, 65535), "image/png")),
    ("wrong content type (text/plain)", () => Post(image, "text/plain")),
    // Sent with Expect: 100-continue, as curl sends large bodies: the server refuses from the declared length and
    // the body is never sent. Without it, the server answers 413 and closes the connection while the client is
    // still sending, which the client sees as a reset (counted as status 0).
    ("too large (declared, --max-upload-mb + 1 MiB)", () => Post(new byte[maxUpload + (1 << 20)], "image/png", expectContinue: true)),
};
var counts = new Dictionary<string, Dictionary<int, int>>();
int goodAnswered = 0, goodWrong = 0, fiveHundreds = 0;
double peakRss = 0;
var flood = Stopwatch.StartNew();
using var sampling = new CancellationTokenSource();
var sampler = Task.Run(async () =>
{
    while (!sampling.IsCancellationRequested)
    {
        peakRss = Math.Max(peakRss, RssMb());
        await Task.Delay(200);
    }
});
await Task.WhenAll(Enumerable.Range(0, floodConcurrency).Select(async worker =>
{
    for (int i = worker; flood.Elapsed.TotalSeconds < seconds; i++)
    {
        var (name, send) = bad[i % bad.Length];
        var (status, _, _) = await send();
        var (goodStatus, body, _) = await Post(image, imageType);
        bool right = goodStatus == 200 && (int)JsonNode.Parse(body)!["top"]![0]!["index"]! == expectedTop;
        lock (counts)
        {
            var byStatus = counts.TryGetValue(name, out var c) ? c : counts[name] = [];
            byStatus[status] = byStatus.GetValueOrDefault(status) + 1;
            fiveHundreds += (status >= 500 ? 1 : 0) + (goodStatus >= 500 ? 1 : 0);
            goodAnswered += right ? 1 : 0;
            goodWrong += right ? 0 : 1;
        }
    }
}));
await sampling.CancelAsync();
await sampler;
Console.WriteLine();
Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"bad-input flood: {floodConcurrency} workers, {flood.Elapsed.TotalSeconds:0.0} s, each bad request followed by a good one"));
Console.WriteLine();
Console.WriteLine("| bad input | answers (status: count) |");
Console.WriteLine("|---|---|");
foreach (var (name, _) in bad)
{
    Console.WriteLine($"| {name} | {string.Join(", ", counts.GetValueOrDefault(name, []).OrderBy(p => p.Key).Select(p => $"{p.Key}: {p.Value}"))} |");
}

Console.WriteLine();
Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
    $"interleaved good requests: {goodAnswered} answered with the right top-1, {goodWrong} not; 5xx answers: {fiveHundreds}; server RSS peak during the flood {peakRss:0} MB; after: {Memory()}"));
return fiveHundreds == 0 && goodWrong == 0 ? 0 : 1;

async Task<(int Status, string Body, double Ms)> Post(byte[] body, string contentType, bool expectContinue = false)
{
    using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/predict") { Content = new ByteArrayContent(body) };
    request.Content.Headers.TryAddWithoutValidation("Content-Type", contentType);
    request.Headers.ExpectContinue = expectContinue;
    long start = Stopwatch.GetTimestamp();
    try
    {
        using var response = await http.SendAsync(request);
        string text = await response.Content.ReadAsStringAsync();
        return ((int)response.StatusCode, text, Stopwatch.GetElapsedTime(start).TotalMilliseconds);
    }
    catch (HttpRequestException e) when (e.InnerException is IOException)
    {
        // The server may close the connection after refusing a body it will not read (413): a refusal, not a failure.
        return (0, e.Message, Stopwatch.GetElapsedTime(start).TotalMilliseconds);
    }
}

// Cumulative bucket counts of mobileone_batch_size turned into counts per size (le="1", le="2", ...).
async Task<long[]> BatchHistogram()
{
    string text = await http.GetStringAsync("/metrics");
    var cumulative = new List<(int Size, long Count)>();
    foreach (string line in text.Split('\n'))
    {
        const string Prefix = "mobileone_batch_size_bucket{le=\"";
        if (line.StartsWith(Prefix, StringComparison.Ordinal) && !line.Contains("+Inf", StringComparison.Ordinal))
        {
            int end = line.IndexOf('"', Prefix.Length);
            cumulative.Add((int.Parse(line[Prefix.Length..end], CultureInfo.InvariantCulture), long.Parse(line[(line.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture)));
        }
    }

    var perSize = new long[cumulative.Count == 0 ? 0 : cumulative[^1].Size];
    long previous = 0;
    foreach (var (size, count) in cumulative)
    {
        perSize[size - 1] = count - previous; // sizes between two bounds (above 32) are counted at the upper bound
        previous = count;
    }

    return perSize;
}

double RssMb() => Status("VmRSS") / 1024.0;

string Memory() => pid == 0 ? "server memory not watched (no --pid)" : string.Create(CultureInfo.InvariantCulture, $"server VmRSS {Status("VmRSS") / 1024.0:0} MB, VmHWM {Status("VmHWM") / 1024.0:0} MB");

long Status(string field)
{
    if (pid == 0)
    {
        return 0;
    }

    string line = File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith(field + ":", StringComparison.Ordinal));
    return long.Parse(line[(field.Length + 1)..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
}

static double Percentile(List<double> sorted, double p) => sorted.Count == 0 ? 0 : sorted[Math.Min(sorted.Count - 1, (int)Math.Ceiling(p * sorted.Count) - 1)];

// A PNG holding only its header (RGB, 8 bits) and an empty IDAT: it declares width x height and nothing more.
static byte[] PngHeaderOnly(int width, int height)
{
    var png = new List<byte>([0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A]);
    var ihdr = new byte[13];
    BinaryPrimitives.WriteInt32BigEndian(ihdr, width);
    BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), height);
    ihdr[8] = 8;
    ihdr[9] = 2;
    Chunk(png, "IHDR", ihdr);
    Chunk(png, "IDAT", [0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]);
    Chunk(png, "IEND", []);
    return [.. png];

    static void Chunk(List<byte> png, string type, byte[] data)
    {
        var field = new byte[4];
        BinaryPrimitives.WriteInt32BigEndian(field, data.Length);
        png.AddRange(field);
        byte[] typed = [.. Encoding.ASCII.GetBytes(type), .. data];
        png.AddRange(typed);
        BinaryPrimitives.WriteUInt32BigEndian(field, Crc32(typed));
        png.AddRange(field);
    }

    static uint Crc32(byte[] bytes)
    {
        uint crc = 0xFFFFFFFF;
        foreach (byte b in bytes)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++)
            {
                crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB88320 : crc >> 1;
            }
        }

        return ~crc;
    }
}
