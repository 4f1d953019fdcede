namespace MobileOne.Kernels;

/// <summary>
/// One branch of a depthwise convolution pass: a weight [C, 1, k, k] and an NCHW plane set. In
/// <see cref="DepthwiseConvolution.Forward"/> <see cref="Weight"/> is read and <see cref="Activation"/> is the
/// output; in <see cref="DepthwiseConvolution.BackwardInput"/> both are read (Activation = output gradient); in
/// <see cref="DepthwiseConvolution.BackwardWeight"/> Activation is the output gradient and Weight receives the
/// accumulated weight gradient.
/// </summary>
public readonly unsafe struct DepthwiseBranch
{
    public DepthwiseBranch(float* weight, int kernelSize, float* activation)
    {
        Weight = weight;
        KernelSize = kernelSize;
        Activation = activation;
    }

    public float* Weight { get; }

    public int KernelSize { get; }

    public float* Activation { get; }
}

/// <summary>
/// Direct depthwise convolution (groups = channels), forward, input gradient and weight gradient, for several
/// branches that share one input (MobileOne's k 3x3 branches and its 1x1 scale branch) so each input plane is
/// padded once. The fast path covers 3x3 with padding 1 and 1x1 without padding, stride 1 or 2: a plane is
/// padded (stride 2: split into four row/column parity planes) so every tap is a constant offset and a plane is
/// one flat vector loop (<see cref="TapKernels"/>). The stride-2 input gradient correlates a zero-upsampled
/// output gradient. Other geometries take a plain scalar path. Planes (forward, input gradient) or channels
/// (weight gradient) are split across threads; each weight gradient is summed over images in order.
/// </summary>
public static unsafe class DepthwiseConvolution
{
    [ThreadStatic]
    private static float[]? sourceScratch;

    [ThreadStatic]
    private static float[]? planeScratch;

    [ThreadStatic]
    private static float[]? gradScratch;

    public static bool IsFast(int kernelSize, int stride, int padding) =>
        ((kernelSize == 3 && padding == 1) || (kernelSize == 1 && padding == 0)) && (stride == 1 || stride == 2);

    public static int OutputSize(int size, int kernelSize, int stride, int padding) => ((size + (2 * padding) - kernelSize) / stride) + 1;

    /// <summary>Every branch: Activation[n, c] = Weight[c] (*) input[n, c]. All branches share stride and output size.</summary>
    public static void Forward(float* input, int batch, int channels, int height, int width, int stride, int padding, ReadOnlySpan<DepthwiseBranch> branches)
    {
        var list = Check(branches, stride, padding);
        if (!IsFastSet(list, stride, padding))
        {
            ScalarForward(input, batch, channels, height, width, stride, padding, list);
            return;
        }

        var plan = new PlanePlan(height, width, stride);
        nint inp = (nint)input;
        ComputeThreads.For(batch * channels, (p0, p1) =>
        {
            float* src = Scratch(ref sourceScratch, plan.SourceSize);
            float* tmp = Scratch(ref planeScratch, plan.FlatLength);
            float** taps = stackalloc float*[9];
            float* w = stackalloc float[9];
            for (int p = p0; p < p1; p++)
            {
                int c = p % channels;
                plan.BuildSource((float*)inp + ((long)p * plan.InPlane), src);
                foreach (var b in list)
                {
                    int count = plan.Taps(src, b.KernelSize, taps);
                    LoadWeights(b.Weight + ((long)c * b.KernelSize * b.KernelSize), b.KernelSize, flip: false, w);
                    TapKernels.Correlate(taps, w, count, tmp, plan.FlatLength, accumulate: false);
                    plan.CopyOut(tmp, b.Activation + ((long)p * plan.OutPlane), accumulate: false);
                }
            }
        });
    }

