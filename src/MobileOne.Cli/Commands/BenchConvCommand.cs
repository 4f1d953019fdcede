using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using MobileOne.Cli.Rendering;
using MobileOne.Inference;
using MobileOne.Kernels;
using MobileOne.Kernels.Conv;
using Spectre.Console;

namespace MobileOne.Cli.Commands;

/// <summary>
/// `mobileone bench-conv`: direct, im2col and im2win on the MobileOne stems and a ladder of dense 3x3 layers,
/// with their extra memory, checked against the training convolution (NCHW) before anything is timed.
/// </summary>
internal static class BenchConvCommand
{
    public static Command Create()
    {
        var iterations = new Option<int?>("--iterations") { Description = "Timed runs per layer and algorithm (default: as many as fit about 0.6 s, 25 to 400)." };
        var batch = new Option<int>("--batch") { Description = "Images per timed run, one kernel call each.", DefaultValueFactory = _ => 1 };
        var threads = new Option<int>("--threads") { Description = "Output-row bands per image, one thread and workspace each.", DefaultValueFactory = _ => 1 };
        var layer = new Option<string?>("--layer") { Description = $"Run only the layers whose name contains this text ({string.Join(", ", ConvBenchmark.Layers.Select(l => l.Name))})." };
        var simd = new Option<string>("--simd") { Description = "Register width: auto, 512 (AVX-512), 256 (AVX2) or scalar; a width the CPU lacks is an error.", DefaultValueFactory = _ => "auto" };
        var json = new Option<bool>("--json") { Description = "Print a JSON array (one object per layer and algorithm) instead of a table." };
        var command = new Command("bench-conv", "Time the direct, im2col and im2win convolution kernels (NHWC) on MobileOne stem and dense 3x3 layers.");
        command.Options.Add(iterations);
        command.Options.Add(batch);
        command.Options.Add(threads);
        command.Options.Add(layer);
        command.Options.Add(simd);
        command.Options.Add(json);
        CommandAction.Set(command, r =>
        {
            int? fixedIterations = r.GetValue(iterations) is int n ? Options.Positive(n, "--iterations") : null;
            var settings = new ConvBenchmark.Settings(
                fixedIterations, Options.Positive(r.GetValue(batch), "--batch"), Options.Positive(r.GetValue(threads), "--threads"), ParseSimd(r.GetValue(simd)));
            string? filter = r.GetValue(layer);
            var layers = ConvBenchmark.Layers.Where(l => filter is null || l.Name.Contains(filter, StringComparison.OrdinalIgnoreCase)).ToList();
            if (layers.Count == 0)
            {
                throw new ArgumentException($"--layer '{filter}' matches none of {string.Join(", ", ConvBenchmark.Layers.Select(l => l.Name))}.");
            }

            bool asJson = r.GetValue(json);
            ComputeThreads.Count = settings.Threads; // the row bands run on the library's worker pool
            var results = new List<ConvBenchmark.Result>();
            foreach (var l in layers)
            {
                if (!asJson && Console.IsOutputRedirected)
                {
                    Console.Error.WriteLine($"bench-conv: {l.Name}");
                }

                results.AddRange(ConvBenchmark.Run(l, settings));
            }

            if (asJson)
            {
                Report.WriteJson(new JsonArray(results.Select(x => (JsonNode)x.ToJson(settings)).ToArray()));
            }
            else
            {
                WriteTable(results, settings);
            }

            return 0;
        });
        return command;
    }

    /// <summary>The register width as the instruction set that has it.</summary>
    private static IsaLevel ParseSimd(string? value)
    {
        IsaLevel isa = value?.ToLowerInvariant() switch
        {
            null or "auto" => IsaLevel.Auto,
            "512" => IsaLevel.Avx512,
            "256" => IsaLevel.Avx2,
            "scalar" => IsaLevel.Scalar,
            _ => throw new ArgumentException($"--simd must be auto, 512, 256 or scalar; got '{value}'."),
        };

        return CompiledModel.IsSupported(isa)
            ? isa
            : throw new ArgumentException($"--simd {value} needs {(isa == IsaLevel.Avx512 ? "AVX-512F" : "AVX2 and FMA")}, which this CPU does not support.");
    }

