using MobileOne.IO;
using MobileOne.Training;

namespace MobileOne.Imaging.Plots;

/// <summary>
/// Draws the training curves (losses on the left axis, top-1/top-5 accuracy on the right) into a PNG,
/// written through a temporary file so an interrupted write never replaces a good plot.
/// </summary>
public static class TrainingCurvesPlot
{
    /// <summary>Writes the curves of <paramref name="epochs"/> to <paramref name="path"/> (PNG, <paramref name="width"/> x <paramref name="height"/> pixels) under <paramref name="title"/>.</summary>
    public static void Save(string path, IReadOnlyList<EpochSummary> epochs, string title, int width = 900, int height = 540)
    {
        ArgumentNullException.ThrowIfNull(epochs);
        var plot = new ScottPlot.Plot();
        plot.Title(title);
        plot.Axes.Bottom.Label.Text = "epoch";
        plot.Axes.Left.Label.Text = "loss";
        plot.Axes.Right.Label.Text = "accuracy";

        double[] x = epochs.Select(e => (double)e.Epoch).ToArray();
        AddLine(plot, x, epochs.Select(e => e.TrainLoss), "train loss", rightAxis: false);
        AddLine(plot, x, epochs.Select(e => e.EvalLoss), "eval loss", rightAxis: false);
        AddLine(plot, x, epochs.Select(e => e.EvalTop1), "eval top-1", rightAxis: true);
        AddLine(plot, x, epochs.Select(e => e.EvalTop5), "eval top-5", rightAxis: true);
        AddLine(plot, x, epochs.Select(e => e.EmaEvalTop1), "EMA eval top-1", rightAxis: true);
        plot.ShowLegend(ScottPlot.Edge.Bottom);

        // An early evaluation with unsettled BatchNorm statistics can report a loss thousands of times the
        // rest; keep the axis on the informative range and say so in the label.
        double trainMax = epochs.Select(e => e.TrainLoss).Where(double.IsFinite).DefaultIfEmpty(1).Max();
        double cap = 3 * trainMax;
        if (epochs.Any(e => e.EvalLoss > cap))
        {
            double top = epochs.SelectMany(e => new[] { e.TrainLoss, e.EvalLoss }).Where(v => double.IsFinite(v) && v <= cap).DefaultIfEmpty(trainMax).Max();
            plot.Axes.SetLimitsY(0, 1.1 * top, plot.Axes.Left);
            plot.Axes.Left.Label.Text = "loss (off-scale values clipped)";
        }

        byte[] png = plot.GetImageBytes(width, height, ScottPlot.ImageFormat.Png);
        AtomicFile.Write(path, stream => stream.Write(png));
    }

    private static void AddLine(ScottPlot.Plot plot, double[] x, IEnumerable<double> values, string label, bool rightAxis)
    {
        double[] y = values.ToArray();
        if (x.Length == 0 || y.All(double.IsNaN))
        {
            return;
        }

        var line = plot.Add.Scatter(x, y);
        line.LegendText = label;
        line.MarkerSize = 5;
        if (rightAxis)
        {
            line.Axes.YAxis = plot.Axes.Right;
        }
    }
}
