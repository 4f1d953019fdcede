using System.Numerics;
using System.Text;
using MobileOne.IO;
using MobileOne.IO.PyTorch;

namespace MobileOne.Tests.IO;

/// <summary>
/// The restricted unpickler opcode by opcode, on pickles written here byte by byte from the pickle specification
/// (Lib/pickletools.py): the values each opcode pushes, the containers, the memo, the allowed calls and the exact
/// refusal of everything else, Python's key equality and the work charged for it. Written against Stryker's
/// survivors on IO/PyTorch/RestrictedUnpickler.cs and PickleValues.cs (docs/reliability.md).
/// </summary>
public sealed class PickleEdgeTests
{
    private const byte Mark = (byte)'(', Stop = (byte)'.', Pop = (byte)'0', Reduce = (byte)'R', BinInt1 = (byte)'K';

    /// <summary>PROTO 2, then <paramref name="body"/>, then STOP.</summary>
    private static byte[] P(params byte[] body) => [0x80, 2, .. body, Stop];

    private static object? Load(params byte[] body) => RestrictedUnpickler.Load(P(body));

    /// <summary>The exact message a pickle is refused with (the body starts at byte 2).</summary>
    private static string Refusal(byte[] pickle) => Assert.Throws<UnpicklingException>(() => RestrictedUnpickler.Load(pickle)).Message;

    private static byte[] Text(string s) => Encoding.UTF8.GetBytes(s);

    /// <summary>SHORT_BINUNICODE.</summary>
    private static byte[] S(string s) => [0x8c, (byte)Encoding.UTF8.GetByteCount(s), .. Text(s)];

    /// <summary>GLOBAL module\nname\n.</summary>
    private static byte[] G(string module, string name) => [(byte)'c', .. Text($"{module}\n{name}\n")];

    /// <summary>BININT1.</summary>
    private static byte[] K(byte value) => [BinInt1, value];

    /// <summary>MARK, items, TUPLE.</summary>
    private static byte[] Tup(params byte[][] items) => [Mark, .. items.SelectMany(i => i), (byte)'t'];

    /// <summary>MARK, items, LIST.</summary>
    private static byte[] List(params byte[][] items) => [Mark, .. items.SelectMany(i => i), (byte)'l'];

    /// <summary>callable(*args) by REDUCE.</summary>
    private static byte[] Call(byte[] callable, params byte[][] args) => [.. callable, .. Tup(args), Reduce];

    /// <summary>BINPERSID of ('storage', torch.&lt;type&gt;, key, 'cpu', numel).</summary>
    private static byte[] Storage(string type, string key, byte numel) =>
        [.. Tup(S("storage"), G("torch", type), S(key), S("cpu"), K(numel)), (byte)'Q'];

    private static readonly byte[] EmptyOrderedDict = Call(G("collections", "OrderedDict"));

    // ------------------------------------------------------------------ numbers

    [Fact]
    public void Binary_ints_are_little_endian_and_only_BININT_is_signed()
    {
        Assert.Equal(-2L, Load((byte)'J', 0xfe, 0xff, 0xff, 0xff));
        Assert.Equal(0x12345678L, Load((byte)'J', 0x78, 0x56, 0x34, 0x12));
        Assert.Equal(255L, Load(BinInt1, 0xff));
        Assert.Equal(0xfedcL, Load((byte)'M', 0xdc, 0xfe));
    }

    [Theory]
    [InlineData(new byte[] { }, 0L)]
    [InlineData(new byte[] { 0xff }, -1L)]
    [InlineData(new byte[] { 0x7f }, 127L)]
    [InlineData(new byte[] { 0x80 }, -128L)]
    [InlineData(new byte[] { 0xff, 0x00 }, 255L)]
    [InlineData(new byte[] { 0x00, 0x80 }, -32768L)]
    [InlineData(new byte[] { 0x01, 0x02, 0x03 }, 0x030201L)]
    [InlineData(new byte[] { 0x00, 0x00, 0x80 }, -8388608L)]
    [InlineData(new byte[] { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f }, long.MaxValue)]
    [InlineData(new byte[] { 0, 0, 0, 0, 0, 0, 0, 0x80 }, long.MinValue)]
    [InlineData(new byte[] { 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff }, -2L)]
    [InlineData(new byte[] { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0x00 }, long.MaxValue)] // 9 bytes, still a long
    [InlineData(new byte[] { 0, 0, 0, 0, 0, 0, 0, 0x80, 0xff }, long.MinValue)]
    public void LONG1_is_little_endian_twos_complement(byte[] bytes, long expected)
    {
        object? value = Load([0x8a, (byte)bytes.Length, .. bytes]);
        Assert.Equal(expected, Assert.IsType<long>(value));
    }

    [Fact]
    public void LONG1_and_LONG4_beyond_64_bits_are_big_integers()
    {
        Assert.Equal(BigInteger.Pow(2, 64), Assert.IsType<BigInteger>(Load(0x8a, 9, 0, 0, 0, 0, 0, 0, 0, 0, 1)));
        Assert.Equal(BigInteger.Pow(2, 63), Assert.IsType<BigInteger>(Load(0x8a, 9, 0, 0, 0, 0, 0, 0, 0, 0x80, 0)));
        Assert.Equal(-BigInteger.Pow(2, 63) - 1, Assert.IsType<BigInteger>(Load(0x8a, 9, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0xff)));
        Assert.Equal(257L, Load(0x8b, 2, 0, 0, 0, 0x01, 0x01));
        Assert.Equal(0L, Load(0x8b, 0, 0, 0, 0));
        Assert.Equal(-BigInteger.Pow(2, 72), Assert.IsType<BigInteger>(Load(0x8b, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff)));
    }

    [Fact]
    public void LONG4_with_a_negative_length_is_refused()
    {
        Assert.Equal("data.pkl at byte 2: LONG4 has a negative length.", Refusal(P(0x8b, 0xff, 0xff, 0xff, 0xff)));
    }

    [Fact]
    public void Text_INT_reads_booleans_and_signed_decimals()
    {
        Assert.Equal(false, Load([(byte)'I', .. Text("00\n")]));
        Assert.Equal(true, Load([(byte)'I', .. Text("01\n")]));
        Assert.Equal(-42L, Load([(byte)'I', .. Text("-42\n")]));
        Assert.Equal(7L, Load([(byte)'I', .. Text("+7\n")]));
        Assert.Equal(0L, Load([(byte)'I', .. Text("0\n")]));
        Assert.Equal("data.pkl at byte 2: holds '1.5' where an integer belongs.", Refusal(P([(byte)'I', .. Text("1.5\n")])));
    }

    [Fact]
    public void Text_LONG_drops_its_L_and_grows_to_big_integers()
    {
        Assert.Equal(123L, Load([(byte)'L', .. Text("123L\n")]));
        Assert.Equal(-5L, Load([(byte)'L', .. Text("-5\n")]));
        Assert.Equal(BigInteger.Pow(2, 64), Load([(byte)'L', .. Text("18446744073709551616L\n")]));
        Assert.Equal("data.pkl at byte 2: LONG holds '12x', which is not an integer.", Refusal(P([(byte)'L', .. Text("12xL\n")])));
        Assert.Equal("data.pkl at byte 2: LONG holds '1.0', which is not an integer.", Refusal(P([(byte)'L', .. Text("1.0\n")])));
    }

    [Fact]
    public void Text_LONG_accepts_exactly_pythons_4300_digits()
    {
        // Python's int() refuses a 4301-digit string (sys.int_info.default_max_str_digits); the sign does not count.
        string digits = "1" + new string('0', 4299);
        Assert.Equal(BigInteger.Parse(digits), Load([(byte)'L', .. Text(digits + "L\n")]));
        Assert.Equal(-BigInteger.Parse(digits), Load([(byte)'L', .. Text("-" + digits + "\n")]));

        Assert.Equal(
            "data.pkl at byte 2: LONG holds a 4301-character number; at most 4300 digits are accepted (Python's own limit).",
            Refusal(P([(byte)'L', .. Text(digits + "0\n")])));
        Assert.StartsWith("data.pkl at byte 2: LONG holds a 4302-character number;", Refusal(P([(byte)'L', .. Text("-" + digits + "0\n")])));
    }

    [Fact]
    public void Floats_are_big_endian_binary_or_invariant_text()
    {
        Assert.Equal(1.5, Load((byte)'G', 0x3f, 0xf8, 0, 0, 0, 0, 0, 0));
        Assert.Equal(-2.5, Load((byte)'G', 0xc0, 0x04, 0, 0, 0, 0, 0, 0));
        Assert.Equal(2.5, Load([(byte)'F', .. Text("2.5\n")]));
        Assert.Equal(-1000.0, Load([(byte)'F', .. Text("-1e3\n")]));
        Assert.Equal("data.pkl at byte 2: FLOAT holds '2,5', which is not a number.", Refusal(P([(byte)'F', .. Text("2,5\n")])));
    }

