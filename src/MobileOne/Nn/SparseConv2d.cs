using MobileOne.Tensors;

namespace MobileOne.Nn;

/// <summary>
/// A convolution (groups 1, square kernel, no bias) whose weight has a fixed sparsity pattern: only the entries at
/// <see cref="Indices"/> (ascending row-major positions in the OIHW weight read as [out, in k k]) exist, and they are
/// the trainable parameter <see cref="Values"/>. It trains as a dense <see cref="Conv2d"/> whose weight is the values
/// scattered into zeros before every Forward; Backward keeps only the dense weight gradient's entries at the pattern,
/// which is the gradient of the loss with respect to the values. So the pattern never changes and the entries off it
/// stay exactly zero, whatever the optimizer does (weight decay and momentum only ever see the values).
/// </summary>
public sealed class SparseConv2d : Module
{
    private readonly Conv2d dense;
    private readonly int[] indices;

    /// <summary>
    /// A sparse convolution whose parameter holds <paramref name="values"/> itself (not a copy), at
    /// <paramref name="positions"/> (ascending, inside [0, out in k k)).
    /// </summary>
    public SparseConv2d(int inChannels, int outChannels, int kernelSize, int stride, int padding, int[] positions, float[] values)
    {
        ArgumentNullException.ThrowIfNull(positions);
        ArgumentNullException.ThrowIfNull(values);
        if (positions.Length != values.Length)
        {
            throw new ArgumentException($"A sparse convolution has {positions.Length} indices but {values.Length} values.", nameof(values));
        }

        dense = new Conv2d(inChannels, outChannels, kernelSize, stride, padding);
        long entries = dense.Weight.Value.Length;
        for (int e = 0; e < positions.Length; e++)
        {
            if (positions[e] < 0 || positions[e] >= entries || (e > 0 && positions[e] <= positions[e - 1]))
            {
                throw new ArgumentException($"Sparse index {positions[e]} at {e}: indices must ascend within [0, {entries}).", nameof(positions));
            }
        }

        indices = positions;
        Values = new Parameter(new Tensor([values.Length], values));
    }

    /// <summary>Input channels.</summary>
    public int InChannels => dense.InChannels;

    /// <summary>Output channels.</summary>
    public int OutChannels => dense.OutChannels;

    /// <summary>Kernel height and width.</summary>
    public int KernelSize => dense.KernelSize;

    /// <summary>Stride in both directions.</summary>
    public int Stride => dense.Stride;

    /// <summary>Zero padding on every side.</summary>
    public int Padding => dense.Padding;

    /// <summary>The stored positions, ascending row-major indices into the weight [out, in k k]; never changed.</summary>
    public IReadOnlyList<int> Indices => indices;

    /// <summary>The stored entries [nnz] (the only trainable values).</summary>
    public Parameter Values { get; }

    /// <summary>Convolution of an NCHW batch (the modes of <see cref="Conv2d.Forward"/>).</summary>
    public Tensor Forward(Tensor input)
    {
        Scatter();
        return dense.Forward(input);
    }

    /// <summary>
    /// Accumulates the values' gradient (the dense weight gradient at the stored positions) for the last Forward with
    /// gradients and returns the input gradient (a tensor this layer owns; null when <paramref name="inputGradient"/> is false).
    /// </summary>
    public Tensor? Backward(Tensor gradOutput, bool inputGradient = true)
    {
        var gradInput = dense.Backward(gradOutput, inputGradient);
        var denseGrad = dense.Weight.Grad!.Data;
        var valuesGrad = Values.EnsureGrad().Data;
        int e = 0;
        foreach (int index in indices)
        {
            valuesGrad[e++] += denseGrad[index];
        }

        // The dense gradient is scratch: it is gathered here and never stepped on, so it starts from zero each time.
        Array.Clear(denseGrad);
        return gradInput;
    }

    /// <inheritdoc/>
    public override IEnumerable<StateEntry> State(string prefix = "")
    {
        yield return new StateEntry(prefix + "values", Values.Value, StateKind.Parameter);
    }

    /// <inheritdoc/>
    public override IEnumerable<NamedParameter> NamedParameters(string prefix = "")
    {
        yield return new NamedParameter(prefix + "values", Values);
    }

    /// <summary>The dense convolution it runs on, so that modes and buffer releases reach it (its weight is not a parameter).</summary>
    public override IEnumerable<Module> Children() => [dense];

    // Only the stored positions are written, so the rest of the dense weight stays at its initial zero.
    private void Scatter()
    {
        var w = dense.Weight.Value.Data;
        var v = Values.Value.Data;
        int e = 0;
        foreach (int index in indices)
        {
            w[index] = v[e++];
        }
    }
}
