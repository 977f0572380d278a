namespace Rlhf.Torch;

/// <summary>
/// The process's default intra-op thread count. libtorch's OpenMP backend keeps the count per thread
/// (<c>at::set_num_threads</c> is <c>omp_set_num_threads</c>, which sets the calling thread's), so the binding sets it on
/// the first thread that uses libtorch and hands it to libgomp as its process-wide default before the shim loads (see
/// <c>NativeLoader</c>): a thread that calls the BLAS before any libtorch op of its own runs this count too.
/// Pure and native-free: reading it loads nothing.
/// </summary>
public static class IntraOpThreads
{
    /// <summary>
    /// <c>RLHF_NUM_THREADS</c>, else <c>OMP_NUM_THREADS</c> (as libtorch reads it), else the cores .NET sees
    /// (<see cref="Environment.ProcessorCount"/>: the affinity mask and a cgroup's CPU quota honoured).
    /// </summary>
    public static int Default { get; } = Choose(
        Environment.GetEnvironmentVariable("RLHF_NUM_THREADS"), Environment.GetEnvironmentVariable("OMP_NUM_THREADS"), Environment.ProcessorCount);

    /// <summary>The first positive count of <paramref name="rlhf"/>, then <paramref name="omp"/> (its first entry, as in "4,2"), else <paramref name="cores"/> (at least 1).</summary>
    public static int Choose(string? rlhf, string? omp, int cores)
    {
        if (int.TryParse(rlhf, out var r) && r > 0) return r;
        if (int.TryParse(omp?.Split(',')[0], out var o) && o > 0) return o;
        return Math.Max(1, cores);
    }
}
