using System.Runtime.Intrinsics;

namespace MobileOne.Kernels.Depthwise;

/// <summary>
/// One branch of a depthwise convolution pass: a weight [C, 1, k, k] and an NCHW plane set. In
/// <see cref="DepthwiseConvolution.Forward"/> <see cref="Weight"/> is read and <see cref="Activation"/> is the
/// output; in <see cref="DepthwiseConvolution.BackwardInput"/> both are read (Activation = output gradient); in
/// <see cref="DepthwiseConvolution.BackwardWeight"/> Activation is the output gradient and Weight receives the
/// accumulated weight gradient.
/// </summary>
public readonly unsafe struct DepthwiseBranch
{
    /// <summary>A branch over raw memory that must stay pinned for the pass: <paramref name="weight"/> [C, 1, k, k], k = <paramref name="kernelSize"/>, and <paramref name="activation"/>, the NCHW planes [N, C, Ho, Wo].</summary>
    public DepthwiseBranch(float* weight, int kernelSize, float* activation)
    {
        Weight = weight;
        KernelSize = kernelSize;
        Activation = activation;
    }

    /// <summary>The weight [C, 1, k, k], k * k floats per channel; in <see cref="DepthwiseConvolution.BackwardWeight"/> the weight gradient, added to (not overwritten).</summary>
    public float* Weight { get; }

    /// <summary>k of the square k x k kernel; 3 and 1 take the fast path (<see cref="DepthwiseConvolution.IsFast"/>), other sizes the scalar one.</summary>
    public int KernelSize { get; }

    /// <summary>This branch's NCHW planes [N, C, Ho, Wo]: written by the forward pass, read as the output gradient by the backward passes.</summary>
    public float* Activation { get; }
}

/// <summary>
/// Direct depthwise convolution (groups = channels), forward, input gradient and weight gradient, for several
/// branches that share one input (MobileOne's k 3x3 branches and its 1x1 scale branch) so each input plane is
/// padded once. The fast path covers 3x3 with padding 1 and 1x1 without padding, stride 1 or 2: the planes of a
/// channel are padded (stride 2: split into four row/column parity planes) and stacked over the batch, so every tap
/// is a constant offset and a channel is one flat vector loop (<see cref="TapKernels"/>). The stride-2 input
/// gradient is computed per row/column parity of the input (<see cref="TapKernels.ParityGradient"/>). Other
/// geometries take a plain scalar path. Channels are split across threads; each channel's weight gradient is one
/// sum over the batch, so results do not depend on the thread count.
/// </summary>
public static unsafe class DepthwiseConvolution
{
    [ThreadStatic]
    private static float[]? sourceScratch;

    [ThreadStatic]
    private static float[]? planeScratch;

    [ThreadStatic]
    private static float[]? gradScratch;

    /// <summary>Whether a branch with this kernel size, stride and padding takes the padded-plane vector path: 3x3 with padding 1 or 1x1 without, stride 1 or 2. Any other branch sends the whole pass to the scalar path.</summary>
    public static bool IsFast(int kernelSize, int stride, int padding) =>
        ((kernelSize == 3 && padding == 1) || (kernelSize == 1 && padding == 0)) && (stride == 1 || stride == 2);

    /// <summary>Output rows (or columns) of a pass over <paramref name="size"/> input rows (or columns): (size + 2 * padding - kernelSize) / stride + 1.</summary>
    public static int OutputSize(int size, int kernelSize, int stride, int padding) => ((size + (2 * padding) - kernelSize) / stride) + 1;