    /// <summary>The register width an instruction set runs the kernels with, as reports name it.</summary>
    internal static string WidthName(IsaLevel isa) => isa switch
    {
        IsaLevel.Avx512 => "Vector512",
        IsaLevel.Avx2 => "Vector256",
        _ => "Scalar",
    };

    private static readonly string[] Headers =
        ["layer", "algorithm", "workspace", "packed weights", "median ms", "p10 ms", "p90 ms", "GFLOP/s", "vs direct", "vs im2col", "max |diff|"];

    private static void WriteTable(List<ConvBenchmark.Result> results, ConvBenchmark.Settings settings)
    {
        string title = $"bench-conv: NHWC, batch {settings.Batch}, {settings.Threads} thread(s), {(results.Count == 0 ? "-" : WidthName(results[0].Isa))} ({Environment.ProcessorCount} logical CPUs); " +
            "times per batch after warm-up, max |diff| against the reference convolution";
        var rows = results.Select(x => new[]
        {
            x.Layer.Name, x.Algorithm.ToString(), Bytes(x.WorkspaceBytes), Bytes(x.PackedWeightBytes),
            Num(x.MedianMs, "0.000"), Num(x.P10Ms, "0.000"), Num(x.P90Ms, "0.000"), Num(x.GflopPerSecond, "0.0"),
            Num(x.SpeedupVsDirect, "0.00") + "x", Num(x.SpeedupVsIm2Col, "0.00") + "x", x.MaxAbsDiff.ToString("0.0e+0", CultureInfo.InvariantCulture),
        }).ToList();

        if (Console.IsOutputRedirected)
        {
            Console.WriteLine(title);
            int[] widths = Headers.Select((h, i) => Math.Max(h.Length, rows.Count == 0 ? 0 : rows.Max(row => row[i].Length))).ToArray();
            Console.WriteLine(string.Join("  ", Headers.Select((h, i) => i < 2 ? h.PadRight(widths[i]) : h.PadLeft(widths[i]))));
            foreach (var row in rows)
            {
                Console.WriteLine(string.Join("  ", row.Select((v, i) => i < 2 ? v.PadRight(widths[i]) : v.PadLeft(widths[i]))));
            }

            return;
        }

        var table = new Table().Title(Markup.Escape(title));
        foreach (var (h, i) in Headers.Select((h, i) => (h, i)))
        {
            var column = new TableColumn(Markup.Escape(h));
            table.AddColumn(i < 2 ? column : column.RightAligned());
        }

        foreach (var row in rows)
        {
            table.AddRow(row.Select(Markup.Escape).ToArray());
        }

        AnsiConsole.Write(table);
    }

    private static string Num(double value, string format) => value.ToString(format, CultureInfo.InvariantCulture);

    private static string Bytes(long bytes) => bytes switch
    {
        0 => "0",
        < 1 << 20 => (bytes / 1024.0).ToString("0.0", CultureInfo.InvariantCulture) + " KiB",
        _ => (bytes / (1024.0 * 1024.0)).ToString("0.00", CultureInfo.InvariantCulture) + " MiB",
    };
}

