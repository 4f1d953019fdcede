using System.Text.Json;
using MobileOne.Classification;
using MobileOne.Data.Transforms;
using MobileOne.IO;
using MobileOne.IO.Safetensors;
using MobileOne.Tensors;

namespace MobileOne.Tests.Predict;

/// <summary>One reference case of tools/predict/make-predict-references.py: a file, a pipeline and what PIL + torchvision made of it.</summary>
internal sealed record PilCase(string Name, string File, string Pipeline, int? Size, double? CropPct, string Interpolation, bool ExifTranspose, string PilMode, Tensor Expected)
{
    public string FilePath => PilPredictReference.ImagePath(File);

    public bool IsJpeg => File.EndsWith(".jpg", StringComparison.Ordinal);

    public ImagePreprocessing Preprocessing => Pipeline == "fashion"
        ? new ImagePreprocessing { Pipeline = InputPipeline.FashionMnist }
        : new ImagePreprocessing
        {
            Size = Size!.Value,
            CropPct = CropPct!.Value,
            Interpolation = Interpolation == "bicubic" ? ResampleFilter.Bicubic : ResampleFilter.Bilinear,
        };

    public override string ToString() => Name;
}

/// <summary>
/// The committed PIL references of `mobileone predict` (tests/MobileOne.Tests/Predict, copied beside the test
/// binaries): images of every mode and the tensors timm's eval pipeline on PIL makes of them.
/// </summary>
internal static class PilPredictReference
{
    private static readonly Lazy<Dictionary<string, PilCase>> All = new(Load);

    public static string Folder => Path.Combine(AppContext.BaseDirectory, "Predict");

    public static string ImagePath(string file) => Path.Combine(Folder, "Images", file);

    public static IReadOnlyDictionary<string, PilCase> Cases => All.Value;

    public static PilCase Case(string name) => All.Value[name];

    private static Dictionary<string, PilCase> Load()
    {
        var file = SafetensorsReader.Read(Path.Combine(Folder, "pil_reference.safetensors"));
        using var doc = JsonDocument.Parse(file.Metadata["cases"]);
        var cases = new Dictionary<string, PilCase>(StringComparer.Ordinal);
        foreach (var c in doc.RootElement.EnumerateObject())
        {
            var v = c.Value;
            cases.Add(c.Name, new PilCase(
                c.Name,
                v.GetProperty("file").GetString()!,
                v.GetProperty("pipeline").GetString()!,
                v.GetProperty("size").ValueKind == JsonValueKind.Null ? null : v.GetProperty("size").GetInt32(),
                v.GetProperty("crop_pct").ValueKind == JsonValueKind.Null ? null : v.GetProperty("crop_pct").GetDouble(),
                v.GetProperty("interpolation").GetString()!,
                v.GetProperty("exif_transpose").GetBoolean(),
                v.GetProperty("pil_mode").GetString()!,
                file.Tensors[c.Name].ToTensor()));
        }

        return cases;
    }
}
