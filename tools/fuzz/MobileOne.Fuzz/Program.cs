// Coverage-guided fuzzing of the checkpoint and ONNX readers with SharpFuzz and AFL++ (docs/reliability.md,
// "Coverage-guided campaigns"). tools/fuzz/afl.sh publishes this program, instruments MobileOne.dll with the
// sharpfuzz tool and starts afl-fuzz on it; the in-process fuzzer of the tests (ParserFuzzTests) is the same oracle
// without coverage feedback.
//
//   MobileOne.Fuzz seeds TARGET DIR       writes the target's seed corpus into DIR
//   MobileOne.Fuzz run TARGET             the persistent loop afl-fuzz drives (input on stdin, one per iteration)
//   MobileOne.Fuzz replay TARGET FILE...  loads each file once, without AFL, and prints its outcome
//   MobileOne.Fuzz materialize TARGET DIR OUT   writes each input of DIR (a campaign's queue) as the file it is loaded
//                                         as (pickle: inside its zip), for ParserFuzzTests to replay under coverage
//
// The oracle is the readers' promise (issue 13): an input is loaded, or refused with the reader's own exception
// (the CLI's one `error:` line), within the allocation budget. Anything else is thrown out of the loop, which
// afl-fuzz records as a crash; time beyond afl-fuzz's -t limit is recorded as a hang.
using System.IO.Compression;
using MobileOne.IO;
using MobileOne.IO.Checkpoints;
using MobileOne.IO.Onnx;
using MobileOne.Models;
using MobileOne.Reparam;

namespace MobileOne.Fuzz;

public static class Program
{
    /// <summary>The same allocation budget as the in-process fuzzer: a refused file costs at most a few hundred MB.</summary>
    private const long AllocationBudget = 256L << 20;

    private static readonly string[] Targets = ["safetensors", "torch-zip", "pickle", "onnx"];

    public static int Main(string[] args)
    {
        if (args.Length < 2 || !Targets.Contains(args[1]) || args[0] is not ("seeds" or "run" or "replay" or "materialize")
            || (args[0] == "seeds" && args.Length != 3) || (args[0] == "materialize" && args.Length != 4))
        {
            Console.Error.WriteLine($"usage: MobileOne.Fuzz seeds TARGET DIR | run TARGET | replay TARGET FILE... | materialize TARGET DIR OUT; TARGET is one of {string.Join(", ", Targets)}");
            return 1;
        }

        // Created on first use: under afl-fuzz the instrumented library may run only inside Fuzzer.Run, which maps the
        // coverage area it writes to.
        var target = new Lazy<Target>(() => new Target(args[1]));
        switch (args[0])
        {
            case "seeds":
                Directory.CreateDirectory(args[2]);
                foreach (var (name, bytes) in target.Value.Seeds())
                {
                    File.WriteAllBytes(Path.Combine(args[2], name), bytes);
                }

                return 0;
            case "materialize":
                Directory.CreateDirectory(args[3]);
                foreach (string file in Directory.GetFiles(args[2]))
                {
                    File.WriteAllBytes(Path.Combine(args[3], Path.GetFileName(file)), target.Value.AsLoaded(File.ReadAllBytes(file)));
                }

                return 0;
            case "run":
                // Persistent mode: one process serves many inputs, so the JIT and the seeds' set-up are paid once.
                SharpFuzz.Fuzzer.Run(stream =>
                {
                    var memory = new MemoryStream();
                    stream.CopyTo(memory);
                    target.Value.Check(memory.ToArray());
                });
                return 0;
            default:
                int failures = 0;
                foreach (string file in args.Skip(2))
                {
                    try
                    {
                        Console.WriteLine($"{file}: {target.Value.Check(File.ReadAllBytes(file))}");
                    }
                    catch (Exception e)
                    {
                        failures++;
                        Console.WriteLine($"{file}: FINDING {e.GetType().Name}: {e.Message}");
                    }
                }

                return failures == 0 ? 0 : 2;
        }
    }

    /// <summary>An input that loaded or was refused correctly, but allocated more than the budget.</summary>
    private sealed class BudgetExceededException(string message) : Exception(message);

    private sealed class Target
    {
        private readonly string name;
        private readonly string scratch;
        private readonly List<(string Name, byte[] Bytes)> pickleZipEntries = [];

        public Target(string name)
        {
            this.name = name;

            // One scratch file per process: afl-fuzz may run several instances side by side.
            string folder = Path.Combine(Path.GetTempPath(), $"mobileone-fuzz-{Environment.ProcessId}");
            Directory.CreateDirectory(folder);
            scratch = Path.Combine(folder, "input" + (name == "safetensors" ? ".safetensors" : name == "onnx" ? ".onnx" : ".pth"));
            if (name == "pickle")
            {
                // The pickle target's input is data.pkl alone; the rest of a valid torch.save zip is the first seed's.
                using var zip = new ZipArchive(new MemoryStream(CheckpointBytes(SeedNetworks().First().Network, KeyLayout.Timm, ".pth")), ZipArchiveMode.Read);
                foreach (var entry in zip.Entries)
                {
                    using var stream = entry.Open();
                    var bytes = new MemoryStream();
                    stream.CopyTo(bytes);
                    pickleZipEntries.Add((entry.FullName, bytes.ToArray()));
                }
            }
        }

