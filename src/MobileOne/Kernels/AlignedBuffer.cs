namespace MobileOne.Kernels;

/// <summary>
/// Zeroed float storage whose first element sits on a 64-byte boundary (one cache line, one zmm register): packed
/// weights of every kernel family and the engine's arena. It lives on the pinned object heap: the pointer stays
/// valid for as long as this object is reachable, so a buffer can never be freed under a kernel that still runs
/// (no use-after-free when a model is disposed while another thread is inside Run), and nothing has to be
/// released by hand (no fixed blocks, no Dispose).
/// </summary>
internal sealed unsafe class AlignedBuffer
{
    private const int AlignFloats = 16;

    private readonly float[] storage;

    public AlignedBuffer(long floats)
    {
        if (floats < 0 || floats > Array.MaxLength - AlignFloats)
        {
            throw new ArgumentOutOfRangeException(nameof(floats), floats, $"An aligned buffer holds at most {Array.MaxLength - AlignFloats} floats.");
        }

        storage = GC.AllocateArray<float>((int)floats + AlignFloats, pinned: true);
        fixed (float* p = storage)
        {
            nint misalign = (nint)p & 63;
            Pointer = misalign == 0 ? p : (float*)((byte*)p + (64 - misalign));
        }

        Length = floats;
    }

    public float* Pointer { get; }

    public long Length { get; }

    public Span<float> AsSpan() => new(Pointer, checked((int)Length));

    /// <summary>Rounds a float count up to whole cache lines so regions carved from one buffer stay aligned.</summary>
    public static long RoundUp(long floats) => (floats + AlignFloats - 1) / AlignFloats * AlignFloats;
}
