using System.Diagnostics;
using Rlhf.Core.Models;
using Rlhf.Core.Objectives;
using Rlhf.Core.Rollouts;
using Rlhf.Settings;
using Rlhf.Shell.Engine;
using Rlhf.Shell.Io;
using Rlhf.Shell.Io.Tokenizers;
using Rlhf.Shell.Telemetry;
using Rlhf.Shell.Training.Data;
using Rlhf.Shell.Training.Rewards;
using Rlhf.Shell.Training.Tasks;
using Rlhf.Torch;

namespace Rlhf.Shell.Training.Offline;

using Torch = Rlhf.Torch.Torch;

/// <summary>What an offline stage did: its optimizer steps, the records it logged, the last values of each metric and where the model went.</summary>
/// <param name="Algorithm">sft, reward_model or dpo.</param>
/// <param name="Steps">Optimizer steps taken.</param>
/// <param name="History">Every logged record, in order (step 0 holds the evaluation before training, when there is one).</param>
/// <param name="Final">The last logged value of every metric (training and evaluation).</param>
/// <param name="FinalDirectory">The trained model as a Hugging Face directory (<c>final/</c>).</param>
public sealed record OfflineResult(Algorithm Algorithm, long Steps, IReadOnlyList<MetricsRecord> History, IReadOnlyDictionary<string, double> Final, string FinalDirectory);

/// <summary>
/// The offline stages through the ZeRO engine — SFT, the Bradley–Terry reward model and offline DPO — as TRL's
/// <c>SFTTrainer</c>, <c>RewardTrainer</c> and <c>DPOTrainer</c> run them: a dataset (JSONL or a synthetic task) is read
/// and checked before any model loads, cut into micro-batches of <c>train_micro_batch_size_per_gpu</c> examples
/// (epochs of a seeded shuffle, remainder dropped), <c>gradient_accumulation_steps</c> micro-batches per optimizer step,
/// for <c>training.max_steps</c> steps or <c>num_train_epochs</c> passes. Every <c>logging_steps</c> steps the mean of
/// the step's micro-batch statistics is logged under TRL's names; engine checkpoints every <c>save_steps</c> and at the
/// end; the held-out split (<c>data.eval_fraction</c>) is evaluated before training and at the end (and every
/// <c>eval_steps</c>); the trained model is written to <c>final/</c> as a Hugging Face directory.
/// Runs survive: every checkpoint carries the loop's <see cref="TrainerState"/> (step, data cursor, seed, and a fingerprint of
/// what must not change), so a run opened with resume continues from <c>latest</c> and ends bit-identical to one never
/// interrupted (epoch orders are a pure function of seed and epoch); a non-finite loss or gradient norm skips the optimizer
/// step (logged as <c>train/skipped_steps</c>) and <c>training.max_consecutive_skipped_steps</c> in a row stop the run
/// after a checkpoint (<see cref="TrainingDivergedException"/>); <see cref="TrainingRun.Stopping"/> ends the run after the
/// step in progress with a checkpoint (<see cref="TrainingStoppedException"/>).
/// </summary>
public static class OfflineStages
{
    /// <summary>Runs the offline stage <c>training.algorithm</c> names (sft, reward_model, dpo) into <paramref name="run"/>'s directory.</summary>
    public static OfflineResult Run(RlhfConfig config, TrainingRun run) => config.Training.Algorithm switch
    {
        Algorithm.Sft => Sft(config, run),
        Algorithm.RewardModel => RewardModel(config, run),
        Algorithm.Dpo => Dpo(config, run),
        var a => throw new ArgumentException($"training.algorithm: {AlgorithmYaml.ToYaml(a)} is an online algorithm; OfflineStages runs sft, reward_model and dpo"),
    };

    /// <summary>Sets the calling thread's intra-op count for a stage (<see cref="RoleModels.TrainerThreads"/>) until disposed.</summary>
    private static IDisposable StageThreads(RlhfConfig config) => Torch.UseThreads(RoleModels.TrainerThreads(config.Training));

    // ------------------------------------------------------------------ SFT