    [Fact]
    public void None_and_booleans()
    {
        Assert.Null(Load((byte)'N'));
        Assert.Equal(true, Load(0x88));
        Assert.Equal(false, Load(0x89));
    }

    // ------------------------------------------------------------------ strings and bytes

    [Fact]
    public void Unicode_opcodes_decode_utf8_and_python2_strings_latin1()
    {
        Assert.Equal("é", Load((byte)'X', 2, 0, 0, 0, 0xc3, 0xa9));
        Assert.Equal("é", Load(0x8c, 2, 0xc3, 0xa9));
        Assert.Equal("é", Load(0x8d, 2, 0, 0, 0, 0, 0, 0, 0, 0xc3, 0xa9));
        Assert.Equal("é", Load((byte)'T', 1, 0, 0, 0, 0xe9));
        Assert.Equal("é", Load((byte)'U', 1, 0xe9));
        Assert.Equal("", Load((byte)'X', 0, 0, 0, 0));
    }

    [Fact]
    public void Bytes_opcodes_push_their_bytes()
    {
        Assert.Equal([1, 2, 3], Assert.IsType<byte[]>(Load((byte)'B', 3, 0, 0, 0, 1, 2, 3)));
        Assert.Equal([9, 8], Assert.IsType<byte[]>(Load((byte)'C', 2, 9, 8)));
        Assert.Equal([7], Assert.IsType<byte[]>(Load(0x8e, 1, 0, 0, 0, 0, 0, 0, 0, 7)));
        Assert.Equal([6, 5], Assert.IsType<byte[]>(Load(0x96, 2, 0, 0, 0, 0, 0, 0, 0, 6, 5)));
    }

    [Theory]
    [InlineData(new byte[] { (byte)'X', 5, 0, 0, 0, (byte)'a' })] // 5 bytes declared, 1 present (then STOP)
    [InlineData(new byte[] { (byte)'X', 0xff, 0xff, 0xff, 0xff })] // 4 GiB declared
    [InlineData(new byte[] { 0x8d, 0, 0, 0, 0x80, 0, 0, 0, 0 })] // 2^31: beyond any array
    [InlineData(new byte[] { 0x8d, 0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0 })] // int.MaxValue, far beyond the data
    [InlineData(new byte[] { 0x8d, 0, 0, 0, 0, 0, 0, 0, 0x80 })] // 2^63: negative as a signed long
    [InlineData(new byte[] { (byte)'J', 1, 2 })]
    [InlineData(new byte[] { (byte)'I', (byte)'1' })] // no newline before the end
    public void Lengths_beyond_the_data_are_truncation(byte[] body)
    {
        byte[] pickle = [0x80, 2, .. body];
        Assert.Equal("data.pkl ends unexpectedly in the opcode at byte 2 (the pickle is truncated or corrupt).", Refusal(pickle));
    }

    [Fact]
    public void A_pickle_without_STOP_is_truncated_at_the_opcode_it_ends_in()
    {
        Assert.Equal("data.pkl ends unexpectedly in the opcode at byte 4 (the pickle is truncated or corrupt).", Refusal([0x80, 2, BinInt1, 1]));
        Assert.Equal("data.pkl ends unexpectedly in the opcode at byte 0 (the pickle is truncated or corrupt).", Refusal([0x80]));
        Assert.Equal("data.pkl ends unexpectedly in the opcode at byte 0 (the pickle is truncated or corrupt).", Refusal([]));
    }

    // ------------------------------------------------------------------ protocol and frames

    [Fact]
    public void Protocols_up_to_5_are_read_and_frames_skipped()
    {
        Assert.Equal(1L, RestrictedUnpickler.Load([0x80, 5, 0x95, 3, 0, 0, 0, 0, 0, 0, 0, BinInt1, 1, Stop]));
        Assert.Equal(1L, RestrictedUnpickler.Load([BinInt1, 1, Stop])); // protocol 0/1 streams have no PROTO
        Assert.Equal("data.pkl at byte 0: uses pickle protocol 6; at most 5 is supported.", Refusal([0x80, 6, BinInt1, 1, Stop]));
        Assert.Equal("data.pkl ends unexpectedly in the opcode at byte 2 (the pickle is truncated or corrupt).", Refusal([0x80, 4, 0x95, 1, 0, 0, 0, 0, 0, 0]));
    }

    // ------------------------------------------------------------------ containers

    [Fact]
    public void Lists_are_built_by_APPEND_APPENDS_and_LIST()
    {
        Assert.Equal([1L, 2L], Assert.IsType<List<object?>>(Load((byte)']', BinInt1, 1, (byte)'a', BinInt1, 2, (byte)'a')));
        Assert.Equal([1L, 2L, 3L], Assert.IsType<List<object?>>(Load((byte)']', BinInt1, 1, (byte)'a', Mark, BinInt1, 2, BinInt1, 3, (byte)'e')));
        Assert.Equal([4L, 5L], Assert.IsType<List<object?>>(Load(Mark, BinInt1, 4, BinInt1, 5, (byte)'l')));
        Assert.Empty(Assert.IsType<List<object?>>(Load(Mark, (byte)'l')));
    }

    [Fact]
    public void Tuples_keep_their_order()
    {
        Assert.Equal([1L, 2L, 3L], Assert.IsType<PyTuple>(Load(Mark, BinInt1, 1, BinInt1, 2, BinInt1, 3, (byte)'t')).Items);
        Assert.Empty(Assert.IsType<PyTuple>(Load((byte)')')).Items);
        Assert.Equal([1L], Assert.IsType<PyTuple>(Load(BinInt1, 1, 0x85)).Items);
        Assert.Equal([1L, 2L], Assert.IsType<PyTuple>(Load(BinInt1, 1, BinInt1, 2, 0x86)).Items);
        Assert.Equal([1L, 2L, 3L], Assert.IsType<PyTuple>(Load(BinInt1, 1, BinInt1, 2, BinInt1, 3, 0x87)).Items);
        var t = Assert.IsType<PyTuple>(Load(BinInt1, 7, BinInt1, 8, 0x86));
        Assert.Equal(2, t.Count);
        Assert.Equal(8L, t[1]);
    }

    [Fact]
    public void Dicts_are_built_by_DICT_SETITEM_and_SETITEMS_in_insertion_order()
    {
        var d = Assert.IsType<PyDict>(Load([Mark, .. S("b"), BinInt1, 1, .. S("a"), BinInt1, 2, (byte)'d']));
        Assert.False(d.IsOrderedDict);
        Assert.Equal([new("b", 1L), new("a", 2L)], d.Items.ToList());

        var e = Assert.IsType<PyDict>(Load([(byte)'}', .. S("x"), BinInt1, 3, (byte)'s', Mark, .. S("y"), BinInt1, 4, .. S("z"), BinInt1, 5, (byte)'u']));
        Assert.Equal([new("x", 3L), new("y", 4L), new("z", 5L)], e.Items.ToList());
        Assert.Equal(3, e.Count);
        Assert.True(e.TryGetValue("y", out object? y));
        Assert.Equal(4L, y);
        Assert.False(e.TryGetValue("w", out _));
    }

    [Fact]
    public void Dict_items_from_an_odd_number_of_values_are_refused()
    {
        Assert.Equal("data.pkl at byte 5: sets dict items from an odd number of values.", Refusal(P(Mark, BinInt1, 1, (byte)'d')));
        Assert.Equal("data.pkl at byte 10: sets dict items from an odd number of values.", Refusal(P((byte)'}', Mark, BinInt1, 1, BinInt1, 2, BinInt1, 3, (byte)'u')));
    }

    [Fact]
    public void Sets_are_built_by_EMPTY_SET_ADDITEMS_and_FROZENSET()
    {
        var set = Assert.IsType<PySet>(Load(0x8f, Mark, BinInt1, 1, BinInt1, 2, BinInt1, 1, 0x90));
        Assert.False(set.Frozen);
        Assert.Equal([1L, 2L], set.Items);

        var frozen = Assert.IsType<PySet>(Load(Mark, BinInt1, 3, (byte)'N', BinInt1, 3, (byte)'N', BinInt1, 4, 0x91));
        Assert.True(frozen.Frozen);
        Assert.Equal([3L, null, 4L], frozen.Items);
    }

