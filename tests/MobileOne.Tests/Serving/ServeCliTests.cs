using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using MobileOne.IO.Checkpoints;
using MobileOne.Models;
using MobileOne.Tests.Cli;
using MobileOne.Tests.Predict;

namespace MobileOne.Tests.Serving;

/// <summary>`mobileone serve` as a user runs it: a child process, its option errors, and SIGTERM while a request is in flight.</summary>
public sealed partial class ServeCliTests
{
    private static string Model => Fixtures.Path("mobileone_s0_timm.safetensors");

    [Fact]
    public void BadOptionsAndOnnxModelsFailWithOneLineNamingThem()
    {
        using var dir = new TempDir();
        CliRunner.AssertCleanFailure(CliRunner.Run("serve", dir.File("model.onnx")), dir.File("model.onnx"), "does not exist");
        CliRunner.AssertCleanFailure(CliRunner.Run("serve", dir.File("missing.safetensors")), dir.File("missing.safetensors"));
        CliRunner.AssertCleanFailure(CliRunner.Run("serve", Model, "--port", "70000"), "--port must lie in 0..65535");
        CliRunner.AssertCleanFailure(CliRunner.Run("serve", Model, "--host", "example.org"), "--host must be an IP address or localhost");
        CliRunner.AssertCleanFailure(CliRunner.Run("serve", Model, "--max-batch", "0"), "--max-batch");
        CliRunner.AssertCleanFailure(CliRunner.Run("serve", Model, "--max-wait-ms", "5000"), "--max-wait-ms must lie in 0..1000");
        CliRunner.AssertCleanFailure(CliRunner.Run("serve", Model, "--max-pixels", "100000000000"), "--max-pixels");
        CliRunner.AssertCleanFailure(CliRunner.Run("serve", Model, "--queue", "-1"), "--queue");
        CliRunner.AssertCleanFailure(CliRunner.Run("serve", Model, "--host", "192.0.2.1", "--port", "0"), "--host 192.0.2.1", "cannot listen");
    }

    [Fact]
    public async Task SigtermDrainsTheRequestInFlightAndExitsWithinTenSeconds()
    {
        using var dir = new TempDir();
        var network = MobileOneNetwork.Create(MobileOneConfig.Parse("units=1/1/1/1,widths=0.25/0.25/0.25/0.25,k=1,classes=10"));
        WeightInit.Initialize(network, 3);
        string model = dir.File("tiny.safetensors");
        ModelCheckpoint.Save(network, model);

        // Each batch waits 700 ms for company: the request is still queued when SIGTERM comes.
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string a in new[] { Path.Combine(AppContext.BaseDirectory, "MobileOne.Cli.dll"), "serve", model, "--port", "0", "--threads", "1", "--max-wait-ms", "700" })
        {
            info.ArgumentList.Add(a);
        }

        using var process = Process.Start(info)!;
        var stderr = process.StandardError.ReadToEndAsync();
        try
        {
            string? line = await process.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(60));
            Assert.StartsWith("serve: listening on http://127.0.0.1:", line);
            using var client = new HttpClient { BaseAddress = new Uri(line!["serve: listening on ".Length..]) };
            Assert.Equal(200, (int)(await client.GetAsync("/readyz")).StatusCode);

            var content = new ByteArrayContent(File.ReadAllBytes(PilPredictReference.ImagePath("rgb.png")));
            content.Headers.TryAddWithoutValidation("Content-Type", "image/png");
            var inFlight = client.PostAsync("/v1/predict", content);
            await Task.Delay(300);
            var clock = Stopwatch.StartNew();
            Assert.Equal(0, Kill(process.Id, 15));

            var answer = await inFlight;
            Assert.Equal(200, (int)answer.StatusCode);
            Assert.Equal(5, JsonNode.Parse(await answer.Content.ReadAsStringAsync())!["top"]!.AsArray().Count);
            Assert.True(process.WaitForExit(TimeSpan.FromSeconds(10)), "serve did not exit within 10 s of SIGTERM");
            Assert.InRange(clock.Elapsed.TotalSeconds, 0, 10);
            Assert.Equal(0, process.ExitCode);
            Assert.Contains("serve: stopped after", await stderr);
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }
    }

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);
}
