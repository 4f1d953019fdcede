using System.Numerics;

namespace MobileOne.IO.PyTorch;

// The object model the restricted unpickler builds. Python values map to:
//   None -> null, bool -> bool, int -> long (or BigInteger beyond 64 bits), float -> double,
//   str -> string, bytes/bytearray -> byte[], list -> List<object?>, tuple -> PyTuple,
//   dict/OrderedDict -> PyDict, set/frozenset -> PySet, an allowed global -> PyGlobal,
//   a storage persistent id -> StorageRef, a rebuilt tensor -> TensorRef.
// Nothing here refers to data outside the pickle: tensors are descriptions of views into storage
// records that the checkpoint reader materializes afterwards.

/// <summary>A problem in the pickle stream (malformed, unsupported or refused).</summary>
internal sealed class UnpicklingException(string message) : Exception(message);

internal sealed class PyTuple(object?[] items)
{
    public object?[] Items { get; } = items;

    public int Count => Items.Length;

    public object? this[int index] => Items[index];
}

internal sealed class PySet(bool frozen, PyKeyComparer comparer)
{
    // Membership is kept beside the insertion-ordered items, so adding n items costs n lookups, not n times the set's size.
    private readonly HashSet<object> members = new(comparer);
    private bool hasNone;

    public PySet(bool frozen)
        : this(frozen, PyKeyComparer.Instance)
    {
    }

    public bool Frozen { get; } = frozen;

    public List<object?> Items { get; } = [];

    public void Add(object? item)
    {
        bool added = item is null ? !hasNone : members.Add(item);
        if (added)
        {
            hasNone |= item is null;
            Items.Add(item);
        }
    }
}

/// <summary>A Python dict or collections.OrderedDict; both keep insertion order.</summary>
internal sealed class PyDict(bool ordered, PyKeyComparer comparer, int capacity = 0)
{
    // OrderedDictionary does not accept null keys, so Python's None key is stored as this sentinel.
    internal static readonly object NoneKey = new();

    private readonly OrderedDictionary<object, object?> items = new(capacity, comparer);

    public PyDict(bool ordered)
        : this(ordered, PyKeyComparer.Instance)
    {
    }

    public bool IsOrderedDict { get; } = ordered;

    public int Count => this.items.Count;

    public void Set(object? key, object? value) => this.items[key ?? NoneKey] = value;

    public bool TryGetValue(string key, out object? value) => this.items.TryGetValue(key, out value);

    public IEnumerable<KeyValuePair<object?, object?>> Items
    {
        get
        {
            foreach (var (k, v) in this.items)
            {
                yield return new KeyValuePair<object?, object?>(ReferenceEquals(k, NoneKey) ? null : k, v);
            }
        }
    }
}

internal enum GlobalKind
{
    OrderedDict,
    RebuildTensorV2,
    RebuildTensor,
    RebuildParameter,
    RebuildParameterWithState,
    StorageType,
    DTypeValue,
    Set,
    FrozenSet,
    CodecsEncode,
    TorchSize,
}

/// <summary>A global that passed the allow-list. It is only a tag: nothing is imported or called.</summary>
internal sealed record PyGlobal(string Module, string Name, GlobalKind Kind, DType? DType = null)
{
    public string FullName => $"{Module}.{Name}";
}

/// <summary>A storage record named by a persistent id ('storage', type, key, location, numel).</summary>
internal sealed record StorageRef(PyGlobal StorageType, DType DType, string Key, string Location, long Numel);

/// <summary>A strided view into a storage, as torch._utils._rebuild_tensor_v2 describes it.</summary>
internal sealed record TensorRef(StorageRef Storage, long Offset, long[] Size, long[] Stride);

/// <summary>
/// The work one unpickling may do, in units: one per opcode, one per value copied between containers, one
/// per value a key's hash or comparison visits (plus one per 32 characters of a string or 64 bytes of a
/// bytes or int value). A pickle can reuse one object many times through the memo, so without a budget a
/// few hundred bytes can ask for exponential hashing (a tuple of shared tuples) or quadratic copying
/// (OrderedDict(d) of a large memoized dict, again and again); the budget keeps the work linear in the size
/// of the pickle whatever it holds.
/// </summary>
internal sealed class PickleWork(long limit)
{
    public long Limit { get; } = limit;

    public long Used { get; private set; }

    /// <summary>The byte offset of the opcode being run, for the message.</summary>
    public int Position { get; set; }

    public void Charge(long units)
    {
        Used += units;
        if (Used > Limit)
        {
            throw new UnpicklingException(
                $"data.pkl at byte {Position}: needs more than {Limit} units of work, the budget for a pickle of its size " +
                "(it reuses shared objects to ask for far more hashing or copying than its bytes hold); refused.");
        }
    }
}

/// <summary>Python hashing semantics for the key types a checkpoint can use (str, int, float, bool, None, bytes, tuple).</summary>
/// <remarks>
/// Hashes are seeded per process (as .NET's string hashes are) and take all 64 bits of a number, so a file
/// cannot pick keys that collide; with a <see cref="PickleWork"/> every visited value is charged to it.
/// </remarks>
internal sealed class PyKeyComparer(PickleWork? work) : IEqualityComparer<object>
{
    /// <summary>A comparer that charges no budget, for lookups after a pickle was loaded.</summary>
    public static readonly PyKeyComparer Instance = new(null);

