using System.Text.Json.Nodes;
using MobileOne.Classification;

namespace MobileOne.Cli.Serving;

/// <summary>The classifier a server runs and what `GET /v1/model` says about it.</summary>
/// <param name="Classifier">The fused model on the engine with its preprocessing and class names (the server does not own it).</param>
/// <param name="Source">The checkpoint's file name.</param>
/// <param name="Variant">s0..s4 or custom.</param>
/// <param name="CheckpointFused">Whether the checkpoint held the fused form (the served model is always fused).</param>
/// <param name="Parameters">Parameters of the fused model.</param>
/// <param name="Macs">Multiply-accumulates of the fused model for one image at the input size.</param>
internal sealed record ServedModel(ImageClassifier Classifier, string Source, string Variant, bool CheckpointFused, long Parameters, long Macs)
{
    public JsonObject ToJson() => new()
    {
        ["family"] = "mobileone",
        ["variant"] = Variant,
        ["source"] = Source,
        ["classes"] = Classifier.NumClasses,
        ["labels"] = Classifier.Labels is not null,
        ["in_chans"] = Classifier.Channels,
        ["image_size"] = Classifier.Preprocessing.InputSize,
        ["preprocessing"] = Classifier.Preprocessing.Describe(),
        ["parameters"] = Parameters,
        ["macs"] = Macs,
        ["fused"] = true,
        ["checkpoint_fused"] = CheckpointFused,
    };
}
