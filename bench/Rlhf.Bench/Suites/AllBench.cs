using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using Rlhf.Torch;

namespace Rlhf.Bench.Suites;

using Torch = Rlhf.Torch.Torch;

/// <summary>
/// The <c>all</c> suite: one table, every row measured side by side in this run — training step (llama ~3M and ~20M,
/// forward+backward) Rlhf vs PyTorch eager, generation tokens/s paged vs static batch vs PyTorch eager KV-cached
/// sampling, ZeRO 0–3 per-rank model-state bytes vs the 16Ψ formulas (ZeRO paper, Rajbhandari et al. 2020, §5) and
/// step time at world size 2, and a labelled slot for asynchronous vs synchronous online DPO.
/// Peers run in Debian's python3-torch (the same libtorch) under the same OPENBLAS_CORETYPE, OpenBLAS build, malloc settings and thread count.
/// Options: --quick (shorter timing windows, 16 prompts for generation).
/// </summary>
public sealed class AllBench : IBenchSuite
{
    /// <inheritdoc />
    public string Name => "all";

    /// <inheritdoc />
    public string Description => "one table: training step, generation, ZeRO memory/step, async slot — Rlhf vs PyTorch eager side by side";

    /// <inheritdoc />
    public int Run(string[] args)
    {
        var quick = args.Contains("--quick");
        var machine = Machine.Line;   // before the generation suite drops to one intra-op thread
        var threads = Torch.NumThreads;
        var repo = RepoRoot();
        var python = PythonWithTorch(out var pythonNote);
        var table = new Table("row", "Rlhf", "PyTorch eager", "ratio", "notes");

        // Training step.
        const int batch = 4, T = 256;
        var (peak, rows) = ModelsBench.Measure(batch, T, quick ? 1.0 : 4.0, fwdBwdOnly: true);
        var peer = python is null ? [] : ModelsPeer(python, Path.Combine(repo, "bench", "peers", "models_pytorch.py"), quick);
        foreach (var r in rows)
        {
            var p = peer.GetValueOrDefault(r.Label);
            table.Row($"{r.Label} fwd+bwd tokens/s", $"{r.TokensPerSecond:F0}", p is null ? "n/a" : $"{p.Value.TokensPerSecond:F0}",
                p is null ? "" : $"{r.TokensPerSecond / p.Value.TokensPerSecond:F2}×",
                $"{r.Gflops:F1} GFLOP/s = {100 * r.Gflops / peak:F0}% of matmul peak {peak:F1}" + (p is null ? "" : $"; peer {p.Value.Gflops:F1} GFLOP/s"));
        }

        // Generation.
        var gen = new GenerationBench();
        var genArgs = quick ? new[] { "--prompts", "16" } : [];
        if (gen.Run(genArgs) != 0) Console.Error.WriteLine("generation suite failed");
        double? peerTps = null;
        if (python is not null)
        {
            var promptsFile = Path.Combine(Path.GetTempPath(), $"rlhf-bench-prompts-{Guid.NewGuid():N}.json");
            File.WriteAllText(promptsFile, JsonSerializer.Serialize(gen.Prompts));
            var (rc, output) = Exec(python, Path.Combine(repo, "bench", "peers", "generate_pytorch.py"), promptsFile, "4", "128", Torch.NumThreads.ToString(CultureInfo.InvariantCulture));
            File.Delete(promptsFile);
            var m = Regex.Match(output, @"generate: (\d+) tokens in ([\d.]+) s");
            if (rc == 0 && m.Success) peerTps = double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) / double.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture);
            else Console.Error.WriteLine($"generation peer failed ({rc}): {output}");
        }
        table.Row("generation tokens/s, paged", $"{gen.PagedTokensPerSecond:F0}", peerTps is null ? "n/a" : $"{peerTps:F0}",
            peerTps is null ? "" : $"{gen.PagedTokensPerSecond / peerTps:F2}×", $"forward at {gen.ForwardShareOfLimit:P0} of its weight-matmul limit; peer: HF-style KV-cached sampling, static batch");
        table.Row("generation tokens/s, static batch", $"{gen.StaticTokensPerSecond:F0}", "", "",
            $"paged / static = {gen.PagedTokensPerSecond / gen.StaticTokensPerSecond:F2}× (target ≥ 3×)");

        // ZeRO at world size 2.
        if (EngineBench.Run(["steps=" + (quick ? "2" : "5")]) != 0)
            table.Row("ZeRO 0–3 at world size 2", "failed", "", "", "the engine suite's workers failed (see above); rerun `-- engine`");
        else
        foreach (var r in EngineBench.LastRows)
        {
            var stage = r.GetProperty("stage").GetInt32();
            var psi = r.GetProperty("params").GetInt64();
            var measured = r.GetProperty("model_states").GetInt64();
            var formula = ModelStateBytes(stage, psi, 2);
            table.Row($"ZeRO-{stage} model states/rank (world 2)", $"{measured / 1048576.0:F1} MB", "", "",
                $"formula {formula / 1048576.0:F1} MB ({FormulaText(stage)}, Ψ = {psi / 1e6:F1}M, fp32 Adam); step {r.GetProperty("step_ms").GetDouble():F0} ms");
        }

        // Asynchronous vs synchronous online DPO on the quickstart model (the async suite's modes, fewer steps and one seed).
        Torch.NumThreads = threads;
        var asyncResults = AsyncBench.Measure(quick ? 20 : 60, quick ? 1 : 2, [], print: false);
        var syncRun = asyncResults["sync"];
        foreach (var (mode, r) in asyncResults)
            table.Row($"online DPO episodes/s, {mode}", $"{r.EpisodesPerSecond:F0}", "", mode == "sync" ? "1.00×" : $"{r.EpisodesPerSecond / syncRun.EpisodesPerSecond:F2}×",
                (mode == "sync" ? "quickstart model, 2 threads, ratio = mode / sync" : $"timing/weight_sync_s {1000 * r.WeightSyncSeconds.Average():F2} ms") +
                $"; {r.Episodes.Sum()} episodes in {r.Walls.Sum():F1} s");

        Console.WriteLine();
        Console.WriteLine(machine);
        if (pythonNote is not null) Console.WriteLine(pythonNote);
        Console.WriteLine($"batch {batch} × seq {T} float32 for training rows; ratio = Rlhf / PyTorch eager (> 1 is faster); fastest step after warm-up; " +
            "generation and ZeRO rows at one intra-op thread per process; on a shared machine rerun and compare ratios, not times");
        table.Print();
        return 0;
    }

    /// <summary>
    /// Per-rank model-state bytes with fp32 parameters and gradients and Adam's two fp32 moments (4 + 4 + 8 = 16 bytes per
    /// parameter, the "16Ψ" of stage 0): stage ≥ 1 divides the optimizer states by the world size, ≥ 2 also the
    /// gradients, 3 also the parameters.
    /// </summary>
    public static double ModelStateBytes(int stage, long psi, int world) =>
        psi * (4.0 / (stage >= 3 ? world : 1) + 4.0 / (stage >= 2 ? world : 1) + 8.0 / (stage >= 1 ? world : 1));

    private static string FormulaText(int stage) => stage switch
    {
        0 => "16Ψ",
        1 => "8Ψ + 8Ψ/N",
        2 => "4Ψ + 12Ψ/N",
        _ => "16Ψ/N",
    };

    private static Dictionary<string, (double TokensPerSecond, double Gflops)?> ModelsPeer(string python, string script, bool quick)
    {
        var (rc, output) = quick ? Exec(python, script, "--quick") : Exec(python, script);
        var result = new Dictionary<string, (double, double)?>();
        if (rc != 0) { Console.Error.WriteLine($"models peer failed ({rc}): {output}"); return result; }
        var blas = Regex.Match(output, @"BLAS (\S+)");
        if (blas.Success) Console.WriteLine($"models peer: BLAS {blas.Groups[1].Value} (Rlhf: {BlasKernels.LibraryDirectory ?? "no OpenBLAS"})");
        foreach (Match m in Regex.Matches(output, @"^(\S+)\s+fwd\+bwd\s+[\d.]+ ms\s+(\d+) tok/s\s+([\d.]+) GFLOP/s", RegexOptions.Multiline))
            result[m.Groups[1].Value] = (double.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture), double.Parse(m.Groups[3].Value, CultureInfo.InvariantCulture));
        return result;
    }

    /// <summary>Debian's python3 with torch, installing python3-torch when missing and possible; null with a note when not.</summary>
    private static string? PythonWithTorch(out string? note)
    {
        note = null;
        const string python = "/usr/bin/python3";
        if (File.Exists(python) && Exec(python, "-c", "import torch").Code == 0) return python;
        Console.Error.WriteLine("PyTorch peer: python3-torch missing; trying `apt-get install -y python3-torch` …");
        var sudo = Environment.UserName == "root" ? "" : "sudo -n ";
        var (rc, output) = Exec("/bin/sh", "-c", $"{sudo}apt-get install -y --no-install-recommends python3-torch");
        if (rc == 0 && File.Exists(python) && Exec(python, "-c", "import torch").Code == 0) return python;
        note = $"PyTorch eager peer unavailable: could not install python3-torch ({output.Trim().Split('\n').LastOrDefault()}); install it with `apt-get install python3-torch` and rerun. Peer columns say n/a.";
        Console.Error.WriteLine(note);
        return null;
    }

    private static (int Code, string Output) Exec(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["RLHF_NUM_THREADS"] = Torch.NumThreads.ToString(CultureInfo.InvariantCulture);
        // The same OpenBLAS build as this process (its OpenMP build, which the shim links ahead of libtorch's
        // libblas.so.3): python3-torch would otherwise load the alternatives' pthread build.
        foreach (var (key, value) in Allocator.EnvironmentForPeers) psi.Environment[key] = value;   // the same malloc settings, too
        if (BlasKernels.LibraryDirectory is { } blasDir && blasDir.EndsWith("openblas-openmp", StringComparison.Ordinal))
            psi.Environment["LD_LIBRARY_PATH"] = blasDir + (psi.Environment.TryGetValue("LD_LIBRARY_PATH", out var ld) && !string.IsNullOrEmpty(ld) ? ":" + ld : "");
        try
        {
            using var p = Process.Start(psi)!;
            var err = p.StandardError.ReadToEndAsync();
            var output = p.StandardOutput.ReadToEnd();
            p.WaitForExit();
            return (p.ExitCode, output + err.Result);
        }
        catch (System.ComponentModel.Win32Exception e) { return (127, e.Message); }
    }

    private static string RepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Rlhf.sln"))) dir = dir.Parent;
        return dir?.FullName ?? Directory.GetCurrentDirectory();
    }
}
