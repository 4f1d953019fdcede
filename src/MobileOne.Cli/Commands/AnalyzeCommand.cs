using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using MobileOne.Analysis;
using MobileOne.Cli.Rendering;
using MobileOne.IO.Checkpoints;
using Spectre.Console;

namespace MobileOne.Cli.Commands;

internal static class AnalyzeCommand
{
    public static Command Create()
    {
        var checkpoint = new Argument<string>("checkpoint") { Description = "A MobileOne checkpoint (train-time or fused, timm or Apple names)." };
        var size = new Option<int>("--size") { Description = "Input height and width the convolution matrices are built for.", DefaultValueFactory = _ => 32 };
        var maxDense = new Option<long>("--max-dense") { Description = "Dense singular values (smallest, effective ranks) only for matrices of at most this many entries.", DefaultValueFactory = _ => 1L << 20 };
        var verify = new Option<bool>("--verify-dbt") { Description = "Multiply a random input by each stored matrix and compare with the library's convolution (dbt_max_abs_diff)." };
        var branchSpectra = new Option<bool>("--branches") { Description = "Train-time checkpoints: also each convolution branch's spectral norm and effective ranks on its own (BN folded), beside the fused kernel's." };
        var json = new Option<bool>("--json") { Description = "Print one JSON array, one object per convolution, and nothing else." };
        var command = new Command("analyze", "Each convolution of the fused model as its matrix (doubly block-Toeplitz at stride 1): spectral norm, singular values, effective rank, orthogonality, branch similarity.");
        command.Arguments.Add(checkpoint);
        command.Options.Add(size);
        command.Options.Add(maxDense);
        command.Options.Add(verify);
        command.Options.Add(branchSpectra);
        command.Options.Add(json);
        CommandAction.Set(command, r =>
        {
            int imageSize = Options.Positive(r.GetValue(size), "--size");
            long dense = r.GetValue(maxDense);
            if (dense < 0)
            {
                throw new ArgumentException($"--max-dense must be zero or positive; got {dense}.");
            }

            var loaded = ModelCheckpoint.Load(r.GetValue(checkpoint)!);
            var rows = NetworkAnalysis.Analyze(loaded.Network, new AnalysisOptions { Size = imageSize, MaxDenseEntries = dense, VerifyMatrix = r.GetValue(verify), BranchSpectra = r.GetValue(branchSpectra) });
            if (r.GetValue(json))
            {
                Report.WriteJson(new JsonArray(rows.Select(row => (JsonNode)ToJson(row)).ToArray()));
            }
            else
            {
                WriteTable(rows, imageSize, r.GetValue(verify));
            }

            return 0;
        });
        return command;
    }

    private static JsonObject ToJson(LayerAnalysis row) => new()
    {
        ["layer"] = row.Layer,
        ["kernel_shape"] = new JsonArray(row.KernelShape.Select(v => (JsonNode)v).ToArray()),
        ["stride"] = row.Stride,
        ["padding"] = row.Padding,
        ["groups"] = row.Groups,
        ["in_height"] = row.InHeight,
        ["in_width"] = row.InWidth,
        ["out_height"] = row.OutHeight,
        ["out_width"] = row.OutWidth,
        ["dbt_rows"] = row.MatrixRows,
        ["dbt_columns"] = row.MatrixColumns,
        ["dbt_nonzeros"] = row.MatrixNonZeros,
        ["spectral_norm"] = row.SpectralNorm,
        ["min_singular_value"] = row.SmallestSingularValue,
        ["effective_rank_90"] = row.EffectiveRank90,
        ["effective_rank_99"] = row.EffectiveRank99,
        ["max_rank"] = Math.Min(row.MatrixRows, row.MatrixColumns),
        ["orthogonality_deviation"] = row.OrthogonalityDeviation,
        ["branches"] = row.Branches,
        ["branch_similarity_mean"] = row.BranchSimilarityMean,
        ["branch_similarity_max"] = row.BranchSimilarityMax,
        ["dbt_max_abs_diff"] = row.MatrixMaxAbsDiff,
        ["branch_spectral_norms"] = row.BranchSpectra is { } b ? new JsonArray(b.Select(x => (JsonNode)x.SpectralNorm).ToArray()) : null,
        ["branch_effective_rank_90"] = row.BranchSpectra is { } b90 ? new JsonArray(b90.Select(x => (JsonNode?)x.EffectiveRank90).ToArray()) : null,
        ["branch_effective_rank_99"] = row.BranchSpectra is { } b99 ? new JsonArray(b99.Select(x => (JsonNode?)x.EffectiveRank99).ToArray()) : null,
    };

    private static void WriteTable(IReadOnlyList<LayerAnalysis> rows, int size, bool verify)
    {
        var table = new Table().Title($"mobileone analyze (input {size}x{size})");
        string[] columns = ["layer", "kernel", "matrix", "||K||2", "sigma min", "rank 90/99%", "ortho dev", "branch cos (mean/max)"];
        foreach (string c in verify ? [.. columns, "dbt max |diff|"] : columns)
        {
            table.AddColumn(new TableColumn(Markup.Escape(c)));
        }

        foreach (var row in rows)
        {
            string[] cells =
            [
                row.Layer,
                $"{string.Join('x', row.KernelShape)} /{row.Stride}" + (row.Groups > 1 ? $" g{row.Groups}" : string.Empty),
                $"{row.MatrixRows} x {row.MatrixColumns}",
                Number(row.SpectralNorm),
                row.SmallestSingularValue is { } s ? Number(s) : "-",
                row.EffectiveRank90 is { } r90 ? $"{r90} / {row.EffectiveRank99} of {Math.Min(row.MatrixRows, row.MatrixColumns)}" : "-",
                Number(row.OrthogonalityDeviation),
                row.BranchSimilarityMean is { } m ? $"{Number(m)} / {Number(row.BranchSimilarityMax!.Value)} (k={row.Branches})" : "-",
            ];
            table.AddRow((verify ? [.. cells, Number(row.MatrixMaxAbsDiff ?? double.NaN)] : cells).Select(Markup.Escape).ToArray());
        }

        AnsiConsole.Write(table);
    }

    private static string Number(double v) => v.ToString("G4", CultureInfo.InvariantCulture);
}
