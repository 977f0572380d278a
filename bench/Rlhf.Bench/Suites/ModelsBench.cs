using System.Diagnostics;
using Rlhf.Core.Models;
using Rlhf.Torch;

namespace Rlhf.Bench.Suites;

using Torch = Rlhf.Torch.Torch;

/// <summary>
/// Forward and forward+backward throughput of llama-family models on CPU (float32, sequence 256), in tokens/s
/// and achieved GFLOP/s, against the machine's measured float32 matmul peak (1024³).
/// FLOPs per token: forward 2N + 4·L·T·D (attention scores and weighted sum, full square), forward+backward
/// 3× that, where N counts matmul parameters (everything but the embedding lookup).
/// Times are the fastest step after warm-up (as for the matmul peak), so other load on a shared machine
/// inflates them less; "cpu" is the process CPU time over wall time × threads during the timed steps.
/// Args: [--quick] (shorter runs), [--batch B] (default 4), [--seconds S] (per row), [--only llama-3M[/fwd+bwd]] (one model or row).
/// </summary>
public sealed class ModelsBench : IBenchSuite
{
    /// <inheritdoc />
    public string Name => "models";

    /// <inheritdoc />
    public string Description => "llama ~3M and ~20M: fwd and fwd+bwd tokens/s and GFLOP/s vs matmul peak (CPU, T=256)";

    private sealed record Case(string Label, ModelConfig Config);

    /// <summary>
    /// One measured step: model, mode ("fwd" or "fwd+bwd"), fastest step, throughput, CPU utilisation, and the fewest process
    /// CPU seconds a step took (on a loaded machine the figure to compare side by side: it excludes other jobs' turns on the cores).
    /// </summary>
    public sealed record Measurement(string Label, long Parameters, long MatmulParameters, string Mode, double Seconds, double TokensPerSecond, double Gflops, double Utilisation,
        double CpuSeconds = double.NaN);

    /// <summary>The matmul peak (GFLOP/s) and the llama-3M and llama-20M steps at batch × <paramref name="t"/>, float32.</summary>
    public static (double Peak, List<Measurement> Rows) Measure(int batch, int t, double seconds, bool fwdBwdOnly, string? only = null)
    {
        var peak = MatmulPeak(seconds);
        Case[] cases =
        [
            new("llama-3M", ModelConfig.Llama(1024, 256, 512, 4, 4) with { MaxPositionEmbeddings = t }),
            new("llama-20M", ModelConfig.Llama(2048, 512, 1376, 6, 8) with { MaxPositionEmbeddings = t }),
        ];
        var rows = new List<Measurement>();
        foreach (var c in cases)
        {
            using var w = ModelInit.Random(c.Config, 0);
            var total = w.ParameterCount;
            var n = total - w[WeightNames.Embedding(c.Config)].NumEl;
            var tokens = (double)batch * t;
            var fwdFlopsPerToken = 2.0 * n + 4.0 * c.Config.NumHiddenLayers * t * c.Config.HiddenSize;
            foreach (var mode in fwdBwdOnly ? new[] { "fwd+bwd" } : new[] { "fwd", "fwd+bwd" })
            {
                if (only is not null && only != c.Label && only != $"{c.Label}/{mode}") continue;
                var backward = mode == "fwd+bwd";
                var (sec, util, cpu) = TimeStep(w, batch, t, backward, seconds);
                var flops = (backward ? 3 : 1) * fwdFlopsPerToken * tokens;
                rows.Add(new(c.Label, total, n, mode, sec, tokens / sec, flops / sec / 1e9, util, cpu));
            }
        }
        return (peak, rows);
    }

    /// <inheritdoc />
    public int Run(string[] args)
    {
        var quick = args.Contains("--quick");
        var batch = args.SkipWhile(a => a != "--batch").Skip(1).Select(int.Parse).FirstOrDefault(4);
        const int T = 256;
        var seconds = args.SkipWhile(a => a != "--seconds").Skip(1).Select(double.Parse).FirstOrDefault(quick ? 1.0 : 4.0);
        var only = args.SkipWhile(a => a != "--only").Skip(1).FirstOrDefault();   // e.g. llama-3M or llama-3M/fwd+bwd
        Console.WriteLine($"libtorch {Torch.Version}, {Torch.NumThreads} intra-op threads, {Environment.ProcessorCount} logical CPUs; batch {batch} × seq {T}, float32");
        var (peak, measured) = Measure(batch, T, seconds, fwdBwdOnly: false, only);
        Console.WriteLine($"matmul peak (1024³ float32): {peak:F1} GFLOP/s");
        Console.WriteLine();
        var rows = new List<string[]> { new[] { "model", "params", "matmul N", "mode", "ms/step", "tokens/s", "GFLOP/s", "% peak", "cpu", "cpu ms/step" } };
        foreach (var m in measured)
            rows.Add([m.Label, $"{m.Parameters / 1e6:F2}M", $"{m.MatmulParameters / 1e6:F2}M", m.Mode, $"{m.Seconds * 1e3:F1}", $"{m.TokensPerSecond:F0}",
                $"{m.Gflops:F1}", $"{100 * m.Gflops / peak:F0}%", $"{100 * m.Utilisation:F0}%", $"{m.CpuSeconds * 1e3:F1}"]);
        PrintTable(rows);
        return 0;
    }

