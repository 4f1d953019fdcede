using Microsoft.ML.OnnxRuntime;
using MobileOne.Tensors;

namespace MobileOne.Tests.IO.Onnx;

/// <summary>Runs an exported model in ONNX Runtime, the independent executor the export is judged by.</summary>
internal sealed class OrtHarness : IDisposable
{
    private readonly InferenceSession session;

    private OrtHarness(InferenceSession session)
    {
        this.session = session;
    }

    public static OrtHarness FromFile(string path) => new(new InferenceSession(path));

    public static OrtHarness FromBytes(byte[] model) => new(new InferenceSession(model));

    /// <summary>
    /// ONNX Runtime without its graph rewrites: its operators as the ONNX specification defines them. Its default
    /// rewrites include a Pad fusion that moves a zero Pad before a MaxPool into the MaxPool's own pads (which pad
    /// with -inf), so a window of negative values at the border returns its maximum instead of the padded 0.
    /// </summary>
    public static OrtHarness Unoptimized(byte[] model)
    {
        using var options = new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_DISABLE_ALL };
        return new(new InferenceSession(model, options));
    }

    public IReadOnlyDictionary<string, NodeMetadata> Inputs => session.InputMetadata;

    public IReadOnlyDictionary<string, NodeMetadata> Outputs => session.OutputMetadata;

    public Tensor Run(Tensor input)
    {
        using var value = OrtValue.CreateTensorValueFromMemory(input.Data, input.Shape.Select(d => (long)d).ToArray());
        using var options = new RunOptions();
        using var results = session.Run(options, ["input"], [value], ["logits"]);
        var output = results[0];
        long[] shape = output.GetTensorTypeAndShape().Shape;
        return new Tensor(shape.Select(d => (int)d).ToArray(), output.GetTensorDataAsSpan<float>().ToArray());
    }

    public void Dispose() => session.Dispose();
}
