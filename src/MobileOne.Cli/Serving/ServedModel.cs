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
    /// <summary>Where the class names come from (--labels, or the default for the model), as predict's start line says it.</summary>
    public string? LabelSource { get; init; }

    /// <summary>
    /// Whether uploads are turned upright by their EXIF orientation before preprocessing (--exif-transpose); off by
    /// default because timm's pipeline does not, and predict does not either.
    /// </summary>
    public bool ExifTranspose { get; init; }

    /// <summary>
    /// The body of `GET /v1/model`. The preprocessing fields are the classifier's own (the model's defaults with the
    /// command's options laid over them), so what is reported is what the server does.
    /// </summary>
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
        ["crop_pct"] = Classifier.Preprocessing.Pipeline == InputPipeline.ImageNet ? Classifier.Preprocessing.CropPct : null,
        ["interpolation"] = Classifier.Preprocessing.Interpolation.ToString().ToLowerInvariant(),
        ["exif_transpose"] = ExifTranspose,
        ["label_source"] = LabelSource,
        ["parameters"] = Parameters,
        ["macs"] = Macs,
        ["fused"] = true,
        ["checkpoint_fused"] = CheckpointFused,
    };
}
