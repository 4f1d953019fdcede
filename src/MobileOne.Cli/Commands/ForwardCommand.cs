using System.CommandLine;
using MobileOne.Inference;
using MobileOne.IO;
using MobileOne.Graph;
using MobileOne.IO.Checkpoints;
using MobileOne.IO.Onnx;
using MobileOne.IO.Safetensors;
using MobileOne.Models;
using MobileOne.Reparam;

namespace MobileOne.Cli.Commands;

internal static class ForwardCommand
{
    public static Command Create()
    {
        var checkpoint = new Argument<string>("checkpoint") { Description = "A checkpoint of any family, or an ONNX classifier (.onnx, run as it is; the first output is written as logits)." };
        var input = new Option<string>("--input") { Description = "Safetensors file holding the NCHW float input.", Required = true };
        var tensor = new Option<string>("--tensor") { Description = "Name of the input tensor inside --input.", Required = true };
        var output = new Option<string>("--output") { Description = "Safetensors file to write logits (and features) to.", Required = true };
        var fuse = new Option<bool>("--fuse") { Description = "Run the fused (reparameterized) model." };
        var features = new Option<bool>("--features") { Description = "Also write features.stem and features.stage1..stage4." };
        var threads = new Option<int>("--threads", "-j") { Description = "Compute threads.", DefaultValueFactory = _ => Environment.ProcessorCount };
        var command = new Command("forward", "Run a model in eval mode (on the inference engine, in the form the checkpoint holds unless --fuse) on a tensor from a safetensors file and write the logits.");
        command.Arguments.Add(checkpoint);
        command.Options.Add(input);
        command.Options.Add(tensor);
        command.Options.Add(output);
        command.Options.Add(fuse);
        command.Options.Add(features);
        command.Options.Add(threads);
        CommandAction.Set(command, r =>
        {
            string inputPath = r.GetValue(input)!, name = r.GetValue(tensor)!, outputPath = r.GetValue(output)!;
            string modelPath = r.GetValue(checkpoint)!;
            bool withFeatures = r.GetValue(features);
            bool onnx = string.Equals(Path.GetExtension(modelPath), ".onnx", StringComparison.OrdinalIgnoreCase);
            if (onnx && (withFeatures || r.GetValue(fuse)))
            {
                throw new ArgumentException($"{modelPath}: --features and --fuse apply to checkpoints; an ONNX model runs as it is.");
            }

            var loaded = onnx ? null : ModelCheckpoint.LoadClassifier(modelPath);
            if (withFeatures && loaded!.MobileOne is null)
            {
                throw new ArgumentException($"--features writes MobileOne's stem and stage outputs; {loaded.Path} holds {loaded.Network.Architecture}.");
            }

            var importedGraph = onnx ? OnnxImporter.Load(modelPath) : null;
            int inChans = importedGraph?.InputChannels ?? loaded!.Network.InChans;

            var inputs = SafetensorsReader.Read(inputPath);
            if (!inputs.Tensors.TryGetValue(name, out var stored))
            {
                throw new CheckpointException(inputPath, $"has no tensor named '{name}' (it holds {string.Join(", ", inputs.Tensors.Keys.Take(10).Select(k => $"'{k}'"))}).", name);
            }

            if (!DTypeInfo.IsFloatingPoint(stored.DType) || stored.Shape.Length != 4)
            {
                throw new CheckpointException(inputPath, $"must be a floating point NCHW tensor of rank 4; it is {stored.DType} {Tensors.Tensor.FormatShape(stored.Shape)}.", name);
            }

            if (stored.Shape[1] != inChans)
            {
                throw new CheckpointException(inputPath, $"has {stored.Shape[1]} channels but the model expects in_chans {inChans}.", name);
            }

            LayerGraph graph;
            if (importedGraph is not null)
            {
                graph = importedGraph;
            }
            else
            {
                var network = r.GetValue(fuse) && loaded!.Network.Reparameterizable && !loaded.Network.IsFused ? Reparameterizer.Fuse(loaded.Network) : loaded!.Network;
                graph = withFeatures ? ((MobileOneNetwork)network).ToGraph(features: true) : network.ToGraph();
            }
            using var engine = CompiledModel.Compile(graph, new InferenceOptions { Threads = Options.Positive(r.GetValue(threads), "--threads") });
            var (logits, featureMaps) = engine.RunWithFeatures(stored.ToTensor());
            var file = new TensorFile();
            file.Tensors.Add("logits", StoredTensor.FromTensor(logits));
            foreach (var (featureName, value) in featureMaps)
            {
                file.Tensors.Add("features." + featureName, StoredTensor.FromTensor(value));
            }

            SafetensorsWriter.Write(outputPath, file);
            Console.WriteLine($"wrote {outputPath}: logits {logits.ShapeString}" + (featureMaps.Count > 0 ? $" and {featureMaps.Count} feature maps" : string.Empty));
            return 0;
        });
        return command;
    }
}
