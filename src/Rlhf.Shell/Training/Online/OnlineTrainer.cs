using System.Diagnostics;
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
            LearnedRewardSource.Load(rm, c, PolicyModels.Tokenizer(c.Tokenizer, c.Model) is var t ? t.PadId ?? t.EosId!.Value : 0, PolicyModels.Device(c.Training.Device)));
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
    /// Checks what this loop does not do yet, before any model loads: PPO's critic, off-policy
    /// corrections (the synchronous loop trains on its own fresh rollouts) and more than one rank.
    /// </summary>
    public static void CheckSupported(RlhfConfig c)
    {
        if (c.Training.Algorithm == Algorithm.Ppo)
            throw new NotSupportedException("ppo: the critic (value model with GAE) is not built into the online loop yet; use rloo, grpo, reinforce_pp, online_dpo or bok");
        if (Objectives.Correction(c) is not null)
            throw new NotSupportedException($"{AlgorithmYaml.ToYaml(c.Training.Algorithm)}.importance_sampling: the synchronous loop trains on its own fresh rollouts and has no generator/trainer mismatch to correct; turn it off");
        if ((c.Distributed.WorldSize ?? 1) != 1)
            throw new NotSupportedException($"distributed.world_size: the online loop runs one rank for now; got {c.Distributed.WorldSize}");
        if (c.Training.Async)
            throw new NotSupportedException("training.async: the asynchronous loop is not built yet; set training.async=false");
    }

    /// <summary>
    /// Trains the configured online algorithm, writing metrics, checkpoints and <c>final/</c> into <paramref name="run"/>;
    /// returns 0. <paramref name="registry"/> resolves <c>reward.function</c> names (default: the built-in task rewards).
    /// </summary>
    /// <param name="config">The resolved config.</param>
    /// <param name="run">The run directory and its metrics sinks.</param>
    /// <param name="registry">Resolves <c>reward.function</c> names (default: the built-in task rewards).</param>
    /// <param name="reward">The reward source to score with instead of the one the config describes (e.g. one that also records the gold reward).</param>
    public static int Run(RlhfConfig config, TrainingRun run, RewardRegistry? registry = null, IRewardSource? reward = null)
    {
        CheckSupported(config);
        var plan = OnlinePlan.From(config);
        var seed = config.Training.Seed;
        var prompts = TrainingData.Prompts(config.Data, seed).Train;
        if (prompts.Count == 0) throw new ArgumentException("data: no training prompts (data.num_examples or the file is empty)");
        var tokenizer = PolicyModels.Tokenizer(config.Tokenizer, config.Model);
        var encoder = PromptEncoder.From(tokenizer, config.Data, config.Tokenizer);
        var examples = prompts.Select(encoder.Encode).ToArray();
        reward ??= RewardSource(config, registry ?? DefaultRegistry());
        var objective = Objectives.For(config);
        var sampling = SamplingParams.From(config.Generation);
        var eos = tokenizer.EosId!.Value;
        var pad = tokenizer.PadId ?? eos;
        if (sampling.StopTokenIds.Count == 0) sampling = sampling with { StopTokenIds = [eos] };
        var temperature = sampling.Temperature;
        var device = PolicyModels.Device(config.Training.Device);
        var klCoef = KlCoefficient(config);

        var layers = PolicyModels.Layers(config.Model);
        var engineSeed = (ulong)(config.Model.InitSeed ?? seed);
        using var engine = new ZeroEngine(layers, config.Engine, null, engineSeed, gradientCheckpointing: false, device);
        // Synchronous: generation ends before any update, so the generator reads the engine's own storage.
        engine.EnableLiveWeights(LiveWeightsMode.Shared);
        ZeroEngine reference;
        using (var initial = layers.GatherWeights(engine))
            reference = ZeroEngine.Frozen(new TransformerLayers(initial), config.Engine, null, engineSeed, device);
        using var _reference = reference;
        PagedGenerator? generator = null;
        var order = new Random(checked((int)(seed & 0x7fffffff)));
        var queue = new Queue<int>();
        long episode = 0;
        try
        {
            for (long step = 1; step <= plan.Steps; step++)
            {
                using var scope = Torch.NewScope();
                var total = Stopwatch.StartNew();
                // --- prompts
                var batchPrompts = new PromptExample[plan.PromptsPerRank];
                for (var i = 0; i < batchPrompts.Length; i++)
                {
                    if (queue.Count == 0) foreach (var j in Enumerable.Range(0, examples.Length).OrderBy(_ => order.Next())) queue.Enqueue(j);
                    batchPrompts[i] = examples[queue.Dequeue()];
                }
                // --- generate
                var clock = Stopwatch.StartNew();
                IReadOnlyList<RequestOutput> outputs;
                long version;
                using (var lease = engine.AcquireWeights())
                {
                    version = lease.Version;
                    var view = layers.LiveWeights(lease);
                    if (generator is null) generator = new PagedGenerator(view, config.Generation, checked((int)(seed & 0x7fffffff)));
                    else generator.UpdateWeights(view);
                    outputs = generator.Generate(batchPrompts.Select(p => (IReadOnlyList<int>)p.PromptIds).ToArray(), sampling with { Seed = seed * 1_000_003 + step });
                }
                var generateSeconds = clock.Elapsed.TotalSeconds;
                var rows = Rows(batchPrompts, outputs, plan.SamplesPerPrompt);

                // --- score
                clock.Restart();
                var samples = rows.Select(r => RewardSamples.FromIds(r.Prompt.PromptText, r.Prompt.PromptIds, r.Completion, tokenizer, sampling.StopTokenIds.ToArray())).ToArray();
                var scores = reward.Score(samples).Float().To(device);
                var scoreSeconds = clock.Elapsed.TotalSeconds;

                // --- rollout batch: trainer and reference logprobs at the sampling temperature (TRL recomputes both)
                clock.Restart();
                var promptIds = LeftPadded(rows.Select(r => r.Prompt.PromptIds).ToArray(), pad).To(device);
                var responseIds = RightPadded(rows.Select(r => r.Completion).ToArray(), sampling.MaxTokens, pad).To(device);
                RolloutBatch batch;
                using (Torch.NoGrad())
                {
                    var responses = Masking.Truncate(responseIds, eos, pad);
                    var logprobs = ResponseLogprobs(engine, promptIds, responses, pad, temperature);
                    var refLogprobs = ResponseLogprobs(reference, promptIds, responses, pad, temperature);
                    batch = RolloutBatch.Create(promptIds, responseIds, logprobs, refLogprobs, null, scores,
                        rows.Select(r => r.Group).ToArray(), Enumerable.Repeat(version, rows.Length).ToArray(), eos, pad);
                }
                var prepared = objective.Prepare(batch);
                var referenceSeconds = clock.Elapsed.TotalSeconds;

                // --- train: epochs × mini-batches × micro-batches, one optimizer step per mini-batch
                clock.Restart();
                var microStats = new List<Rlhf.Core.Losses.TensorStats>();
                var groups = Groups.Members(prepared.Rollouts.GroupIds);
                var perMicro = groups.Length / (int)(plan.MiniBatches * plan.GradientAccumulation);
                if (perMicro < 1)
                    throw new InvalidOperationException($"{groups.Length} prompt groups after {objective.GetType().Name}.Prepare do not fill {plan.MiniBatches * plan.GradientAccumulation} micro-batches");
                for (var epoch = 0; epoch < plan.Epochs; epoch++)
                {
                    var shuffled = groups.OrderBy(_ => order.Next()).ToArray();
                    for (var m = 0; m < plan.MiniBatches * plan.GradientAccumulation; m++)
                    {
                        using var micro = Torch.NewScope();
                        var idx = shuffled.Skip(m * perMicro).Take(perMicro).SelectMany(g => g).Select(r => (long)r).ToArray();
                        var part = prepared.Rows(idx);
                        var lp = ResponseLogprobs(engine, part.Rollouts.PromptIds, part.Rollouts.Responses, pad, temperature);
                        var (loss, stats) = Objective.Loss(objective, part, lp);
                        engine.Backward(loss);
                        engine.Step();
                        microStats.Add(stats.MoveToOuter());
                    }
                }
                var trainSeconds = clock.Elapsed.TotalSeconds;
                episode += plan.RolloutsPerStep;

                if (step % Math.Max(1, config.Training.LoggingSteps) == 0 || step == plan.Steps)
                {
                    var all = Rlhf.Core.Losses.TensorStats.Mean(microStats).AddRange(RolloutStats(batch, klCoef));
                    var metrics = new Dictionary<string, double>(all.ToMetrics());   // the step's one host sync
                    var tokens = rows.Sum(r => (long)r.Completion.Length);
                    metrics["timing/generate_s"] = generateSeconds;
                    metrics["timing/score_s"] = scoreSeconds;
                    metrics["timing/reference_s"] = referenceSeconds;
                    metrics["timing/train_s"] = trainSeconds;
                    metrics["tokens_per_s"] = tokens / Math.Max(1e-9, total.Elapsed.TotalSeconds);
                    metrics["episodes_per_s"] = plan.RolloutsPerStep / Math.Max(1e-9, total.Elapsed.TotalSeconds);
                    metrics["lr"] = engine.LastLearningRate;
                    metrics["policy/version"] = engine.GlobalSteps;
                    run.Log(step, episode, metrics);
                }
                if (config.Training.SaveSteps > 0 && step % config.Training.SaveSteps == 0 && step != plan.Steps)
                    engine.SaveCheckpoint(run.CheckpointsDirectory);
            }
            engine.SaveCheckpoint(run.CheckpointsDirectory);
            using (var final = layers.GatherWeights(engine)) HfModelDirectory.Save(run.FinalDirectory, final);
        }
        finally
        {
            generator?.Dispose();
        }
        return 0;
    }

    /// <summary>One rollout row: its prompt, the generated ids and the prompt group.</summary>
    private sealed record Row(PromptExample Prompt, int[] Completion, int Group);

    private static Row[] Rows(PromptExample[] prompts, IReadOnlyList<RequestOutput> outputs, long k)
    {
        if (outputs.Count != prompts.Length)
            throw new InvalidOperationException($"the generator returned {outputs.Count} requests for {prompts.Length} prompts");
        var rows = new List<Row>();
        for (var i = 0; i < prompts.Length; i++)
        {
            var o = outputs[i];
            if (!o.PromptTokenIds.SequenceEqual(prompts[i].PromptIds))
                throw new InvalidOperationException($"the generator's request {i} is not prompt {i}");
            if (o.Outputs.Count != k) throw new InvalidOperationException($"the generator returned {o.Outputs.Count} samples of prompt {i}; expected {k}");
            foreach (var c in o.Outputs.OrderBy(c => c.Index)) rows.Add(new Row(prompts[i], c.TokenIds, i));
        }
        return rows.ToArray();
    }

    /// <summary>Prompts left-padded with <paramref name="pad"/> to the longest: int64 [B, ctx].</summary>
    public static Tensor LeftPadded(int[][] prompts, long pad)
    {
        var ctx = prompts.Max(p => p.Length);
        var ids = new long[prompts.Length * ctx];
        for (var b = 0; b < prompts.Length; b++)
            for (var t = 0; t < ctx; t++)
            {
                var at = t - (ctx - prompts[b].Length);
                ids[b * ctx + t] = at >= 0 ? prompts[b][at] : pad;
            }
        return Torch.From(ids, prompts.Length, ctx);
    }

    /// <summary>Responses right-padded with <paramref name="pad"/> to <paramref name="length"/>: int64 [B, length].</summary>
    public static Tensor RightPadded(int[][] responses, int length, long pad)
    {
        var ids = new long[responses.Length * length];
        for (var b = 0; b < responses.Length; b++)
        {
            if (responses[b].Length > length) throw new InvalidOperationException($"response {b} has {responses[b].Length} tokens; max_new_tokens is {length}");
            for (var t = 0; t < length; t++) ids[b * length + t] = t < responses[b].Length ? responses[b][t] : pad;
        }
        return Torch.From(ids, responses.Length, length);
    }

    /// <summary>
    /// The logprobs of <paramref name="responses"/> [B, T] after <paramref name="promptIds"/> [B, ctx] under an engine's model at
    /// <paramref name="temperature"/> (TRL <c>forward</c> with <c>attention_mask = query_responses != pad</c>, positions from the mask).
    /// </summary>
    public static Tensor ResponseLogprobs(ZeroEngine engine, Tensor promptIds, Tensor responses, long pad, double temperature)
    {
        using var scope = Torch.NewScope();
        var queryResponses = Torch.Cat([promptIds, responses], 1);
        var mask = queryResponses.Ne(pad);
        var logits = engine.Forward(queryResponses, TransformerLayers.Context(mask));
        return Logprobs.FromLogits(Logprobs.ResponseLogits(logits, promptIds.Size(1)), responses, temperature).MoveToOuter();
    }

    /// <summary>
    /// TRL's rollout metrics as tensors (read with the step's other stats in one sync): <c>objective/kl</c> (Σ_t k1, mean over
    /// rows), <c>objective/entropy</c> (Σ_t −lp), <c>objective/non_score_reward</c> (−kl_coef · kl), <c>objective/scores</c>,
    /// <c>objective/rlhf_reward</c> and <c>val/num_eos_tokens</c>.
    /// </summary>
    public static Rlhf.Core.Losses.TensorStats RolloutStats(RolloutBatch batch, double klCoef)
    {
        using var scope = Torch.NewScope();
        using var _ = Torch.NoGrad();
        var mask = batch.ResponseMask();
        var kl = batch.Kl().Sum(1).Mean();
        var nonScore = kl * -klCoef;
        var scores = batch.Scores.To(ScalarType.Float64).Mean();
        return new Rlhf.Core.Losses.TensorStats()
            .Add("objective/kl", kl)
            .Add("objective/entropy", Masked.Sum(-batch.Logprobs, mask, 1).Mean())
            .Add("objective/non_score_reward", nonScore)
            .Add("objective/scores", scores)
            .Add("objective/rlhf_reward", scores + nonScore)
            .Add("val/num_eos_tokens", batch.Responses.Eq(batch.StopTokenId).Sum())
            .MoveToOuter();
    }
}
