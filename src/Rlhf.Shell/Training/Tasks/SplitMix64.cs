namespace Rlhf.Shell.Training.Tasks;

/// <summary>
/// SplitMix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number generators", OOPSLA 2014; Vigna's
/// <c>splitmix64.c</c>): a 64-bit generator defined by three shifts and two multiplies, so the same seed gives the
/// same numbers on every machine and every .NET version (System.Random promises neither).
/// </summary>
public sealed class SplitMix64
{
    private ulong _state;

    /// <summary>A generator starting from <paramref name="seed"/>.</summary>
    public SplitMix64(ulong seed) => _state = seed;

    /// <summary>A generator for one named stream of a seed: streams of one seed do not overlap in practice.</summary>
    public static SplitMix64 Stream(long seed, ulong stream) => new(Mix((ulong)seed ^ Mix(stream + 0x9E3779B97F4A7C15UL)));

    /// <summary>The next 64 random bits.</summary>
    public ulong Next()
    {
        _state += 0x9E3779B97F4A7C15UL;
        return Mix(_state);
    }

    /// <summary>Uniform integer in [0, <paramref name="n"/>), without modulo bias (rejection of the short last block).</summary>
    public int NextInt(int n)
    {
        if (n <= 0) throw new ArgumentOutOfRangeException(nameof(n), n, "the range must hold at least one value");
        var un = (ulong)n;
        var limit = ulong.MaxValue - ulong.MaxValue % un;   // largest multiple of n not above 2^64 - 1
        ulong x;
        do x = Next(); while (x >= limit);
        return (int)(x % un);
    }

    /// <summary>Uniform integer in [<paramref name="lo"/>, <paramref name="hi"/>] (both included).</summary>
    public int NextInt(int lo, int hi) => lo + NextInt(hi - lo + 1);

    /// <summary>Uniform double in [0, 1) from the top 53 bits.</summary>
    public double NextDouble() => (Next() >> 11) * (1.0 / (1UL << 53));

    private static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