    /// <summary>Supervised fine-tuning (TRL SFTTrainer): token NLL on completion tokens only (or every token after the first when <c>sft.completion_only_loss</c> is off).</summary>
    public static OfflineResult Sft(RlhfConfig config, TrainingRun run)
    {
        using var threads = StageThreads(config);
        var seed = config.Training.Seed;
        var (tokenizer, train, eval, device, engine, layers) = Open(config, TrainingData.Completions(config.Data, seed), (e, t) => e.Encode(t), ModelHead.LanguageModel);   // data errors before any model loads
        using var _ = engine;
        var objective = Objectives.Sft(config.Sft);
        var pad = PadId(tokenizer);

        IReadOnlyDictionary<string, double> Micro(IReadOnlyList<CompletionExample> batch, bool backward)
        {
            using var scope = Torch.NewScope();
            var b = SequenceBatch.Pack(batch.Select(e => (e.PromptIds, e.CompletionIds)).ToArray(), pad, config.Sft.MaxSeqLength, device,
                lossOnPrompt: !config.Sft.CompletionOnlyLoss);
            var lp = TokenLogprobs(engine, b);
            var (loss, stats) = Objective.Reduce(objective.Terms(lp, b.ResponseMask));
            if (backward) engine.Backward(loss);
            return WithTokens(stats.ToMetrics(), b.Tokens);
        }

        Dictionary<string, double> Evaluate()
        {
            var m = EvaluateSplit(eval, engine.MicroBatchPerGpu, batch => Micro(batch, backward: false));
            if (config.Data.Task is not null && eval.Length > 0)
            {
                var task = SyntheticTasks.From(config.Data);
                var samples = GreedyCompletions(engine, eval.Select(e => (e.PromptText, e.PromptIds)).ToArray(), tokenizer, config.Generation.MaxNewTokens, device);
                var g = GoldMetrics.Evaluate(task, samples);
                m["eval/gold_reward"] = g.GoldReward;
                m["eval/exact_match"] = g.ExactMatch;
            }
            return m;
        }

        return Train(config, run, engine, layers, train, Micro, Evaluate, tokenizer);
    }

    // ------------------------------------------------------------------ reward model

    /// <summary>
    /// A Bradley–Terry reward model (TRL RewardTrainer): the score head at each sequence's last non-pad token, loss
    /// <c>−logσ(r_c − r_r)</c> (+ <c>center_rewards_coefficient · mean((r_c + r_r)²)</c>), metrics <c>loss</c>, <c>accuracy</c>,
    /// <c>margin</c>, <c>mean_reward</c>; the held-out pairs' <c>eval/accuracy</c> before and after; <c>final/</c> holds the
    /// model with its score head (<c>…ForSequenceClassification</c>), which <see cref="LearnedRewardSource"/> loads.
    /// </summary>
    public static OfflineResult RewardModel(RlhfConfig config, TrainingRun run)
    {
        using var threads = StageThreads(config);
        if (config.RewardModel.UseMargin)
            throw new ArgumentException("reward_model.use_margin: the preference data layouts read here carry no per-pair margin; turn it off");
        var seed = config.Training.Seed;
        var (tokenizer, train, eval, device, engine, layers) = Open(config, TrainingData.Preferences(config.Data, seed), (e, t) => e.Encode(t), ModelHead.Score);
        using var _ = engine;
        var objective = Objectives.RewardModel(config.RewardModel);
        var pad = PadId(tokenizer);

        IReadOnlyDictionary<string, double> Micro(IReadOnlyList<PreferenceExample> batch, bool backward)
        {
            using var scope = Torch.NewScope();
            var b = PackPairs(batch, pad, config.RewardModel.MaxLength, device);
            var r = LearnedRewardSource.LastTokenScores(engine, b.Ids, b.AttentionMask);            // [2P]
            var p = batch.Count;
            var (loss, stats) = objective.Loss(r.Narrow(0, 0, p), r.Narrow(0, p, p), null);
            if (backward) engine.Backward(loss);
            return WithTokens(stats.ToMetrics(), b.Tokens);
        }

        return Train(config, run, engine, layers, train, Micro, () => EvaluateSplit(eval, engine.MicroBatchPerGpu, batch => Micro(batch, backward: false)), tokenizer);
    }

    // ------------------------------------------------------------------ offline DPO

