using System.Diagnostics;
using MobileOne.Kernels;
using MobileOne.Kernels.Engine;

namespace MobileOne.Inference;

/// <summary>
/// What one concurrent caller of a <see cref="CompiledModel"/> needs: its own arena (activations and
/// scratch, reused run after run and grown only for a larger shape) and its own worker team. Contexts are
/// pooled by the model, so callers on different threads never share mutable state.
/// </summary>
internal sealed unsafe class ExecutionContext : IParallelStep, IDisposable
{
    private readonly EnginePlan plan;
    private readonly WorkerTeam team;
    private readonly RunState state;
    private AlignedBuffer? arena;
    private EngineStep? current;

    public ExecutionContext(EnginePlan plan)
    {
        this.plan = plan;
        team = new WorkerTeam(plan.Threads, plan.Shares, "MobileOne engine");
        state = new RunState { Isa = plan.Isa, Shares = plan.Shares };
    }

    /// <summary>Runs every step for <paramref name="input"/>; returns where the graph output (NHWC, padded channels) starts.</summary>
    public float* Run(ShapePlan shape, float* input, Span<long> layerTicks)
    {
        Prepare(shape);
        state.Input = input;
        if (layerTicks.IsEmpty)
        {
            foreach (var step in shape.Steps)
            {
                current = step;
                team.Execute(this);
            }
        }
        else
        {
            // Profiling runs every layer as its own step (no depthwise + pointwise fusion) so each gets its own time.
            foreach (var step in plan.Steps)
            {
                long start = Stopwatch.GetTimestamp();
                current = step;
                team.Execute(this);
                layerTicks[step.Layer] += Stopwatch.GetTimestamp() - start;
            }
        }

        current = null;
        state.Input = null;
        return state.Value(plan.Program.Output);
    }

    /// <summary>Where engine value <paramref name="value"/> of the last run starts (valid until the next run).</summary>
    public float* Value(int value) => state.Value(value);

    public long WorkerAllocatedBytes => team.WorkerAllocatedBytes;

    void IParallelStep.Run(int thread) => current!.Run(state, thread);

    public void Dispose() => team.Dispose();

    private void Prepare(ShapePlan shape)
    {
        if (ReferenceEquals(state.Shape, shape))
        {
            return;
        }

        if (arena is null || arena.Length < shape.TotalFloats)
        {
            arena = null;
            arena = new AlignedBuffer(shape.TotalFloats);
        }
        else
        {
            // The zero row must be zeros; with another shape that region may have held activations.
            new Span<float>(arena.Pointer + shape.RegionOffsets[(int)Region.ZeroRow], (int)shape.ZeroRowFloats).Clear();
        }

        state.Shape = shape;
        state.Arena = arena.Pointer;
    }
}
