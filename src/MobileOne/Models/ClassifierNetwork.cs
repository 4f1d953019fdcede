using MobileOne.Graph;
using MobileOne.Nn;
using MobileOne.Tensors;

namespace MobileOne.Models;

/// <summary>
/// An image classifier of any family (MobileOne, or a zoo network: RepVGG, ResNet, MobileNet): images in, logits
/// out, trainable with <see cref="Backward"/>, and a <see cref="LayerGraph"/> for the engine, the ONNX exporter
/// and the counters. State names are timm's for the architecture.
/// </summary>
public abstract class ClassifierNetwork : Module
{
    /// <summary>timm's architecture name, e.g. "mobileone_s0" or "resnet50" (a MobileOne custom description for MobileOne).</summary>
    public abstract string Architecture { get; }

    /// <summary>Image channels the network takes.</summary>
    public abstract int InChans { get; }

    /// <summary>Classifier outputs.</summary>
    public abstract int NumClasses { get; }

    /// <summary>Whether the family has a deploy (fused) form: MobileOne and RepVGG.</summary>
    public abstract bool Reparameterizable { get; }

    /// <summary>Whether the re-parameterizable blocks are in their deploy (fused) form; false for families without any.</summary>
    public abstract bool IsFused { get; }

    /// <summary>Logits [N, classes] of an NCHW batch (eval mode unless <see cref="Module.Train"/> was called).</summary>
    public abstract Tensor Forward(Tensor input);

    /// <summary>
    /// Backward from the gradient of the loss with respect to the logits of the last Forward with gradients enabled;
    /// accumulates into every <see cref="Parameter.Grad"/>, returns the input gradient only when asked for.
    /// </summary>
    public abstract Tensor? Backward(Tensor gradLogits, bool inputGradient = false);

    /// <summary>One line for logs and errors: the architecture with its classes and input channels.</summary>
    public abstract string Description { get; }

    /// <summary>A network of the same architecture and form with zero weights (an EMA's average, a resumed state).</summary>
    public abstract ClassifierNetwork CreateEmpty();

    /// <summary>The network as a layer graph, in the form it is in (weights shared, not copied).</summary>
    public abstract LayerGraph ToGraph();

    /// <summary>Multiply-accumulates for one image of size x size, counted on <see cref="ToGraph"/>.</summary>
    public long MultiplyAccumulates(int size) => ToGraph().MultiplyAccumulates(size, size);
}
