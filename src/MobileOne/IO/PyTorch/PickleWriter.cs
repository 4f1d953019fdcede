using System.Buffers.Binary;
using System.Text;

namespace MobileOne.IO.PyTorch;

/// <summary>
/// Emits protocol 2 pickle opcodes: just the ones a state dict of tensors needs. Globals and
/// repeated strings are memoized (BINPUT once, BINGET afterwards) as Python's pickler does.
/// </summary>
internal sealed class PickleWriter
{
    private readonly MemoryStream output = new();
    private readonly Dictionary<string, int> memo = new(StringComparer.Ordinal);

    public PickleWriter() => Op(0x80, 2); // PROTO 2

    public void Mark() => Op((byte)'(');

    public void Stop() => Op((byte)'.');

    public void None() => Op((byte)'N');

    public void Bool(bool value) => Op(value ? (byte)0x88 : (byte)0x89);

    public void EmptyTuple() => Op((byte)')');

    public void EmptyDict() => Op((byte)'}');

    /// <summary>TUPLE over everything since the last MARK.</summary>
    public void TupleFromMark() => Op((byte)'t');

    public void Reduce() => Op((byte)'R');

    public void BinPersId() => Op((byte)'Q');

    public void SetItems() => Op((byte)'u');

    public void SetItem() => Op((byte)'s');

    public void Global(string module, string name)
    {
        string memoKey = "g:" + module + "\n" + name;
        if (TryGet(memoKey))
        {
            return;
        }

        Op((byte)'c');
        output.Write(Encoding.ASCII.GetBytes(module + "\n" + name + "\n"));
        Put(memoKey);
    }

    public void String(string value, bool memoize = false)
    {
        string memoKey = "s:" + value;
        if (memoize && TryGet(memoKey))
        {
            return;
        }

        byte[] bytes = Encoding.UTF8.GetBytes(value);
        Span<byte> len = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(len, (uint)bytes.Length);
        Op((byte)'X'); // BINUNICODE
        output.Write(len);
        output.Write(bytes);
        if (memoize)
        {
            Put(memoKey);
        }
    }

    public void Int(long value)
    {
        Span<byte> buf = stackalloc byte[8];
        if (value is >= 0 and <= byte.MaxValue)
        {
            Op((byte)'K', (byte)value); // BININT1
        }
        else if (value is >= 0 and <= ushort.MaxValue)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(buf, (ushort)value);
            Op((byte)'M'); // BININT2
            output.Write(buf[..2]);
        }
        else if (value is >= int.MinValue and <= int.MaxValue)
        {
            BinaryPrimitives.WriteInt32LittleEndian(buf, (int)value);
            Op((byte)'J'); // BININT
            output.Write(buf[..4]);
        }
        else
        {
            BinaryPrimitives.WriteInt64LittleEndian(buf, value);
            Op(0x8a, 8); // LONG1, 8 bytes two's complement
            output.Write(buf);
        }
    }

    /// <summary>A tuple of ints, with the short tuple opcodes where they apply.</summary>
    public void IntTuple(IReadOnlyList<long> values)
    {
        if (values.Count == 0)
        {
            EmptyTuple();
            return;
        }

        if (values.Count > 3)
        {
            Mark();
        }

        foreach (long v in values)
        {
            Int(v);
        }

        switch (values.Count)
        {
            case 1: Op(0x85); break; // TUPLE1
            case 2: Op(0x86); break; // TUPLE2
            case 3: Op(0x87); break; // TUPLE3
            default: TupleFromMark(); break;
        }
    }

    public byte[] ToArray() => output.ToArray();

    private bool TryGet(string memoKey)
    {
        if (!memo.TryGetValue(memoKey, out int index))
        {
            return false;
        }

        if (index <= byte.MaxValue)
        {
            Op((byte)'h', (byte)index); // BINGET
        }
        else
        {
            Op((byte)'j'); // LONG_BINGET
            Span<byte> buf = stackalloc byte[4];
            BinaryPrimitives.WriteInt32LittleEndian(buf, index);
            output.Write(buf);
        }

        return true;
    }

    private void Put(string memoKey)
    {
        int index = memo.Count;
        memo[memoKey] = index;
        if (index <= byte.MaxValue)
        {
            Op((byte)'q', (byte)index); // BINPUT
        }
        else
        {
            Op((byte)'r'); // LONG_BINPUT
            Span<byte> buf = stackalloc byte[4];
            BinaryPrimitives.WriteInt32LittleEndian(buf, index);
            output.Write(buf);
        }
    }

    private void Op(byte op) => output.WriteByte(op);

    private void Op(byte op, byte arg)
    {
        output.WriteByte(op);
        output.WriteByte(arg);
    }
}