    /// <summary>
    /// Offline DPO (TRL DPOTrainer): the policy against a frozen reference that starts from the same weights, sigmoid (with
    /// label smoothing), hinge or IPO; TRL's metrics <c>rewards/chosen</c>, <c>rewards/rejected</c>, <c>rewards/accuracies</c>,
    /// <c>rewards/margins</c>, <c>logps/chosen</c>, <c>logps/rejected</c>.
    /// </summary>
    public static OfflineResult Dpo(RlhfConfig config, TrainingRun run)
    {
        using var threads = StageThreads(config);
        var seed = config.Training.Seed;
        var (tokenizer, train, eval, device, engine, layers) = Open(config, TrainingData.Preferences(config.Data, seed), (e, t) => e.Encode(t), ModelHead.LanguageModel);
        using var _ = engine;
        // The reference is the initial policy (TRL: ref_model = a copy of the model before training), run frozen.
        var (reference, _) = RoleModels.Engine(RoleModels.Settings(config, ModelRole.Reference), ModelHead.LanguageModel, config.Engine, unchecked((ulong)seed), device, frozen: true, gradientCheckpointing: false);
        using var __ = reference;
        var objective = Objectives.Dpo(config.Dpo);
        var pad = PadId(tokenizer);

        IReadOnlyDictionary<string, double> Micro(IReadOnlyList<PreferenceExample> batch, bool backward)
        {
            using var scope = Torch.NewScope();
            var b = PackPairs(batch, pad, config.Dpo.MaxLength, device);
            var p = batch.Count;
            Tensor refLp;
            using (Torch.NoGrad()) refLp = TokenLogprobs(reference, b);
            var lp = TokenLogprobs(engine, b);
            var mask = b.ResponseMask;
            var terms = objective.Terms(lp.Narrow(0, 0, p), refLp.Narrow(0, 0, p), mask.Narrow(0, 0, p), lp.Narrow(0, p, p), refLp.Narrow(0, p, p), mask.Narrow(0, p, p));
            var (loss, stats) = Objective.Reduce(terms);
            if (backward) engine.Backward(loss);
            return WithTokens(stats.ToMetrics(), b.Tokens);
        }

        return Train(config, run, engine, layers, train, Micro, () => EvaluateSplit(eval, engine.MicroBatchPerGpu, batch => Micro(batch, backward: false)), tokenizer);
    }

    // ------------------------------------------------------------------ the shared loop

    /// <summary>
    /// What every stage starts from: its data read and tokenised (data errors before any model loads), the device, and the
    /// trainable <c>actor_train</c> model with <paramref name="head"/>.
    /// </summary>
    private static (ITokenizer Tokenizer, T[] Train, T[] Eval, Device Device, ZeroEngine Engine, TransformerLayers Layers) Open<TText, T>(
        RlhfConfig config, DataSplit<TText> texts, Func<PromptEncoder, TText, T> encode, ModelHead head)
    {
        var tokenizer = RoleModels.Tokenizer(config.Tokenizer, config.Model);
        var encoder = PromptEncoder.From(tokenizer, config.Data, config.Tokenizer);
        var train = texts.Train.Select(t => encode(encoder, t)).ToArray();
        var eval = texts.Eval.Select(t => encode(encoder, t)).ToArray();
        var device = RoleModels.Device(config.Training);
        var (engine, layers) = RoleModels.Engine(RoleModels.Settings(config, ModelRole.ActorTrain), head, config.Engine, unchecked((ulong)config.Training.Seed), device,
            frozen: false, GradientCheckpointing(config));
        return (tokenizer, train, eval, device, engine, layers);
    }

    /// <summary>
    /// Optimizer steps of a stage: <c>training.max_steps</c> when set, else
    /// <c>ceil(num_train_epochs · ⌊⌊N / micro⌋ / gas⌋)</c> (HF Trainer: update steps per epoch = micro-batches per epoch ÷ gas).
    /// Throws, naming every number, when one epoch holds no optimizer step.
    /// </summary>
    public static long Steps(int examples, int microBatch, int gradientAccumulation, double epochs, long? maxSteps)
    {
        if (maxSteps is long m)
        {
            if (m < 1) throw new ArgumentException($"training.max_steps must be at least 1; got {m}");
            if (examples < microBatch)
                throw new ArgumentException($"the training split has {examples} examples, fewer than one micro-batch of {microBatch} (train_micro_batch_size_per_gpu)");
            return m;
        }
        var perEpoch = examples / microBatch / gradientAccumulation;
        if (perEpoch == 0)
            throw new ArgumentException(
                $"one epoch of {examples} training examples holds no optimizer step: a step takes {microBatch} (micro-batch) × {gradientAccumulation} (gradient_accumulation_steps) = {microBatch * gradientAccumulation} examples; add data or lower the batch sizes");
        var steps = (long)Math.Ceiling(epochs * perEpoch);
        return steps >= 1 ? steps : throw new ArgumentException($"training.num_train_epochs {epochs} of {perEpoch} steps per epoch gives no optimizer step");
    }

