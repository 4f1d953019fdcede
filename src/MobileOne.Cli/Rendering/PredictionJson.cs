using System.Text.Json.Nodes;
using MobileOne.Classification;

namespace MobileOne.Cli.Rendering;

/// <summary>
/// The JSON of one classified image, as `predict --json` prints each array entry and `serve` answers each request:
/// <c>{"path", "top": [{"index", "label", "probability", "logit"}, ...]}</c> or <c>{"path", "error"}</c>.
/// </summary>
internal static class PredictionJson
{
    public static JsonObject Item(string path, IReadOnlyList<ClassScore> top)
    {
        var scores = new JsonArray();
        foreach (var s in top)
        {
            scores.Add(new JsonObject { ["index"] = s.Index, ["label"] = s.Label, ["probability"] = s.Probability, ["logit"] = s.Logit });
        }

        return new JsonObject { ["path"] = path, ["top"] = scores };
    }

    public static JsonObject Error(string path, string error) => new() { ["path"] = path, ["error"] = error };
}