    [Theory]
    [InlineData(new byte[] { Mark, BinInt1, 1, 0x91, Mark, BinInt1, 2, 0x90 }, "data.pkl at byte 9: ADDITEMS applied to a frozenset.")]
    [InlineData(new byte[] { (byte)']', Mark, 0x90 }, "data.pkl at byte 4: ADDITEMS applied to a list.")]
    [InlineData(new byte[] { (byte)'}', BinInt1, 1, (byte)'a' }, "data.pkl at byte 5: APPEND applied to a dict, not a list.")]
    [InlineData(new byte[] { (byte)')', Mark, (byte)'e' }, "data.pkl at byte 4: APPENDS applied to a tuple, not a list.")]
    [InlineData(new byte[] { (byte)']', BinInt1, 1, BinInt1, 2, (byte)'s' }, "data.pkl at byte 7: SETITEM applied to a list, not a dict.")]
    [InlineData(new byte[] { 0x8f, Mark, (byte)'u' }, "data.pkl at byte 4: SETITEMS applied to a set, not a dict.")]
    public void Items_added_to_the_wrong_container_are_refused(byte[] body, string message)
    {
        Assert.Equal(message, Refusal(P(body)));
    }

    // ------------------------------------------------------------------ the stack and marks

    [Fact]
    public void POP_POP_MARK_and_DUP()
    {
        Assert.Equal(1L, Load(BinInt1, 1, BinInt1, 2, Pop));
        Assert.Equal(7L, Load(BinInt1, 7, Mark, Pop)); // POP with only a mark above the value discards the mark
        Assert.Equal(7L, Load(BinInt1, 7, Mark, BinInt1, 1, BinInt1, 2, (byte)'1'));
        Assert.Equal([5L, 5L], Assert.IsType<PyTuple>(Load(BinInt1, 5, (byte)'2', 0x86)).Items);
    }

    [Theory]
    [InlineData(new byte[] { Pop }, "data.pkl at byte 2: pops from an empty stack.")]
    [InlineData(new byte[] { (byte)'1' }, "data.pkl at byte 2: has no MARK to pop to.")]
    [InlineData(new byte[] { (byte)'2' }, "data.pkl at byte 2: reads from an empty stack.")]
    [InlineData(new byte[] { BinInt1, 1, Mark, 0x85 }, "data.pkl at byte 5: pops from an empty stack.")] // the value below the mark is out of reach
    [InlineData(new byte[] { BinInt1, 1, Mark, (byte)'q', 0 }, "data.pkl at byte 5: reads from an empty stack.")]
    [InlineData(new byte[] { BinInt1, 1, Mark }, "data.pkl at byte 5: pops from an empty stack.")] // STOP inside a mark
    public void Reaching_below_the_stack_or_the_mark_is_refused(byte[] body, string message)
    {
        Assert.Equal(message, Refusal(P(body)));
    }

    // ------------------------------------------------------------------ the memo

    [Fact]
    public void Memo_put_and_get_in_all_encodings()
    {
        Assert.Equal(5L, Load(BinInt1, 5, (byte)'q', 3, Pop, (byte)'h', 3));
        Assert.Equal(6L, Load(BinInt1, 6, (byte)'r', 4, 3, 2, 1, Pop, (byte)'j', 4, 3, 2, 1));
        Assert.Equal(8L, Load([BinInt1, 8, (byte)'p', .. Text("12\n"), Pop, (byte)'g', .. Text("12\n")]));
        // MEMOIZE stores at the memo's current size: 0, then 1.
        Assert.Equal([2L, 1L], Assert.IsType<PyTuple>(Load(BinInt1, 1, 0x94, BinInt1, 2, 0x94, Pop, Pop, (byte)'h', 1, (byte)'h', 0, 0x86)).Items);
        // The memo holds the object itself: appending through the memoized list changes the one list.
        var list = Assert.IsType<List<object?>>(Load((byte)']', (byte)'q', 0, BinInt1, 1, (byte)'a', Pop, (byte)'h', 0));
        Assert.Equal([1L], list);
    }

    [Theory]
    [InlineData(new byte[] { (byte)'h', 9 }, "data.pkl at byte 2: reads memo entry 9, which was never stored.")]
    [InlineData(new byte[] { BinInt1, 1, (byte)'r', 0, 1, 0, 0, (byte)'h', 0 }, "data.pkl at byte 9: reads memo entry 0, which was never stored.")]
    [InlineData(new byte[] { BinInt1, 1, (byte)'q', 1, (byte)'j', 0, 1, 0, 0 }, "data.pkl at byte 6: reads memo entry 256, which was never stored.")]
    [InlineData(new byte[] { (byte)'g', (byte)'x', (byte)'\n' }, "data.pkl at byte 2: holds 'x' where an integer belongs.")]
    public void Memo_misses_are_refused(byte[] body, string message)
    {
        Assert.Equal(message, Refusal(P(body)));
    }

    // ------------------------------------------------------------------ opcodes that are never allowed

    [Theory]
    [InlineData((byte)'P', "uses a text persistent id (PERSID); PyTorch checkpoints use BINPERSID.")]
    [InlineData((byte)'i', "uses the protocol 0/1 instance opcodes (INST/OBJ), which build arbitrary objects.")]
    [InlineData((byte)'o', "uses the protocol 0/1 instance opcodes (INST/OBJ), which build arbitrary objects.")]
    [InlineData((byte)0x82, "uses the pickle extension registry (EXT1/2/4), which is not allowed.")]
    [InlineData((byte)0x83, "uses the pickle extension registry (EXT1/2/4), which is not allowed.")]
    [InlineData((byte)0x84, "uses the pickle extension registry (EXT1/2/4), which is not allowed.")]
    [InlineData((byte)0x97, "uses out-of-band buffers (protocol 5), which a checkpoint file cannot carry.")]
    [InlineData((byte)0x98, "uses out-of-band buffers (protocol 5), which a checkpoint file cannot carry.")]
    [InlineData((byte)0xff, "has an unsupported or invalid opcode 0xff.")]
    [InlineData((byte)0x00, "has an unsupported or invalid opcode 0x00.")]
    [InlineData((byte)'S', "has an unsupported or invalid opcode 0x53.")]
    public void Forbidden_opcodes_are_refused_by_name(byte op, string problem)
    {
        Assert.Equal("data.pkl at byte 3: " + problem, Refusal([0x80, 2, (byte)'N', op, 0, 0, 0, 0, Stop]));
    }

    // ------------------------------------------------------------------ globals

    [Theory]
    [InlineData("collections", "OrderedDict", nameof(GlobalKind.OrderedDict))]
    [InlineData("torch._utils", "_rebuild_tensor_v2", nameof(GlobalKind.RebuildTensorV2))]
    [InlineData("torch._utils", "_rebuild_tensor", nameof(GlobalKind.RebuildTensor))]
    [InlineData("torch._utils", "_rebuild_parameter", nameof(GlobalKind.RebuildParameter))]
    [InlineData("torch._utils", "_rebuild_parameter_with_state", nameof(GlobalKind.RebuildParameterWithState))]
    [InlineData("torch", "Size", nameof(GlobalKind.TorchSize))]
    [InlineData("builtins", "set", nameof(GlobalKind.Set))]
    [InlineData("__builtin__", "set", nameof(GlobalKind.Set))]
    [InlineData("builtins", "frozenset", nameof(GlobalKind.FrozenSet))]
    [InlineData("__builtin__", "frozenset", nameof(GlobalKind.FrozenSet))]
    [InlineData("_codecs", "encode", nameof(GlobalKind.CodecsEncode))]
    public void Allowed_globals_resolve_to_their_kind(string module, string name, string kindName)
    {
        var kind = Enum.Parse<GlobalKind>(kindName);
        var g = RestrictedUnpickler.ResolveGlobal(module, name);
        Assert.Equal(new PyGlobal(module, name, kind), g);
        Assert.Equal($"{module}.{name}", g.FullName);
        Assert.Null(g.DType);
    }

    [Theory]
    [InlineData("HalfStorage", nameof(GlobalKind.StorageType), DType.F16)]
    [InlineData("BoolStorage", nameof(GlobalKind.StorageType), DType.Bool)]
    [InlineData("bfloat16", nameof(GlobalKind.DTypeValue), DType.BF16)]
    [InlineData("float", nameof(GlobalKind.DTypeValue), DType.F32)]
    [InlineData("long", nameof(GlobalKind.DTypeValue), DType.I64)]
    public void Torch_storage_types_and_dtypes_carry_their_dtype(string name, string kindName, DType dtype)
    {
        var kind = Enum.Parse<GlobalKind>(kindName);
        Assert.Equal(new PyGlobal("torch", name, kind, dtype), RestrictedUnpickler.ResolveGlobal("torch", name));
    }

