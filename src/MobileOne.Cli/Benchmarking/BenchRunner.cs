using System.Diagnostics;
using MobileOne.Graph;
using MobileOne.Inference;
using MobileOne.IO.Onnx;
using MobileOne.Models;

namespace MobileOne.Cli.Benchmarking;

/// <summary>
/// A network to benchmark, as the layer graph both engines run (a MobileOne in the form it is in, fused or with every
/// branch, or any other graph such as a study network), with the label the tables show; exported to ONNX once, on
/// first use.
/// </summary>
internal sealed class BenchModel
{
    private readonly Func<byte[]> export;
    private byte[]? onnx;

    /// <summary>A MobileOne as it is; its ONNX export keeps the exporter's MobileOne node names.</summary>
    public BenchModel(string label, MobileOneNetwork network)
        : this(label, network.ToGraph(), () => OnnxExporter.ToBytes(network, fuse: false))
    {
    }

    /// <summary>Any classifier graph (output [batch, classes]); exported with <see cref="OnnxExporter.ToBytes(LayerGraph, int)"/>.</summary>
    public BenchModel(string label, LayerGraph graph)
        : this(label, graph, () => OnnxExporter.ToBytes(graph))
    {
    }

    /// <summary>An ONNX file as given: the managed engine runs its import, ONNX Runtime the file's own bytes.</summary>
    public BenchModel(string label, LayerGraph graph, byte[] onnxFile)
        : this(label, graph, () => onnxFile)
    {
    }

    private BenchModel(string label, LayerGraph graph, Func<byte[]> export)
    {
        Label = label;
        Graph = graph;
        this.export = export;
    }

    public string Label { get; }

    /// <summary>Which form is measured: "fused", "unfused" (train-time branches) or "plain" (a family without a fused form).</summary>
    public string Form { get; init; } = "fused";

    public LayerGraph Graph { get; }

    public int InChannels => Graph.InputChannels;

    /// <summary>Outputs per image (the classes of a classifier).</summary>
    public int OutputChannels => Graph.ChannelsOf(Graph.Output);

    public byte[] Onnx => onnx ??= export();
}

/// <summary>One layer's share of a managed run, from <see cref="CompiledModel.Run(ReadOnlySpan{float}, int, int, int, Span{float}, Span{long})"/>'s layer timing.</summary>
internal sealed record LayerProfile(string Name, string Kind, string Algorithm, int InChannels, int OutChannels, int OutHeight, int OutWidth, long MacsPerImage, double Ms, double Share);

/// <summary>What the run loop is asked to do for every (model, threads, batch) combination.</summary>
internal sealed record BenchSettings(
    IReadOnlyList<string> Engines,
    int Size,
    int? Iterations,
    int? Warmup,
    double BudgetSeconds,
    double PeakGflopsPerCore,
    InferenceOptions? Managed = null,
    bool Profile = false);

/// <summary>One engine's timings for one combination.</summary>
internal sealed record BenchResult(
    string Engine,
    string Variant,
    int Threads,
    int Batch,
    int Size,
    double MedianMs,
    double P10Ms,
    double P90Ms,
    double Gflops,
    double PeakShare,
    double MaxAbsDiff,
    double MaxAbsLogit,
    int Iterations,
    int Warmup,
    long MacsPerImage)
{
    /// <summary>The model's form (see <see cref="BenchModel.Form"/>).</summary>
    public string Form { get; init; } = "fused";

    /// <summary>With --profile, the managed engine's time per layer (each layer run as its own step).</summary>
    public IReadOnlyList<LayerProfile>? Profile { get; init; }
}

/// <summary>
/// The measurement protocol: same input bytes for every engine, outputs compared with the managed engine
/// before any timing, warm-up, then every run timed on its own, the engines alternating in blocks so that
/// drift on a shared machine (other processes, frequency changes) hits all of them alike.
/// </summary>
internal static class BenchRunner
{
    public const int MinAutoIterations = 10;
    public const int MaxAutoIterations = 2000;
    private const int Rounds = 10;
    private const double AutoWarmupSeconds = 0.5;
    private const int MinAutoWarmup = 2;
    private const int InputSeed = 1234;

    public static IReadOnlyList<BenchResult> Measure(BenchModel model, int threads, int batch, BenchSettings settings)
    {
        var input = new float[batch * model.InChannels * settings.Size * settings.Size];
        WeightInit.FillNormal(new Random(InputSeed), input, 0, 1);
        byte[] onnx = settings.Engines.Contains(EngineNames.OnnxRuntime) ? model.Onnx : [];
        long macs = model.Graph.MultiplyAccumulates(settings.Size, settings.Size);

        var engines = settings.Engines.Select(e => EngineNames.Create(e, model, onnx, input, batch, settings.Size, threads, settings.Managed)).ToList();
        try
        {
            var (reference, maxLogit) = ReferenceOutput(engines, model, input, batch, settings.Size, threads);
            var diffs = engines.Select(e => MaxAbsDiff(e.Output, reference)).ToArray();

            var warmupCounts = new int[engines.Count];
            var estimates = new double[engines.Count];
            for (int i = 0; i < engines.Count; i++)
            {
                (warmupCounts[i], estimates[i]) = WarmUp(engines[i], settings.Warmup);
            }

            int[] targets = estimates
                .Select(s => settings.Iterations ?? (int)Math.Clamp(Math.Round(settings.BudgetSeconds / s), MinAutoIterations, MaxAutoIterations))
                .ToArray();
            var times = TimeInterleaved(engines, targets);
            var profile = settings.Profile && engines.OfType<ManagedEngine>().FirstOrDefault() is { } profiled
                ? Profile(profiled, batch, settings.Size, Math.Min(targets[engines.IndexOf(profiled)], 200))
                : null;

            return engines.Select((e, i) =>
            {
                double[] sorted = times[i].Order().ToArray();
                double median = Percentile(sorted, 0.5);
                double gflops = 2.0 * macs * batch / (median / 1e3) / 1e9;
                return new BenchResult(
                    e.Name, model.Label, threads, batch, settings.Size,
                    median, Percentile(sorted, 0.1), Percentile(sorted, 0.9),
                    gflops, gflops / (settings.PeakGflopsPerCore * threads),
                    diffs[i], maxLogit, sorted.Length, warmupCounts[i], macs)
                {
                    Profile = e is ManagedEngine ? profile : null,
                    Form = model.Form,
                };
            }).ToList();
        }
        finally
        {
            foreach (var e in engines)
            {
                e.Dispose();
            }
        }
    }

