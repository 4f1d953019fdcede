using System.CommandLine;
using System.Diagnostics;
using MobileOne.Models;
using MobileOne.Reparam;

namespace MobileOne.Cli.Commands;

/// <summary>
/// The README's first command: needs nothing downloaded. Builds a seeded random train-time model (random
/// BatchNorm affine terms and running statistics calibrated on random input, so fusing does real work and
/// activations stay in range), describes it, fuses it and checks fused against unfused.
/// </summary>
internal static class DemoCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "s0..s4, optionally with overrides, or a custom description (units=1/2/2/1,widths=0.5/0.5/0.5/0.5,k=2,se=0/0/1/1,classes=10,in_chans=1).", DefaultValueFactory = _ => "s0" };
        var size = new Option<int>("--size") { Description = "Input resolution.", DefaultValueFactory = _ => 224 };
        var seed = new Option<int>("--seed") { Description = "Seed for weights and input.", DefaultValueFactory = _ => 0 };
        var command = new Command("demo", "Build a random MobileOne, fuse it, show its size and check fused against unfused outputs.");
        command.Options.Add(model);
        command.Options.Add(size);
        command.Options.Add(seed);
        CommandAction.Set(command, r =>
        {
            var config = MobileOneConfig.Parse(r.GetValue(model)!);
            int imageSize = Options.Positive(r.GetValue(size), "--size");
            int s = r.GetValue(seed);
            var network = MobileOneNetwork.Create(config);
            WeightInit.Initialize(network, s);
            WeightInit.RandomizeBatchNorm(network, s + 1);
            var calibration = new Tensors.Tensor(2, config.InChans, imageSize, imageSize);
            WeightInit.FillNormal(new Random(s + 2), calibration.Data, 0, 1);
            WeightInit.CalibrateBatchNorm(network, calibration);
            CheckpointSummary.Describe(null, "in memory", "timm", fused: false, config, imageSize).ToReport().Write();
            var clock = Stopwatch.StartNew();
            var result = FusionCheck.Run(network, imageSize, batch: 1, seed: s);
            Console.WriteLine($"fused and ran both graphs in {clock.Elapsed.TotalSeconds:0.00} s");
            VerifyCommand.Print(result, $"random MobileOne-{config.Name}", json: false);
            return result.Passed ? 0 : CommandAction.Failure;
        });
        return command;
    }
}