    [Theory]
    [InlineData("collections", "Counter")]
    [InlineData("collections", "Size")]
    [InlineData("torch", "OrderedDict")]
    [InlineData("torch._utils", "_rebuild_qtensor")]
    [InlineData("torch", "tensor")]
    [InlineData("torchvision", "FloatStorage")] // a storage name outside the torch module
    [InlineData("torch.cuda", "FloatStorage")]
    [InlineData("builtins", "encode")]
    [InlineData("_codecs", "decode")]
    [InlineData("torch", "Storage_")]
    public void Other_globals_are_refused(string module, string name)
    {
        var ex = Assert.Throws<UnpicklingException>(() => RestrictedUnpickler.ResolveGlobal(module, name));
        Assert.Equal(
            $"refuses to load global '{module}.{name}': only tensors and plain containers are allowed (nothing in the file was imported or executed).",
            ex.Message);
    }

    [Fact]
    public void Unknown_torch_storage_types_are_named_with_the_supported_ones()
    {
        var ex = Assert.Throws<UnpicklingException>(() => RestrictedUnpickler.ResolveGlobal("torch", "QInt8Storage"));
        Assert.Equal(
            "uses storage type 'torch.QInt8Storage', which this reader does not support (supported: torch.DoubleStorage, torch.FloatStorage, " +
            "torch.HalfStorage, torch.BFloat16Storage, torch.LongStorage, torch.IntStorage, torch.ShortStorage, torch.CharStorage, " +
            "torch.ByteStorage, torch.BoolStorage); nothing in the file was executed.",
            ex.Message);
    }

    [Fact]
    public void GLOBAL_and_STACK_GLOBAL_push_the_resolved_global()
    {
        Assert.Equal(new PyGlobal("torch", "Size", GlobalKind.TorchSize), Load(G("torch", "Size")));
        Assert.Equal(new PyGlobal("torch", "Size", GlobalKind.TorchSize), Load([.. S("torch"), .. S("Size"), 0x93]));
        Assert.Equal("data.pkl at byte 11: STACK_GLOBAL expects two strings.", Refusal(P([.. S("torch"), BinInt1, 1, 0x93])));
        Assert.Equal("data.pkl at byte 10: STACK_GLOBAL expects two strings.", Refusal(P([BinInt1, 1, .. S("Size"), 0x93])));
        Assert.StartsWith("refuses to load global 'os.system': only", Refusal(P(G("os", "system")))); // no byte position: refused by name
    }

    // ------------------------------------------------------------------ calls

    [Fact]
    public void REDUCE_needs_an_allowed_global_and_a_tuple()
    {
        Assert.Equal("data.pkl at byte 5: REDUCE calls a int, which is not callable.", Refusal(P(BinInt1, 1, (byte)')', Reduce)));
        byte[] listArgs = [.. G("collections", "OrderedDict"), (byte)']', Reduce];
        Assert.Equal("data.pkl at byte 28: REDUCE passes a list to 'collections.OrderedDict' instead of an argument tuple.", Refusal(P(listArgs)));
    }

    [Fact]
    public void OrderedDict_is_built_empty_from_a_dict_or_from_pairs()
    {
        var empty = Assert.IsType<PyDict>(Load(EmptyOrderedDict));
        Assert.True(empty.IsOrderedDict);
        Assert.Equal(0, empty.Count);

        byte[] source = [Mark, .. S("a"), BinInt1, 1, .. S("b"), BinInt1, 2, (byte)'d'];
        var copy = Assert.IsType<PyDict>(Load(Call(G("collections", "OrderedDict"), source)));
        Assert.True(copy.IsOrderedDict);
        Assert.Equal([new("a", 1L), new("b", 2L)], copy.Items.ToList());

        var fromPairs = Assert.IsType<PyDict>(Load(Call(G("collections", "OrderedDict"), List(Tup(S("x"), K(3)), Tup(S("y"), K(4))))));
        Assert.Equal([new("x", 3L), new("y", 4L)], fromPairs.Items.ToList());
        var fromTuple = Assert.IsType<PyDict>(Load(Call(G("collections", "OrderedDict"), Tup(Tup(S("z"), K(5))))));
        Assert.Equal([new("z", 5L)], fromTuple.Items.ToList());
    }

    [Fact]
    public void OrderedDict_copies_its_source()
    {
        // d = {}; o = OrderedDict(d); d['k'] = 1: o stays empty.
        byte[] body = [(byte)'}', (byte)'q', 0, Pop, .. G("collections", "OrderedDict"), (byte)'h', 0, 0x85, Reduce, (byte)'h', 0, .. S("k"), BinInt1, 1, (byte)'s', Pop];
        Assert.Equal(0, Assert.IsType<PyDict>(Load(body)).Count);
    }

    [Theory]
    [InlineData("pairs-of-int", "builds 'collections.OrderedDict' from a int instead of a key/value pair.")]
    [InlineData("triple", "builds 'collections.OrderedDict' from a tuple instead of a key/value pair.")]
    [InlineData("none", "calls 'collections.OrderedDict' with unexpected arguments (None).")]
    [InlineData("two", "calls 'collections.OrderedDict' with unexpected arguments (int, int).")]
    [InlineData("int", "calls 'collections.OrderedDict' on a int, which this reader cannot iterate.")]
    public void OrderedDict_with_other_arguments_is_refused(string shape, string problem)
    {
        byte[] args = shape switch
        {
            "pairs-of-int" => [.. List(K(1))],
            "triple" => [.. List(Tup(K(1), K(2), K(3)))],
            "none" => [(byte)'N'],
            "two" => [BinInt1, 1, BinInt1, 2],
            _ => [BinInt1, 5],
        };
        byte[] body = [.. G("collections", "OrderedDict"), Mark, .. args, (byte)'t', Reduce];
        Assert.Equal($"data.pkl at byte {body.Length + 1}: {problem}", Refusal(P(body)));
    }

    [Fact]
    public void Set_and_frozenset_calls_iterate_lists_tuples_and_sets()
    {
        var empty = Assert.IsType<PySet>(Load(Call(G("builtins", "set"))));
        Assert.False(empty.Frozen);
        Assert.Empty(empty.Items);

        Assert.Equal([1L, 2L], Assert.IsType<PySet>(Load(Call(G("builtins", "set"), List(K(1), K(2), K(1))))).Items);
        var frozen = Assert.IsType<PySet>(Load(Call(G("builtins", "frozenset"), Tup(K(3), K(3)))));
        Assert.True(frozen.Frozen);
        Assert.Equal([3L], frozen.Items);
        byte[] innerSet = [0x8f, Mark, BinInt1, 4, 0x90];
        Assert.Equal([4L], Assert.IsType<PySet>(Load(Call(G("builtins", "frozenset"), innerSet))).Items);

        byte[] two = Call(G("builtins", "set"), K(1), K(2));
        Assert.Equal($"data.pkl at byte {two.Length + 1}: calls 'builtins.set' with unexpected arguments (int, int).", Refusal(P(two)));
        byte[] notIterable = Call(G("builtins", "set"), [(byte)'}']);
        Assert.Equal($"data.pkl at byte {notIterable.Length + 1}: calls 'builtins.set' on a dict, which this reader cannot iterate.", Refusal(P(notIterable)));
    }

    [Theory]
    [InlineData("latin1", new byte[] { 0xe9 })]
    [InlineData("latin-1", new byte[] { 0xe9 })]
    [InlineData("ISO-8859-1", new byte[] { 0xe9 })]
    [InlineData("utf-8", new byte[] { 0xc3, 0xa9 })]
    [InlineData("UTF8", new byte[] { 0xc3, 0xa9 })]
    [InlineData("ascii", new byte[] { (byte)'?' })]
    public void Codecs_encode_makes_bytes_in_the_named_encoding(string encoding, byte[] expected)
    {
        Assert.Equal(expected, Assert.IsType<byte[]>(Load(Call(G("_codecs", "encode"), S("é"), S(encoding)))));
    }

    [Theory]
    [InlineData("utf-16", "calls _codecs.encode with encoding 'utf-16', which is not supported.")]
    [InlineData("one", "calls '_codecs.encode' with unexpected arguments (str).")]
    [InlineData("int-text", "calls '_codecs.encode' with unexpected arguments (int, str).")]
    [InlineData("int-encoding", "calls '_codecs.encode' with unexpected arguments (str, int).")]
    public void Codecs_encode_with_other_arguments_is_refused(string shape, string problem)
    {
        byte[][] args = shape switch
        {
            "utf-16" => [S("a"), S("utf-16")],
            "one" => [S("a")],
            "int-text" => [K(1), S("latin1")],
            _ => [S("a"), K(1)],
        };
        byte[] body = Call(G("_codecs", "encode"), args);
        Assert.Equal($"data.pkl at byte {body.Length + 1}: {problem}", Refusal(P(body)));
    }

