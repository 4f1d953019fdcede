using MobileOne.Cli.Commands;
using MobileOne.IO;
using MobileOne.IO.Checkpoints;
using MobileOne.IO.Safetensors;
using MobileOne.Models;
using MobileOne.Tests.IO;

namespace MobileOne.Tests.Cli;

/// <summary>
/// Every refusal is one line starting with "error:" that names the file and the key, exit code 1, and no
/// output file; unexpected exceptions are one line too, and MOBILEONE_TRACE=1 adds the stack trace.
/// </summary>
public sealed class CliReliabilityTests
{
    private static void AssertOneErrorLine(CliResult result, params string[] mentions)
    {
        CliRunner.AssertCleanFailure(result, mentions);
        Assert.Equal(CommandAction.Failure, result.ExitCode);
        Assert.Single(result.StdErr.TrimEnd().Split('\n'));
    }

    private static string ExpandedViewCheckpoint(TempDir dir)
    {
        byte[] pickle = PyTorchCheckpointTests.StateDictPickle(p => p.Str("head.fc.weight").Tensor("FloatStorage", "0", 1, 0, [20000, 20000], [0, 0]));
        return PyTorchCheckpointTests.Zip(dir, "expanded.pt", ("expanded/data.pkl", pickle), ("expanded/data/0", new byte[4]));
    }

    [Fact]
    public void Convert_refuses_a_hostile_checkpoint_in_one_line_and_writes_nothing()
    {
        using var dir = new TempDir();
        string input = ExpandedViewCheckpoint(dir);
        string output = dir.File("out.safetensors");

        var r = CliRunner.Run("convert", input, output);

        AssertOneErrorLine(r, input, "key 'head.fc.weight'", "is a view of 400000000 elements");
        Assert.Equal([input], Directory.GetFiles(dir.Path)); // no output, no temporary file left behind
    }

    [Fact]
    public void Info_refuses_a_block_index_beyond_int_in_one_line()
    {
        using var dir = new TempDir();
        var config = MobileOneConfig.FromWidths("custom", [0.25, 0.25, 0.25, 0.25], 1, [1, 1, 1, 1], null, numClasses: 10, inChans: 1);
        var file = ModelCheckpoint.ToTensorFile(MobileOneNetwork.Create(config), KeyLayout.Timm);
        file.Tensors.Add("stages.0.99999999999.conv_kxk.0.conv.weight", new StoredTensor(DType.F32, [1], new byte[4]));
        string path = dir.File("blocks.safetensors");
        SafetensorsWriter.Write(path, file);

        var r = CliRunner.Run("info", path);

        AssertOneErrorLine(r, path, "key 'stages.0.99999999999.conv_kxk.0.conv.weight'", "has block index 99999999999");
    }

    [Fact]
    public void Trace_variable_adds_the_stack_trace_after_the_error_line()
    {
        using var dir = new TempDir();
        string input = ExpandedViewCheckpoint(dir);

        var r = CliRunner.RunWithEnvironment(new Dictionary<string, string> { [CommandAction.TraceVariable] = "1" }, "info", input);

        Assert.Equal(1, r.ExitCode);
        Assert.StartsWith("error: ", r.StdErr);
        Assert.Contains("CheckpointException", r.StdErr);
        Assert.Contains("   at ", r.StdErr);
    }

    [Fact]
    public void Unexpected_exception_is_one_line_that_says_it_is_a_bug()
    {
        var error = new StringWriter();

        int code = CommandAction.Run(() => throw new NullReferenceException("boom\nsecond line"), error, trace: false);

        Assert.Equal(CommandAction.Failure, code);
        string text = error.ToString();
        Assert.Single(text.TrimEnd().Split('\n'));
        Assert.StartsWith("error: unexpected failure: boom second line (this is a bug in mobileone; set MOBILEONE_TRACE=1", text);
        Assert.DoesNotContain("   at ", text);
    }

    [Fact]
    public void Unexpected_exception_with_trace_prints_the_exception()
    {
        var error = new StringWriter();

        int code = CommandAction.Run(() => throw new OverflowException("too big"), error, trace: true);

        Assert.Equal(CommandAction.Failure, code);
        string text = error.ToString();
        Assert.StartsWith("error: unexpected failure: too big", text);
        Assert.Contains("System.OverflowException: too big", text);
        Assert.Contains("   at ", text);
    }

    [Fact]
    public void Out_of_memory_is_one_plain_line()
    {
        var error = new StringWriter();

        int code = CommandAction.Run(() => throw new OutOfMemoryException(), error, trace: false);

        Assert.Equal(CommandAction.Failure, code);
        Assert.Equal("error: ran out of memory (try fewer threads or a smaller batch).", error.ToString().TrimEnd());
    }
}
