using System.Text.Json;
using System.Text.Json.Nodes;
using Spectre.Console;

namespace MobileOne.Cli.Rendering;

/// <summary>
/// Prints a titled list of facts: a Spectre table on a terminal, "name: value" lines when output is
/// redirected, so scripts and logs get plain text.
/// </summary>
internal sealed class Report
{
    private readonly List<(string Name, string Value)> rows = [];

    public Report(string title)
    {
        Title = title;
    }

    public string Title { get; }

    public Report Add(string name, string value)
    {
        rows.Add((name, value));
        return this;
    }

    public void Write()
    {
        if (Console.IsOutputRedirected)
        {
            Console.WriteLine(Title);
            int width = rows.Count == 0 ? 0 : rows.Max(r => r.Name.Length);
            foreach (var (name, value) in rows)
            {
                Console.WriteLine($"  {(name + ":").PadRight(width + 1)} {value}");
            }

            return;
        }

        var table = new Table().Title(Markup.Escape(Title)).AddColumn("").AddColumn("");
        table.HideHeaders();
        foreach (var (name, value) in rows)
        {
            table.AddRow(Markup.Escape(name), Markup.Escape(value));
        }

        AnsiConsole.Write(table);
    }

    public static void WriteJson(JsonNode node) =>
        Console.WriteLine(node.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));

    public static string Millions(long value) => (value / 1e6).ToString("0.00", System.Globalization.CultureInfo.InvariantCulture) + "M";
}
