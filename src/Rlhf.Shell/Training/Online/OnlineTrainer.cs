using System.Diagnostics;
using Rlhf.Core.Models;
using Rlhf.Core.Objectives;
using Rlhf.Core.Rollouts;
using Rlhf.Settings;
using Rlhf.Shell.Engine;
using Rlhf.Shell.Generation;
using Rlhf.Shell.Io;
using Rlhf.Shell.Io.Tokenizers;
using Rlhf.Shell.Training.Data;
using Rlhf.Shell.Training.Rewards;
using Rlhf.Torch;

namespace Rlhf.Shell.Training.Online;

using Torch = Rlhf.Torch.Torch;

/// <summary>
/// The synchronous online loop every online algorithm shares (TRL v0.11 PPOv2/RLOO/OnlineDPO trainers' step, one process):
/// prompts → the paged generator reading the policy's live weights (n samples per prompt at the algorithm's temperature) →
/// the reward source (with the algorithm's missing-stop penalty) → a <see cref="RolloutBatch"/> (prompts left-padded,
/// responses right-padded; rollout and reference logprobs recomputed by the trainer and the frozen reference, as TRL does) →
/// <see cref="IObjective.Prepare"/> → epochs × mini-batches × micro-batches of policy forward, <see cref="Objective.Loss"/>,
/// engine backward and step → metrics. The loop holds no loss math: the objective does.
/// </summary>
public static class OnlineTrainer
{
    /// <summary>The built-in reward functions plus nothing else: the registry a run uses when its caller gives none.</summary>
    public static RewardRegistry DefaultRegistry() => RewardRegistry.WithBuiltIns();

    /// <summary>The reward source of a config's <c>reward:</c> section with the algorithm's missing-stop penalty.</summary>
    public static IRewardSource RewardSource(RlhfConfig c, RewardRegistry registry)
    {
        // A learned reward model runs frozen on the policy's device, padding with the policy tokenizer's pad (EOS when none).
        var source = RewardSources.Build(c.Reward, c.Data, registry, rm =>
            LearnedRewardSource.Load(rm, c, RoleModels.Tokenizer(c.Tokenizer, c.Model) is var t ? t.PadId ?? t.EosId!.Value : 0, RoleModels.Device(c.Training)));
        var (replace, value, subtract) = c.Training.Algorithm switch
        {
            Algorithm.OnlineDpo => (c.OnlineDpo.NonEosPenalty, c.OnlineDpo.PenaltyRewardValue, c.OnlineDpo.MissingEosPenalty),
            Algorithm.Ppo => (c.Ppo.NonEosPenalty, c.Ppo.PenaltyRewardValue, c.Ppo.MissingEosPenalty),
            Algorithm.Rloo => (c.Rloo.NonEosPenalty, c.Rloo.PenaltyRewardValue, c.Rloo.MissingEosPenalty),
            Algorithm.Bok => (c.Bok.NonEosPenalty, c.Bok.PenaltyRewardValue, c.Bok.MissingEosPenalty),
            Algorithm.Grpo => (c.Grpo.NonEosPenalty, c.Grpo.PenaltyRewardValue, c.Grpo.MissingEosPenalty),
            Algorithm.ReinforcePp => (c.ReinforcePp.NonEosPenalty, c.ReinforcePp.PenaltyRewardValue, c.ReinforcePp.MissingEosPenalty),
            var a => throw new ArgumentException($"training.algorithm: {AlgorithmYaml.ToYaml(a)} is not online"),
        };
        return RewardSources.WithMissingStopPenalty(source, replace, value, subtract);
    }

    /// <summary>The KL coefficient behind <c>objective/non_score_reward</c> (GRPO's β).</summary>
    public static double KlCoefficient(RlhfConfig c) => c.Training.Algorithm switch
    {
        Algorithm.OnlineDpo => c.OnlineDpo.KlCoef,
        Algorithm.Ppo => c.Ppo.KlCoef,
        Algorithm.Rloo => c.Rloo.KlCoef,
        Algorithm.Bok => c.Bok.KlCoef,
        Algorithm.Grpo => c.Grpo.Beta,
        Algorithm.ReinforcePp => c.ReinforcePp.KlCoef,
        _ => 0.0,
    };

