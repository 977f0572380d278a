// The OpenBLAS kernel choice (a pure function of the environment and the CPU) and the start-up product check.
using FsCheck;
using FsCheck.Fluent;
using Rlhf.Torch;

namespace Rlhf.Torch.Tests;

public class BlasKernelsTests
{
    [Theory]
    [InlineData(null, true, true, true, true, "SKYLAKEX")]
    [InlineData(null, true, true, true, false, null)]
    [InlineData(null, true, true, false, true, null)]
    [InlineData(null, true, false, true, true, null)]
    [InlineData(null, false, true, true, true, null)]
    [InlineData(null, false, false, false, false, null)]
    [InlineData("", true, true, true, true, null)]
    [InlineData("HASWELL", true, true, true, true, null)]
    [InlineData("Haswell", false, false, false, false, null)]
    [InlineData("", false, false, false, false, null)]
    public void Chooses_skylakex_only_when_unset_and_the_cpu_has_all_four_avx512_subsets(
        string? current, bool f, bool bw, bool dq, bool vl, string? expected) =>
        Assert.Equal(expected, BlasKernels.ChooseCoreType(current, f, bw, dq, vl));

    [Fact]
    public void Never_overrides_a_value_that_is_set() => Check.One(
        Config.QuickThrowOnFailure.WithMaxTest(300).WithQuietOnSuccess(true),
        Prop.ForAll(Arb.From(ArbMap.Default.GeneratorFor<string>().Where(s => s is not null)),
            Arb.From(ArbMap.Default.GeneratorFor<bool[]>().Where(b => b is not null && b.Length >= 4)),
            (set, cpu) => BlasKernels.ChooseCoreType(set, cpu[0], cpu[1], cpu[2], cpu[3]) is null));

    [Fact]
    public void The_choice_made_at_load_is_what_the_environment_now_says()
    {
        _ = Torch.Version;
        if (BlasKernels.CoreTypeSetByRlhf is { } chosen)
        {
            Assert.Equal(chosen, Environment.GetEnvironmentVariable(BlasKernels.CoreTypeVariable));
            Assert.Equal(BuiltWithMkl ? "not openblas" : "skylakex", BlasKernels.CoreName.ToLowerInvariant());
        }
        Assert.Contains(BlasKernels.CoreName, BlasKernels.Describe());
    }

    private static bool BuiltWithMkl => Torch.BuildConfig.Contains("BLAS_INFO=mkl", StringComparison.Ordinal);

    [Fact]
    public void The_core_name_comes_from_the_loaded_openblas()
    {
        // Debian's libtorch links libblas.so.3, which tools/bootstrap.sh points at OpenBLAS (pthread build); a PyTorch
        // wheel's libtorch (the GPU check) calls MKL, and then there is no OpenBLAS core to name.
        var name = BlasKernels.CoreName;
        if (BuiltWithMkl) { Assert.Equal("not OpenBLAS", name); return; }
        Assert.NotEqual("not OpenBLAS", name);
        Assert.Matches("^[A-Za-z0-9]+$", name);
        var forced = Environment.GetEnvironmentVariable(BlasKernels.CoreTypeVariable);
        if (!string.IsNullOrEmpty(forced)) Assert.Equal(forced.ToLowerInvariant(), name.ToLowerInvariant());
    }

    private static readonly string OpenMpBuild = $"/usr/lib/{(System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture == System.Runtime.InteropServices.Architecture.Arm64 ? "aarch64" : "x86_64")}-linux-gnu/openblas-openmp";

    [Fact]
    public void Debian_libtorch_runs_on_openblas_openmp_build_when_it_is_installed()
    {
        // tools/bootstrap.sh installs libopenblas0-openmp; native/CMakeLists.txt links it ahead of libtorch's libblas.so.3.
        if (BuiltWithMkl) { Assert.Equal("not OpenBLAS", BlasKernels.Threading); return; }
        if (!File.Exists(Path.Combine(OpenMpBuild, "libblas.so.3"))) { Assert.NotEqual("not OpenBLAS", BlasKernels.Threading); return; }
        Assert.Equal("OpenMP", BlasKernels.Threading);
        Assert.Equal(OpenMpBuild, BlasKernels.LibraryDirectory);                  // the pthread build is not loaded at all
        Assert.Contains("OpenMP threads", BlasKernels.Describe());
    }

