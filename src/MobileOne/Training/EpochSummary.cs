using System.Globalization;
using System.Text;
using MobileOne.IO;

namespace MobileOne.Training;

/// <summary>
/// One epoch's line of summary.csv. EMA columns are NaN when the EMA is off. OrthoPenalty and BranchDiversity are the
/// unweighted branch penalties (<see cref="BranchPenalties"/>) of the model at the end of the epoch, whether or not
/// they were trained against (NaN in files written before they existed).
/// </summary>
public sealed record EpochSummary(
    int Epoch, double TrainLoss, double TrainTop1, double EvalLoss, double EvalTop1, double EvalTop5, double LearningRate,
    double EmaEvalTop1 = double.NaN, double EmaEvalTop5 = double.NaN, double OrthoPenalty = double.NaN, double BranchDiversity = double.NaN);

/// <summary>
/// summary.csv as timm writes it, one row per epoch (epoch, train_loss, eval_loss, eval_top1, eval_top5, lr),
/// plus train_top1, with an EMA ema_eval_top1/ema_eval_top5, and the end-of-epoch branch penalties ortho_penalty and
/// branch_diversity. Rewritten whole through a temporary file each epoch so a kill never leaves half a row; read by
/// column name, so files without the later columns still load.
/// </summary>
public static class SummaryCsv
{
    /// <summary>Name of the file in the run's output folder: "summary.csv".</summary>
    public const string FileName = "summary.csv";

    /// <summary>
    /// Writes every row of <paramref name="rows"/> to <paramref name="path"/> (invariant culture, header first), replacing the file atomically.
    /// The EMA columns are written when any row has an EMA value, the penalty columns when any row has a penalty.
    /// </summary>
    public static void Write(string path, IReadOnlyList<EpochSummary> rows)
    {
        bool ema = rows.Any(r => !double.IsNaN(r.EmaEvalTop1));
        bool penalties = rows.Any(r => !double.IsNaN(r.OrthoPenalty) || !double.IsNaN(r.BranchDiversity));
        var text = new StringBuilder("epoch,train_loss,eval_loss,eval_top1,eval_top5,lr,train_top1");
        text.Append(ema ? ",ema_eval_top1,ema_eval_top5" : string.Empty);
        text.Append(penalties ? ",ortho_penalty,branch_diversity\n" : "\n");
        foreach (var r in rows)
        {
            text.Append(CultureInfo.InvariantCulture, $"{r.Epoch},{F(r.TrainLoss)},{F(r.EvalLoss)},{F(r.EvalTop1)},{F(r.EvalTop5)},{F(r.LearningRate)},{F(r.TrainTop1)}");
            text.Append(ema ? string.Create(CultureInfo.InvariantCulture, $",{F(r.EmaEvalTop1)},{F(r.EmaEvalTop5)}") : string.Empty);
            text.Append(penalties ? string.Create(CultureInfo.InvariantCulture, $",{F(r.OrthoPenalty)},{F(r.BranchDiversity)}\n") : "\n");
        }

        AtomicFile.WriteAllText(path, text.ToString());
    }

    /// <summary>
    /// The rows of the file at <paramref name="path"/>, in file order; an empty list when it does not exist or is empty.
    /// Missing optional columns read as NaN.
    /// </summary>
    public static List<EpochSummary> Read(string path)
    {
        var rows = new List<EpochSummary>();
        if (!File.Exists(path))
        {
            return rows;
        }

        string[] lines = File.ReadAllLines(path);
        if (lines.Length == 0)
        {
            return rows;
        }

        string[] header = lines[0].Split(',');
        int Column(string name) => Array.IndexOf(header, name);
        int ema1 = Column("ema_eval_top1"), ema5 = Column("ema_eval_top5"), ortho = Column("ortho_penalty"), diversity = Column("branch_diversity");
        for (int i = 1; i < lines.Length; i++)
        {
            string[] f = lines[i].Split(',');
            if (f.Length < 7)
            {
                throw new InvalidDataException($"{path}: line {i + 1} has {f.Length} columns; expected at least 7.");
            }

            double P(int k) => k >= 0 && k < f.Length && f[k].Length > 0 ? double.Parse(f[k], CultureInfo.InvariantCulture) : double.NaN;
            rows.Add(new EpochSummary(int.Parse(f[0], CultureInfo.InvariantCulture), P(1), P(6), P(2), P(3), P(4), P(5), P(ema1), P(ema5), P(ortho), P(diversity)));
        }

        return rows;
    }

    private static string F(double v) => double.IsNaN(v) ? string.Empty : v.ToString("R", CultureInfo.InvariantCulture);
}
