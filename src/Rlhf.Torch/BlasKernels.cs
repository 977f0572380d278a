using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;
using Rlhf.Torch.Native;

namespace Rlhf.Torch;

/// <summary>
/// Which OpenBLAS kernels the process runs (<c>OPENBLAS_CORETYPE</c>), and a check that they multiply correctly.
/// <para>
/// OpenBLAS 0.3.21 (Debian 12's) does not recognise recent CPUs with AVX-512 and falls back to its generic
/// "Prescott" SSE kernels: a 1024³ float32 matmul runs ~5× slower than with its SKYLAKEX kernels. OpenBLAS picks
/// its kernels once, when it loads, from <c>OPENBLAS_CORETYPE</c> (OpenBLAS driver/others/dynamic.c,
/// <c>get_coretype</c> / <c>force_coretype</c>), so the binding sets that variable before the shim loads when it is
/// unset and the CPU has the AVX-512 subsets the SKYLAKEX kernels use (F, BW, DQ, VL) — never overriding a value the
/// user or the machine set, an empty one included.
/// </para>
/// </summary>
public static class BlasKernels
{
    /// <summary>The environment variable OpenBLAS reads to force a kernel set.</summary>
    public const string CoreTypeVariable = "OPENBLAS_CORETYPE";

    /// <summary>The kernel set chosen for CPUs with AVX-512 F/BW/DQ/VL.</summary>
    public const string Avx512CoreType = "SKYLAKEX";

    /// <summary>
    /// The <c>OPENBLAS_CORETYPE</c> value to set, or null to leave the environment alone: SKYLAKEX when the variable is
    /// unset (null; an empty value counts as set) and the CPU has all four AVX-512 subsets.
    /// </summary>
    public static string? ChooseCoreType(string? current, bool avx512F, bool avx512BW, bool avx512DQ, bool avx512VL) =>
        current is null && avx512F && avx512BW && avx512DQ && avx512VL ? Avx512CoreType : null;

    /// <summary>The value this process set for <c>OPENBLAS_CORETYPE</c> before libtorch loaded (null when it set none).</summary>
    public static string? CoreTypeSetByRlhf { get; private set; }

    /// <summary>Sets <c>OPENBLAS_CORETYPE</c> in the C environment per <see cref="ChooseCoreType"/>; called once, before the shim loads.</summary>
    internal static void ChooseBeforeLoad(Func<string, string, int, int> setEnv)
    {
        var choice = ChooseCoreType(Environment.GetEnvironmentVariable(CoreTypeVariable),
            Avx512F.IsSupported, Avx512BW.IsSupported, Avx512DQ.IsSupported, Avx512F.VL.IsSupported);
        if (choice is null) return;
        // .NET keeps its own copy of the environment; OpenBLAS reads the C one, so set both.
        _ = setEnv(CoreTypeVariable, choice, 0);
        Environment.SetEnvironmentVariable(CoreTypeVariable, choice);
        CoreTypeSetByRlhf = choice;
    }

    /// <summary>
    /// The kernel set the loaded BLAS runs (OpenBLAS's <c>openblas_get_corename()</c>, e.g. "SkylakeX" or "Prescott"),
    /// or "not OpenBLAS" when the loaded BLAS has no such function.
    /// </summary>
    public static string CoreName
    {
        get
        {
            _ = Torch.Version; // loads the shim and, with it, the BLAS
            var shim = NativeLoader.Handle;
            if (shim != IntPtr.Zero && NativeLibrary.TryGetExport(shim, "openblas_get_corename", out var f))
            {
                unsafe { return Marshal.PtrToStringUTF8(((delegate* unmanaged<IntPtr>)f)()) ?? "?"; }
            }
            return "not OpenBLAS";
        }
    }

    /// <summary>
    /// How the loaded OpenBLAS runs a product on several cores (<c>openblas_get_parallel()</c>): "OpenMP" (Debian's
    /// libopenblas0-openmp, which native/CMakeLists.txt links ahead of libtorch: it shares libtorch's OpenMP pool and
    /// follows each calling thread's thread count), "pthreads" (its own worker pool, shared by the whole process),
    /// "sequential", or "not OpenBLAS".
    /// </summary>
    public static string Threading
    {
        get
        {
            _ = Torch.Version;
            var shim = NativeLoader.Handle;
            if (shim == IntPtr.Zero || !NativeLibrary.TryGetExport(shim, "openblas_get_parallel", out var f)) return "not OpenBLAS";
            int mode;
            unsafe { mode = ((delegate* unmanaged<int>)f)(); }
            return mode switch { 0 => "sequential", 1 => "pthreads", 2 => "OpenMP", _ => $"mode {mode}" };
        }
    }

