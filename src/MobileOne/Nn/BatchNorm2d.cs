using MobileOne.Kernels;
using MobileOne.Tensors;

namespace MobileOne.Nn;

/// <summary>BatchNorm2d with PyTorch's defaults: eps 1e-5, momentum 0.1, affine, tracked running statistics.</summary>
/// <remarks>
/// Training mode (PyTorch semantics): normalize with the batch mean and biased batch variance (sums in double);
/// running_mean and running_var move by <see cref="Momentum"/> toward the batch mean and the unbiased batch
/// variance; num_batches_tracked += 1. Eval mode normalizes with the running statistics. Backward works in both.
/// Besides Forward/Backward the layer exposes its per-channel affine form (<see cref="PrepareStatistics"/>,
/// <see cref="Scale"/>, <see cref="Shift"/>) and gradient coefficients (<see cref="PrepareGradient"/>) so a
/// caller that sums several BatchNorms (a MobileOne block) can fuse the passes.
/// </remarks>
public sealed class BatchNorm2d : Module
{
    /// <summary>PyTorch's default eps.</summary>
    public const float DefaultEps = 1e-5f;
    /// <summary>PyTorch's default momentum of the running statistics.</summary>
    public const float DefaultMomentum = 0.1f;

    private readonly ActivationBuffer output = new();
    private readonly ActivationBuffer gradInput = new();
    private readonly float[] mean;
    private readonly double[] invStd;
    private readonly double[] batchVariance;
    private readonly float[] scale;
    private readonly float[] shift;
    private readonly float[] k1;
    private readonly float[] meanDy;
    private readonly float[] k2;
    private readonly double[] stat0;
    private readonly double[] stat1;
    private Tensor? savedInput;
    private bool preparedInTraining;
    private long preparedCount;

    /// <summary>A BatchNorm over <paramref name="channels"/> with weight 1, bias 0, running mean 0 and variance 1.</summary>
    public BatchNorm2d(int channels)
    {
        Channels = channels;
        Weight = new Parameter(Tensor.Full(1f, channels));
        Bias = new Parameter(new Tensor(channels));
        RunningMean = new Tensor(channels);
        RunningVar = Tensor.Full(1f, channels);
        NumBatchesTracked = new Tensor([], [0f]);
        mean = Pinned(channels);
        invStd = new double[channels];
        batchVariance = new double[channels];
        scale = Pinned(channels);
        shift = Pinned(channels);
        k1 = Pinned(channels);
        meanDy = Pinned(channels);
        k2 = Pinned(channels);
        stat0 = GC.AllocateArray<double>(channels, pinned: true);
        stat1 = GC.AllocateArray<double>(channels, pinned: true);
    }

    /// <summary>Channels normalised.</summary>
    public int Channels { get; }

    /// <summary>Added to the variance before the square root.</summary>
    public float Eps { get; init; } = DefaultEps;

    /// <summary>Weight of a new batch in the running statistics.</summary>
    public float Momentum { get; init; } = DefaultMomentum;

    /// <summary>The affine scale (gamma).</summary>
    public Parameter Weight { get; }

    /// <summary>The affine shift (beta).</summary>
    public Parameter Bias { get; }

    /// <summary>Running mean (a buffer).</summary>
    public Tensor RunningMean { get; }

    /// <summary>Running unbiased variance (a buffer).</summary>
    public Tensor RunningVar { get; }

    /// <summary>Batches seen in training mode (a 0-d counter, I64 on disk).</summary>
    public Tensor NumBatchesTracked { get; }

    /// <summary>After <see cref="PrepareStatistics"/>: y = Scale[c] * x + Shift[c] is this layer's output.</summary>
    public ReadOnlySpan<float> Scale => scale;

    /// <summary>See <see cref="Scale"/>.</summary>
    public ReadOnlySpan<float> Shift => shift;

    /// <summary>The mean the last prepared forward normalized with (batch mean in training, running mean in eval).</summary>
    public ReadOnlySpan<float> NormalizationMean => mean;

