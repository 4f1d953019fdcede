using System.Collections.Concurrent;
using System.Globalization;
using System.Text;

namespace MobileOne.Cli.Serving;

/// <summary>
/// The server's counters, written in Prometheus' text exposition format (version 0.0.4) by `GET /metrics`:
/// requests and errors by route and status code, the latency of predictions, the sizes of engine batches, the
/// queue's depth and whether the model is ready. Updated from any thread.
/// </summary>
internal sealed class ServerMetrics
{
    /// <summary>Latency buckets in seconds, 1 ms to 10 s.</summary>
    private static readonly double[] LatencyBounds = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

    private readonly ConcurrentDictionary<(string Route, int Code), long> requests = new();
    private readonly Histogram latency = new(LatencyBounds);
    private readonly Histogram batches;

    /// <param name="maxBatch">The largest batch: every size up to it is a bucket of its own (up to 32, then powers of two).</param>
    public ServerMetrics(int maxBatch)
    {
        var bounds = new SortedSet<double>();
        for (int b = 1; b <= Math.Min(maxBatch, 32); b++)
        {
            bounds.Add(b);
        }

        for (int b = 64; b < maxBatch; b *= 2)
        {
            bounds.Add(b);
        }

        bounds.Add(maxBatch);
        batches = new Histogram([.. bounds]);
    }

    /// <summary>One answered request; <paramref name="route"/> is the endpoint's pattern (or "other"), so labels stay few.</summary>
    public void Request(string route, int code, TimeSpan elapsed)
    {
        requests.AddOrUpdate((route, code), 1, (_, n) => n + 1);
        if (route == ClassificationServer.PredictRoute)
        {
            latency.Observe(elapsed.TotalSeconds);
        }
    }

    /// <summary>One engine run of <paramref name="size"/> images.</summary>
    public void Batch(int size) => batches.Observe(size);

    /// <summary>Requests answered with <paramref name="code"/> so far (tests and the drain message read it).</summary>
    public long Count(string route, int code) => requests.TryGetValue((route, code), out long n) ? n : 0;

    /// <summary>The text of GET /metrics; <paramref name="queued"/> and <paramref name="ready"/> are the server's, read at the call.</summary>
    public string Exposition(int queued, bool ready)
    {
        var text = new StringBuilder();
        var answered = requests.ToArray().OrderBy(p => p.Key.Route, StringComparer.Ordinal).ThenBy(p => p.Key.Code).ToArray();
        Header(text, "mobileone_http_requests_total", "counter", "HTTP requests answered, by route and status code.");
        foreach (var ((route, code), n) in answered)
        {
            text.Append(CultureInfo.InvariantCulture, $"mobileone_http_requests_total{{route=\"{route}\",code=\"{code}\"}} {n}\n");
        }

        Header(text, "mobileone_http_request_errors_total", "counter", "HTTP requests answered with a status of 400 or more, by route and status code.");
        foreach (var ((route, code), n) in answered.Where(p => p.Key.Code >= 400))
        {
            text.Append(CultureInfo.InvariantCulture, $"mobileone_http_request_errors_total{{route=\"{route}\",code=\"{code}\"}} {n}\n");
        }

        Header(text, "mobileone_predict_latency_seconds", "histogram", "Time from a prediction request's arrival to its answer, whatever the answer.");
        latency.Write(text, "mobileone_predict_latency_seconds");
        Header(text, "mobileone_batch_size", "histogram", "Images per engine run.");
        batches.Write(text, "mobileone_batch_size");
        Header(text, "mobileone_queue_depth", "gauge", "Prediction requests admitted and not yet answered.");
        text.Append(CultureInfo.InvariantCulture, $"mobileone_queue_depth {queued}\n");
        Header(text, "mobileone_model_ready", "gauge", "1 while the model is loaded and the server takes requests.");
        text.Append(ready ? "mobileone_model_ready 1\n" : "mobileone_model_ready 0\n");
        return text.ToString();
    }

    private static void Header(StringBuilder text, string name, string type, string help) =>
        text.Append("# HELP ").Append(name).Append(' ').Append(help).Append("\n# TYPE ").Append(name).Append(' ').Append(type).Append('\n');

    private static string Number(double v) => v.ToString("R", CultureInfo.InvariantCulture);

    /// <summary>A Prometheus histogram: cumulative buckets by upper bound, sum and count.</summary>
    private sealed class Histogram(double[] bounds)
    {
        private readonly long[] counts = new long[bounds.Length + 1];
        private readonly Lock gate = new();
        private double sum;

        /// <summary>Counts <paramref name="value"/> in the first bucket whose bound it does not pass.</summary>
        public void Observe(double value)
        {
            int i = 0;
            while (i < bounds.Length && value > bounds[i])
            {
                i++;
            }

            lock (gate)
            {
                counts[i]++;
                sum += value;
            }
        }

        /// <summary>Appends the cumulative buckets, the sum and the count, from one consistent snapshot.</summary>
        public void Write(StringBuilder text, string name)
        {
            long[] snapshot;
            double total;
            lock (gate)
            {
                snapshot = (long[])counts.Clone();
                total = sum;
            }

            long cumulative = 0;
            for (int i = 0; i < bounds.Length; i++)
            {
                cumulative += snapshot[i];
                text.Append(CultureInfo.InvariantCulture, $"{name}_bucket{{le=\"{Number(bounds[i])}\"}} {cumulative}\n");
            }

            cumulative += snapshot[^1];
            text.Append(CultureInfo.InvariantCulture, $"{name}_bucket{{le=\"+Inf\"}} {cumulative}\n");
            text.Append(CultureInfo.InvariantCulture, $"{name}_sum {Number(total)}\n{name}_count {cumulative}\n");
        }
    }
}
