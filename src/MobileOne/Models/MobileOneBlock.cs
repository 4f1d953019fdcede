using MobileOne.Kernels;
using MobileOne.Nn;
using MobileOne.Tensors;

namespace MobileOne.Models;

/// <summary>
/// One MobileOne block, in either of its two forms:
/// train-time: sum of k conv+BN branches, a 1x1 conv+BN scale branch (K > 1) and a BN skip (shapes equal);
/// fused: one convolution with bias. Either form is followed by optional squeeze-excite and ReLU.
/// State names are timm's (identity, conv_kxk.i, conv_scale, attn.fc1/fc2, reparam_conv).
/// </summary>
public sealed class MobileOneBlock : Module
{
    private MobileOneBlock(BlockSpec spec, bool fused)
    {
        spec.Validate();
        Spec = spec;
        if (fused)
        {
            ReparamConv = new Conv2d(spec.InChannels, spec.OutChannels, spec.KernelSize, spec.Stride, spec.Padding, spec.Groups, bias: true);
            ConvKxk = [];
        }
        else
        {
            Identity = spec.HasIdentity ? new BatchNorm2d(spec.InChannels) : null;
            ConvKxk = Enumerable.Range(0, spec.NumConvBranches)
                .Select(_ => new ConvBn(spec.InChannels, spec.OutChannels, spec.KernelSize, spec.Stride, spec.Padding, spec.Groups))
                .ToArray();
            ConvScale = spec.HasScaleBranch ? new ConvBn(spec.InChannels, spec.OutChannels, 1, spec.Stride, 0, spec.Groups) : null;
        }

        Attn = spec.HasSqueezeExcite ? new SqueezeExcite(spec.OutChannels, spec.SeChannels) : null;
    }

    public BlockSpec Spec { get; }

    public bool IsFused => ReparamConv is not null;

    public BatchNorm2d? Identity { get; }

    public IReadOnlyList<ConvBn> ConvKxk { get; }

    public ConvBn? ConvScale { get; }

    public Conv2d? ReparamConv { get; }

    public SqueezeExcite? Attn { get; }

    public static MobileOneBlock CreateTrainTime(BlockSpec spec) => new(spec, fused: false);

    public static MobileOneBlock CreateFused(BlockSpec spec) => new(spec, fused: true);

    /// <summary>Eval-mode forward: BatchNorm uses running statistics.</summary>
    public Tensor Forward(Tensor input)
    {
        Tensor output;
        if (ReparamConv is not null)
        {
            output = ReparamConv.Forward(input);
        }
        else
        {
            // Same summation order as timm: scale branch, conv branches, then the skip.
            output = ConvScale is not null ? ConvScale.Forward(input) : ConvKxk[0].Forward(input);
            for (int i = ConvScale is not null ? 0 : 1; i < ConvKxk.Count; i++)
            {
                Elementwise.Add(output.Data, ConvKxk[i].Forward(input).Data);
            }

            if (Identity is not null)
            {
                Elementwise.Add(output.Data, Identity.Forward(input).Data);
            }
        }

        if (Attn is not null)
        {
            output = Attn.Forward(output);
        }

        Elementwise.Relu(output.Data);
        return output;
    }

    /// <summary>Multiply-accumulates of the convolutions (and SE) for one image of the given input size.</summary>
    public long MultiplyAccumulates(int height, int width)
    {
        long macs = 0;
        if (ReparamConv is not null)
        {
            macs += ReparamConv.MultiplyAccumulates(height, width);
        }
        else
        {
            macs += ConvKxk.Sum(b => b.Conv.MultiplyAccumulates(height, width));
            macs += ConvScale?.Conv.MultiplyAccumulates(height, width) ?? 0;
        }

        return macs + (Attn?.MultiplyAccumulates() ?? 0);
    }

    public (int Height, int Width) OutputSize(int height, int width)
    {
        int oh = ((height + (2 * Spec.Padding) - Spec.KernelSize) / Spec.Stride) + 1;
        int ow = ((width + (2 * Spec.Padding) - Spec.KernelSize) / Spec.Stride) + 1;
        return (oh, ow);
    }

    public override IEnumerable<StateEntry> State(string prefix = "")
    {
        // Registration order of timm's MobileOneBlock: reparam_conv | identity, conv_kxk, conv_scale; then attn.
        if (ReparamConv is not null)
        {
            foreach (var e in ReparamConv.State(prefix + "reparam_conv."))
            {
                yield return e;
            }
        }

        if (Identity is not null)
        {
            foreach (var e in Identity.State(prefix + "identity."))
            {
                yield return e;
            }
        }

        for (int i = 0; i < ConvKxk.Count; i++)
        {
            foreach (var e in ConvKxk[i].State($"{prefix}conv_kxk.{i}."))
            {
                yield return e;
            }
        }

        if (ConvScale is not null)
        {
            foreach (var e in ConvScale.State(prefix + "conv_scale."))
            {
                yield return e;
            }
        }

        if (Attn is not null)
        {
            foreach (var e in Attn.State(prefix + "attn."))
            {
                yield return e;
            }
        }
    }
}
