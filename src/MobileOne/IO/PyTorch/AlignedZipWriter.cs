using System.Buffers.Binary;
using System.Text;

namespace MobileOne.IO.PyTorch;

/// <summary>
/// Writes an uncompressed zip whose entry data start on 64-byte boundaries, as PyTorch's
/// PyTorchStreamWriter does (it pads each local header with an extra field tagged "FB"), so that a
/// loader can map storages straight out of the file. Zip64 records are added when offsets or the
/// entry count outgrow the classic format.
/// </summary>
/// <param name="output">The stream the archive is written to, sequentially.</param>
/// <param name="forceZip64">Write the zip64 end records even for a small archive (for tests). Central
/// headers still carry a zip64 offset only where it is needed: miniz (PyTorch's reader) checks the
/// classic offset field against the archive size, so a sentinel offset in a small file would be refused.</param>
/// <remarks>
/// System.IO.Compression.ZipArchive cannot set a local header's extra field, so it cannot align data.
/// The output stream is written strictly sequentially; it need not be seekable.
/// </remarks>
internal sealed class AlignedZipWriter(Stream output, bool forceZip64 = false)
{
    public const int Alignment = 64;

    private const ushort PaddingTag = 0x4246; // "FB", the tag PyTorch uses
    private const ushort Zip64Tag = 0x0001;
    private const ushort DosTime = 0; // 00:00:00
    private const ushort DosDate = (0 << 9) | (1 << 5) | 1; // 1980-01-01

    private readonly List<Entry> entries = [];
    private readonly HashSet<string> names = new(StringComparer.Ordinal);
    private long offset;

    public void Add(string name, ReadOnlySpan<byte> data)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (!this.names.Add(name))
        {
            throw new ArgumentException($"The zip already has an entry '{name}'.", nameof(name));
        }

        byte[] nameBytes = Encoding.UTF8.GetBytes(name);
        if (nameBytes.Length > ushort.MaxValue)
        {
            throw new ArgumentException("Zip entry names are limited to 65535 bytes.", nameof(name));
        }

        uint crc = Crc32.Compute(data);
        long headerStart = this.offset;
        long dataStart = headerStart + 30 + nameBytes.Length + 4;
        int padding = (int)((Alignment - (dataStart % Alignment)) % Alignment);
        ushort flags = IsAscii(nameBytes) ? (ushort)0 : (ushort)(1 << 11);

        var header = new byte[30 + nameBytes.Length + 4 + padding];
        Span<byte> h = header;
        BinaryPrimitives.WriteUInt32LittleEndian(h, 0x04034b50);
        BinaryPrimitives.WriteUInt16LittleEndian(h[4..], 20); // version needed: 2.0 (sizes always fit 32 bits)
        BinaryPrimitives.WriteUInt16LittleEndian(h[6..], flags);
        BinaryPrimitives.WriteUInt16LittleEndian(h[8..], 0); // stored
        BinaryPrimitives.WriteUInt16LittleEndian(h[10..], DosTime);
        BinaryPrimitives.WriteUInt16LittleEndian(h[12..], DosDate);
        BinaryPrimitives.WriteUInt32LittleEndian(h[14..], crc);
        BinaryPrimitives.WriteUInt32LittleEndian(h[18..], (uint)data.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(h[22..], (uint)data.Length);
        BinaryPrimitives.WriteUInt16LittleEndian(h[26..], (ushort)nameBytes.Length);
        BinaryPrimitives.WriteUInt16LittleEndian(h[28..], (ushort)(4 + padding));
        nameBytes.CopyTo(h[30..]);
        Span<byte> extra = h[(30 + nameBytes.Length)..];
        BinaryPrimitives.WriteUInt16LittleEndian(extra, PaddingTag);
        BinaryPrimitives.WriteUInt16LittleEndian(extra[2..], (ushort)padding);
        extra[4..].Fill((byte)'Z');

        output.Write(header);
        output.Write(data);
        this.offset += header.Length + data.Length;
        entries.Add(new Entry(nameBytes, flags, crc, data.Length, headerStart));
    }

