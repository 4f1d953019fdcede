using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using MobileOne.Cli.Rendering;
using MobileOne.Compression;
using MobileOne.IO.Checkpoints;
using Spectre.Console;

namespace MobileOne.Cli.Commands;

internal static class CompressCommand
{
    public static Command Create()
    {
        var checkpoint = new Argument<string>("checkpoint") { Description = "A MobileOne checkpoint (train-time or fused, timm or Apple names); a train-time one is fused first." };
        var output = new Argument<string>("output") { Description = "Destination .safetensors (written to a temporary file and renamed; docs/ideas.md lists its keys)." };
        var energy = new Option<double?>("--energy") { Description = "Rank per layer: the fewest singular values of W holding this fraction of sum sigma^2 (default 0.9)." };
        var rankRatio = new Option<double?>("--rank-ratio") { Description = "Rank per layer: this fraction of the full rank min(out, in kh kw) instead of --energy." };
        var sparsity = new Option<double>("--sparsity") { Description = "#S/#W: the fraction of each layer's weights kept in the sparse part.", DefaultValueFactory = _ => 0 };
        var layers = new Option<string>("--layers") { Description = "pointwise (1x1 convolutions) or all (every convolution with groups 1); depthwise ones stay dense.", DefaultValueFactory = _ => "pointwise" };
        var iterations = new Option<int>("--iterations") { Description = "Most L/S alternations per layer (GoDec); fewer when the error stops falling by 1e-4.", DefaultValueFactory = _ => 10 };
        var size = new Option<int>("--size") { Description = "Input resolution for the MAC counts of the totals.", DefaultValueFactory = _ => 224 };
        var json = new Option<bool>("--json") { Description = "Print one JSON array: one object per considered layer, then the totals; progress goes to stderr." };
        var command = new Command("compress", "Fold a MobileOne and approximate each convolution's GEMM matrix as low rank + sparse (L + S); write the compressed checkpoint.");
        command.Arguments.Add(checkpoint);
        command.Arguments.Add(output);
        foreach (var o in new Option[] { energy, rankRatio, sparsity, layers, iterations, size, json })
        {
            command.Options.Add(o);
        }

        CommandAction.Set(command, r =>
        {
            string destination = r.GetValue(output)!;
            if (!destination.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
            {
                throw new ArgumentException($"{destination}: a compressed checkpoint is written as .safetensors (its metadata marks it compressed).");
            }

            double? e = r.GetValue(energy), ratio = r.GetValue(rankRatio);
            if (e is not null && ratio is not null)
            {
                throw new ArgumentException("--energy and --rank-ratio choose the rank in two ways; give one.");
            }

            if (e is double ev && !(ev > 0 && ev <= 1))
            {
                throw new ArgumentException($"--energy must be a fraction in (0, 1]; got {ev.ToString(CultureInfo.InvariantCulture)}.");
            }

            if (ratio is double rv && !(rv > 0 && rv <= 1))
            {
                throw new ArgumentException($"--rank-ratio must be a fraction in (0, 1]; got {rv.ToString(CultureInfo.InvariantCulture)}.");
            }

            double s = r.GetValue(sparsity);
            if (!(s >= 0 && s < 1))
            {
                throw new ArgumentException($"--sparsity must be a fraction in [0, 1); got {s.ToString(CultureInfo.InvariantCulture)}.");
            }

            var which = r.GetValue(layers)?.ToLowerInvariant() switch
            {
                "pointwise" => CompressionLayers.Pointwise,
                "all" => CompressionLayers.All,
                var other => throw new ArgumentException($"--layers must be 'pointwise' or 'all'; got '{other}'."),
            };
            int imageSize = Options.Positive(r.GetValue(size), "--size");
            var options = new CompressionOptions
            {
                Energy = e ?? 0.9,
                RankRatio = ratio,
                Sparsity = s,
                Layers = which,
                Alternation = new LowRankSparseOptions { MaxIterations = Options.Positive(r.GetValue(iterations), "--iterations") },
            };

            var loaded = ModelCheckpoint.LoadClassifier(r.GetValue(checkpoint)!);
            var mobileOne = loaded.MobileOne ?? throw new ArgumentException(
                $"{loaded.Path} holds {(loaded.Network is CompressedNetwork ? "an already compressed network" : loaded.Network.Architecture)}; compress takes a MobileOne checkpoint.");
            var (compressed, rows) = NetworkCompressor.Compress(mobileOne, options, row => Console.Error.WriteLine(string.Create(
                CultureInfo.InvariantCulture,
                $"{row.Layer} {row.Shape}: rank {row.Rank}/{row.FullRank}, #S {row.SparseWeights}, error {row.RelativeError:0.####}, {(row.Compressed ? $"rate {row.Rate:0.##}" : "kept dense (factors not smaller)")}")));
            CompressedCheckpoint.Save(compressed, destination, loaded.InputSize);

            var denseGraph = compressed.Base.ToGraph();
            var graph = compressed.ToGraph();
            var totals = new Totals(rows, denseGraph.Parameters(), graph.Parameters(), denseGraph.MultiplyAccumulates(imageSize, imageSize), graph.MultiplyAccumulates(imageSize, imageSize), imageSize);
            if (r.GetValue(json))
            {
                Report.WriteJson(new JsonArray([.. rows.Select(row => (JsonNode)ToJson(row)), totals.ToJson(destination)]));
            }
            else
            {
                WriteTable(rows, totals, destination);
            }

            return 0;
        });
        return command;
    }

    private static JsonObject ToJson(LayerCompression row) => new()
    {
        ["layer"] = row.Layer,
        ["shape"] = row.Shape,
        ["weights"] = row.Weights,
        ["rank"] = row.Rank,
        ["full_rank"] = row.FullRank,
        ["low_rank_weights"] = row.Compressed ? row.LowRankWeights : 0,
        ["sparse_weights"] = row.Compressed ? row.SparseWeights : 0,
        ["low_rank_fraction"] = row.LowRankFraction,
        ["sparse_fraction"] = row.SparseFraction,
        ["stored_words"] = row.StoredWords,
        ["rate"] = row.Rate,
        ["relative_error"] = row.RelativeError,
        ["iterations"] = row.Iterations,
        ["compressed"] = row.Compressed,
    };

    /// <summary>The last row: the considered layers together, and the whole model before and after.</summary>
    private sealed record Totals(IReadOnlyList<LayerCompression> Rows, long ParamsBefore, long ParamsAfter, long MacsBefore, long MacsAfter, int Size)
    {
        public long Weights => Rows.Sum(r => r.Weights);

        public long LowRank => Rows.Where(r => r.Compressed).Sum(r => r.LowRankWeights);

        public long Sparse => Rows.Where(r => r.Compressed).Sum(r => r.SparseWeights);

        public long Stored => Rows.Sum(r => r.StoredWords);

        public JsonObject ToJson(string output) => new()
        {
            ["layer"] = "total",
            ["weights"] = Weights,
            ["low_rank_fraction"] = Weights == 0 ? 0 : (double)LowRank / Weights,
            ["sparse_fraction"] = Weights == 0 ? 0 : (double)Sparse / Weights,
            ["stored_words"] = Stored,
            ["rate"] = Stored == 0 ? 1 : (double)Weights / Stored,
            ["layers_considered"] = Rows.Count,
            ["layers_compressed"] = Rows.Count(r => r.Compressed),
            ["params_fused"] = ParamsBefore,
            ["params_compressed"] = ParamsAfter,
            ["image_size"] = Size,
            ["macs_fused"] = MacsBefore,
            ["macs_compressed"] = MacsAfter,
            ["output"] = output,
        };
    }

    private static void WriteTable(IReadOnlyList<LayerCompression> rows, Totals totals, string destination)
    {
        var table = new Table().Title($"mobileone compress -> {Markup.Escape(destination)}");
        foreach (string c in new[] { "layer", "W shape", "#W", "rank", "#L/#W", "#S/#W", "R", "rel. error" })
        {
            table.AddColumn(new TableColumn(c));
        }

        foreach (var row in rows)
        {
            table.AddRow(new[]
            {
                row.Layer, row.Shape, row.Weights.ToString(CultureInfo.InvariantCulture), row.Compressed ? $"{row.Rank}/{row.FullRank}" : "dense",
                Number(row.LowRankFraction), Number(row.SparseFraction), Number(row.Rate), Number(row.RelativeError),
            }.Select(Markup.Escape).ToArray());
        }

        table.AddRow(new[]
        {
            "total", string.Empty, totals.Weights.ToString(CultureInfo.InvariantCulture), $"{rows.Count(r => r.Compressed)}/{rows.Count} compressed",
            Number(totals.Weights == 0 ? 0 : (double)totals.LowRank / totals.Weights), Number(totals.Weights == 0 ? 0 : (double)totals.Sparse / totals.Weights),
            Number(totals.Stored == 0 ? 1 : (double)totals.Weights / totals.Stored), string.Empty,
        }.Select(Markup.Escape).ToArray());
        AnsiConsole.Write(table);
        Console.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"params {Report.Millions(totals.ParamsBefore)} -> {Report.Millions(totals.ParamsAfter)}, MACs at {totals.Size} {Report.Millions(totals.MacsBefore)} -> {Report.Millions(totals.MacsAfter)}; wrote {destination}"));
    }

    private static string Number(double v) => v.ToString("0.####", CultureInfo.InvariantCulture);
}
