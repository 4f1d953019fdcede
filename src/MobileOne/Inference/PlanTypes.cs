using MobileOne.Kernels;
using MobileOne.Kernels.Conv;
using MobileOne.Kernels.Engine;
using MobileOne.Models;

namespace MobileOne.Inference;

/// <summary>Regions of a context's arena (and the caller's input).</summary>
internal enum Slot
{
    Input,
    InputNhwc,
    Act0,
    Act1,
    Act2,
    ZeroRow,
    SeMean,
    SeGate,
    SeHidden,
    Pooled,
    Logits,
    Scratch,
    Workspace,
    Count,
}

/// <summary>A convolution of the network, independent of the input size.</summary>
internal sealed class ConvLayer
{
    public required string Name { get; init; }

    public required int Index { get; init; }

    public required int InChannels { get; init; }

    public required int OutChannels { get; init; }

    public required int Kernel { get; init; }

    public required int Stride { get; init; }

    public required int Padding { get; init; }

    public required int Groups { get; init; }

    /// <summary>OIHW weight and bias, kept only for the general algorithms (empty with specialized kernels).</summary>
    public required float[] Weight { get; init; }

    public required float[] Bias { get; init; }

    public SqueezeExciteWeights? SqueezeExcite { get; init; }

    /// <summary>Which kernel runs it; set by the plan builder.</summary>
    public EngineLayerKind Kind { get; set; }

    public ConvGeometry Geometry(int height, int width) =>
        ConvGeometry.Square(1, InChannels, height, width, OutChannels, Kernel, Stride, Padding, Groups);
}

/// <summary>Sizes and buffers of one convolution for one input resolution.</summary>
internal readonly record struct ConvShape(int InH, int InW, int OutH, int OutW, Slot In, Slot Out, int InCs, int OutCs);

/// <summary>
/// Everything that depends on (batch, height, width): each convolution's sizes, where every buffer sits in
/// the arena, the per-share scratch sizes and, for general convolution algorithms, their kernels (which are
/// built for one input size). Computed once per shape and shared by all execution contexts.
/// </summary>
internal sealed class ShapePlan
{
    public required int Batch { get; init; }

    public required int Height { get; init; }

    public required int Width { get; init; }

    public required ConvShape[] Convs { get; init; }

    public required long[] Offsets { get; init; }

    public required long ScratchPerShare { get; init; }

    public required long WorkspacePerShare { get; init; }

    public required long ZeroRowFloats { get; init; }

    public required int SeStride { get; init; }

    public required int HiddenStride { get; init; }

    public required int PooledStride { get; init; }

    public required long TotalFloats { get; init; }

    public IGeneralConvolution[]? General { get; init; }

    /// <summary>The steps for this shape: depthwise + pointwise pairs fused where their rows split evenly.</summary>
    public required EngineStep[] Steps { get; init; }

    /// <summary>The stem's tap offsets in the NCHW input (see <see cref="StemStep.TapOffsets"/>).</summary>
    public int[]? StemOffsets { get; init; }
}

/// <summary>The per-run view of a context: its arena, the caller's input, the shape.</summary>
internal sealed unsafe class RunState
{
    public required EngineIsa Isa { get; init; }

    /// <summary>Shares each step is cut into (a multiple of the thread count).</summary>
    public required int Shares { get; init; }

    public ShapePlan Shape { get; set; } = null!;

    public float* Input { get; set; }

    public float* Arena { get; set; }

    public float* this[Slot slot] => slot == Slot.Input ? Input : Arena + Shape.Offsets[(int)slot];

    public float* Scratch(int share) => Arena + Shape.Offsets[(int)Slot.Scratch] + (share * Shape.ScratchPerShare);

    public float* Workspace(int share) => Arena + Shape.Offsets[(int)Slot.Workspace] + (share * Shape.WorkspacePerShare);

    /// <summary>[start, end) of <paramref name="total"/> items for share <paramref name="share"/>: contiguous, static.</summary>
    public (long Start, long End) Share(long total, int share) => (total * share / Shares, total * (share + 1) / Shares);
}

/// <summary>
/// One parallel phase of the plan, cut into <see cref="RunState.Shares"/> static shares; <c>Run(state, share)</c>
/// computes one of them (whichever thread claimed it). <see cref="Layer"/> indexes the public layer list.
/// </summary>
internal abstract class EngineStep
{
    public int Layer { get; init; }

    public abstract void Run(RunState state, int share);
}