    /// <summary>
    /// Gradient of the loss with respect to w, for a layer whose input is x = w * u (one weight per channel, e.g. a 1x1
    /// depthwise convolution) normalized in training mode, from <paramref name="sumDyCentered"/> = sum dy * (x - mean).
    /// BatchNorm is scale invariant up to eps, so this gradient is eps-small and the direct sum of dx * u is mostly
    /// float32 rounding; the identity dL/dw = gamma * S * eps / (w * (var + eps)^1.5) (S the sum above) gives it to double
    /// precision. Null in eval mode or for w = 0, where the identity does not apply.
    /// </summary>
    public double? ScaleInvariantWeightGradient(int channel, double sumDyCentered, double weight)
    {
        if (!preparedInTraining || weight == 0)
        {
            return null;
        }

        double v = batchVariance[channel] + Eps;
        return Weight.Value.Data[channel] * sumDyCentered * Eps / (weight * v * Math.Sqrt(v));
    }

    /// <summary>After <see cref="PrepareGradient"/>: dx = K1 * (dy - MeanDy) + K2 * (x - NormalizationMean).</summary>
    public ReadOnlySpan<float> K1 => k1;

    /// <summary>See <see cref="K1"/>.</summary>
    public ReadOnlySpan<float> MeanDy => meanDy;

    /// <summary>See <see cref="K1"/>.</summary>
    public ReadOnlySpan<float> K2 => k2;

    /// <summary>
    /// Normalizes an NCHW batch. In eval mode without gradients this is the stateless inference path; otherwise it
    /// prepares the statistics (training mode: batch statistics and a running-statistics update), keeps the input
    /// for <see cref="Backward"/> and returns a tensor this layer owns.
    /// </summary>
    public Tensor Forward(Tensor input)
    {
        Shapes.RequireNchw(input, Channels, "BatchNorm input");
        int batch = input.Dim(0), plane = input.Dim(2) * input.Dim(3);
        if (!GradEnabled)
        {
            // Stateless: the affine form of the running statistics goes to this call's arrays; the layer keeps nothing.
            var fresh = Tensor.Uninitialized(input.Shape);
            float[] s = new float[Channels], b = new float[Channels];
            RunningAffine(s, b);
            unsafe
            {
                fixed (float* x = input.Data)
                fixed (float* yp = fresh.Data)
                fixed (float* sp = s)
                fixed (float* bp = b)
                {
                    BatchNormTraining.Affine(x, yp, batch, Channels, plane, sp, bp);
                }
            }

            return fresh;
        }

        PrepareStatistics(input.Data, batch, plane);
        var y = output.Get(input.Shape);
        unsafe
        {
            fixed (float* x = input.Data)
            fixed (float* yp = y.Data)
            fixed (float* s = scale)
            fixed (float* b = shift)
            {
                BatchNormTraining.Affine(x, yp, batch, Channels, plane, s, b);
            }
        }

        savedInput = input;
        return y;
    }

    /// <summary>
    /// Computes the per-channel affine form of this layer for <paramref name="input"/> (NCHW, batch x Channels x plane):
    /// in training mode from the batch statistics, updating the running statistics and the batch counter; in eval
    /// mode from the running statistics.
    /// </summary>
    public unsafe void PrepareStatistics(ReadOnlySpan<float> input, int batch, int plane)
    {
        long count = (long)batch * plane;
        if (input.Length != count * Channels)
        {
            throw new ArgumentException($"BatchNorm input holds {input.Length} floats; expected {batch} x {Channels} x {plane}.", nameof(input));
        }

        if (Training)
        {
            if (count <= 1)
            {
                throw new ArgumentException($"Expected more than 1 value per channel when training, got input of {batch} x {Channels} x {plane}.");
            }

            fixed (float* x = input)
            fixed (double* m = stat0)
            fixed (double* v = stat1)
            {
                BatchNormTraining.Statistics(x, batch, Channels, plane, (long)Channels * plane, m, v);
            }

            PrepareFromMoments(stat0, stat1, count);
            return;
        }

        float[] rm = RunningMean.Data;
        for (int c = 0; c < Channels; c++)
        {
            mean[c] = rm[c];
            invStd[c] = RunningInvStd(c);
        }

        RunningAffine(scale, shift);
        preparedInTraining = false;
        preparedCount = count;
    }

