using System.Diagnostics;
using System.Globalization;
using MobileOne.Inference;
using MobileOne.Kernels;
using MobileOne.Models;

// Engine timing harness (not part of the CLI): warm-up, then median / p10 / p90 over many runs, and with
// --profile a per-layer-kind breakdown in GFLOP/s. Usage:
//   dotnet run -c Release --project benchmarks/MobileOne.Benchmarks -- [--model s0,s1] [--threads 1,2] [--runs 300]
//       [--warmup 30] [--size 224] [--batch 1] [--isa auto] [--profile] [--layers] [--check-alloc]
var options = ParseArgs(args);
string[] models = options.GetValueOrDefault("model", "s0").Split(',');
int[] threadCounts = options.GetValueOrDefault("threads", "1").Split(',').Select(int.Parse).ToArray();
int runs = int.Parse(options.GetValueOrDefault("runs", "300"), CultureInfo.InvariantCulture);
int warmup = int.Parse(options.GetValueOrDefault("warmup", "30"), CultureInfo.InvariantCulture);
int size = int.Parse(options.GetValueOrDefault("size", "224"), CultureInfo.InvariantCulture);
int batch = int.Parse(options.GetValueOrDefault("batch", "1"), CultureInfo.InvariantCulture);
var isa = Enum.Parse<IsaLevel>(options.GetValueOrDefault("isa", "auto"), ignoreCase: true);
bool profile = options.ContainsKey("profile");
bool perLayer = options.ContainsKey("layers");
bool checkAlloc = options.ContainsKey("check-alloc");

foreach (string name in models)
{
    var config = MobileOneConfig.Parse(name);
    var network = MobileOneNetwork.Create(config, fused: true);
    WeightInit.Initialize(network, seed: 1);
    long macs = network.MultiplyAccumulates(size) * batch;
    var rng = new Random(3);
    var input = new float[batch * config.InChans * size * size];
    for (int i = 0; i < input.Length; i++)
    {
        input[i] = (float)(rng.NextDouble() * 2 - 1);
    }

    var logits = new float[batch * config.NumClasses];
    foreach (int threads in threadCounts)
    {
        using var model = CompiledModel.Compile(network, new InferenceOptions { Threads = threads, Isa = isa });
        for (int i = 0; i < warmup; i++)
        {
            model.Run(input, batch, size, size, logits);
        }

        if (checkAlloc)
        {
            long total0 = GC.GetTotalAllocatedBytes(precise: true);
            for (int i = 0; i < runs; i++)
            {
                model.Run(input, batch, size, size, logits);
            }

            long allocated = GC.GetTotalAllocatedBytes(precise: true) - total0;
            Console.WriteLine($"{config.Name} threads {threads}: {allocated} bytes allocated in the process over {runs} warm runs");
            if (allocated != 0)
            {
                Environment.ExitCode = 1;
            }

            continue;
        }

        var times = new double[runs];
        var ticks = new long[model.Layers.Count];
        for (int i = 0; i < runs; i++)
        {
            long start = Stopwatch.GetTimestamp();
            if (profile)
            {
                model.Run(input, batch, size, size, logits, ticks);
            }
            else
            {
                model.Run(input, batch, size, size, logits);
            }

            times[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        }

        Array.Sort(times);
        double median = times[runs / 2], p10 = times[runs / 10], p90 = times[runs * 9 / 10];
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{config.Name} {model.Isa} threads {threads} batch {batch} {size}x{size}: median {median:F2} ms (p10 {p10:F2}, p90 {p90:F2}), {2.0 * macs / median / 1e6:F1} GFLOP/s, {2.0 * macs / median / 1e6 / threads:F1} per thread"));
        if (profile)
        {
            var shapes = model.DescribeLayers(size, size);
            double tickMs = 1000.0 / Stopwatch.Frequency / runs;
            foreach (var group in shapes.Select((s, i) => (s, i)).GroupBy(x => x.s.Layer.Kind))
            {
                double ms = group.Sum(x => ticks[x.i]) * tickMs;
                long kindMacs = group.Sum(x => x.s.MultiplyAccumulates) * batch;
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"  {group.Key,-18} {group.Count(),3} layers {ms,8:F3} ms  {100 * ms / median,5:F1}%  {2.0 * kindMacs / ms / 1e6,6:F1} GFLOP/s"));
            }

            if (perLayer)
            {
                for (int i = 0; i < shapes.Count; i++)
                {
                    var s = shapes[i];
                    double ms = ticks[i] * tickMs;
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"    {s.Layer.Name,-18} {s.Layer.Kind,-14} {s.Layer.InChannels,5}->{s.Layer.OutChannels,-5} {s.InHeight,3}x{s.InWidth,-3} {ms * 1000,8:F1} us  {2.0 * s.MultiplyAccumulates * batch / ms / 1e6,6:F1} GFLOP/s"));
                }
            }
        }
    }
}

static Dictionary<string, string> ParseArgs(string[] args)
{
    var result = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
    for (int i = 0; i < args.Length; i++)
    {
        if (!args[i].StartsWith("--", StringComparison.Ordinal))
        {
            throw new ArgumentException($"Unexpected argument '{args[i]}'; options are --model, --threads, --runs, --warmup, --size, --batch, --isa, --profile, --layers, --check-alloc.");
        }

        string key = args[i][2..];
        bool flag = i + 1 >= args.Length || args[i + 1].StartsWith("--", StringComparison.Ordinal);
        result[key] = flag ? "true" : args[++i];
    }

    return result;
}
