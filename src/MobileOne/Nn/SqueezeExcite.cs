using MobileOne.Kernels;
using MobileOne.Kernels.Gemm;
using MobileOne.Tensors;

namespace MobileOne.Nn;

/// <summary>
/// Squeeze-excite as MobileOne uses it: global mean, 1x1 conv (bias) to C/16, ReLU, 1x1 conv (bias) back
/// to C, sigmoid, channel-wise scale. timm names the convs fc1/fc2; Apple names them reduce/expand.
/// </summary>
/// <remarks>
/// The backward pass flows through both uses of the input: the scaled path (dx = dy * gate) and the gate path
/// (dgate = sum over pixels of dy * x, then sigmoid, fc2, ReLU, fc1 and the mean, which spreads dpooled / HW).
/// </remarks>
public sealed class SqueezeExcite : Module
{
    private readonly ActivationBuffer output = new();
    private readonly ActivationBuffer gradInput = new();
    private readonly ActivationBuffer pooled = new();
    private readonly ActivationBuffer hidden = new();
    private readonly ActivationBuffer gate = new();
    private readonly ActivationBuffer scratchC = new();
    private readonly ActivationBuffer scratchR = new();
    private Tensor? savedInput;

    /// <summary>Squeeze-excite over <paramref name="channels"/> reducing to <paramref name="reducedChannels"/> (zero weights).</summary>
    public SqueezeExcite(int channels, int reducedChannels)
    {
        Channels = channels;
        ReducedChannels = reducedChannels;
        Reduce = new Conv2d(channels, reducedChannels, 1, bias: true);
        Expand = new Conv2d(reducedChannels, channels, 1, bias: true);
    }

    /// <summary>The reduction both reference implementations use for MobileOne: int(C / 16).</summary>
    public static int DefaultReducedChannels(int channels) => Math.Max(1, channels / 16);

    /// <summary>Channels gated.</summary>
    public int Channels { get; }

    /// <summary>Channels of the bottleneck.</summary>
    public int ReducedChannels { get; }

    /// <summary>The 1x1 convolution to the bottleneck (timm's fc1, Apple's reduce).</summary>
    public Conv2d Reduce { get; }

    /// <summary>The 1x1 convolution back to the channels (timm's fc2, Apple's expand).</summary>
    public Conv2d Expand { get; }

    /// <summary>
    /// Excites an NCHW batch with the training kernels (packed GEMMs for both 1x1 convolutions). With gradients enabled
    /// the input and gate are kept for <see cref="Backward"/> and the output is owned by this layer; without, nothing is
    /// kept and the output is a fresh tensor.
    /// </summary>
    public Tensor Forward(Tensor input)
    {
        if (!GradEnabled)
        {
            return ForwardStateless(input, relu: false);
        }

        Shapes.RequireNchw(input, Channels, "squeeze-excite input");
        return ForwardTraining(input, input.Dim(0), input.Dim(2) * input.Dim(3));
    }

    /// <summary>The no-grad forward, optionally with the ReLU that follows it in a block fused into the scaling pass.</summary>
    internal Tensor ForwardStateless(Tensor input, bool relu)
    {
        Shapes.RequireNchw(input, Channels, "squeeze-excite input");
        int n = input.Dim(0), plane = input.Dim(2) * input.Dim(3);
        var y = Tensor.Uninitialized(input.Shape);
        Excite(input, n, plane, new float[n * Channels], new float[n * ReducedChannels], new float[n * Channels], y, relu);
        return y;
    }

