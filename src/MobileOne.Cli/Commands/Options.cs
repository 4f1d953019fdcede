using MobileOne.IO.Checkpoints;

namespace MobileOne.Cli.Commands;

/// <summary>Option checks with messages that name the option.</summary>
internal static class Options
{
    public static int Positive(int value, string option) =>
        value > 0 ? value : throw new ArgumentException($"{option} must be a positive integer; got {value}.");

    public static KeyLayout Scheme(string? value) => value?.ToLowerInvariant() switch
    {
        null or "timm" => KeyLayout.Timm,
        "apple" => KeyLayout.Apple,
        _ => throw new ArgumentException($"--scheme must be 'timm' or 'apple'; got '{value}'."),
    };
}
