using System.Diagnostics;
using System.Globalization;
using Rlhf.Settings;
using Rlhf.Shell.Config;
using Rlhf.Shell.Engine;
using Rlhf.Shell.Generation;
using Rlhf.Shell.Io.Tokenizers;
using Rlhf.Shell.Telemetry;
using Rlhf.Shell.Training.Data;
using Rlhf.Shell.Training.Offline;
using Rlhf.Shell.Training.Online;
using Rlhf.Shell.Training.Rewards;
using Rlhf.Shell.Training.Tasks;

namespace Rlhf.Shell.Training.Quickstart;

/// <summary>What <c>rlhf quickstart</c> was asked to do.</summary>
/// <param name="ConfigDirectory">The folder of the stage configs (<c>configs/quickstart</c>: base, sft, reward_model, online; <c>quick/</c> for the reduced budget).</param>
/// <param name="OutputDirectory">The run directory.</param>
/// <param name="Quick">The reduced budget of <c>quick/*.yaml</c> (tests and CI).</param>
/// <param name="Sync">The synchronous online loop (<c>training.async=false</c>).</param>
/// <param name="Algorithm">The online algorithm instead of online.yaml's (online_dpo): ppo, rloo, bok, grpo, reinforce_pp.</param>
/// <param name="SweepStaleness">Also run the staleness sweep: {0, 1, 2, 4, 8} × {online_dpo, ppo, rloo, bok}.</param>
public sealed record QuickstartOptions(string ConfigDirectory, string OutputDirectory, bool Quick = false, bool Sync = false, string? Algorithm = null, bool SweepStaleness = false);

/// <summary>The three stage configs of a quickstart, resolved, with the pipeline's paths filled in.</summary>
/// <param name="Sft">Stage 1.</param>
/// <param name="RewardModel">Stage 2.</param>
/// <param name="Online">Stage 3.</param>
public sealed record QuickstartStages(RlhfConfig Sft, RlhfConfig RewardModel, RlhfConfig Online);

/// <summary>One cell of the staleness sweep: an algorithm at a staleness bound, its final gold win-rate, or why it did not run.</summary>
public sealed record SweepPoint(string Algorithm, long Staleness, double? GoldWinRate, double? GoldReward, double? KlToSft, string? Skipped);

/// <summary>What a quickstart left behind: the summary, the run directory and the files written (relative to it).</summary>
public sealed record QuickstartResult(QuickstartSummary Summary, string Directory, IReadOnlyList<string> Files, IReadOnlyList<SweepPoint> Sweep);

/// <summary>
/// The quickstart: a miniature of the async_rlhf paper's setup (Noukhovitch et al., "Asynchronous RLHF", 2024) on a built-in
/// task with a gold reward. (1) SFT of a tiny llama from random init on imperfect demonstrations; (2) a Bradley–Terry reward
/// model, started from the SFT policy as TRL's RewardTrainer starts from one, trained on pairs of SFT-policy samples
/// labelled by the gold reward (ties dropped) — the paper's proxy reward model; (3) online DPO (or another online
/// algorithm) from the SFT policy against the frozen proxy, with the gold reward of the training rollouts logged beside
/// the proxy's; (4) evaluation on held-out prompts, the SFT policy against the final one: gold reward, gold win-rate (ties
/// half), exact match, proxy reward, KL to SFT. Every stage is an ordinary run directory (metrics.jsonl/csv, TensorBoard,
/// final/); the top directory holds the pairs, plots, report.html and summary.json.
/// </summary>
public static class QuickstartPipeline
{
    /// <summary>Stage config names (files <c>NAME.yaml</c> in the config folder) and run sub-directories.</summary>
    public const string SftStage = "sft", RewardModelStage = "reward_model", OnlineStage = "online";

    /// <summary>The JSONL file of gold-labelled SFT-sample pairs in the run directory.</summary>
    public const string PairsFile = "reward_pairs.jsonl";

    /// <summary>The staleness sweep's points (algorithm, staleness, final gold win-rate or why it was skipped), when one ran.</summary>
    public const string SweepFile = "sweep.json";

    /// <summary>Staleness bounds of the sweep (the paper's figure).</summary>
    public static readonly long[] SweepStaleness = [0, 1, 2, 4, 8];

    /// <summary>Algorithms of the sweep.</summary>
    public static readonly string[] SweepAlgorithms = ["online_dpo", "ppo", "rloo", "bok"];

