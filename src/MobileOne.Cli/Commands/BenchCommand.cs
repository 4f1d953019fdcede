using MobileOne.Inference;
using System.CommandLine;
using System.Globalization;
using MobileOne.Cli.Benchmarking;
using MobileOne.Cli.Rendering;
using MobileOne.IO.Checkpoints;
using MobileOne.IO.Onnx;
using MobileOne.Models;
using MobileOne.Models.Zoo;
using MobileOne.Reparam;
using MobileOne.Tensors;

namespace MobileOne.Cli.Commands;

internal static class BenchCommand
{
    public const int MinSize = 32;
    public const string DefaultDocsPath = "docs/benchmarks.md";
    private const int WeightSeed = 0;

    public static Command Create()
    {
        var variant = new Option<string[]>("--variant") { Description = "s0..s4; repeat the option or give a comma list (default: all five)." };
        var checkpoint = new Option<string?>("--checkpoint") { Description = "Benchmark this checkpoint of any family (fused first where it has a fused form) instead of seeded random S0..S4." };
        var onnxFile = new Option<string?>("--onnx") { Description = "Benchmark this ONNX file: the managed engine runs its import, ONNX Runtime the file itself." };
        var model = new Option<string[]>("--model") { Description = "Registry architectures (timm's names, see `mobileone models`) with seeded random weights; repeat or give a comma list." };
        var engines = new Option<string[]>("--engines") { Description = "managed, onnxruntime or both (comma list).", DefaultValueFactory = _ => ["managed,onnxruntime"] };
        var threads = new Option<string[]>("--threads") { Description = "Thread counts to measure, e.g. 1,2.", DefaultValueFactory = _ => ["1"] };
        var batch = new Option<string[]>("--batch") { Description = "Batch sizes to measure, e.g. 1,8.", DefaultValueFactory = _ => ["1"] };
        var size = new Option<int>("--size") { Description = $"Input resolution (at least {MinSize}).", DefaultValueFactory = _ => 224 };
        var iterations = new Option<string?>("--iterations") { Description = "Timed runs per engine and combination (default: as many as fit --budget)." };
        var warmup = new Option<string?>("--warmup") { Description = "Untimed runs before timing (default: about 0.5 s worth, at least 2)." };
        var budget = new Option<double>("--budget") { Description = "Seconds of timed runs per engine and combination when --iterations is not given.", DefaultValueFactory = _ => 2.0 };
        var json = new Option<bool>("--json") { Description = "Print a JSON array, one object per engine and combination." };
        var writeDocs = new Option<string?>("--write-docs") { Description = $"Replace the marked benchmark section of this Markdown file (default {DefaultDocsPath}; <!-- bench:begin/end -->, with --unfused <!-- bench-unfused:begin/end -->, with --model <!-- bench-zoo:begin/end -->) with the results.", Arity = ArgumentArity.ZeroOrOne };
        var convAlgo = new Option<string>("--conv-algo") { Description = "Managed engine: auto (specialized kernels) or direct, im2col, im2win for every convolution.", DefaultValueFactory = _ => "auto" };
        var isa = new Option<string>("--isa") { Description = "Managed engine: auto, avx512, avx2 or scalar.", DefaultValueFactory = _ => "auto" };
        var unfused = new Option<bool>("--unfused") { Description = "Time the train-time (multi-branch) graphs as they are, not fused: both engines run every branch." };
        var profile = new Option<bool>("--profile") { Description = "Also time every layer of the managed engine and print each layer's share (with --json: a profile array per managed row)." };
        var command = new Command("bench", "Time the managed engine against ONNX Runtime on the same model (fused unless --unfused), input and thread budget.");
        foreach (var option in new Option[] { variant, checkpoint, model, onnxFile, engines, threads, batch, size, iterations, warmup, budget, json, writeDocs, convAlgo, isa, unfused, profile })
        {
            command.Options.Add(option);
        }

        CommandAction.Set(command, r =>
        {
            string? checkpointPath = r.GetValue(checkpoint);
            var variants = List(r.GetValue(variant));
            var entries = List(r.GetValue(model)).Select(n => ModelRegistry.Find(n)
                ?? throw new ArgumentException($"--model: unknown model '{n}'; expected one of: {string.Join(", ", ModelRegistry.All.Select(e => e.Name))}.")).Distinct().ToList();
            string? onnxPath = r.GetValue(onnxFile);
            if ((checkpointPath is not null ? 1 : 0) + (variants.Count > 0 ? 1 : 0) + (entries.Count > 0 ? 1 : 0) + (onnxPath is not null ? 1 : 0) > 1)
            {
                throw new ArgumentException("Give one of --variant, --model, --checkpoint or --onnx.");
            }

            if (onnxPath is not null && r.GetValue(unfused))
            {
                throw new ArgumentException("--unfused: an ONNX file is measured as it is.");
            }

            var managed = new InferenceOptions { ConvAlgorithm = Options.ConvAlgorithm(r.GetValue(convAlgo)), Isa = Options.Isa(r.GetValue(isa)) };
            var engineNames = Engines(List(r.GetValue(engines)));
            var threadCounts = PositiveInts(r.GetValue(threads), "--threads");
            var batchSizes = PositiveInts(r.GetValue(batch), "--batch");
            int imageSize = r.GetValue(size);
            if (imageSize < MinSize)
            {
                throw new ArgumentException($"--size must be at least {MinSize} (stage 4 reaches 1x1 at 32); got {imageSize}.");
            }

            int? runs = OptionalInt(r.GetValue(iterations), "--iterations", min: 1, "a positive integer");
            int? warm = OptionalInt(r.GetValue(warmup), "--warmup", min: 0, "zero or a positive integer");

            double seconds = r.GetValue(budget);
            if (!(seconds > 0) || double.IsInfinity(seconds))
            {
                throw new ArgumentException($"--budget must be a positive number of seconds; got {seconds.ToString(CultureInfo.InvariantCulture)}.");
            }

            string? docsPath = r.GetResult(writeDocs) is null ? null : r.GetValue(writeDocs) ?? DefaultDocsPath;
            if (docsPath is not null)
            {
                // Fail before minutes of measuring, not after.
                BenchReport.CheckDocs(docsPath, Section(entries.Count > 0, r.GetValue(unfused)));
            }

            var configs = checkpointPath is null && entries.Count == 0 && onnxPath is null ? Variants(variants) : [];
            var imported = onnxPath is null ? null : new BenchModel(Path.GetFileName(onnxPath), OnnxImporter.Load(onnxPath), File.ReadAllBytes(onnxPath)) { Form = "onnx" };
            var loaded = checkpointPath is null ? null : ModelCheckpoint.LoadClassifier(checkpointPath);

            var machine = Machine.Describe();
            Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"FMA peak {machine.PeakGflopsPerCore:0.0} GFLOP/s per core ({machine.PeakKernel}); ONNX Runtime {machine.OnnxRuntime}"));
            bool keepBranches = r.GetValue(unfused);
            if (keepBranches && loaded is { Network.IsFused: true })
            {
                throw new ArgumentException($"--unfused: {checkpointPath} is already fused; give a train-time checkpoint.");
            }

            var settings = new BenchSettings(engineNames, imageSize, runs, warm, seconds, machine.PeakGflopsPerCore, managed, r.GetValue(profile));
            var results = new List<BenchResult>();
            var models = imported is not null ? [imported]
                : loaded is not null
                ? [CheckpointModel(loaded, keepBranches)]
                : entries.Count > 0 ? entries.Select(e => RegistryModel(e, keepBranches)) : configs.Select(c => RandomModel(c, keepBranches));
            foreach (var benchModel in models)
            {
                foreach (int t in threadCounts)
                {
                    foreach (int b in batchSizes)
                    {
                        var measured = BenchRunner.Measure(benchModel, t, b, settings);
                        results.AddRange(measured);
                        Console.Error.WriteLine($"{benchModel.Label} threads {t} batch {b}: " + string.Join(", ", measured.Select(m => string.Create(CultureInfo.InvariantCulture, $"{m.Engine} {m.MedianMs:0.###} ms ({m.Iterations} runs, max |diff| {m.MaxAbsDiff:0.#e+0})"))));
                    }
                }
            }

            if (r.GetValue(json))
            {
                Report.WriteJson(BenchReport.ToJson(results, machine));
            }
            else if (Console.IsOutputRedirected)
            {
                BenchReport.WritePlain(results, machine, Console.Out);
                BenchReport.WriteProfiles(results, Console.Out);
            }
            else
            {
                BenchReport.WriteTerminal(results, machine);
                BenchReport.WriteProfiles(results, Console.Out);
            }

            if (docsPath is not null)
            {
                string section = Section(entries.Count > 0, keepBranches);
                BenchReport.WriteDocs(docsPath, BenchReport.Markdown(results, machine, CommandLine(), settings, section), section);
                Console.Error.WriteLine($"wrote the benchmark section of {docsPath}");
            }

            return 0;
        });
        return command;
    }

    private static string Label(string name, bool unfused) => unfused ? name + " unfused" : name;

    /// <summary>The docs section a run writes: the zoo's for --model runs, else the fused or the unfused MobileOne table.</summary>
    private static string Section(bool registry, bool unfused) =>
        registry ? BenchReport.ZooSection : unfused ? BenchReport.UnfusedSection : BenchReport.FusedSection;

    /// <summary>A checkpoint's network, fused first where its family has a fused form (unless --unfused).</summary>
    private static BenchModel CheckpointModel(LoadedClassifier loaded, bool unfused)
    {
        var network = loaded.Network;
        if (!network.Reparameterizable)
        {
            return new BenchModel(network.Architecture, network.ToGraph()) { Form = "plain" };
        }

        string name = loaded.MobileOne?.Config.Name ?? network.Architecture;
        var measured = network.IsFused || unfused ? network : Reparameterizer.Fuse(network);
        return measured is MobileOneNetwork m
            ? new BenchModel(Label(name, unfused), m) { Form = unfused ? "unfused" : "fused" }
            : new BenchModel(Label(name, unfused), measured.ToGraph()) { Form = unfused ? "unfused" : "fused" };
    }

    /// <summary>
    /// A registry architecture with timm's seeded initialisation and BatchNorm statistics measured on a random batch
    /// (so activations stay near unit scale and max |diff| between engines means something); fused where the family
    /// has a fused form, unless --unfused.
    /// </summary>
    private static BenchModel RegistryModel(ModelEntry entry, bool unfused) => RegistryForm(entry, RegistryNetwork(entry), unfused);

    /// <summary>
    /// The train-time network `bench --model` measures: MobileOne as <see cref="RandomNetwork"/> draws it, any other
    /// family from <see cref="ModelEntry.Create"/> with its BatchNorm statistics measured on a random batch. One
    /// network serves both forms (<see cref="RegistryForm"/>), so a study that times both calibrates once.
    /// </summary>
    internal static ClassifierNetwork RegistryNetwork(ModelEntry entry)
    {
        if (entry.Family == "mobileone")
        {
            return RandomNetwork(MobileOneConfig.ByName(entry.Name["mobileone_".Length..]));
        }

        var network = (ZooNetwork)entry.Create(seed: WeightSeed);
        WeightInit.CalibrateBatchNorm(network, CalibrationBatch(network.InChans));
        return network;
    }

    /// <summary>
    /// One form of a network from <see cref="RegistryNetwork"/>: "plain" for a family without a fused form, else
    /// fused by <see cref="Reparameterizer.Fuse(ClassifierNetwork)"/> unless <paramref name="unfused"/>.
    /// </summary>
    internal static BenchModel RegistryForm(ModelEntry entry, ClassifierNetwork network, bool unfused)
    {
        if (!entry.Reparameterizable)
        {
            return new BenchModel(entry.Name, network.ToGraph()) { Form = "plain" };
        }

        var measured = unfused ? network : Reparameterizer.Fuse(network);
        return new BenchModel(Label(entry.Name, unfused), measured.ToGraph()) { Form = unfused ? "unfused" : "fused" };
    }

    private static BenchModel RandomModel(MobileOneConfig config, bool unfused)
    {
        var network = RandomNetwork(config);
        return new BenchModel(Label(config.Name, unfused), unfused ? network : Reparameterizer.Fuse(network)) { Form = unfused ? "unfused" : "fused" };
    }

    private static MobileOneNetwork RandomNetwork(MobileOneConfig config)
    {
        // Seeded train-time weights with random BatchNorm affine terms, fused (what a user would deploy) unless the
        // train-time graph itself is measured. The running
        // statistics are then measured on a random batch, as training would, so activations stay near unit scale and
        // max |diff| between engines means something. The batch must give the 4x4 (at 128) last stage enough values
        // per channel: 2 images at 64 left S0's logits in the thousands. Squeeze-excite weights are drawn small
        // first: with timm's fan-out init the gates saturate and S4's own fused and unfused logits differ by 1e-4
        // of their range, against 1e-5 with small SE weights.
        var network = MobileOneNetwork.Create(config);
        WeightInit.Initialize(network, WeightSeed);
        WeightInit.RandomizeBatchNorm(network, WeightSeed + 1);
        var rng = new Random(WeightSeed + 3);
        foreach (var (_, block) in network.Blocks())
        {
            if (block.Attn is { } se)
            {
                WeightInit.FillNormal(rng, se.Reduce.Weight.Value.Data, 0, 0.01);
                WeightInit.FillNormal(rng, se.Expand.Weight.Value.Data, 0, 0.01);
            }
        }

        WeightInit.CalibrateBatchNorm(network, CalibrationBatch(config.InChans));
        return network;
    }

    /// <summary>The seeded random batch BatchNorm statistics are measured on (4 images at 128).</summary>
    private static Tensor CalibrationBatch(int inChans)
    {
        var calibration = new Tensor(4, inChans, 128, 128);
        WeightInit.FillNormal(new Random(WeightSeed + 2), calibration.Data, 0, 1);
        return calibration;
    }

    internal static int? OptionalInt(string? text, string option, int min, string expected)
    {
        if (text is null)
        {
            return null;
        }

        return int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out int v) && v >= min
            ? v
            : throw new ArgumentException($"{option} must be {expected}; got '{text}'.");
    }

    internal static List<string> List(string[]? values) =>
        (values ?? []).SelectMany(v => v.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)).ToList();

    private static List<MobileOneConfig> Variants(List<string> names)
    {
        if (names.Count == 0)
        {
            return [.. MobileOneConfig.Variants];
        }

        var configs = new List<MobileOneConfig>();
        foreach (string name in names)
        {
            var config = MobileOneConfig.Variants.FirstOrDefault(v => string.Equals(v.Name, name, StringComparison.OrdinalIgnoreCase))
                ?? throw new ArgumentException($"--variant: unknown variant '{name}'; expected s0, s1, s2, s3 or s4.");
            if (!configs.Contains(config))
            {
                configs.Add(config);
            }
        }

        return configs;
    }

    internal static List<string> Engines(List<string> names)
    {
        if (names.Count == 0)
        {
            throw new ArgumentException($"--engines needs at least one of {string.Join(", ", EngineNames.All)}.");
        }

        var engines = new List<string>();
        foreach (string name in names)
        {
            string known = EngineNames.All.FirstOrDefault(e => string.Equals(e, name, StringComparison.OrdinalIgnoreCase))
                ?? throw new ArgumentException($"--engines: unknown engine '{name}'; expected {string.Join(" or ", EngineNames.All)}.");
            if (!engines.Contains(known))
            {
                engines.Add(known);
            }
        }

        return engines;
    }

    internal static List<int> PositiveInts(string[]? values, string option)
    {
        var result = new List<int>();
        foreach (string item in List(values))
        {
            if (!int.TryParse(item, NumberStyles.Integer, CultureInfo.InvariantCulture, out int v) || v <= 0)
            {
                throw new ArgumentException($"{option} takes positive integers separated by commas; got '{item}'.");
            }

            if (!result.Contains(v))
            {
                result.Add(v);
            }
        }

        return result.Count > 0 ? result : throw new ArgumentException($"{option} needs at least one positive integer.");
    }

    /// <summary>The command as typed, for the docs: "mobileone bench ..." (or "mobileone study ...") with arguments quoted where they need it.</summary>
    internal static string CommandLine() =>
        "mobileone " + string.Join(' ', Environment.GetCommandLineArgs().Skip(1).Select(a => a.Length > 0 && a.All(ch => !char.IsWhiteSpace(ch) && ch is not ('"' or '\'' or '`')) ? a : $"'{a}'"));
}
