using System.CommandLine;
using System.Diagnostics;
using Rlhf.Torch;

namespace Rlhf.Cli;

using Torch = Rlhf.Torch.Torch;

/// <summary><c>rlhf doctor</c>: what libtorch this is, its threads and BLAS, CUDA, collectives, and a tiny fit whose loss must fall.</summary>
public static class DoctorCommand
{
    /// <summary>Optimisation steps of the regression fit.</summary>
    public const int DefaultSteps = 200;

    /// <summary>The <c>doctor</c> command.</summary>
    public static Command Build()
    {
        var steps = new Option<int>("--steps") { Description = "steps of the regression fit", DefaultValueFactory = _ => DefaultSteps };
        var cmd = new Command("doctor", "Print libtorch version, threads, BLAS, CUDA and collectives, and run a tiny regression fit.");
        cmd.Options.Add(steps);
        cmd.SetAction(parse => Run(parse.GetValue(steps), parse.InvocationConfiguration.Output));
        return cmd;
    }

    /// <summary>Runs the checks, printing to <paramref name="output"/>; exit code 0 when the fit's loss fell by 100× or more (an error otherwise).</summary>
    public static int Run(int steps, TextWriter output)
    {
        if (steps < 1) throw new ArgumentException($"--steps must be at least 1, got {steps}");
        output.WriteLine("rlhf doctor");
        output.WriteLine($"  libtorch        {Torch.Version}");
        output.WriteLine($"  threads         intra-op {Torch.NumThreads}, inter-op {Torch.NumInteropThreads}, cores {Environment.ProcessorCount}");
        output.WriteLine($"  BLAS (build)    {BuildValue("BLAS_INFO") ?? "unknown"} (resolved at run time through libblas.so.3; the shim links OpenBLAS's OpenMP build ahead of it when installed)");
        output.WriteLine($"  BLAS (loaded)   {LoadedBlas()}");
        output.WriteLine($"  BLAS kernels    {BlasKernels.Describe()}");
        output.WriteLine($"  malloc          {Allocator.Settings}");
        output.WriteLine($"  BLAS check      {BlasKernels.VerificationProblem ?? "a float32 product agrees with float64 to rounding"}");
        output.WriteLine($"  CUDA            {(Torch.CudaIsAvailable ? $"available, {Torch.CudaDeviceCount} device(s)" : "not available (CPU-only libtorch or no device)")}");
        output.WriteLine($"  collectives     Gloo {(Torch.HasGloo ? "yes" : "no")}, NCCL {(Torch.HasNccl ? "yes" : "no")}");
        output.WriteLine($"  matmul 512^3    {MatmulGflops(512):F1} GFLOP/s (float32)");
        output.WriteLine();
        return Fit(steps, output);
    }

    private static string? BuildValue(string key)
    {
        var cfg = Torch.BuildConfig;
        var i = cfg.IndexOf(key + "=", StringComparison.Ordinal);
        if (i < 0) return null;
        var start = i + key.Length + 1;
        var end = cfg.IndexOfAny([',', '\n'], start);
        return cfg[start..(end < 0 ? cfg.Length : end)].Trim();
    }

    // The BLAS library the dynamic loader actually mapped (the libblas.so.3 alternative decides it on Debian).
    private static string LoadedBlas()
    {
        try
        {
            var libs = File.ReadLines("/proc/self/maps")
                .Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries).LastOrDefault() ?? "")
                .Where(p => p.Contains("blas", StringComparison.OrdinalIgnoreCase))
                .Distinct().ToList();
            if (libs.Count == 0) return "none mapped";
            var real = libs.Select(p => new FileInfo(p).LinkTarget ?? p).ToList();
            var kind = libs.Any(p => p.Contains("openblas", StringComparison.OrdinalIgnoreCase)) ? "OpenBLAS" :
                       libs.Any(p => p.Contains("/blas/", StringComparison.Ordinal)) ? "reference BLAS (slow! run tools/bootstrap.sh)" : "other";
            return $"{kind}: {string.Join(", ", libs)}";
        }
        catch (IOException) { return "unknown (no /proc/self/maps)"; }
    }

    private static double MatmulGflops(int n)
    {
        using var scope = Torch.NewScope();
        using var gen = new Generator(0);
        var a = Torch.Randn([n, n], gen);
        var b = Torch.Randn([n, n], gen);
        a.Matmul(b).Dispose();
        var reps = 10;
        var sw = Stopwatch.StartNew();
        for (var i = 0; i < reps; i++) a.Matmul(b).Dispose();
        return 2.0 * n * n * n * reps / sw.Elapsed.TotalSeconds / 1e9;
    }

    // Least squares y = X w* + noise, fitted by AdamW from w = 0: the loss must fall.
    private static int Fit(int steps, TextWriter output)
    {
        using var scope = Torch.NewScope();
        using var gen = new Generator(42);
        var x = Torch.Randn([256, 8], gen);
        var wTrue = Torch.Randn([8, 1], gen);
        var y = x.Matmul(wTrue) + Torch.Randn([256, 1], gen) * 0.01;
        var w = Torch.Zeros([8, 1]).RequiresGrad_();
        var b = Torch.Zeros([1]).RequiresGrad_();
        using var opt = new AdamW([w, b], lr: 0.05, weightDecay: 0);
        output.WriteLine($"regression fit: 256 x 8, AdamW lr 0.05, {steps} steps");
        double first = double.NaN, last = double.NaN;
        for (var step = 1; step <= steps; step++)
        {
            using var stepScope = Torch.NewScope();
            var loss = Functional.MseLoss(x.Matmul(w) + b, y);
            opt.ZeroGrad();
            loss.Backward();
            opt.Step();
            last = loss.Item();
            if (step == 1) first = last;
            if (step == 1 || step % Math.Max(1, steps / 8) == 0 || step == steps)
                output.WriteLine($"  step {step,4}  loss {last:E3}");
        }
        if (!(last < first / 100))
            throw new InvalidOperationException($"the regression fit failed: its loss went from {first:E3} to {last:E3}, not 100x lower");
        output.WriteLine($"ok: loss fell {first / last:F0}x");
        return 0;
    }
}