    /// <summary>Every branch: Activation[n, c] = Weight[c] (*) input[n, c]. All branches share stride and output size.</summary>
    public static void Forward(float* input, int batch, int channels, int height, int width, int stride, int padding, ReadOnlySpan<DepthwiseBranch> branches)
    {
        var list = Check(branches, stride, padding);
        if (SmallPlaneDepthwise.Applies(channels, height, width, stride, list, b => BranchPadding(b, list, padding)))
        {
            SmallPlaneDepthwise.Forward(input, batch, channels, height, width, list);
            return;
        }

        if (!IsFastSet(list, stride, padding))
        {
            ScalarForward(input, batch, channels, height, width, stride, padding, list);
            return;
        }

        var plan = new FastPlan(batch, channels, height, width, stride);
        nint inp = (nint)input;
        ComputeThreads.For(channels, (c0, c1) =>
        {
            float* src = Scratch(ref sourceScratch, plan.SourceSize);
            float* tmp = plan.Direct ? null : Scratch(ref planeScratch, plan.FlatLength);
            float** taps = stackalloc float*[9];
            float* w = stackalloc float[9];
            fixed (float* left = plan.Left)
            fixed (float* right = plan.Right)
            {
                for (int c = c0; c < c1; c++)
                {
                    plan.BuildSource((float*)inp, c, src);
                    foreach (var b in list)
                    {
                        LoadWeights(b.Weight + ((long)c * b.KernelSize * b.KernelSize), b.KernelSize, flip: false, w);
                        if (plan.Direct)
                        {
                            for (int n = 0; n < batch; n++)
                            {
                                int count = plan.Taps(src, n, b.KernelSize, taps);
                                TapKernels.CorrelateMasked(taps, w, count, left, right, plan.OutputPlane(b.Activation, n, c), plan.FlatLength, accumulate: false);
                            }
                        }
                        else
                        {
                            int count = plan.Taps(src, 0, b.KernelSize, taps);
                            TapKernels.CorrelateMasked(taps, w, count, left, right, tmp, plan.FlatLength, accumulate: false);
                            plan.Unstack(tmp, b.Activation, c, accumulate: false);
                        }
                    }
                }
            }
        });
    }

    /// <summary>gradInput = (accumulate ? gradInput : 0) + sum over branches of the transposed convolution of their output gradients.</summary>
    public static void BackwardInput(float* gradInput, bool accumulate, int batch, int channels, int height, int width, int stride, int padding, ReadOnlySpan<DepthwiseBranch> branches)
    {
        var list = Check(branches, stride, padding);
        if (SmallPlaneDepthwise.Applies(channels, height, width, stride, list, b => BranchPadding(b, list, padding)))
        {
            SmallPlaneDepthwise.BackwardInput(gradInput, accumulate, batch, channels, height, width, list);
            return;
        }

        if (!IsFastSet(list, stride, padding))
        {
            ScalarBackwardInput(gradInput, accumulate, batch, channels, height, width, stride, padding, list);
            return;
        }

        if (stride == 2)
        {
            BackwardInputByParity(gradInput, accumulate, batch, channels, height, width, list);
            return;
        }

        // The input gradient is a stride-1 correlation, with the flipped kernel, of the output gradient.
        var plan = new FastPlan(batch, channels, height, width, 1);
        nint gin = (nint)gradInput;
        ComputeThreads.For(channels, (c0, c1) =>
        {
            float* up = Scratch(ref sourceScratch, plan.SourceSize);
            float* tmp = plan.Direct ? null : Scratch(ref planeScratch, plan.FlatLength);
            float** taps = stackalloc float*[9];
            float* w = stackalloc float[9];
            fixed (float* left = plan.Left)
            fixed (float* right = plan.Right)
            {
                for (int c = c0; c < c1; c++)
                {
                    for (int i = 0; i < list.Length; i++)
                    {
                        var b = list[i];
                        plan.BuildGradient(b.Activation, c, up);
                        LoadWeights(b.Weight + ((long)c * b.KernelSize * b.KernelSize), b.KernelSize, flip: true, w);
                        bool add = i > 0 || (accumulate && plan.Direct);
                        if (plan.Direct)
                        {
                            for (int n = 0; n < batch; n++)
                            {
                                int count = plan.Taps(up, n, b.KernelSize, taps);
                                TapKernels.CorrelateMasked(taps, w, count, left, right, plan.OutputPlane((float*)gin, n, c), plan.FlatLength, add);
                            }
                        }
                        else
                        {
                            int count = plan.Taps(up, 0, b.KernelSize, taps);
                            TapKernels.CorrelateMasked(taps, w, count, left, right, tmp, plan.FlatLength, add);
                        }
                    }

                    if (!plan.Direct)
                    {
                        plan.Unstack(tmp, (float*)gin, c, accumulate);
                    }
                }
            }
        });
    }

