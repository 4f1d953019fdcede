using System.Buffers.Binary;
using System.Globalization;
using System.Numerics;
using System.Text;

namespace MobileOne.IO.PyTorch;

/// <summary>
/// A pickle virtual machine that only knows the objects a PyTorch state dict is made of.
/// </summary>
/// <remarks>
/// Why not Razorvine.Pickle (which the project references): its Unpickler resolves GLOBAL/STACK_GLOBAL
/// inside an internal implementation class through a process-wide static table
/// (<c>Unpickler.registerConstructor</c>), with no per-instance hook to refuse a name. Unknown globals
/// silently become a <c>ClassDict</c> (a zero-argument call succeeds; the refusal, if any, comes only
/// at REDUCE time with a message about constructor arguments), and registering torch's rebuild
/// functions would change how every other Unpickler in the process behaves and would need ambient
/// state to reach the zip archive. Checking the result afterwards would still have built objects
/// for names we never meant to accept. This VM instead checks every global against a fixed
/// allow-list at the moment GLOBAL or STACK_GLOBAL is read, before anything is constructed, and the
/// allowed globals only produce inert descriptions (<see cref="PyGlobal"/>, <see cref="StorageRef"/>,
/// <see cref="TensorRef"/>). Nothing is imported, called or executed.
///
/// It reads protocols 0-5 for the binary opcodes that pickle emits for the allowed objects, plus
/// the few protocol 0 text opcodes that stay unambiguous. It has no recursion and never allocates
/// more than the stream itself declares and holds.
///
/// The memo lets a pickle name one object many times, so a small stream can ask for work far beyond its
/// size (hashing a tuple of shared tuples, copying one large dict into many). Every opcode, every value
/// copied and every value a dict key's hash or comparison visits is charged to a <see cref="PickleWork"/>
/// budget of <see cref="BaseWork"/> + <see cref="MaxWorkPerByte"/> units per byte, so the work, and with
/// it the memory, stays linear in the size of the pickle.
/// </remarks>
internal sealed class RestrictedUnpickler
{
    private const int HighestProtocol = 5;

    /// <summary>Work units every pickle may use, however small.</summary>
    public const long BaseWork = 1 << 20;

    /// <summary>
    /// Work units per byte of pickle. The state dicts torch.save writes use about 0.45 (Apple's S0 checkpoint:
    /// 64,393 units for 152,097 bytes), and a value cannot be pushed and stored in a container for less than a
    /// byte without the memo; 8 leaves a wide margin for honest containers while refusing amplification
    /// (each unit allocates at most a few dozen bytes, so memory stays within a few hundred bytes per byte).
    /// </summary>
    public const long MaxWorkPerByte = 8;

    /// <summary>
    /// The most decimal digits a text LONG may have: Python's own default limit (sys.int_info.default_max_str_digits),
    /// because parsing decimal text is not linear in its length.
    /// </summary>
    public const int MaxDecimalDigits = 4300;

    private readonly byte[] data;
    private readonly PickleWork work;
    private readonly PyKeyComparer keys;
    private readonly List<object?> stack = [];
    private readonly Stack<int> marks = new();
    private readonly Dictionary<long, object?> memo = [];
    private int pos;
    private int opStart;

    private RestrictedUnpickler(byte[] data, PickleWork work)
    {
        this.data = data;
        this.work = work;
        keys = new PyKeyComparer(work);
    }

    /// <summary>The work budget of a pickle of <paramref name="length"/> bytes.</summary>
    public static long WorkBudget(long length) => BaseWork + (MaxWorkPerByte * length);

    /// <summary>Runs the pickle to its STOP opcode and returns the object it built.</summary>
    /// <exception cref="UnpicklingException">The stream is malformed, unsupported, refers to a refused global or exceeds its work budget.</exception>
    public static object? Load(byte[] data)
    {
        ArgumentNullException.ThrowIfNull(data);
        return Load(data, new PickleWork(WorkBudget(data.Length)));
    }

