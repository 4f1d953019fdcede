using MobileOne.Graph;
using System.CommandLine;
using System.Globalization;
using MobileOne.Classification;
using MobileOne.Data;
using MobileOne.Data.Transforms;
using MobileOne.Imaging;
using MobileOne.Models;

namespace MobileOne.Cli.Commands;

/// <summary>
/// The options that say how images become model inputs and how classes are named: <c>--labels</c>,
/// <c>--img-size</c>, <c>--crop-pct</c>, <c>--interpolation</c> and <c>--exif-transpose</c>. Declared once here so
/// that <c>predict</c> and <c>serve</c> take the same values, defaults and error messages, and a server answers an
/// image exactly as <c>predict</c> would with the same flags.
/// </summary>
internal sealed class ClassifierOptions
{
    /// <summary>Largest --img-size, the largest size a file may record (<see cref="MobileOne.IO.InputSizeRecord.MaxSize"/>).</summary>
    public const int MaxImageSize = MobileOne.IO.InputSizeRecord.MaxSize;

    /// <summary>Creates the options (each command needs its own instances: an option belongs to one command).</summary>
    public ClassifierOptions()
    {
        Labels = new Option<string?>("--labels") { Description = "'imagenet' (OpenCV's ImageNet-1k names), 'none', or a text file with one class name per line. Default: ImageNet for 1000 classes, Fashion-MNIST for grey 10-class models, else none." };
        Size = new Option<int?>("--img-size") { Description = "Crop size (default: the size the checkpoint records it was trained at, else the model's timm pretrained configuration: 224, or 32 for grey Fashion-MNIST models)." };
        CropPct = new Option<double?>("--crop-pct") { Description = "Centre crop fraction: the shorter side is resized to floor(size / crop_pct) (default: 0.875 for S0, 0.9 for S1..S4)." };
        Interpolation = new Option<string?>("--interpolation") { Description = "Resize filter: bilinear (default) or bicubic (PIL's)." };
        ExifTranspose = new Option<bool>("--exif-transpose") { Description = "Turn photos upright by their EXIF orientation first (timm's pipeline does not)." };
    }

    /// <summary><c>--labels imagenet|none|FILE</c>; unset means the default for the model's classes and channels.</summary>
    public Option<string?> Labels { get; }

    /// <summary><c>--img-size N</c>: the crop side; unset means the model's default.</summary>
    public Option<int?> Size { get; }

    /// <summary><c>--crop-pct P</c> in (0, 1]; unset means the model's default.</summary>
    public Option<double?> CropPct { get; }

    /// <summary><c>--interpolation bilinear|bicubic</c>; unset means the model's default (bilinear).</summary>
    public Option<string?> Interpolation { get; }

    /// <summary><c>--exif-transpose</c>: apply the EXIF orientation before preprocessing.</summary>
    public Option<bool> ExifTranspose { get; }

    /// <summary>Adds the options to <paramref name="command"/>, in the order help lists them.</summary>
    public void AddTo(Command command)
    {
        foreach (var option in new Option[] { Labels, Size, CropPct, Interpolation, ExifTranspose })
        {
            command.Options.Add(option);
        }
    }

    /// <summary>
    /// The values given, checked on their own (before the checkpoint is read, so a typo fails at once); throws
    /// <see cref="ArgumentException"/> naming the option. What depends on the model is checked by
    /// <see cref="ClassifierChoices.Resolve"/>.
    /// </summary>
    public ClassifierChoices Parse(ParseResult result) => new(
        result.GetValue(Size) is int s ? ImageSize(s) : null,
        result.GetValue(CropPct) is double c ? CropFraction(c) : null,
        result.GetValue(Interpolation) is string i ? Filter(i) : null,
        result.GetValue(Labels),
        result.GetValue(ExifTranspose));

    private static int ImageSize(int value) =>
        Options.Positive(value, "--img-size") <= MaxImageSize ? value : throw new ArgumentException($"--img-size must be at most {MaxImageSize}; got {value}.");

    private static double CropFraction(double value) =>
        value > 0 && value <= 1 ? value : throw new ArgumentException($"--crop-pct must lie in (0, 1]; got {value.ToString(CultureInfo.InvariantCulture)}.");

    private static ResampleFilter Filter(string value) =>
        ResampleFilters.TryParse(value) ?? throw new ArgumentException($"--interpolation must be bilinear or bicubic; got '{value}'.");
}

