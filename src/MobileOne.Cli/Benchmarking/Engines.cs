using Microsoft.ML.OnnxRuntime;
using MobileOne.Graph;
using MobileOne.Inference;
using MobileOne.IO.Onnx;

namespace MobileOne.Cli.Benchmarking;

/// <summary>
/// One way of running a model on a fixed input: the buffers are set up once, so <see cref="Run"/>
/// is exactly what gets timed.
/// </summary>
internal interface IBenchEngine : IDisposable
{
    string Name { get; }

    ReadOnlySpan<float> Output { get; }

    void Run();
}

internal static class EngineNames
{
    public const string Managed = "managed";
    public const string OnnxRuntime = "onnxruntime";

    public static IReadOnlyList<string> All { get; } = [Managed, OnnxRuntime];

    public static IBenchEngine Create(string name, BenchModel model, byte[] onnxModel, float[] input, int batch, int size, int threads, InferenceOptions? managed = null) => name switch
    {
        Managed => new ManagedEngine(model.Graph, input, batch, size, (managed ?? new InferenceOptions()) with { Threads = threads }),
        OnnxRuntime => new OnnxRuntimeEngine(onnxModel, input, batch, model.InChannels, size, model.OutputChannels, threads),
        _ => throw new ArgumentException($"Unknown engine '{name}'; expected {string.Join(" or ", All)}."),
    };

    /// <summary>"1.31.1": the native library actually loaded, not the managed package's version.</summary>
    public static string OnnxRuntimeVersion() => OrtEnv.Instance().GetVersionString();
}

/// <summary>The library's own engine: <see cref="CompiledModel"/> of the graph as given (a MobileOne fused or not, a study network) with the requested thread count.</summary>
internal sealed class ManagedEngine : IBenchEngine
{
    private readonly CompiledModel model;
    private readonly float[] input;
    private readonly float[] output;
    private readonly int batch;
    private readonly int size;

    public ManagedEngine(LayerGraph graph, float[] input, int batch, int size, InferenceOptions options)
    {
        model = CompiledModel.Compile(graph, options);
        this.input = (float[])input.Clone();
        output = new float[batch * graph.ChannelsOf(graph.Output)];
        this.batch = batch;
        this.size = size;
    }

    public string Name => EngineNames.Managed;

    public ReadOnlySpan<float> Output => output;

    public CompiledModel Model => model;

    public void Run() => model.Run(input, batch, size, size, output);

    /// <summary>Stopwatch ticks per layer summed over <paramref name="runs"/> profiled runs.</summary>
    public long[] Profile(int runs)
    {
        var ticks = new long[model.Layers.Count];
        for (int i = 0; i < runs; i++)
        {
            model.Run(input, batch, size, size, output, ticks);
        }

        return ticks;
    }

    public void Dispose() => model.Dispose();
}

/// <summary>
/// ONNX Runtime on the exported model, set up the way a fair in-process comparison needs it: full graph
/// optimization, the same intra-op thread budget, one inter-op thread, no spinning (so idle ORT workers do
/// not steal the managed engine's cores), and input/output bound once over pinned arrays.
/// </summary>
internal sealed class OnnxRuntimeEngine : IBenchEngine
{
    private static readonly string[] InputNames = [OnnxExporter.InputName];
    private static readonly string[] OutputNames = [OnnxExporter.OutputName];

    private readonly SessionOptions options;
    private readonly InferenceSession session;
    private readonly RunOptions runOptions;
    private readonly float[] output;
    private readonly OrtValue[] inputs;
    private readonly OrtValue[] outputs;

    public OnnxRuntimeEngine(byte[] model, float[] input, int batch, int channels, int size, int classes, int threads)
    {
        options = new SessionOptions
        {
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            IntraOpNumThreads = threads,
            InterOpNumThreads = 1,
            LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR,
        };
        options.AddSessionConfigEntry("session.intra_op.allow_spinning", "0");
        session = new InferenceSession(model, options);
        runOptions = new RunOptions();

        // Pinned-heap arrays never move, so ORT can read and write them directly on every run.
        float[] pinnedInput = GC.AllocateArray<float>(input.Length, pinned: true);
        input.CopyTo(pinnedInput, 0);
        output = GC.AllocateArray<float>(batch * classes, pinned: true);
        inputs = [OrtValue.CreateTensorValueFromMemory(pinnedInput, [batch, channels, size, size])];
        outputs = [OrtValue.CreateTensorValueFromMemory(output, [batch, classes])];
    }

    public string Name => EngineNames.OnnxRuntime;

    public ReadOnlySpan<float> Output => output;

    public void Run() => session.Run(runOptions, InputNames, inputs, OutputNames, outputs);

    public void Dispose()
    {
        foreach (var v in inputs.Concat(outputs))
        {
            v.Dispose();
        }

        runOptions.Dispose();
        session.Dispose();
        options.Dispose();
    }
}