/// <summary>The measurement behind bench-conv, kept apart from parsing and rendering.</summary>
internal static class ConvBenchmark
{
    public static readonly Layer[] Layers =
    [
        new("stem-s0", ConvGeometry.Square(1, 3, 224, 224, 48, 3, 2, 1, 1)),
        new("stem-s1..s4 = 224x224x3-64-s2", ConvGeometry.Square(1, 3, 224, 224, 64, 3, 2, 1, 1)),
        new("224x224x3-64-s1", ConvGeometry.Square(1, 3, 224, 224, 64, 3, 1, 1, 1)),
        new("56x56x64-64-s1", ConvGeometry.Square(1, 64, 56, 56, 64, 3, 1, 1, 1)),
        new("56x56x64-64-s2", ConvGeometry.Square(1, 64, 56, 56, 64, 3, 2, 1, 1)),
        new("28x28x128-128-s1", ConvGeometry.Square(1, 128, 28, 28, 128, 3, 1, 1, 1)),
        new("28x28x128-128-s2", ConvGeometry.Square(1, 128, 28, 28, 128, 3, 2, 1, 1)),
        new("14x14x256-256-s1", ConvGeometry.Square(1, 256, 14, 14, 256, 3, 1, 1, 1)),
        new("14x14x256-256-s2", ConvGeometry.Square(1, 256, 14, 14, 256, 3, 2, 1, 1)),
        new("7x7x512-512-s1", ConvGeometry.Square(1, 512, 7, 7, 512, 3, 1, 1, 1)),

        // Not dense 3x3, but what the rest of a fused MobileOne S0 runs: the evidence for ConvolutionKernels.Choose.
        new("dw3x3 112x112x48-s2", ConvGeometry.Square(1, 48, 112, 112, 48, 3, 2, 1, 48)),
        new("dw3x3 56x56x48-s1", ConvGeometry.Square(1, 48, 56, 56, 48, 3, 1, 1, 48)),
        new("dw3x3 28x28x128-s1", ConvGeometry.Square(1, 128, 28, 28, 128, 3, 1, 1, 128)),
        new("dw3x3 14x14x256-s1", ConvGeometry.Square(1, 256, 14, 14, 256, 3, 1, 1, 256)),
        new("pw 56x56x48-48", ConvGeometry.Square(1, 48, 56, 56, 48, 1, 1, 0, 1)),
        new("pw 28x28x128-128", ConvGeometry.Square(1, 128, 28, 28, 128, 1, 1, 0, 1)),
        new("pw 14x14x256-256", ConvGeometry.Square(1, 256, 14, 14, 256, 1, 1, 0, 1)),
        new("pw 7x7x256-1024", ConvGeometry.Square(1, 256, 7, 7, 1024, 1, 1, 0, 1)),
    ];

    private static readonly ConvAlgorithm[] Algorithms = [ConvAlgorithm.Direct, ConvAlgorithm.Im2Col, ConvAlgorithm.Im2Win];

    // Timed runs come in blocks of this many per algorithm, the algorithms taking turns, so a slow spell
    // on the shared machine hits all three instead of whichever happened to run then.
    private const int Block = 10;
    private const double AutoBudgetSeconds = 0.6;