/// <summary>
/// The checked values of <see cref="ClassifierOptions"/>; null means "the model's default".
/// </summary>
/// <param name="Size">--img-size.</param>
/// <param name="CropPct">--crop-pct.</param>
/// <param name="Interpolation">--interpolation.</param>
/// <param name="Labels">--labels as given: imagenet, none, or a file.</param>
/// <param name="ExifTranspose">--exif-transpose.</param>
internal sealed record ClassifierChoices(int? Size, double? CropPct, ResampleFilter? Interpolation, string? Labels, bool ExifTranspose)
{
    /// <summary>
    /// The preprocessing and class names for the loaded model: its timm pretrained configuration with the options
    /// given laid over it, and the names from --labels (or the default for its classes). Throws
    /// <see cref="ArgumentException"/> naming the option when a value does not fit the model.
    /// </summary>
    public ClassifierSetup Resolve(ClassifierModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        // Preprocessing first, then labels: the order predict has always checked them in.
        var preprocessing = Preprocessing(model.Defaults, model.Path);
        var names = ResolveLabels(model.NumClasses, model.InChans);
        return new ClassifierSetup(preprocessing, names, LabelSource(names), ExifTranspose);
    }

    private ImagePreprocessing Preprocessing(ImagePreprocessing defaults, string modelPath)
    {
        var p = defaults;
        if (p.Pipeline == InputPipeline.FashionMnist)
        {
            if (CropPct is not null)
            {
                throw new ArgumentException(
                    $"--crop-pct does not apply to {modelPath}: it is a grey (in_chans 1) Fashion-MNIST model, whose inputs are the whole image "
                    + "resized to --img-size - 4 and given a 2-pixel border (28x28 in 32x32 by default).");
            }

            p = p with { Size = Size ?? p.Size };
        }
        else
        {
            p = p with { Size = Size ?? p.Size, CropPct = CropPct ?? p.CropPct };
        }

        return (Interpolation is ResampleFilter f ? p with { Interpolation = f } : p).Validate();
    }

    private IReadOnlyList<string>? ResolveLabels(int numClasses, int inChans)
    {
        switch (Labels?.ToLowerInvariant())
        {
            case null:
                return ClassLabels.Default(numClasses, inChans);
            case "none":
                return null;
            case "imagenet":
                return numClasses == ClassLabels.ImageNet.Count
                    ? ClassLabels.ImageNet
                    : throw new ArgumentException($"--labels imagenet names 1000 classes but the model predicts {numClasses}.");
        }

        IReadOnlyList<string> names;
        try
        {
            names = ClassLabels.Load(Labels);
        }
        catch (DatasetException e)
        {
            throw new ArgumentException($"--labels {e.Message}");
        }

        return names.Count == numClasses
            ? names
            : throw new ArgumentException($"--labels {Labels} holds {names.Count} class names but the model predicts {numClasses} classes.");
    }

    private string LabelSource(IReadOnlyList<string>? names) => names switch
    {
        null => "none (class indices)",
        _ when ReferenceEquals(names, ClassLabels.ImageNet) => "ImageNet-1k (OpenCV's list)",
        _ when ReferenceEquals(names, ClassLabels.FashionMnist) => "Fashion-MNIST",
        _ => Labels!,
    };
}

/// <summary>What a classifying command runs with, resolved for its model.</summary>
/// <param name="Preprocessing">The effective preprocessing, validated.</param>
/// <param name="Labels">Class names, or null for indices only.</param>
/// <param name="LabelSource">Where the names come from, for the start line and the server's model endpoint.</param>
/// <param name="ExifTranspose">Whether images are turned upright by their EXIF orientation before preprocessing.</param>
internal sealed record ClassifierSetup(ImagePreprocessing Preprocessing, IReadOnlyList<string>? Labels, string LabelSource, bool ExifTranspose)
{
    /// <summary>The decode options these choices imply (the decoder applies Pillow's pixel limit on its own).</summary>
    public ImageDecodeOptions DecodeOptions => new() { ApplyExifOrientation = ExifTranspose };
}

/// <summary>What predict and serve run: the deployed graph of a checkpoint or an ONNX file, with its default preprocessing.</summary>
/// <param name="Path">The file.</param>
/// <param name="Name">The variant or architecture (the file name for ONNX).</param>
/// <param name="IsOnnx">Whether the file is an ONNX model (run as it is).</param>
/// <param name="FusedOnLoad">Whether a train-time checkpoint was fused when loaded.</param>
/// <param name="Graph">The graph the engine compiles.</param>
/// <param name="Defaults">The preprocessing the options are laid over.</param>
internal sealed record ClassifierModel(string Path, string Name, bool IsOnnx, bool FusedOnLoad, LayerGraph Graph, ImagePreprocessing Defaults)
{
    /// <summary>How it runs, for the start line: "ONNX, as given", "fused on load" or "as loaded".</summary>
    public string Form => IsOnnx ? "ONNX, as given" : FusedOnLoad ? "fused on load" : "as loaded";

    /// <summary>Classes predicted.</summary>
    public int NumClasses => Graph.ChannelsOf(Graph.Output);

    /// <summary>Image channels taken.</summary>
    public int InChans => Graph.InputChannels;
}