    [System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Sequential)]
    private struct TimeSpec { public long Seconds, Nanoseconds; }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "clock_gettime")]
    private static extern int ClockGetTime(int clock, out TimeSpec t);

    private static double CpuSeconds(int clock) => ClockGetTime(clock, out var t) == 0 ? t.Seconds + t.Nanoseconds * 1e-9 : double.NaN;

    [Fact]
    public void Each_thread_runs_its_products_on_its_own_thread_count()
    {
        // The asynchronous loop gives the generator one core and the trainer the rest: products made on a thread that
        // asked for one thread must run on that thread alone, not on a process-wide BLAS pool. Counted in CPU time
        // (the calling thread's against the whole process's), which a loaded machine does not change.
        if (BlasKernels.Threading != "OpenMP") return;
        (double Caller, double Others) RunOn(int threads)
        {
            double caller = 0, others = 0;
            var t = new Thread(() =>
            {
                Torch.NumThreads = threads;
                using var scope = Torch.NewScope();
                var a = Torch.Ones([512, 512]);
                Assert.Equal(512f, a.Matmul(a).ToArray<float>()[0]);
                GC.Collect();                                                 // no collector or finalizer work inside the window
                GC.WaitForPendingFinalizers();
                Thread.Sleep(100);                                            // earlier regions' OpenMP workers stop spinning (GOMP_SPINCOUNT)
                double t0 = CpuSeconds(3), p0 = CpuSeconds(2);              // CLOCK_THREAD_CPUTIME_ID, CLOCK_PROCESS_CPUTIME_ID
                for (var i = 0; i < 20; i++) using (a.Matmul(a)) { }         // products only: no elementwise op on libtorch's pool
                caller = CpuSeconds(3) - t0;
                others = CpuSeconds(2) - p0 - caller;
            });
            t.Start();
            t.Join();
            return (caller, others);
        }
        var before = Torch.NumThreads;
        try
        {
            // Other threads' CPU time over the caller's, one thread against two, alternating, five times (least and most):
            // measured 0.02–0.07 against 1.4–1.9 with the OpenMP build, loaded machine or not; 0.78 against 3.2 with
            // the pthread build's process-wide pool.
            if (Environment.ProcessorCount < 2) return;
            double oneMin = double.MaxValue, twoMax = 0;
            for (var i = 0; i < 5; i++)
            {
                var one = RunOn(1);
                var two = RunOn(2);
                oneMin = Math.Min(oneMin, one.Others / one.Caller);
                twoMax = Math.Max(twoMax, two.Others / two.Caller);
            }
            Assert.True(oneMin < 0.3 && twoMax > 0.5, $"other threads' CPU time over the caller's: {oneMin:F2} at one thread, {twoMax:F2} at two — the BLAS does not follow the caller's thread count");
        }
        finally { Torch.NumThreads = before; }
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "getenv")]
    private static extern IntPtr CGetEnv(string name);

    private static string? NativeEnv(string name) => System.Runtime.InteropServices.Marshal.PtrToStringUTF8(CGetEnv(name));

    [Fact]
    public void OpenMp_workers_spin_briefly_with_the_openmp_build_and_sleep_beside_a_pthread_pool()
    {
        _ = Torch.Version;
        // What the user chose stays; the binding decides only when neither variable was set at start.
        if (Environment.GetEnvironmentVariable("OMP_WAIT_POLICY") is not null || Environment.GetEnvironmentVariable("GOMP_SPINCOUNT") is not null) return;
        switch (BlasKernels.Threading)
        {
            case "OpenMP":
                Assert.Equal("100000", NativeEnv("GOMP_SPINCOUNT"));
                Assert.Null(NativeEnv("OMP_WAIT_POLICY"));
                break;
            default:
                Assert.Equal("PASSIVE", NativeEnv("OMP_WAIT_POLICY"));
                Assert.Null(NativeEnv("GOMP_SPINCOUNT"));
                break;
        }
    }

    [Fact]
    public void The_kernels_of_this_machine_pass_the_start_up_check() => Assert.Null(BlasKernels.VerificationProblem);

    [Fact]
    public void The_start_up_check_catches_an_offset_product()
    {
        var problem = BlasKernels.Verify((a, b) => a.Matmul(b).Add(1e-3));
        Assert.NotNull(problem);
        Assert.StartsWith("element (0, 0)", problem);
    }

    [Fact]
    public void The_start_up_check_catches_bfloat16_rounding_of_the_inputs()
    {
        var problem = BlasKernels.Verify((a, b) => a.To(ScalarType.BFloat16).Matmul(b.To(ScalarType.BFloat16)).To(ScalarType.Float32));
        Assert.NotNull(problem);
    }

    [Fact]
    public void The_start_up_check_catches_a_transposed_operand()
    {
        // A kernel that reads B with the wrong stride: same shape, wrong values.
        var problem = BlasKernels.Verify((a, b) => a.Matmul(b.Reshape(29, 67).Transpose(0, 1)));
        Assert.NotNull(problem);
    }

    [Fact]
    public void Check_product_accepts_float32_rounding_and_rejects_one_wrong_element()
    {
        // 1×3 · 3×1 = 1·(1/3 rounded) + … ; a hand value: [0.5, 0.25, 2] · [2, 4, 0.125] = 1 + 1 + 0.25 = 2.25.
        float[] a = [0.5f, 0.25f, 2f], b = [2f, 4f, 0.125f];
        Assert.Null(BlasKernels.CheckProduct(a, b, [2.25f], 1, 3, 1));
        Assert.Null(BlasKernels.CheckProduct(a, b, [MathF.BitIncrement(2.25f)], 1, 3, 1)); // one ulp: within 2·3·2⁻²⁴·4.25
        var wrong = BlasKernels.CheckProduct(a, b, [2.25f + 1e-4f], 1, 3, 1);
        Assert.NotNull(wrong);
        Assert.Contains("element (0, 0)", wrong);
        Assert.Throws<ArgumentException>(() => BlasKernels.CheckProduct(a, b, [1f, 2f], 1, 3, 1));
    }
}
