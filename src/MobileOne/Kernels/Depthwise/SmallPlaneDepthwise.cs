using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace MobileOne.Kernels.Depthwise;

/// <summary>
/// The three depthwise passes at stride 1 on planes small enough that whole planes tile a 512-bit register (H * W
/// divides 16: 1x1, 2x2, 4x4, 2x4, ...), the 2x2 and 4x4 planes at the end of a network run on 32x32 images. In an
/// NCHW tensor the planes of consecutive channels of one image are consecutive, so one register holds 16 / (H * W)
/// whole planes and every 3x3 tap is a fixed lane permutation with a fixed zero mask for the padding: a tap is one
/// shuffle and one multiply-add, with no padded copies, border masks over rows or per-image copies, which cost the
/// padded-plane path (<see cref="DepthwiseConvolution"/>) 10 to 30 times the arithmetic on such planes.
/// </summary>
/// <remarks>
/// Branches are 3x3 with padding 1 or 1x1 without (MobileOne's scale branch). Channels are split across threads by
/// register groups and a weight gradient is one sum per channel over the batch in a fixed order, so results do not
/// depend on the thread count.
/// </remarks>
internal static unsafe class SmallPlaneDepthwise
{
    private const int Width = 16;
    private const int Taps = 9;
    private const int Centre = 4;

    /// <summary>
    /// Register groups done together, image by image: their coefficients or sums (4 x branches x 9 registers, about
    /// 12 KB for five branches) stay in L1 while the images stream past.
    /// </summary>
    private const int GroupBlock = 4;

    /// <summary>The caller thread's weight table (see <see cref="TapMajor"/>), kept between passes.</summary>
    [ThreadStatic]
    private static float[]? tapMajor;