    [Fact]
    public void Torch_size_is_a_tuple_of_its_iterable()
    {
        Assert.Empty(Assert.IsType<PyTuple>(Load(Call(G("torch", "Size")))).Items);
        Assert.Equal([2L, 3L], Assert.IsType<PyTuple>(Load(Call(G("torch", "Size"), List(K(2), K(3))))).Items);
        byte[] two = Call(G("torch", "Size"), List(K(1)), List(K(2)));
        Assert.Equal($"data.pkl at byte {two.Length + 1}: calls 'torch.Size' with unexpected arguments (list, list).", Refusal(P(two)));
    }

    [Theory]
    [InlineData("torch", "FloatStorage")]
    [InlineData("torch", "float32")]
    public void Values_that_are_not_callable_are_refused_when_called(string module, string name)
    {
        byte[] body = Call(G(module, name));
        Assert.Equal($"data.pkl at byte {body.Length + 1}: calls '{module}.{name}', which is allowed as a value but cannot be called.", Refusal(P(body)));
    }

    // ------------------------------------------------------------------ tensors and storages

    private static byte[] TensorV2(byte[] storage, byte offset, byte[] size, byte[] stride, params byte[][] extra) =>
        Call(G("torch._utils", "_rebuild_tensor_v2"), [storage, K(offset), size, stride, [0x89], EmptyOrderedDict, .. extra]);

    [Fact]
    public void Rebuilt_tensors_describe_their_view()
    {
        var t = Assert.IsType<TensorRef>(Load(TensorV2(Storage("HalfStorage", "k", 12), 2, Tup(K(2), K(3)), Tup(K(4), K(1)))));
        Assert.Equal(2L, t.Offset);
        Assert.Equal([2L, 3L], t.Size);
        Assert.Equal([4L, 1L], t.Stride);
        Assert.Equal(new StorageRef(new PyGlobal("torch", "HalfStorage", GlobalKind.StorageType, DType.F16), DType.F16, "k", "cpu", 12), t.Storage);

        // Seven arguments (with metadata), the old four-argument form, lists for size and stride.
        var v7 = Assert.IsType<TensorRef>(Load(TensorV2(Storage("FloatStorage", "0", 1), 0, Tup(), Tup(), [(byte)'N'])));
        Assert.Empty(v7.Size);
        var old = Assert.IsType<TensorRef>(Load(Call(G("torch._utils", "_rebuild_tensor"), Storage("IntStorage", "1", 5), K(1), List(K(4)), List(K(1)))));
        Assert.Equal(DType.I32, old.Storage.DType);
        Assert.Equal([4L], old.Size);
        Assert.Equal(1L, old.Offset);
    }

    [Fact]
    public void Parameters_are_their_data()
    {
        byte[] tensor = TensorV2(Storage("FloatStorage", "0", 1), 0, Tup(), Tup());
        var plain = Assert.IsType<TensorRef>(Load(tensor));
        var p = Assert.IsType<TensorRef>(Load(Call(G("torch._utils", "_rebuild_parameter"), tensor, [0x88], EmptyOrderedDict)));
        Assert.Equal(plain.Storage, p.Storage);
        var ps = Assert.IsType<TensorRef>(Load(Call(G("torch._utils", "_rebuild_parameter_with_state"), tensor, [0x89], EmptyOrderedDict, [(byte)'N'])));
        Assert.Equal(plain.Storage, ps.Storage);
    }

    [Theory]
    [InlineData("v2-five", "calls 'torch._utils._rebuild_tensor_v2' with unexpected arguments (storage, int, tuple, tuple, bool).")]
    [InlineData("v2-int-grad", "calls 'torch._utils._rebuild_tensor_v2' with unexpected arguments (storage, int, tuple, tuple, int, OrderedDict).")]
    [InlineData("v1-five", "calls 'torch._utils._rebuild_tensor' with unexpected arguments (storage, int, tuple, tuple, bool).")]
    [InlineData("param-four", "calls 'torch._utils._rebuild_parameter' with unexpected arguments (tensor, bool, OrderedDict, None).")]
    [InlineData("state-three", "calls 'torch._utils._rebuild_parameter_with_state' with unexpected arguments (tensor, bool, OrderedDict).")]
    [InlineData("param-not-tensor", "calls 'torch._utils._rebuild_parameter' with unexpected arguments (storage, bool, OrderedDict).")]
    [InlineData("param-int-grad", "calls 'torch._utils._rebuild_parameter' with unexpected arguments (tensor, int, OrderedDict).")]
    [InlineData("no-storage", "calls 'torch._utils._rebuild_tensor' with a str where a storage belongs.")]
    [InlineData("float-offset", "calls 'torch._utils._rebuild_tensor' with a float storage offset.")]
    [InlineData("none-size", "calls 'torch._utils._rebuild_tensor' with a None size, not a tuple of ints.")]
    [InlineData("str-stride", "calls 'torch._utils._rebuild_tensor' with a str stride, not a tuple of ints.")]
    [InlineData("float-in-size", "calls 'torch._utils._rebuild_tensor' with a size holding a float.")]
    [InlineData("ranks", "calls 'torch._utils._rebuild_tensor' with 1 sizes but 2 strides.")]
    public void Tensor_calls_with_other_arguments_are_refused(string shape, string problem)
    {
        byte[] storage = Storage("FloatStorage", "0", 4);
        byte[] tensor = TensorV2(storage, 0, Tup(), Tup());
        byte[] half = [(byte)'G', 0x3f, 0xe0, 0, 0, 0, 0, 0, 0];
        byte[] v1 = G("torch._utils", "_rebuild_tensor");
        byte[] body = shape switch
        {
            "v2-five" => Call(G("torch._utils", "_rebuild_tensor_v2"), storage, K(0), Tup(), Tup(), [0x89]),
            "v2-int-grad" => Call(G("torch._utils", "_rebuild_tensor_v2"), storage, K(0), Tup(), Tup(), K(0), EmptyOrderedDict),
            "v1-five" => Call(v1, storage, K(0), Tup(), Tup(), [0x89]),
            "param-four" => Call(G("torch._utils", "_rebuild_parameter"), tensor, [0x88], EmptyOrderedDict, [(byte)'N']),
            "state-three" => Call(G("torch._utils", "_rebuild_parameter_with_state"), tensor, [0x88], EmptyOrderedDict),
            "param-not-tensor" => Call(G("torch._utils", "_rebuild_parameter"), storage, [0x88], EmptyOrderedDict),
            "param-int-grad" => Call(G("torch._utils", "_rebuild_parameter"), tensor, K(1), EmptyOrderedDict),
            "no-storage" => Call(v1, S("0"), K(0), Tup(), Tup()),
            "float-offset" => Call(v1, storage, half, Tup(), Tup()),
            "none-size" => Call(v1, storage, K(0), [(byte)'N'], Tup()),
            "str-stride" => Call(v1, storage, K(0), Tup(), S("1")),
            "float-in-size" => Call(v1, storage, K(0), Tup(K(1), half), Tup(K(1), K(1))),
            _ => Call(v1, storage, K(0), Tup(K(2)), Tup(K(1), K(1))),
        };
        Assert.Equal($"data.pkl at byte {body.Length + 1}: {problem}", Refusal(P(body)));
    }

    [Fact]
    public void Persistent_ids_accept_bytes_for_their_text()
    {
        byte[] pid = [.. Tup([(byte)'C', 7, .. Text("storage")], G("torch", "LongStorage"), [(byte)'C', 2, .. Text("k1")], S("cuda:0"), K(0)), (byte)'Q'];
        Assert.Equal(new StorageRef(new PyGlobal("torch", "LongStorage", GlobalKind.StorageType, DType.I64), DType.I64, "k1", "cuda:0", 0), Load(pid));
    }

