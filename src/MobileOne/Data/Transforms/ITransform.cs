namespace MobileOne.Data.Transforms;

/// <summary>
/// A per-sample transform on 8-bit HWC images (the PIL stage of a torchvision pipeline: crops, resizes,
/// flips, AutoAugment). It returns either the input, changed in place, or a new image; it never disposes
/// its input (<see cref="SampleTransform"/> owns the intermediates). Implementations hold no mutable
/// state, so one instance serves every loader worker.
/// </summary>
public interface IImageTransform
{
    /// <summary>Transforms <paramref name="image"/>, drawing randomness from <paramref name="random"/> only; may return the same image.</summary>
    ByteImage Apply(ByteImage image, ref SampleRandom random);
}

/// <summary>
/// A per-sample transform on float CHW images after ToTensor + Normalize (the tensor stage of a
/// torchvision pipeline: Pad, RandomCrop, flip applied to a normalized tensor). Same ownership rules as
/// <see cref="IImageTransform"/>.
/// </summary>
public interface ITensorTransform
{
    /// <summary>Transforms <paramref name="image"/>, drawing randomness from <paramref name="random"/> only; may return the same image.</summary>
    FloatImage Apply(FloatImage image, ref SampleRandom random);
}
