using System.CommandLine;
using MobileOne.IO.Checkpoints;
using MobileOne.Reparam;

namespace MobileOne.Cli.Commands;

internal static class ConvertCommand
{
    public static Command Create()
    {
        var input = new Argument<string>("input") { Description = "Any supported checkpoint of any family (timm's names; Apple's for MobileOne, DingXiaoH/RepVGG's for RepVGG; fused or not)." };
        var output = new Argument<string>("output") { Description = "Destination: .safetensors, or .pth / .pth.tar / .pt for torch.save." };
        var scheme = new Option<string>("--scheme") { Description = "Parameter names to write: timm (default), apple (MobileOne) or official (the authors': Apple's for MobileOne, DingXiaoH/RepVGG's for RepVGG).", DefaultValueFactory = _ => "timm" };
        var fuse = new Option<bool>("--fuse") { Description = "Reparameterize into the fused inference form before writing." };
        var command = new Command("convert", "Convert a checkpoint between formats and key schemes, optionally fused.");
        command.Arguments.Add(input);
        command.Arguments.Add(output);
        command.Options.Add(scheme);
        command.Options.Add(fuse);
        CommandAction.Set(command, r =>
        {
            string destination = r.GetValue(output)!;
            var format = CheckpointFormats.ForOutputPath(destination);
            var loaded = ModelCheckpoint.LoadClassifier(r.GetValue(input)!);
            var layout = Options.Scheme(r.GetValue(scheme), loaded.Network);
            var network = r.GetValue(fuse) && loaded.Network.Reparameterizable && !loaded.Network.IsFused ? Reparameterizer.Fuse(loaded.Network) : loaded.Network;
            ModelCheckpoint.Save(network, destination, layout, format, loaded.InputSize);
            string written = network is Compression.CompressedNetwork ? "timm-fused-compressed" : new KeyScheme(layout, network.IsFused).Name;
            string variant = loaded.MobileOneInfo?.Variant ?? network.Architecture;
            Console.WriteLine($"wrote {destination} ({CheckpointFormats.Name(format)}, {written}, {variant}, {network.State().Count()} tensors)");
            return 0;
        });
        return command;
    }
}
