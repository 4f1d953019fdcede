using System.Runtime.CompilerServices;

namespace MobileOne.Kernels.Conv;

/// <summary>
/// Zeroed floats on the pinned object heap with a 64-byte-aligned start, so packed weights can be read
/// through a raw pointer for the kernel's lifetime without fixed blocks or a Dispose.
/// </summary>
internal sealed unsafe class PinnedBuffer
{
    private const int AlignFloats = 16;
    private readonly float[] storage;

    public PinnedBuffer(long length)
    {
        if (length > Array.MaxLength - AlignFloats)
        {
            throw new ArgumentException($"Packed weights of {length} floats exceed the largest array .NET allows.");
        }

        Length = length;
        storage = GC.AllocateArray<float>((int)length + AlignFloats, pinned: true);
        nint address = (nint)Unsafe.AsPointer(ref storage[0]);
        nint aligned = (address + 63) & ~(nint)63;
        Pointer = (float*)aligned;
    }

    public float* Pointer { get; }

    public long Length { get; }

    public Span<float> Span => new(Pointer, (int)Length);
}
