using System.Globalization;
using Rlhf.Shell.Config;
using Rlhf.Shell.Training;
using Rlhf.Shell.Training.Online;

namespace Rlhf.Bench;

/// <summary>
/// Where a step of the online loop spends its time: online DPO on the quickstart config and PPO on configs/ppo.yaml (tiny
/// llama, byte tokenizer, synthetic task; PPO adds the critic's forward to the rollout phase and its backward and step to
/// training), the per-phase seconds of each step (generate, score, reference/rollout logprobs and values, train) averaged over
/// the steps after the first (warm-up), and episodes and generated tokens per second.
/// <c>bench -- train [STEPS] [CONFIG] [key=value …]</c> (a CONFIG runs that one alone).
/// </summary>
public sealed class TrainBench : IBenchSuite
{
    /// <inheritdoc />
    public string Name => "train";

    /// <inheritdoc />
    public string Description => "online DPO and PPO on the quickstart model: per-phase seconds per step and episodes/s";

    /// <inheritdoc />
    public int Run(string[] args)
    {
        var steps = args.Length > 0 && int.TryParse(args[0], out var s) ? s : 20;
        var files = args.Length > 1 ? [args[1]] : new[] { "quickstart.yaml", "ppo.yaml" }.Select(f => Path.Combine(FindRoot(), "configs", f)).ToArray();
        foreach (var file in files) Measure(file, steps, args.Skip(2).ToArray());
        return 0;
    }

    private static void Measure(string file, int steps, string[] extra)
    {
        var dir = Path.Combine(Path.GetTempPath(), "rlhf-bench-train-" + Environment.ProcessId);
        string[] overrides = [$"training.max_steps={steps}", $"training.output_dir={dir}", "training.logging_steps=1", .. extra];
        var config = ConfigLoader.Load(file, overrides).Match(c => c, e => throw new ArgumentException(ConfigLoader.Format(e)));
        var plan = OnlinePlan.From(config);
        try
        {
            using var run = TrainingRun.Open(config);
            OnlineTrainer.Run(config, run);
            var measured = run.History.Skip(1).ToArray();
            if (measured.Length == 0) measured = [.. run.History];
            double Mean(string key) => measured.Average(r => r.Values[key]);
            var phases = new[] { "timing/generate_s", "timing/score_s", "timing/reference_s", "timing/train_s" };
            var total = phases.Sum(Mean);
            Console.WriteLine($"train: {Path.GetFileName(file)}, {AlgorithmName(config)}, {plan.RolloutsPerStep} rollouts per step, {steps} steps ({measured.Length} measured), max_new_tokens {config.Generation.MaxNewTokens}");
            var table = new Table("phase", "s/step", "share");
            foreach (var p in phases)
                table.Row(p["timing/".Length..^2], Mean(p).ToString("F4", CultureInfo.InvariantCulture), (Mean(p) / total).ToString("P0", CultureInfo.InvariantCulture));
            table.Row("total", total.ToString("F4", CultureInfo.InvariantCulture), "100 %");
            table.Print();
            Console.WriteLine($"episodes/s {Mean("episodes_per_s"):F1}   tokens/s {Mean("tokens_per_s"):F0}");
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, true);
        }
    }

    private static string AlgorithmName(Rlhf.Settings.RlhfConfig c) => Rlhf.Settings.AlgorithmYaml.ToYaml(c.Training.Algorithm);

    private static string FindRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "Rlhf.sln"))) return d.FullName;
        return Directory.GetCurrentDirectory();
    }
}
