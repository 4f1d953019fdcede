using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using MobileOne.Cli.Rendering;
using MobileOne.Kernels;
using MobileOne.Models;
using MobileOne.Nn;
using MobileOne.Tensors;
using MobileOne.Training;

namespace MobileOne.Cli.Commands;

/// <summary>
/// `mobileone bench-train`: times whole training steps (forward, loss, backward, SGD step) of a train-time model on
/// synthetic data after a warm-up, like timm's benchmark.py --bench train.
/// </summary>
internal static class BenchTrainCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model", "-m") { Description = "s0..s4 or a model description, e.g. \"s0,classes=10\" or \"units=1/2/2/1,widths=0.5/0.5/0.5/0.5,k=2\".", DefaultValueFactory = _ => "s0" };
        var batch = new Option<int>("--batch-size", "-b") { Description = "Images per step.", DefaultValueFactory = _ => 64 };
        var size = new Option<int>("--size") { Description = "Input height and width.", DefaultValueFactory = _ => 224 };
        var inChans = new Option<int?>("--in-chans") { Description = "Input channels (default: the model's, 3)." };
        var classes = new Option<int?>("--num-classes") { Description = "Classifier outputs (default: the model's)." };
        var threads = new Option<int>("--threads", "-t") { Description = "Compute threads.", DefaultValueFactory = _ => Environment.ProcessorCount };
        var steps = new Option<int>("--steps") { Description = "Timed steps.", DefaultValueFactory = _ => 20 };
        var warmup = new Option<int>("--warmup") { Description = "Untimed steps first (JIT tiering, buffers, caches).", DefaultValueFactory = _ => 5 };
        var seed = new Option<int>("--seed") { Description = "Seed of the weights and the synthetic batch.", DefaultValueFactory = _ => 0 };
        var json = new Option<bool>("--json") { Description = "Print one JSON object." };
        var profile = new Option<bool>("--profile") { Description = "Also time every operation of the timed steps by layer kind (forward/backward, GFLOP/s, GB/s)." };
        var command = new Command("bench-train", "Time training steps (forward, backward, SGD) of a train-time MobileOne on synthetic data.");
        foreach (var o in new Option[] { model, batch, size, inChans, classes, threads, steps, warmup, seed, json, profile })
        {
            command.Options.Add(o);
        }

        CommandAction.Set(command, r =>
        {
            var config = MobileOneConfig.Parse(r.GetValue(model)!);
            config = config.WithHead(
                r.GetValue(classes) is int c ? Options.Positive(c, "--num-classes") : config.NumClasses,
                r.GetValue(inChans) is int ic ? Options.Positive(ic, "--in-chans") : config.InChans);
            var settings = new BenchTrainSettings(
                config,
                Options.Positive(r.GetValue(batch), "--batch-size"),
                Options.Positive(r.GetValue(size), "--size"),
                Options.Positive(r.GetValue(threads), "--threads"),
                Options.Positive(r.GetValue(steps), "--steps"),
                NonNegative(r.GetValue(warmup), "--warmup"),
                r.GetValue(seed),
                r.GetValue(profile));
            var result = BenchTrain.Run(settings);
            if (r.GetValue(json))
            {
                Report.WriteJson(result.ToJson());
            }
            else
            {
                result.ToReport().Write();
            }

            return 0;
        });
        return command;
    }

    private static int NonNegative(int value, string option) =>
        value >= 0 ? value : throw new ArgumentException($"{option} must be zero or a positive integer; got {value}.");
}

internal sealed record BenchTrainSettings(MobileOneConfig Config, int Batch, int Size, int Threads, int Steps, int Warmup, int Seed, bool Profile = false);

internal sealed record BenchTrainResult(BenchTrainSettings Settings, double[] StepMs, double FinalLoss, string Simd, IReadOnlyList<OpTiming> Profile)
{
    public double Median => Percentile(0.5);

    public double ImagesPerSecond => Settings.Batch * 1000.0 / Median;

    public double Percentile(double q)
    {
        var sorted = StepMs.Order().ToArray();
        double pos = q * (sorted.Length - 1);
        int lo = (int)Math.Floor(pos), hi = (int)Math.Ceiling(pos);
        return sorted[lo] + ((sorted[hi] - sorted[lo]) * (pos - lo));
    }

    public JsonObject ToJson() => new()
    {
        ["model"] = Settings.Config.Name,
        ["architecture"] = Settings.Config.ToString(),
        ["batch"] = Settings.Batch,
        ["size"] = Settings.Size,
        ["in_chans"] = Settings.Config.InChans,
        ["num_classes"] = Settings.Config.NumClasses,
        ["threads"] = Settings.Threads,
        ["steps"] = Settings.Steps,
        ["warmup"] = Settings.Warmup,
        ["simd"] = Simd,
        ["step_ms_median"] = Math.Round(Median, 3),
        ["step_ms_p10"] = Math.Round(Percentile(0.1), 3),
        ["step_ms_p90"] = Math.Round(Percentile(0.9), 3),
        ["step_ms_min"] = Math.Round(StepMs.Min(), 3),
        ["images_per_second"] = Math.Round(ImagesPerSecond, 2),
        ["final_loss"] = FinalLoss,
        ["profile"] = Settings.Profile ? new JsonArray(Profile.Select(ProfileRow).ToArray()) : null,
    };

