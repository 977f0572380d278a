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
/// The online loop every online algorithm shares (TRL v0.11 PPOv2/RLOO/OnlineDPO trainers' step, one process):
/// prompts → the paged generator reading the policy's live weights (n samples per prompt at the algorithm's temperature) →
/// the reward source (with the algorithm's missing-stop penalty) → a <see cref="RolloutBatch"/> (prompts left-padded,
/// responses right-padded; rollout and reference logprobs recomputed by the trainer and the frozen reference, as TRL does) →
/// <see cref="IObjective.Prepare"/> → epochs × mini-batches × micro-batches of policy forward, <see cref="Objective.Loss"/>,
/// engine backward and step → metrics. The loop holds no loss math: the objective does. With <c>training.async</c> the generator
/// runs on its own thread <c>max_staleness</c> steps ahead (async_rlhf, Noukhovitch et al. 2024), sampling step s with the
/// weights published after step s − 1 − max_staleness (snapshot live weights, one copy per step); staleness 0 is the synchronous
/// loop on two threads, bit for bit. An optimizer step with a non-finite gradient norm is skipped (<c>train/skipped_steps</c>), and
/// <c>training.max_consecutive_skipped_steps</c> of them in a row stop the run after a checkpoint, as in the offline stages
/// (<see cref="SkippedStepGuard"/>).
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
    /// Checks, before any model loads, keys this loop would silently ignore: <c>training.kv_on_update: recompute</c> acts only when
    /// the generator adopts weights mid-sequence (<c>training.async</c> with <c>async_mode: inflight</c>).
    /// Off-policy corrections weight by the trainer's start-of-step logprobs over the generator's (π_prox/μ), in either mode.
    /// </summary>
    public static void CheckSupported(RlhfConfig c)
    {
        if (c.Training.KvOnUpdate == KvOnUpdate.Recompute && !(c.Training.Async && c.Training.AsyncMode == AsyncMode.Inflight))
            throw new NotSupportedException(
                $"training.kv_on_update: recompute acts when the generator adopts new weights mid-sequence, which only training.async=true with training.async_mode=inflight does (async is {(c.Training.Async ? "true" : "false")}, async_mode {AsyncModeYaml.ToYaml(c.Training.AsyncMode)})");
    }

    /// <summary>
    /// Trains the configured online algorithm, writing metrics, checkpoints and <c>final/</c> into <paramref name="run"/>;
    /// returns 0. <paramref name="registry"/> resolves <c>reward.function</c> names (default: the built-in task rewards). With
    /// <paramref name="resume"/> it continues from <c>checkpoints/latest</c> of the run directory (engine state and
    /// <see cref="OnlineState"/>) and ends bit-identical to the run that was not interrupted. Between steps it checks
    /// <see cref="TrainingRun.Stopping"/>: when set it writes a checkpoint and throws <see cref="OperationCanceledException"/>.
    /// <paramref name="reward"/> scores instead of the source the config describes (e.g. one that also records the gold reward).
    /// Under <c>rlhf launch</c> (the torchrun environment) every rank runs this with its own share of each step's prompts and
    /// its own generator on its local live weights (stage 3: the gathered ones); gradients meet in the engines; rank 0 writes
    /// the metrics (means over the ranks) and <c>final/</c>. Asynchronous runs on many ranks too: every collective (the stage-3
    /// gather that publishes a version included) runs on the trainer thread at the same point of every rank's step, never on
    /// the generator thread, and the staleness rule reads only versions fixed by the loop (see <see cref="Staleness"/>), so every
    /// rank drops the same steps and the ranks' collectives stay in step.
    /// </summary>
    public static int Run(RlhfConfig config, TrainingRun run, RewardRegistry? registry = null, bool resume = false, IRewardSource? reward = null) =>
        Run(config, run, registry, resume, ahead: null, reward);

    /// <summary>
    /// <see cref="Run(RlhfConfig, TrainingRun, RewardRegistry?, bool, IRewardSource?)"/> with the generator running <paramref name="ahead"/> steps
    /// ahead instead of <c>max_staleness</c> (tests: ahead beyond max_staleness makes stale rollouts to drop).
    /// </summary>
    internal static int Run(RlhfConfig config, TrainingRun run, RewardRegistry? registry, bool resume, long? ahead, IRewardSource? reward = null)
    {
        using var memos = Transformer.KeepForwardInputs();   // rotary tables and masks kept across the run's forwards, freed at its end
        CheckSupported(config);
        var plan = OnlinePlan.From(config);
        var env = DistributedEnvironment.FromProcess();
        if (env.WorldSize != plan.WorldSize)
            throw new ArgumentException($"distributed.world_size is {plan.WorldSize} but this process is rank {env.Rank} of {env.WorldSize} ({env.Source}); set distributed.world_size={env.WorldSize}");
        using var group = env.IsSingle ? null : env.InitProcessGroup(TimeSpan.FromSeconds(config.Distributed.TimeoutSeconds));
        // Ranks launched on one node share its cores.
        var (generatorThreads, trainerThreads) = ThreadSplit(config.Training, Math.Max(1, Environment.ProcessorCount / env.LocalWorldSize));
        // Asynchronous: the cores the generator leaves; synchronous: RoleModels.TrainerThreads, on this thread whatever it ran before.
        var stepThreads = config.Training.Async ? trainerThreads : RoleModels.TrainerThreads(config.Training);
        using var restoreThreads = Torch.UseThreads(stepThreads);
        var seed = config.Training.Seed;
        var prompts = TrainingData.Prompts(config.Data, seed).Train;
        if (prompts.Count == 0) throw new ArgumentException("data: no training prompts (data.num_examples or the file is empty)");
        var tokenizer = RoleModels.Tokenizer(config.Tokenizer, config.Model);
        var encoder = PromptEncoder.From(tokenizer, config.Data, config.Tokenizer);
        var examples = prompts.Select(encoder.Encode).ToArray();
        reward ??= RewardSource(config, registry ?? DefaultRegistry());
        var objective = Objectives.For(config);
        var correction = Objectives.Correction(config);
        var sampling = SamplingParams.From(config.Generation);
        var eos = tokenizer.EosId!.Value;
        var pad = tokenizer.PadId ?? eos;
        if (sampling.StopTokenIds.Count == 0) sampling = sampling with { StopTokenIds = [eos] };
        var temperature = sampling.Temperature;
        var device = RoleModels.Device(config.Training);
        var klCoef = KlCoefficient(config);
        var isAsync = config.Training.Async;
        var maxStaleness = config.Training.MaxStaleness;
        var lead = isAsync ? ahead ?? maxStaleness : 0;
        if (lead < 0) throw new ArgumentOutOfRangeException(nameof(ahead), lead, "the generator cannot run behind the trainer");

        var engineSeed = RoleModels.InitSeed(config.Model, (ulong)seed);
        var (engine, layers) = RoleModels.Engine(RoleModels.Settings(config, ModelRole.ActorTrain), ModelHead.LanguageModel, config.Engine, engineSeed, device,
            frozen: false, gradientCheckpointing: false, group);
        using var _engine = engine;
        TrainingSchedule.Apply(engine, config.Training, plan.OptimizerSteps);          // lr_scheduler_type over the run's optimizer steps
        // Synchronous: generation ends before any update, so the generator reads the engine's own storage. Asynchronous: the
        // generator holds up to `lead` versions while the trainer writes the next, so one snapshot buffer more than that plus one.
        if (isAsync) engine.EnableLiveWeights(LiveWeightsMode.Snapshot, snapshots: checked((int)lead + 2), publishOnStep: false);
        else engine.EnableLiveWeights(LiveWeightsMode.Shared);
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
        if (critic is not null) TrainingSchedule.Apply(critic.Engine, config.Training, plan.OptimizerSteps);

        long start = 0, episode = 0, dropped = 0;
        OnlineState? restored = null;
        string? restoredPath = null;
        if (resume)
        {
            var dir = run.CheckpointsDirectory;
            var tag = Checkpoint.ReadLatest(dir);
            engine.LoadCheckpoint(dir, tag);
            critic?.Engine.LoadCheckpoint(CriticDirectory(dir), tag);
            // Asynchronous: each rank reads its own file (its share of the queued rollouts); synchronous: rank 0's says it all.
            var stateFile = isAsync ? OnlineState.FileNameOf(engine.Rank) : OnlineState.FileName;
            restoredPath = Path.Combine(dir, tag, stateFile);
            var bytes = Checkpoint.ReadClientFile(dir, tag, stateFile)
                ?? throw new CheckpointException(restoredPath, engine.Rank == 0
                    ? "missing: the checkpoint was not written by the online loop, which cannot resume without it"
                    : $"missing: rank {engine.Rank}'s queued rollouts; the checkpoint was written with fewer ranks (an asynchronous run resumes at the distributed.world_size it was written at)");
            restored = OnlineState.Parse(bytes, restoredPath, isAsync, lead, plan.Steps);
            if (engine.GlobalSteps != restored.Step * plan.OptimizerStepsPerStep)
                throw new CheckpointException(restoredPath, $"Step {restored.Step}: the engine state holds {engine.GlobalSteps} optimizer steps, expected {restored.Step} × {plan.OptimizerStepsPerStep}");
            (start, episode, dropped) = (restored.Step, restored.Episode, restored.DroppedStale);
        }

        var skips = new SkippedStepGuard(engine, config.Training.MaxConsecutiveSkippedSteps, restored?.ConsecutiveSkippedSteps ?? 0);
        var producer = new RolloutProducer(examples, config.Generation, sampling, plan, seed, engine.Rank, config.Training.KvOnUpdate);
        var inflight = isAsync && config.Training.AsyncMode == AsyncMode.Inflight;
        using var worker = isAsync ? new RolloutWorker(producer, layers, generatorThreads, inflight ? engine.AcquireWeights : null) : null;
        using var syncProducer = isAsync ? null : producer;
        if (worker is not null)
        {
            // async_rlhf's pipeline: steps start+1 … start+lead were generated before the interruption (or, at a fresh start, come
            // from the initial weights); step start+1+lead is sampled with the weights the trainer holds now.
            for (var s = start + 1; s <= Math.Min(plan.Steps, start + lead); s++)
            {
                if (restored is not null) worker.Restore(restored.Queued[s - start - 1].ToGenerated(producer.Prompts(s), plan.SamplesPerPrompt, restoredPath!));
                else worker.Submit(s, producer.Prompts(s), engine.AcquireWeights());
            }
            if (start + 1 + lead <= plan.Steps) worker.Submit(start + 1 + lead, producer.Prompts(start + 1 + lead), engine.AcquireWeights());
        }

        var step = start;
        void Save()
        {
            // The critic first: the policy's checkpoint (with the loop state) names a step only once both are written.
            critic?.Engine.SaveCheckpoint(CriticDirectory(run.CheckpointsDirectory));
            engine.SaveCheckpoint(run.CheckpointsDirectory, null, dir =>
            {
                var queued = worker is null ? [] : Enumerable.Range(0, (int)Math.Max(0, Math.Min(plan.Steps, step + lead) - step))
                    .Select(i => QueuedRollouts.From(worker.Peek(step + 1 + i))).ToArray();
                var state = new OnlineState(step, episode, producer.CursorBefore(step + 1), dropped, isAsync, lead, queued, skips.Consecutive);
                if (engine.Rank == 0 || isAsync) File.WriteAllBytes(Path.Combine(dir, OnlineState.FileNameOf(engine.Rank)), state.ToJson());
            });
        }

        var generatorIdle = 0.0;
        while (step < plan.Steps)
        {
            step++;
            Torch.NumThreads = stepThreads;
            using var scope = Torch.NewScope();
            var total = Stopwatch.StartNew();
            // --- generate (synchronous) or take what the worker generated (asynchronous)
            GeneratedStep generated;
            double waitSeconds;
            if (worker is null)
            {
                using (var lease = engine.AcquireWeights())
                    generated = producer.Generate(step, producer.Prompts(step), lease, layers);
                waitSeconds = generated.GenerateSeconds;
            }
            else
            {
                var wait = Stopwatch.StartNew();
                generated = worker.Take(step);
                // generated.Version is the version leased when the step was submitted (at a fixed point of every rank's loop), not
                // one the worker chose by timing: every rank takes the same decision here, or the ranks' collectives would part.
                if (Staleness(engine.GlobalSteps, generated.Version, plan) > maxStaleness)
                {
                    // Never train on data older than max_staleness versions: drop it, count it, and sample the step again now.
                    dropped += generated.Rows.Length;
                    worker.Submit(step, generated.Prompts, engine.AcquireWeights());
                    generated = worker.Take(step);
                }
                waitSeconds = wait.Elapsed.TotalSeconds;
            }
            var rows = generated.Rows;
            var versionAtStart = engine.GlobalSteps;
            var staleness = Staleness(versionAtStart, generated.Version, plan);

            // --- score
            var clock = Stopwatch.StartNew();
            var samples = rows.Select(r => RewardSamples.FromIds(r.Prompt.PromptText, r.Prompt.PromptIds, r.Completion, tokenizer, sampling.StopTokenIds.ToArray())).ToArray();
            var scores = reward.Score(samples).Float().To(device);
            var scoreSeconds = clock.Elapsed.TotalSeconds;

            // --- rollout batch: trainer and reference logprobs at the sampling temperature (TRL recomputes both); with an
            // off-policy correction the batch's logprobs are the generator's (μ) and the trainer's are the proximal π_prox.
            clock.Restart();
            var promptIds = Rollouts.LeftPadded(rows.Select(r => r.Prompt.PromptIds).ToArray(), pad).To(device);
            var responseIds = Rollouts.RightPadded(rows.Select(r => r.Completion).ToArray(), sampling.MaxTokens, pad).To(device);
            RolloutBatch batch;
            Rlhf.Core.Losses.TensorStats agreement;
            using (Torch.NoGrad())
            {
                var responses = Masking.Truncate(responseIds, eos, pad);
                var logprobs = Rollouts.ResponseLogprobs(engine, promptIds, responses, pad, temperature);
                var refLogprobs = Rollouts.ResponseLogprobs(reference, promptIds, responses, pad, temperature);
                var generatorLogprobs = Rollouts.GeneratorLogprobs(rows, sampling.MaxTokens).To(logprobs.Dtype).To(device);
                var versions = Enumerable.Repeat(generated.Version, rows.Length).ToArray();
                var values = critic?.Values(promptIds, responses, pad);
                batch = RolloutBatch.Create(promptIds, responseIds, correction is null ? logprobs : generatorLogprobs, refLogprobs, values, scores,
                    rows.Select(r => r.Group).ToArray(), versions, eos, pad);
                if (correction is not null) batch = batch.WithProximal(logprobs);
                agreement = Rollouts.Agreement(logprobs, generatorLogprobs, batch.ResponseMask());
            }
            var prepared = objective.Prepare(batch);
            var referenceSeconds = clock.Elapsed.TotalSeconds;

            // --- train
            clock.Restart();
            var microStats = PolicyUpdate.Train(engine, objective, prepared, plan, pad, temperature, seed, step, correction, critic, skips);
            var trainSeconds = clock.Elapsed.TotalSeconds;
            episode += plan.RolloutsPerStep;

            // --- publish the new version and hand the generator its next step (asynchronous)
            var syncSeconds = 0.0;
            if (worker is not null)
            {
                clock.Restart();
                if (!engine.PublishWeights()) throw new InvalidOperationException($"no free live-weights buffer to publish step {step}'s weights");
                syncSeconds = clock.Elapsed.TotalSeconds;
                if (step + 1 + lead <= plan.Steps) worker.Submit(step + 1 + lead, producer.Prompts(step + 1 + lead), engine.AcquireWeights());
            }
            var wall = Math.Max(1e-9, total.Elapsed.TotalSeconds);
            var idleNow = worker?.IdleSeconds ?? 0.0;
            var generatorIdleStep = worker is null ? 1.0 - generated.GenerateSeconds / wall : (idleNow - generatorIdle) / wall;
            generatorIdle = idleNow;

            if (step % Math.Max(1, config.Training.LoggingSteps) == 0 || step == plan.Steps)
            {
                var all = agreement.AddRange(Rlhf.Core.Losses.TensorStats.Mean(microStats)).AddRange(Rollouts.RolloutStats(batch, klCoef));
                var metrics = new Dictionary<string, double>(all.ToMetrics());   // the step's one host sync
                var tokens = rows.Sum(r => (long)r.Completion.Length);
                metrics["timing/generate_s"] = generated.GenerateSeconds;
                metrics["timing/score_s"] = scoreSeconds;
                metrics["timing/reference_s"] = referenceSeconds;
                metrics["timing/train_s"] = trainSeconds;
                metrics["timing/trainer_idle_ratio"] = Math.Clamp(waitSeconds / wall, 0, 1);
                metrics["timing/generator_idle_ratio"] = Math.Clamp(generatorIdleStep, 0, 1);
                metrics["tokens_per_s"] = tokens / wall;
                metrics["episodes_per_s"] = plan.RolloutsPerStep / wall;
                metrics["lr"] = engine.LastLearningRate;
                metrics["policy/version"] = engine.GlobalSteps;
                metrics["train/skipped_steps"] = engine.SkippedSteps;          // optimizer steps skipped for a non-finite gradient norm
                if (worker is not null)
                {
                    if (inflight)
                    {
                        // Per-token staleness (in steps) and the tokens sampled after an in-flight update.
                        var tokenVersions = rows.SelectMany(r => r.TokenVersions).ToArray();
                        metrics["async/token_staleness_mean"] = tokenVersions.Length == 0 ? 0 : tokenVersions.Average(v => (double)Staleness(versionAtStart, v, plan));
                        metrics["async/inflight_tokens"] = tokenVersions.Count(v => v != generated.Version);
                    }
                    metrics["timing/weight_sync_s"] = syncSeconds;
                    metrics["async/staleness_mean"] = staleness;
                    metrics["async/staleness_max"] = staleness;
                    metrics["async/dropped_stale"] = dropped;
                }
                if (engine.WorldSize > 1)
                    foreach (var key in metrics.Keys.Order(StringComparer.Ordinal).ToArray()) metrics[key] = engine.AllReduceMean(metrics[key]);
                if (engine.Rank == 0) run.Log(step, episode, metrics);
            }
            if (skips.Reached)
            {
                // As the offline stages stop (the same rule): a checkpoint of the state the skipped steps left untouched, then the error.
                Save();
                var at = Path.Combine(run.CheckpointsDirectory, Checkpoint.ReadLatest(run.CheckpointsDirectory));
                throw skips.Stop(step, engine.GlobalSteps, $"last grad_norm {engine.LastGradNorm.ToString("G6", System.Globalization.CultureInfo.InvariantCulture)}", at);
            }
            var saved = false;
            if (config.Training.SaveSteps > 0 && step % config.Training.SaveSteps == 0 && step != plan.Steps)
            {
                Save();
                saved = true;
            }
            if (run.Stopping.IsCancellationRequested && step != plan.Steps)
            {
                if (!saved) Save();
                throw new TrainingStoppedException(step, Path.Combine(run.CheckpointsDirectory, Checkpoint.ReadLatest(run.CheckpointsDirectory)));
            }
        }
        Save();
        using (var final = layers.GatherWeights(engine))
            if (engine.Rank == 0) HfModelDirectory.Save(run.FinalDirectory, final);
        critic?.Save(CriticDirectory(run.FinalDirectory));
        return 0;
    }

    /// <summary>Where a PPO run keeps its value model inside <c>final/</c> and <c>checkpoints/</c>: a <c>critic/</c> folder.</summary>
    public static string CriticDirectory(string directory) => Path.Combine(directory, "critic");

    /// <summary>
    /// The asynchronous loop's intra-op threads (generator, trainer): <c>training.generator_threads</c> and
    /// <c>training.trainer_threads</c>, unset ones splitting <paramref name="cores"/> (generator half, trainer the rest, each ≥ 1).
    /// </summary>
    public static (int Generator, int Trainer) ThreadSplit(TrainingSettings t, int cores)
    {
        var generator = t.GeneratorThreads is long g ? checked((int)g) : Math.Max(1, cores / 2);
        var trainer = t.TrainerThreads is long tr ? checked((int)tr) : Math.Max(1, cores - generator);
        return (generator, trainer);
    }

    /// <summary>How many steps behind the trainer's <paramref name="current"/> version a rollout of <paramref name="version"/> is (rounded up).</summary>
    public static long Staleness(long current, long version, OnlinePlan plan) =>
        (Math.Max(0, current - version) + plan.OptimizerStepsPerStep - 1) / plan.OptimizerStepsPerStep;
}