    /// <summary>
    /// The training-mode part of <see cref="PrepareStatistics"/> from batch moments computed elsewhere (the mean and
    /// biased variance of each channel over <paramref name="count"/> values): affine form, running statistics, counter.
    /// A block whose branches share one input derives these moments without materializing the branch outputs.
    /// </summary>
    internal void PrepareFromMoments(ReadOnlySpan<double> batchMean, ReadOnlySpan<double> variance, long count)
    {
        if (!Training || count <= 1)
        {
            throw new InvalidOperationException($"Batch moments need training mode and more than 1 value per channel (got {count}).");
        }

        float[] rm = RunningMean.Data, rv = RunningVar.Data;
        double momentum = Momentum, unbias = (double)count / (count - 1);
        for (int c = 0; c < Channels; c++)
        {
            double mu = batchMean[c], v = variance[c];
            mean[c] = (float)mu;
            batchVariance[c] = v;
            (scale[c], shift[c], invStd[c]) = TrainingAffine(c, mu, v);
            rm[c] = (float)(((1 - momentum) * rm[c]) + (momentum * mu));
            rv[c] = (float)(((1 - momentum) * rv[c]) + (momentum * v * unbias));
        }

        NumBatchesTracked.Data[0] += 1;
        preparedInTraining = true;
        preparedCount = count;
    }

    /// <summary>
    /// The training-mode affine form of channel <paramref name="c"/> for a batch mean and biased variance, as
    /// <see cref="PrepareFromMoments"/> sets it: a pass that needs one channel's scale before every channel's moments
    /// exist computes it here, then hands all the moments to PrepareFromMoments, which gives the same values.
    /// </summary>
    internal (float Scale, float Shift, double InvStd) TrainingAffine(int c, double batchMean, double variance)
    {
        double inv = 1.0 / Math.Sqrt(variance + Eps);
        float gamma = Weight.Value.Data[c];
        return ((float)(gamma * inv), (float)(Bias.Value.Data[c] - (batchMean * gamma * inv)), inv);
    }

    /// <summary>1 / sqrt(batch variance + eps) of channel <paramref name="c"/> as last prepared.</summary>
    internal double InvStd(int c) => invStd[c];

    /// <summary>
    /// The eval-mode affine form y = scale[c] * x + shift[c] from the running statistics (computed in double, rounded
    /// once), written to caller-owned spans: nothing on the layer changes, so a no-grad forward can call it from any thread.
    /// </summary>
    public void RunningAffine(Span<float> scale, Span<float> shift)
    {
        if (scale.Length != Channels || shift.Length != Channels)
        {
            throw new ArgumentException($"BatchNorm affine coefficients must have {Channels} entries.");
        }

        float[] gamma = Weight.Value.Data, beta = Bias.Value.Data, rm = RunningMean.Data;
        for (int c = 0; c < Channels; c++)
        {
            double inv = RunningInvStd(c);
            scale[c] = (float)(gamma[c] * inv);
            shift[c] = (float)(beta[c] - (rm[c] * gamma[c] * inv));
        }
    }

