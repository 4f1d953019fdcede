namespace MobileOne.Cli.Serving;

/// <summary>What `mobileone serve` is told on its command line, checked (see ServeCommand), with its defaults.</summary>
internal sealed record ServeOptions
{
    /// <summary>Default bound on an image's declared pixels: 40 megapixels, 160 MB as RGBA while one decodes.</summary>
    public const long DefaultMaxPixels = 40_000_000;

    /// <summary>Room for multipart boundaries and part headers on top of <see cref="MaxUploadBytes"/>.</summary>
    public const long MultipartSlack = 64 * 1024;

    /// <summary>An IP address or "localhost"; 127.0.0.1 keeps the server off the network.</summary>
    public string Host { get; init; } = "127.0.0.1";

    /// <summary>TCP port; 0 takes a free one (the server prints the address it got).</summary>
    public int Port { get; init; } = 8080;

    /// <summary>Most images one engine run takes.</summary>
    public int MaxBatch { get; init; } = 8;

    /// <summary>How long a batch waits for more images after its first one arrives.</summary>
    public TimeSpan MaxWait { get; init; } = TimeSpan.FromMilliseconds(2);

    /// <summary>Largest image upload (the raw body, or the multipart field's content).</summary>
    public long MaxUploadBytes { get; init; } = 20L * 1024 * 1024;

    /// <summary>Images declaring more pixels than this are refused from their header, before decoding.</summary>
    public long MaxPixels { get; init; } = DefaultMaxPixels;

    /// <summary>Prediction requests admitted at once (reading, decoding, waiting or running); one more gets 429.</summary>
    public int Queue { get; init; } = 256;

    /// <summary>Images decoded and preprocessed at once (each holds its decoded pixels until it is preprocessed).</summary>
    public int Decoders { get; init; } = Environment.ProcessorCount;

    /// <summary>A prediction not answered within this gets 503.</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>On SIGTERM or Ctrl+C, in-flight requests get this long to finish before connections are closed.</summary>
    public TimeSpan DrainTimeout { get; init; } = TimeSpan.FromSeconds(8);
}
