using System.CommandLine;
using System.Globalization;
using MobileOne.IO.Checkpoints;
using MobileOne.IO.Onnx;

namespace MobileOne.Cli.Commands;

internal static class ExportCommand
{
    public static Command Create()
    {
        var checkpoint = new Argument<string>("checkpoint") { Description = "Any supported checkpoint of any family (MobileOne in timm or Apple names, RepVGG/ResNet/MobileNet in timm's; fused or not); a train-time MobileOne or RepVGG is fused first unless --unfused." };
        var output = new Argument<string>("output") { Description = "Destination .onnx file (written to a temporary file and renamed)." };
        var opset = new Option<int>("--opset") { Description = $"ONNX opset, {OnnxExporter.MinOpset} to {OnnxExporter.MaxOpset}.", DefaultValueFactory = _ => OnnxExporter.DefaultOpset };
        var unfused = new Option<bool>("--unfused") { Description = "Export a train-time checkpoint as it is: every branch as Conv + BatchNormalization and their sum, not fused (a fused checkpoint is refused)." };
        var command = new Command("export", "Export a checkpoint as a fused ONNX model, or with --unfused its train-time branches (input 'input' [batch, in_chans, height, width], output 'logits' [batch, num_classes]).");
        command.Arguments.Add(checkpoint);
        command.Arguments.Add(output);
        command.Options.Add(opset);
        command.Options.Add(unfused);
        CommandAction.Set(command, r =>
        {
            int version = r.GetValue(opset);
            if (version < OnnxExporter.MinOpset || version > OnnxExporter.MaxOpset)
            {
                throw new ArgumentException($"--opset must be between {OnnxExporter.MinOpset} and {OnnxExporter.MaxOpset}; got {version}.");
            }

            string destination = r.GetValue(output)!;
            bool asIs = r.GetValue(unfused);
            var loaded = ModelCheckpoint.LoadClassifier(r.GetValue(checkpoint)!);
            var network = loaded.Network;
            if (asIs && network.IsFused)
            {
                throw new ArgumentException($"--unfused exports a train-time checkpoint's branches; {loaded.Path} is already fused ({loaded.MobileOneInfo?.Scheme.Name ?? "timm"}). Export it without --unfused.");
            }

            OnnxExporter.Export(network, destination, version, fuse: !asIs, loaded.InputSize);
            string form = network is Compression.CompressedNetwork ? "compressed (low-rank factors as two Convs; the sparse part as a dense Conv + Add, ONNX has no sparse convolution)"
                : !network.Reparameterizable ? "(no fused form)"
                : asIs ? "unfused (train-time branches)" : network.IsFused ? "fused" : "fused from a train-time checkpoint";
            string name = loaded.MobileOne is { } mobileOne ? $"MobileOne-{mobileOne.Config.Name}" : network.Architecture;
            double megabytes = new FileInfo(destination).Length / 1e6;
            Console.WriteLine(string.Create(
                CultureInfo.InvariantCulture,
                $"wrote {destination} (ONNX opset {version}, {name} {form}, input '{OnnxExporter.InputName}' float32 [batch, {network.InChans}, height, width], output '{OnnxExporter.OutputName}' float32 [batch, {network.NumClasses}], {megabytes:0.0} MB)"));
            return 0;
        });
        return command;
    }
}
