using MobileOne.Data;
using MobileOne.Data.Transforms;
using MobileOne.Graph;
using MobileOne.Inference;
using MobileOne.Models;
using MobileOne.Reparam;
using MobileOne.Tensors;

namespace MobileOne.Classification;

/// <summary>One of a classifier's top classes for an image.</summary>
/// <param name="Index">Class index (the logit's position).</param>
/// <param name="Label">The class name, or null when the classifier has no names.</param>
/// <param name="Probability">Softmax over all the logits.</param>
/// <param name="Logit">The raw output.</param>
public sealed record ClassScore(int Index, string? Label, float Probability, float Logit);

/// <summary>
/// A fused MobileOne classifier on the inference engine with its input preprocessing: decoded 8-bit images in
/// (RGB, or grey for a Fashion-MNIST model), top-k classes out. Not thread-safe: one batch at a time.
/// </summary>
public sealed class ImageClassifier : IDisposable
{
    private readonly CompiledModel engine;
    private readonly SampleTransform transform;
    private readonly IReadOnlyList<string>? labels;

    /// <summary>
    /// Fuses <paramref name="network"/> (unless it already is, or its family has no fused form) and compiles it.
    /// <paramref name="labels"/>, when given, must name every output.
    /// </summary>
    public ImageClassifier(ClassifierNetwork network, ImagePreprocessing preprocessing, IReadOnlyList<string>? labels, InferenceOptions? options = null)
        : this(Deployed(network), preprocessing, labels, options)
    {
    }

    /// <summary>
    /// Compiles a classifier graph as it is (e.g. an imported ONNX model: <c>OnnxImporter.Load</c>); its output must be
    /// [N, classes]. <paramref name="labels"/>, when given, must name every output.
    /// </summary>
    public ImageClassifier(LayerGraph graph, ImagePreprocessing preprocessing, IReadOnlyList<string>? labels, InferenceOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(graph);
        ArgumentNullException.ThrowIfNull(preprocessing);
        int classes = graph.ChannelsOf(graph.Output);
        if (preprocessing.Channels != graph.InputChannels)
        {
            throw new ArgumentException($"The preprocessing makes {preprocessing.Channels}-channel inputs but the model expects in_chans {graph.InputChannels}.");
        }

        if (labels is not null && labels.Count != classes)
        {
            throw new ArgumentException($"{labels.Count} class names were given but the model predicts {classes} classes.");
        }

        transform = preprocessing.CreateTransform();
        Preprocessing = preprocessing;
        NumClasses = classes;
        this.labels = labels;
        engine = CompiledModel.Compile(graph, options ?? new InferenceOptions());
    }

    /// <summary>The graph a classifier runs: fused first where the family has a fused form.</summary>
    private static LayerGraph Deployed(ClassifierNetwork network)
    {
        ArgumentNullException.ThrowIfNull(network);
        return (network.IsFused || !network.Reparameterizable ? network : Reparameterizer.Fuse(network)).ToGraph();
    }

    /// <summary>How images are turned into the model's input (size, crop, normalization).</summary>
    public ImagePreprocessing Preprocessing { get; }

    /// <summary>Classes the model predicts (its num_classes).</summary>
    public int NumClasses { get; }

    /// <summary>Names of the classes in index order, or null when the classifier has none.</summary>
    public IReadOnlyList<string>? Labels => labels;

    /// <summary>Channels the decoded images must have: 3 (RGB) or 1 (grey).</summary>
    public int Channels => Preprocessing.Channels;

    /// <summary>Floats per preprocessed image (channels x size x size).</summary>
    public int SampleLength => transform.SampleLength;

    /// <summary>
    /// Writes the model input for <paramref name="image"/> (channels as <see cref="Channels"/>; not changed, not
    /// disposed) into <paramref name="destination"/> (<see cref="SampleLength"/> floats, CHW).
    /// </summary>
    public void Preprocess(ByteImage image, Span<float> destination)
    {
        ArgumentNullException.ThrowIfNull(image);
        if (image.Channels != Channels)
        {
            throw new ArgumentException($"The classifier takes {Channels}-channel images; this one has {image.Channels}.");
        }

        var random = new SampleRandom(0);
        transform.Apply(image, ref random, destination);
    }

    /// <summary>Runs preprocessed inputs [batch, channels, size, size] and returns the logits [batch, classes].</summary>
    public Tensor Run(Tensor inputs) => engine.Run(inputs);

    /// <summary>Preprocesses and classifies a batch of images; one top-k list per image, in order.</summary>
    public IReadOnlyList<ClassScore>[] Classify(IReadOnlyList<ByteImage> images, int topK)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (images.Count == 0)
        {
            return [];
        }

        int size = Preprocessing.InputSize;
        var input = new Tensor(images.Count, Channels, size, size);
        for (int i = 0; i < images.Count; i++)
        {
            Preprocess(images[i], input.Span.Slice(i * SampleLength, SampleLength));
        }

        return Classify(input, topK);
    }

    /// <summary>Classifies preprocessed inputs [batch, channels, size, size] (see <see cref="Preprocess"/>); one top-k list per image.</summary>
    public IReadOnlyList<ClassScore>[] Classify(Tensor inputs, int topK)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        var logits = Run(inputs);
        int batch = logits.Dim(0);
        var results = new IReadOnlyList<ClassScore>[batch];
        for (int i = 0; i < batch; i++)
        {
            results[i] = TopK(logits.Span.Slice(i * NumClasses, NumClasses), topK, labels);
        }

        return results;
    }

    /// <summary>
    /// The <paramref name="k"/> largest logits (at most all of them) in descending order, ties by the lower index,
    /// with softmax probabilities over all the logits (computed in double, max-subtracted).
    /// </summary>
    public static IReadOnlyList<ClassScore> TopK(ReadOnlySpan<float> logits, int k, IReadOnlyList<string>? labels = null)
    {
        if (k <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(k), k, "k must be positive.");
        }

        if (logits.IsEmpty)
        {
            throw new ArgumentException("There are no logits.", nameof(logits));
        }

        float max = float.NegativeInfinity;
        foreach (float v in logits)
        {
            max = Math.Max(max, v);
        }

        double sum = 0;
        foreach (float v in logits)
        {
            sum += Math.Exp(v - (double)max);
        }

        k = Math.Min(k, logits.Length);
        var order = new int[logits.Length];
        for (int i = 0; i < order.Length; i++)
        {
            order[i] = i;
        }

        var values = logits.ToArray();
        Array.Sort(order, (a, b) => values[a] != values[b] ? values[b].CompareTo(values[a]) : a.CompareTo(b));
        var top = new ClassScore[k];
        for (int i = 0; i < k; i++)
        {
            int c = order[i];
            top[i] = new ClassScore(c, labels?[c], (float)(Math.Exp(values[c] - (double)max) / sum), values[c]);
        }

        return top;
    }

    /// <summary>Releases the engine's workers and buffers.</summary>
    public void Dispose() => engine.Dispose();
}