        /// <summary>Loads one input; returns "loaded" or the refusal, throws anything else (a finding).</summary>
        public string Check(byte[] input)
        {
            File.WriteAllBytes(scratch, AsLoaded(input));
            long before = GC.GetAllocatedBytesForCurrentThread();
            string outcome;
            try
            {
                if (name == "onnx")
                {
                    OnnxImporter.Load(scratch);
                }
                else
                {
                    ModelCheckpoint.LoadClassifier(scratch);
                }

                outcome = "loaded";
            }
            catch (CheckpointException e)
            {
                outcome = "refused: " + e.Message;
            }

            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            if (allocated > AllocationBudget)
            {
                throw new BudgetExceededException($"{allocated:N0} bytes allocated for a {input.Length:N0}-byte input ({outcome})");
            }

            return outcome;
        }

        /// <summary>
        /// Small valid files of the target's format: MobileOne networks of two shapes, fused and train-time, in timm's
        /// and (torch.save) Apple's names, the shapes ParserFuzzTests seeds its checkpoint targets with at a quarter of their
        /// widths; ONNX exports of them.
        /// </summary>
        public IEnumerable<(string Name, byte[] Bytes)> Seeds()
        {
            if (name == "pickle")
            {
                yield return ("data.pkl", pickleZipEntries.Single(e => e.Name.EndsWith("/data.pkl", StringComparison.Ordinal)).Bytes);
                yield break;
            }

            int index = 0;
            foreach (var (network, layout) in SeedNetworks())
            {
                if (name == "onnx")
                {
                    if (layout == KeyLayout.Timm)
                    {
                        yield return ($"seed{index++}.onnx", OnnxExporter.ToBytes(network, fuse: false));
                    }

                    continue;
                }

                if (name == "safetensors" && layout == KeyLayout.Apple)
                {
                    continue;
                }

                string extension = name == "safetensors" ? ".safetensors" : ".pth";
                yield return ($"seed{index++}{extension}", CheckpointBytes(network, layout, extension));
            }
        }

        private static IEnumerable<(MobileOneNetwork Network, KeyLayout Layout)> SeedNetworks()
        {
            // Widths of 1/16 of the base widths 64/128/256/512 (1/8 in the second network's last stage): seeds of 7-51 KB
            // let afl-fuzz's mutations reach the headers and pickles more often than the weights' bytes.
            string[] configs = ["units=1/1/1/1,widths=0.0625/0.0625/0.0625/0.0625,k=2,classes=3", "units=1/1/1/1,widths=0.0625/0.0625/0.0625/0.125,k=1,se=0/0/0/1,classes=2,in_chans=1"];
            foreach (string config in configs)
            {
                var trainTime = MobileOneNetwork.Create(MobileOneConfig.Parse(config));
                yield return (Reparameterizer.Fuse(MobileOneNetwork.Create(MobileOneConfig.Parse(config))), KeyLayout.Timm);
                yield return (trainTime, KeyLayout.Timm);
                yield return (trainTime, KeyLayout.Apple);
            }
        }

        /// <summary>What <see cref="ModelCheckpoint.Save"/> writes for the network (the library writes files only; the format follows the extension).</summary>
        private static byte[] CheckpointBytes(MobileOneNetwork network, KeyLayout layout, string extension)
        {
            string path = Path.Combine(Path.GetTempPath(), $"mobileone-fuzz-seed-{Environment.ProcessId}{extension}");
            ModelCheckpoint.Save(network, path, layout);
            byte[] bytes = File.ReadAllBytes(path);
            File.Delete(path);
            return bytes;
        }

        /// <summary>The file an input is loaded as: itself, or for the pickle target the zip around it.</summary>
        public byte[] AsLoaded(byte[] input) => name == "pickle" ? WithPickle(input) : input;

        /// <summary>A torch.save zip with this data.pkl, its entries stored (no compression, so no CRC check stops a mutated pickle early).</summary>
        private byte[] WithPickle(byte[] pickle)
        {
            var output = new MemoryStream();
            using (var zip = new ZipArchive(output, ZipArchiveMode.Create, leaveOpen: true))
            {
                foreach (var (entryName, bytes) in pickleZipEntries)
                {
                    using var stream = zip.CreateEntry(entryName, CompressionLevel.NoCompression).Open();
                    stream.Write(entryName.EndsWith("/data.pkl", StringComparison.Ordinal) ? pickle : bytes);
                }
            }

            return output.ToArray();
        }
    }
}
