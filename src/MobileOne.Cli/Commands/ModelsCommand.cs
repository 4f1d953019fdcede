using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using MobileOne.Cli.Rendering;
using MobileOne.Models;

namespace MobileOne.Cli.Commands;

/// <summary>`mobileone models`: the registry with parameters, MACs and timm's pretrained configuration.</summary>
internal static class ModelsCommand
{
    public static Command Create()
    {
        var size = new Option<int>("--size") { Description = "Input resolution for the MAC count.", DefaultValueFactory = _ => 224 };
        var json = new Option<bool>("--json") { Description = "Print one JSON array instead of a table." };
        var command = new Command("models", "List every architecture (timm's names): family, parameters and MACs (train-time and fused), timm's pretrained configuration.");
        command.Options.Add(size);
        command.Options.Add(json);
        CommandAction.Set(command, r =>
        {
            int imageSize = Options.Positive(r.GetValue(size), "--size");
            var rows = ModelRegistry.All.Select(e => (Entry: e, Stats: ModelStatistics.Compute(e, imageSize))).ToList();
            if (r.GetValue(json))
            {
                Report.WriteJson(new JsonArray([.. rows.Select(row => (JsonNode)ToJson(row.Entry, row.Stats))]));
                return 0;
            }

            var c = CultureInfo.InvariantCulture;
            Console.WriteLine($"{"model",-16} {"family",-12} {"params",16} {"GMACs@" + imageSize,14} {"input",6} {"crop",6} {"interp",-9} {"tag"}");
            foreach (var (e, s) in rows)
            {
                string parameters = e.Reparameterizable ? $"{s.ParamsUnfused / 1e6:0.00}/{s.ParamsFused / 1e6:0.00}M" : $"{s.ParamsUnfused / 1e6:0.00}M";
                string macs = e.Reparameterizable ? $"{s.MacsUnfused / 1e9:0.00}/{s.MacsFused / 1e9:0.00}" : $"{s.MacsUnfused / 1e9:0.00}";
                Console.WriteLine(string.Create(c, $"{e.Name,-16} {e.Family,-12} {parameters,16} {macs,14} {e.Pretrained.InputSize,6} {e.Pretrained.CropPct,6:0.###} {e.Pretrained.Interpolation,-9} {e.Pretrained.Tag}"));
            }

            Console.WriteLine("params and MACs: train-time/fused for the re-parameterizable families (MobileOne, RepVGG).");
            return 0;
        });
        return command;
    }

    private static JsonObject ToJson(ModelEntry e, ModelStatistics s) => new()
    {
        ["name"] = e.Name,
        ["family"] = e.Family,
        ["reparameterizable"] = e.Reparameterizable,
        ["image_size"] = s.ImageSize,
        ["params_unfused"] = s.ParamsUnfused,
        ["params_fused"] = e.Reparameterizable ? s.ParamsFused : null,
        ["macs_unfused"] = s.MacsUnfused,
        ["macs_fused"] = e.Reparameterizable ? s.MacsFused : null,
        ["pretrained"] = new JsonObject
        {
            ["tag"] = e.Pretrained.Tag,
            ["input_size"] = new JsonArray(3, e.Pretrained.InputSize, e.Pretrained.InputSize),
            ["crop_pct"] = e.Pretrained.CropPct,
            ["interpolation"] = e.Pretrained.Interpolation,
            ["mean"] = new JsonArray([.. e.Pretrained.Mean.Select(v => (JsonNode)v)]),
            ["std"] = new JsonArray([.. e.Pretrained.Std.Select(v => (JsonNode)v)]),
        },
    };
}