    /// <summary>The folder of the OpenBLAS library this process loaded (from /proc/self/maps), or null when none is loaded.</summary>
    public static string? LibraryDirectory
    {
        get
        {
            _ = Torch.Version;
            try
            {
                foreach (var line in File.ReadLines("/proc/self/maps"))
                {
                    var at = line.IndexOf('/');
                    if (at < 0) continue;
                    var path = line[at..];
                    if (Path.GetFileName(path).StartsWith("libopenblas", StringComparison.Ordinal)) return Path.GetDirectoryName(path);
                }
            }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
            return null;
        }
    }

    /// <summary>One line for headers: the core name, where the choice came from, and the threading.</summary>
    public static string Describe()
    {
        var env = Environment.GetEnvironmentVariable(CoreTypeVariable);
        var source = CoreTypeSetByRlhf is not null ? $"{CoreTypeVariable}={CoreTypeSetByRlhf} set by Rlhf (AVX-512 CPU)"
            : env is not null ? $"{CoreTypeVariable}='{env}' from the environment"
            : $"{CoreTypeVariable} unset, OpenBLAS's own detection";
        var threading = Threading;
        return threading == "not OpenBLAS" ? $"{CoreName} ({source})" : $"{CoreName} ({source}), {threading} threads";
    }

    private static readonly Lazy<string?> StartUpProblem = new(() => Verify(static (a, b) => a.Matmul(b)));

    /// <summary>
    /// The start-up check's finding: null when the BLAS product of a small odd-shaped float32 matmul agrees with a
    /// float64 reference within float32 rounding, else what disagrees. Runs once per process.
    /// </summary>
    public static string? VerificationProblem => StartUpProblem.Value;

    /// <summary>Runs the start-up check once and writes a loud warning to stderr when the kernels multiply wrongly.</summary>
    internal static void VerifyOnce()
    {
        var problem = VerificationProblem;
        if (problem is not null)
            Console.Error.WriteLine($"WARNING: the BLAS kernels ({Describe()}) compute a wrong matrix product: {problem}. " +
                $"Results will be wrong; set {CoreTypeVariable} to a kernel set this CPU runs correctly (e.g. HASWELL) and rerun.");
    }

    /// <summary>
    /// Multiplies a deterministic 37×67 by 67×29 float32 pair with <paramref name="product"/> and compares with a
    /// float64 reference: null when every element is within float32 rounding, else the first bad element.
    /// </summary>
    public static string? Verify(Func<Tensor, Tensor, Tensor> product)
    {
        const int m = 37, k = 67, n = 29; // odd sizes: the kernels' edge paths as well as their main blocks
        var a = Pattern(m * k, 1);
        var b = Pattern(k * n, 2);
        using var scope = Torch.NewScope();
        // OpenBLAS is the CPU's: the check runs there whatever Torch.DefaultDevice says.
        var c = product(Torch.From<float>(a, [m, k], Device.Cpu), Torch.From<float>(b, [k, n], Device.Cpu));
        if (c.Dtype != ScalarType.Float32 || c.NumEl != m * n) return $"product has dtype {c.Dtype} and {c.NumEl} elements; expected Float32 and {m * n}";
        return CheckProduct(a, b, c.ToArray<float>(), m, k, n);
    }

    /// <summary>
    /// Compares a float32 product <paramref name="c"/> (m×n) of <paramref name="a"/> (m×k) and <paramref name="b"/>
    /// (k×n), all row-major, with a float64 plain-loop reference: null when every element is within the float32
    /// rounding bound 2·k·2⁻²⁴·Σ|a·b| (Higham, Accuracy and Stability of Numerical Algorithms, §3.5), else the first
    /// element outside it.
    /// </summary>
    public static string? CheckProduct(ReadOnlySpan<float> a, ReadOnlySpan<float> b, ReadOnlySpan<float> c, int m, int k, int n)
    {
        if (a.Length != m * k || b.Length != k * n || c.Length != m * n)
            throw new ArgumentException($"lengths {a.Length}, {b.Length}, {c.Length} do not match {m}×{k} · {k}×{n}");
        var unit = Math.ScaleB(1.0, -24);
        for (var i = 0; i < m; i++)
            for (var j = 0; j < n; j++)
            {
                double sum = 0, abs = 0;
                for (var p = 0; p < k; p++)
                {
                    var t = (double)a[i * k + p] * b[p * n + j];
                    sum += t;
                    abs += Math.Abs(t);
                }
                var got = c[i * n + j];
                if (!(Math.Abs(got - sum) <= 2 * k * unit * abs + 1e-30))
                    return $"element ({i}, {j}) is {got:R}, float64 reference {sum:R} (allowed error {2 * k * unit * abs:G3})";
            }
        return null;
    }

    // Values in [-1, 1) with few mantissa bits (exact in float32), from a fixed linear congruential sequence.
    private static float[] Pattern(int count, uint seed)
    {
        var x = new float[count];
        var s = seed * 2654435761u;
        for (var i = 0; i < count; i++)
        {
            s = s * 1664525u + 1013904223u;
            x[i] = ((int)(s >> 20) - 2048) / 2048f;
        }
        return x;
    }
}