    public static IEnumerable<Result> Run(Layer layer, Settings settings)
    {
        ConvGeometry g = layer.Geometry;
        var rng = new Random(12345);
        float[] weight = RandomArray(rng, g.OutChannels * g.PatchSize, 1.0 / Math.Sqrt(g.PatchSize));
        float[] bias = RandomArray(rng, g.OutChannels, 0.1);
        int inFloats = g.InHeight * g.InWidth * g.InChannels, outFloats = g.OutHeight * g.OutWidth * g.OutChannels;
        var images = Enumerable.Range(0, settings.Batch).Select(_ => RandomArray(rng, inFloats, 1.0)).ToArray();
        int[] cuts = Enumerable.Range(0, settings.Threads + 1).Select(t => (int)((long)t * g.OutHeight / settings.Threads)).ToArray();

        var runs = Algorithms.Select(a =>
        {
            var kernel = ConvolutionKernels.Create(a, g, weight, bias, settings.Isa);
            var workspaces = cuts.Zip(cuts.Skip(1), (s, e) => new float[kernel.WorkspaceFloats(e - s)]).ToArray();
            var outputs = Enumerable.Range(0, settings.Batch).Select(_ => new float[outFloats]).ToArray();
            return new AlgorithmRun(kernel, workspaces, outputs);
        }).ToArray();

        // Outputs are checked before timing: each algorithm against the library's reference (NCHW) convolution.
        float[] reference = ReferenceNhwc(images[0], weight, bias, g);
        double tolerance = 1e-4 * Math.Max(1.0, MaxAbs(reference));
        var diffs = new double[runs.Length];
        for (int i = 0; i < runs.Length; i++)
        {
            RunBatch(runs[i], images, cuts);
            diffs[i] = MaxAbsDiff(runs[i].Outputs[0], reference);
            if (!(diffs[i] <= tolerance))
            {
                throw new InvalidOperationException($"{runs[i].Kernel.Algorithm} differs from the reference convolution by {diffs[i]:g3} on {layer.Name} (tolerance {tolerance:g3}); not timing it.");
            }
        }

        // And with each other, directly: the three must agree with one another, not only each with the reference.
        var vsDirect = runs.Select(r => MaxAbsDiff(r.Outputs[0], runs[0].Outputs[0])).ToArray();

        foreach (var run in runs)
        {
            var start = Stopwatch.GetTimestamp();
            int warm = 0;
            while (warm < 5 || Stopwatch.GetElapsedTime(start).TotalSeconds < 0.2)
            {
                RunBatch(run, images, cuts);
                warm++;
            }

            run.WarmSeconds = Stopwatch.GetElapsedTime(start).TotalSeconds / warm;
        }

        int iterations = settings.Iterations
            ?? Math.Clamp((int)(AutoBudgetSeconds / runs.Max(r => r.WarmSeconds)), 25, 400);
        var samples = runs.Select(_ => new List<double>(iterations)).ToArray();
        for (int done = 0; done < iterations; done += Block)
        {
            int count = Math.Min(Block, iterations - done);
            for (int i = 0; i < runs.Length; i++)
            {
                for (int k = 0; k < count; k++)
                {
                    long t0 = Stopwatch.GetTimestamp();
                    RunBatch(runs[i], images, cuts);
                    samples[i].Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
                }
            }
        }

        double flops = 2.0 * g.OutChannels * g.PatchSize * g.OutPlane * settings.Batch;
        var medians = samples.Select(s => Percentile(s, 0.5)).ToArray();
        long weightBytes = 4L * (weight.Length + bias.Length);
        for (int i = 0; i < runs.Length; i++)
        {
            var k = (ConvolutionKernel)runs[i].Kernel;
            yield return new Result(
                layer, k.Algorithm, iterations,
                4L * runs[i].Workspaces.Sum(w => (long)w.Length), 4L * k.PackedWeightFloats, weightBytes,
                medians[i], Percentile(samples[i], 0.1), Percentile(samples[i], 0.9),
                flops / (medians[i] * 1e6), medians[0] / medians[i], medians[1] / medians[i], diffs[i], vsDirect[i], k.Isa);
        }
    }

    private static void RunBatch(AlgorithmRun run, float[][] images, int[] cuts)
    {
        for (int n = 0; n < images.Length; n++)
        {
            float[] image = images[n], output = run.Outputs[n];
            if (cuts.Length == 2)
            {
                run.Kernel.Run(image, output, run.Workspaces[0], 0, cuts[1], relu: true);
            }
            else
            {
                ComputeThreads.Run(cuts.Length - 1, t => run.Kernel.Run(image, output, run.Workspaces[t], cuts[t], cuts[t + 1], relu: true));
            }
        }
    }

    private static float[] ReferenceNhwc(float[] imageNhwc, float[] weight, float[] bias, ConvGeometry g)
    {
        int c = g.InChannels, h = g.InHeight, w = g.InWidth;
        var nchw = new float[imageNhwc.Length];
        for (int i = 0; i < h * w; i++)
        {
            for (int ch = 0; ch < c; ch++)
            {
                nchw[(ch * h * w) + i] = imageNhwc[(i * c) + ch];
            }
        }

        // The training convolution (NCHW, packed SGEMM / direct depthwise) shares no code with the NHWC kernels under test.
        var g1 = g with { Batch = 1 };
        var y = new float[g.OutChannels * g.OutPlane];
        var columns = new float[TrainingConvolution.ColumnsSize(g1)];
        unsafe
        {
            fixed (float* xp = nchw)
            fixed (float* wp = weight)
            fixed (float* bp = bias)
            fixed (float* yp = y)
            fixed (float* cp = columns)
            {
                TrainingConvolution.Forward(xp, wp, bp, yp, g1, cp);
            }
        }

        var nhwc = new float[y.Length];
        for (int i = 0; i < g.OutPlane; i++)
        {
            for (int o = 0; o < g.OutChannels; o++)
            {
                nhwc[(i * g.OutChannels) + o] = Math.Max(0f, y[(o * g.OutPlane) + i]);
            }
        }

        return nhwc;
    }

