using System.Diagnostics;
using MobileOne.Kernels;
using MobileOne.Kernels.Engine;

namespace MobileOne.Inference;

/// <summary>
/// What one concurrent caller of a <see cref="CompiledModel"/> needs: its own arena (activations and
/// scratch, reused run after run and grown only for a larger shape) and its own <see cref="WorkerPool"/>. Contexts are
/// pooled by the model, so callers on different threads never share mutable state.
/// </summary>
internal sealed unsafe class ExecutionContext : IParallelStep, IDisposable
{
    /// <summary>
    /// How long a worker spins for the next step before parking: long enough to cover the gap between two steps on
    /// a quiet machine (the caller finishing its last share, a few microseconds), short enough that on a busy host
    /// the worker does not burn the time slice the caller needs (runs under load: 200 us and 50 us slower, 20 us as
    /// fast as parking at once; see docs/engine.md).
    /// MOBILEONE_ENGINE_SPIN_US overrides it for experiments.
    /// </summary>
    private static readonly int SpinMicroseconds =
        int.TryParse(Environment.GetEnvironmentVariable("MOBILEONE_ENGINE_SPIN_US"), out int us) && us >= 0 ? us : 20;

    private readonly EnginePlan plan;
    private readonly WorkerPool pool;
    private readonly RunState state;
    private AlignedBuffer? arena;
    private EngineStep? current;

    public ExecutionContext(EnginePlan plan)
    {
        this.plan = plan;
        pool = new WorkerPool(plan.Threads, plan.Shares, "MobileOne engine", SpinMicroseconds);
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
                pool.Run(this, plan.Shares);
            }
        }
        else
        {
            // Profiling runs every layer as its own step (no depthwise + pointwise fusion) so each gets its own time.
            foreach (var step in plan.Steps)
            {
                long start = Stopwatch.GetTimestamp();
                current = step;
                pool.Run(this, plan.Shares);
                layerTicks[step.Layer] += Stopwatch.GetTimestamp() - start;
            }
        }

        current = null;
        state.Input = null;
        return state.Value(plan.Program.Output);
    }

    /// <summary>Where engine value <paramref name="value"/> of the last run starts (valid until the next run).</summary>
    public float* Value(int value) => state.Value(value);

    public long WorkerAllocatedBytes => pool.WorkerAllocatedBytes;

    void IParallelStep.Run(int thread) => current!.Run(state, thread);

    public void Dispose() => pool.Dispose();

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

        state.Shape = shape;
        state.Arena = arena.Pointer;
    }
}
