using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using MobileOne.Cli.Rendering;
using MobileOne.Compression;
using MobileOne.IO.Checkpoints;
using MobileOne.Models;

namespace MobileOne.Cli.Commands;

internal static class InfoCommand
{
    public static Command Create()
    {
        var checkpoint = new Argument<string>("checkpoint") { Description = "A .safetensors, .safetensors.index.json, .pth, .pth.tar or .pt file." };
        var size = new Option<int?>("--size") { Description = "Input resolution for the MAC count (default: the size the checkpoint records it was trained at, else 224)." };
        var json = new Option<bool>("--json") { Description = "Print one JSON object instead of a table." };
        var command = new Command("info", "Describe a checkpoint: format, key scheme, variant, classes, parameters and MACs (unfused and fused).");
        command.Arguments.Add(checkpoint);
        command.Options.Add(size);
        command.Options.Add(json);
        CommandAction.Set(command, r =>
        {
            int? sizeGiven = r.GetValue(size) is int s ? Options.Positive(s, "--size") : null;
            var loaded = ModelCheckpoint.LoadClassifier(r.GetValue(checkpoint)!);
            int imageSize = sizeGiven ?? loaded.InputSize ?? 224;
            var (document, report) = Summary(loaded, imageSize);

            // The size train recorded (InputSizeRecord): what eval, predict and serve default to.
            document["trained_input_size"] = loaded.InputSize;
            if (r.GetValue(json))
            {
                Report.WriteJson(document);
            }
            else
            {
                report.Add("trained at", loaded.InputSize is int trained ? $"{trained}x{trained} (recorded in the file)" : "not recorded").Write();
            }

            return 0;
        });
        return command;
    }

    /// <summary>The JSON object and the table of a checkpoint of any kind: compressed, zoo or MobileOne.</summary>
    private static (JsonObject Json, Report Report) Summary(LoadedClassifier loaded, int imageSize)
    {
        if (loaded.Network is CompressedNetwork compressed)
        {
            return CompressedSummary(loaded, compressed, imageSize);
        }

        if (loaded.MobileOneInfo is null)
        {
            return ZooSummary(loaded, imageSize);
        }

        var summary = CheckpointSummary.Describe(loaded.MobileOneInfo, imageSize);
        return (summary.ToJson(), summary.ToReport());
    }

    /// <summary>
    /// A compressed checkpoint: params_fused and macs_fused are the deployed (compressed) graph's, the dense fused
    /// network's beside them; parameters count the sparse values, not their indices.
    /// </summary>
    private static (JsonObject Json, Report Report) CompressedSummary(LoadedClassifier loaded, CompressedNetwork network, int imageSize)
    {
        var dense = network.Base.ToGraph();
        var graph = network.ToGraph();
        var config = network.Base.Config;
        long nonZeros = network.Layers.Sum(l => (long)l.SparseValues.Length);
        var json = new JsonObject
        {
            ["path"] = loaded.Path,
            ["format"] = CheckpointFormats.Name(loaded.Format),
            ["scheme"] = "timm-fused-compressed",
            ["fused"] = true,
            ["compressed"] = true,
            ["variant"] = config.Name,
            ["num_classes"] = network.NumClasses,
            ["in_chans"] = network.InChans,
            ["image_size"] = imageSize,
            ["compressed_layers"] = network.Layers.Count,
            ["sparse_nonzeros"] = nonZeros,
            ["params_unfused"] = null,
            ["params_fused"] = graph.Parameters(),
            ["params_dense_fused"] = dense.Parameters(),
            ["macs_unfused"] = null,
            ["macs_fused"] = graph.MultiplyAccumulates(imageSize, imageSize),
            ["macs_dense_fused"] = dense.MultiplyAccumulates(imageSize, imageSize),
        };
        var report = new Report(loaded.Path)
            .Add("format", CheckpointFormats.Name(loaded.Format))
            .Add("scheme", "timm-fused-compressed")
            .Add("variant", config.Name)
            .Add("compressed", $"{network.Layers.Count} convolutions low-rank + sparse ({nonZeros} sparse nonzeros)")
            .Add("num_classes", network.NumClasses.ToString(CultureInfo.InvariantCulture))
            .Add("in_chans", network.InChans.ToString(CultureInfo.InvariantCulture))
            .Add("params (deployed / dense fused)", $"{Report.Millions(graph.Parameters())} / {Report.Millions(dense.Parameters())}")
            .Add($"MACs at {imageSize} (deployed / dense fused)", $"{Report.Millions(graph.MultiplyAccumulates(imageSize, imageSize))} / {Report.Millions(dense.MultiplyAccumulates(imageSize, imageSize))}");
        return (json, report);
    }

