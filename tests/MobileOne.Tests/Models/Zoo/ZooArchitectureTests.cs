using System.Text.Json;
using MobileOne.Graph;
using MobileOne.Models;
using MobileOne.Models.Zoo;
using MobileOne.Nn;

namespace MobileOne.Tests.Models.Zoo;

/// <summary>
/// Every registry entry against timm's own description of the architecture (timm-architectures.json, written by
/// tools/zoo/make-zoo-architectures.py from timm's source on PyTorch): the state_dict's names, shapes and order,
/// the parameter count, the multiply-accumulates at 224 (every Conv2d and Linear, counted by forward hooks), the
/// deploy form of the re-parameterizable families, and the default pretrained configuration.
/// </summary>
public class ZooArchitectureTests
{
    private static readonly Lazy<JsonElement> Timm = new(() =>
        JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Models", "Zoo", "timm-architectures.json"))).RootElement);

    public static TheoryData<string> Names => [.. ModelRegistry.All.Select(e => e.Name)];

    [Fact]
    public void The_registry_holds_every_architecture_timm_was_asked_about()
    {
        Assert.Equal(Timm.Value.EnumerateObject().Select(p => p.Name).Order(), ModelRegistry.All.Select(e => e.Name).Order());
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void State_parameters_and_macs_equal_timms(string name)
    {
        var entry = ModelRegistry.Get(name);
        var timm = Timm.Value.GetProperty(name);
        AssertSameArchitecture(timm.GetProperty("unfused"), entry.Create(), name, ordered: true);
        if (entry.Reparameterizable)
        {
            // timm's fused order depends on how the model was fused (reparameterize_model appends reparam_conv after
            // a block's attn; inference_mode construction puts it first, as ours does), so the deploy form is
            // compared by name.
            AssertSameArchitecture(timm.GetProperty("fused"), entry.Create(fused: true), name + " fused", ordered: false);
        }
        else
        {
            Assert.False(timm.TryGetProperty("fused", out _));
            Assert.Throws<ArgumentException>(() => entry.Create(fused: true));
        }
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void Pretrained_configuration_is_timms_default(string name)
    {
        var cfg = ModelRegistry.Get(name).Pretrained;
        var timm = Timm.Value.GetProperty(name).GetProperty("pretrained");
        Assert.Equal(timm.GetProperty("tag").GetString(), cfg.Tag);
        Assert.Equal([3, cfg.InputSize, cfg.InputSize], timm.GetProperty("input_size").EnumerateArray().Select(v => v.GetInt32()));
        Assert.Equal(timm.GetProperty("crop_pct").GetDouble(), cfg.CropPct);
        Assert.Equal(timm.GetProperty("interpolation").GetString(), cfg.Interpolation);
        Assert.Equal(timm.GetProperty("mean").EnumerateArray().Select(v => v.GetDouble()), cfg.Mean);
        Assert.Equal(timm.GetProperty("std").EnumerateArray().Select(v => v.GetDouble()), cfg.Std);
    }

    [Fact]
    public void Names_are_found_in_any_case_and_an_unknown_one_lists_the_known()
    {
        Assert.Equal("resnet50", ModelRegistry.Get("ResNet50").Name);
        var e = Assert.Throws<ArgumentException>(() => ModelRegistry.Get("resnet51"));
        Assert.Contains("'resnet51'", e.Message);
        Assert.Contains("mobilenetv2_140", e.Message);
    }

    [Fact]
    public void Heads_and_input_channels_follow_the_request()
    {
        foreach (var entry in ModelRegistry.All.Where(e => e.Name is "mobileone_s0" or "repvgg_a0" or "resnet18" or "mobilenetv1_100" or "mobilenetv2_050"))
        {
            var network = entry.Create(numClasses: 10, inChans: 1);
            Assert.Equal((1, 10), (network.InChans, network.NumClasses));
            var graph = network.ToGraph();
            Assert.Equal(10, graph.ChannelsOf(graph.Output));
            Assert.Equal(entry.Name, network.Architecture);
        }
    }

    /// <summary>timm's initialisation per family, checked on the statistics of large layers (a fixed seed, so exact bounds are not needed).</summary>
    [Fact]
    public void Initialisation_follows_timm_per_family()
    {
        var resnet = (ZooNetwork)ModelRegistry.Get("resnet50").Create(seed: 1);
        AssertStd(Weight(resnet, "layer3.0.conv2"), Math.Sqrt(2.0 / (256 * 9)));
        Assert.All(Weight(resnet, "layer1.0.bn3"), v => Assert.Equal(0f, v));
        Assert.All(Weight(resnet, "layer1.0.bn2"), v => Assert.Equal(1f, v));
        AssertUniform(Weight(resnet, "fc"), 1 / Math.Sqrt(2048));
        AssertUniform(Bias(resnet, "fc"), 1 / Math.Sqrt(2048));

        var mobilenet = (ZooNetwork)ModelRegistry.Get("mobilenetv2_100").Create(seed: 1);
        AssertStd(Weight(mobilenet, "blocks.6.0.conv_dw"), Math.Sqrt(2.0 / 9));
        AssertStd(Weight(mobilenet, "conv_head"), Math.Sqrt(2.0 / 1280));
        AssertUniform(Weight(mobilenet, "classifier"), 1 / Math.Sqrt(1000));
        Assert.All(Bias(mobilenet, "classifier"), v => Assert.Equal(0f, v));

        var repvgg = (ZooNetwork)ModelRegistry.Get("repvgg_a0").Create(seed: 1);
        var gammas = repvgg.Operations.OfType<BatchNormOp>().SelectMany(b => b.Bn.Weight.Value.Data).ToArray();
        Assert.InRange(gammas.Average(), 0.09, 0.11);
        AssertStd(gammas, 0.1, center: 0.1);
        AssertStd(Weight(repvgg, "head.fc"), 0.01);

        var again = (ZooNetwork)ModelRegistry.Get("repvgg_a0").Create(seed: 1);
        Assert.Equal(Weight(repvgg, "stages.2.3.conv_kxk.conv"), Weight(again, "stages.2.3.conv_kxk.conv"));
        Assert.NotEqual(Weight(repvgg, "stages.2.3.conv_kxk.conv"), Weight((ZooNetwork)ModelRegistry.Get("repvgg_a0").Create(seed: 2), "stages.2.3.conv_kxk.conv"));
    }

    private static void AssertSameArchitecture(JsonElement timm, ClassifierNetwork network, string what, bool ordered)
    {
        var expected = timm.GetProperty("state").EnumerateArray()
            .Select(e => $"{e[0].GetString()} [{string.Join(",", e[1].EnumerateArray().Select(d => d.GetInt32()))}]").ToList();
        var actual = network.State().Select(e => $"{e.Name} [{string.Join(",", e.Value.Shape)}]").ToList();
        if (!ordered)
        {
            expected.Sort(StringComparer.Ordinal);
            actual.Sort(StringComparer.Ordinal);
        }

        Assert.True(expected.SequenceEqual(actual), $"{what}: first difference at {FirstDifference(expected, actual)}");
        Assert.Equal(timm.GetProperty("params").GetInt64(), network.ParameterCount());
        if (network is ZooNetwork zoo)
        {
            var entry = ModelRegistry.Get(zoo.Architecture);
            var described = entry.ZooStateShapes(zoo.NumClasses, zoo.InChans, zoo.IsFused).Select(e => $"{e.Name} [{string.Join(",", e.Shape)}]").ToList();
            Assert.Equal(network.State().Select(e => $"{e.Name} [{string.Join(",", e.Value.Shape)}]"), described);
        }

        LayerGraph graph = network.ToGraph();
        Assert.Equal(timm.GetProperty("params").GetInt64(), graph.Parameters());
        Assert.Equal(timm.GetProperty("macs_224").GetInt64(), graph.MultiplyAccumulates(224, 224));
    }

    private static string FirstDifference(List<string> expected, List<string> actual)
    {
        int i = 0;
        while (i < expected.Count && i < actual.Count && expected[i] == actual[i])
        {
            i++;
        }

        return $"#{i}: timm {(i < expected.Count ? expected[i] : "(end)")}, ours {(i < actual.Count ? actual[i] : "(end)")} ({expected.Count} vs {actual.Count} entries)";
    }

    private static float[] Weight(ZooNetwork n, string layer) => Layer(n, layer).State().First(e => e.Name == "weight").Value.Data;

    private static float[] Bias(ZooNetwork n, string layer) => Layer(n, layer).State().First(e => e.Name == "bias").Value.Data;

    private static Module Layer(ZooNetwork n, string layer) => n.Operations.Single(o => o.Name == layer).Layer!;

    private static void AssertStd(float[] values, double std, double center = 0)
    {
        double measured = Math.Sqrt(values.Average(v => (v - center) * (v - center)));
        Assert.InRange(measured, 0.95 * std, 1.05 * std);
    }

    private static void AssertUniform(float[] values, double bound)
    {
        Assert.All(values, v => Assert.InRange(v, -bound, bound));
        Assert.InRange(values.Max(Math.Abs), 0.95 * bound, bound);
        AssertStd(values, bound / Math.Sqrt(3));
    }
}
