using System.Diagnostics;
using System.Globalization;
using Rlhf.Shell.Config;
using Rlhf.Shell.Training;
using Rlhf.Shell.Training.Online;

namespace Rlhf.Bench;

/// <summary>
/// The asynchronous loop against the synchronous one: the same online DPO run (quickstart config: tiny llama, byte tokenizer,
/// synthetic task, a fixed number of steps and so of optimizer steps) synchronous (libtorch's thread count, and one thread),
/// asynchronous at max_staleness 0 (two threads,
/// no overlap: the thread hand-off's cost), at max_staleness 1 (async_rlhf: generation of step n + 1 overlaps training of
/// step n) and at max_staleness 1 with in-flight updates (PipelineRL; K/V kept, and recomputed), for each seed: wall clock, the final task reward (mean <c>objective/scores</c> of the last 3 steps: the synthetic
/// task's rule reward is its gold reward), the mean generator and trainer idle ratios and weight-sync time, and the largest
/// |generator − trainer| logprob of any token (off-policy by the lag when max_staleness ≥ 1).
/// <c>bench -- async [STEPS] [SEEDS] [key=value …]</c>.
/// </summary>
public sealed class AsyncBench : IBenchSuite
{
    /// <inheritdoc />
    public string Name => "async";

    /// <inheritdoc />
    public string Description => "online DPO synchronous vs asynchronous (max_staleness 0 and 1, in-flight with K/V kept or recomputed): wall clock, final reward, idle ratios";

    /// <summary>Per mode, over seeds: wall seconds, episodes (prompt–completion pairs trained on) and mean weight-sync seconds.</summary>
    public sealed record ModeResult(List<double> Walls, List<long> Episodes, List<double> WeightSyncSeconds)
    {
        /// <summary>Episodes per wall second, over all seeds.</summary>
        public double EpisodesPerSecond => Episodes.Sum() / Walls.Sum();
    }

    /// <inheritdoc />
    public int Run(string[] args)
    {
        var steps = args.Length > 0 && int.TryParse(args[0], out var s) ? s : 20;
        var seeds = args.Length > 1 && int.TryParse(args[1], out var n) ? n : 2;
        var results = Measure(steps, seeds, [.. args.Skip(2)], print: true);
        var sync = results["sync"].Walls.Average();
        foreach (var (mode, r) in results.Skip(1))
            Console.WriteLine($"{mode}: {sync / r.Walls.Average():F2}× the synchronous wall clock (mean over seeds)");
        return 0;
    }

    /// <summary>
    /// Runs every mode for each seed (order rotated over seeds, after one unmeasured warm-up run) and returns the
    /// results by mode, "sync" first; with <paramref name="print"/> also the per-run table.
    /// </summary>
    public static Dictionary<string, ModeResult> Measure(int steps, int seeds, string[] extra, bool print)
    {
        var file = Path.Combine(FindRoot(), "configs", "quickstart.yaml");
        (string Mode, string[] Keys)[] modes =
        [
            ("sync", ["training.async=false"]),
            ("sync 1 thread", ["training.async=false", "training.trainer_threads=1"]),
            ("async s=0", ["training.async=true", "training.max_staleness=0"]),
            ("async s=1", ["training.async=true", "training.max_staleness=1"]),
            ("inflight s=1", ["training.async=true", "training.max_staleness=1", "training.async_mode=inflight"]),
            ("inflight recompute s=1", ["training.async=true", "training.max_staleness=1", "training.async_mode=inflight", "training.kv_on_update=recompute"]),
        ];
        if (print)
            Console.WriteLine($"async: {Path.GetFileName(file)}, online DPO, {steps} steps, seeds 1…{seeds}, intra-op threads {Rlhf.Torch.Torch.NumThreads}, " +
                $"BLAS {Rlhf.Torch.BlasKernels.Threading} threads, OPENBLAS_NUM_THREADS={Environment.GetEnvironmentVariable("OPENBLAS_NUM_THREADS") ?? "unset"}");
        var table = new Table("mode", "seed", "wall s", "final reward", "generator idle", "trainer idle", "weight sync ms", "max |Δ logprob|");
        var results = modes.ToDictionary(m => m.Mode, _ => new ModeResult([], [], []));
        RunOnce(file, 2, 0, ["training.async=true", "training.max_staleness=1", .. extra]);   // warm-up: JIT and first-use costs, not measured
        for (var seed = 1; seed <= seeds; seed++)
            foreach (var (mode, keys) in modes.Skip(seed % modes.Length).Concat(modes.Take(seed % modes.Length)))   // rotate the order over seeds
            {
                var dir = Path.Combine(Path.GetTempPath(), $"rlhf-bench-async-{Environment.ProcessId}-{seed}-{results[mode].Walls.Count}-{mode.Replace(' ', '_').Replace('=', '_')}");
                string[] overrides = [$"training.max_steps={steps}", $"training.output_dir={dir}", "training.logging_steps=1", "training.save_steps=0", $"training.seed={seed}", .. keys, .. extra];
                var config = ConfigLoader.Load(file, overrides).Match(c => c, e => throw new ArgumentException(ConfigLoader.Format(e)));
                try
                {
                    using var run = TrainingRun.Open(config);
                    var clock = Stopwatch.StartNew();
                    OnlineTrainer.Run(config, run);
                    var wall = clock.Elapsed.TotalSeconds;
                    var h = run.History;
                    double Mean(string key, int skip = 1) => h.Skip(skip).DefaultIfEmpty(h[^1]).Average(r => r.Values.GetValueOrDefault(key));
                    results[mode].Walls.Add(wall);
                    results[mode].Episodes.Add(h[^1].Episode);
                    results[mode].WeightSyncSeconds.Add(Mean("timing/weight_sync_s"));
                    var reward = h.TakeLast(3).Average(r => r.Values["objective/scores"]);
                    table.Row(mode, seed.ToString(CultureInfo.InvariantCulture), wall.ToString("F2", CultureInfo.InvariantCulture), reward.ToString("F3", CultureInfo.InvariantCulture),
                        Mean("timing/generator_idle_ratio").ToString("P0", CultureInfo.InvariantCulture), Mean("timing/trainer_idle_ratio").ToString("P0", CultureInfo.InvariantCulture),
                        (1000 * Mean("timing/weight_sync_s")).ToString("F2", CultureInfo.InvariantCulture),
                        h.Max(r => r.Values["sampling/sampling_logp_difference/max"]).ToString("E1", CultureInfo.InvariantCulture));
                }
                finally
                {
                    if (Directory.Exists(dir)) Directory.Delete(dir, true);
                }
            }
        if (print) table.Print();
        return results;
    }

    private static void RunOnce(string file, int steps, int seed, string[] keys)
    {
        var dir = Path.Combine(Path.GetTempPath(), $"rlhf-bench-async-{Environment.ProcessId}-warmup");
        string[] overrides = [$"training.max_steps={steps}", $"training.output_dir={dir}", "training.save_steps=0", $"training.seed={seed}", .. keys];
        var config = ConfigLoader.Load(file, overrides).Match(c => c, e => throw new ArgumentException(ConfigLoader.Format(e)));
        try
        {
            using var run = TrainingRun.Open(config);
            OnlineTrainer.Run(config, run);
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, true);
        }
    }

    private static string FindRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "Rlhf.sln"))) return d.FullName;
        return Directory.GetCurrentDirectory();
    }
}
