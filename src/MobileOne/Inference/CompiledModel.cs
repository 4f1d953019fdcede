using MobileOne.Models;
using MobileOne.Reparam;
using MobileOne.Tensors;

namespace MobileOne.Inference;

/// <summary>
/// A fused MobileOne prepared for repeated inference. This first version runs the reference forward of the
/// fused network; the engine work replaces the internals behind the same surface.
/// </summary>
public sealed class CompiledModel : IDisposable
{
    private readonly MobileOneNetwork fused;

    private CompiledModel(MobileOneNetwork fused, InferenceOptions options)
    {
        this.fused = fused;
        Options = options;
    }

    public MobileOneConfig Config => fused.Config;

    public InferenceOptions Options { get; }

    /// <summary>Compiles a network; a train-time network is fused first.</summary>
    public static CompiledModel Compile(MobileOneNetwork network, InferenceOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(network);
        return new CompiledModel(network.IsFused ? network : Reparameterizer.Fuse(network), options ?? new InferenceOptions());
    }

    /// <summary>Runs a batch of NCHW float32 images and writes [batch, num_classes] logits.</summary>
    public void Run(ReadOnlySpan<float> inputNchw, int batch, int height, int width, Span<float> logits)
    {
        var input = new Tensor([batch, Config.InChans, height, width], inputNchw.ToArray());
        fused.Forward(input).Data.CopyTo(logits);
    }

    public Tensor Run(Tensor inputNchw)
    {
        ArgumentNullException.ThrowIfNull(inputNchw);
        Shapes.RequireNchw(inputNchw, Config.InChans, "engine input");
        var logits = new Tensor(inputNchw.Dim(0), Config.NumClasses);
        Run(inputNchw.Data, inputNchw.Dim(0), inputNchw.Dim(2), inputNchw.Dim(3), logits.Data);
        return logits;
    }

    public void Dispose()
    {
    }
}