    /// <summary>The algorithms <c>--algorithm</c> accepts.</summary>
    public static readonly string[] Algorithms = ["online_dpo", "ppo", "rloo", "bok", "grpo", "reinforce_pp"];

    /// <summary>
    /// Loads the stage configs of <paramref name="o"/> with the run's paths as overrides (SFT → <c>sft/</c>; the reward model
    /// from <c>sft/final</c> on <c>reward_pairs.jsonl</c> → <c>reward_model/</c>; the online stage from <c>sft/final</c>
    /// against <c>reward_model/final</c> → <c>online/</c>). A missing file or folder, or any config error, is an
    /// <see cref="ArgumentException"/> naming the file and what to do.
    /// </summary>
    public static QuickstartStages Load(QuickstartOptions o)
    {
        if (o.Algorithm is { } a && !Algorithms.Contains(a))
            throw new ArgumentException($"--algorithm: unknown online algorithm '{a}'; expected one of {string.Join(", ", Algorithms)}");
        if (!Directory.Exists(o.ConfigDirectory))
            throw new ArgumentException($"quickstart configs not found: {Path.GetFullPath(o.ConfigDirectory)} does not exist; run from the repository root or pass --config DIR (the folder holding sft.yaml, reward_model.yaml, online.yaml)");
        var dir = Path.GetFullPath(o.OutputDirectory);
        var sftFinal = Path.Combine(dir, SftStage, "final");
        var sft = LoadStage(o, SftStage, [$"training.output_dir={Path.Combine(dir, SftStage)}"]);
        var rm = LoadStage(o, RewardModelStage,
        [
            $"training.output_dir={Path.Combine(dir, RewardModelStage)}", $"model.path={sftFinal}", $"data.path={Path.Combine(dir, PairsFile)}",
        ]);
        var online = LoadStage(o, OnlineStage, OnlineOverrides(dir, Path.Combine(dir, OnlineStage), o.Algorithm, o.Sync ? false : null, null));
        return new QuickstartStages(sft, rm, online);
    }

    private static string[] OnlineOverrides(string runDirectory, string stageDirectory, string? algorithm, bool? async, long? staleness) =>
    [
        $"training.output_dir={stageDirectory}",
        $"model.path={Path.Combine(runDirectory, SftStage, "final")}",
        $"reward.model_args.model_name_or_path={Path.Combine(runDirectory, RewardModelStage, "final")}",
        .. algorithm is null ? Array.Empty<string>() : [$"training.algorithm={algorithm}"],
        .. async is bool b ? [$"training.async={(b ? "true" : "false")}"] : Array.Empty<string>(),
        .. staleness is long s ? [$"training.max_staleness={s}"] : Array.Empty<string>(),
    ];

    private static RlhfConfig LoadStage(QuickstartOptions o, string stage, IReadOnlyList<string> overrides)
    {
        var file = Path.Combine(o.ConfigDirectory, o.Quick ? "quick" : "", stage + ".yaml");
        if (!File.Exists(file))
            throw new ArgumentException($"quickstart config {Path.GetFullPath(file)} not found; the folder passed as --config needs sft.yaml, reward_model.yaml, online.yaml (and quick/ for --quick)");
        return ConfigLoader.Load(file, overrides).Match(c => c,
            errors => throw new ArgumentException($"{file}: {string.Join("; ", errors.Select(e => e.ToString()))}"));
    }

