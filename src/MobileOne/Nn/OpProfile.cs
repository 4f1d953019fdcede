using System.Diagnostics;

namespace MobileOne.Nn;

/// <summary>One row of <see cref="OpProfile.Drain"/>: an operation of one kind of layer, summed over its calls.</summary>
/// <param name="Layer">The kind of layer (e.g. "dw 3x3/2", "pw 1x1", "stem 3x3/2", "head").</param>
/// <param name="Op">The operation (e.g. "fwd conv", "bwd weight-grad").</param>
/// <param name="Calls">How many times it ran.</param>
/// <param name="Seconds">Wall-clock time of those calls.</param>
/// <param name="Flops">Floating-point operations of those calls (2 per multiply-add); 0 where not counted.</param>
/// <param name="Bytes">Bytes the calls read and wrote at least once (activations and weights); 0 where not counted.</param>
public readonly record struct OpTiming(string Layer, string Op, long Calls, double Seconds, double Flops, double Bytes);

/// <summary>
/// Opt-in wall-clock accounting of training steps by layer kind and operation (`bench-train --profile`). The training
/// passes wrap each kernel call in <see cref="Measure"/>; while <see cref="Enabled"/> is false that is one branch and
/// no allocation, so the passes keep the calls in place. The flop and byte counts let a reader tell compute-bound
/// operations (GFLOP/s near the core's peak) from memory-bound ones (GB/s near the caches' bandwidth).
/// </summary>
/// <remarks>
/// Per thread: the training passes run on one caller thread (the worker pool inside them), so enabling the profile
/// on the thread that runs the steps records those steps and nothing that other threads train at the same time.
/// </remarks>
public static class OpProfile
{
    [ThreadStatic]
    private static Dictionary<(string Layer, string Op), OpTiming>? totals;

    [ThreadStatic]
    private static bool enabled;

    /// <summary>Whether <see cref="Measure"/> records anything on the calling thread.</summary>
    public static bool Enabled
    {
        get => enabled;
        set => enabled = value;
    }

    /// <summary>Times the scope's lifetime as one call of <paramref name="op"/> on <paramref name="layer"/> (when enabled).</summary>
    public static Scope Measure(string layer, string op, double flops = 0, double bytes = 0) =>
        Enabled ? new Scope(layer, op, flops, bytes, Stopwatch.GetTimestamp()) : default;

    /// <summary>The rows the calling thread recorded since its last drain, largest time first, and clears them.</summary>
    public static IReadOnlyList<OpTiming> Drain()
    {
        var rows = totals is null ? [] : totals.Values.OrderByDescending(t => t.Seconds).ToList();
        totals?.Clear();
        return rows;
    }

    /// <summary>An open measurement; disposing it records the call.</summary>
    public readonly struct Scope : IDisposable
    {
        private readonly string? layer;
        private readonly string op;
        private readonly double flops;
        private readonly double bytes;
        private readonly long start;

        internal Scope(string layer, string op, double flops, double bytes, long start)
        {
            this.layer = layer;
            this.op = op;
            this.flops = flops;
            this.bytes = bytes;
            this.start = start;
        }

        /// <inheritdoc/>
        public void Dispose()
        {
            if (layer is null)
            {
                return;
            }

            double seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
            var key = (layer, op);
            totals ??= [];
            var t = totals.TryGetValue(key, out var prior) ? prior : new OpTiming(layer, op, 0, 0, 0, 0);
            totals[key] = t with { Calls = t.Calls + 1, Seconds = t.Seconds + seconds, Flops = t.Flops + flops, Bytes = t.Bytes + bytes };
        }
    }
}
