namespace Rlhf.Shell.Training.Online;

/// <summary>
/// The online loop's randomness as pure functions of (seed, stream, keys): SplitMix64 (Steele, Lea and Flood, "Fast splittable
/// pseudorandom number generators", OOPSLA 2014) applied to the keys, so a draw depends on where it is in the run and not on
/// how many draws came before. The data order and the mini-batch shuffles are then the same whichever thread draws them and
/// after a resume, with no generator state to save.
/// </summary>
public static class OnlineRng
{
    /// <summary>The independent streams of an online run.</summary>
    public enum Stream : long
    {
        /// <summary>The order of the training prompts in each data epoch.</summary>
        PromptOrder = 1,
        /// <summary>The order of prompt groups in each update epoch of a step.</summary>
        MiniBatches = 2,
    }

    /// <summary>SplitMix64's finaliser of <paramref name="z"/> + the golden gamma.</summary>
    public static ulong Mix(ulong z)
    {
        z += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>The 64-bit draw of (<paramref name="seed"/>, <paramref name="stream"/>, <paramref name="a"/>, <paramref name="b"/>, <paramref name="c"/>).</summary>
    public static ulong Draw(long seed, Stream stream, long a, long b, long c = 0) =>
        Mix(Mix(Mix(Mix((ulong)seed) ^ (ulong)stream) ^ (ulong)a) ^ (ulong)b) ^ Mix((ulong)c);

    /// <summary>A permutation of 0 … <paramref name="n"/> − 1 (Fisher–Yates, the draws keyed by (<paramref name="key"/>, position)).</summary>
    public static int[] Permutation(int n, long seed, Stream stream, long key, long subKey = 0)
    {
        var p = new int[n];
        for (var i = 0; i < n; i++) p[i] = i;
        for (var i = n - 1; i > 0; i--)
        {
            var j = (int)(Draw(seed, stream, key, subKey, i) % (ulong)(i + 1));
            (p[i], p[j]) = (p[j], p[i]);
        }
        return p;
    }
}
