using MobileOne.Models;

namespace MobileOne.Tests.Models;

public class ModelStatisticsTests
{
    [Fact]
    public void S0_counts_match_the_published_figures()
    {
        // Figures from the paper / the issue: about 5.29M / 1052M unfused and 2.08M / 275M fused at 224.
        var s = ModelStatistics.Compute(MobileOneConfig.S0, 224);
        Assert.InRange(s.ParamsUnfused / 1e6, 5.28, 5.30);
        Assert.InRange(s.ParamsFused / 1e6, 2.07, 2.09);
        Assert.InRange(s.MacsUnfused / 1e6, 1045, 1060);
        Assert.InRange(s.MacsFused / 1e6, 274, 276);
    }

    [Theory]
    [InlineData("s1", 4.76, 825)]
    [InlineData("s2", 7.81, 1298)]
    [InlineData("s3", 10.08, 1896)]
    [InlineData("s4", 14.84, 2979)]
    public void Fused_counts_of_larger_variants_match_the_published_figures(string name, double paramsM, double macsM)
    {
        var s = ModelStatistics.Compute(MobileOneConfig.ByName(name), 224);
        Assert.InRange(s.ParamsFused / 1e6, paramsM - 0.01, paramsM + 0.01);
        Assert.InRange(s.MacsFused / 1e6, macsM - 1, macsM + 1);
    }

    [Fact]
    public void Variant_table_matches_the_reference_channel_widths()
    {
        Assert.Equal(48, MobileOneConfig.S0.StemChannels);
        Assert.Equal(new[] { 48, 128, 256, 1024 }, MobileOneConfig.S0.StageChannels);
        Assert.Equal(new[] { 96, 192, 512, 1280 }, MobileOneConfig.S1.StageChannels);
        Assert.Equal(new[] { 192, 448, 896, 2048 }, MobileOneConfig.S4.StageChannels);
        Assert.Equal(64, MobileOneConfig.S4.StemChannels);
        Assert.Equal(new[] { 0, 0, 5, 1 }, MobileOneConfig.S4.SeUnits);
        Assert.Equal(4, MobileOneConfig.S0.NumConvBranches);
    }
}
