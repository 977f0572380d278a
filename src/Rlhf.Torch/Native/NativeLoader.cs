using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Rlhf.Torch.Native;

/// <summary>Resolves librlhf_torch.so once for the assembly and, when loading fails, says every path it tried.</summary>
internal static class NativeLoader
{
    internal const string LibraryName = "rlhf_torch";
    private const string FileName = "librlhf_torch.so";

#pragma warning disable CA2255 // module initializers are the right tool: the resolver must exist before the first P/Invoke.
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void Register() => NativeLibrary.SetDllImportResolver(typeof(NativeLoader).Assembly, Resolve);

    private static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? searchPath)
    {
        if (name != LibraryName) return IntPtr.Zero;
        var tried = new List<string>();
        foreach (var candidate in Candidates())
        {
            tried.Add(candidate);
            if (!File.Exists(candidate)) continue;
            try { return NativeLibrary.Load(candidate); }
            catch (Exception e) when (e is DllNotFoundException or BadImageFormatException)
            {
                throw new DllNotFoundException(
                    $"Found {candidate} but could not load it: {e.Message}\n" +
                    "Is libtorch installed? Run tools/bootstrap.sh (installs libtorch-dev, libopenblas0-pthread).", e);
            }
        }
        throw new DllNotFoundException(
            $"Could not find {FileName}. Tried:\n  " + string.Join("\n  ", tried) +
            "\nBuild it with `dotnet build` (Rlhf.Torch builds native/ with CMake) or set RLHF_NATIVE_DIR.");
    }

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
