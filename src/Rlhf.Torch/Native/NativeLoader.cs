using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Rlhf.Torch.Native;

/// <summary>Resolves librlhf_torch.so once for the assembly and, when loading fails, says every path it tried.</summary>
internal static partial class NativeLoader
{
    internal const string LibraryName = "rlhf_torch";
    private const string FileName = "librlhf_torch.so";

#pragma warning disable CA2255 // module initializers are the right tool: the resolver must exist before the first P/Invoke.
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void Register() => NativeLibrary.SetDllImportResolver(typeof(NativeLoader).Assembly, Resolve);

    /// <summary>The loaded shim (zero until the first P/Invoke loads it); symbols of its dependencies resolve through it.</summary>
    internal static IntPtr Handle { get; private set; }

    private static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? searchPath)
    {
        if (name != LibraryName) return IntPtr.Zero;
        var tried = new List<string>();
        foreach (var candidate in Candidates())
        {
            tried.Add(candidate);
            if (!File.Exists(candidate)) continue;
            ChooseOpenMpWait(candidate);
            ExportDefaultThreads();
            Allocator.TuneBeforeLoad();
            BlasKernels.ChooseBeforeLoad(SetEnv);
            try { return Handle = NativeLibrary.Load(candidate); }
            catch (Exception e) when (e is DllNotFoundException or BadImageFormatException)
            {
                throw new DllNotFoundException(
                    $"Found {candidate} but could not load it: {e.Message}\n" +
                    "Is libtorch installed? Run tools/bootstrap.sh (installs libtorch-dev, libopenblas0-pthread, libopenblas0-openmp).", e);
            }
        }
        throw new DllNotFoundException(
            $"Could not find {FileName}. Tried:\n  " + string.Join("\n  ", tried) +
            "\nBuild it with `dotnet build` (Rlhf.Torch builds native/ with CMake) or set RLHF_NATIVE_DIR.");
    }

    /// <summary>
    /// Chooses how libtorch's idle OpenMP workers wait, before the shim (and with it libgomp, which reads the variables
    /// once, in its load-time constructor) is loaded, unless the user already chose (OMP_WAIT_POLICY or GOMP_SPINCOUNT
    /// set): a bounded spin (GOMP_SPINCOUNT=100000) when the shim links OpenBLAS's OpenMP build, else
    /// OMP_WAIT_POLICY=PASSIVE.
    /// <para>
    /// With OpenBLAS's OpenMP build every matmul is an OpenMP region on libtorch's own pool, so workers that spin a
    /// little between regions wake at once for the next one: llama-3M forward+backward 199–206 → 179–181 ms with
    /// PASSIVE → the bounded spin, and the quickstart's synchronous online DPO at two threads no slower than at one
    /// (100 steps: 3.0 s with PASSIVE, 2.0 s spinning; `bench -- async 100 1`). The asynchronous loop's sides run one
    /// thread each, so no worker of theirs spins. With OpenBLAS's pthread build (its own worker threads beside
    /// libtorch's pool), spinning OpenMP workers took the cores from OpenBLAS's threads: llama-20M forward+backward
    /// ran ~2× slower than with PASSIVE, in PyTorch eager on the same libtorch too.
    /// </para>
    /// </summary>
    private static void ChooseOpenMpWait(string shim)
    {
        if (!OperatingSystem.IsLinux()) return;
        if (Environment.GetEnvironmentVariable("OMP_WAIT_POLICY") is not null || Environment.GetEnvironmentVariable("GOMP_SPINCOUNT") is not null) return;
        // .NET keeps its own copy of the environment; libgomp reads the C one, so set it through libc.
        if (LinksOpenMpBlas(shim)) _ = SetEnv("GOMP_SPINCOUNT", "100000", 0);
        else _ = SetEnv("OMP_WAIT_POLICY", "PASSIVE", 0);
    }

    /// <summary>
    /// Makes <see cref="IntraOpThreads.Default"/> libgomp's process-wide default before the shim loads (OMP_NUM_THREADS in the C
    /// environment, unless the user set it). The count is per thread; a thread whose first parallel work is a BLAS call
    /// (OpenBLAS's OpenMP build reads <c>omp_get_max_threads()</c>) rather than a libtorch op (which applies libtorch's
    /// count first) otherwise ran libgomp's own default, the CPUs of the affinity mask, which ignores a cgroup's CPU quota.
    /// </summary>
    private static void ExportDefaultThreads()
    {
        if (!OperatingSystem.IsLinux() || Environment.GetEnvironmentVariable("OMP_NUM_THREADS") is not null) return;
        // C environment only: child processes (ZeRO ranks, workers) are started from .NET's copy and choose their own.
        _ = SetEnv("OMP_NUM_THREADS", IntraOpThreads.Default.ToString(System.Globalization.CultureInfo.InvariantCulture), 0);
    }

    /// <summary>True when the shim's RUNPATH names OpenBLAS's OpenMP build (native/CMakeLists.txt links it ahead of libtorch).</summary>
    internal static bool LinksOpenMpBlas(string shim)
    {
        try { return File.ReadAllBytes(shim).AsSpan().IndexOf("/openblas-openmp"u8) >= 0; }
        catch (IOException) { return false; }
        catch (UnauthorizedAccessException) { return false; }
    }

    [LibraryImport("libc.so.6", EntryPoint = "setenv", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int SetEnv(string name, string value, int overwrite);

    private static IEnumerable<string> Candidates()
    {
        var env = Environment.GetEnvironmentVariable("RLHF_NATIVE_DIR");
        if (!string.IsNullOrEmpty(env)) yield return Path.Combine(env, FileName);
        yield return Path.Combine(AppContext.BaseDirectory, FileName);
        // Walk up from the app folder to a checkout's native/build (tests, scripts run by dotnet fsi).
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null)
        {
            var p = Path.Combine(dir.FullName, "native", "build", FileName);
            if (File.Exists(p)) { yield return p; yield break; }
            dir = dir.Parent;
        }
    }
}