    /// <summary>gradInput = (accumulate ? gradInput : 0) + sum over branches of the transposed convolution of their output gradients.</summary>
    public static void BackwardInput(float* gradInput, bool accumulate, int batch, int channels, int height, int width, int stride, int padding, ReadOnlySpan<DepthwiseBranch> branches)
    {
        var list = Check(branches, stride, padding);
        if (!IsFastSet(list, stride, padding))
        {
            ScalarBackwardInput(gradInput, accumulate, batch, channels, height, width, stride, padding, list);
            return;
        }

        // The input gradient is a stride-1 correlation of the (zero-upsampled, for stride 2) padded output gradient.
        var plan = new PlanePlan(height, width, 1);
        var outPlan = new PlanePlan(height, width, stride);
        nint gin = (nint)gradInput;
        ComputeThreads.For(batch * channels, (p0, p1) =>
        {
            float* up = Scratch(ref sourceScratch, plan.SourceSize);
            float* tmp = Scratch(ref planeScratch, plan.FlatLength);
            float** taps = stackalloc float*[9];
            float* w = stackalloc float[9];
            for (int p = p0; p < p1; p++)
            {
                int c = p % channels;
                for (int i = 0; i < list.Length; i++)
                {
                    var b = list[i];
                    plan.BuildUpsampled(b.Activation + ((long)p * outPlan.OutPlane), outPlan.OutHeight, outPlan.OutWidth, stride, up);
                    int count = plan.Taps(up, b.KernelSize, taps);
                    LoadWeights(b.Weight + ((long)c * b.KernelSize * b.KernelSize), b.KernelSize, flip: true, w);
                    TapKernels.Correlate(taps, w, count, tmp, plan.FlatLength, accumulate: i > 0);
                }

                plan.CopyOut(tmp, (float*)gin + ((long)p * plan.InPlane), accumulate);
            }
        });
    }