    private static OfflineResult Train<T>(RlhfConfig config, TrainingRun run, ZeroEngine engine, TransformerLayers layers, IReadOnlyList<T> train,
        Func<IReadOnlyList<T>, bool, IReadOnlyDictionary<string, double>> micro, Func<Dictionary<string, double>> evaluate, ITokenizer tokenizer)
    {
        var t = config.Training;
        var mb = engine.MicroBatchPerGpu;
        var gas = engine.GradientAccumulationSteps;
        var steps = Steps(train.Count, mb, gas, t.NumTrainEpochs, t.MaxSteps);
        TrainingSchedule.Apply(engine, t, steps);                                      // lr_scheduler_type over the stage's optimizer steps
        var examplesPerStep = (long)mb * gas * engine.WorldSize;
        var checkpoints = run.CheckpointsDirectory;
        var fingerprint = Fingerprint(config, engine, layers, train);
        var final = new Dictionary<string, double>();
        void Log(long step, IReadOnlyDictionary<string, double> values)
        {
            run.Log(step, step * examplesPerStep, values);
            foreach (var (k, v) in values) final[k] = v;
        }

        long done = 0, cursor = 0, consecutive = 0;
        if (run.Resumed is { } resumed)
        {
            // Resume (HF Trainer's resume_from_checkpoint): the same config, then the engine's state and the loop's position.
            var where = Path.Combine(checkpoints, run.ResumedTag!);
            resumed.CheckMatches(fingerprint, where);
            engine.LoadCheckpoint(checkpoints, run.ResumedTag);
            if (engine.GlobalSteps != resumed.Step)
                throw new CheckpointException(Path.Combine(where, TrainerState.FileName), $"records step {resumed.Step} but the engine's state is at step {engine.GlobalSteps}: the files come from different saves");
            (done, cursor, consecutive) = (resumed.Step, resumed.DataCursor, resumed.ConsecutiveSkippedSteps);
        }
        else
        {
            var before = evaluate();
            if (before.Count > 0) Log(0, before);
        }

        var skips = new SkippedStepGuard(engine, t.MaxConsecutiveSkippedSteps, consecutive);
        TrainerState State(long step) => new(AlgorithmYaml.ToYaml(t.Algorithm), step, step * examplesPerStep, cursor, t.Seed, skips.Consecutive,
            fingerprint, new Dictionary<string, string>());
        string Save(long step)
        {
            var tag = engine.SaveCheckpoint(checkpoints, clientState: dir => { if (engine.Rank == 0) State(step).WriteTo(dir); });
            return Path.Combine(checkpoints, tag);
        }

        // The data order is a pure function of (seed, epoch): the stream restarts at the saved cursor.
        using var batches = EpochBatches.Endless(train, mb, config.Data.Shuffle, t.Seed, skip: cursor).GetEnumerator();
        for (var step = done + 1; step <= steps; step++)
        {
            var clock = Stopwatch.StartNew();
            var parts = new List<IReadOnlyDictionary<string, double>>(gas);
            var skippedBefore = engine.SkippedSteps;
            for (var k = 0; k < gas; k++)
            {
                batches.MoveNext();
                cursor++;
                var part = micro(batches.Current, true);
                parts.Add(part);
                // A non-finite loss skips the step even when its gradients happen to be finite (the engine skips a non-finite norm itself).
                if (part.TryGetValue("loss", out var loss) && !double.IsFinite(loss)) engine.SkipStep();
                engine.Step();
            }
            var seconds = clock.Elapsed.TotalSeconds;
            var skipped = engine.SkippedSteps > skippedBefore;
            skips.Observe(engine);
            if (step % Math.Max(1, t.LoggingSteps) == 0 || step == steps || skipped)
            {
                var m = MeanOf(parts);
                m["tokens_per_s"] = m["tokens"] * gas / Math.Max(seconds, 1e-9);
                m.Remove("tokens");
                m["lr"] = engine.LastLearningRate;
                m["grad_norm"] = engine.LastGradNorm;
                m["epoch"] = (double)(step * examplesPerStep) / train.Count;
                m["train/skipped_steps"] = engine.SkippedSteps;
                if (t.EvalSteps is long es && es > 0 && step % es == 0 && step != steps) foreach (var (k, v) in evaluate()) m[k] = v;
                Log(step, m);
            }
            if (skips.Reached)
            {
                var at = Save(step);
                var loss = parts.Select(p => p.GetValueOrDefault("loss", double.NaN)).Last();
                throw skips.Stop(step, engine.GlobalSteps, $"last loss {MetricsFormat(loss)}, grad_norm {MetricsFormat(engine.LastGradNorm)}", at);
            }
            var saved = t.SaveSteps > 0 && step % t.SaveSteps == 0 && step != steps ? Save(step) : null;
            if (run.Stopping.IsCancellationRequested && step != steps)
                throw new TrainingStoppedException(step, saved ?? Save(step));
        }
        var after = evaluate();
        if (after.Count > 0) Log(steps, after);
        Save(steps);
        engine.Save16BitModel(run.FinalDirectory, new HfModelWriter(layers.Config));
        CopyTokenizer(config, run.FinalDirectory, tokenizer);
        return new OfflineResult(t.Algorithm, steps, run.History.ToArray(), final, run.FinalDirectory);
    }