    /// <summary>As <see cref="Load(byte[])"/>, charging the given budget (tests read what a file used).</summary>
    internal static object? Load(byte[] data, PickleWork work)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(work);
        return new RestrictedUnpickler(data, work).Run();
    }

    /// <summary>Maps a module-qualified name onto an allowed global, or refuses it.</summary>
    public static PyGlobal ResolveGlobal(string module, string name)
    {
        switch (module, name)
        {
            case ("collections", "OrderedDict"):
                return new PyGlobal(module, name, GlobalKind.OrderedDict);
            case ("torch._utils", "_rebuild_tensor_v2"):
                return new PyGlobal(module, name, GlobalKind.RebuildTensorV2);
            case ("torch._utils", "_rebuild_tensor"):
                return new PyGlobal(module, name, GlobalKind.RebuildTensor);
            case ("torch._utils", "_rebuild_parameter"):
                return new PyGlobal(module, name, GlobalKind.RebuildParameter);
            case ("torch._utils", "_rebuild_parameter_with_state"):
                return new PyGlobal(module, name, GlobalKind.RebuildParameterWithState);
            case ("torch", "Size"):
                return new PyGlobal(module, name, GlobalKind.TorchSize);
            case ("builtins" or "__builtin__", "set"):
                return new PyGlobal(module, name, GlobalKind.Set);
            case ("builtins" or "__builtin__", "frozenset"):
                return new PyGlobal(module, name, GlobalKind.FrozenSet);
            case ("_codecs", "encode"):
                // Protocol 2 pickles bytes objects as _codecs.encode(str, 'latin1').
                return new PyGlobal(module, name, GlobalKind.CodecsEncode);
        }

        if (module == "torch")
        {
            if (TorchTypes.TryGetStorageDType(name, out DType storageDType))
            {
                return new PyGlobal(module, name, GlobalKind.StorageType, storageDType);
            }

            if (TorchTypes.TryGetDType(name, out DType dtype))
            {
                return new PyGlobal(module, name, GlobalKind.DTypeValue, dtype);
            }

            if (name.EndsWith("Storage", StringComparison.Ordinal))
            {
                throw new UnpicklingException(
                    $"uses storage type 'torch.{name}', which this reader does not support " +
                    $"(supported: {TorchTypes.SupportedStorageNames}); nothing in the file was executed.");
            }
        }

        throw new UnpicklingException(
            $"refuses to load global '{module}.{name}': only tensors and plain containers are allowed " +
            "(nothing in the file was imported or executed).");
    }

    private object? Run()
    {
        while (true)
        {
            opStart = pos;
            this.work.Position = pos;
            this.work.Charge(1);
            byte op = ReadByte();
            switch (op)
            {
                case 0x80: // PROTO
                    {
                        byte proto = ReadByte();
                        if (proto > HighestProtocol)
                        {
                            throw Malformed($"uses pickle protocol {proto}; at most {HighestProtocol} is supported.");
                        }

                        break;
                    }

                case 0x95: // FRAME: an 8-byte length; frames are a buffering hint only.
                    Skip(8);
                    break;
                case (byte)'.': // STOP
                    return Pop();
                case (byte)'(': // MARK
                    marks.Push(this.stack.Count);
                    break;
                case (byte)'0': // POP
                    if (this.stack.Count > StackBase)
                    {
                        this.stack.RemoveAt(this.stack.Count - 1);
                    }
                    else if (marks.Count > 0)
                    {
                        marks.Pop();
                    }
                    else
                    {
                        throw Malformed("pops from an empty stack.");
                    }

                    break;
                case (byte)'1': // POP_MARK
                    PopMark();
                    break;
                case (byte)'2': // DUP
                    Push(Peek());
                    break;

                // Globals: checked against the allow-list here, before anything can use them.
                case (byte)'c': // GLOBAL
                    {
                        string module = ReadLine();
                        string name = ReadLine();
                        Push(ResolveGlobal(module, name));
                        break;
                    }

                case 0x93: // STACK_GLOBAL
                    {
                        object? name = Pop();
                        object? module = Pop();
                        if (module is not string m || name is not string n)
                        {
                            throw Malformed("STACK_GLOBAL expects two strings.");
                        }

                        Push(ResolveGlobal(m, n));
                        break;
                    }

                // Memo.
                case (byte)'q': // BINPUT
                    this.memo[ReadByte()] = Peek();
                    break;
                case (byte)'r': // LONG_BINPUT
                    this.memo[ReadUInt32()] = Peek();
                    break;
                case (byte)'p': // PUT
                    this.memo[ParseLong(ReadLine())] = Peek();
                    break;
                case 0x94: // MEMOIZE
                    this.memo[this.memo.Count] = Peek();
                    break;
                case (byte)'h': // BINGET
                    Push(MemoGet(ReadByte()));
                    break;
                case (byte)'j': // LONG_BINGET
                    Push(MemoGet(ReadUInt32()));
                    break;
                case (byte)'g': // GET
                    Push(MemoGet(ParseLong(ReadLine())));
                    break;

                // Scalars.
                case (byte)'N': // NONE
                    Push(null);
                    break;
                case 0x88: // NEWTRUE
                    Push(true);
                    break;
                case 0x89: // NEWFALSE
                    Push(false);
                    break;
                case (byte)'J': // BININT
                    Push((long)BinaryPrimitives.ReadInt32LittleEndian(Read(4)));
                    break;
                case (byte)'K': // BININT1
                    Push((long)ReadByte());
                    break;
                case (byte)'M': // BININT2
                    Push((long)BinaryPrimitives.ReadUInt16LittleEndian(Read(2)));
                    break;
                case 0x8a: // LONG1
                    Push(DecodeLong(Read(ReadByte())));
                    break;
                case 0x8b: // LONG4
                    {
                        int n = BinaryPrimitives.ReadInt32LittleEndian(Read(4));
                        if (n < 0)
                        {
                            throw Malformed("LONG4 has a negative length.");
                        }

                        Push(DecodeLong(Read(n)));
                        break;
                    }

                case (byte)'I': // INT (text); "00"/"01" are protocol 0 booleans
                    {
                        string text = ReadLine();
                        Push(text switch
                        {
                            "00" => false,
                            "01" => true,
                            _ => ParseLong(text),
                        });
                        break;
                    }

                case (byte)'L': // LONG (text)
                    {
                        string text = ReadLine();
                        if (text.EndsWith('L'))
                        {
                            text = text[..^1];
                        }

                        // Python counts digits, not the sign: 4300 digits are accepted with or without one, 4301 are not.
                        int digits = text.Length - (text.StartsWith('-') || text.StartsWith('+') ? 1 : 0);
                        if (digits > MaxDecimalDigits)
                        {
                            throw Malformed($"LONG holds a {text.Length}-character number; at most {MaxDecimalDigits} digits are accepted (Python's own limit).");
                        }

                        if (!BigInteger.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out BigInteger big))
                        {
                            throw Malformed($"LONG holds '{text}', which is not an integer.");
                        }

                        Push(Normalize(big));
                        break;
                    }

                case (byte)'G': // BINFLOAT (big-endian)
                    Push(BinaryPrimitives.ReadDoubleBigEndian(Read(8)));
                    break;
                case (byte)'F': // FLOAT (text)
                    {
                        string text = ReadLine();
                        if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double d))
                        {
                            throw Malformed($"FLOAT holds '{text}', which is not a number.");
                        }

                        Push(d);
                        break;
                    }

                // Strings and bytes.
                case (byte)'X': // BINUNICODE
                    Push(Utf8(Read(ReadLength32())));
                    break;
                case 0x8c: // SHORT_BINUNICODE
                    Push(Utf8(Read(ReadByte())));
                    break;
                case 0x8d: // BINUNICODE8
                    Push(Utf8(Read(ReadLength64())));
                    break;
                case (byte)'T': // BINSTRING (Python 2 str)
                    Push(Encoding.Latin1.GetString(Read(ReadLength32())));
                    break;
                case (byte)'U': // SHORT_BINSTRING (Python 2 str)
                    Push(Encoding.Latin1.GetString(Read(ReadByte())));
                    break;
                case (byte)'B': // BINBYTES
                    Push(Read(ReadLength32()).ToArray());
                    break;
                case (byte)'C': // SHORT_BINBYTES
                    Push(Read(ReadByte()).ToArray());
                    break;
                case 0x8e: // BINBYTES8
                case 0x96: // BYTEARRAY8
                    Push(Read(ReadLength64()).ToArray());
                    break;

                // Containers.
                case (byte)'}': // EMPTY_DICT
                    Push(new PyDict(ordered: false, keys));
                    break;
                case (byte)'d': // DICT
                    {
                        var dict = new PyDict(ordered: false, keys);
                        SetItems(dict, PopMark());
                        Push(dict);
                        break;
                    }

                case (byte)']': // EMPTY_LIST
                    Push(new List<object?>());
                    break;
                case (byte)'l': // LIST
                    Push(new List<object?>(PopMark()));
                    break;
                case (byte)')': // EMPTY_TUPLE
                    Push(new PyTuple([]));
                    break;
                case (byte)'t': // TUPLE
                    Push(new PyTuple(PopMark()));
                    break;
                case 0x85: // TUPLE1
                    {
                        object? a = Pop();
                        Push(new PyTuple([a]));
                        break;
                    }

                case 0x86: // TUPLE2
                    {
                        object? b = Pop();
                        object? a = Pop();
                        Push(new PyTuple([a, b]));
                        break;
                    }

                case 0x87: // TUPLE3
                    {
                        object? c = Pop();
                        object? b = Pop();
                        object? a = Pop();
                        Push(new PyTuple([a, b, c]));
                        break;
                    }

                case 0x8f: // EMPTY_SET
                    Push(new PySet(frozen: false, keys));
                    break;
                case 0x91: // FROZENSET
                    {
                        var set = new PySet(frozen: true, keys);
                        AddToSet(set, PopMark());
                        Push(set);
                        break;
                    }

                case 0x90: // ADDITEMS
                    {
                        object?[] items = PopMark();
                        if (Peek() is not PySet set || set.Frozen)
                        {
                            throw Malformed($"ADDITEMS applied to a {PickleDescribe.TypeName(Peek())}.");
                        }

                        AddToSet(set, items);
                        break;
                    }

                case (byte)'a': // APPEND
                    {
                        object? value = Pop();
                        TargetList("APPEND").Add(value);
                        break;
                    }

                case (byte)'e': // APPENDS
                    {
                        object?[] items = PopMark();
                        TargetList("APPENDS").AddRange(items);
                        break;
                    }

                case (byte)'s': // SETITEM
                    {
                        object? value = Pop();
                        object? key = Pop();
                        TargetDict("SETITEM").Set(key, value);
                        break;
                    }

                case (byte)'u': // SETITEMS
                    {
                        object?[] items = PopMark();
                        SetItems(TargetDict("SETITEMS"), items);
                        break;
                    }

                // Calls: only on allowed globals, and only to build inert descriptions.
                case (byte)'R': // REDUCE
                    {
                        object? args = Pop();
                        object? callable = Pop();
                        Push(Call(callable, args));
                        break;
                    }

                case 0x81: // NEWOBJ
                    {
                        object? args = Pop();
                        object? cls = Pop();
                        Push(NewObject(cls, args));
                        break;
                    }

                case 0x92: // NEWOBJ_EX
                    {
                        object? kwargs = Pop();
                        object? args = Pop();
                        object? cls = Pop();
                        if (kwargs is not PyDict { Count: 0 })
                        {
                            throw Malformed("NEWOBJ_EX with keyword arguments is not supported.");
                        }

                        Push(NewObject(cls, args));
                        break;
                    }

                case (byte)'b': // BUILD
                    {
                        object? state = Pop();
                        Build(Peek(), state);
                        break;
                    }

                case (byte)'Q': // BINPERSID
                    Push(PersistentLoad(Pop()));
                    break;

                case (byte)'P': // PERSID
                    throw Malformed("uses a text persistent id (PERSID); PyTorch checkpoints use BINPERSID.");
                case (byte)'i': // INST
                case (byte)'o': // OBJ
                    throw Malformed("uses the protocol 0/1 instance opcodes (INST/OBJ), which build arbitrary objects.");
                case 0x82: // EXT1
                case 0x83: // EXT2
                case 0x84: // EXT4
                    throw Malformed("uses the pickle extension registry (EXT1/2/4), which is not allowed.");
                case 0x97: // NEXT_BUFFER
                case 0x98: // READONLY_BUFFER
                    throw Malformed("uses out-of-band buffers (protocol 5), which a checkpoint file cannot carry.");
                default:
                    throw Malformed($"has an unsupported or invalid opcode 0x{op:x2}.");
            }
        }
    }

    private int StackBase => marks.Count > 0 ? marks.Peek() : 0;

    private void Push(object? value) => this.stack.Add(value);

    private object? Pop()
    {
        if (this.stack.Count <= StackBase)
        {
            throw Malformed("pops from an empty stack.");
        }

        object? value = this.stack[^1];
        this.stack.RemoveAt(this.stack.Count - 1);
        return value;
    }

    private object? Peek()
    {
        if (this.stack.Count <= StackBase)
        {
            throw Malformed("reads from an empty stack.");
        }

        return this.stack[^1];
    }

    private object?[] PopMark()
    {
        if (marks.Count == 0)
        {
            throw Malformed("has no MARK to pop to.");
        }

        int start = marks.Pop();
        this.work.Charge(this.stack.Count - start);
        object?[] items = this.stack.GetRange(start, this.stack.Count - start).ToArray();
        this.stack.RemoveRange(start, this.stack.Count - start);
        return items;
    }

    private object? MemoGet(long index) =>
        this.memo.TryGetValue(index, out object? value) ? value : throw Malformed($"reads memo entry {index}, which was never stored.");

    private List<object?> TargetList(string opcode) =>
        Peek() as List<object?> ?? throw Malformed($"{opcode} applied to a {PickleDescribe.TypeName(Peek())}, not a list.");

    private PyDict TargetDict(string opcode) =>
        Peek() as PyDict ?? throw Malformed($"{opcode} applied to a {PickleDescribe.TypeName(Peek())}, not a dict.");

    private void SetItems(PyDict dict, object?[] items)
    {
        if (items.Length % 2 != 0)
        {
            throw Malformed("sets dict items from an odd number of values.");
        }

        for (int i = 0; i < items.Length; i += 2)
        {
            dict.Set(items[i], items[i + 1]);
        }
    }

    private static void AddToSet(PySet set, IEnumerable<object?> items)
    {
        foreach (object? item in items)
        {
            set.Add(item);
        }
    }

    private object? Call(object? callable, object? argsObject)
    {
        if (callable is not PyGlobal g)
        {
            throw Malformed($"REDUCE calls a {PickleDescribe.TypeName(callable)}, which is not callable.");
        }

        if (argsObject is not PyTuple args)
        {
            throw Malformed($"REDUCE passes a {PickleDescribe.TypeName(argsObject)} to '{g.FullName}' instead of an argument tuple.");
        }

        switch (g.Kind)
        {
            case GlobalKind.OrderedDict:
                {
                    var dict = new PyDict(ordered: true, keys, args.Count == 1 && args[0] is PyDict source ? source.Count : 0);
                    if (args.Count == 1 && args[0] is not null)
                    {
                        FillDict(dict, args[0], g);
                    }
                    else if (args.Count != 0)
                    {
                        throw BadArgs(g, args);
                    }

                    return dict;
                }

            case GlobalKind.RebuildTensorV2:
                // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
                if (args.Count is not (6 or 7) || args[4] is not bool)
                {
                    throw BadArgs(g, args);
                }

                return RebuildTensor(g, args);
            case GlobalKind.RebuildTensor:
                // (storage, storage_offset, size, stride)
                if (args.Count != 4)
                {
                    throw BadArgs(g, args);
                }

                return RebuildTensor(g, args);
            case GlobalKind.RebuildParameter:
            case GlobalKind.RebuildParameterWithState:
                // (data, requires_grad, backward_hooks[, state]): a Parameter is its data here.
                if (args.Count != (g.Kind == GlobalKind.RebuildParameter ? 3 : 4) || args[0] is not TensorRef data || args[1] is not bool)
                {
                    throw BadArgs(g, args);
                }

                return data;
            case GlobalKind.Set:
            case GlobalKind.FrozenSet:
                {
                    var set = new PySet(frozen: g.Kind == GlobalKind.FrozenSet, keys);
                    if (args.Count == 1)
                    {
                        AddToSet(set, Iterate(args[0], g));
                    }
                    else if (args.Count != 0)
                    {
                        throw BadArgs(g, args);
                    }

                    return set;
                }

            case GlobalKind.CodecsEncode:
                {
                    if (args.Count != 2 || args[0] is not string text || args[1] is not string encoding)
                    {
                        throw BadArgs(g, args);
                    }

                    return encoding.ToLowerInvariant() switch
                    {
                        "latin1" or "latin-1" or "iso-8859-1" => Encoding.Latin1.GetBytes(text),
                        "utf-8" or "utf8" => Encoding.UTF8.GetBytes(text),
                        "ascii" => Encoding.ASCII.GetBytes(text),
                        _ => throw Malformed($"calls _codecs.encode with encoding '{encoding}', which is not supported."),
                    };
                }

            case GlobalKind.TorchSize:
                if (args.Count > 1)
                {
                    throw BadArgs(g, args);
                }

                return new PyTuple(args.Count == 0 ? [] : Iterate(args[0], g).ToArray());
            default:
                throw Malformed($"calls '{g.FullName}', which is allowed as a value but cannot be called.");
        }
    }

    private object? NewObject(object? cls, object? argsObject)
    {
        if (cls is not PyGlobal g || argsObject is not PyTuple args)
        {
            throw Malformed($"NEWOBJ on a {PickleDescribe.TypeName(cls)} with {PickleDescribe.TypeName(argsObject)} arguments.");
        }

        return g.Kind switch
        {
            GlobalKind.OrderedDict or GlobalKind.Set or GlobalKind.FrozenSet or GlobalKind.TorchSize => Call(g, args),
            _ => throw Malformed($"instantiates '{g.FullName}' with NEWOBJ, which is not a class this reader builds."),
        };
    }

    private void Build(object? target, object? state)
    {
        switch (target)
        {
            case PyDict:
                // An OrderedDict's instance attributes, e.g. the _metadata (module versions) that
                // nn.Module.state_dict() attaches. They do not affect the tensors.
                return;
            case TensorRef when state is null:
                return;
            default:
                throw Malformed($"applies BUILD state to a {PickleDescribe.TypeName(target)}, which this reader does not support.");
        }
    }

    private object PersistentLoad(object? pid)
    {
        // ('storage', <storage type>, key, location, numel), as torch.save's persistent_id writes it.
        if (pid is not PyTuple t || t.Count != 5)
        {
            throw Malformed($"has a persistent id that is a {PickleDescribe.TypeName(pid)}, not the 5-tuple ('storage', type, key, location, numel) that torch.save writes.");
        }

        string? kind = AsText(t[0]);
        if (kind != "storage")
        {
            throw Malformed($"has a persistent id of kind '{kind ?? PickleDescribe.TypeName(t[0])}'; only 'storage' is supported.");
        }

        if (t[1] is not PyGlobal { Kind: GlobalKind.StorageType, DType: DType dtype } storageType)
        {
            throw Malformed($"has a storage persistent id whose type is a {PickleDescribe.TypeName(t[1])}, not a torch storage class.");
        }

        string key = AsText(t[2]) ?? throw Malformed("has a storage persistent id whose key is not a string.");
        if (key.Length == 0 || key.Contains('/') || key.Contains('\\') || key.Contains(".."))
        {
            throw Malformed($"has a storage key '{key}' that is not a plain record name.");
        }

        string location = AsText(t[3]) ?? throw Malformed($"has a storage '{key}' whose location is not a string.");
        if (t[4] is not long numel || numel < 0)
        {
            throw Malformed($"has a storage '{key}' whose element count is {PickleDescribe.TypeName(t[4])} {t[4]}, not a non-negative int.");
        }

        return new StorageRef(storageType, dtype, key, location, numel);
    }

    private TensorRef RebuildTensor(PyGlobal g, PyTuple args)
    {
        if (args[0] is not StorageRef storage)
        {
            throw Malformed($"calls '{g.FullName}' with a {PickleDescribe.TypeName(args[0])} where a storage belongs.");
        }

        if (args[1] is not long offset)
        {
            throw Malformed($"calls '{g.FullName}' with a {PickleDescribe.TypeName(args[1])} storage offset.");
        }

        long[] size = Ints(g, args[2], "size");
        long[] stride = Ints(g, args[3], "stride");
        if (size.Length != stride.Length)
        {
            throw Malformed($"calls '{g.FullName}' with {size.Length} sizes but {stride.Length} strides.");
        }

        return new TensorRef(storage, offset, size, stride);
    }

    private long[] Ints(PyGlobal g, object? value, string what)
    {
        object?[] items = value switch
        {
            PyTuple t => t.Items,
            List<object?> l => l.ToArray(),
            _ => throw Malformed($"calls '{g.FullName}' with a {PickleDescribe.TypeName(value)} {what}, not a tuple of ints."),
        };
        this.work.Charge(items.Length);
        var result = new long[items.Length];
        for (int i = 0; i < items.Length; i++)
        {
            result[i] = items[i] as long? ?? throw Malformed($"calls '{g.FullName}' with a {what} holding a {PickleDescribe.TypeName(items[i])}.");
        }

        return result;
    }

    private void FillDict(PyDict dict, object? source, PyGlobal g)
    {
        if (source is PyDict other)
        {
            // OrderedDict(d) copies d: charged per entry, or a memoized dict copied again and again is quadratic.
            this.work.Charge(other.Count);
            foreach (var (k, v) in other.Items)
            {
                dict.Set(k, v);
            }

            return;
        }

        foreach (object? pair in Iterate(source, g))
        {
            if (pair is not PyTuple { Count: 2 } kv)
            {
                throw Malformed($"builds '{g.FullName}' from a {PickleDescribe.TypeName(pair)} instead of a key/value pair.");
            }

            dict.Set(kv[0], kv[1]);
        }
    }

    // Every caller copies what it iterates, so the copy is charged here.
    private IEnumerable<object?> Iterate(object? value, PyGlobal g)
    {
        IReadOnlyCollection<object?> items = value switch
        {
            List<object?> l => l,
            PyTuple t => t.Items,
            PySet s => s.Items,
            _ => throw Malformed($"calls '{g.FullName}' on a {PickleDescribe.TypeName(value)}, which this reader cannot iterate."),
        };
        this.work.Charge(items.Count);
        return items;
    }

    private static string? AsText(object? value) => value switch
    {
        string s => s,
        byte[] b => Encoding.ASCII.GetString(b),
        _ => null,
    };

    private UnpicklingException BadArgs(PyGlobal g, PyTuple args) =>
        Malformed($"calls '{g.FullName}' with unexpected arguments ({string.Join(", ", args.Items.Select(PickleDescribe.TypeName))}).");

    private UnpicklingException Malformed(string problem) => new($"data.pkl at byte {opStart}: {problem}");

    private byte ReadByte()
    {
        if (pos >= this.data.Length)
        {
            throw Truncated();
        }

        return this.data[pos++];
    }

    private ReadOnlySpan<byte> Read(long count)
    {
        if (count < 0 || count > this.data.Length - pos)
        {
            throw Truncated();
        }

        var span = new ReadOnlySpan<byte>(this.data, pos, (int)count);
        pos += (int)count;
        return span;
    }

    private void Skip(int count) => Read(count);

    private uint ReadUInt32() => BinaryPrimitives.ReadUInt32LittleEndian(Read(4));

    private long ReadLength32() => ReadUInt32();

    private long ReadLength64()
    {
        ulong n = BinaryPrimitives.ReadUInt64LittleEndian(Read(8));
        return n > int.MaxValue ? throw Truncated() : (long)n;
    }

    private string ReadLine()
    {
        int end = Array.IndexOf(this.data, (byte)'\n', pos);
        if (end < 0)
        {
            throw Truncated();
        }

        string line = Encoding.UTF8.GetString(this.data, pos, end - pos);
        pos = end + 1;
        return line;
    }

    private long ParseLong(string text) =>
        long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long value)
            ? value
            : throw Malformed($"holds '{text}' where an integer belongs.");

    private static object DecodeLong(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length == 0)
        {
            return 0L;
        }

        if (bytes.Length <= 8)
        {
            long value = 0;
            for (int i = bytes.Length - 1; i >= 0; i--)
            {
                value = (value << 8) | bytes[i];
            }

            // Sign-extend from the top byte.
            int shift = 64 - (8 * bytes.Length);
            return shift == 0 ? value : (value << shift) >> shift;
        }

        return Normalize(new BigInteger(bytes, isUnsigned: false, isBigEndian: false));
    }

    // The (object) matters: with two numeric branches the conditional's type is BigInteger, and the long was boxed as a
    // BigInteger again (so 'is long' checks on sizes, offsets and element counts refused a protocol 0 LONG).
    private static object Normalize(BigInteger value) =>
        value >= long.MinValue && value <= long.MaxValue ? (long)value : (object)value;

    private static string Utf8(ReadOnlySpan<byte> bytes) => Encoding.UTF8.GetString(bytes);

    private UnpicklingException Truncated() =>
        new($"data.pkl ends unexpectedly in the opcode at byte {opStart} (the pickle is truncated or corrupt).");
}
