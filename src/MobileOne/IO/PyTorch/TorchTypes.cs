namespace MobileOne.IO.PyTorch;

/// <summary>The torch storage classes and dtype names that map onto <see cref="DType"/>.</summary>
internal static class TorchTypes
{
    private static readonly (string Storage, DType DType)[] Storages =
    [
        ("DoubleStorage", DType.F64),
        ("FloatStorage", DType.F32),
        ("HalfStorage", DType.F16),
        ("BFloat16Storage", DType.BF16),
        ("LongStorage", DType.I64),
        ("IntStorage", DType.I32),
        ("ShortStorage", DType.I16),
        ("CharStorage", DType.I8),
        ("ByteStorage", DType.U8),
        ("BoolStorage", DType.Bool),
    ];

    private static readonly Dictionary<string, DType> DTypeNames = new(StringComparer.Ordinal)
    {
        ["float64"] = DType.F64,
        ["double"] = DType.F64,
        ["float32"] = DType.F32,
        ["float"] = DType.F32,
        ["float16"] = DType.F16,
        ["half"] = DType.F16,
        ["bfloat16"] = DType.BF16,
        ["int64"] = DType.I64,
        ["long"] = DType.I64,
        ["int32"] = DType.I32,
        ["int"] = DType.I32,
        ["int16"] = DType.I16,
        ["short"] = DType.I16,
        ["int8"] = DType.I8,
        ["uint8"] = DType.U8,
        ["bool"] = DType.Bool,
    };

    public static string SupportedStorageNames => string.Join(", ", Storages.Select(s => "torch." + s.Storage));

    public static bool TryGetStorageDType(string storageName, out DType dtype)
    {
        foreach (var (name, d) in Storages)
        {
            if (name == storageName)
            {
                dtype = d;
                return true;
            }
        }

        dtype = default;
        return false;
    }

    public static string StorageName(DType dtype)
    {
        foreach (var (name, d) in Storages)
        {
            if (d == dtype)
            {
                return name;
            }
        }

        throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "No torch storage type for this dtype.");
    }

    public static bool TryGetDType(string dtypeName, out DType dtype) => DTypeNames.TryGetValue(dtypeName, out dtype);
}