    /// <summary>
    /// Checks what this loop does not do yet, before any model loads: off-policy corrections (the synchronous loop trains on
    /// its own fresh rollouts) and the asynchronous mode.
    /// </summary>
    public static void CheckSupported(RlhfConfig c)
    {
        if (Objectives.Correction(c) is not null)
            throw new NotSupportedException($"{AlgorithmYaml.ToYaml(c.Training.Algorithm)}.importance_sampling: the synchronous loop trains on its own fresh rollouts and has no generator/trainer mismatch to correct; turn it off");
        if (c.Training.Async)
            throw new NotSupportedException("training.async: the asynchronous loop is not built yet; set training.async=false");
    }

    /// <summary>
    /// Trains the configured online algorithm, writing metrics, checkpoints and <c>final/</c> into <paramref name="run"/>;
    /// returns 0. <paramref name="registry"/> resolves <c>reward.function</c> names (default: the built-in task rewards).
    /// Under <c>rlhf launch</c> (the torchrun environment) every rank runs this with its own share of each step's prompts and
    /// its own generator on its local live weights (stage 3: the gathered ones); gradients meet in the engines; rank 0 writes
    /// the metrics (means over the ranks) and <c>final/</c>.
    /// </summary>
    /// <param name="config">The resolved config.</param>
    /// <param name="run">The run directory and its metrics sinks.</param>
    /// <param name="registry">Resolves <c>reward.function</c> names (default: the built-in task rewards).</param>
    /// <param name="reward">The reward source to score with instead of the one the config describes (e.g. one that also records the gold reward).</param>
    public static int Run(RlhfConfig config, TrainingRun run, RewardRegistry? registry = null, IRewardSource? reward = null)
    {
        CheckSupported(config);
        var plan = OnlinePlan.From(config);
        var env = DistributedEnvironment.FromProcess();
        if (env.WorldSize != plan.WorldSize)
            throw new ArgumentException($"distributed.world_size is {plan.WorldSize} but this process is rank {env.Rank} of {env.WorldSize} ({env.Source}); set distributed.world_size={env.WorldSize}");
        using var group = env.IsSingle ? null : env.InitProcessGroup(TimeSpan.FromSeconds(config.Distributed.TimeoutSeconds));
        var seed = config.Training.Seed;
        var prompts = TrainingData.Prompts(config.Data, seed).Train;
        if (prompts.Count == 0) throw new ArgumentException("data: no training prompts (data.num_examples or the file is empty)");
        var tokenizer = RoleModels.Tokenizer(config.Tokenizer, config.Model);
        var encoder = PromptEncoder.From(tokenizer, config.Data, config.Tokenizer);
        var examples = prompts.Select(encoder.Encode).ToArray();
        reward ??= RewardSource(config, registry ?? DefaultRegistry());
        var objective = Objectives.For(config);
        var sampling = SamplingParams.From(config.Generation);
        var eos = tokenizer.EosId!.Value;
        var pad = tokenizer.PadId ?? eos;
        if (sampling.StopTokenIds.Count == 0) sampling = sampling with { StopTokenIds = [eos] };
        var temperature = sampling.Temperature;
        var device = RoleModels.Device(config.Training);
        var klCoef = KlCoefficient(config);

        var engineSeed = RoleModels.InitSeed(config.Model, (ulong)seed);
        var (engine, layers) = RoleModels.Engine(RoleModels.Settings(config, ModelRole.ActorTrain), ModelHead.LanguageModel, config.Engine, engineSeed, device,
            frozen: false, gradientCheckpointing: false, group);
        using var _engine = engine;
        // Synchronous: generation ends before any update, so the generator reads the engine's own storage.
        engine.EnableLiveWeights(LiveWeightsMode.Shared);
        ZeroEngine reference;
        Critic? critic = null;
        using (var initial = layers.GatherWeights(engine))
        {
            // The reference is the initial policy (TRL: ref_policy), unless the reference role names its own directory.
            reference = RoleModels.Path(config, ModelRole.Reference) == RoleModels.Path(config, ModelRole.ActorTrain)
                ? ZeroEngine.Frozen(new TransformerLayers(initial), config.Engine, group, engineSeed, device)
                : RoleModels.Engine(RoleModels.Settings(config, ModelRole.Reference), ModelHead.LanguageModel, config.Engine, engineSeed, device, frozen: true, gradientCheckpointing: false, group).Engine;
            if (config.Training.Algorithm == Algorithm.Ppo) critic = Critic.Create(config, initial, engineSeed, device, group);
        }
        using var _reference = reference;
        using var _critic = critic;
        var order = new Random(checked((int)(seed & 0x7fffffff)));
        using var producer = new RolloutProducer(examples, config.Generation, sampling, plan, seed, order, engine.Rank);
        long episode = 0;
        for (long step = 1; step <= plan.Steps; step++)
        {
            using var scope = Torch.NewScope();
            var total = Stopwatch.StartNew();
            // --- generate
            GeneratedStep generated;
            using (var lease = engine.AcquireWeights())
                generated = producer.Generate(step, producer.NextPrompts(), lease, layers);
            var rows = generated.Rows;

            // --- score
            var clock = Stopwatch.StartNew();
            var samples = rows.Select(r => RewardSamples.FromIds(r.Prompt.PromptText, r.Prompt.PromptIds, r.Completion, tokenizer, sampling.StopTokenIds.ToArray())).ToArray();
            var scores = reward.Score(samples).Float().To(device);
            var scoreSeconds = clock.Elapsed.TotalSeconds;

            // --- rollout batch: trainer and reference logprobs at the sampling temperature (TRL recomputes both)
            clock.Restart();
            var promptIds = Rollouts.LeftPadded(rows.Select(r => r.Prompt.PromptIds).ToArray(), pad).To(device);
            var responseIds = Rollouts.RightPadded(rows.Select(r => r.Completion).ToArray(), sampling.MaxTokens, pad).To(device);
            RolloutBatch batch;
            using (Torch.NoGrad())
            {
                var responses = Masking.Truncate(responseIds, eos, pad);
                var logprobs = Rollouts.ResponseLogprobs(engine, promptIds, responses, pad, temperature);
                var refLogprobs = Rollouts.ResponseLogprobs(reference, promptIds, responses, pad, temperature);
                var values = critic?.Values(promptIds, responses, pad);
                batch = RolloutBatch.Create(promptIds, responseIds, logprobs, refLogprobs, values, scores,
                    rows.Select(r => r.Group).ToArray(), Enumerable.Repeat(generated.Version, rows.Length).ToArray(), eos, pad);
            }
            var prepared = objective.Prepare(batch);
            var referenceSeconds = clock.Elapsed.TotalSeconds;

            // --- train
            clock.Restart();
            var microStats = PolicyUpdate.Train(engine, objective, prepared, plan, pad, temperature, order, critic);
            var trainSeconds = clock.Elapsed.TotalSeconds;
            episode += plan.RolloutsPerStep;

            if (step % Math.Max(1, config.Training.LoggingSteps) == 0 || step == plan.Steps)
            {
                var all = Rlhf.Core.Losses.TensorStats.Mean(microStats).AddRange(Rollouts.RolloutStats(batch, klCoef));
                var metrics = new Dictionary<string, double>(all.ToMetrics());   // the step's one host sync
                var tokens = rows.Sum(r => (long)r.Completion.Length);
                metrics["timing/generate_s"] = generated.GenerateSeconds;
                metrics["timing/score_s"] = scoreSeconds;
                metrics["timing/reference_s"] = referenceSeconds;
                metrics["timing/train_s"] = trainSeconds;
                metrics["tokens_per_s"] = tokens / Math.Max(1e-9, total.Elapsed.TotalSeconds);
                metrics["episodes_per_s"] = plan.RolloutsPerStep / Math.Max(1e-9, total.Elapsed.TotalSeconds);
                metrics["lr"] = engine.LastLearningRate;
                metrics["policy/version"] = engine.GlobalSteps;
                if (engine.WorldSize > 1)
                    foreach (var key in metrics.Keys.Order(StringComparer.Ordinal).ToArray()) metrics[key] = engine.AllReduceMean(metrics[key]);
                if (engine.Rank == 0) run.Log(step, episode, metrics);
            }
            if (config.Training.SaveSteps > 0 && step % config.Training.SaveSteps == 0 && step != plan.Steps)
                SaveCheckpoints(run, engine, critic);
        }
        SaveCheckpoints(run, engine, critic);
        using (var final = layers.GatherWeights(engine))
            if (engine.Rank == 0) HfModelDirectory.Save(run.FinalDirectory, final);
        critic?.Save(CriticDirectory(run.FinalDirectory));
        return 0;
    }

    /// <summary>Where a PPO run keeps its value model inside <c>final/</c> and <c>checkpoints/</c>: a <c>critic/</c> folder.</summary>
    public static string CriticDirectory(string directory) => Path.Combine(directory, "critic");

    private static void SaveCheckpoints(TrainingRun run, ZeroEngine engine, Critic? critic)
    {
        engine.SaveCheckpoint(run.CheckpointsDirectory);
        critic?.Engine.SaveCheckpoint(CriticDirectory(run.CheckpointsDirectory));
    }
}
