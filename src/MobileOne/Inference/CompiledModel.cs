using MobileOne.Kernels.Conv;
using MobileOne.Kernels.Engine;
using MobileOne.Models;
using MobileOne.Reparam;
using MobileOne.Tensors;

namespace MobileOne.Inference;

/// <summary>
/// A fused MobileOne compiled for fast CPU inference. Compilation packs every weight once into the layout
/// its kernel reads (pointwise GEMM panels, depthwise tap blocks, the stem as a patch GEMM), with bias and
/// ReLU in each kernel's epilogue; activations are NHWC with channels padded to 16. Each run uses an arena
/// planned once per (batch, height, width) and a persistent worker team, so a warm run allocates nothing.
/// <para>Thread safety: one instance may be used by many threads at once; each concurrent caller gets its
/// own execution context (arena and workers), created on demand and then pooled. Results do not depend on
/// <see cref="InferenceOptions.Threads"/> (every output is accumulated in a fixed order).</para>
/// <para>The compiled model copies the weights: later changes to the network do not affect it.</para>
/// </summary>
public sealed unsafe class CompiledModel : IDisposable
{
    private const int MaxThreads = 256;

    private readonly EnginePlan plan;
    private readonly object sync = new();
    private readonly Stack<ExecutionContext> idle = new();
    private readonly List<ExecutionContext> all = [];
    private readonly Dictionary<(int Batch, int Height, int Width), ShapePlan> shapes = [];
    private bool disposed;

    private CompiledModel(MobileOneConfig config, InferenceOptions options, EnginePlan plan)
    {
        Config = config;
        Options = options;
        this.plan = plan;
    }

    ~CompiledModel()
    {
        // Unreferenced without Dispose: let the parked workers exit (their threads do not keep this object alive).
        foreach (var context in all)
        {
            context.Dispose();
        }
    }

    public MobileOneConfig Config { get; }

    public InferenceOptions Options { get; }

    /// <summary>The instruction set the kernels use (Auto resolved).</summary>
    public IsaLevel Isa => plan.Isa switch
    {
        EngineIsa.Avx512 => IsaLevel.Avx512,
        EngineIsa.Avx2 => IsaLevel.Avx2,
        _ => IsaLevel.Scalar,
    };

    /// <summary>The plan's layers in execution order (index = position in the span given to the profiling Run).</summary>
    public IReadOnlyList<EngineLayer> Layers => plan.Layers;

    /// <summary>Whether the CPU can run the kernels of <paramref name="isa"/> (Auto and Scalar always can).</summary>
    public static bool IsSupported(IsaLevel isa) => isa switch
    {
        IsaLevel.Avx512 => EngineIsaSupport.IsSupported(EngineIsa.Avx512),
        IsaLevel.Avx2 => EngineIsaSupport.IsSupported(EngineIsa.Avx2),
        _ => true,
    };

    /// <summary>
    /// Compiles a network. A train-time (unfused) network is reparameterized first (the argument itself is
    /// left unchanged); a fused one is used as is. Throws <see cref="ArgumentException"/> for invalid options
    /// and <see cref="NotSupportedException"/> when the requested instruction set or algorithm is unavailable.
    /// </summary>
    public static CompiledModel Compile(MobileOneNetwork network, InferenceOptions? options = null) => Compile(network, options, null);

