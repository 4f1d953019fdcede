using System.Globalization;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Net.Http.Headers;

namespace MobileOne.Cli.Serving;

/// <summary>A request the server refuses: the status code and the message of its <c>{"error": ...}</c> body.</summary>
internal sealed class RequestRejectedException(int status, string message) : Exception(message)
{
    /// <summary>The HTTP status code of the answer.</summary>
    public int Status { get; } = status;
}

/// <summary>
/// The encoded image of a prediction request: the raw body (any <c>image/*</c> type or
/// <c>application/octet-stream</c>; the bytes say what the image is) or the field <c>file</c> of a
/// <c>multipart/form-data</c> body. Never reads more than the upload limit (413 beyond it); other content types
/// get 415.
/// </summary>
internal static class ImageUpload
{
    /// <summary>What a raw body is called in answers (a multipart upload gives its file name).</summary>
    public const string BodyName = "upload";

    /// <summary>
    /// The image bytes and the name answers give them (the multipart file name, or <see cref="BodyName"/>); throws
    /// <see cref="RequestRejectedException"/> with 400, 413 or 415 for what is refused.
    /// </summary>
    public static async Task<(byte[] Bytes, string Name)> ReadAsync(HttpRequest request, long maxBytes, CancellationToken cancel)
    {
        string? contentType = request.ContentType;
        if (string.IsNullOrWhiteSpace(contentType))
        {
            contentType = "application/octet-stream";
        }

        if (!MediaTypeHeaderValue.TryParse(contentType, out var media) || media.MediaType.Value is not { } type)
        {
            throw new RequestRejectedException(StatusCodes.Status415UnsupportedMediaType, $"the content type '{contentType}' does not parse.");
        }

        if (type.Equals("multipart/form-data", StringComparison.OrdinalIgnoreCase))
        {
            return await ReadMultipartAsync(request, media, maxBytes, cancel);
        }

        if (!IsImageType(type))
        {
            throw new RequestRejectedException(StatusCodes.Status415UnsupportedMediaType,
                $"the content type '{type}' is not accepted; send the image as the body (image/* or application/octet-stream) or as the multipart/form-data field 'file'.");
        }

        if (request.ContentLength > maxBytes)
        {
            throw TooLarge(maxBytes, request.ContentLength.Value);
        }

        return (await ReadLimitedAsync(request.Body, maxBytes, request.ContentLength, cancel), BodyName);
    }

    private static bool IsImageType(string type) =>
        type.StartsWith("image/", StringComparison.OrdinalIgnoreCase) || type.Equals("application/octet-stream", StringComparison.OrdinalIgnoreCase);

    private static async Task<(byte[] Bytes, string Name)> ReadMultipartAsync(HttpRequest request, MediaTypeHeaderValue media, long maxBytes, CancellationToken cancel)
    {
        string boundary = HeaderUtilities.RemoveQuotes(media.Boundary).Value ?? string.Empty;
        if (boundary.Length is 0 or > 70)
        {
            throw new RequestRejectedException(StatusCodes.Status400BadRequest, "the multipart/form-data body has no valid boundary.");
        }

        if (request.ContentLength > maxBytes + ServeOptions.MultipartSlack)
        {
            throw TooLarge(maxBytes, request.ContentLength.Value);
        }

        var reader = new MultipartReader(boundary, request.Body) { BodyLengthLimit = maxBytes + ServeOptions.MultipartSlack };
        try
        {
            while (await reader.ReadNextSectionAsync(cancel) is { } section)
            {
                if (!ContentDispositionHeaderValue.TryParse(section.ContentDisposition, out var disposition)
                    || !string.Equals(HeaderUtilities.RemoveQuotes(disposition.Name).Value, "file", StringComparison.Ordinal))
                {
                    continue; // other fields are skipped unread
                }

                if (section.ContentType is { } partType && MediaTypeHeaderValue.TryParse(partType, out var partMedia)
                    && partMedia.MediaType.Value is { } t && !IsImageType(t))
                {
                    throw new RequestRejectedException(StatusCodes.Status415UnsupportedMediaType,
                        $"the field 'file' has the content type '{t}'; send an image (image/* or application/octet-stream).");
                }

                return (await ReadLimitedAsync(section.Body, maxBytes, null, cancel), FileName(disposition));
            }
        }
        catch (Exception e) when (e is (InvalidDataException or IOException) and not BadHttpRequestException)
        {
            throw new RequestRejectedException(StatusCodes.Status400BadRequest, $"the multipart/form-data body is malformed ({e.Message}).");
        }

        throw new RequestRejectedException(StatusCodes.Status400BadRequest, "the multipart/form-data body has no field 'file'.");
    }

    /// <summary>The part's file name without folders (RFC 5987 <c>filename*</c> first, then <c>filename</c>), or <see cref="BodyName"/>.</summary>
    private static string FileName(ContentDispositionHeaderValue disposition)
    {
        // A filename* parameter without a value made FileNameStar throw ArgumentNullException from its RFC 5987 decoder
        // (found by fuzzing: a 500 for a client's mistake), so it is decoded only when it has a value. The name only
        // labels the answer: one that does not decode is no reason to refuse the image.
        bool star = disposition.Parameters.Any(p => p.Name.Equals("filename*", StringComparison.OrdinalIgnoreCase) && p.Value.Length > 0);
        return HeaderUtilities.RemoveQuotes(star ? disposition.FileNameStar : disposition.FileName).Value is { Length: > 0 } name
            ? Path.GetFileName(name)
            : BodyName;
    }

    /// <summary>Reads a whole stream, refusing it (413) as soon as it passes <paramref name="maxBytes"/>.</summary>
    private static async Task<byte[]> ReadLimitedAsync(Stream body, long maxBytes, long? declared, CancellationToken cancel)
    {
        // What a client declares is not trusted for more than 1 MiB up front: the buffer grows with what arrives.
        var buffer = new MemoryStream(declared is long d ? (int)Math.Min(d, Math.Min(maxBytes, 1 << 20)) : 64 * 1024);
        var chunk = new byte[64 * 1024];
        int read;
        while ((read = await body.ReadAsync(chunk, cancel)) > 0)
        {
            if (buffer.Length + read > maxBytes)
            {
                throw TooLarge(maxBytes, null);
            }

            buffer.Write(chunk, 0, read);
        }

        return buffer.Length == buffer.Capacity ? buffer.GetBuffer() : buffer.ToArray();
    }

    private static RequestRejectedException TooLarge(long maxBytes, long? declared) => new(
        StatusCodes.Status413PayloadTooLarge,
        string.Create(CultureInfo.InvariantCulture,
            $"the upload is larger than the server's limit of {maxBytes} bytes (--max-upload-mb){(declared is long d ? $"; it declares {d} bytes" : string.Empty)}."));
}
