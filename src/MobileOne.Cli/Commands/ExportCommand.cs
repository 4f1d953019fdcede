using System.CommandLine;
using System.Globalization;
using MobileOne.IO.Checkpoints;
using MobileOne.IO.Onnx;

namespace MobileOne.Cli.Commands;

internal static class ExportCommand
{
    public static Command Create()
    {
        var checkpoint = new Argument<string>("checkpoint") { Description = "Any supported checkpoint (timm or Apple names, fused or not); a train-time model is fused first." };
        var output = new Argument<string>("output") { Description = "Destination .onnx file (written to a temporary file and renamed)." };
        var opset = new Option<int>("--opset") { Description = $"ONNX opset, {OnnxExporter.MinOpset} to {OnnxExporter.MaxOpset}.", DefaultValueFactory = _ => OnnxExporter.DefaultOpset };
        var command = new Command("export", "Export a checkpoint as a fused ONNX model (input 'input' [batch, in_chans, height, width], output 'logits' [batch, num_classes]).");
        command.Arguments.Add(checkpoint);
        command.Arguments.Add(output);
        command.Options.Add(opset);
        CommandAction.Set(command, r =>
        {
            int version = r.GetValue(opset);
            if (version < OnnxExporter.MinOpset || version > OnnxExporter.MaxOpset)
            {
                throw new ArgumentException($"--opset must be between {OnnxExporter.MinOpset} and {OnnxExporter.MaxOpset}; got {version}.");
            }

            string destination = r.GetValue(output)!;
            var loaded = ModelCheckpoint.Load(r.GetValue(checkpoint)!);
            OnnxExporter.Export(loaded.Network, destination, version);
            var config = loaded.Network.Config;
            double megabytes = new FileInfo(destination).Length / 1e6;
            Console.WriteLine(string.Create(
                CultureInfo.InvariantCulture,
                $"wrote {destination} (ONNX opset {version}, MobileOne-{config.Name} fused{(loaded.Network.IsFused ? string.Empty : " from a train-time checkpoint")}, input '{OnnxExporter.InputName}' float32 [batch, {config.InChans}, height, width], output '{OnnxExporter.OutputName}' float32 [batch, {config.NumClasses}], {megabytes:0.0} MB)"));
            return 0;
        });
        return command;
    }
}
