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
            PreferPassiveOpenMpWait();
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
    /// Sets OMP_WAIT_POLICY=PASSIVE in the native environment before the shim (and with it libtorch's libgomp, which
    /// reads the variable once, in its load-time constructor) is loaded, unless the user already chose a policy
    /// (OMP_WAIT_POLICY or GOMP_SPINCOUNT set).
    /// <para>
    /// Why: libtorch runs elementwise ops on its OpenMP pool but hands every matmul to OpenBLAS (the pthread build),
    /// which has its own worker threads. With libgomp's default policy, idle OpenMP workers spin for ~300k iterations
    /// after each parallel region, i.e. through the next matmul, and take the cores from OpenBLAS's threads: on the
    /// 2-core CI box the llama-20M fwd+bwd step (bench -- models) ran at ~2.1 s with 98% "cpu" that was mostly spinning,
    /// and 0.8–1.1 s with PASSIVE; PyTorch eager (same libtorch) shows the same 2× on the same machine
    /// (bench/peers/models_pytorch.py). Measured alternatives: GOMP_SPINCOUNT=10000 (between the two), OpenBLAS at
    /// one thread (no spinning fight, but halves matmul throughput). The 4-element add of bench -- binding never enters
    /// an OpenMP region, so it is unaffected.
    /// </para>
    /// </summary>
    private static void PreferPassiveOpenMpWait()
    {
        if (!OperatingSystem.IsLinux()) return;
        if (Environment.GetEnvironmentVariable("OMP_WAIT_POLICY") is not null || Environment.GetEnvironmentVariable("GOMP_SPINCOUNT") is not null) return;
        // .NET keeps its own copy of the environment; libgomp reads the C one, so set it through libc.
        _ = SetEnv("OMP_WAIT_POLICY", "PASSIVE", 0);
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