    /// <summary>
    /// Runs the managed engine <paramref name="runs"/> more times with per-layer timing, as ONNX Runtime's profiler
    /// does: every layer is its own step (a depthwise + pointwise pair is not fused), so the sum is a little above
    /// the timed median; shares are of that sum.
    /// </summary>
    private static List<LayerProfile> Profile(ManagedEngine engine, int batch, int size, int runs)
    {
        var ticks = engine.Profile(runs);
        var shapes = engine.Model.DescribeLayers(size, size);
        double total = ticks.Sum();
        double msPerTick = 1000.0 / Stopwatch.Frequency / runs;
        return shapes.Select((s, i) => new LayerProfile(
            s.Layer.Name, s.Layer.Kind.ToString(), s.Layer.Algorithm, s.Layer.InChannels, s.Layer.OutChannels, s.OutHeight, s.OutWidth,
            s.MultiplyAccumulates, ticks[i] * msPerTick, total > 0 ? ticks[i] / total : 0)).ToList();
    }

    /// <summary>Linear interpolation between the closest ranks of an ascending array (numpy's default).</summary>
    public static double Percentile(IReadOnlyList<double> sorted, double q)
    {
        if (sorted.Count == 0)
        {
            throw new ArgumentException("No samples to take a percentile of.");
        }

        double position = q * (sorted.Count - 1);
        int lower = (int)Math.Floor(position);
        int upper = Math.Min(lower + 1, sorted.Count - 1);
        return sorted[lower] + ((position - lower) * (sorted[upper] - sorted[lower]));
    }

    /// <summary>The managed engine's output is the reference every engine is compared with; run it if it is not being timed.</summary>
    private static (float[] Output, double MaxAbsLogit) ReferenceOutput(List<IBenchEngine> engines, BenchModel model, float[] input, int batch, int size, int threads)
    {
        foreach (var e in engines)
        {
            e.Run();
        }

        float[] reference;
        if (engines.FirstOrDefault(e => e.Name == EngineNames.Managed) is { } managed)
        {
            reference = managed.Output.ToArray();
        }
        else
        {
            using var extra = EngineNames.Create(EngineNames.Managed, model, [], input, batch, size, threads);
            extra.Run();
            reference = extra.Output.ToArray();
        }

        double maxLogit = reference.Length == 0 ? 0 : reference.Max(v => Math.Abs((double)v));
        return (reference, maxLogit);
    }

    private static double MaxAbsDiff(ReadOnlySpan<float> a, float[] b)
    {
        double m = 0;
        for (int i = 0; i < a.Length; i++)
        {
            double d = Math.Abs((double)a[i] - b[i]);
            m = double.IsNaN(d) ? double.NaN : Math.Max(m, d);
            if (double.IsNaN(m))
            {
                return m;
            }
        }

        return m;
    }

    /// <summary>Runs the requested warm-up (or about half a second's worth) and returns the median warm-up run time in seconds.</summary>
    private static (int Count, double SecondsPerRun) WarmUp(IBenchEngine engine, int? requested)
    {
        var samples = new List<double>();
        long start = Stopwatch.GetTimestamp();
        while (requested is int n ? samples.Count < n
               : samples.Count < MinAutoWarmup || Stopwatch.GetElapsedTime(start).TotalSeconds < AutoWarmupSeconds)
        {
            long t0 = Stopwatch.GetTimestamp();
            engine.Run();
            samples.Add(Stopwatch.GetElapsedTime(t0).TotalSeconds);
        }

        if (samples.Count == 0)
        {
            // --warmup 0: one untimed-for-statistics run still gives the auto iteration count its estimate.
            long t0 = Stopwatch.GetTimestamp();
            engine.Run();
            return (0, Stopwatch.GetElapsedTime(t0).TotalSeconds);
        }

        return (samples.Count, Percentile(samples.Order().ToArray(), 0.5));
    }

    /// <summary>Each engine runs its target count in about <see cref="Rounds"/> blocks; the order of engines alternates every round.</summary>
    private static List<double>[] TimeInterleaved(List<IBenchEngine> engines, int[] targets)
    {
        var times = targets.Select(t => new List<double>(t)).ToArray();
        int[] blocks = targets.Select(t => Math.Max(1, (t + Rounds - 1) / Rounds)).ToArray();
        for (int round = 0; times.Select((t, i) => t.Count < targets[i]).Any(left => left); round++)
        {
            for (int j = 0; j < engines.Count; j++)
            {
                int i = round % 2 == 0 ? j : engines.Count - 1 - j;
                var engine = engines[i];
                int count = Math.Min(blocks[i], targets[i] - times[i].Count);
                for (int r = 0; r < count; r++)
                {
                    long t0 = Stopwatch.GetTimestamp();
                    engine.Run();
                    times[i].Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
                }
            }
        }

        return times;
    }
}
