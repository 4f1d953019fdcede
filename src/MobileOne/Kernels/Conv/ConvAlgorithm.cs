namespace MobileOne.Kernels.Conv;

/// <summary>How a general convolution is computed; <see cref="Auto"/> lets the engine pick per layer.</summary>
public enum ConvAlgorithm
{
    Auto,
    Direct,
    Im2Col,
    Im2Win,
}