    /// <summary>Floats of one parity chunk's buffers: enough images that small planes make long loops, few enough that the gradient and the four parity planes stay in L2.</summary>
    private const long ParityChunkFloats = 4096;

    /// <summary>
    /// The stride-2 input gradient (3x3/pad 1 and 1x1/pad 0 branches) split by the parity of the input row and column:
    /// each of the four parity planes is a fixed combination of at most four shifted output-gradient planes
    /// (<see cref="TapKernels.ParityGradient"/>), so the pass does the nine multiply-adds a 3x3 window has per output
    /// pixel, not nine per input pixel as a correlation of the zero-upsampled gradient would. The output gradient of
    /// a chunk of images is stacked with a zero column after each row and a zero row after each image (the taps that
    /// fall past the plane), and the planes are interleaved into the input gradient's rows at the end.
    /// </summary>
    private static void BackwardInputByParity(float* gradInput, bool accumulate, int batch, int channels, int height, int width, DepthwiseBranch[] list)
    {
        if (batch == 0)
        {
            return;
        }

        int gh = ((height - 1) / 2) + 1, gw = ((width - 1) / 2) + 1, rs = gw + 1;
        long imageStride = (long)(gh + 1) * rs, gradPlane = (long)gh * gw, inPlane = (long)height * width;
        int chunk = (int)Math.Clamp(ParityChunkFloats / imageStride, 1, batch);

        // The bottom-right taps of the chunk's last position read one float past its last image.
        long bufferFloats = (chunk * imageStride) + 1;

        // 3x3 branches first: the first one writes all four planes; a 1x1 branch reaches the even-even plane only.
        var ordered = list.OrderByDescending(b => b.KernelSize).ToArray();
        nint gin = (nint)gradInput;
        ComputeThreads.For(channels, (c0, c1) =>
        {
            float* g = Scratch(ref sourceScratch, bufferFloats);
            float* ee = Scratch(ref planeScratch, 4 * bufferFloats);
            float* eo = ee + bufferFloats, oe = eo + bufferFloats, oo = oe + bufferFloats;
            float* w = stackalloc float[9];
            for (int c = c0; c < c1; c++)
            {
                for (int n0 = 0; n0 < batch; n0 += chunk)
                {
                    int count = Math.Min(chunk, batch - n0);
                    int length = checked((int)(((count - 1) * imageStride) + (gh * rs)));
                    if (ordered[0].KernelSize != 3)
                    {
                        new Span<float>(eo, length).Clear();
                        new Span<float>(oe, length).Clear();
                        new Span<float>(oo, length).Clear();
                    }

                    for (int i = 0; i < ordered.Length; i++)
                    {
                        var b = ordered[i];
                        for (int k = 0; k < count; k++)
                        {
                            StackParityGradient(b.Activation + ((((long)(n0 + k) * channels) + c) * gradPlane), gh, gw, g + (k * imageStride));
                        }

                        g[count * imageStride] = 0f;
                        if (b.KernelSize == 3)
                        {
                            LoadWeights(b.Weight + ((long)c * 9), 3, flip: false, w);
                            TapKernels.ParityGradient(g, rs, w, ee, eo, oe, oo, length, accumulate: i > 0);
                        }
                        else
                        {
                            TapKernels.ParityScale(g, b.Weight[c], ee, length, accumulate: i > 0);
                        }
                    }

                    for (int k = 0; k < count; k++)
                    {
                        long at = k * imageStride;
                        float* dx = (float*)gin + ((((long)(n0 + k) * channels) + c) * inPlane);
                        for (int y = 0; y < height; y++)
                        {
                            // Row y = 2r + parity reads row r of the even-row planes (ee, eo) or of the odd-row ones (oe, oo).
                            long row = at + ((long)(y >> 1) * rs);
                            Interleave((y & 1) == 0 ? ee + row : oe + row, (y & 1) == 0 ? eo + row : oo + row, width, dx + ((long)y * width), accumulate);
                        }
                    }
                }
            }
        });
    }