    private static float[] RandomArray(Random rng, int length, double scale)
    {
        var a = new float[length];
        for (int i = 0; i < a.Length; i++)
        {
            a[i] = (float)(((rng.NextDouble() * 2) - 1) * scale);
        }

        return a;
    }

    private static double MaxAbs(float[] a) => a.Length == 0 ? 0 : a.Max(v => Math.Abs((double)v));

    private static double MaxAbsDiff(float[] a, float[] b)
    {
        double m = 0;
        for (int i = 0; i < a.Length; i++)
        {
            m = Math.Max(m, Math.Abs((double)a[i] - b[i]));
        }

        return m;
    }

    private static double Percentile(List<double> samples, double q)
    {
        var sorted = samples.Order().ToArray();
        double pos = q * (sorted.Length - 1);
        int lo = (int)Math.Floor(pos), hi = (int)Math.Ceiling(pos);
        return sorted[lo] + ((sorted[hi] - sorted[lo]) * (pos - lo));
    }

    internal sealed record Layer(string Name, ConvGeometry Geometry);

    internal sealed record Settings(int? Iterations, int Batch, int Threads, IsaLevel Isa);

    internal sealed record Result(
        Layer Layer, ConvAlgorithm Algorithm, int Iterations, long WorkspaceBytes, long PackedWeightBytes, long WeightBytes,
        double MedianMs, double P10Ms, double P90Ms, double GflopPerSecond, double SpeedupVsDirect, double SpeedupVsIm2Col, double MaxAbsDiff, double MaxAbsDiffVsDirect, IsaLevel Isa)
    {
        public JsonObject ToJson(Settings settings)
        {
            ConvGeometry g = Layer.Geometry;
            return new JsonObject
            {
                ["layer"] = Layer.Name,
                ["algorithm"] = Algorithm.ToString().ToLowerInvariant(),
                ["input_hwc"] = new JsonArray(g.InHeight, g.InWidth, g.InChannels),
                ["output_hwc"] = new JsonArray(g.OutHeight, g.OutWidth, g.OutChannels),
                ["kernel"] = g.KernelHeight,
                ["stride"] = g.StrideH,
                ["padding"] = g.PadH,
                ["groups"] = g.Groups,
                ["macs"] = (long)g.OutChannels * g.PatchSize * g.OutPlane,
                ["batch"] = settings.Batch,
                ["threads"] = settings.Threads,
                ["simd"] = BenchConvCommand.WidthName(Isa),
                ["iterations"] = Iterations,
                ["workspace_bytes"] = WorkspaceBytes,
                ["packed_weight_bytes"] = PackedWeightBytes,
                ["weight_bytes"] = WeightBytes,
                ["median_ms"] = MedianMs,
                ["p10_ms"] = P10Ms,
                ["p90_ms"] = P90Ms,
                ["gflops"] = GflopPerSecond,
                ["speedup_vs_direct"] = SpeedupVsDirect,
                ["speedup_vs_im2col"] = SpeedupVsIm2Col,
                ["max_abs_diff_vs_reference"] = MaxAbsDiff,
                ["max_abs_diff_vs_direct"] = MaxAbsDiffVsDirect,
            };
        }
    }

    private sealed class AlgorithmRun(IConvolutionKernel kernel, float[][] workspaces, float[][] outputs)
    {
        public IConvolutionKernel Kernel { get; } = kernel;

        public float[][] Workspaces { get; } = workspaces;

        public float[][] Outputs { get; } = outputs;

        public double WarmSeconds { get; set; }
    }
}
