using MobileOne.Graph;
using MobileOne.Kernels;
using MobileOne.Kernels.Conv;
using MobileOne.Kernels.Engine;
using MobileOne.Models;
using MobileOne.Reparam;
using MobileOne.Tensors;

namespace MobileOne.Inference;

/// <summary>
/// A layer graph (any network: a fused MobileOne, a train-time one with all its branches, or any other graph of the
/// supported layers) compiled for fast CPU inference. Compilation folds BatchNorm into the convolution before it,
/// packs every weight once into the layout its kernel reads (pointwise GEMM panels, depthwise tap blocks, dense
/// convolutions as patch GEMMs), and puts biases, branch sums, residual adds and activations into the kernels'
/// epilogues; activations are NHWC with channels padded to 16. Each run uses an arena planned once per (batch,
/// height, width) from the values' lifetimes and persistent workers (a WorkerPool), so a warm run allocates nothing.
/// <para>Thread safety: one instance may be used by many threads at once; each concurrent caller gets its
/// own execution context (arena and workers), created on demand and then pooled. Results do not depend on
/// <see cref="InferenceOptions.Threads"/> (every output is accumulated in a fixed order). <see cref="Dispose"/> may race
/// running calls: a call already running finishes with its result, a later one throws
/// <see cref="ObjectDisposedException"/>.</para>
/// <para>The compiled model copies the weights: later changes to the network do not affect it.</para>
/// </summary>
public sealed unsafe class CompiledModel : IDisposable
{
    private const int MaxThreads = 256;

    /// <summary>
    /// Shape plans kept for reuse. A plan is small (offsets and steps, no activations), but a caller cycling through
    /// many input sizes must not grow the cache without bound: past this many, the oldest plan is dropped (a context
    /// still running it keeps its own reference, and asking again rebuilds it).
    /// </summary>
    internal const int MaxCachedShapes = 64;

    private readonly EnginePlan plan;
    private readonly object sync = new();
    private readonly Stack<ExecutionContext> idle = new();
    private readonly List<ExecutionContext> all = [];
    private readonly Dictionary<(int Batch, int Height, int Width), ShapePlan> shapes = [];
    private readonly Queue<(int Batch, int Height, int Width)> shapeOrder = new();
    private bool disposed;

    private CompiledModel(InferenceOptions options, EnginePlan plan)
    {
        Options = options;
        this.plan = plan;
    }

    /// <summary>Lets the workers of an undisposed model exit.</summary>
    ~CompiledModel()
    {
        // Unreferenced without Dispose: let the parked workers exit (their threads do not keep this object alive).
        foreach (var context in all)
        {
            context.Dispose();
        }
    }

    /// <summary>Channels of the input images.</summary>
    public int InChannels => plan.InChannels;

    /// <summary>Channels of the output (the classes of a classifier).</summary>
    public int OutputChannels => plan.OutputChannels;

    /// <summary>Height and width of the output for a height x width input ((1, 1) for a classifier).</summary>
    public (int Height, int Width) OutputSize(int height, int width)
    {
        RequirePositive(1, height, width);
        var shape = plan.Graph.InferShapes(height, width)[plan.Graph.Output];
        return (shape.Height, shape.Width);
    }

    /// <summary>The options it was compiled with.</summary>
    public InferenceOptions Options { get; }

    /// <summary>The instruction set the kernels use (Auto resolved).</summary>
    public IsaLevel Isa => plan.Isa.Level;

    /// <summary>The plan's layers in execution order (index = position in the span given to the profiling Run).</summary>
    public IReadOnlyList<EngineLayer> Layers => plan.Layers;

    /// <summary>Whether the CPU can run the kernels of <paramref name="isa"/> (Auto and Scalar always can).</summary>
    public static bool IsSupported(IsaLevel isa) => isa switch
    {
        IsaLevel.Avx512 => Kernels.Isa.Avx512.IsSupported(),
        IsaLevel.Avx2 => Kernels.Isa.Avx2.IsSupported(),
        _ => true,
    };

    /// <summary>
    /// Compiles a network of any family in the form it is in: a train-time MobileOne or RepVGG runs as its
    /// multi-branch graph (every branch with its own weights; reparameterize it first with
    /// <see cref="Reparameterizer.Fuse(ClassifierNetwork)"/> to run the fused network), a fused one as one convolution
    /// per block. The compiled model copies the weights.
    /// </summary>
    public static CompiledModel Compile(ClassifierNetwork network, InferenceOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(network);
        return Compile(network.ToGraph(), options, null);
    }