    internal static CompiledModel Compile(MobileOneNetwork network, InferenceOptions? options, GeneralConvolutionFactory? general)
    {
        ArgumentNullException.ThrowIfNull(network);
        options ??= new InferenceOptions();
        if (options.Threads < 1 || options.Threads > MaxThreads)
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.Threads, $"InferenceOptions.Threads must be between 1 and {MaxThreads}; got {options.Threads}.");
        }

        if (!Enum.IsDefined(options.Isa))
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.Isa, $"InferenceOptions.Isa {(int)options.Isa} is not one of Auto, Avx512, Avx2, Scalar.");
        }

        if (!Enum.IsDefined(options.ConvAlgorithm))
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.ConvAlgorithm, $"InferenceOptions.ConvAlgorithm {(int)options.ConvAlgorithm} is not one of Auto, Direct, Im2Col, Im2Win.");
        }

        var isa = options.Isa switch
        {
            IsaLevel.Avx512 => EngineIsa.Avx512,
            IsaLevel.Avx2 => EngineIsa.Avx2,
            IsaLevel.Scalar => EngineIsa.Scalar,
            _ => EngineIsaSupport.Best,
        };
        if (!EngineIsaSupport.IsSupported(isa))
        {
            throw new NotSupportedException(
                $"InferenceOptions.Isa = {options.Isa} needs {(isa == EngineIsa.Avx512 ? "AVX-512F" : "AVX2 and FMA")}, which this CPU does not support; use Auto or Scalar.");
        }

        var fused = network.IsFused ? network : Reparameterizer.Fuse(network);
        var plan = new EnginePlan(fused, options.ConvAlgorithm, isa, options.Threads, general);
        return new CompiledModel(fused.Config, options, plan);
    }

    /// <summary>Each layer with its sizes and multiply-accumulates per image for a height x width input.</summary>
    public IReadOnlyList<EngineLayerShape> DescribeLayers(int height, int width)
    {
        RequirePositive(1, height, width);
        var shape = plan.CreateShapeGeometry(height, width);
        return shape;
    }

    /// <summary>
    /// Runs a batch of NCHW float32 images (<paramref name="inputNchw"/> holds exactly batch x in_chans x
    /// height x width values) and writes [batch, num_classes] logits to the start of <paramref name="logits"/>.
    /// </summary>
    public void Run(ReadOnlySpan<float> inputNchw, int batch, int height, int width, Span<float> logits) =>
        Run(inputNchw, batch, height, width, logits, default);

    /// <summary>
    /// As <see cref="Run(ReadOnlySpan{float}, int, int, int, Span{float})"/>, and adds the Stopwatch ticks spent
    /// in each layer to <paramref name="layerTicks"/> (indexed like <see cref="Layers"/>; empty: no timing).
    /// </summary>
    public void Run(ReadOnlySpan<float> inputNchw, int batch, int height, int width, Span<float> logits, Span<long> layerTicks)
    {
        RequirePositive(batch, height, width);
        long expected = (long)batch * Config.InChans * height * width;
        if (inputNchw.Length != expected)
        {
            throw new ArgumentException(
                $"The input holds {inputNchw.Length} floats; batch {batch} x {Config.InChans} channels x {height} x {width} (NCHW) needs exactly {expected}.",
                nameof(inputNchw));
        }

        long outputs = (long)batch * Config.NumClasses;
        if (logits.Length < outputs)
        {
            throw new ArgumentException(
                $"The logits span holds {logits.Length} floats; batch {batch} x {Config.NumClasses} classes needs {outputs}.", nameof(logits));
        }

        if (!layerTicks.IsEmpty && layerTicks.Length < plan.Layers.Count)
        {
            throw new ArgumentException($"The layer timing span holds {layerTicks.Length} entries; this plan has {plan.Layers.Count} layers.", nameof(layerTicks));
        }

        var shape = Shape(batch, height, width);
        var context = Rent();
        try
        {
            fixed (float* input = inputNchw)
            {
                float* padded = context.Run(shape, input, layerTicks);
                int classes = Config.NumClasses, stride = plan.Head.PaddedN;
                for (int n = 0; n < batch; n++)
                {
                    new ReadOnlySpan<float>(padded + ((long)n * stride), classes).CopyTo(logits.Slice(n * classes, classes));
                }
            }
        }
        finally
        {
            Return(context);
        }
    }

    /// <summary>Runs an NCHW tensor [batch, in_chans, height, width] and returns [batch, num_classes] logits.</summary>
    public Tensor Run(Tensor inputNchw)
    {
        Shapes.RequireNchw(inputNchw, Config.InChans, "engine input");
        var logits = new Tensor(inputNchw.Dim(0), Config.NumClasses);
        Run(inputNchw, logits);
        return logits;
    }

    /// <summary>Runs an NCHW tensor into an existing [batch, num_classes] logits tensor.</summary>
    public void Run(Tensor inputNchw, Tensor logits)
    {
        Shapes.RequireNchw(inputNchw, Config.InChans, "engine input");
        ArgumentNullException.ThrowIfNull(logits);
        int batch = inputNchw.Dim(0);
        if (!logits.HasShape(batch, Config.NumClasses))
        {
            throw new ArgumentException($"The logits tensor must have shape [{batch}, {Config.NumClasses}]; got {logits.ShapeString}.", nameof(logits));
        }

        Run(inputNchw.Data, batch, inputNchw.Dim(2), inputNchw.Dim(3), logits.Data);
    }

    /// <summary>Managed bytes allocated so far by the worker threads of every context (for the allocation tests).</summary>
    internal long WorkerAllocatedBytes()
    {
        lock (sync)
        {
            return all.Sum(c => c.WorkerAllocatedBytes);
        }
    }

    public void Dispose()
    {
        lock (sync)
        {
            if (disposed)
            {
                return;
            }

            disposed = true;
            while (idle.Count > 0)
            {
                idle.Pop().Dispose();
            }
        }

        GC.SuppressFinalize(this);
    }

    private static void RequirePositive(int batch, int height, int width)
    {
        if (batch <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(batch), batch, $"The batch size must be positive; got {batch}.");
        }

        if (height <= 0 || width <= 0)
        {
            throw new ArgumentOutOfRangeException(height <= 0 ? nameof(height) : nameof(width), $"The input height and width must be positive; got {height}x{width}.");
        }
    }

    private ShapePlan Shape(int batch, int height, int width)
    {
        lock (sync)
        {
            ObjectDisposedException.ThrowIf(disposed, this);
            if (shapes.TryGetValue((batch, height, width), out var cached))
            {
                return cached;
            }
        }

        var created = plan.CreateShape(batch, height, width);
        lock (sync)
        {
            if (!shapes.TryAdd((batch, height, width), created))
            {
                created = shapes[(batch, height, width)];
            }

            return created;
        }
    }

    private ExecutionContext Rent()
    {
        lock (sync)
        {
            ObjectDisposedException.ThrowIf(disposed, this);
            if (idle.Count > 0)
            {
                return idle.Pop();
            }
        }

        var context = new ExecutionContext(plan);
        lock (sync)
        {
            all.Add(context);
        }

        return context;
    }

    private void Return(ExecutionContext context)
    {
        lock (sync)
        {
            if (!disposed)
            {
                idle.Push(context);
                return;
            }
        }

        context.Dispose();
    }
}
