using MobileOne.IO;

namespace MobileOne.Imaging.Plots;

/// <summary>One series of a <see cref="PointsChart"/>: points (x, y), drawn as markers alone or joined by a line.</summary>
/// <param name="Name">The legend entry.</param>
/// <param name="X">The x values.</param>
/// <param name="Y">The y values, one per x.</param>
/// <param name="Line">Join the points with a line instead of drawing markers alone.</param>
/// <param name="Labels">Optional text beside each point (e.g. the model's name), one per x; null draws none.</param>
public sealed record PointSeries(string Name, IReadOnlyList<double> X, IReadOnlyList<double> Y, bool Line, IReadOnlyList<string>? Labels = null);

/// <summary>
/// Draws numeric x against y into a PNG: each series as markers (one per run, e.g. per seed) or as a line through
/// its points (e.g. the mean), with integer ticks on x when every x is an integer. Written through a temporary
/// file, as the other plots.
/// </summary>
public static class PointsChart
{
    /// <summary>Writes the chart to <paramref name="path"/> (a PNG of <paramref name="width"/> x <paramref name="height"/> pixels).</summary>
    /// <param name="path">The PNG to write.</param>
    /// <param name="title">The chart's title.</param>
    /// <param name="xLabel">The x axis label.</param>
    /// <param name="yLabel">The y axis label.</param>
    /// <param name="series">The series, in legend order.</param>
    /// <param name="width">Image width in pixels.</param>
    /// <param name="height">Image height in pixels.</param>
    public static void Save(string path, string title, string xLabel, string yLabel, IReadOnlyList<PointSeries> series, int width = 900, int height = 540)
    {
        ArgumentNullException.ThrowIfNull(series);
        if (series.Any(s => s.X.Count != s.Y.Count || (s.Labels is not null && s.Labels.Count != s.X.Count)))
        {
            throw new ArgumentException("Every series needs as many y values (and labels, if any) as x values.");
        }

        var plot = new ScottPlot.Plot();
        plot.Title(title);
        plot.Axes.Bottom.Label.Text = xLabel;
        plot.Axes.Left.Label.Text = yLabel;
        var palette = new ScottPlot.Palettes.Category10();
        for (int s = 0; s < series.Count; s++)
        {
            var scatter = plot.Add.Scatter(series[s].X.ToArray(), series[s].Y.ToArray());
            scatter.LegendText = series[s].Name;
            scatter.Color = palette.GetColor(s);
            scatter.MarkerSize = series[s].Line ? 4 : 8;
            scatter.LineWidth = series[s].Line ? 2 : 0;
            for (int i = 0; series[s].Labels is { } labels && i < labels.Count; i++)
            {
                if (double.IsFinite(series[s].X[i]) && double.IsFinite(series[s].Y[i]))
                {
                    var text = plot.Add.Text(labels[i], series[s].X[i], series[s].Y[i]);
                    text.LabelFontSize = 9;
                    text.LabelFontColor = palette.GetColor(s);
                    text.LabelOffsetX = 5;
                }
            }
        }

        var xs = series.SelectMany(s => s.X).Where(double.IsFinite).Distinct().Order().ToArray();
        if (xs.Length > 0 && xs.All(x => x == Math.Round(x)))
        {
            plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(
                xs, xs.Select(x => x.ToString("0", System.Globalization.CultureInfo.InvariantCulture)).ToArray());
            plot.Axes.SetLimitsX(xs[0] - 0.5, xs[^1] + 0.5);
        }

        if (series.Any(s => s.Labels is not null))
        {
            // Room on the right for the labels of the rightmost points, which start beside their markers.
            plot.Axes.Margins(left: 0.05, right: 0.2, bottom: 0.05, top: 0.1);
        }

        plot.ShowLegend(ScottPlot.Edge.Bottom);
        byte[] png = plot.GetImageBytes(width, height, ScottPlot.ImageFormat.Png);
        AtomicFile.Write(path, stream => stream.Write(png));
    }
}
