using MobileOne.Models;

namespace MobileOne.Tests.Models;

public class MobileOneConfigTests
{
    [Fact]
    public void Parses_named_variants_with_head_overrides()
    {
        var c = MobileOneConfig.Parse("s0,classes=10,in_chans=1");
        Assert.Equal("s0", c.Name);
        Assert.Equal(10, c.NumClasses);
        Assert.Equal(1, c.InChans);
        Assert.Equal(MobileOneConfig.S0.StageChannels, c.StageChannels);
        Assert.Equal("s4", MobileOneConfig.Parse("S4").Name);
    }

    [Fact]
    public void Parses_custom_descriptions()
    {
        var c = MobileOneConfig.Parse("units=1/2/2/1,widths=0.5/0.5/0.5/0.5,k=2,se=0/0/1/1,classes=10");
        Assert.Equal("custom", c.Name);
        Assert.Equal(new[] { 1, 2, 2, 1 }, c.StageUnits);
        Assert.Equal(new[] { 32, 64, 128, 256 }, c.StageChannels);
        Assert.Equal(32, c.StemChannels);
        Assert.Equal(new[] { 0, 0, 1, 1 }, c.SeUnits);
        Assert.Equal(2, c.NumConvBranches);

        // S1's table written out is recognised as S1.
        Assert.Equal("s1", MobileOneConfig.Parse("widths=1.5/1.5/2/2.5,k=1").Name);
        Assert.Equal("custom", MobileOneConfig.Parse("s0,k=1").Name);
    }

    [Theory]
    [InlineData("s9", "Unknown MobileOne variant 's9'")]
    [InlineData("units=1/2/3", "units needs 4 values")]
    [InlineData("k=two", "k must be an integer")]
    [InlineData("depth=3", "unknown key 'depth'")]
    [InlineData("s0,se=0/0/3/0,units=2/2/2/1", "SE units must be between 0 and that")]
    [InlineData("widths=1/x/1/1", "not a number")]
    public void Bad_descriptions_say_what_is_wrong(string text, string message)
    {
        var e = Assert.Throws<ArgumentException>(() => MobileOneConfig.Parse(text));
        Assert.Contains(message, e.Message);
    }
}
