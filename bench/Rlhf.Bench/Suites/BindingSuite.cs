using System.Diagnostics;
using Rlhf.Torch;

namespace Rlhf.Bench;

using Torch = Rlhf.Torch.Torch;

/// <summary>
/// The binding's overhead: a 4-element add per call (scope bookkeeping included) and matmul 1024³ float32,
/// beside the same work in raw libtorch C++ (the floor) and PyTorch eager (Debian's python3-torch).
/// </summary>
public sealed class BindingSuite : IBenchSuite
{
    /// <inheritdoc />
    public string Name => "binding";

    /// <inheritdoc />
    public string Description => "per-call cost of a 4-element add and matmul GFLOP/s, beside raw libtorch C++ and PyTorch eager";

    /// <inheritdoc />
    public int Run(string[] args)
    {
        var repo = FindRepo();
        var table = new Table("implementation", "add 4 elems (us/call)", "matmul 1024^3 (GFLOP/s)", "note");
        var (addUs, gflops) = MeasureBinding();
        table.Row("Rlhf.Torch (C#)", addUs.ToString("F3"), gflops.ToString("F1"), "scope per 100 calls, disposal included");
        var cpp = RunCppPeer(repo);
        table.Row("libtorch C++ (floor)", cpp?.Add.ToString("F3") ?? "n/a", cpp?.Gflops.ToString("F1") ?? "n/a", cpp is null ? "g++ build failed" : "same libtorch, no binding");
        var py = RunPythonPeer(repo);
        table.Row("PyTorch eager (Python)", py?.Add.ToString("F3") ?? "n/a", py?.Gflops.ToString("F1") ?? "n/a", py is null ? "apt-get install python3-torch" : "Debian python3-torch");
        Console.WriteLine($"threads: {Torch.NumThreads}, libtorch {Torch.Version}");
        table.Print();
        if (py is { } p)
        {
            Console.WriteLine($"add: binding / PyTorch = {addUs / p.Add:F2} (target < 1)");
            Console.WriteLine($"matmul: binding / PyTorch = {gflops / p.Gflops:F2} (target within 10%)");
        }
        return 0;
    }

    private static (double AddUs, double Gflops) MeasureBinding()
    {
        using var outer = Torch.NewScope();
        var a = Torch.Ones([4]);
        var b = Torch.Ones([4]);
        const int n = 1_000_000, perScope = 100;
        for (var i = 0; i < 100; i++) { using var s = Torch.NewScope(); for (var j = 0; j < perScope; j++) _ = a + b; }
        var sw = Stopwatch.StartNew();
        for (var i = 0; i < n / perScope; i++)
        {
            using var s = Torch.NewScope();
            for (var j = 0; j < perScope; j++) _ = a + b;
        }
        var addUs = sw.Elapsed.TotalMicroseconds / n;

        using var gen = new Generator(0);
        var x = Torch.Randn([1024, 1024], gen);
        var y = Torch.Randn([1024, 1024], gen);
        for (var i = 0; i < 3; i++) x.Matmul(y).Dispose();
        const int reps = 20;
        sw.Restart();
        for (var i = 0; i < reps; i++) x.Matmul(y).Dispose();
        return (addUs, 2.0 * 1024 * 1024 * 1024 * reps / sw.Elapsed.TotalSeconds / 1e9);
    }

    private static (double Add, double Gflops)? RunCppPeer(string repo)
    {
        var src = Path.Combine(repo, "bench", "peers", "add_floor.cpp");
        var exe = Path.Combine(Path.GetTempPath(), "rlhf_add_floor");
        if (!File.Exists(exe) || File.GetLastWriteTimeUtc(exe) < File.GetLastWriteTimeUtc(src))
        {
            var (rc, _) = Exec("g++", $"-O2 -std=c++17 {src} -I/usr/include/torch/csrc/api/include -ltorch_cpu -lc10 -o {exe}");
            if (rc != 0) return null;
        }
        return Parse(Exec(exe, "").Output);
    }

    private static (double Add, double Gflops)? RunPythonPeer(string repo)
    {
        var (rc, output) = Exec("/usr/bin/python3", Path.Combine(repo, "bench", "peers", "add_pytorch.py"));
        return rc == 0 ? Parse(output) : null;
    }

    private static (double, double)? Parse(string output)
    {
        var kv = output.Split([' ', '\n'], StringSplitOptions.RemoveEmptyEntries)
            .Select(p => p.Split('=')).Where(p => p.Length == 2).ToDictionary(p => p[0], p => double.Parse(p[1], System.Globalization.CultureInfo.InvariantCulture));
        return kv.TryGetValue("add_us", out var a) && kv.TryGetValue("matmul_gflops", out var g) ? (a, g) : null;
    }

    private static (int Code, string Output) Exec(string file, string args)
    {
        try
        {
            using var p = Process.Start(new ProcessStartInfo(file, args) { RedirectStandardOutput = true, RedirectStandardError = true })!;
            var o = p.StandardOutput.ReadToEnd();
            p.StandardError.ReadToEnd();
            p.WaitForExit();
            return (p.ExitCode, o);
        }
        catch (System.ComponentModel.Win32Exception) { return (-1, ""); }
    }

    private static string FindRepo()
    {
        var d = new DirectoryInfo(AppContext.BaseDirectory);
        while (d is not null && !File.Exists(Path.Combine(d.FullName, "Rlhf.sln"))) d = d.Parent;
        return d?.FullName ?? Directory.GetCurrentDirectory();
    }
}