    /// <summary>Gradients of both 1x1 convolutions for the last training Forward; returns the input gradient (owned by this layer).</summary>
    public unsafe Tensor Backward(Tensor gradOutput)
    {
        var x = savedInput ?? throw new InvalidOperationException("SqueezeExcite.Backward needs a Forward with gradients enabled first (call Train() or Eval(gradEnabled: true)).");
        if (!gradOutput.HasShape(x.Shape))
        {
            throw new ArgumentException($"Squeeze-excite output gradient must have shape {x.ShapeString}; got {gradOutput.ShapeString}.", nameof(gradOutput));
        }

        int n = x.Dim(0), plane = x.Dim(2) * x.Dim(3), c = Channels, r = ReducedChannels;
        var dx = gradInput.Get(x.Shape);
        float[] p = pooled.Get(n, c).Data, h = hidden.Get(n, r).Data, g = gate.Get(n, c).Data;
        float[] dGate = scratchC.Get(n, c).Data, dHidden = scratchR.Get(n, r).Data;
        fixed (float* dy = gradOutput.Data)
        fixed (float* xp = x.Data)
        fixed (float* dxp = dx.Data)
        fixed (float* gp = g)
        fixed (float* dg = dGate)
        fixed (float* hp = h)
        fixed (float* dh = dHidden)
        fixed (float* pp = p)
        fixed (float* w1 = Reduce.Weight.Value.Data)
        fixed (float* w2 = Expand.Weight.Value.Data)
        fixed (float* dw1 = Reduce.Weight.EnsureGrad().Data)
        fixed (float* dw2 = Expand.Weight.EnsureGrad().Data)
        {
            ActivationBackward.ScalePlanesBackward(dy, xp, gp, dxp, dg, n * c, plane);
            for (int i = 0; i < n * c; i++)
            {
                // Through the sigmoid: dz = dgate * g * (1 - g).
                dg[i] = dg[i] * gp[i] * (1f - gp[i]);
            }

            AddColumnSums(dGate, n, c, Expand.Bias!.EnsureGrad().Data);
            PackedSgemm.Multiply(RowMajor(dg, n, c).Transposed(), RowMajor(hp, n, r), RowMajor(dw2, c, r), accumulate: true);
            PackedSgemm.Multiply(RowMajor(dg, n, c), RowMajor(w2, c, r), RowMajor(dh, n, r), accumulate: false);
            for (int i = 0; i < n * r; i++)
            {
                if (!(hp[i] > 0f))
                {
                    dh[i] = 0f;
                }
            }

            AddColumnSums(dHidden, n, r, Reduce.Bias!.EnsureGrad().Data);
            PackedSgemm.Multiply(RowMajor(dh, n, r).Transposed(), RowMajor(pp, n, c), RowMajor(dw1, r, c), accumulate: true);

            // dpooled reuses the gate-gradient buffer: the mean spreads it evenly over each plane.
            PackedSgemm.Multiply(RowMajor(dh, n, r), RowMajor(w1, r, c), RowMajor(dg, n, c), accumulate: false);
            float inv = 1f / plane;
            for (int i = 0; i < n * c; i++)
            {
                Elementwise.AddScalar(new Span<float>(dxp + ((long)i * plane), plane), dg[i] * inv);
            }
        }

        return dx;
    }

    /// <inheritdoc/>
    public override IEnumerable<StateEntry> State(string prefix = "") =>
        Reduce.State(prefix + "fc1.").Concat(Expand.State(prefix + "fc2."));

    /// <inheritdoc/>
    public override IEnumerable<Module> Children() => [Reduce, Expand];

    /// <inheritdoc/>
    public override IEnumerable<NamedParameter> NamedParameters(string prefix = "") =>
        Reduce.NamedParameters(prefix + "fc1.").Concat(Expand.NamedParameters(prefix + "fc2."));

    /// <inheritdoc/>
    public override void ReleaseBuffers()
    {
        output.Release();
        gradInput.Release();
        pooled.Release();
        hidden.Release();
        gate.Release();
        scratchC.Release();
        scratchR.Release();
        savedInput = null;
        base.ReleaseBuffers();
    }

    private Tensor ForwardTraining(Tensor input, int n, int plane)
    {
        int c = Channels, r = ReducedChannels;
        var y = output.Get(input.Shape);
        Excite(input, n, plane, pooled.Get(n, c).Data, hidden.Get(n, r).Data, gate.Get(n, c).Data, y, relu: false);
        savedInput = input;
        return y;
    }

    /// <summary>y = input * sigmoid(fc2(ReLU(fc1(mean(input))))), leaving the pooled means, hidden units and gate in p, h, g.</summary>
    private unsafe void Excite(Tensor input, int n, int plane, float[] p, float[] h, float[] g, Tensor y, bool relu)
    {
        int c = Channels, r = ReducedChannels;
        Pooling.GlobalAverage(input.Data, p, n, c, plane);
        fixed (float* xp = input.Data)
        fixed (float* yp = y.Data)
        fixed (float* pp = p)
        fixed (float* hp = h)
        fixed (float* gp = g)
        fixed (float* w1 = Reduce.Weight.Value.Data)
        fixed (float* w2 = Expand.Weight.Value.Data)
        {
            PackedSgemm.Multiply(RowMajor(pp, n, c), RowMajor(w1, r, c).Transposed(), RowMajor(hp, n, r), accumulate: false);
            float[] b1 = Reduce.Bias!.Value.Data, b2 = Expand.Bias!.Value.Data;
            for (int i = 0; i < n; i++)
            {
                for (int j = 0; j < r; j++)
                {
                    hp[(i * r) + j] = MathF.Max(hp[(i * r) + j] + b1[j], 0f);
                }
            }

            PackedSgemm.Multiply(RowMajor(hp, n, r), RowMajor(w2, c, r).Transposed(), RowMajor(gp, n, c), accumulate: false);
            for (int i = 0; i < n; i++)
            {
                for (int j = 0; j < c; j++)
                {
                    gp[(i * c) + j] = Elementwise.Sigmoid(gp[(i * c) + j] + b2[j]);
                }
            }

            ActivationBackward.ScalePlanes(xp, gp, yp, n * c, plane, relu);
        }
    }

    private static unsafe MatrixView RowMajor(float* p, int rows, int cols) => MatrixView.RowMajor(p, rows, cols, cols);

    private static void AddColumnSums(float[] m, int rows, int cols, float[] target)
    {
        for (int j = 0; j < cols; j++)
        {
            double s = 0;
            for (int i = 0; i < rows; i++)
            {
                s += m[(i * cols) + j];
            }

            target[j] += (float)s;
        }
    }
}
