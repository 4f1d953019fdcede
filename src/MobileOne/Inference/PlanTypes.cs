using MobileOne.Kernels;
using MobileOne.Kernels.Engine;

namespace MobileOne.Inference;

/// <summary>Per-run regions of a context's arena besides the engine values.</summary>
internal enum Region
{
    SeMean,
    SeGate,
    SeHidden,
    Scratch,
    Workspace,

    /// <summary>Per image: the coefficients of a dynamic activation (DyReLU, dynamic shift-max).</summary>
    DynCoef,

    /// <summary>A Winograd convolution's transformed input and products when it splits the work by element (small layers on several threads).</summary>
    Winograd,
    Count,
}

/// <summary>Height, width, channels and channel stride (floats per pixel) of one engine value.</summary>
internal readonly record struct ValueLayout(int Height, int Width, int Channels, int Stride)
{
    public long Pixels(int batch) => (long)batch * Height * Width;
}

/// <summary>
/// Everything that depends on (batch, height, width): each engine value's layout and place in the arena (from
/// liveness), the per-share scratch sizes, the kernels of general convolution algorithms (built per input size),
/// and the steps (depthwise + pointwise pairs fused where their rows split evenly). Computed once per shape and
/// shared by all execution contexts.
/// </summary>
internal sealed class ShapePlan
{
    public required int Batch { get; init; }

    public required int Height { get; init; }

    public required int Width { get; init; }

    /// <summary>Layout of every engine value (index = value id; value 0 is the caller's NCHW input).</summary>
    public required ValueLayout[] Values { get; init; }

    /// <summary>Arena offset of every engine value (value 0 lives in the caller's memory).</summary>
    public required long[] ValueOffsets { get; init; }

    public required long[] RegionOffsets { get; init; }

    public required long ScratchPerShare { get; init; }

    public required long WorkspacePerShare { get; init; }

    public required int SeStride { get; init; }

    public required int HiddenStride { get; init; }

    /// <summary>Floats per image of <see cref="Region.DynCoef"/>.</summary>
    public required int CoefStride { get; init; }

    public required long TotalFloats { get; init; }

    /// <summary>Floats of the arena that hold the graph's values (the liveness plan's peak), without scratch regions.</summary>
    public required long ValueFloats { get; init; }

    /// <summary>Per operation: its general convolution kernel (general algorithms only).</summary>
    public required IGeneralConvolution?[] General { get; init; }

    /// <summary>Per operation: the stem's tap offsets in the NCHW input (see <see cref="StemStep.TapOffsets"/>).</summary>
    public required int[]?[] StemOffsets { get; init; }

    public required EngineStep[] Steps { get; init; }
}

/// <summary>The per-run view of a context: its arena, the caller's input, the shape.</summary>
internal sealed unsafe class RunState
{
    public required Isa Isa { get; init; }

    /// <summary>Shares each step is cut into (a multiple of the thread count).</summary>
    public required int Shares { get; init; }

    public ShapePlan Shape { get; set; } = null!;

    public float* Input { get; set; }

    public float* Arena { get; set; }

    /// <summary>Where engine value <paramref name="value"/> starts.</summary>
    public float* Value(int value) => value == GraphProgram.RawInput ? Input : Arena + Shape.ValueOffsets[value];

    public ValueLayout Layout(int value) => Shape.Values[value];

    public float* this[Region region] => Arena + Shape.RegionOffsets[(int)region];

    public float* Scratch(int share) => this[Region.Scratch] + (share * Shape.ScratchPerShare);

    public float* Workspace(int share) => this[Region.Workspace] + (share * Shape.WorkspacePerShare);

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