    /// <summary>One image's gradient plane [gh, gw] into the parity layout: row stride gw + 1 with a zero after each row, then a zero row.</summary>
    private static void StackParityGradient(float* src, int gh, int gw, float* dst)
    {
        int rs = gw + 1;
        for (int r = 0; r < gh; r++, src += gw, dst += rs)
        {
            if (gw >= 16)
            {
                new ReadOnlySpan<float>(src, gw).CopyTo(new Span<float>(dst, gw));
            }
            else
            {
                // Small planes (the last stages at 32x32): a call per row would cost more than the copy.
                for (int x = 0; x < gw; x++)
                {
                    dst[x] = src[x];
                }
            }

            dst[gw] = 0f;
        }

        for (int x = 0; x < rs; x++)
        {
            dst[x] = 0f;
        }
    }

    /// <summary>row[2x] (+)= even[x], row[2x + 1] (+)= odd[x] for the <paramref name="width"/> positions of a row: the inverse of the forward pass's parity split.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    internal static void Interleave(float* even, float* odd, int width, float* row, bool accumulate)
    {
        int x = 0;
        if (Lanes.Use512)
        {
            var order = Vector512.Create(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15);
            for (; x + 16 <= width; x += 16)
            {
                var v = Vector512.Shuffle(Vector512.Create(Vector256.Load(even + (x >> 1)), Vector256.Load(odd + (x >> 1))), order);
                (accumulate ? v + Vector512.Load(row + x) : v).Store(row + x);
            }
        }
        else if (Lanes.Use256)
        {
            var order = Vector256.Create(0, 4, 1, 5, 2, 6, 3, 7);
            for (; x + 8 <= width; x += 8)
            {
                var v = Vector256.Shuffle(Vector256.Create(Vector128.Load(even + (x >> 1)), Vector128.Load(odd + (x >> 1))), order);
                (accumulate ? v + Vector256.Load(row + x) : v).Store(row + x);
            }
        }

        for (; x + 1 < width; x += 2)
        {
            row[x] = accumulate ? row[x] + even[x >> 1] : even[x >> 1];
            row[x + 1] = accumulate ? row[x + 1] + odd[x >> 1] : odd[x >> 1];
        }

        if (x < width)
        {
            row[x] = accumulate ? row[x] + even[x >> 1] : even[x >> 1];
        }
    }

