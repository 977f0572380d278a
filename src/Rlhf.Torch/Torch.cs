using N = Rlhf.Torch.Native.Native;

namespace Rlhf.Torch;

/// <summary>Entry points of the binding: creation, joining, build info, threads, scopes, grad mode, counters.</summary>
public static partial class Torch
{
    static Torch()
    {
        // Debian's libtorch starts with one intra-op thread here; default to the machine's cores
        // unless the user chose (RLHF_NUM_THREADS, or OMP_NUM_THREADS as libtorch itself reads it).
        var n = DefaultNumThreads;
        if (N.rt_get_num_threads() != n) Tensor.Check(N.rt_set_num_threads(n));
        BlasKernels.VerifyOnce();
    }

    // ---- scopes, grad mode, counters ----

    /// <summary>Opens a scope that disposes every tensor created inside it (see <see cref="TensorScope"/>).</summary>
    public static TensorScope NewScope() => new();

    /// <summary>Disables gradient recording on this thread until disposed (<c>torch.no_grad()</c>).</summary>
    public static GradMode NoGrad() => new(false);

    /// <summary>Sets gradient recording on this thread until disposed (<c>torch.set_grad_enabled</c>).</summary>
    public static GradMode GradEnabled(bool on) => new(on);

    /// <summary>Whether autograd records operations on this thread.</summary>
    public static bool IsGradEnabled => N.rt_is_grad_enabled() != 0;

    /// <summary>Native tensor handles alive in the process (every undisposed <see cref="Tensor"/>).</summary>
    public static long LiveTensors => N.rt_live_handles();

    /// <summary>Bytes of CPU memory libtorch has allocated and not freed (all tensors, temporaries included).</summary>
    public static long LiveBytes => N.rt_cpu_live_bytes();

    /// <summary>Peak of <see cref="LiveBytes"/> since start or the last <see cref="ResetPeakBytes"/>.</summary>
    public static long PeakBytes => N.rt_cpu_peak_bytes();

    /// <summary>Restarts the peak counter from the current live bytes.</summary>
    public static void ResetPeakBytes() => N.rt_cpu_reset_peak();

    // ---- build info, threads, devices ----

    /// <summary>The libtorch version the shim was built against.</summary>
    public static string Version => Tensor.TakeString(N.rt_version());

    /// <summary>libtorch's build configuration (<c>torch.__config__.show()</c>): BLAS, LAPACK, CPU capability…</summary>
    public static string BuildConfig => Tensor.TakeString(N.rt_show_config());

    /// <summary>libtorch's parallel settings (<c>torch.__config__.parallel_info()</c>).</summary>
    public static string ParallelInfo => Tensor.TakeString(N.rt_parallel_info());

    /// <summary>
    /// Intra-op threads of the calling thread. libtorch's OpenMP backend keeps the count per thread: setting it changes
    /// this thread's count, and is also remembered process-wide as the count a thread takes on its first use of libtorch
    /// (<c>at::init_num_threads</c>), so a new thread starts at the count set last on any thread
    /// (<see cref="DefaultNumThreads"/> until one is set). Code whose result must not depend on what other threads did sets
    /// its own count (<see cref="UseThreads"/>).
    /// </summary>
    public static int NumThreads
    {
        get => N.rt_get_num_threads();
        set => Tensor.Check(N.rt_set_num_threads(value));
    }

    /// <summary>
    /// The count every thread starts with: <c>RLHF_NUM_THREADS</c>, else <c>OMP_NUM_THREADS</c>, else the cores .NET
    /// sees (affinity and cgroup quota honoured).
    /// </summary>
    public static int DefaultNumThreads => IntraOpThreads.Default;

    /// <summary>
    /// Sets this thread's intra-op count to <paramref name="n"/> until disposed, then restores the previous count. A
    /// computation's float rounding depends on the count (sums split by thread), so a run that must repeat bit for bit
    /// whichever thread calls it sets its count explicitly.
    /// </summary>
    public static IDisposable UseThreads(int n)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(n, 1);
        var before = NumThreads;
        if (before != n) NumThreads = n;
        return new ThreadCount(before);
    }

    private sealed class ThreadCount(int before) : IDisposable
    {
        private bool done;
        public void Dispose()
        {
            if (done) return;
            done = true;
            if (NumThreads != before) NumThreads = before;
        }
    }

    /// <summary>Inter-op threads.</summary>
    public static int NumInteropThreads => N.rt_get_num_interop_threads();

    /// <summary>True when the linked libtorch has CUDA and a device is present.</summary>
    public static bool CudaIsAvailable => N.rt_cuda_is_available() != 0;

    /// <summary>Number of CUDA devices (0 on CPU-only builds).</summary>
    public static int CudaDeviceCount => N.rt_cuda_device_count();

    /// <summary>True when the shim was compiled with c10d Gloo.</summary>
    public static bool HasGloo => N.rt_has_gloo() != 0;

    /// <summary>True when the shim was compiled with c10d NCCL.</summary>
    public static bool HasNccl => N.rt_has_nccl() != 0;

    /// <summary>Waits for all work on a CUDA device (no-op on CPU-only builds).</summary>
    public static void CudaSynchronize(int index = 0) => Tensor.Check(N.rt_cuda_synchronize(index));

    /// <summary>Seeds libtorch's global generators (prefer explicit <see cref="Generator"/>s).</summary>
    public static void ManualSeed(ulong seed) => Tensor.Check(N.rt_manual_seed(seed));

    /// <summary>Raises an error of the given kind inside the shim (0 c10::Error, 1 std::exception, 2 other): tests the error path.</summary>
    public static void DebugThrow(int kind) => Tensor.Check(N.rt_debug_throw(kind));
}

/// <summary>Restores the previous grad mode when disposed.</summary>
public readonly struct GradMode : IDisposable
{
    private readonly bool previous;

    internal GradMode(bool on)
    {
        previous = N.rt_is_grad_enabled() != 0;
        N.rt_set_grad_enabled(on ? 1 : 0);
    }

    /// <summary>Restores the previous mode.</summary>
    public void Dispose() => N.rt_set_grad_enabled(previous ? 1 : 0);
}