    private const int MaxTupleDepth = 32;

    public new bool Equals(object? x, object? y) => Eq(x, y, 0);

    public int GetHashCode(object obj) => Hash(obj, 0);

    private void Charge(object? value)
    {
        if (work is null)
        {
            return;
        }

        work.Charge(value switch
        {
            string s => 1 + (s.Length / 32),
            byte[] b => 1 + (b.Length / 64),
            BigInteger big => 1 + (big.GetByteCount() / 64),
            _ => 1,
        });
    }

    private bool Eq(object? x, object? y, int depth)
    {
        Charge(x);
        if (ReferenceEquals(x, y))
        {
            return true;
        }

        if (x is null || y is null)
        {
            return false;
        }

        if (IsNumber(x) && IsNumber(y))
        {
            return NumberEquals(x, y);
        }

        switch (x)
        {
            case string s:
                return y is string t && string.Equals(s, t, StringComparison.Ordinal);
            case byte[] a:
                return y is byte[] b && a.AsSpan().SequenceEqual(b);
            case PyTuple ta:
                if (y is not PyTuple tb || ta.Count != tb.Count)
                {
                    return false;
                }

                CheckDepth(depth);
                for (int i = 0; i < ta.Count; i++)
                {
                    if (!Eq(ta[i], tb[i], depth + 1))
                    {
                        return false;
                    }
                }

                return true;
            default:
                // Globals, storages and tensors hash by identity in Python too.
                return x is PyGlobal g && y is PyGlobal h && g == h;
        }
    }

    private int Hash(object obj, int depth)
    {
        Charge(obj);
        switch (obj)
        {
            case bool b:
                return HashInt64(b ? 1L : 0L);
            case long l:
                return HashInt64(l);
            case double d:
                return d == Math.Floor(d) && d >= long.MinValue && d < 9.2233720368547758E18 ? HashInt64((long)d) : HashInt64(BitConverter.DoubleToInt64Bits(d));
            case BigInteger big:
                if (big >= long.MinValue && big <= long.MaxValue)
                {
                    return HashInt64((long)big);
                }

                var bh = new HashCode();
                bh.AddBytes(big.ToByteArray());
                return bh.ToHashCode();
            case string s:
                return StringComparer.Ordinal.GetHashCode(s);
            case byte[] bytes:
                var hc = new HashCode();
                hc.AddBytes(bytes);
                return hc.ToHashCode();
            case PyTuple t:
                CheckDepth(depth);
                var th = new HashCode();
                foreach (object? item in t.Items)
                {
                    th.Add(item is null ? 0 : Hash(item, depth + 1));
                }

                return th.ToHashCode();
            case PyGlobal g:
                return g.GetHashCode();
            case StorageRef or TensorRef:
                return System.Runtime.CompilerServices.RuntimeHelpers.GetHashCode(obj);
            case var none when ReferenceEquals(none, PyDict.NoneKey):
                // Python's None as a dict key, which PyDict stores as this sentinel (it was refused as an unhashable Object).
                return 0;
            default:
                throw new UnpicklingException($"uses an unhashable {PickleDescribe.TypeName(obj)} as a dict key or set item.");
        }
    }

    // long.GetHashCode folds the two halves with XOR, so a file could choose many ints with one hash; a
    // seeded mix of both halves cannot be aimed at.
    private static int HashInt64(long value) => HashCode.Combine((int)value, (int)(value >> 32));

    private static void CheckDepth(int depth)
    {
        if (depth >= MaxTupleDepth)
        {
            throw new UnpicklingException($"uses a dict key nested more than {MaxTupleDepth} tuples deep.");
        }
    }

    private static bool IsNumber(object o) => o is bool or long or double or BigInteger;

    private static bool NumberEquals(object x, object y)
    {
        if (x is double || y is double)
        {
            return ToDouble(x) == ToDouble(y);
        }

        return ToBig(x) == ToBig(y);
    }

    private static double ToDouble(object o) => o switch
    {
        bool b => b ? 1 : 0,
        long l => l,
        double d => d,
        BigInteger big => (double)big,
        _ => double.NaN,
    };

    private static BigInteger ToBig(object o) => o switch
    {
        bool b => b ? 1 : 0,
        long l => l,
        BigInteger big => big,
        _ => BigInteger.Zero,
    };
}

internal static class PickleDescribe
{
    public static string TypeName(object? o) => o switch
    {
        null => "None",
        bool => "bool",
        long or BigInteger => "int",
        double => "float",
        string => "str",
        byte[] => "bytes",
        List<object?> => "list",
        PyTuple => "tuple",
        PyDict d => d.IsOrderedDict ? "OrderedDict" : "dict",
        PySet s => s.Frozen ? "frozenset" : "set",
        PyGlobal g => $"global '{g.FullName}'",
        StorageRef => "storage",
        TensorRef => "tensor",
        _ => o.GetType().Name,
    };
}
