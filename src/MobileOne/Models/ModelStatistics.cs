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
}