    /// <summary>
    /// Runs the whole pipeline into <paramref name="o"/>'s output directory, reporting to <paramref name="progress"/>. Checks
    /// first — the output directory is writable, the configs load, the online loop supports the asked mode, the KV cache
    /// holds a request — so a newcomer's mistake costs a second, not a trained model.
    /// </summary>
    public static QuickstartResult Run(QuickstartOptions o, IRunProgress progress)
    {
        var wall = Stopwatch.StartNew();
        var dir = Path.GetFullPath(o.OutputDirectory);
        CheckWritable(dir);
        var stages = Load(o);
        CheckOnline(stages.Online);
        var arch = RoleModels.Config(stages.Sft.Model);
        KvBudget.Check(stages.Online, arch, progress.Note);
        KvBudget.Check(stages.RewardModel, arch, progress.Note);

        var seconds = new Dictionary<string, double>();
        var task = SyntheticTasks.From(stages.Sft.Data);
        var seed = stages.Sft.Training.Seed;
        var tokenizer = RoleModels.Tokenizer(stages.Sft.Tokenizer, stages.Sft.Model);
        var encoder = PromptEncoder.From(tokenizer, stages.Sft.Data, stages.Sft.Tokenizer);
        var prompts = TrainingData.Prompts(stages.Sft.Data, seed);
        var device = RoleModels.Device(stages.Sft.Training);

        // 1. SFT on imperfect demonstrations.
        var clock = Stopwatch.StartNew();
        var sftTrain = TrainingData.Completions(stages.Sft.Data, seed).Train.Count;
        var sft = Offline(stages.Sft, sftTrain, progress, SftStage);
        seconds[SftStage] = clock.Elapsed.TotalSeconds;
        progress.Note(string.Create(CultureInfo.InvariantCulture,
            $"sft: held-out greedy gold reward {At(sft.History, 0, "eval/gold_reward"):0.000} → {sft.Final.GetValueOrDefault("eval/gold_reward"):0.000}; policy in {sft.FinalDirectory}"));

        // 2. Pairs of SFT samples labelled by the gold reward, then the reward model.
        clock.Restart();
        var (pairs, ties, sampled) = SamplePairs(stages, task, prompts.Train.Select(encoder.Encode).ToArray(), tokenizer, device, sft.FinalDirectory);
        PolicySamples.WritePairs(Path.Combine(dir, PairsFile), pairs);
        progress.Note($"reward pairs: {pairs.Count} gold-labelled pairs of SFT samples from {sampled} prompts ({ties} ties dropped) → {PairsFile}");
        var rmTrain = pairs.Count - (int)Math.Round(pairs.Count * stages.RewardModel.Data.EvalFraction, MidpointRounding.AwayFromZero);
        var rm = Offline(stages.RewardModel, rmTrain, progress, RewardModelStage);
        var rmAccuracy = rm.Final.GetValueOrDefault("eval/accuracy", double.NaN);
        seconds[RewardModelStage] = clock.Elapsed.TotalSeconds;
        progress.Note(string.Create(CultureInfo.InvariantCulture, $"reward model: held-out pair accuracy {At(rm.History, 0, "eval/accuracy"):0.000} → {rmAccuracy:0.000}"));

        // 3. Online training against the learned reward model, and 4. the evaluation.
        var evalPrompts = prompts.Eval.Select(encoder.Encode).ToArray();
        var evaluator = new Evaluator(stages.Online, task, evalPrompts, tokenizer, device, sft.FinalDirectory);
        clock.Restart();
        var records = Online(stages.Online, Path.Combine(dir, OnlineStage), task, progress, OnlineStage);
        seconds[OnlineStage] = clock.Elapsed.TotalSeconds;
        clock.Restart();
        var eval = evaluator.Evaluate(Path.Combine(dir, OnlineStage, "final"));
        seconds["evaluation"] = clock.Elapsed.TotalSeconds;

        var sweep = new List<SweepPoint>();
        if (o.SweepStaleness)
        {
            clock.Restart();
            foreach (var alg in SweepAlgorithms)
                foreach (var s in SweepStaleness)
                    sweep.Add(SweepCell(o, dir, alg, s, task, evaluator, progress));
            seconds["sweep"] = clock.Elapsed.TotalSeconds;
        }

        var t = stages.Online.Training;
        var summary = new QuickstartSummary(AlgorithmYaml.ToYaml(t.Algorithm), t.Async, t.Async ? t.MaxStaleness : 0,
            eval.WinRate, eval.Sft.GoldReward, eval.Final.GoldReward, eval.Sft.ExactMatch, eval.Final.ExactMatch,
            eval.KlToSft, eval.ProxySft, eval.ProxyFinal, rmAccuracy, pairs.Count, evalPrompts.Length, wall.Elapsed.TotalSeconds, seconds);
        var files = QuickstartReport.Write(dir, summary, sft.History, rm.History, records, sweep);
        summary = summary with { WallSeconds = wall.Elapsed.TotalSeconds };
        summary.Write(dir);
        if (sweep.Count > 0)
            TrainingRun.WriteAtomically(Path.Combine(dir, SweepFile), System.Text.Json.JsonSerializer.Serialize(sweep, QuickstartSummary.Json) + "\n");
        return new QuickstartResult(summary, dir, [.. files, QuickstartSummary.FileName, PairsFile, .. sweep.Count > 0 ? [SweepFile] : Array.Empty<string>()], sweep);
    }