    /// <summary>Every branch: Weight (a gradient) += sum over images of input (*) Activation (the output gradient).</summary>
    public static void BackwardWeight(float* input, int batch, int channels, int height, int width, int stride, int padding, ReadOnlySpan<DepthwiseBranch> branches)
    {
        var list = Check(branches, stride, padding);
        if (!IsFastSet(list, stride, padding))
        {
            ScalarBackwardWeight(input, batch, channels, height, width, stride, padding, list);
            return;
        }

        var plan = new PlanePlan(height, width, stride);
        nint inp = (nint)input;
        ComputeThreads.For(channels, (c0, c1) =>
        {
            float* src = Scratch(ref sourceScratch, plan.SourceSize);
            float* grad = Scratch(ref gradScratch, plan.FlatLength);
            float** taps = stackalloc float*[9];
            float* sums = stackalloc float[9];
            double* totals = stackalloc double[9 * list.Length];
            for (int c = c0; c < c1; c++)
            {
                new Span<double>(totals, 9 * list.Length).Clear();
                for (int n = 0; n < batch; n++)
                {
                    long p = ((long)n * channels) + c;
                    plan.BuildSource((float*)inp + (p * plan.InPlane), src);
                    for (int i = 0; i < list.Length; i++)
                    {
                        var b = list[i];
                        int count = plan.Taps(src, b.KernelSize, taps);
                        plan.BuildGradient(b.Activation + (p * plan.OutPlane), grad);
                        TapKernels.Dot(grad, taps, count, plan.FlatLength, sums);
                        for (int t = 0; t < count; t++)
                        {
                            totals[(i * 9) + t] += sums[t];
                        }
                    }
                }

                for (int i = 0; i < list.Length; i++)
                {
                    var b = list[i];
                    int kk = b.KernelSize * b.KernelSize;
                    float* gw = b.Weight + ((long)c * kk);
                    for (int t = 0; t < kk; t++)
                    {
                        gw[t] += (float)totals[(i * 9) + t];
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

    /// <summary>Plane layout of the fast path for one input size and stride.</summary>
    private readonly struct PlanePlan
    {
        public PlanePlan(int height, int width, int stride)
        {
            Height = height;
            Width = width;
            Stride = stride;
            OutHeight = ((height - 1) / stride) + 1;
            OutWidth = ((width - 1) / stride) + 1;
            if (stride == 1)
            {
                RowStride = width + 2;
                SourceRows = height + 2;
                SourceSize = ((long)SourceRows * RowStride) + 2;
            }
            else
            {
                RowStride = (width + 3) / 2;
                SourceRows = ((height + 3) / 2) + 1;
                SourceSize = (4L * SourceRows * RowStride) + 2;
            }

            FlatLength = OutHeight * RowStride;
        }

        public int Height { get; }

        public int Width { get; }

        public int Stride { get; }

        public int OutHeight { get; }

        public int OutWidth { get; }

        /// <summary>Row stride of the padded source and of the flat output.</summary>
        public int RowStride { get; }

        /// <summary>Rows of the padded plane (stride 1) or of each parity plane (stride 2).</summary>
        public int SourceRows { get; }

        public long SourceSize { get; }

        public int FlatLength { get; }

        public int InPlane => Height * Width;

        public int OutPlane => OutHeight * OutWidth;

        /// <summary>Zero-padded copy of an input plane (stride 1), or its four parity planes (stride 2).</summary>
        public void BuildSource(float* plane, float* dst)
        {
            new Span<float>(dst, (int)SourceSize).Clear();
            int rs = RowStride;
            if (Stride == 1)
            {
                for (int y = 0; y < Height; y++)
                {
                    new ReadOnlySpan<float>(plane + ((long)y * Width), Width).CopyTo(new Span<float>(dst + ((y + 1) * rs) + 1, Width));
                }

                return;
            }

            long parity = (long)SourceRows * rs;
            for (int y = 0; y < Height; y++)
            {
                // Padded row y + 1 goes to parity plane (y + 1) & 1, row (y + 1) >> 1; padded column x + 1 likewise.
                int pr = (y + 1) & 1, row = (y + 1) >> 1;
                float* even = dst + ((2 * pr) * parity) + ((long)row * rs);
                float* odd = even + parity;
                float* s = plane + ((long)y * Width);
                for (int x = 0; x < Width; x++)
                {
                    int px = x + 1;
                    if ((px & 1) == 0)
                    {
                        even[px >> 1] = s[x];
                    }
                    else
                    {
                        odd[px >> 1] = s[x];
                    }
                }
            }
        }

        /// <summary>
        /// For the input gradient (a stride-1 plan over the input size): the output gradient placed at its
        /// stride positions inside a zero plane with a one-pixel border.
        /// </summary>
        public void BuildUpsampled(float* grad, int gradHeight, int gradWidth, int stride, float* dst)
        {
            new Span<float>(dst, (int)SourceSize).Clear();
            int rs = RowStride;
            for (int y = 0; y < gradHeight; y++)
            {
                float* d = dst + ((long)((stride * y) + 1) * rs) + 1;
                float* s = grad + ((long)y * gradWidth);
                if (stride == 1)
                {
                    new ReadOnlySpan<float>(s, gradWidth).CopyTo(new Span<float>(d, gradWidth));
                }
                else
                {
                    for (int x = 0; x < gradWidth; x++)
                    {
                        d[stride * x] = s[x];
                    }
                }
            }
        }

        /// <summary>An output-gradient plane laid out with the flat row stride, zeros in the extra columns.</summary>
        public void BuildGradient(float* grad, float* dst)
        {
            int rs = RowStride;
            for (int y = 0; y < OutHeight; y++)
            {
                float* d = dst + ((long)y * rs);
                new ReadOnlySpan<float>(grad + ((long)y * OutWidth), OutWidth).CopyTo(new Span<float>(d, OutWidth));
                new Span<float>(d + OutWidth, rs - OutWidth).Clear();
            }
        }

        /// <summary>Tap pointers of a 3x3 (nine) or 1x1 (the centre) window over a source built by this plan.</summary>
        public int Taps(float* src, int kernelSize, float** taps)
        {
            int rs = RowStride;
            long parity = (long)SourceRows * rs;
            if (kernelSize == 1)
            {
                taps[0] = Stride == 1 ? src + rs + 1 : src + (3 * parity);
                return 1;
            }

            for (int dy = 0; dy < 3; dy++)
            {
                for (int dx = 0; dx < 3; dx++)
                {
                    taps[(dy * 3) + dx] = Stride == 1
                        ? src + (dy * rs) + dx
                        : src + ((((dy & 1) * 2) + (dx & 1)) * parity) + ((dy >> 1) * rs) + (dx >> 1);
                }
            }

            return 9;
        }

        /// <summary>Valid columns of a flat output into a dense plane.</summary>
        public void CopyOut(float* flat, float* dst, bool accumulate)
        {
            int rs = RowStride;
            for (int y = 0; y < OutHeight; y++)
            {
                var s = new ReadOnlySpan<float>(flat + ((long)y * rs), OutWidth);
                var d = new Span<float>(dst + ((long)y * OutWidth), OutWidth);
                if (accumulate)
                {
                    Elementwise.Add(d, s);
                }
                else
                {
                    s.CopyTo(d);
                }
            }
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