    /// <summary>
    /// From the per-channel sums of a gradient dy over this layer's output (sum dy and sum dy * (x - NormalizationMean)),
    /// accumulates the weight and bias gradients and computes <see cref="K1"/>, <see cref="MeanDy"/>, <see cref="K2"/>.
    /// </summary>
    public void PrepareGradient(ReadOnlySpan<double> sumDy, ReadOnlySpan<double> sumDyCentered)
    {
        if (preparedCount == 0)
        {
            throw new InvalidOperationException("BatchNorm2d.Backward needs a Forward with gradients enabled first (call Train() or Eval(gradEnabled: true)).");
        }

        if (sumDy.Length != Channels || sumDyCentered.Length != Channels)
        {
            throw new ArgumentException($"BatchNorm gradient sums must have {Channels} entries.");
        }

        float[] gamma = Weight.Value.Data;
        float[] dGamma = Weight.EnsureGrad().Data, dBeta = Bias.EnsureGrad().Data;
        double count = preparedCount;
        for (int c = 0; c < Channels; c++)
        {
            double inv = invStd[c];
            double dotXhat = sumDyCentered[c] * inv;
            dGamma[c] += (float)dotXhat;
            dBeta[c] += (float)sumDy[c];
            double a = gamma[c] * inv;
            k1[c] = (float)a;
            if (preparedInTraining)
            {
                meanDy[c] = (float)(sumDy[c] / count);
                k2[c] = (float)(-a * inv * dotXhat / count);
            }
            else
            {
                meanDy[c] = 0f;
                k2[c] = 0f;
            }
        }
    }

    /// <summary>
    /// Accumulates the parameter gradients for the last Forward and returns the input gradient, a tensor this layer owns.
    /// </summary>
    public Tensor Backward(Tensor gradOutput)
    {
        var x = savedInput ?? throw new InvalidOperationException("BatchNorm2d.Backward needs a Forward with gradients enabled first (call Train() or Eval(gradEnabled: true)).");
        if (!gradOutput.HasShape(x.Shape))
        {
            throw new ArgumentException($"BatchNorm output gradient must have shape {x.ShapeString}; got {gradOutput.ShapeString}.", nameof(gradOutput));
        }

        int batch = x.Dim(0), plane = x.Dim(2) * x.Dim(3);
        var dx = gradInput.Get(x.Shape);
        unsafe
        {
            fixed (float* dy = gradOutput.Data)
            fixed (float* xp = x.Data)
            fixed (float* dxp = dx.Data)
            fixed (float* mu = mean)
            fixed (double* sd = stat0)
            fixed (double* sx = stat1)
            {
                BatchNormTraining.GradientSums(dy, [(nint)xp], mu, batch, Channels, plane, sd, sx);
                PrepareGradient(stat0, stat1);
                fixed (float* a = k1)
                fixed (float* md = meanDy)
                fixed (float* b = k2)
                {
                    BatchNormTraining.InputGradient(dy, xp, dxp, accumulate: false, batch, Channels, plane, a, md, b, mu);
                }
            }
        }

        return dx;
    }

    /// <inheritdoc/>
    public override IEnumerable<StateEntry> State(string prefix = "")
    {
        yield return new StateEntry(prefix + "weight", Weight.Value, StateKind.Parameter);
        yield return new StateEntry(prefix + "bias", Bias.Value, StateKind.Parameter);
        yield return new StateEntry(prefix + "running_mean", RunningMean, StateKind.Buffer);
        yield return new StateEntry(prefix + "running_var", RunningVar, StateKind.Buffer);
        yield return new StateEntry(prefix + "num_batches_tracked", NumBatchesTracked, StateKind.Counter);
    }

    /// <inheritdoc/>
    public override IEnumerable<NamedParameter> NamedParameters(string prefix = "")
    {
        yield return new NamedParameter(prefix + "weight", Weight);
        yield return new NamedParameter(prefix + "bias", Bias);
    }

    /// <inheritdoc/>
    public override void ReleaseBuffers()
    {
        output.Release();
        gradInput.Release();
        savedInput = null;
    }

    private double RunningInvStd(int c) => 1.0 / Math.Sqrt(RunningVar.Data[c] + (double)Eps);

    private static float[] Pinned(int length) => GC.AllocateArray<float>(length, pinned: true);
}