    /// <summary>
    /// Reads an ONNX classifier (<see cref="IO.Onnx.OnnxImporter"/>: opset 11..17, the operators it lists) and compiles
    /// it. Errors name the file and the node or tensor (<see cref="IO.CheckpointException"/>).
    /// </summary>
    public static CompiledModel LoadOnnx(string path, InferenceOptions? options = null) => Compile(IO.Onnx.OnnxImporter.Load(path), options, null);

    /// <summary>
    /// Compiles a layer graph. Throws <see cref="ArgumentException"/> for invalid options or graphs and
    /// <see cref="NotSupportedException"/> when the requested instruction set, algorithm or a layer is unavailable.
    /// </summary>
    public static CompiledModel Compile(LayerGraph graph, InferenceOptions? options = null) => Compile(graph, options, null);

    internal static CompiledModel Compile(ClassifierNetwork network, InferenceOptions? options, GeneralConvolutionFactory? general)
    {
        ArgumentNullException.ThrowIfNull(network);
        return Compile(network.ToGraph(), options, general);
    }

    internal static CompiledModel Compile(LayerGraph graph, InferenceOptions? options, GeneralConvolutionFactory? general)
    {
        ArgumentNullException.ThrowIfNull(graph);
        options ??= new InferenceOptions();
        if (options.Threads < 1 || options.Threads > MaxThreads)
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.Threads, $"InferenceOptions.Threads must be between 1 and {MaxThreads}; got {options.Threads}.");
        }

        if (!Enum.IsDefined(options.ConvAlgorithm))
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.ConvAlgorithm, $"InferenceOptions.ConvAlgorithm {(int)options.ConvAlgorithm} is not one of Auto, Direct, Im2Col, Im2Win.");
        }

        // The engine's kernels have AVX-512, AVX2 and scalar paths: 128-bit vectors alone run as scalar.
        var isa = Kernels.Isa.Resolve(options.Isa, "InferenceOptions.Isa", nameof(options)).Engine;
        var plan = new EnginePlan(graph, options.ConvAlgorithm, isa, options.Threads, general);
        return new CompiledModel(options, plan);
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
    /// height x width values) and writes the NCHW output ([batch, num_classes] logits for a classifier) to the
    /// start of <paramref name="logits"/>.
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
        long expected = (long)batch * InChannels * height * width;
        if (inputNchw.Length != expected)
        {
            throw new ArgumentException(
                $"The input holds {inputNchw.Length} floats; batch {batch} x {InChannels} channels x {height} x {width} (NCHW) needs exactly {expected}.",
                nameof(inputNchw));
        }

        var shape = Shape(batch, height, width);
        var outputLayout = shape.Values[plan.Program.Output];
        int oh = outputLayout.Height, ow = outputLayout.Width;
        long plane = (long)oh * ow;
        long outputs = (long)batch * OutputChannels * plane;
        if (logits.Length < outputs)
        {
            throw new ArgumentException(
                plane == 1
                    ? $"The logits span holds {logits.Length} floats; batch {batch} x {OutputChannels} classes needs {outputs}."
                    : $"The output span holds {logits.Length} floats; batch {batch} x {OutputChannels} channels x {oh} x {ow} needs {outputs}.",
                nameof(logits));
        }

        if (!layerTicks.IsEmpty && layerTicks.Length < plan.Layers.Count)
        {
            throw new ArgumentException($"The layer timing span holds {layerTicks.Length} entries; this plan has {plan.Layers.Count} layers.", nameof(layerTicks));
        }

        var context = Rent();
        try
        {
            fixed (float* input = inputNchw)
            {
                float* result = context.Run(shape, input, layerTicks);
                CopyOutput(result, outputLayout, batch, logits);
            }
        }
        finally
        {
            Return(context);
        }
    }

    /// <summary>
    /// Runs an NCHW tensor [batch, in_chans, height, width] and returns the output: [batch, num_classes] logits for a
    /// classifier, else [batch, channels, out_height, out_width].
    /// </summary>
    public Tensor Run(Tensor inputNchw)
    {
        Shapes.RequireNchw(inputNchw, InChannels, "engine input");
        int batch = inputNchw.Dim(0), height = inputNchw.Dim(2), width = inputNchw.Dim(3);
        RequirePositive(batch, height, width);
        var output = NewOutput(batch, OutputChannels, Shape(batch, height, width).Values[plan.Program.Output]);
        Run(inputNchw.Data, batch, height, width, output.Data);
        return output;
    }

    /// <summary>
    /// Activation memory of one run of a batch x height x width input, as the engine's buffer plan reserves it:
    /// <c>Values</c> is the peak of the graph's live values (placed by liveness, channels padded, the caller's input
    /// not included); <c>Arena</c> adds the per-run scratch (depthwise zero row, squeeze-excite, patch and workspace
    /// buffers). Bytes per execution context; the plan is cached, so asking costs one plan per new shape.
    /// </summary>
    public (long Values, long Arena) ActivationBytes(int batch, int height, int width)
    {
        RequirePositive(batch, height, width);
        var shape = Shape(batch, height, width);
        return (shape.ValueFloats * sizeof(float), shape.TotalFloats * sizeof(float));
    }

    /// <summary>The names of the graph's feature taps (e.g. stem, stage1..stage4), in the order <see cref="RunWithFeatures"/> returns them.</summary>
    public IReadOnlyList<string> FeatureNames => plan.Graph.Taps.Select(t => t.Name).ToArray();

    /// <summary>Runs an NCHW tensor and returns the output (as <see cref="Run(Tensor)"/>) and every feature tap as an NCHW tensor.</summary>
    public (Tensor Output, IReadOnlyList<(string Name, Tensor Value)> Features) RunWithFeatures(Tensor inputNchw)
    {
        Shapes.RequireNchw(inputNchw, InChannels, "engine input");
        int batch = inputNchw.Dim(0), height = inputNchw.Dim(2), width = inputNchw.Dim(3);
        RequirePositive(batch, height, width);
        var shape = Shape(batch, height, width);
        var context = Rent();
        try
        {
            fixed (float* input = inputNchw.Data)
            {
                context.Run(shape, input, default);
                var output = Collect(context, shape, plan.Program.Output, batch, OutputChannels);
                var features = new List<(string, Tensor)>();
                for (int t = 0; t < plan.Program.Taps.Count; t++)
                {
                    int value = plan.Program.Taps[t];
                    features.Add((plan.Graph.Taps[t].Name, Collect(context, shape, value, batch, shape.Values[value].Channels)));
                }

                return (output, features);
            }
        }
        finally
        {
            Return(context);
        }
    }

    private static Tensor Collect(ExecutionContext context, ShapePlan shape, int value, int batch, int channels)
    {
        var layout = shape.Values[value];
        var tensor = NewOutput(batch, channels, layout);
        CopyOutput(context.Value(value), layout, batch, tensor.Data);
        return tensor;
    }

    /// <summary>An NCHW tensor for a value of this layout: [batch, channels] when it is 1x1 (a classifier's logits).</summary>
    private static Tensor NewOutput(int batch, int channels, ValueLayout layout) =>
        layout.Height == 1 && layout.Width == 1 ? new Tensor(batch, channels) : new Tensor(batch, channels, layout.Height, layout.Width);

    /// <summary>Runs an NCHW tensor into an existing [batch, num_classes] logits tensor.</summary>
    public void Run(Tensor inputNchw, Tensor logits)
    {
        Shapes.RequireNchw(inputNchw, InChannels, "engine input");
        ArgumentNullException.ThrowIfNull(logits);
        int batch = inputNchw.Dim(0);
        if (!logits.HasShape(batch, OutputChannels))
        {
            throw new ArgumentException($"The logits tensor must have shape [{batch}, {OutputChannels}]; got {logits.ShapeString}.", nameof(logits));
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

    /// <summary>Stops the workers and releases the buffers; later runs throw <see cref="ObjectDisposedException"/>.</summary>
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

    /// <summary>The output value (NHWC, channel stride) to NCHW (for a classifier: [batch, classes] rows).</summary>
    private static void CopyOutput(float* result, ValueLayout layout, int batch, Span<float> destination)
    {
        int channels = layout.Channels;
        long plane = (long)layout.Height * layout.Width;
        for (int n = 0; n < batch; n++)
        {
            for (long p = 0; p < plane; p++)
            {
                float* pixel = result + (((n * plane) + p) * layout.Stride);
                long dst = (n * channels * plane) + p;
                for (int c = 0; c < channels; c++)
                {
                    destination[(int)(dst + (c * plane))] = pixel[c];
                }
            }
        }
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
                return shapes[(batch, height, width)];
            }

            shapeOrder.Enqueue((batch, height, width));
            while (shapes.Count > MaxCachedShapes)
            {
                shapes.Remove(shapeOrder.Dequeue());
            }

            return created;
        }
    }

    /// <summary>How many shape plans are cached (for the tests of the bound).</summary>
    internal int CachedShapeCount
    {
        get
        {
            lock (sync)
            {
                return shapes.Count;
            }
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
