using MobileOne.Imaging.Plots;
using MobileOne.Training;
using SkiaSharp;

namespace MobileOne.Tests.Imaging;

public class TrainingCurvesPlotTests
{
    private static readonly EpochSummary[] Epochs =
    [
        new(1, 1.20, 0.6, 1.00, 0.646, 0.95, 0.1),
        new(2, 0.90, 0.7, 0.85, 0.722, 0.97, 0.09),
        new(3, 0.70, 0.8, 0.72, 0.788, 0.98, 0.07),
    ];

    [Fact]
    public void Writes_a_png_whose_title_text_actually_renders()
    {
        using var dir = new TempDir();
        TrainingCurvesPlot.Save(dir.File("with.png"), Epochs, "MobileOne-S0 on Fashion-MNIST");
        TrainingCurvesPlot.Save(dir.File("without.png"), Epochs, string.Empty);

        using var with = SKBitmap.Decode(dir.File("with.png"));
        using var without = SKBitmap.Decode(dir.File("without.png"));
        Assert.Equal(900, with.Width);
        Assert.Equal(540, with.Height);

        // Text needs a usable font: with one, the title band holds glyph pixels that the untitled plot lacks.
        int TitleInk(SKBitmap b)
        {
            int ink = 0;
            for (int y = 0; y < 30; y++)
            {
                for (int x = 0; x < b.Width; x++)
                {
                    var c = b.GetPixel(x, y);
                    if (c.Red < 128 && c.Green < 128 && c.Blue < 128)
                    {
                        ink++;
                    }
                }
            }

            return ink;
        }

        Assert.True(TitleInk(with) > 200 + TitleInk(without), $"title ink {TitleInk(with)} vs {TitleInk(without)} without a title");
        Assert.Empty(Directory.GetFiles(dir.Path, "*.tmp"));
    }
}