    public void Finish()
    {
        long directoryStart = this.offset;
        foreach (Entry e in entries)
        {
            bool offset64 = e.HeaderOffset >= uint.MaxValue;
            int extraLength = offset64 ? 12 : 0;
            var header = new byte[46 + e.Name.Length + extraLength];
            Span<byte> h = header;
            BinaryPrimitives.WriteUInt32LittleEndian(h, 0x02014b50);
            BinaryPrimitives.WriteUInt16LittleEndian(h[4..], offset64 ? (ushort)45 : (ushort)20); // made by
            BinaryPrimitives.WriteUInt16LittleEndian(h[6..], offset64 ? (ushort)45 : (ushort)20); // needed
            BinaryPrimitives.WriteUInt16LittleEndian(h[8..], e.Flags);
            BinaryPrimitives.WriteUInt16LittleEndian(h[10..], 0);
            BinaryPrimitives.WriteUInt16LittleEndian(h[12..], DosTime);
            BinaryPrimitives.WriteUInt16LittleEndian(h[14..], DosDate);
            BinaryPrimitives.WriteUInt32LittleEndian(h[16..], e.Crc);
            BinaryPrimitives.WriteUInt32LittleEndian(h[20..], (uint)e.Size);
            BinaryPrimitives.WriteUInt32LittleEndian(h[24..], (uint)e.Size);
            BinaryPrimitives.WriteUInt16LittleEndian(h[28..], (ushort)e.Name.Length);
            BinaryPrimitives.WriteUInt16LittleEndian(h[30..], (ushort)extraLength);
            // comment length, disk number, internal and external attributes: all zero
            BinaryPrimitives.WriteUInt32LittleEndian(h[42..], offset64 ? uint.MaxValue : (uint)e.HeaderOffset);
            e.Name.CopyTo(h[46..]);
            if (offset64)
            {
                Span<byte> x = h[(46 + e.Name.Length)..];
                BinaryPrimitives.WriteUInt16LittleEndian(x, Zip64Tag);
                BinaryPrimitives.WriteUInt16LittleEndian(x[2..], 8);
                BinaryPrimitives.WriteInt64LittleEndian(x[4..], e.HeaderOffset);
            }

            output.Write(header);
            this.offset += header.Length;
        }

        long directorySize = this.offset - directoryStart;
        bool zip64 = forceZip64 || entries.Count >= ushort.MaxValue || directoryStart >= uint.MaxValue || directorySize >= uint.MaxValue;
        if (zip64)
        {
            long recordStart = this.offset;
            var record = new byte[56 + 20];
            Span<byte> r = record;
            BinaryPrimitives.WriteUInt32LittleEndian(r, 0x06064b50);
            BinaryPrimitives.WriteInt64LittleEndian(r[4..], 44); // size of the rest of the record
            BinaryPrimitives.WriteUInt16LittleEndian(r[12..], 45);
            BinaryPrimitives.WriteUInt16LittleEndian(r[14..], 45);
            // this disk, disk with the directory: zero
            BinaryPrimitives.WriteInt64LittleEndian(r[24..], entries.Count);
            BinaryPrimitives.WriteInt64LittleEndian(r[32..], entries.Count);
            BinaryPrimitives.WriteInt64LittleEndian(r[40..], directorySize);
            BinaryPrimitives.WriteInt64LittleEndian(r[48..], directoryStart);
            Span<byte> locator = r[56..];
            BinaryPrimitives.WriteUInt32LittleEndian(locator, 0x07064b50);
            BinaryPrimitives.WriteInt64LittleEndian(locator[8..], recordStart);
            BinaryPrimitives.WriteUInt32LittleEndian(locator[16..], 1); // total disks
            output.Write(record);
            this.offset += record.Length;
        }

        var end = new byte[22];
        Span<byte> eocd = end;
        ushort count = zip64 ? ushort.MaxValue : (ushort)entries.Count;
        BinaryPrimitives.WriteUInt32LittleEndian(eocd, 0x06054b50);
        BinaryPrimitives.WriteUInt16LittleEndian(eocd[8..], count);
        BinaryPrimitives.WriteUInt16LittleEndian(eocd[10..], count);
        BinaryPrimitives.WriteUInt32LittleEndian(eocd[12..], zip64 ? uint.MaxValue : (uint)directorySize);
        BinaryPrimitives.WriteUInt32LittleEndian(eocd[16..], zip64 ? uint.MaxValue : (uint)directoryStart);
        output.Write(end);
        this.offset += end.Length;
    }

    private static bool IsAscii(byte[] bytes) => Array.TrueForAll(bytes, b => b < 0x80);

    private sealed record Entry(byte[] Name, ushort Flags, uint Crc, long Size, long HeaderOffset);
}

/// <summary>The CRC-32 of zip (IEEE 802.3, reflected, polynomial 0xEDB88320), slicing by 8.</summary>
internal static class Crc32
{
    private static readonly uint[] Table = BuildTable();

    public static uint Compute(ReadOnlySpan<byte> data)
    {
        uint crc = 0xFFFFFFFF;
        ReadOnlySpan<uint> t = Table;
        int i = 0;
        for (; i + 8 <= data.Length; i += 8)
        {
            uint lo = BinaryPrimitives.ReadUInt32LittleEndian(data[i..]) ^ crc;
            uint hi = BinaryPrimitives.ReadUInt32LittleEndian(data[(i + 4)..]);
            crc = t[(7 * 256) + (int)(lo & 0xFF)] ^ t[(6 * 256) + (int)((lo >> 8) & 0xFF)] ^
                  t[(5 * 256) + (int)((lo >> 16) & 0xFF)] ^ t[(4 * 256) + (int)(lo >> 24)] ^
                  t[(3 * 256) + (int)(hi & 0xFF)] ^ t[(2 * 256) + (int)((hi >> 8) & 0xFF)] ^
                  t[256 + (int)((hi >> 16) & 0xFF)] ^ t[(int)(hi >> 24)];
        }

        for (; i < data.Length; i++)
        {
            crc = t[(int)((crc ^ data[i]) & 0xFF)] ^ (crc >> 8);
        }

        return ~crc;
    }

    private static uint[] BuildTable()
    {
        var table = new uint[8 * 256];
        for (uint n = 0; n < 256; n++)
        {
            uint c = n;
            for (int k = 0; k < 8; k++)
            {
                c = (c & 1) != 0 ? 0xEDB88320 ^ (c >> 1) : c >> 1;
            }

            table[n] = c;
        }

        for (int s = 1; s < 8; s++)
        {
            for (int n = 0; n < 256; n++)
            {
                uint prev = table[((s - 1) * 256) + n];
                table[(s * 256) + n] = table[(int)(prev & 0xFF)] ^ (prev >> 8);
            }
        }

        return table;
    }
}
