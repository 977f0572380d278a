using System.Globalization;
using System.Runtime.InteropServices;

namespace Rlhf.Torch;

/// <summary>
/// The process's malloc, set up before libtorch loads: glibc's mmap threshold raised to 64 MiB and its trim threshold to
/// 256 MiB (mallopt), unless the user chose malloc settings or another allocator (any of <see cref="UserVariables"/> set).
/// <para>
/// Why: a step's tensors live until its scope ends and are then freed together. With glibc's defaults a freed block
/// above the (adaptive) mmap threshold goes back to the OS, and so does a heap top above the trim threshold, so the next
/// step takes a page fault on every page of its activations again. llama-3M forward, batch 4 × 256
/// (<c>bench -- models --only llama-3M/fwd</c>): 401k → 66k minor page faults per run, 96 → 64 ms per step, peak
/// resident memory about the same (340 → 356 MB). PyTorch's CPU tuning guides get this by preloading jemalloc or
/// tcmalloc; here it is done in-process with glibc's own allocator.
/// </para>
/// </summary>
public static partial class Allocator
{
    /// <summary>The mmap threshold set: blocks below it come from the heap and stay mapped when freed.</summary>
    public const int MmapThresholdBytes = 64 << 20;

    /// <summary>The trim threshold set: free memory at the heap's top beyond it goes back to the OS.</summary>
    public const int TrimThresholdBytes = 256 << 20;

    /// <summary>Environment variables whose presence means the user (or the machine) chose the allocator's behaviour.</summary>
    public static readonly IReadOnlyList<string> UserVariables =
        ["MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_", "GLIBC_TUNABLES", "LD_PRELOAD"];

    /// <summary>Which of <see cref="UserVariables"/> <paramref name="getEnv"/> has set (non-empty): Rlhf tunes nothing when any is.</summary>
    public static string[] ChosenByUser(Func<string, string?> getEnv) => UserVariables.Where(v => !string.IsNullOrEmpty(getEnv(v))).ToArray();

    /// <summary>True when this process set the thresholds (glibc accepted both); set when the shim loads.</summary>
    public static bool TunedByRlhf { get; private set; }

    /// <summary>One line: the settings made, or why glibc's defaults were left alone.</summary>
    public static string Settings
    {
        get
        {
            _ = Torch.Version;   // the loader makes the settings
            if (TunedByRlhf) return $"mmap threshold {MmapThresholdBytes >> 20} MiB, trim threshold {TrimThresholdBytes >> 20} MiB (mallopt, set by Rlhf)";
            var set = ChosenByUser(Environment.GetEnvironmentVariable);
            return set.Length > 0 ? $"left to the environment ({string.Join(", ", set)} set)" : "glibc defaults";
        }
    }

    /// <summary>
    /// The environment variables that give another process (a benchmark peer) this process's settings: empty when Rlhf
    /// left glibc's defaults alone.
    /// </summary>
    public static IReadOnlyDictionary<string, string> EnvironmentForPeers
    {
        get
        {
            _ = Torch.Version;
            return !TunedByRlhf ? new Dictionary<string, string>() : new Dictionary<string, string>
            {
                ["MALLOC_MMAP_THRESHOLD_"] = MmapThresholdBytes.ToString(CultureInfo.InvariantCulture),
                ["MALLOC_TRIM_THRESHOLD_"] = TrimThresholdBytes.ToString(CultureInfo.InvariantCulture),
            };
        }
    }

    /// <summary>Bytes glibc currently holds in mmapped blocks (<c>mallinfo2().hblkhd</c>), or -1 where there is no mallinfo2.</summary>
    public static long MmappedBytes
    {
        get
        {
            try { return MallInfo2().Hblkhd; }
            catch (EntryPointNotFoundException) { return -1; }
            catch (DllNotFoundException) { return -1; }
        }
    }

    /// <summary>Sets the thresholds unless the user chose; called once, before the shim loads.</summary>
    internal static void TuneBeforeLoad()
    {
        if (!OperatingSystem.IsLinux() || ChosenByUser(Environment.GetEnvironmentVariable).Length > 0) return;
        const int MTrimThreshold = -1, MMmapThreshold = -3;   // malloc.h
        try { TunedByRlhf = MallOpt(MMmapThreshold, MmapThresholdBytes) == 1 && MallOpt(MTrimThreshold, TrimThresholdBytes) == 1; }
        catch (EntryPointNotFoundException) { }   // not glibc
        catch (DllNotFoundException) { }
    }

    [LibraryImport("libc.so.6", EntryPoint = "mallopt")]
    private static partial int MallOpt(int parameter, int value);

    [StructLayout(LayoutKind.Sequential)]
    private struct MallInfo2Result
    {
        public nuint Arena, Ordblks, Smblks, Hblks;
        public nuint HblkhdRaw, Usmblks, Fsmblks, Uordblks, Fordblks, Keepcost;
        public readonly long Hblkhd => (long)HblkhdRaw;
    }

    [LibraryImport("libc.so.6", EntryPoint = "mallinfo2")]
    private static partial MallInfo2Result MallInfo2();
}