    /// <summary>Milliseconds per step of every profiled operation, the time no operation accounts for last.</summary>
    private JsonNode ProfileRow(OpTiming t) => new JsonObject
    {
        ["layer"] = t.Layer,
        ["op"] = t.Op,
        ["calls_per_step"] = t.Calls / Settings.Steps,
        ["ms_per_step"] = Math.Round(t.Seconds * 1000 / Settings.Steps, 3),
        ["share"] = Math.Round(t.Seconds * 1000 / StepMs.Sum(), 4),
        ["gflop_per_s"] = t.Flops > 0 ? Math.Round(t.Flops / t.Seconds / 1e9, 1) : null,
        ["gb_per_s"] = t.Bytes > 0 ? Math.Round(t.Bytes / t.Seconds / 1e9, 1) : null,
    };

    public Report ToReport()
    {
        var c = CultureInfo.InvariantCulture;
        var report = new Report($"bench-train: MobileOne-{Settings.Config.Name}, {Settings.Batch}x{Settings.Config.InChans}x{Settings.Size}x{Settings.Size}, {Settings.Threads} thread(s)")
            .Add("architecture", Settings.Config.ToString())
            .Add("step (forward, backward, SGD)", string.Create(c, $"median {Median:0.00} ms, p10 {Percentile(0.1):0.00}, p90 {Percentile(0.9):0.00} ({Settings.Steps} steps after {Settings.Warmup} warm-up)"))
            .Add("throughput", string.Create(c, $"{ImagesPerSecond:0.0} images/s"))
            .Add("simd", Simd)
            .Add("last loss", FinalLoss.ToString("0.####", c));
        foreach (var t in Settings.Profile ? Profile : [])
        {
            double ms = t.Seconds * 1000 / Settings.Steps;
            string rate = t.Flops > 0 ? string.Create(c, $", {t.Flops / t.Seconds / 1e9:0.0} GFLOP/s") : t.Bytes > 0 ? string.Create(c, $", {t.Bytes / t.Seconds / 1e9:0.0} GB/s") : "";
            report.Add($"{t.Layer} {t.Op}", string.Create(c, $"{ms:0.00} ms/step ({100 * ms / Median:0.0}%){rate}"));
        }

        return report;
    }
}

/// <summary>The measurement itself: synthetic batch, SGD (lr 1e-4 as timm's benchmark, momentum 0.9, Nesterov, weight decay 1e-4 on weights).</summary>
internal static class BenchTrain
{
    public static BenchTrainResult Run(BenchTrainSettings s)
    {
        int previous = ComputeThreads.Count;
        ComputeThreads.Count = s.Threads;
        try
        {
            var network = MobileOneNetwork.Create(s.Config);
            WeightInit.Initialize(network, s.Seed);
            var rng = new Random(s.Seed + 1);
            var images = new Tensor(s.Batch, s.Config.InChans, s.Size, s.Size);
            WeightInit.FillNormal(rng, images.Data, 0, 1);
            var labels = Enumerable.Range(0, s.Batch).Select(_ => rng.Next(s.Config.NumClasses)).ToArray();
            var optimizer = new Sgd(ParameterGroups.WeightDecaySplit(network, 1e-4, 1e-4), momentum: 0.9, nesterov: true);
            var step = new TrainStep(network, optimizer, new CrossEntropyLoss(labelSmoothing: 0.1));
            network.Train();
            double loss = 0;
            for (int i = 0; i < s.Warmup; i++)
            {
                loss = step.Run(images, labels).Loss;
            }

            var times = new double[s.Steps];
            OpProfile.Drain();
            OpProfile.Enabled = s.Profile;
            try
            {
                for (int i = 0; i < s.Steps; i++)
                {
                    long start = Stopwatch.GetTimestamp();
                    loss = step.Run(images, labels).Loss;
                    times[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
                }
            }
            finally
            {
                OpProfile.Enabled = false;
            }

            var profile = OpProfile.Drain().ToList();
            double accounted = profile.Sum(t => t.Seconds);
            if (s.Profile)
            {
                profile.Add(new OpTiming("step", "not in an operation above", s.Steps, Math.Max(0, (times.Sum() / 1000) - accounted), 0, 0));
            }

            return new BenchTrainResult(s, times, loss, Lanes.WidestVector, profile);
        }
        finally
        {
            ComputeThreads.Count = previous;
        }
    }
}
