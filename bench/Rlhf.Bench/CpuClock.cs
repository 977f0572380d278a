using System.Runtime.InteropServices;

namespace Rlhf.Bench;

/// <summary>
/// CPU-time clocks (POSIX <c>clock_gettime</c>) for timing on a shared machine: the calling thread's CPU time excludes the
/// time other jobs hold the core, which inflates wall-clock timings under load. With one intra-op thread libtorch runs
/// every op on the calling thread, so <see cref="Thread"/> is the op's whole cost; <see cref="Process"/> sums all threads.
/// </summary>
public static partial class CpuClock
{
    private const int ClockProcessCpuTime = 2, ClockThreadCpuTime = 3;   // CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID (Linux)

    [StructLayout(LayoutKind.Sequential)]
    private struct TimeSpec { public long Seconds, Nanoseconds; }

    [LibraryImport("libc", EntryPoint = "clock_gettime")]
    private static partial int ClockGetTime(int clock, out TimeSpec t);

    private static double Read(int clock) =>
        ClockGetTime(clock, out var t) == 0 ? t.Seconds + t.Nanoseconds * 1e-9 : throw new InvalidOperationException($"clock_gettime({clock}) failed");

    /// <summary>CPU seconds the calling thread has used.</summary>
    public static double Thread() => Read(ClockThreadCpuTime);

    /// <summary>CPU seconds the whole process has used (all threads).</summary>
    public static double Process() => Read(ClockProcessCpuTime);
}
