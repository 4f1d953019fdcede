using System.Numerics;

namespace MobileOne.Data;

/// <summary>
/// A small deterministic generator (xoshiro256**, seeded through SplitMix64) that each sample owns.
/// Deriving it from (seed, epoch, sample index) rather than sharing one generator is what makes a batch
/// bit-identical whatever the number of workers and whatever order they finish in.
/// </summary>
public struct SampleRandom
{
    private ulong s0, s1, s2, s3;

    /// <summary>A generator seeded with <paramref name="seed"/>.</summary>
    public SampleRandom(ulong seed)
    {
        ulong x = seed;
        s0 = SplitMix(ref x);
        s1 = SplitMix(ref x);
        s2 = SplitMix(ref x);
        s3 = SplitMix(ref x);
    }

    /// <summary>The generator of one sample's augmentation in one epoch.</summary>
    public static SampleRandom ForSample(ulong seed, int epoch, int index) => new(Combine(seed, 0x5A4D504C45UL, epoch, index));

    /// <summary>The generator of an epoch's shuffle.</summary>
    public static SampleRandom ForEpoch(ulong seed, int epoch) => new(Combine(seed, 0x53485546464CUL, epoch, -1));

    /// <summary>The next 64 random bits.</summary>
    public ulong NextUInt64()
    {
        ulong result = BitOperations.RotateLeft(s1 * 5, 7) * 9;
        ulong t = s1 << 17;
        s2 ^= s0;
        s3 ^= s1;
        s1 ^= s2;
        s0 ^= s3;
        s2 ^= t;
        s3 = BitOperations.RotateLeft(s3, 45);
        return result;
    }

    /// <summary>Uniform in [0, 1) with 53 random bits.</summary>
    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

    /// <summary>Uniform in [low, high), like Python's random.uniform.</summary>
    public double Uniform(double low, double high) => low + ((high - low) * NextDouble());

    /// <summary>Uniform integer in [0, count), without modulo bias (Lemire's method).</summary>
    public int NextInt(int count)
    {
        if (count <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(count), count, "The range must hold at least one value.");
        }

        ulong range = (ulong)count;
        ulong high = Math.BigMul(NextUInt64(), range, out ulong low);
        if (low < range)
        {
            ulong threshold = (0UL - range) % range;
            while (low < threshold)
            {
                high = Math.BigMul(NextUInt64(), range, out low);
            }
        }

        return (int)high;
    }

    /// <summary>Uniform integer in [low, high] (both inclusive), like Python's random.randint.</summary>
    public int NextIntInclusive(int low, int high) => low + NextInt(high - low + 1);

    /// <summary>True with probability p (compares a uniform draw with p, as torch.rand(1) &lt; p does).</summary>
    public bool Bernoulli(double p) => NextDouble() < p;

    /// <summary>Normal draw (Box-Muller), like Python's random.gauss.</summary>
    public double Gaussian(double mean, double std)
    {
        double u1 = 1.0 - NextDouble();
        double u2 = NextDouble();
        return mean + (std * Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2.0 * Math.PI * u2));
    }

    /// <summary>A Fisher-Yates permutation of 0..count-1.</summary>
    public int[] Permutation(int count)
    {
        var p = new int[count];
        for (int i = 0; i < count; i++)
        {
            p[i] = i;
        }

        for (int i = count - 1; i > 0; i--)
        {
            int j = NextInt(i + 1);
            (p[i], p[j]) = (p[j], p[i]);
        }

        return p;
    }

    private static ulong Combine(ulong seed, ulong stream, int epoch, int index)
    {
        ulong x = seed ^ stream;
        ulong h = SplitMix(ref x);
        x = h ^ (ulong)(uint)epoch;
        h = SplitMix(ref x);
        x = h ^ ((ulong)(uint)index << 1) ^ (index < 0 ? 1UL : 0UL);
        return SplitMix(ref x);
    }

    private static ulong SplitMix(ref ulong x)
    {
        ulong z = x += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
