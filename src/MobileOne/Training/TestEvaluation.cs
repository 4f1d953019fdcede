using System.Globalization;
using System.Text;
using MobileOne.IO;

namespace MobileOne.Training;

/// <summary>
/// The test set's one evaluation of a run with --val-split: the checkpoint chosen by validation top-1
/// (best.safetensors, or best_ema.safetensors for the EMA), the epoch it was written and its validation top-1, and its
/// test top-1, top-5 and mean cross entropy over <paramref name="Images"/> test images.
/// </summary>
public sealed record TestEvaluation(string Checkpoint, int Epoch, double ValTop1, double Top1, double Top5, double Loss, int Images);

/// <summary>
/// test.csv: one row per evaluated checkpoint (checkpoint, epoch, val_top1, test_top1, test_top5, test_loss, images),
/// written once, when a run with --val-split has finished its last epoch; written atomically.
/// </summary>
public static class TestCsv
{
    /// <summary>Name of the file in the run's output folder: "test.csv".</summary>
    public const string FileName = "test.csv";

    private const string Header = "checkpoint,epoch,val_top1,test_top1,test_top5,test_loss,images";

    /// <summary>Writes <paramref name="rows"/> to <paramref name="path"/> (invariant culture, header first), replacing the file atomically.</summary>
    public static void Write(string path, IReadOnlyList<TestEvaluation> rows)
    {
        ArgumentNullException.ThrowIfNull(rows);
        var text = new StringBuilder(Header).Append('\n');
        foreach (var r in rows)
        {
            text.Append(CultureInfo.InvariantCulture, $"{r.Checkpoint},{r.Epoch},{F(r.ValTop1)},{F(r.Top1)},{F(r.Top5)},{F(r.Loss)},{r.Images}\n");
        }

        AtomicFile.WriteAllText(path, text.ToString());
    }

    /// <summary>The rows of the file at <paramref name="path"/>; null when it does not exist.</summary>
    public static List<TestEvaluation>? Read(string path)
    {
        if (!File.Exists(path))
        {
            return null;
        }

        string[] lines = File.ReadAllLines(path);
        if (lines.Length == 0 || lines[0] != Header)
        {
            throw new InvalidDataException($"{path}: expected the header '{Header}'.");
        }

        var rows = new List<TestEvaluation>();
        var c = CultureInfo.InvariantCulture;
        for (int i = 1; i < lines.Length; i++)
        {
            string[] f = lines[i].Split(',');
            if (f.Length != 7)
            {
                throw new InvalidDataException($"{path}: line {i + 1} has {f.Length} columns; expected 7.");
            }

            rows.Add(new TestEvaluation(f[0], int.Parse(f[1], c), double.Parse(f[2], c), double.Parse(f[3], c), double.Parse(f[4], c), double.Parse(f[5], c), int.Parse(f[6], c)));
        }

        return rows;
    }

    private static string F(double v) => v.ToString("R", CultureInfo.InvariantCulture);
}
