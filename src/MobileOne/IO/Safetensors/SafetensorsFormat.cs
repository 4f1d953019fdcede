using System.Globalization;
using System.Text;
using System.Text.Json;

namespace MobileOne.IO.Safetensors;

/// <summary>Constants and small helpers shared by <see cref="SafetensorsReader"/> and <see cref="SafetensorsWriter"/>.</summary>
internal static class SafetensorsFormat
{
    /// <summary>The largest header the reference implementation accepts (MAX_HEADER_SIZE in the Rust crate).</summary>
    public const long MaxHeaderBytes = 100_000_000;

    /// <summary>
    /// The most tensors one file may list. The format sets no limit, but a 100 MB header could list over a
    /// million, at about a kilobyte of memory each once parsed and loaded; checkpoints hold a few thousand (a
    /// timm model's state dict, tripled by a training state's optimizer moments).
    /// </summary>
    public const int MaxTensors = 1 << 17;

    /// <summary>
    /// The most JSON values (tokens) a header may hold: 32 per tensor, where a rank-4 entry has 17. The parsed
    /// document costs 12 bytes per token.
    /// </summary>
    public const long MaxHeaderTokens = 32L * MaxTensors;

    /// <summary>The reserved header key of the string-to-string metadata block.</summary>
    public const string MetadataKey = "__metadata__";

    /// <summary>How Hugging Face names a sharded checkpoint's index: model.safetensors.index.json.</summary>
    public const string IndexSuffix = ".safetensors.index.json";

    public static readonly string SupportedDTypes = string.Join(", ", Enum.GetValues<DType>().Select(DTypeInfo.ToSafetensorsName));

    /// <summary>Shard names as Hugging Face writes them: model-00001-of-00003.safetensors.</summary>
    public static string ShardFileName(string prefix, int index, int count) =>
        string.Create(CultureInfo.InvariantCulture, $"{prefix}-{index:D5}-of-{count:D5}.safetensors");

    public static bool IsJsonWhitespace(byte b) => b is (byte)' ' or (byte)'\t' or (byte)'\n' or (byte)'\r';

    public static string Describe(JsonValueKind kind) => kind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Null => "null",
        _ => "nothing",
    };

    /// <summary>Shortens a JSON fragment quoted in an error message.</summary>
    public static string Clip(string text, int max = 80) => text.Length <= max ? text : text[..max] + "...";

    /// <summary>
    /// Appends <paramref name="value"/> as a JSON string literal escaped exactly as serde_json (which the
    /// Rust and Python safetensors libraries use) escapes it: only '"', '\\' and control characters are
    /// escaped, control characters without a short form as \u00xx with lowercase hex, and everything
    /// else, non-ASCII included, is written as raw UTF-8. System.Text.Json's encoders escape more
    /// ('"' as \u0022, '+', '&lt;', non-ASCII), which would change the bytes of the header.
    /// </summary>
    public static void AppendJsonString(StringBuilder sb, string value)
    {
        sb.Append('"');
        foreach (char c in value)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\b': sb.Append("\\b"); break;
                case '\f': sb.Append("\\f"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                default:
                    if (c < 0x20)
                    {
                        sb.Append("\\u00").Append(((int)c).ToString("x2", CultureInfo.InvariantCulture));
                    }
                    else
                    {
                        sb.Append(c);
                    }

                    break;
            }
        }

        sb.Append('"');
    }

    /// <summary>True when the string has no unpaired surrogate, i.e. can be written as UTF-8.</summary>
    public static bool IsValidUtf16(string value)
    {
        for (int i = 0; i < value.Length; i++)
        {
            char c = value[i];
            if (char.IsHighSurrogate(c))
            {
                if (i + 1 >= value.Length || !char.IsLowSurrogate(value[i + 1]))
                {
                    return false;
                }

                i++;
            }
            else if (char.IsLowSurrogate(c))
            {
                return false;
            }
        }

        return true;
    }
}