    private static string MetricsFormat(double v) => v.ToString("G6", System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>
    /// What a resumed stage must find unchanged to continue exactly: the algorithm, the model's shape, the batch arithmetic,
    /// the seed and order of the data, and the training split itself (its size and a SHA-256 of its examples).
    /// </summary>
    public static Dictionary<string, string> Fingerprint<T>(RlhfConfig config, ZeroEngine engine, TransformerLayers layers, IReadOnlyList<T> train)
    {
        var c = layers.Config;
        var data = System.Security.Cryptography.SHA256.HashData(System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(train));
        return new Dictionary<string, string>
        {
            ["training.algorithm"] = AlgorithmYaml.ToYaml(config.Training.Algorithm),
            ["training.seed"] = config.Training.Seed.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["model.model_type"] = c.ModelType,
            ["model.head"] = c.Head.ToString(),
            ["model.vocab_size"] = c.VocabSize.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["model.hidden_size"] = c.HiddenSize.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["model.intermediate_size"] = c.IntermediateSize.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["model.num_hidden_layers"] = c.NumHiddenLayers.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["model.num_attention_heads"] = c.NumAttentionHeads.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["model.num_key_value_heads"] = c.NumKeyValueHeads.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["model.tie_word_embeddings"] = c.TieWordEmbeddings ? "true" : "false",
            ["engine.train_micro_batch_size_per_gpu"] = engine.MicroBatchPerGpu.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["engine.gradient_accumulation_steps"] = engine.GradientAccumulationSteps.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["engine.train_batch_size"] = engine.TrainBatchSize.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["data.shuffle"] = config.Data.Shuffle ? "true" : "false",
            ["data.train_examples"] = train.Count.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["data.train_sha256"] = Convert.ToHexStringLower(data),
        };
    }

    /// <summary>The mean over a split, in batches of <paramref name="batchSize"/> (the last may be smaller), weighted by batch size, under <c>eval/</c>; empty for an empty split.</summary>
    private static Dictionary<string, double> EvaluateSplit<T>(IReadOnlyList<T> split, int batchSize, Func<IReadOnlyList<T>, IReadOnlyDictionary<string, double>> micro)
    {
        var sums = new Dictionary<string, double>();
        if (split.Count == 0) return sums;
        using (Torch.NoGrad())
            for (var start = 0; start < split.Count; start += batchSize)
            {
                var batch = split.Skip(start).Take(batchSize).ToArray();
                foreach (var (k, v) in micro(batch))
                    if (k != "tokens") sums["eval/" + k] = sums.GetValueOrDefault("eval/" + k) + v * batch.Length;
            }
        return sums.ToDictionary(kv => kv.Key, kv => kv.Value / split.Count);
    }

    private static Dictionary<string, double> MeanOf(IReadOnlyList<IReadOnlyDictionary<string, double>> parts) =>
        parts[0].Keys.ToDictionary(k => k, k => parts.Average(p => p[k]));

    private static IReadOnlyDictionary<string, double> WithTokens(IReadOnlyDictionary<string, double> metrics, long tokens) =>
        new Dictionary<string, double>(metrics) { ["tokens"] = tokens };

    /// <summary>Log-probabilities of every next token: <c>log_softmax(logits[:, :-1])</c> at <c>ids[:, 1:]</c>, [B, L − 1] (in the caller's scope).</summary>
    private static Tensor TokenLogprobs(ZeroEngine engine, SequenceBatch b)
    {
        var logits = engine.Forward(b.Ids, TransformerLayers.Context(b.AttentionMask));                 // [B, L, V]
        var l = b.Ids.Size(1);
        return Logprobs.FromLogits(logits.Slice(1, 0, l - 1), b.Ids.Slice(1, 1, l));                  // [B, L − 1]
    }

    /// <summary>Chosen rows then rejected rows of the pairs, one batch.</summary>
    private static SequenceBatch PackPairs(IReadOnlyList<PreferenceExample> batch, int pad, long maxLength, Device device) =>
        SequenceBatch.Pack(batch.Select(e => (e.PromptIds, e.ChosenIds)).Concat(batch.Select(e => (e.PromptIds, e.RejectedIds))).ToArray(), pad, maxLength, device);

    private static int PadId(ITokenizer tokenizer) => tokenizer.PadId ?? tokenizer.EosId!.Value;   // padding is masked out; EOS stands in when there is no pad (TRL does the same)

    private static bool GradientCheckpointing(RlhfConfig config) => config.ActorTrain is { } role && !role.ModelArgs.DisableGradientCheckpointing;

    private static void CopyTokenizer(RlhfConfig config, string dir, ITokenizer tokenizer)
    {
        if (config.Tokenizer.Kind != TokenizerKind.Hf) return;
        var source = config.Tokenizer.Path ?? config.Model.Path;
        if (source is null) return;
        var file = Directory.Exists(source) ? Path.Combine(source, "tokenizer.json") : source;
        if (File.Exists(file)) File.Copy(file, Path.Combine(dir, "tokenizer.json"), overwrite: true);
    }

    // ------------------------------------------------------------------ greedy evaluation

    /// <summary>
    /// Greedy completions of <paramref name="prompts"/> (left-padded into one batch; positions from the mask), up to
    /// <paramref name="maxNewTokens"/> tokens or the tokenizer's EOS, as <see cref="RewardSample"/>s for a gold evaluation.
    /// Recomputes the whole sequence every token (no KV cache): for evaluating small models only.
    /// </summary>
    public static IReadOnlyList<RewardSample> GreedyCompletions(ZeroEngine engine, IReadOnlyList<(string Text, int[] Ids)> prompts, ITokenizer tokenizer, long maxNewTokens, Device device)
    {
        var pad = PadId(tokenizer);
        var eos = tokenizer.EosId!.Value;
        var n = prompts.Count;
        var width = prompts.Max(p => p.Ids.Length);
        var rows = prompts.Select(p => Enumerable.Repeat(pad, width - p.Ids.Length).Concat(p.Ids).ToList()).ToArray();
        var mask = prompts.Select(p => Enumerable.Repeat(0L, width - p.Ids.Length).Concat(Enumerable.Repeat(1L, p.Ids.Length)).ToList()).ToArray();
        var generated = prompts.Select(_ => new List<int>()).ToArray();
        var done = new bool[n];
        using var noGrad = Torch.NoGrad();
        for (var s = 0; s < maxNewTokens && !done.All(d => d); s++)
        {
            using var scope = Torch.NewScope();
            var l = rows[0].Count;
            var ids = Torch.From(rows.SelectMany(r => r.Select(x => (long)x)).ToArray(), n, l).To(device);
            var m = Torch.From(mask.SelectMany(r => r).ToArray(), n, l).To(device);
            var logits = engine.Forward(ids, TransformerLayers.Context(m));                          // [n, l, V]
            var next = logits.Select(1, l - 1).Argmax(-1).To(Device.Cpu).ToArray<long>();         // [n]
            for (var i = 0; i < n; i++)
            {
                var tok = done[i] ? pad : (int)next[i];
                rows[i].Add(tok);
                mask[i].Add(done[i] ? 0 : 1);
                if (!done[i]) generated[i].Add(tok);
                if (tok == eos) done[i] = true;
            }
        }
        return prompts.Select((p, i) => RewardSamples.FromIds(p.Text, p.Ids, generated[i].ToArray(), tokenizer)).ToArray();
    }
}
