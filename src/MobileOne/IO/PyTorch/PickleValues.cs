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

internal sealed class PySet(bool frozen)
{
    public bool Frozen { get; } = frozen;

    public List<object?> Items { get; } = [];
}

/// <summary>A Python dict or collections.OrderedDict; both keep insertion order.</summary>
internal sealed class PyDict(bool ordered)
{
    // OrderedDictionary does not accept null keys, so Python's None key is stored as this sentinel.
    private static readonly object NoneKey = new();

    private readonly OrderedDictionary<object, object?> _items = new(PyKeyComparer.Instance);

    public bool IsOrderedDict { get; } = ordered;

    public int Count => _items.Count;

    public void Set(object? key, object? value) => _items[key ?? NoneKey] = value;

    public bool TryGetValue(string key, out object? value) => _items.TryGetValue(key, out value);

    public IEnumerable<KeyValuePair<object?, object?>> Items
    {
        get
        {
            foreach (var (k, v) in _items)
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

/// <summary>Python hashing semantics for the key types a checkpoint can use (str, int, float, bool, None, bytes, tuple).</summary>
internal sealed class PyKeyComparer : IEqualityComparer<object>
{
    public static readonly PyKeyComparer Instance = new();

    private const int MaxTupleDepth = 32;

    public new bool Equals(object? x, object? y) => Eq(x, y, 0);

    public int GetHashCode(object obj) => Hash(obj, 0);

    private static bool Eq(object? x, object? y, int depth)
    {
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

    private static int Hash(object obj, int depth)
    {
        switch (obj)
        {
            case bool b:
                return (b ? 1L : 0L).GetHashCode();
            case long l:
                return l.GetHashCode();
            case double d:
                return d == Math.Floor(d) && d >= long.MinValue && d < 9.2233720368547758E18 ? ((long)d).GetHashCode() : d.GetHashCode();
            case BigInteger big:
                return big >= long.MinValue && big <= long.MaxValue ? ((long)big).GetHashCode() : big.GetHashCode();
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
            default:
                throw new UnpicklingException($"uses an unhashable {PickleDescribe.TypeName(obj)} as a dict key or set item.");
        }
    }

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