    /// <summary>Best-of float32 1024³ matmul rate in GFLOP/s at the current intra-op threads.</summary>
    public static double MatmulPeak(double seconds)
    {
        using var scope = Torch.NewScope();
        using var g = new Generator(0);
        var a = Torch.Randn([1024, 1024], g);
        var b = Torch.Randn([1024, 1024], g);
        for (var i = 0; i < 3; i++) a.Mm(b).Dispose();
        var best = double.MaxValue;
        var sw = Stopwatch.StartNew();
        var iters = 0;
        while (sw.Elapsed.TotalSeconds < seconds / 2 || iters < 5)
        {
            var t0 = Stopwatch.GetTimestamp();
            a.Mm(b).Dispose();
            best = Math.Min(best, Stopwatch.GetElapsedTime(t0).TotalSeconds);
            iters++;
        }
        return 2.0 * 1024 * 1024 * 1024 / best / 1e9;
    }

    /// <summary>
    /// One measured step on random ids [batch, t]: a no-grad forward, or forward, next-token-free cross-entropy of the
    /// logits against the ids, backward, and the gradients zeroed. Parameters must require grad for the latter.
    /// </summary>
    internal static void Step(ModelWeights w, int batch, int t, bool backward, Generator g)
    {
        using var scope = Torch.NewScope();
        var ids = Torch.Randint(0, w.Config.VocabSize, [batch, t], g);
        if (!backward)
        {
            using (Torch.NoGrad()) Transformer.Forward(w, ids);
            return;
        }
        var logits = Transformer.Forward(w, ids);
        var loss = Functional.CrossEntropy(logits.Reshape(-1, w.Config.VocabSize), ids.Reshape(-1));
        loss.Backward();
        foreach (var p in w.Tensors.Values) p.ZeroGrad();
    }

    /// <summary>Fastest step in seconds (after two warm-up steps; at least three steps and <paramref name="seconds"/>), CPU utilisation, fewest CPU seconds per step.</summary>
    private static (double Seconds, double Utilisation, double CpuSeconds) TimeStep(ModelWeights w, int batch, int t, bool backward, double seconds)
    {
        using var g = new Generator(1);
        foreach (var p in w.Tensors.Values) p.RequiresGrad_(backward);
        void Step() => ModelsBench.Step(w, batch, t, backward, g);
        Step(); Step();
        var sw = Stopwatch.StartNew();
        var cpu0 = Process.GetCurrentProcess().TotalProcessorTime;
        var steps = 0;
        double best = double.MaxValue, bestCpu = double.MaxValue;
        while (steps < 3 || sw.Elapsed.TotalSeconds < seconds)
        {
            var c0 = CpuClock.Process();
            var t0 = Stopwatch.GetTimestamp();
            Step();
            best = Math.Min(best, Stopwatch.GetElapsedTime(t0).TotalSeconds);
            bestCpu = Math.Min(bestCpu, CpuClock.Process() - c0);
            steps++;
        }
        var util = (Process.GetCurrentProcess().TotalProcessorTime - cpu0).TotalSeconds / (sw.Elapsed.TotalSeconds * Torch.NumThreads);
        foreach (var p in w.Tensors.Values) p.RequiresGrad_(false);
        return (best, util, bestCpu);
    }

    private static void PrintTable(List<string[]> rows)
    {
        var widths = Enumerable.Range(0, rows[0].Length).Select(i => rows.Max(r => r[i].Length)).ToArray();
        for (var r = 0; r < rows.Count; r++)
        {
            Console.WriteLine(string.Join("  ", rows[r].Select((cell, i) => i < 1 || r == 0 && i == 3 || i == 3 ? cell.PadRight(widths[i]) : cell.PadLeft(widths[i]))));
            if (r == 0) Console.WriteLine(string.Join("  ", widths.Select(wd => new string('-', wd))));
        }
    }
}