    /// <summary>Creates <paramref name="dir"/> and proves it writable; an <see cref="IOException"/> saying what to do otherwise.</summary>
    public static void CheckWritable(string dir)
    {
        try
        {
            Directory.CreateDirectory(dir);
            var probe = Path.Combine(dir, $".write-test-{Environment.ProcessId}");
            File.WriteAllText(probe, "");
            File.Delete(probe);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"output directory {dir} is not writable ({e.Message}); pass --output with a directory you can write");
        }
    }

    /// <summary>What the online loop cannot do, said before any model loads (with the flag that avoids it).</summary>
    private static void CheckOnline(RlhfConfig online)
    {
        try
        {
            OnlineTrainer.CheckSupported(online);
            _ = OnlinePlan.From(online);
        }
        catch (NotSupportedException e) when (online.Training.Async)
        {
            throw new NotSupportedException($"{e.Message} (run `rlhf quickstart --sync` for the synchronous loop)", e);
        }
    }

    private static double At(IReadOnlyList<MetricsRecord> history, long step, string key) =>
        history.Where(h => h.Step == step && h.Values.ContainsKey(key)).Select(h => h.Values[key]).DefaultIfEmpty(double.NaN).First();

    private static OfflineResult Offline(RlhfConfig config, int trainExamples, IRunProgress progress, string stage)
    {
        var (_, micro, gas) = DeepSpeedConfig.Batch(config.Engine, 1);
        var steps = OfflineStages.Steps(trainExamples, micro, gas, config.Training.NumTrainEpochs, config.Training.MaxSteps);
        using var run = TrainingRun.Open(config, console: progress.BeginStage(stage, steps));
        try { return OfflineStages.Run(config, run); }
        finally { progress.EndStage(); }
    }

    /// <summary>
    /// The online stage into <paramref name="stageDirectory"/> with the gold reward of its rollouts logged beside the proxy's
    /// (<see cref="GoldTap"/>); returns the logged records (gold included).
    /// </summary>
    private static IReadOnlyList<MetricsRecord> Online(RlhfConfig config, string stageDirectory, SyntheticTask task, IRunProgress progress, string stage)
    {
        var plan = OnlinePlan.From(config);
        Directory.CreateDirectory(stageDirectory);
        var registry = OnlineTrainer.DefaultRegistry();
        var source = OnlineTrainer.RewardSource(config, registry);
        using var _ = (source as MissingStopPenaltySource)?.Inner as IDisposable ?? source as IDisposable;
        var tap = new GoldTap(source, task);
        // The gold metrics join every record before the files see it: the run's own sinks are off, these replace them.
        var records = new RecordingSink();
        var sinks = new MetricsSinks([.. MetricsSinks.From(config.Logging, stageDirectory).Sinks, records, progress.BeginStage(stage, plan.Steps)]);
        var silent = config with { Logging = config.Logging with { Jsonl = false, Csv = false, Tensorboard = false } };
        using (var run = TrainingRun.Open(silent, stageDirectory, new GoldMetricsSink(tap, sinks)))
        {
            try { OnlineTrainer.Run(config, run, registry, reward: tap); }
            finally { progress.EndStage(); }
        }
        TrainingRun.WriteAtomically(Path.Combine(stageDirectory, TrainingRun.ResolvedConfigFile), ConfigLoader.ToYaml(config));
        return records.Records;
    }

    private sealed class RecordingSink : IMetricsSink
    {
        public List<MetricsRecord> Records { get; } = [];
        public void Write(MetricsRecord record) => Records.Add(record);
        public void Dispose() { }
    }

    /// <summary>
    /// Samples the SFT policy on the training prompts, in chunks, <c>generation.n</c> samples per prompt at
    /// <c>generation.temperature</c> of the reward-model config, until <c>data.num_examples</c> gold-labelled pairs are
    /// collected (ties dropped); fewer after every training prompt is an error naming the numbers.
    /// </summary>
    private static (IReadOnlyList<PreferenceText> Pairs, int Ties, int Prompts) SamplePairs(QuickstartStages stages, SyntheticTask task,
        IReadOnlyList<PromptExample> train, ITokenizer tokenizer, Rlhf.Torch.Device device, string sftDirectory)
    {
        var rm = stages.RewardModel;
        var want = rm.Data.NumExamples ?? throw new ArgumentException("reward_model.yaml: data.num_examples (the number of reward pairs to collect) is not set");
        var n = checked((int)(rm.Generation.N ?? 2));
        if (n < 2 || n % 2 != 0) throw new ArgumentException($"reward_model.yaml: generation.n = {n}; pairs need an even number of samples per prompt (2, 4, …)");
        var temperature = rm.Generation.Temperature ?? 1.0;
        var pairs = new List<PreferenceText>();
        var ties = 0;
        var used = 0;
        const int chunk = 512;
        while (pairs.Count < want && used < train.Count)
        {
            var part = train.Skip(used).Take(chunk).ToArray();
            var samples = PolicySamples.Sample(sftDirectory, rm.Generation, part, n, temperature, rm.Training.Seed * 7919 + used, tokenizer, device);
            var (p, t) = PolicySamples.GoldLabelledPairs(task, samples);
            pairs.AddRange(p);
            ties += t;
            used += part.Length;
        }
        if (pairs.Count < want)
            throw new ArgumentException(
                $"reward_model.yaml: data.num_examples asks for {want} pairs, but all {train.Count} training prompts gave {pairs.Count} ({ties} ties dropped); raise data.num_examples in base.yaml or generation.n, or lower the pairs asked for");
        return (pairs.Take(checked((int)want)).ToArray(), ties, used);
    }

    private static SweepPoint SweepCell(QuickstartOptions o, string dir, string algorithm, long staleness, SyntheticTask task, Evaluator evaluator, IRunProgress progress)
    {
        var name = $"{algorithm}-staleness{staleness}";
        var stageDir = Path.Combine(dir, "sweep", name);
        RlhfConfig config;
        try
        {
            config = LoadStage(o, OnlineStage, OnlineOverrides(dir, stageDir, algorithm, staleness > 0, staleness > 0 ? staleness : null));
            OnlineTrainer.CheckSupported(config);
            _ = OnlinePlan.From(config);
        }
        catch (Exception e) when (e is NotSupportedException or ArgumentException)
        {
            progress.Note($"sweep {name}: skipped ({e.Message})");
            return new SweepPoint(algorithm, staleness, null, null, null, e.Message);
        }
        Online(config, stageDir, task, progress, $"sweep {name}");
        var eval = evaluator.Evaluate(Path.Combine(stageDir, "final"));
        progress.Note(string.Create(CultureInfo.InvariantCulture, $"sweep {name}: gold win-rate {eval.WinRate:0.000}, gold reward {eval.Final.GoldReward:0.000}, KL {eval.KlToSft:0.000}"));
        return new SweepPoint(algorithm, staleness, eval.WinRate, eval.Final.GoldReward, eval.KlToSft, null);
    }
}

