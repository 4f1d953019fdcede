using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using MobileOne.Cli.Rendering;
using MobileOne.Inference;
using MobileOne.IO.Checkpoints;
using MobileOne.Reparam;

namespace MobileOne.Cli.Commands;

internal static class VerifyCommand
{
    public static Command Create()
    {
        var checkpoint = new Argument<string>("checkpoint") { Description = "A train-time (unfused) checkpoint." };
        var size = new Option<int>("--size") { Description = "Input resolution.", DefaultValueFactory = _ => 224 };
        var batch = new Option<int>("--batch") { Description = "Images in the random batch.", DefaultValueFactory = _ => 2 };
        var seed = new Option<int>("--seed") { Description = "Seed of the random normal input.", DefaultValueFactory = _ => 0 };
        var tolerance = new Option<double>("--tolerance") { Description = "Largest allowed |fused - unfused| relative to the largest logit magnitude (absolute below 1).", DefaultValueFactory = _ => FusionCheck.DefaultTolerance };
        var json = new Option<bool>("--json") { Description = "Print one JSON object." };
        var command = new Command("verify", "Fuse the model and check that fused and unfused logits (both on the inference engine) agree on a random input; exits 1 when they do not.");
        command.Arguments.Add(checkpoint);
        command.Options.Add(size);
        command.Options.Add(batch);
        command.Options.Add(seed);
        command.Options.Add(tolerance);
        command.Options.Add(json);
        var threads = new Option<int>("--threads", "-j") { Description = "Compute threads.", DefaultValueFactory = _ => Environment.ProcessorCount };
        command.Options.Add(threads);
        CommandAction.Set(command, r =>
        {
            double tol = r.GetValue(tolerance);
            if (!(tol > 0) || double.IsInfinity(tol))
            {
                throw new ArgumentException($"--tolerance must be a positive number; got {tol.ToString(CultureInfo.InvariantCulture)}.");
            }

            var loaded = ModelCheckpoint.LoadClassifier(r.GetValue(checkpoint)!);
            if (!loaded.Network.Reparameterizable)
            {
                throw new ArgumentException($"{loaded.Path} holds {loaded.Network.Architecture}, which has no fused form; verify compares a MobileOne or RepVGG train-time checkpoint with its fused form.");
            }

            if (loaded.Network.IsFused)
            {
                throw new ArgumentException($"{loaded.Path} is already fused ({loaded.MobileOneInfo?.Scheme.Name ?? loaded.Layout.ToString()}); verify compares a train-time checkpoint with its fused form.");
            }

            var result = FusionCheck.Run(loaded.Network, Options.Positive(r.GetValue(size), "--size"), Options.Positive(r.GetValue(batch), "--batch"), r.GetValue(seed), tol, Options.Positive(r.GetValue(threads), "--threads"));
            Print(result, loaded.Path, r.GetValue(json));
            return result.Passed ? 0 : CommandAction.Failure;
        });
        return command;
    }

    internal static void Print(FusionCheckResult result, string title, bool json)
    {
        if (json)
        {
            Report.WriteJson(new JsonObject
            {
                ["max_abs_diff"] = result.MaxAbsDifference,
                ["max_abs_logit"] = result.MaxAbsLogit,
                ["relative_diff"] = result.RelativeDifference,
                ["tolerance"] = result.Tolerance,
                ["batch"] = result.Batch,
                ["size"] = result.ImageSize,
                ["seed"] = result.Seed,
                ["passed"] = result.Passed,
            });
            return;
        }

        var c = CultureInfo.InvariantCulture;
        new Report($"fused vs unfused: {title}")
            .Add("input", $"{result.Batch}x{result.ImageSize}x{result.ImageSize} random normal, seed {result.Seed}")
            .Add("max |fused - unfused|", result.MaxAbsDifference.ToString("0.###e+0", c))
            .Add("max |logit|", result.MaxAbsLogit.ToString("0.####", c))
            .Add("relative difference", result.RelativeDifference.ToString("0.###e+0", c))
            .Add("tolerance", $"{result.Tolerance.ToString("0.###e+0", c)} x max(1, max |logit|)")
            .Add("result", result.Passed ? "PASS" : "FAIL")
            .Write();
    }
}
