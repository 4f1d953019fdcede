namespace MobileOne.Models;

/// <summary>Parameter and multiply-accumulate counts of a configuration, train-time and fused.</summary>
public sealed record ModelStatistics(long ParamsUnfused, long ParamsFused, long MacsUnfused, long MacsFused, int ImageSize)
{
    /// <summary>
    /// Counted on the layer graphs of both forms (<see cref="Graph.LayerGraph.Parameters"/>,
    /// <see cref="Graph.LayerGraph.MultiplyAccumulates"/>): parameters are trainable tensors (BatchNorm running
    /// statistics excluded, as timm counts them); MACs count convolutions, squeeze-excite and the classifier for
    /// one image of size x size.
    /// </summary>
    public static ModelStatistics Compute(MobileOneConfig config, int imageSize = 224)
    {
        var unfused = MobileOneNetwork.Create(config, fused: false).ToGraph();
        var fused = MobileOneNetwork.Create(config, fused: true).ToGraph();
        return new ModelStatistics(
            unfused.Parameters(), fused.Parameters(),
            unfused.MultiplyAccumulates(imageSize, imageSize), fused.MultiplyAccumulates(imageSize, imageSize),
            imageSize);
    }

    /// <summary>
    /// The counts of a registry entry (MobileOne from its configuration, a zoo network from its graph). For a family
    /// without a fused form the fused counts equal the train-time ones.
    /// </summary>
    public static ModelStatistics Compute(ModelEntry entry, int imageSize = 224, int numClasses = 1000, int inChans = 3)
    {
        if (entry.Family == "mobileone")
        {
            return Compute(MobileOneConfig.ByName(entry.Name["mobileone_".Length..]).WithHead(numClasses, inChans), imageSize);
        }

        var unfused = entry.CreateUninitialized(numClasses, inChans, fused: false).ToGraph();
        var fused = entry.Reparameterizable ? entry.CreateUninitialized(numClasses, inChans, fused: true).ToGraph() : unfused;
        return new ModelStatistics(
            unfused.Parameters(), fused.Parameters(),
            unfused.MultiplyAccumulates(imageSize, imageSize), fused.MultiplyAccumulates(imageSize, imageSize),
            imageSize);
    }
}