    /// <summary>Whether the passes apply: stride 1, a plane that tiles the register, whole register groups of channels, every branch 3x3/pad 1 or 1x1/pad 0, and 512-bit vectors in hardware.</summary>
    public static bool Applies(int channels, int height, int width, int stride, DepthwiseBranch[] list, Func<DepthwiseBranch, int> padding)
    {
        int plane = height * width;
        if (!Avx512F.IsSupported || !Kernels.Lanes.Use512 || stride != 1 || plane == 0 || Width % plane != 0 || channels % (Width / plane) != 0)
        {
            return false;
        }

        foreach (var b in list)
        {
            int p = padding(b);
            if (!((b.KernelSize == 3 && p == 1) || (b.KernelSize == 1 && p == 0)))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Every branch: Activation[n, c] = Weight[c] (*) input[n, c].</summary>
    public static void Forward(float* input, int batch, int channels, int height, int width, DepthwiseBranch[] list)
    {
        var geometry = Geometry.For(height, width);
        int groups = channels / geometry.ChannelsPerVector, count = list.Length;
        var weights = TapMajor(list, channels);
        nint inp = (nint)input;
        ComputeThreads.For(Blocks(groups), (k0, k1) =>
        {
            // coef[(i * count + b) * Taps + t]: branch b's tap t for the block's i-th group, zero where the tap reads padding.
            var coef = stackalloc Vector512<float>[GroupBlock * count * Taps];
            var shifted = stackalloc Vector512<float>[Taps];
            var source = stackalloc Vector512<int>[Taps];
            geometry.Source.CopyTo(new Span<Vector512<int>>(source, Taps));
            fixed (float* wt = weights)
            {
                for (int k = k0; k < k1; k++)
                {
                    var (g0, g1) = (k * GroupBlock, Math.Min(groups, (k + 1) * GroupBlock));
                    for (int g = g0; g < g1; g++)
                    {
                        for (int b = 0; b < count; b++)
                        {
                            for (int t = 0; t < Taps; t++)
                            {
                                coef[((((g - g0) * count) + b) * Taps) + t] = geometry.Mask[t] * geometry.Expand(wt + TapRow(b, t, channels) + (g * geometry.ChannelsPerVector));
                            }
                        }
                    }

                    for (int n = 0; n < batch; n++)
                    {
                        for (int g = g0; g < g1; g++)
                        {
                            long at = (((long)n * channels) + (g * geometry.ChannelsPerVector)) * geometry.Plane;
                            Shift(Vector512.Load((float*)inp + at), source, shifted);
                            for (int b = 0; b < count; b++)
                            {
                                var c = coef + ((((g - g0) * count) + b) * Taps);
                                var acc = list[b].KernelSize == 1 ? c[Centre] * shifted[Centre] : Dot9(c, shifted);
                                acc.Store(list[b].Activation + at);
                            }
                        }
                    }
                }
            }
        });
    }

    /// <summary>gradInput = (accumulate ? gradInput : 0) + sum over branches of the transposed convolution of their output gradients.</summary>
    public static void BackwardInput(float* gradInput, bool accumulate, int batch, int channels, int height, int width, DepthwiseBranch[] list)
    {
        var geometry = Geometry.For(height, width);
        int groups = channels / geometry.ChannelsPerVector, count = list.Length;
        var weights = TapMajor(list, channels);
        nint gin = (nint)gradInput;
        ComputeThreads.For(Blocks(groups), (k0, k1) =>
        {
            // coef[((i * Taps) + t) * count + b]: branch b's tap t for the block's i-th group (zero for the other taps of a 1x1 branch).
            var coef = stackalloc Vector512<float>[GroupBlock * count * Taps];
            var dz = stackalloc Vector512<float>[count];
            var back = stackalloc Vector512<int>[Taps];
            var backMask = stackalloc Vector512<float>[Taps];
            geometry.Back.CopyTo(new Span<Vector512<int>>(back, Taps));
            geometry.BackMask.CopyTo(new Span<Vector512<float>>(backMask, Taps));
            fixed (float* wt = weights)
            {
                for (int k = k0; k < k1; k++)
                {
                    var (g0, g1) = (k * GroupBlock, Math.Min(groups, (k + 1) * GroupBlock));
                    for (int g = g0; g < g1; g++)
                    {
                        for (int t = 0; t < Taps; t++)
                        {
                            for (int b = 0; b < count; b++)
                            {
                                coef[((((g - g0) * Taps) + t) * count) + b] = geometry.Expand(wt + TapRow(b, t, channels) + (g * geometry.ChannelsPerVector));
                            }
                        }
                    }

                    for (int n = 0; n < batch; n++)
                    {
                        for (int g = g0; g < g1; g++)
                        {
                            long at = (((long)n * channels) + (g * geometry.ChannelsPerVector)) * geometry.Plane;
                            for (int b = 0; b < count; b++)
                            {
                                dz[b] = Vector512.Load(list[b].Activation + at);
                            }

                            var dx = accumulate ? Vector512.Load((float*)gin + at) : Vector512<float>.Zero;
                            for (int t = 0; t < Taps; t++)
                            {
                                // Output pixel p took input p + offset(t); its gradient goes back to that input pixel.
                                var c = coef + ((((g - g0) * Taps) + t) * count);
                                var u = c[0] * dz[0];
                                for (int b = 1; b < count; b++)
                                {
                                    u = Vector512.FusedMultiplyAdd(c[b], dz[b], u);
                                }

                                dx = t == Centre ? dx + u : Vector512.FusedMultiplyAdd(backMask[t], Avx512F.PermuteVar16x32(u, back[t]), dx);
                            }

                            dx.Store((float*)gin + at);
                        }
                    }
                }
            }
        });
    }

    /// <summary>Every branch: Weight (a gradient) += sum over images of input (*) Activation (the output gradient).</summary>
    public static void BackwardWeight(float* input, int batch, int channels, int height, int width, DepthwiseBranch[] list)
    {
        var geometry = Geometry.For(height, width);
        int groups = channels / geometry.ChannelsPerVector, count = list.Length;
        nint inp = (nint)input;
        ComputeThreads.For(Blocks(groups), (k0, k1) =>
        {
            // acc[(i * count + b) * Taps + t]: per-lane sums over the images, in image order.
            var acc = stackalloc Vector512<float>[GroupBlock * count * Taps];
            var shifted = stackalloc Vector512<float>[Taps];
            var source = stackalloc Vector512<int>[Taps];
            geometry.Source.CopyTo(new Span<Vector512<int>>(source, Taps));
            for (int k = k0; k < k1; k++)
            {
                var (g0, g1) = (k * GroupBlock, Math.Min(groups, (k + 1) * GroupBlock));
                new Span<Vector512<float>>(acc, GroupBlock * count * Taps).Clear();
                for (int n = 0; n < batch; n++)
                {
                    for (int g = g0; g < g1; g++)
                    {
                        long at = (((long)n * channels) + (g * geometry.ChannelsPerVector)) * geometry.Plane;
                        Shift(Vector512.Load((float*)inp + at), source, shifted);
                        for (int b = 0; b < count; b++)
                        {
                            var dy = Vector512.Load(list[b].Activation + at);
                            var a = acc + ((((g - g0) * count) + b) * Taps);
                            if (list[b].KernelSize == 1)
                            {
                                a[Centre] = Vector512.FusedMultiplyAdd(dy, shifted[Centre], a[Centre]);
                                continue;
                            }

                            Accumulate9(a, dy, shifted);
                        }
                    }
                }

                for (int g = g0; g < g1; g++)
                {
                    int c = g * geometry.ChannelsPerVector;
                    for (int b = 0; b < count; b++)
                    {
                        int kk = list[b].KernelSize * list[b].KernelSize;
                        for (int t = kk == 1 ? Centre : 0; t <= (kk == 1 ? Centre : Taps - 1); t++)
                        {
                            // Lanes whose tap falls in the padding read some other pixel: their products are dropped here.
                            var masked = acc[((((g - g0) * count) + b) * Taps) + t] * geometry.Mask[t];
                            for (int j = 0; j < geometry.ChannelsPerVector; j++)
                            {
                                float s = 0;
                                for (int p = 0; p < geometry.Plane; p++)
                                {
                                    s += masked.GetElement((j * geometry.Plane) + p);
                                }

                                list[b].Weight[((long)(c + j) * kk) + (kk == 1 ? 0 : t)] += s;
                            }
                        }
                    }
                }
            }
        });
    }

    /// <summary>Blocks of <see cref="GroupBlock"/> register groups: the unit of work of a thread.</summary>
    private static int Blocks(int groups) => (groups + GroupBlock - 1) / GroupBlock;

    /// <summary>shifted[t] = the input register as tap t reads it (lane permutation; padding lanes hold some other pixel).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Shift(Vector512<float> x, Vector512<int>* source, Vector512<float>* shifted)
    {
        shifted[0] = Avx512F.PermuteVar16x32(x, source[0]);
        shifted[1] = Avx512F.PermuteVar16x32(x, source[1]);
        shifted[2] = Avx512F.PermuteVar16x32(x, source[2]);
        shifted[3] = Avx512F.PermuteVar16x32(x, source[3]);
        shifted[4] = x;
        shifted[5] = Avx512F.PermuteVar16x32(x, source[5]);
        shifted[6] = Avx512F.PermuteVar16x32(x, source[6]);
        shifted[7] = Avx512F.PermuteVar16x32(x, source[7]);
        shifted[8] = Avx512F.PermuteVar16x32(x, source[8]);
    }

    /// <summary>The nine taps' products summed, centre first (written out: the JIT does not unroll loops).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Dot9(Vector512<float>* c, Vector512<float>* x)
    {
        var acc = c[4] * x[4];
        acc = Vector512.FusedMultiplyAdd(c[0], x[0], acc);
        acc = Vector512.FusedMultiplyAdd(c[1], x[1], acc);
        acc = Vector512.FusedMultiplyAdd(c[2], x[2], acc);
        acc = Vector512.FusedMultiplyAdd(c[3], x[3], acc);
        acc = Vector512.FusedMultiplyAdd(c[5], x[5], acc);
        acc = Vector512.FusedMultiplyAdd(c[6], x[6], acc);
        acc = Vector512.FusedMultiplyAdd(c[7], x[7], acc);
        return Vector512.FusedMultiplyAdd(c[8], x[8], acc);
    }

    /// <summary>acc[t] += dy * x[t] for the nine taps.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Accumulate9(Vector512<float>* acc, Vector512<float> dy, Vector512<float>* x)
    {
        acc[0] = Vector512.FusedMultiplyAdd(dy, x[0], acc[0]);
        acc[1] = Vector512.FusedMultiplyAdd(dy, x[1], acc[1]);
        acc[2] = Vector512.FusedMultiplyAdd(dy, x[2], acc[2]);
        acc[3] = Vector512.FusedMultiplyAdd(dy, x[3], acc[3]);
        acc[4] = Vector512.FusedMultiplyAdd(dy, x[4], acc[4]);
        acc[5] = Vector512.FusedMultiplyAdd(dy, x[5], acc[5]);
        acc[6] = Vector512.FusedMultiplyAdd(dy, x[6], acc[6]);
        acc[7] = Vector512.FusedMultiplyAdd(dy, x[7], acc[7]);
        acc[8] = Vector512.FusedMultiplyAdd(dy, x[8], acc[8]);
    }

    /// <summary>Row of tap t of branch b in <see cref="TapMajor"/>'s table.</summary>
    private static long TapRow(int b, int t, int channels) => ((long)(b * Taps) + t) * (channels + Width);

    /// <summary>
    /// The branches' weights laid out [branch][tap][channel] (a 1x1 branch in its centre row, its other rows zero),
    /// each row padded by a register so a group's load never leaves the table.
    /// </summary>
    private static float[] TapMajor(DepthwiseBranch[] list, int channels)
    {
        int size = list.Length * Taps * (channels + Width);
        if (tapMajor is null || tapMajor.Length < size)
        {
            tapMajor = new float[size];
        }

        var table = tapMajor;
        Array.Clear(table, 0, size);
        for (int b = 0; b < list.Length; b++)
        {
            int kk = list[b].KernelSize * list[b].KernelSize;
            for (int c = 0; c < channels; c++)
            {
                for (int t = 0; t < kk; t++)
                {
                    table[TapRow(b, kk == 1 ? Centre : t, channels) + c] = list[b].Weight[((long)c * kk) + t];
                }
            }
        }

        return table;
    }

    /// <summary>Lane permutations and masks of one plane size, built once per size.</summary>
    private sealed class Geometry
    {
        private static readonly System.Collections.Concurrent.ConcurrentDictionary<(int, int), Geometry> Cache = new();

        private readonly Vector512<int> channelOfLane;

        private Geometry(int height, int width)
        {
            Plane = height * width;
            ChannelsPerVector = Width / Plane;
            Source = new Vector512<int>[Taps];
            Mask = new Vector512<float>[Taps];
            Back = new Vector512<int>[Taps];
            BackMask = new Vector512<float>[Taps];
            Span<int> source = stackalloc int[Width], back = stackalloc int[Width], channel = stackalloc int[Width];
            Span<float> mask = stackalloc float[Width], backMask = stackalloc float[Width];
            for (int t = 0; t < Taps; t++)
            {
                int dy = (t / 3) - 1, dx = (t % 3) - 1;
                for (int lane = 0; lane < Width; lane++)
                {
                    int group = lane / Plane, y = lane % Plane / width, x = lane % Plane % width;
                    channel[lane] = group;

                    // Forward: output (y, x) reads input (y + dy, x + dx); backward: input (y, x) receives output (y - dy, x - dx).
                    bool reads = y + dy >= 0 && y + dy < height && x + dx >= 0 && x + dx < width;
                    source[lane] = reads ? (group * Plane) + ((y + dy) * width) + x + dx : lane;
                    mask[lane] = reads ? 1f : 0f;
                    bool receives = y - dy >= 0 && y - dy < height && x - dx >= 0 && x - dx < width;
                    back[lane] = receives ? (group * Plane) + ((y - dy) * width) + x - dx : lane;
                    backMask[lane] = receives ? 1f : 0f;
                }

                Source[t] = Vector512.Create<int>(source);
                Mask[t] = Vector512.Create<float>(mask);
                Back[t] = Vector512.Create<int>(back);
                BackMask[t] = Vector512.Create<float>(backMask);
            }

            channelOfLane = Vector512.Create<int>(channel);
        }

        /// <summary>Pixels per plane.</summary>
        public int Plane { get; }

        /// <summary>Whole planes (channels) per register.</summary>
        public int ChannelsPerVector { get; }

        /// <summary>Per tap, the lane of the input pixel each output lane reads (itself where the tap is padding).</summary>
        public Vector512<int>[] Source { get; }

        /// <summary>Per tap, 1 where the output lane's tap reads a pixel, 0 in the padding.</summary>
        public Vector512<float>[] Mask { get; }

        /// <summary>Per tap, the lane of the output pixel whose gradient each input lane receives.</summary>
        public Vector512<int>[] Back { get; }

        /// <summary>Per tap, 1 where the input lane receives a gradient through the tap, else 0.</summary>
        public Vector512<float>[] BackMask { get; }

        public static Geometry For(int height, int width) => Cache.GetOrAdd((height, width), k => new Geometry(k.Item1, k.Item2));

        /// <summary>The group's per-channel values (one per channel at <paramref name="values"/>) spread over each channel's plane lanes.</summary>
        public Vector512<float> Expand(float* values) => Avx512F.PermuteVar16x32(Vector512.Load(values), channelOfLane);
    }
}