/// <summary>
/// The evaluation of a policy against the SFT policy on held-out prompts: one sample per prompt from each at the online
/// stage's temperature with the same per-prompt seeds (common random numbers, so the paired comparison is less noisy),
/// gold reward, exact match, gold win-rate (ties half), the proxy reward model's scores and the KL estimate.
/// </summary>
public sealed class Evaluator
{
    private readonly RlhfConfig online;
    private readonly SyntheticTask task;
    private readonly IReadOnlyList<PromptExample> prompts;
    private readonly ITokenizer tokenizer;
    private readonly Rlhf.Torch.Device device;
    private readonly string sftDirectory;
    private readonly double temperature;
    private readonly long seed;
    private RewardSample[]? sftSamples;
    private double[]? sftProxy;

    /// <summary>An evaluator of policies against the SFT policy in <paramref name="sftDirectory"/> on <paramref name="prompts"/>.</summary>
    public Evaluator(RlhfConfig online, SyntheticTask task, IReadOnlyList<PromptExample> prompts, ITokenizer tokenizer, Rlhf.Torch.Device device, string sftDirectory)
    {
        if (prompts.Count == 0) throw new ArgumentException("data.eval_fraction: the evaluation needs held-out prompts; raise data.eval_fraction or data.num_examples in base.yaml");
        this.online = online;
        this.task = task;
        this.prompts = prompts;
        this.tokenizer = tokenizer;
        this.device = device;
        this.sftDirectory = sftDirectory;
        temperature = online.Generation.Temperature ?? 1.0;
        seed = online.Training.Seed * 1_000_003 + 17;
    }

    /// <summary>The numbers of one evaluation.</summary>
    /// <param name="Sft">Gold reward and exact match of the SFT policy.</param>
    /// <param name="Final">Gold reward and exact match of the evaluated policy.</param>
    /// <param name="WinRate">Gold win-rate of the evaluated policy over the SFT policy, prompt by prompt.</param>
    /// <param name="KlToSft">Mean Σ_t log π − log π_SFT over the evaluated policy's samples.</param>
    /// <param name="ProxySft">Mean proxy (reward model) score of the SFT samples.</param>
    /// <param name="ProxyFinal">Mean proxy score of the evaluated policy's samples.</param>
    public sealed record Result(GoldEvaluation Sft, GoldEvaluation Final, double WinRate, double KlToSft, double ProxySft, double ProxyFinal);