    /// <summary>even[x] = row[2x], odd[x] = row[2x + 1] for the <paramref name="width"/> positions of a row (an odd width leaves the last odd entry as it was): the forward pass's parity split.</summary>
    internal static void Deinterleave(float* row, int width, float* even, float* odd)
    {
        int x = 0;
        if (Lanes.Use512)
        {
            var order = Vector512.Create(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
            for (; x + 16 <= width; x += 16)
            {
                var split = Vector512.Shuffle(Vector512.Load(row + x), order);
                split.GetLower().Store(even + (x >> 1));
                split.GetUpper().Store(odd + (x >> 1));
            }
        }

        for (; x + 1 < width; x += 2)
        {
            even[x >> 1] = row[x];
            odd[x >> 1] = row[x + 1];
        }

        if (x < width)
        {
            even[x >> 1] = row[x];
        }
    }

    /// <summary>Every branch: Weight (a gradient) += sum over images of input (*) Activation (the output gradient).</summary>
    public static void BackwardWeight(float* input, int batch, int channels, int height, int width, int stride, int padding, ReadOnlySpan<DepthwiseBranch> branches)
    {
        var list = Check(branches, stride, padding);
        if (SmallPlaneDepthwise.Applies(channels, height, width, stride, list, b => BranchPadding(b, list, padding)))
        {
            SmallPlaneDepthwise.BackwardWeight(input, batch, channels, height, width, list);
            return;
        }

        if (!IsFastSet(list, stride, padding))
        {
            ScalarBackwardWeight(input, batch, channels, height, width, stride, padding, list);
            return;
        }

        var plan = new FastPlan(batch, channels, height, width, stride);
        nint inp = (nint)input;
        ComputeThreads.For(channels, (c0, c1) =>
        {
            float* src = Scratch(ref sourceScratch, plan.SourceSize);
            float* grad = plan.Direct ? null : Scratch(ref gradScratch, plan.FlatLength);
            float** taps = stackalloc float*[9];
            float* sums = stackalloc float[9];
            double* totals = stackalloc double[9];
            fixed (float* left = plan.Left)
            fixed (float* right = plan.Right)
            {
                for (int c = c0; c < c1; c++)
                {
                    plan.BuildSource((float*)inp, c, src);
                    foreach (var b in list)
                    {
                        int count = b.KernelSize == 1 ? 1 : 9;
                        if (plan.Direct)
                        {
                            // Per-image sums, added in image order in double.
                            new Span<double>(totals, 9).Clear();
                            for (int n = 0; n < batch; n++)
                            {
                                plan.Taps(src, n, b.KernelSize, taps);
                                TapKernels.DotMasked(plan.OutputPlane(b.Activation, n, c), taps, count, left, right, plan.FlatLength, sums);
                                for (int t = 0; t < count; t++)
                                {
                                    totals[t] += sums[t];
                                }
                            }

                            for (int t = 0; t < count; t++)
                            {
                                sums[t] = (float)totals[t];
                            }
                        }
                        else
                        {
                            plan.Taps(src, 0, b.KernelSize, taps);
                            plan.Stack(b.Activation, c, grad);
                            TapKernels.DotMasked(grad, taps, count, left, right, plan.FlatLength, sums);
                        }

                        float* gw = b.Weight + ((long)c * count);
                        for (int t = 0; t < count; t++)
                        {
                            gw[t] += sums[t];
                        }
                    }
                }
            }
        });
    }

    private static DepthwiseBranch[] Check(ReadOnlySpan<DepthwiseBranch> branches, int stride, int padding)
    {
        if (branches.IsEmpty)
        {
            throw new ArgumentException("A depthwise pass needs at least one branch.", nameof(branches));
        }

        if (stride < 1 || padding < 0)
        {
            throw new ArgumentException($"Invalid depthwise stride {stride} or padding {padding}.");
        }

        foreach (var b in branches)
        {
            if (b.KernelSize < 1)
            {
                throw new ArgumentException($"Invalid depthwise kernel size {b.KernelSize}.", nameof(branches));
            }
        }

        return branches.ToArray();
    }

    /// <summary>
    /// The fast path needs every branch to be 3x3/pad 1 or 1x1/pad 0 under stride 1 or 2; a 1x1 branch listed
    /// beside 3x3 branches (MobileOne's scale branch) takes no padding and reads the centre tap.
    /// </summary>
    private static bool IsFastSet(DepthwiseBranch[] list, int stride, int padding)
    {
        foreach (var b in list)
        {
            if (!IsFast(b.KernelSize, stride, BranchPadding(b, list, padding)))
            {
                return false;
            }
        }

        return true;
    }

    private static void LoadWeights(float* src, int kernelSize, bool flip, float* w)
    {
        if (kernelSize == 1)
        {
            w[0] = src[0];
            return;
        }

        for (int t = 0; t < 9; t++)
        {
            w[t] = flip ? src[8 - t] : src[t];
        }
    }

    private static float* Scratch(ref float[]? cache, long size)
    {
        if (cache is null || cache.Length < size)
        {
            cache = GC.AllocateUninitializedArray<float>(checked((int)Math.Max(size, 64)), pinned: true);
        }

        // Pinned-heap arrays never move, so the address stays valid while the thread holds the array.
        return (float*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref cache[0]);
    }

    /// <summary>
    /// Layout of the fast path for one channel. Stride 1: each image's plane with a zero row above and below, stacked
    /// over the batch, row stride W; a 3x3 tap is a constant offset and the plane's first/last columns are masked for the
    /// left/right taps, so outputs come out dense. Stride 2: the plane split into row/column parity planes (even rows,
    /// odd rows after a zero row; even columns, odd columns) so stride-2 taps become unit-stride offsets; only the
    /// left taps need a mask. Planes of at least <see cref="DirectPlane"/> outputs are computed image by image straight
    /// into the destination; smaller ones (2x2 at the end of a 32x32 network) as one loop over the stacked batch, copied
    /// out per image.
    /// </summary>
    private sealed class FastPlan
    {
        public const int DirectPlane = 64;

        public FastPlan(int batch, int channels, int height, int width, int stride)
        {
            Batch = batch;
            Channels = channels;
            Height = height;
            Width = width;
            Stride = stride;
            OutHeight = ((height - 1) / stride) + 1;
            OutWidth = ((width - 1) / stride) + 1;
            RowStride = OutWidth;
            RowsPerImage = stride == 1 ? height + 2 : OutHeight + 1;
            ImageStride = (long)RowsPerImage * RowStride;
            PlaneStride = (batch * ImageStride) + 2;
            SourceSize = 2 + ((stride == 1 ? 1 : 4) * PlaneStride) + 2;
            Direct = OutPlane >= DirectPlane;
            FlatLength = checked((int)(Direct ? OutPlane : ((batch - 1) * ImageStride) + OutPlane));
            (Left, Right) = Masks.GetOrAdd((FlatLength, RowStride, stride == 1), BuildMasks);
        }

        /// <summary>Border masks depend only on the flat length and row stride: built once per geometry and shared.</summary>
        private static readonly System.Collections.Concurrent.ConcurrentDictionary<(int Length, int RowStride, bool Right), (float[] Left, float[]? Right)> Masks = new();

        private static (float[] Left, float[]? Right) BuildMasks((int Length, int RowStride, bool Right) key)
        {
            var left = new float[key.Length];
            var right = key.Right ? new float[key.Length] : null;
            for (int i = 0; i < key.Length; i++)
            {
                int x = i % key.RowStride;
                left[i] = x == 0 ? 0f : 1f;
                if (right is not null)
                {
                    right[i] = x == key.RowStride - 1 ? 0f : 1f;
                }
            }

            return (left, right);
        }

        public int Batch { get; }

        public int Channels { get; }

        public int Height { get; }

        public int Width { get; }

        public int Stride { get; }

        public int OutHeight { get; }

        public int OutWidth { get; }

        public int RowStride { get; }

        public int RowsPerImage { get; }

        public long ImageStride { get; }

        public long PlaneStride { get; }

        public long SourceSize { get; }

        public bool Direct { get; }

        /// <summary>Outputs per loop: one plane (direct) or the stacked batch including the gap rows.</summary>
        public int FlatLength { get; }

        public float[] Left { get; }

        public float[]? Right { get; }

        public int OutPlane => OutHeight * OutWidth;

        private long InPlane => (long)Height * Width;

        public float* OutputPlane(float* tensor, int n, int c) => tensor + ((((long)n * Channels) + c) * OutPlane);

        /// <summary>Channel c of every image in the source layout.</summary>
        public void BuildSource(float* input, int c, float* dst)
        {
            if (Stride == 1)
            {
                BuildRows(input, c, Height, Width, dst);
                return;
            }

            // Margins, then every position no input pixel lands on: rows past the input in each parity plane (the odd-row
            // planes' leading zero row included) and, for odd widths, the odd-column planes' last column.
            int rs = RowStride;
            new Span<float>(dst, 2).Clear();
            for (int q = 0; q < 4; q++)
            {
                new Span<float>(dst + 2 + (q * PlaneStride) + (Batch * ImageStride), 2).Clear();
            }

            for (int n = 0; n < Batch; n++)
            {
                float* plane = input + ((((long)n * Channels) + c) * InPlane);
                for (int q = 0; q < 4; q++)
                {
                    float* image = dst + 2 + (q * PlaneStride) + (n * ImageStride);
                    bool oddRows = q >= 2;
                    for (int r = 0; r < RowsPerImage; r++)
                    {
                        int y = oddRows ? (2 * r) - 1 : 2 * r;
                        if (y < 0 || y >= Height)
                        {
                            new Span<float>(image + ((long)r * rs), rs).Clear();
                        }
                        else if ((q & 1) == 1 && (Width & 1) == 1)
                        {
                            image[((long)r * rs) + rs - 1] = 0f;
                        }
                    }
                }

                for (int y = 0; y < Height; y++)
                {
                    // Even input rows fill the even-row planes at y / 2; odd rows the odd-row planes (after their zero row) at (y + 1) / 2.
                    int rowParity = y & 1, r = rowParity == 0 ? y >> 1 : (y + 1) >> 1;
                    float* even = dst + 2 + (2 * rowParity * PlaneStride) + (n * ImageStride) + ((long)r * rs);
                    Deinterleave(plane + ((long)y * Width), Width, even, even + PlaneStride);
                }
            }
        }

        /// <summary>For the stride-1 input gradient: channel c of the output gradient of every image, in the source layout.</summary>
        public void BuildGradient(float* grad, int c, float* dst) => BuildRows(grad, c, Height, Width, dst);

        /// <summary>Tap pointers of a 3x3 (nine) or 1x1 (the centre) window for image n's outputs.</summary>
        public int Taps(float* src, int n, int kernelSize, float** taps)
        {
            int rs = RowStride;
            float* origin = src + 2 + (n * ImageStride);
            if (Stride == 1)
            {
                origin += rs;
                if (kernelSize == 1)
                {
                    taps[0] = origin;
                    return 1;
                }

                for (int dy = 0; dy < 3; dy++)
                {
                    for (int dx = 0; dx < 3; dx++)
                    {
                        taps[(dy * 3) + dx] = origin + ((dy - 1) * rs) + (dx - 1);
                    }
                }

                return 9;
            }

            if (kernelSize == 1)
            {
                taps[0] = origin;
                return 1;
            }

            for (int dy = 0; dy < 3; dy++)
            {
                for (int dx = 0; dx < 3; dx++)
                {
                    // Row 2y + dy - 1: dy = 1 even rows; dy = 0 / 2 odd rows at y / y + 1. Column 2x + dx - 1 likewise.
                    int q = ((dy == 1 ? 0 : 1) * 2) + (dx == 1 ? 0 : 1);
                    taps[(dy * 3) + dx] = origin + (q * PlaneStride) + ((dy == 2 ? 1 : 0) * rs) + (dx == 0 ? -1 : 0);
                }
            }

            return 9;
        }

        /// <summary>Stacked flat outputs into channel c of a dense NCHW tensor.</summary>
        public void Unstack(float* flat, float* dst, int c, bool accumulate)
        {
            int plane = OutPlane;
            for (int n = 0; n < Batch; n++)
            {
                float* s = flat + (n * ImageStride);
                float* d = OutputPlane(dst, n, c);
                for (int i = 0; i < plane; i++)
                {
                    d[i] = accumulate ? d[i] + s[i] : s[i];
                }
            }
        }

        /// <summary>Channel c of an output gradient in the stacked flat layout, zeros in the gap rows.</summary>
        public void Stack(float* grad, int c, float* flat)
        {
            new Span<float>(flat, FlatLength).Clear();
            int plane = OutPlane;
            for (int n = 0; n < Batch; n++)
            {
                new ReadOnlySpan<float>(OutputPlane(grad, n, c), plane).CopyTo(new Span<float>(flat + (n * ImageStride), plane));
            }
        }

        /// <summary>Stride-1 source: each plane (rows x cols = RowStride) between a zero row above and below.</summary>
        private void BuildRows(float* tensor, int c, int rows, int cols, float* dst)
        {
            long plane = (long)rows * cols;
            new Span<float>(dst, 2).Clear();
            for (int n = 0; n < Batch; n++)
            {
                float* block = dst + 2 + (n * ImageStride);
                new Span<float>(block, RowStride).Clear();
                new ReadOnlySpan<float>(tensor + ((((long)n * Channels) + c) * plane), (int)plane).CopyTo(new Span<float>(block + RowStride, (int)plane));
                new Span<float>(block + RowStride + plane, RowStride).Clear();
            }

            new Span<float>(dst + 2 + (Batch * ImageStride), 2).Clear();
        }
    }

    private static void ScalarForward(float* input, int batch, int channels, int height, int width, int stride, int padding, DepthwiseBranch[] list)
    {
        nint inp = (nint)input;
        ComputeThreads.For(batch * channels, (p0, p1) =>
        {
            for (int p = p0; p < p1; p++)
            {
                int c = p % channels;
                float* src = (float*)inp + ((long)p * height * width);
                foreach (var b in list)
                {
                    int k = b.KernelSize, pad = BranchPadding(b, list, padding);
                    int ho = OutputSize(height, k, stride, pad), wo = OutputSize(width, k, stride, pad);
                    float* w = b.Weight + ((long)c * k * k);
                    float* dst = b.Activation + ((long)p * ho * wo);
                    for (int oy = 0; oy < ho; oy++)
                    {
                        for (int ox = 0; ox < wo; ox++)
                        {
                            float s = 0f;
                            for (int ky = 0; ky < k; ky++)
                            {
                                int iy = (oy * stride) - pad + ky;
                                if ((uint)iy >= (uint)height)
                                {
                                    continue;
                                }

                                for (int kx = 0; kx < k; kx++)
                                {
                                    int ix = (ox * stride) - pad + kx;
                                    if ((uint)ix < (uint)width)
                                    {
                                        s = MathF.FusedMultiplyAdd(w[(ky * k) + kx], src[(iy * width) + ix], s);
                                    }
                                }
                            }

                            dst[(oy * wo) + ox] = s;
                        }
                    }
                }
            }
        });
    }

    private static void ScalarBackwardInput(float* gradInput, bool accumulate, int batch, int channels, int height, int width, int stride, int padding, DepthwiseBranch[] list)
    {
        nint gin = (nint)gradInput;
        ComputeThreads.For(batch * channels, (p0, p1) =>
        {
            for (int p = p0; p < p1; p++)
            {
                int c = p % channels;
                float* dst = (float*)gin + ((long)p * height * width);
                if (!accumulate)
                {
                    new Span<float>(dst, height * width).Clear();
                }

                foreach (var b in list)
                {
                    int k = b.KernelSize, pad = BranchPadding(b, list, padding);
                    int ho = OutputSize(height, k, stride, pad), wo = OutputSize(width, k, stride, pad);
                    float* w = b.Weight + ((long)c * k * k);
                    float* g = b.Activation + ((long)p * ho * wo);
                    for (int oy = 0; oy < ho; oy++)
                    {
                        for (int ox = 0; ox < wo; ox++)
                        {
                            float go = g[(oy * wo) + ox];
                            for (int ky = 0; ky < k; ky++)
                            {
                                int iy = (oy * stride) - pad + ky;
                                if ((uint)iy >= (uint)height)
                                {
                                    continue;
                                }

                                for (int kx = 0; kx < k; kx++)
                                {
                                    int ix = (ox * stride) - pad + kx;
                                    if ((uint)ix < (uint)width)
                                    {
                                        dst[(iy * width) + ix] = MathF.FusedMultiplyAdd(w[(ky * k) + kx], go, dst[(iy * width) + ix]);
                                    }
                                }
                            }
                        }
                    }
                }
            }
        });
    }

    private static void ScalarBackwardWeight(float* input, int batch, int channels, int height, int width, int stride, int padding, DepthwiseBranch[] list)
    {
        nint inp = (nint)input;
        ComputeThreads.For(channels, (c0, c1) =>
        {
            for (int c = c0; c < c1; c++)
            {
                foreach (var b in list)
                {
                    int k = b.KernelSize, pad = BranchPadding(b, list, padding);
                    int ho = OutputSize(height, k, stride, pad), wo = OutputSize(width, k, stride, pad);
                    float* gw = b.Weight + ((long)c * k * k);
                    for (int ky = 0; ky < k; ky++)
                    {
                        for (int kx = 0; kx < k; kx++)
                        {
                            double s = 0;
                            for (int n = 0; n < batch; n++)
                            {
                                long p = ((long)n * channels) + c;
                                float* src = (float*)inp + (p * height * width);
                                float* g = b.Activation + (p * ho * wo);
                                for (int oy = 0; oy < ho; oy++)
                                {
                                    int iy = (oy * stride) - pad + ky;
                                    if ((uint)iy >= (uint)height)
                                    {
                                        continue;
                                    }

                                    for (int ox = 0; ox < wo; ox++)
                                    {
                                        int ix = (ox * stride) - pad + kx;
                                        if ((uint)ix < (uint)width)
                                        {
                                            s += (double)g[(oy * wo) + ox] * src[(iy * width) + ix];
                                        }
                                    }
                                }
                            }

                            gw[(ky * k) + kx] += (float)s;
                        }
                    }
                }
            }
        });
    }

    /// <summary>A 1x1 branch among k x k branches has no padding; otherwise every branch uses the given one.</summary>
    private static int BranchPadding(DepthwiseBranch b, DepthwiseBranch[] list, int padding) =>
        b.KernelSize == 1 && list.Any(o => o.KernelSize > 1) ? 0 : padding;
}
