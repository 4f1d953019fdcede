namespace MobileOne.Models;

/// <summary>
/// What one MobileOne block computes: a KxK convolution (stride, padding, groups) whose train-time form has
/// <see cref="NumConvBranches"/> conv+BN branches, a 1x1 scale branch when K > 1, and a BN skip when the
/// shapes allow, optionally followed by squeeze-excite (<see cref="SeChannels"/> > 0), then ReLU.
/// </summary>
public sealed record BlockSpec(
    int InChannels,
    int OutChannels,
    int KernelSize,
    int Stride,
    int Padding,
    int Groups,
    int NumConvBranches,
    int SeChannels)
{
    /// <summary>Whether the block has the BatchNorm skip branch (same channels, stride 1).</summary>
    public bool HasIdentity => InChannels == OutChannels && Stride == 1;

    /// <summary>Whether the block has the 1x1 scale branch (kernels larger than 1).</summary>
    public bool HasScaleBranch => KernelSize > 1;

    /// <summary>Whether the block ends with squeeze-excite.</summary>
    public bool HasSqueezeExcite => SeChannels > 0;

    /// <summary>Whether the block is depthwise (one group per channel).</summary>
    public bool IsDepthwise => Groups == InChannels && Groups == OutChannels && Groups > 1;

    /// <summary>Throws <see cref="ArgumentException"/> for sizes that make no block.</summary>
    public void Validate()
    {
        if (InChannels <= 0 || OutChannels <= 0 || KernelSize <= 0 || Stride <= 0 || Padding < 0 || Groups <= 0 || NumConvBranches <= 0 || SeChannels < 0)
        {
            throw new ArgumentException($"Invalid MobileOne block: {this}.");
        }

        if (InChannels % Groups != 0 || OutChannels % Groups != 0)
        {
            throw new ArgumentException($"Groups {Groups} must divide {InChannels} input and {OutChannels} output channels.");
        }

        if (KernelSize % 2 == 0)
        {
            throw new ArgumentException($"Kernel size {KernelSize} must be odd so the 1x1 and identity branches sit at its centre.");
        }

        if (HasScaleBranch && Padding != KernelSize / 2)
        {
            throw new ArgumentException($"A {KernelSize}x{KernelSize} block needs padding {KernelSize / 2} for its branches to align; got {Padding}.");
        }
    }
}
