using System.Globalization;
using MobileOne.IO;

namespace MobileOne.Imaging.Plots;

/// <summary>One series of a <see cref="GroupedBarChart"/>: a name for the legend and one value per category (NaN: no bar).</summary>
public sealed record BarSeries(string Name, IReadOnlyList<double> Values);

/// <summary>
/// Draws grouped bars (one group per category, one bar per series) into a PNG, written through a temporary file so
/// an interrupted write never replaces a good chart. Each bar carries its value as a label. With a logarithmic axis
/// (for latencies that span three orders of magnitude, as the dynamic activations do) bars rise from the decade
/// below the smallest value and the ticks are powers of ten.
/// </summary>
public static class GroupedBarChart
{
    /// <summary>Writes the chart to <paramref name="path"/> (PNG, <paramref name="width"/> x <paramref name="height"/> pixels).</summary>
    /// <param name="path">The PNG to write.</param>
    /// <param name="title">Title above the chart.</param>
    /// <param name="valueLabel">Label of the value axis.</param>
    /// <param name="categories">One group of bars per category.</param>
    /// <param name="series">One bar per series in each group; each series has one value per category.</param>
    /// <param name="logScale">A logarithmic value axis.</param>
    /// <param name="width">Image width in pixels.</param>
    /// <param name="height">Image height in pixels.</param>
    public static void Save(
        string path,
        string title,
        string valueLabel,
        IReadOnlyList<string> categories,
        IReadOnlyList<BarSeries> series,
        bool logScale = false,
        int width = 1100,
        int height = 600)
    {
        ArgumentNullException.ThrowIfNull(categories);
        ArgumentNullException.ThrowIfNull(series);
        if (series.Any(s => s.Values.Count != categories.Count))
        {
            throw new ArgumentException($"Every series needs one value per category ({categories.Count}).");
        }

        var finite = series.SelectMany(s => s.Values).Where(v => double.IsFinite(v) && (!logScale || v > 0)).ToList();
        double floor = logScale && finite.Count > 0 ? Math.Floor(Math.Log10(finite.Min())) : 0;

        var plot = new ScottPlot.Plot();
        plot.Title(title);
        plot.Axes.Left.Label.Text = logScale ? valueLabel + " (log scale)" : valueLabel;
        var palette = new ScottPlot.Palettes.Category10();
        double groupWidth = 0.8, barWidth = groupWidth / Math.Max(1, series.Count);
        for (int s = 0; s < series.Count; s++)
        {
            var color = palette.GetColor(s);
            var bars = new List<ScottPlot.Bar>();
            for (int c = 0; c < categories.Count; c++)
            {
                double v = series[s].Values[c];
                if (!double.IsFinite(v) || (logScale && v <= 0))
                {
                    continue;
                }

                bars.Add(new ScottPlot.Bar
                {
                    Position = c - (groupWidth / 2) + ((s + 0.5) * barWidth),
                    Value = logScale ? Math.Log10(v) : v,
                    ValueBase = logScale ? floor : 0,
                    Size = barWidth * 0.95,
                    FillColor = color,
                    Label = Format(v),
                });
            }

            var plotted = plot.Add.Bars(bars);
            plotted.LegendText = series[s].Name;
        }

        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(
            Enumerable.Range(0, categories.Count).Select(c => (double)c).ToArray(), categories.ToArray());
        if (logScale && finite.Count > 0)
        {
            double top = Math.Ceiling(Math.Log10(finite.Max()) + 0.15);
            var decades = Enumerable.Range((int)floor, (int)(top - floor) + 1).Select(d => (double)d).ToArray();
            plot.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.NumericManual(
                decades, decades.Select(d => Math.Pow(10, d).ToString("0.###", CultureInfo.InvariantCulture)).ToArray());
            plot.Axes.SetLimitsY(floor, top);
        }
        else
        {
            plot.Axes.Margins(bottom: 0);
        }

        plot.ShowLegend(ScottPlot.Edge.Bottom);
        byte[] png = plot.GetImageBytes(width, height, ScottPlot.ImageFormat.Png);
        AtomicFile.Write(path, stream => stream.Write(png));
    }

    private static string Format(double v) => v.ToString(v < 10 ? "0.00" : v < 100 ? "0.0" : "0", CultureInfo.InvariantCulture);
}
