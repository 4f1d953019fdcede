using MobileOne.Kernels;
using MobileOne.Kernels.Gemm;
using MobileOne.Tensors;

namespace MobileOne.Nn;

/// <summary>Fully connected layer with PyTorch's [out, in] weight layout.</summary>
public sealed class Linear : Module
{
    private readonly ActivationBuffer output = new();
    private readonly ActivationBuffer gradInput = new();
    private Tensor? savedInput;

    /// <summary>A fully connected layer with zero weights and bias.</summary>
    public Linear(int inFeatures, int outFeatures)
    {
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        Weight = new Parameter(new Tensor(outFeatures, inFeatures));
        Bias = new Parameter(new Tensor(outFeatures));
    }

    /// <summary>A fully connected layer whose parameters hold <paramref name="weight"/> [out, in] and <paramref name="bias"/> [out] themselves, not copies.</summary>
    internal Linear(int inFeatures, int outFeatures, float[] weight, float[] bias)
    {
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        Weight = new Parameter(new Tensor([outFeatures, inFeatures], weight));
        Bias = new Parameter(new Tensor([outFeatures], bias));
    }

    /// <summary>Input features.</summary>
    public int InFeatures { get; }

    /// <summary>Output features.</summary>
    public int OutFeatures { get; }

    /// <summary>Weights [out, in].</summary>
    public Parameter Weight { get; }

    /// <summary>Bias [out].</summary>
    public Parameter Bias { get; }

    /// <summary>
    /// y = x W^T + b for x [N, in], one packed GEMM. With gradients enabled the input is kept and the output is owned by
    /// this layer; without, nothing is kept and the output is a fresh tensor.
    /// </summary>
    public Tensor Forward(Tensor input)
    {
        if (input.Rank != 2 || input.Dim(1) != InFeatures)
        {
            throw new ArgumentException($"Linear layer expects [N, {InFeatures}], got {input.ShapeString}.", nameof(input));
        }

        int n = input.Dim(0);
        if (!GradEnabled)
        {
            var fresh = Tensor.Uninitialized(n, OutFeatures);
            Affine(input, fresh);
            return fresh;
        }

        var y = output.Get(n, OutFeatures);
        Affine(input, y);
        savedInput = input;
        return y;
    }

    private void Affine(Tensor input, Tensor y)
    {
        int n = input.Dim(0);
        unsafe
        {
            fixed (float* x = input.Data)
            fixed (float* w = Weight.Value.Data)
            fixed (float* yp = y.Data)
            {
                PackedSgemm.Multiply(
                    MatrixView.RowMajor(x, n, InFeatures, InFeatures),
                    MatrixView.RowMajor(w, OutFeatures, InFeatures, InFeatures).Transposed(),
                    MatrixView.RowMajor(yp, n, OutFeatures, OutFeatures),
                    accumulate: false);
            }
        }

        float[] b = Bias.Value.Data;
        for (int i = 0; i < n; i++)
        {
            Elementwise.Add(y.Data.AsSpan(i * OutFeatures, OutFeatures), b);
        }
    }

    /// <summary>Accumulates dW += dy^T x and db += sum dy; returns dx = dy W (owned by this layer), or null when not asked for.</summary>
    public Tensor? Backward(Tensor gradOutput, bool inputGradient = true)
    {
        var x = savedInput ?? throw new InvalidOperationException("Linear.Backward needs a Forward with gradients enabled first (call Train() or Eval(gradEnabled: true)).");
        int n = x.Dim(0);
        if (!gradOutput.HasShape(n, OutFeatures))
        {
            throw new ArgumentException($"Linear output gradient must have shape [{n}, {OutFeatures}]; got {gradOutput.ShapeString}.", nameof(gradOutput));
        }

        var dx = inputGradient ? gradInput.Get(n, InFeatures) : null;
        float[] db = Bias.EnsureGrad().Data;
        unsafe
        {
            fixed (float* dy = gradOutput.Data)
            fixed (float* xp = x.Data)
            fixed (float* w = Weight.Value.Data)
            fixed (float* dw = Weight.EnsureGrad().Data)
            {
                PackedSgemm.Multiply(
                    MatrixView.RowMajor(dy, n, OutFeatures, OutFeatures).Transposed(),
                    MatrixView.RowMajor(xp, n, InFeatures, InFeatures),
                    MatrixView.RowMajor(dw, OutFeatures, InFeatures, InFeatures),
                    accumulate: true);
                if (dx is not null)
                {
                    fixed (float* dxp = dx.Data)
                    {
                        PackedSgemm.Multiply(
                            MatrixView.RowMajor(dy, n, OutFeatures, OutFeatures),
                            MatrixView.RowMajor(w, OutFeatures, InFeatures, InFeatures),
                            MatrixView.RowMajor(dxp, n, InFeatures, InFeatures),
                            accumulate: false);
                    }
                }
            }
        }

        for (int o = 0; o < OutFeatures; o++)
        {
            double s = 0;
            for (int i = 0; i < n; i++)
            {
                s += gradOutput.Data[(i * OutFeatures) + o];
            }

            db[o] += (float)s;
        }

        return dx;
    }

    /// <inheritdoc/>
    public override IEnumerable<StateEntry> State(string prefix = "")
    {
        yield return new StateEntry(prefix + "weight", Weight.Value, StateKind.Parameter);
        yield return new StateEntry(prefix + "bias", Bias.Value, StateKind.Parameter);
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
}