    [Theory]
    [InlineData("int", "has a persistent id that is a int, not the 5-tuple ('storage', type, key, location, numel) that torch.save writes.")]
    [InlineData("four", "has a persistent id that is a tuple, not the 5-tuple ('storage', type, key, location, numel) that torch.save writes.")]
    [InlineData("six", "has a persistent id that is a tuple, not the 5-tuple ('storage', type, key, location, numel) that torch.save writes.")]
    [InlineData("module", "has a persistent id of kind 'module'; only 'storage' is supported.")]
    [InlineData("int-kind", "has a persistent id of kind 'int'; only 'storage' is supported.")]
    [InlineData("dtype-type", "has a storage persistent id whose type is a global 'torch.float32', not a torch storage class.")]
    [InlineData("str-type", "has a storage persistent id whose type is a str, not a torch storage class.")]
    [InlineData("int-key", "has a storage persistent id whose key is not a string.")]
    [InlineData("a/b", "has a storage key 'a/b' that is not a plain record name.")]
    [InlineData("a\\b", "has a storage key 'a\\b' that is not a plain record name.")]
    [InlineData("..", "has a storage key '..' that is not a plain record name.")]
    [InlineData("x..y", "has a storage key 'x..y' that is not a plain record name.")]
    [InlineData("", "has a storage key '' that is not a plain record name.")]
    [InlineData("none-location", "has a storage '0' whose location is not a string.")]
    [InlineData("negative", "has a storage '0' whose element count is int -1, not a non-negative int.")]
    [InlineData("float-numel", "has a storage '0' whose element count is float 0.5, not a non-negative int.")]
    [InlineData("big-numel", "has a storage '0' whose element count is int 18446744073709551616, not a non-negative int.")]
    public void Persistent_ids_other_than_a_storage_are_refused(string shape, string problem)
    {
        byte[] type = G("torch", "FloatStorage");
        byte[] body = shape switch
        {
            "int" => K(1),
            "four" => Tup(S("storage"), type, S("0"), S("cpu")),
            "six" => Tup(S("storage"), type, S("0"), S("cpu"), K(1), K(1)),
            "module" => Tup(S("module"), type, S("0"), S("cpu"), K(1)),
            "int-kind" => Tup(K(1), type, S("0"), S("cpu"), K(1)),
            "dtype-type" => Tup(S("storage"), G("torch", "float32"), S("0"), S("cpu"), K(1)),
            "str-type" => Tup(S("storage"), S("FloatStorage"), S("0"), S("cpu"), K(1)),
            "int-key" => Tup(S("storage"), type, K(0), S("cpu"), K(1)),
            "none-location" => Tup(S("storage"), type, S("0"), [(byte)'N'], K(1)),
            "negative" => Tup(S("storage"), type, S("0"), S("cpu"), [(byte)'J', 0xff, 0xff, 0xff, 0xff]),
            "float-numel" => Tup(S("storage"), type, S("0"), S("cpu"), [(byte)'G', 0x3f, 0xe0, 0, 0, 0, 0, 0, 0]),
            "big-numel" => Tup(S("storage"), type, S("0"), S("cpu"), [0x8a, 9, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
            _ => Tup(S("storage"), type, S(shape), S("cpu"), K(1)),
        };
        Assert.Equal($"data.pkl at byte {body.Length + 2}: {problem}", Refusal(P([.. body, (byte)'Q'])));
    }

    // ------------------------------------------------------------------ NEWOBJ and BUILD

    [Fact]
    public void NEWOBJ_builds_containers_only()
    {
        Assert.True(Assert.IsType<PyDict>(Load([.. G("collections", "OrderedDict"), (byte)')', 0x81])).IsOrderedDict);
        Assert.Equal([1L], Assert.IsType<PySet>(Load([.. G("builtins", "set"), .. Tup(List(K(1))), 0x81])).Items);
        Assert.True(Assert.IsType<PySet>(Load([.. G("builtins", "frozenset"), (byte)')', 0x81])).Frozen);
        Assert.Equal([2L], Assert.IsType<PyTuple>(Load([.. G("torch", "Size"), .. Tup(List(K(2))), 0x81])).Items);
        Assert.True(Assert.IsType<PyDict>(Load([.. G("collections", "OrderedDict"), (byte)')', (byte)'}', 0x92])).IsOrderedDict);

        byte[] rebuild = [.. G("torch._utils", "_rebuild_tensor"), (byte)')', 0x81];
        Assert.Equal($"data.pkl at byte {rebuild.Length + 1}: instantiates 'torch._utils._rebuild_tensor' with NEWOBJ, which is not a class this reader builds.", Refusal(P(rebuild)));
        Assert.Equal("data.pkl at byte 5: NEWOBJ on a int with tuple arguments.", Refusal(P(BinInt1, 1, (byte)')', 0x81)));
        byte[] listArgs = [.. G("collections", "OrderedDict"), (byte)']', 0x81];
        Assert.Equal($"data.pkl at byte {listArgs.Length + 1}: NEWOBJ on a global 'collections.OrderedDict' with list arguments.", Refusal(P(listArgs)));
        byte[] kwargs = [.. G("collections", "OrderedDict"), (byte)')', (byte)'}', .. S("a"), BinInt1, 1, (byte)'s', 0x92];
        Assert.Equal($"data.pkl at byte {kwargs.Length + 1}: NEWOBJ_EX with keyword arguments is not supported.", Refusal(P(kwargs)));
        byte[] noneKwargs = [.. G("collections", "OrderedDict"), (byte)')', (byte)'N', 0x92];
        Assert.Equal($"data.pkl at byte {noneKwargs.Length + 1}: NEWOBJ_EX with keyword arguments is not supported.", Refusal(P(noneKwargs)));
    }

    [Fact]
    public void BUILD_is_ignored_on_dicts_and_stateless_tensors_and_refused_elsewhere()
    {
        byte[] meta = [(byte)'}', .. S("_metadata"), .. EmptyOrderedDict, (byte)'s'];
        var d = Assert.IsType<PyDict>(Load([.. EmptyOrderedDict, .. meta, (byte)'b']));
        Assert.Equal(0, d.Count);
        byte[] tensor = TensorV2(Storage("FloatStorage", "0", 1), 0, Tup(), Tup());
        Assert.IsType<TensorRef>(Load([.. tensor, (byte)'N', (byte)'b']));

        byte[] stateful = [.. tensor, (byte)'}', (byte)'b'];
        Assert.Equal($"data.pkl at byte {stateful.Length + 1}: applies BUILD state to a tensor, which this reader does not support.", Refusal(P(stateful)));
        Assert.Equal("data.pkl at byte 4: applies BUILD state to a list, which this reader does not support.", Refusal(P((byte)']', (byte)'N', (byte)'b')));
    }

    // ------------------------------------------------------------------ type names in messages

    [Fact]
    public void Messages_name_every_python_type()
    {
        byte[] storage = Storage("FloatStorage", "0", 1);
        byte[][] values =
        [
            [(byte)'N'], [0x88], K(1), [0x8a, 9, 0, 0, 0, 0, 0, 0, 0, 0, 1], [(byte)'G', 0x3f, 0xf8, 0, 0, 0, 0, 0, 0], S("s"), [(byte)'C', 1, 0],
            [(byte)']'], [(byte)')'], [(byte)'}'], EmptyOrderedDict, [0x8f], [Mark, 0x91], G("torch", "Size"), storage,
            TensorV2(storage, 0, Tup(), Tup()),
        ];
        byte[] body = Call(G("builtins", "set"), values);
        Assert.Equal(
            $"data.pkl at byte {body.Length + 1}: calls 'builtins.set' with unexpected arguments " +
            "(None, bool, int, int, float, str, bytes, list, tuple, dict, OrderedDict, set, frozenset, global 'torch.Size', storage, tensor).",
            Refusal(P(body)));
    }

    // ------------------------------------------------------------------ Python's key equality

    [Fact]
    public void Equal_numbers_are_one_key_as_in_python()
    {
        // {1: 'a', True: 'b', 1.0: 'c'} == {1: 'c'}: the first key stays, the last value wins.
        var d = Assert.IsType<PyDict>(Load([(byte)'}', Mark, BinInt1, 1, .. S("a"), 0x88, .. S("b"), (byte)'G', 0x3f, 0xf0, 0, 0, 0, 0, 0, 0, .. S("c"), (byte)'u']));
        var item = Assert.Single(d.Items);
        Assert.Equal(1L, Assert.IsType<long>(item.Key));
        Assert.Equal("c", item.Value);

        // 0, False, 0.0 and -0.0; -1 and -1.0; 2**62 as int and float; 2**64 twice (distinct big integers).
        var zero = Assert.IsType<PyDict>(Load([(byte)'}', Mark, BinInt1, 0, BinInt1, 1, 0x89, BinInt1, 2, (byte)'G', 0, 0, 0, 0, 0, 0, 0, 0, BinInt1, 3, (byte)'G', 0x80, 0, 0, 0, 0, 0, 0, 0, BinInt1, 4, (byte)'u']));
        Assert.Equal(4L, Assert.Single(zero.Items).Value);
        var minus = Assert.IsType<PyDict>(Load([(byte)'}', Mark, (byte)'J', 0xff, 0xff, 0xff, 0xff, BinInt1, 1, (byte)'G', 0xbf, 0xf0, 0, 0, 0, 0, 0, 0, BinInt1, 2, (byte)'u']));
        Assert.Equal(2L, Assert.Single(minus.Items).Value);
        var large = Assert.IsType<PyDict>(Load([(byte)'}', Mark, 0x8a, 8, 0, 0, 0, 0, 0, 0, 0, 0x40, BinInt1, 1, (byte)'G', 0x43, 0xd0, 0, 0, 0, 0, 0, 0, BinInt1, 2, (byte)'u']));
        Assert.Equal(2L, Assert.Single(large.Items).Value);
        byte[] big = [0x8a, 9, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        var bigs = Assert.IsType<PyDict>(Load([(byte)'}', Mark, .. big, BinInt1, 1, .. big, BinInt1, 2, (byte)'u']));
        Assert.Equal(2L, Assert.Single(bigs.Items).Value);
    }

    [Fact]
    public void Different_values_are_different_keys()
    {
        // 0.5 and 0, 1 and 2, 'a' and b'a', b'a' and b'b', 2**64 and 2**64 + 1, (1, 'a') and (1, 'b'), (1,) and (1, 1), 2 and 2.5.
        byte[][] keys =
        [
            [(byte)'G', 0x3f, 0xe0, 0, 0, 0, 0, 0, 0], K(0), K(1), K(2), S("a"), [(byte)'C', 1, (byte)'a'], [(byte)'C', 1, (byte)'b'],
            [0x8a, 9, 0, 0, 0, 0, 0, 0, 0, 0, 1], [0x8a, 9, 1, 0, 0, 0, 0, 0, 0, 0, 1], Tup(K(1), S("a")), Tup(K(1), S("b")), Tup(K(1)),
            Tup(K(1), K(1)), [(byte)'G', 0x40, 0x04, 0, 0, 0, 0, 0, 0], [0x88], [(byte)'N'], Tup([(byte)'N']), Tup(K(0)),
        ];
        var d = Assert.IsType<PyDict>(Load([(byte)'}', Mark, .. keys.SelectMany(k => (byte[])[.. k, BinInt1, 9]), (byte)'u']));
        // True is 1, so 18 keys make 17 entries.
        Assert.Equal(17, d.Count);
    }

    [Fact]
    public void Equal_strings_bytes_tuples_and_None_are_one_key()
    {
        byte[][] pairs =
        [
            S("k"), S("k"), [(byte)'C', 2, 1, 2], [(byte)'C', 2, 1, 2], Tup(K(1), S("a"), Tup(K(2))), Tup(K(1), S("a"), Tup(K(2))),
            Tup([(byte)'N'], K(3)), Tup([(byte)'N'], K(3)), [(byte)'N'], [(byte)'N'], G("torch", "Size"), G("torch", "Size"),
        ];
        var d = Assert.IsType<PyDict>(Load([(byte)'}', Mark, .. pairs.SelectMany((k, i) => (byte[])[.. k, BinInt1, (byte)i]), (byte)'u']));
        Assert.Equal([1L, 3L, 5L, 7L, 9L, 11L], d.Items.Select(kv => kv.Value));
        Assert.Null(d.Items.ElementAt(4).Key);
        Assert.Equal(new PyGlobal("torch", "Size", GlobalKind.TorchSize), d.Items.ElementAt(5).Key);
    }

    [Fact]
    public void Storages_and_tensors_are_keys_by_identity()
    {
        byte[] storage = Storage("FloatStorage", "0", 1);
        var d = Assert.IsType<PyDict>(Load([(byte)'}', Mark, .. storage, BinInt1, 1, .. storage, BinInt1, 2, (byte)'u']));
        Assert.Equal(2, d.Count);
        var same = Assert.IsType<PyDict>(Load([(byte)'}', Mark, .. storage, (byte)'q', 0, BinInt1, 1, (byte)'h', 0, BinInt1, 2, (byte)'u']));
        Assert.Equal(2L, Assert.Single(same.Items).Value);
    }

    [Fact]
    public void Unhashable_keys_are_refused()
    {
        Assert.Equal("uses an unhashable list as a dict key or set item.", Refusal(P((byte)'}', (byte)']', BinInt1, 1, (byte)'s')));
        Assert.Equal("uses an unhashable dict as a dict key or set item.", Refusal(P(0x8f, Mark, (byte)'}', 0x90)));
        Assert.Equal("uses an unhashable list as a dict key or set item.", Refusal(P([(byte)'}', .. Tup(K(1), [(byte)']']), BinInt1, 1, (byte)'s'])));
    }

    [Fact]
    public void Tuple_keys_may_nest_32_deep_and_no_deeper()
    {
        byte[] Nested(int depth) => [BinInt1, 1, .. Enumerable.Repeat((byte)0x85, depth)];
        var d = Assert.IsType<PyDict>(Load([(byte)'}', .. Nested(32), BinInt1, 1, (byte)'s']));
        Assert.Equal(1, d.Count);
        Assert.Equal("uses a dict key nested more than 32 tuples deep.", Refusal(P([(byte)'}', .. Nested(33), BinInt1, 1, (byte)'s'])));
    }

    // ------------------------------------------------------------------ the work budget

    [Fact]
    public void Work_budget_is_a_base_plus_eight_units_a_byte()
    {
        Assert.Equal(1_048_576L, RestrictedUnpickler.BaseWork);
        Assert.Equal(8L, RestrictedUnpickler.MaxWorkPerByte);
        Assert.Equal(1_048_576L + 800, RestrictedUnpickler.WorkBudget(100));
        Assert.Equal(1_048_576L, RestrictedUnpickler.WorkBudget(0));
    }

    [Fact]
    public void Work_may_reach_its_limit_but_not_pass_it()
    {
        var work = new PickleWork(5) { Position = 7 };
        work.Charge(5);
        Assert.Equal(5, work.Used);
        Assert.Equal(5, work.Limit);
        var ex = Assert.Throws<UnpicklingException>(() => work.Charge(1));
        Assert.Equal(
            "data.pkl at byte 7: needs more than 5 units of work, the budget for a pickle of its size (it reuses shared objects to ask for " +
            "far more hashing or copying than its bytes hold); refused.",
            ex.Message);
    }

    [Fact]
    public void Every_opcode_costs_one_unit()
    {
        // PROTO, NONE, POP, BININT1, STOP: 5 opcodes, nothing hashed or copied.
        var work = new PickleWork(100);
        Assert.Equal(1L, RestrictedUnpickler.Load([0x80, 2, (byte)'N', Pop, BinInt1, 1, Stop], work));
        Assert.Equal(5, work.Used);

        // The same pickle with a limit of 4 stops at its fifth opcode, STOP at byte 6.
        var ex = Assert.Throws<UnpicklingException>(() => RestrictedUnpickler.Load([0x80, 2, (byte)'N', Pop, BinInt1, 1, Stop], new PickleWork(4)));
        Assert.StartsWith("data.pkl at byte 6: needs more than 4 units of work", ex.Message);
    }

    [Fact]
    public void Marks_and_copies_are_charged_per_value()
    {
        // PROTO, MARK, 3 x BININT1, TUPLE (3 values), STOP: 7 opcodes + 3.
        var work = new PickleWork(100);
        RestrictedUnpickler.Load([0x80, 2, Mark, BinInt1, 1, BinInt1, 2, BinInt1, 3, (byte)'t', Stop], work);
        Assert.Equal(10, work.Used);

        // torch.Size([1, 2, 3]): PROTO, GLOBAL, MARK, MARK, 3 x BININT1, LIST (3), TUPLE (1), REDUCE, STOP = 11 opcodes,
        // + 3 + 1 for the marks + 3 for iterating the list.
        work = new PickleWork(100);
        RestrictedUnpickler.Load(P(Call(G("torch", "Size"), List(K(1), K(2), K(3)))), work);
        Assert.Equal(18, work.Used);
    }

    [Fact]
    public void Dict_copies_and_tensor_shapes_are_charged_per_value()
    {
        // OrderedDict({'a': 1, 'b': 2}): 13 opcodes (PROTO, GLOBAL, MARK, EMPTY_DICT, MARK, 4 pushes, SETITEMS, TUPLE,
        // REDUCE, STOP) + 4 + 1 for the two marks + 2 + 2 for hashing 'a' and 'b' into each dict + 2 for the copy = 24.
        var work = new PickleWork(1000);
        byte[] source = [(byte)'}', Mark, .. S("a"), BinInt1, 1, .. S("b"), BinInt1, 2, (byte)'u'];
        RestrictedUnpickler.Load(P(Call(G("collections", "OrderedDict"), source)), work);
        Assert.Equal(24, work.Used);

        // _rebuild_tensor(storage, 0, (2,), (1,)): 21 opcodes (PROTO, GLOBAL, MARK, the persistent id's MARK, 5 pushes,
        // TUPLE and BINPERSID, BININT1, twice MARK/BININT1/TUPLE, TUPLE, REDUCE, STOP) + 5 + 1 + 1 + 4 for the marks
        // + 1 + 1 for reading the size and the stride = 34.
        work = new PickleWork(1000);
        RestrictedUnpickler.Load(P(Call(G("torch._utils", "_rebuild_tensor"), Storage("FloatStorage", "0", 2), K(0), Tup(K(2)), Tup(K(1)))), work);
        Assert.Equal(34, work.Used);
    }

    [Fact]
    public void Load_without_a_budget_uses_the_budget_of_its_length()
    {
        // t0 = (1,), t(i+1) = (ti, ti) through the memo, 30 levels: hashing the key visits 2^31 values, so the budget
        // of the pickle's length stops it; the limit in the message is 2^20 + 8 x its length.
        var body = new List<byte> { (byte)'}', BinInt1, 1, 0x85, (byte)'q', 0 };
        for (byte i = 0; i < 30; i++)
        {
            body.AddRange([Pop, (byte)'h', i, (byte)'h', i, 0x86, (byte)'q', (byte)(i + 1)]);
        }

        byte[] pickle = P([.. body, BinInt1, 1, (byte)'s']);
        string message = Refusal(pickle);
        Assert.Contains($"needs more than {1_048_576 + (8 * pickle.Length)} units of work", message);
        Assert.StartsWith($"data.pkl at byte {pickle.Length - 2}: ", message); // the SETITEM that hashes the key
    }

    [Fact]
    public void Hashing_and_comparing_charge_one_unit_per_value_and_per_block_of_text()
    {
        var work = new PickleWork(1000);
        var keys = new PyKeyComparer(work);

        keys.GetHashCode(new string('a', 31));
        Assert.Equal(1, work.Used);
        keys.GetHashCode(new string('a', 64));
        Assert.Equal(1 + 3, work.Used);
        keys.GetHashCode(new byte[63]);
        Assert.Equal(4 + 1, work.Used);
        keys.GetHashCode(new byte[128]);
        Assert.Equal(5 + 3, work.Used);
        keys.GetHashCode(BigInteger.One << 1016); // 128 bytes
        Assert.Equal(8 + 3, work.Used);
        keys.GetHashCode(new PyTuple([1L, "x", null]));
        Assert.Equal(11 + 3, work.Used); // the tuple and its two non-None items
        Assert.True(keys.Equals(new PyTuple([1L, 2L]), new PyTuple([1L, 2L])));
        Assert.Equal(14 + 3, work.Used);
        Assert.False(keys.Equals(new PyTuple([1L]), new PyTuple([1L, 2L])));
        Assert.Equal(17 + 1, work.Used);
        Assert.True(keys.Equals(new string('b', 96), new string('b', 96)));
        Assert.Equal(18 + 4, work.Used);
    }

    [Fact]
    public void Comparer_edges_python_semantics_and_hash_spread()
    {
        var keys = PyKeyComparer.Instance;

        // Only numbers compare as numbers; a bool is 1 or 0 against a float too.
        Assert.False(keys.Equals(0L, ""));
        Assert.False(keys.Equals(0L, new PyTuple([])));
        Assert.True(keys.Equals(true, 1.0));
        Assert.True(keys.Equals(false, 0.0));
        Assert.False(keys.Equals(new PyTuple([1L, "a"]), new PyTuple([1L, "b"])));

        // Comparing is bounded in depth like hashing: 33 nested tuples are refused.
        object Nested(int depth)
        {
            object value = 1L;
            for (int i = 0; i < depth; i++)
            {
                value = new PyTuple([value]);
            }

            return value;
        }

        Assert.True(keys.Equals(Nested(32), Nested(32)));
        Assert.Equal("uses a dict key nested more than 32 tuples deep.", Assert.Throws<UnpicklingException>(() => keys.Equals(Nested(33), Nested(33))).Message);

        // Integral floats and in-range big integers hash as the int they equal, at both ends of the long range.
        Assert.Equal(keys.GetHashCode(long.MinValue), keys.GetHashCode((double)long.MinValue));
        Assert.Equal(keys.GetHashCode(long.MinValue), keys.GetHashCode(new BigInteger(long.MinValue)));
        Assert.Equal(keys.GetHashCode(long.MaxValue), keys.GetHashCode(new BigInteger(long.MaxValue)));

        // Values that are not equal take their whole bits into the hash (a seeded hash: a collision of one given pair has
        // probability 2^-32): 0.5 is not hashed as 0, 2^63 as a float not as long.MinValue, the high half of a long counts,
        // and bytes and big integers hash their contents.
        Assert.NotEqual(keys.GetHashCode(0L), keys.GetHashCode(0.5));
        Assert.NotEqual(keys.GetHashCode(long.MinValue), keys.GetHashCode(9.2233720368547758E18));
        Assert.NotEqual(keys.GetHashCode(long.MaxValue), keys.GetHashCode(9.2233720368547758E18)); // (long)2^63 saturates to MaxValue
        Assert.NotEqual(keys.GetHashCode(0L), keys.GetHashCode(1L << 32));
        Assert.NotEqual(keys.GetHashCode(new byte[] { 1 }), keys.GetHashCode(new byte[] { 2 }));
        Assert.NotEqual(keys.GetHashCode(BigInteger.Pow(2, 64)), keys.GetHashCode(BigInteger.Pow(2, 64) + 1));
    }

    [Fact]
    public void Null_arguments_are_named_and_a_read_may_end_exactly_at_the_data()
    {
        Assert.Equal("data", Assert.Throws<ArgumentNullException>(() => RestrictedUnpickler.Load(null!)).ParamName);
        Assert.Equal("data", Assert.Throws<ArgumentNullException>(() => RestrictedUnpickler.Load(null!, new PickleWork(10))).ParamName);
        Assert.Equal("work", Assert.Throws<ArgumentNullException>(() => RestrictedUnpickler.Load([0x80, 2, Stop], null!)).ParamName);

        // BININT's four bytes are the last of the data: read, and the missing STOP is the truncation (at byte 7).
        Assert.Equal("data.pkl ends unexpectedly in the opcode at byte 7 (the pickle is truncated or corrupt).", Refusal([0x80, 2, (byte)'J', 1, 0, 0, 0]));
    }

    [Fact]
    public void The_shared_comparer_charges_nothing()
    {
        Assert.True(PyKeyComparer.Instance.Equals(1L, 1.0));
        Assert.Equal(PyKeyComparer.Instance.GetHashCode(1L), PyKeyComparer.Instance.GetHashCode(true));
        Assert.Equal(PyKeyComparer.Instance.GetHashCode(3L), PyKeyComparer.Instance.GetHashCode(3.0));
        Assert.Equal(PyKeyComparer.Instance.GetHashCode(new BigInteger(5)), PyKeyComparer.Instance.GetHashCode(5L));
        Assert.NotEqual(PyKeyComparer.Instance.GetHashCode(1L << 32), PyKeyComparer.Instance.GetHashCode(1L));
        Assert.False(PyKeyComparer.Instance.Equals(null, 1L));
        Assert.False(PyKeyComparer.Instance.Equals(1L, null));
        Assert.True(PyKeyComparer.Instance.Equals(null, null));
        Assert.False(PyKeyComparer.Instance.Equals("1", 1L));
        Assert.False(PyKeyComparer.Instance.Equals(1L, "1"));
        Assert.False(PyKeyComparer.Instance.Equals(new byte[] { 1 }, "\u0001"));
        Assert.False(PyKeyComparer.Instance.Equals(new PyTuple([]), new List<object?>()));
        Assert.True(PyKeyComparer.Instance.Equals(new BigInteger(7), 7.0));
        Assert.True(PyKeyComparer.Instance.Equals(true, new BigInteger(1)));
        Assert.False(PyKeyComparer.Instance.Equals(false, 0.5));
        Assert.True(new PyDict(ordered: true).IsOrderedDict);
        Assert.False(new PySet(frozen: false).Frozen);
    }
}