    /// <summary>Evaluates the policy in <paramref name="policyDirectory"/> (a Hugging Face directory) against the SFT policy.</summary>
    public Result Evaluate(string policyDirectory)
    {
        var pad = tokenizer.PadId ?? tokenizer.EosId!.Value;
        using var reward = LearnedRewardSource.Load(online.Reward!, online, pad, device);
        if (sftSamples is null)
        {
            sftSamples = PolicySamples.Sample(sftDirectory, online.Generation, prompts, 1, temperature, seed, tokenizer, device).Select(s => s[0]).ToArray();
            sftProxy = Scores(reward, sftSamples);
        }
        var final = PolicySamples.Sample(policyDirectory, online.Generation, prompts, 1, temperature, seed, tokenizer, device).Select(s => s[0]).ToArray();
        var gold = (RewardSample s) => task.GoldReward(s.PromptText, s.CompletionText, s.FinishedWithStop);
        var winRate = GoldMetrics.WinRate(final.Select(gold).ToArray(), sftSamples.Select(gold).ToArray());
        var policyLp = PolicySamples.SequenceLogprobs(policyDirectory, final, temperature, pad, online.Engine, device);
        var sftLp = PolicySamples.SequenceLogprobs(sftDirectory, final, temperature, pad, online.Engine, device);
        var kl = policyLp.Zip(sftLp, (a, b) => a - b).Average();
        return new Result(GoldMetrics.Evaluate(task, sftSamples), GoldMetrics.Evaluate(task, final), winRate, kl, sftProxy!.Average(), Scores(reward, final).Average());
    }

    private static double[] Scores(IRewardSource reward, IReadOnlyList<RewardSample> samples)
    {
        using var scope = Rlhf.Torch.Torch.NewScope();
        return reward.Score(samples).To(Rlhf.Torch.ScalarType.Float64).ToArray<double>();
    }
}

/// <summary>The KV-cache check a newcomer needs before any model loads: can the cache hold one request of the online step, and the whole step?</summary>
public static class KvBudget
{
    /// <summary>
    /// Throws an <see cref="ArgumentException"/> naming <c>generation.kv_cache_memory_mb</c> and the size to set when one prompt's
    /// samples (prompt + max_new_tokens each) do not fit the cache; reports through <paramref name="note"/> when a whole step's
    /// batch does not (it still runs, more slowly, by preemption).
    /// </summary>
    public static void Check(RlhfConfig config, Rlhf.Core.Models.ModelConfig model, Action<string> note)
    {
        var g = config.Generation;
        var block = checked((int)g.BlockSize);
        var bytesPerBlock = KvCache.BytesPerBlock(model.NumHiddenLayers, block, model.NumKeyValueHeads, model.HeadDim, Rlhf.Torch.ScalarType.Float32);
        var blocks = g.NumBlocks is long nb ? nb : KvCache.BlocksForBudget(checked(g.KvCacheMemoryMb << 20), model.NumHiddenLayers, block, model.NumKeyValueHeads, model.HeadDim, Rlhf.Torch.ScalarType.Float32);
        var n = g.N ?? 1;
        var perSequence = (config.Data.MaxPromptLength + g.MaxNewTokens + block - 1) / block;
        var perRequest = n * perSequence;
        var prompts = OnlinePlan.IsOnline(config.Training.Algorithm) ? OnlinePlan.From(config).PromptsPerRank : 1;
        var mb = (long)Math.Ceiling(perRequest * bytesPerBlock / (double)(1 << 20));
        if (blocks < perRequest)
            throw new ArgumentException(
                $"generation.kv_cache_memory_mb = {g.KvCacheMemoryMb} holds {blocks} KV blocks of {block} tokens, but one prompt's {n} samples of up to {config.Data.MaxPromptLength} + {g.MaxNewTokens} tokens need {perRequest}: set generation.kv_cache_memory_mb to at least {Math.Max(1, mb)}");
        if (blocks < perRequest * prompts)
            note($"note: generation.kv_cache_memory_mb = {g.KvCacheMemoryMb} holds {blocks} of the {perRequest * prompts} KV blocks a step's {prompts} prompts need at full length; generation will queue and preempt (raise it to {Math.Max(1, mb * prompts)} MB to avoid that)");
    }
}