    /// <summary>A zoo checkpoint: the same fields as MobileOne's where they apply (the fused counts only for RepVGG).</summary>
    private static (JsonObject Json, Report Report) ZooSummary(LoadedClassifier loaded, int imageSize)
    {
        var network = loaded.Network;
        var entry = ModelRegistry.Get(network.Architecture);
        var stats = ModelStatistics.Compute(entry, imageSize, network.NumClasses, network.InChans);
        bool fusable = entry.Reparameterizable;
        string scheme = new KeyScheme(loaded.Layout, loaded.Fused).Name;
        var json = new JsonObject
        {
            ["path"] = loaded.Path,
            ["format"] = CheckpointFormats.Name(loaded.Format),
            ["scheme"] = scheme,
            ["fused"] = loaded.Fused,
            ["variant"] = entry.Name,
            ["family"] = entry.Family,
            ["num_classes"] = network.NumClasses,
            ["in_chans"] = network.InChans,
            ["image_size"] = imageSize,
            ["params_unfused"] = stats.ParamsUnfused,
            ["params_fused"] = fusable ? stats.ParamsFused : null,
            ["macs_unfused"] = stats.MacsUnfused,
            ["macs_fused"] = fusable ? stats.MacsFused : null,
        };
        var report = new Report(loaded.Path)
            .Add("format", CheckpointFormats.Name(loaded.Format))
            .Add("scheme", scheme)
            .Add("variant", $"{entry.Name} ({entry.Family})")
            .Add("fused", fusable ? (loaded.Fused ? "yes" : "no") : "no fused form")
            .Add("num_classes", network.NumClasses.ToString(CultureInfo.InvariantCulture))
            .Add("in_chans", network.InChans.ToString(CultureInfo.InvariantCulture))
            .Add(fusable ? "params (unfused / fused)" : "params", fusable ? $"{Report.Millions(stats.ParamsUnfused)} / {Report.Millions(stats.ParamsFused)}" : Report.Millions(stats.ParamsUnfused))
            .Add(fusable ? $"MACs at {imageSize} (unfused / fused)" : $"MACs at {imageSize}", fusable ? $"{Report.Millions(stats.MacsUnfused)} / {Report.Millions(stats.MacsFused)}" : Report.Millions(stats.MacsUnfused));
        return (json, report);
    }
}

/// <summary>What info and demo show about a model.</summary>
internal sealed record CheckpointSummary(
    string? Path, string Format, string Scheme, bool Fused, MobileOneConfig Config, int ImageSize,
    long? ParamsUnfused, long ParamsFused, long? MacsUnfused, long MacsFused)
{
    public static CheckpointSummary Describe(CheckpointInfo info, int imageSize) =>
        Describe(info.Path, CheckpointFormats.Name(info.Format), info.Scheme.Name, info.Fused, info.Config, imageSize);

    public static CheckpointSummary Describe(string? path, string format, string scheme, bool fused, MobileOneConfig config, int imageSize)
    {
        // A fused file cannot tell how many branches it was trained with; a named variant can.
        MobileOneConfig? trainTime = !fused ? config
            : config.Name == "custom" ? null
            : config with { NumConvBranches = MobileOneConfig.ByName(config.Name).NumConvBranches };
        var stats = ModelStatistics.Compute(trainTime ?? config, imageSize);
        return new CheckpointSummary(
            path, format, scheme, fused, config, imageSize,
            trainTime is null ? null : stats.ParamsUnfused, stats.ParamsFused,
            trainTime is null ? null : stats.MacsUnfused, stats.MacsFused);
    }

    public JsonObject ToJson() => new()
    {
        ["path"] = Path,
        ["format"] = Format,
        ["scheme"] = Scheme,
        ["fused"] = Fused,
        ["variant"] = Config.Name,
        ["num_classes"] = Config.NumClasses,
        ["in_chans"] = Config.InChans,
        ["num_conv_branches"] = Fused ? null : Config.NumConvBranches,
        ["stem_channels"] = Config.StemChannels,
        ["stage_units"] = new JsonArray(Config.StageUnits.Select(v => (JsonNode)v).ToArray()),
        ["stage_channels"] = new JsonArray(Config.StageChannels.Select(v => (JsonNode)v).ToArray()),
        ["se_units"] = new JsonArray(Config.SeUnits.Select(v => (JsonNode)v).ToArray()),
        ["image_size"] = ImageSize,
        ["params_unfused"] = ParamsUnfused,
        ["params_fused"] = ParamsFused,
        ["macs_unfused"] = MacsUnfused,
        ["macs_fused"] = MacsFused,
    };

    public Report ToReport()
    {
        var report = new Report(Path ?? $"MobileOne-{Config.Name}");
        return report
            .Add("format", Format)
            .Add("scheme", Scheme)
            .Add("variant", Config.Name)
            .Add("fused", Fused ? "yes" : "no")
            .Add("num_classes", Config.NumClasses.ToString(CultureInfo.InvariantCulture))
            .Add("in_chans", Config.InChans.ToString(CultureInfo.InvariantCulture))
            .Add("architecture", Config.ToString())
            .Add("params (unfused / fused)", $"{Millions(ParamsUnfused)} / {Report.Millions(ParamsFused)}")
            .Add($"MACs at {ImageSize} (unfused / fused)", $"{Millions(MacsUnfused)} / {Report.Millions(MacsFused)}");
    }

    private static string Millions(long? value) => value is null ? "unknown (fused custom model)" : Report.Millions(value.Value);
}
