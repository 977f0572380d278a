using Rlhf.Torch;

namespace Rlhf.Bench;

using Torch = Rlhf.Torch.Torch;

/// <summary>The machine line every bench header prints: CPU model, cores, libtorch, the BLAS kernels in use.</summary>
public static class Machine
{
    /// <summary>The CPU's model name from /proc/cpuinfo ("unknown CPU" elsewhere).</summary>
    public static string CpuModel
    {
        get
        {
            try
            {
                var line = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal));
                return line is null ? "unknown CPU" : line[(line.IndexOf(':') + 1)..].Trim();
            }
            catch (IOException) { return "unknown CPU"; }
        }
    }

    /// <summary>One line: CPU, logical cores, intra-op threads, libtorch version, BLAS core and where its choice came from, BLAS threading, malloc settings.</summary>
    public static string Line =>
        $"machine: {CpuModel}, {Environment.ProcessorCount} logical cores, {Torch.NumThreads} intra-op threads; libtorch {Torch.Version}; " +
        $"BLAS kernels {BlasKernels.Describe()}; malloc {Allocator.Settings}";
}
