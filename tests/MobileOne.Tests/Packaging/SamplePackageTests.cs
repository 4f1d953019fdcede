using System.Diagnostics;
using System.IO.Compression;
using System.Reflection;
using MobileOne.Classification;
using MobileOne.Imaging;
using MobileOne.Inference;
using MobileOne.Models;
using MobileOne.Tensors;
using MobileOne.Tests.Predict;

namespace MobileOne.Tests.Packaging;

/// <summary>
/// The packages as a user meets them: MobileOne and MobileOne.Imaging are packed (from the binaries this test run
/// already built, under a prerelease version of their own) into a folder feed, samples/Classify is copied beside it
/// with a nuget.config naming that feed, built against the packages (not the projects) and run on a PNG; its top-5
/// must be the one the library gives in-process. Packages are restored into the scratch folder (the machine's
/// package cache only as a read-only fallback), so nothing is left behind. About 25 s on 2 cores.
/// </summary>
public class SamplePackageTests
{
    [Fact]
    public void The_sample_builds_against_the_packed_library_and_prints_the_top_5()
    {
        using var dir = new TempDir();
        string root = RepositoryRoot();
        string configuration = typeof(SamplePackageTests).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()?.Configuration ?? "Release";
        string version = $"0.1.0-test{DateTime.UtcNow:yyyyMMddHHmmss}";
        string feed = Path.Combine(dir.Path, "feed");
        foreach (string project in new[] { "src/MobileOne/MobileOne.csproj", "src/MobileOne.Imaging/MobileOne.Imaging.csproj" })
        {
            Dotnet(root, "pack", Path.Combine(root, project), "-c", configuration, "--no-build", "-o", feed, $"-p:PackageVersion={version}");
        }

        // The library package: README, licence, XML docs and the third-party notices of its embedded data.
        using (var package = ZipFile.OpenRead(Path.Combine(feed, $"MobileOne.{version}.nupkg")))
        {
            var entries = package.Entries.Select(e => e.FullName).ToHashSet();
            Assert.Subset(entries, new HashSet<string> { "README.md", "LICENSE", "lib/net10.0/MobileOne.dll", "lib/net10.0/MobileOne.xml", "notices/fashion-mnist/LICENSE", "notices/opencv-imagenet-classes/NOTICE" });
        }

        Assert.True(File.Exists(Path.Combine(feed, $"MobileOne.{version}.snupkg")));

        string sample = Path.Combine(dir.Path, "Classify");
        Directory.CreateDirectory(sample);
        foreach (string file in new[] { "Classify.csproj", "Program.cs" })
        {
            File.Copy(Path.Combine(root, "samples", "Classify", file), Path.Combine(sample, file));
        }

        foreach (string file in new[] { "Directory.Build.props", "Directory.Build.targets", "Directory.Packages.props" })
        {
            File.Copy(Path.Combine(root, "samples", file), Path.Combine(dir.Path, file));
        }

        File.WriteAllText(Path.Combine(dir.Path, "nuget.config"), $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <packageSources>
                <add key="test-feed" value="{feed}" />
              </packageSources>
            </configuration>
            """);
        string cache = Environment.GetEnvironmentVariable("NUGET_PACKAGES") ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        Dotnet(
            sample,
            "build",
            "-c",
            "Release",
            $"-p:MobileOneVersion={version}",
            $"-p:RestorePackagesPath={Path.Combine(dir.Path, "packages")}",
            $"-p:RestoreFallbackFolders={cache}");
        Assert.True(Directory.Exists(Path.Combine(dir.Path, "packages", "mobileone", version)), "MobileOne came from the feed");

        string image = PilPredictReference.ImagePath("rgb.png");
        string output = Dotnet(sample, Path.Combine(sample, "bin", "Release", "net10.0", "Classify.dll"), image);
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.Equal("model: no checkpoint given, a randomly initialised MobileOne-S0 (seed 0): its classes are meaningless", lines[0]);
        Assert.Equal($"image: {image}", lines[1]);
        Assert.Equal(7, lines.Length);

        // The same classifier in-process: the sample's five classes, in order, with ImageNet names.
        var network = MobileOneNetwork.Create(MobileOneConfig.S0);
        WeightInit.Initialize(network, seed: 0);
        using var classifier = new ImageClassifier(network, ImagePreprocessing.ForModel(network.Config), ClassLabels.ImageNet, new InferenceOptions { Threads = 2 });
        var input = new Tensor(1, 3, 224, 224);
        classifier.Preprocess(image, ImageDecodeOptions.Default, input.Data);
        var expected = classifier.Classify(input, 5)[0];
        for (int i = 0; i < 5; i++)
        {
            Assert.StartsWith($"{i + 1}. {expected[i].Index,4} ", lines[2 + i]);
            Assert.EndsWith(" " + expected[i].Label, lines[2 + i]);
        }
    }

    private static string Dotnet(string workingDirectory, params string[] args)
    {
        var info = new ProcessStartInfo("dotnet") { WorkingDirectory = workingDirectory, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string a in args)
        {
            info.ArgumentList.Add(a);
        }

        // The child builds see none of this test host's MSBuild settings.
        info.Environment.Remove("MSBuildSDKsPath");
        info.Environment.Remove("MSBuildExtensionsPath");
        info.Environment.Remove("MSBUILD_EXE_PATH");
        info.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        info.Environment["DOTNET_NOLOGO"] = "1";
        using var process = Process.Start(info)!;
        var stderr = process.StandardError.ReadToEndAsync();
        string stdout = process.StandardOutput.ReadToEnd();
        if (!process.WaitForExit(TimeSpan.FromSeconds(180)))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"dotnet {string.Join(' ', args)} did not finish in 180 s");
        }

        Assert.True(process.ExitCode == 0, $"dotnet {string.Join(' ', args)} exited {process.ExitCode}:\n{stdout}\n{stderr.Result}");
        return stdout;
    }

    private static string RepositoryRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            if (File.Exists(Path.Combine(d.FullName, "MobileOne.slnx")))
            {
                return d.FullName;
            }
        }

        throw new DirectoryNotFoundException("Repository root (MobileOne.slnx) not found above the test binaries.");
    }
}
