using System.Globalization;
using Rlhf.Core.Rollouts;
using Rlhf.Settings;

namespace Rlhf.Shell.Config;

/// <summary>
/// ROLL's keys onto ours, once (alibaba/ROLL, roll/configs/base_config.py PPOConfig and worker_config.py): the top-level
/// pipeline keys, the actor_train role's training_args and model_args, and the actor_infer role's generating_args. A ROLL
/// key and ours both written with different values is an error naming both. After the mapping the ROLL top-level keys
/// are cleared and actor_infer's generating_args is folded into <c>generation</c>, so the resolved config says each
/// thing once; actor_train's training_args and model_args mirror what they set. Pure: settings in, settings out.
/// </summary>
internal sealed class RollMapping(BindContext ctx, List<ConfigError> errors, List<IgnoredKey> ignored)
{
    /// <summary>ROLL's default advantage estimator (PPOConfig.adv_estimator = "gae"), for a ROLL-shaped config that names none.</summary>
    public const AdvEstimator DefaultAdvEstimator = AdvEstimator.Gae;

    /// <summary>ROLL's default pipeline steps (BaseConfig.max_steps = 500), for a ROLL-shaped online config that sets no length.</summary>
    public const long DefaultMaxSteps = 500;

    private bool Written(string path) => ctx.Positions.ContainsKey(path);

    private static string Show(object? v) => v switch
    {
        null => "unset",
        double d => d.ToString("R", CultureInfo.InvariantCulture),
        Enum e => e.ToString().ToLowerInvariant(),
        _ => Convert.ToString(v, CultureInfo.InvariantCulture) ?? "",
    };

    /// <summary>The value of a ROLL key taken onto ours: unset ROLL key → ours; ours written and different → an error naming both.</summary>
    private T Take<T>(string rollKey, object? roll, string ourKey, T ours)
    {
        if (roll is null) return ours;
        var r = (T)roll;
        if (Written(ourKey) && !Equals(ours, r))
        {
            errors.Add(ctx.ErrorAt(rollKey, $"{rollKey} ({Show(r)}) disagrees with {ourKey} ({Show(ours)}); set one of them"));
            return ours;
        }
        return r;
    }

    /// <summary>A ROLL key this algorithm has no use for: listed with the ignored keys.</summary>
    private void Ignore(string key, string why)
    {
        var at = ctx.PositionOf(key);
        ignored.Add(new IgnoredKey(why, key, at.File, at.Line, at.Column));
    }

    /// <summary>Whether <c>engine</c> was taken from actor_train's strategy_config (no engine section written): the role then shows the resolved engine.</summary>
    public bool EngineFromRole { get; private set; }

    /// <summary>Whether the config is written in ROLL's layout: actor_train carries its own training_args.</summary>
    public bool RollShaped => Written("actor_train.training_args");

    /// <summary>Maps every ROLL key; <paramref name="memoryBytes"/> is the memory gpu_memory_utilization is a share of.</summary>
    public RlhfConfig Apply(RlhfConfig c, long memoryBytes)
    {
        var algorithm = AlgorithmOf(c);
        var training = Training(c with { Training = c.Training with { Algorithm = algorithm } });
        c = c with { Training = training };
        c = Model(c);
        c = Algorithms(c);
        c = c with { Data = c.Data with { MaxPromptLength = Take("prompt_length", c.PromptLength, "data.max_prompt_length", c.Data.MaxPromptLength) } };
        c = Generation(c, memoryBytes);
        c = c with
        {
            RunName = Take("exp_name", c.ExpName, "run_name", c.RunName),
            Checkpointing = c.Checkpointing with
            {
                Dir = Take("checkpoint_config.output_dir", c.CheckpointConfig?.OutputDir, "checkpointing.dir", c.Checkpointing.Dir),
                ResumeFrom = Take("resume_from_checkpoint", c.ResumeFromCheckpoint switch
                {
                    null or "false" or "False" => null,
                    "true" or "True" => "latest",
                    var p => p,
                }, "checkpointing.resume_from", c.Checkpointing.ResumeFrom),
            },
        };
        // The policy's engine is actor_train's strategy_config when no engine section is written.
        if (c.ActorTrain?.StrategyArgs.StrategyConfig is { } ds && !ctx.Positions.Keys.Any(k => k == "engine" || k.StartsWith("engine.", StringComparison.Ordinal)))
        {
            c = c with { Engine = ds };
            EngineFromRole = true;
        }
        return c with
        {
            ExpName = null, Pretrain = null, RewardPretrain = null, NumReturnSequencesInGroup = null, PromptLength = null,
            ResponseLength = null, PpoEpochs = null, AdvEstimator = null, MaxSteps = null, SaveSteps = null, LoggingSteps = null,
            EvalSteps = null, Seed = null, OutputDir = null, CheckpointConfig = null, ResumeFromCheckpoint = null, MaxGradNorm = null,
            InitKlCoef = null, KlPenalty = null, UseKlLoss = null, KlLossCoef = null, PgClip = null, UsePgClipRange = null,
            PgClipLow = null, PgClipHigh = null, ValueClip = null, RewardClip = null, Lambd = null, Gamma = null,
        };
    }

    private static Algorithm FromEstimator(AdvEstimator e) => e switch
    {
        AdvEstimator.Gae => Settings.Algorithm.Ppo,
        AdvEstimator.Reinforce => Settings.Algorithm.ReinforcePp,
        _ => Settings.Algorithm.Grpo,
    };

    private Algorithm AlgorithmOf(RlhfConfig c)
    {
        if (c.AdvEstimator is { } e) return Take("adv_estimator", FromEstimator(e), "training.algorithm", c.Training.Algorithm);
        // The loader already reported a config that names no algorithm and is not in ROLL's layout.
        return Written("training.algorithm") ? c.Training.Algorithm : FromEstimator(DefaultAdvEstimator);
    }

    /// <summary>actor_train.training_args and the top-level ROLL run keys onto <c>training</c>; the role mirrors the result.</summary>
    private TrainingSettings Training(RlhfConfig c)
    {
        var t = c.Training;
        if (c.ActorTrain is { } role)
        {
            const string r = "actor_train.training_args.";
            var a = role.TrainingArgs;
            object? If<T>(string key, T value) => Written(r + key) ? value : null;
            t = t with
            {
                LearningRate = Take(r + "learning_rate", a.LearningRate, "training.learning_rate", t.LearningRate),
                WeightDecay = Take(r + "weight_decay", If("weight_decay", a.WeightDecay), "training.weight_decay", t.WeightDecay),
                PerDeviceTrainBatchSize = Take(r + "per_device_train_batch_size", a.PerDeviceTrainBatchSize, "training.per_device_train_batch_size", t.PerDeviceTrainBatchSize),
                GradientAccumulationSteps = Take(r + "gradient_accumulation_steps", a.GradientAccumulationSteps, "training.gradient_accumulation_steps", t.GradientAccumulationSteps),
                WarmupSteps = Take(r + "warmup_steps", If("warmup_steps", a.WarmupSteps), "training.warmup_steps", t.WarmupSteps),
                NumTrainEpochs = Take(r + "num_train_epochs", If("num_train_epochs", a.NumTrainEpochs), "training.num_train_epochs", t.NumTrainEpochs),
                LrSchedulerType = Take(r + "lr_scheduler_type", If("lr_scheduler_type", a.LrSchedulerType), "training.lr_scheduler_type", t.LrSchedulerType),
                MaxGradNorm = Take(r + "max_grad_norm", a.MaxGradNorm, "training.max_grad_norm", t.MaxGradNorm),
            };
        }
        t = t with
        {
            MaxSteps = Take("max_steps", c.MaxSteps, "training.max_steps", t.MaxSteps),
            SaveSteps = Take("save_steps", c.SaveSteps, "training.save_steps", t.SaveSteps),
            LoggingSteps = Take("logging_steps", c.LoggingSteps, "training.logging_steps", t.LoggingSteps),
            EvalSteps = Take("eval_steps", c.EvalSteps, "training.eval_steps", t.EvalSteps),
            Seed = Take("seed", c.Seed, "training.seed", t.Seed),
            OutputDir = Take("output_dir", c.OutputDir, "training.output_dir", t.OutputDir),
            MaxGradNorm = Take("max_grad_norm", c.MaxGradNorm, "training.max_grad_norm", t.MaxGradNorm),
        };
        if (RollShaped && ConfigResolver.IsOnline(t.Algorithm) && t.MaxSteps is null && t.TotalEpisodes is null)
            t = t with { MaxSteps = DefaultMaxSteps };
        return t;
    }

    /// <summary>pretrain and actor_train's model_args onto <c>model</c>; reward_pretrain into the critic and reward model.</summary>
    private RlhfConfig Model(RlhfConfig c)
    {
        var m = c.Model;
        var tokenizer = c.Tokenizer;
        if (c.ActorTrain is { } role)
        {
            const string r = "actor_train.model_args.";
            m = m with
            {
                Path = Take(r + "model_name_or_path", role.ModelArgs.ModelNameOrPath, "model.path", m.Path),
                Dtype = Take(r + "dtype", Written(r + "dtype") ? role.ModelArgs.Dtype : (object?)null, "model.dtype", m.Dtype),
                ModelType = Take(r + "model_type", role.ModelArgs.ModelType, "model.model_type", m.ModelType),
            };
        }
        if (c.Pretrain is { } pretrain && c.ActorTrain?.ModelArgs.ModelNameOrPath is { } own && own != pretrain)
            errors.Add(ctx.ErrorAt("pretrain", $"pretrain ({pretrain}) disagrees with actor_train.model_args.model_name_or_path ({own}); set one of them"));
        else m = m with { Path = Take("pretrain", c.Pretrain, "model.path", m.Path) };
        if (c.Pretrain is not null && !Written("tokenizer.kind")) tokenizer = tokenizer with { Kind = TokenizerKind.Hf };
        var critic = c.Critic;
        var reward = c.Reward;
        if (c.RewardPretrain is { } rp)
        {
            if (critic is not null && critic.ModelArgs.ModelNameOrPath is null)
                critic = critic with { ModelArgs = critic.ModelArgs with { ModelNameOrPath = rp } };
            if (reward?.ModelArgs is { ModelNameOrPath: null } rma)
                reward = reward with { ModelArgs = rma with { ModelNameOrPath = rp } };
        }
        var actorTrain = Mirror(c.ActorTrain is { } at ? at with { ModelArgs = at.ModelArgs with { ModelNameOrPath = m.Path, Dtype = m.Dtype, ModelType = m.ModelType } } : null, c.Training);
        return c with { Model = m, Tokenizer = tokenizer, Critic = critic, Reward = reward, ActorTrain = actorTrain };
    }

    /// <summary>actor_train's training_args showing what <c>training</c> says, so a shown config reloads to the same settings.</summary>
    public static RoleSettings? Mirror(RoleSettings? role, TrainingSettings t) => role is null ? null : role with
    {
        TrainingArgs = role.TrainingArgs with
        {
            LearningRate = t.LearningRate, WeightDecay = t.WeightDecay, PerDeviceTrainBatchSize = t.PerDeviceTrainBatchSize,
            GradientAccumulationSteps = t.GradientAccumulationSteps, WarmupSteps = t.WarmupSteps, NumTrainEpochs = t.NumTrainEpochs,
            LrSchedulerType = t.LrSchedulerType, MaxGradNorm = t.MaxGradNorm,
        },
    };

    /// <summary>Samples per prompt, epochs, KL and clip settings onto the algorithm's own section.</summary>
    private RlhfConfig Algorithms(RlhfConfig c)
    {
        var alg = c.Training.Algorithm;
        var name = AlgorithmYaml.ToYaml(alg);
        string Section(string key) => $"{name}.{key}";
        void NotHere(string key) => Ignore(key, $"ROLL pipeline keys {name} has no use for");
        var k = c.NumReturnSequencesInGroup;
        var epochs = c.PpoEpochs;
        var clip = c.UsePgClipRange == true ? null : c.PgClip;
        var (low, high) = c.UsePgClipRange == true ? (c.PgClipLow, c.PgClipHigh) : (null, null);
        if (c.UsePgClipRange != true)
        {
            if (c.PgClipLow is not null) Ignore("pg_clip_low", "ROLL clip bounds that apply only with use_pg_clip_range: true");
            if (c.PgClipHigh is not null) Ignore("pg_clip_high", "ROLL clip bounds that apply only with use_pg_clip_range: true");
        }
        KlEstimator? estimator = null;
        if (c.KlPenalty is { } kp)
        {
            estimator = kp switch
            {
                KlPenalty.Kl or KlPenalty.K1 => KlEstimator.K1,
                KlPenalty.Mse or KlPenalty.K2 => KlEstimator.K2,
                KlPenalty.LowVarKl or KlPenalty.K3 => KlEstimator.K3,
                _ => null,
            };
            if (estimator is null) errors.Add(ctx.ErrorAt("kl_penalty", $"kl_penalty {KlPenaltyYaml.ToYaml(kp)} is not implemented; use kl (k1), mse (k2) or low_var_kl (k3)"));
        }
        if (c.KlLossCoef is not null && c.UseKlLoss is null)
            errors.Add(ctx.ErrorAt("kl_loss_coef", "kl_loss_coef needs use_kl_loss: true (ROLL adds the KL loss term only then)"));
        if (alg != Settings.Algorithm.Grpo)
        {
            if (c.UseKlLoss is not null) NotHere("use_kl_loss");
            if (c.KlLossCoef is not null) NotHere("kl_loss_coef");
        }
        if (alg != Settings.Algorithm.Ppo)
        {
            if (c.ValueClip is not null) NotHere("value_clip");
            if (c.Lambd is not null) NotHere("lambd");
        }
        if (alg != Settings.Algorithm.ReinforcePp && c.RewardClip is not null) NotHere("reward_clip");
        if (alg is not (Settings.Algorithm.Ppo or Settings.Algorithm.ReinforcePp))
        {
            if (c.Gamma is not null) NotHere("gamma");
            if (c.KlPenalty is not null) NotHere("kl_penalty");
        }
        if (alg is not (Settings.Algorithm.Grpo or Settings.Algorithm.Rloo) && (low is not null || high is not null))
            errors.Add(ctx.ErrorAt("use_pg_clip_range", $"{name} clips the ratio symmetrically here; asymmetric pg_clip_low/pg_clip_high work with grpo and rloo"));
        if (!ConfigResolver.IsOnline(alg))
        {
            foreach (var (key, v) in new (string, object?)[] { ("num_return_sequences_in_group", k), ("ppo_epochs", epochs), ("init_kl_coef", c.InitKlCoef), ("pg_clip", c.PgClip) })
                if (v is not null) NotHere(key);
            return c;
        }
        switch (alg)
        {
            case Settings.Algorithm.Ppo:
                if (k is long kk && kk != 1)
                    errors.Add(ctx.ErrorAt("num_return_sequences_in_group", $"ppo samples one response per prompt here; num_return_sequences_in_group is {kk}"));
                return c with
                {
                    Ppo = c.Ppo with
                    {
                        NumEpochs = Take("ppo_epochs", epochs, Section("num_epochs"), c.Ppo.NumEpochs),
                        KlCoef = Take("init_kl_coef", c.InitKlCoef, Section("kl_coef"), c.Ppo.KlCoef),
                        KlEstimator = Take("kl_penalty", estimator, Section("kl_estimator"), c.Ppo.KlEstimator),
                        Cliprange = Take("pg_clip", clip, Section("cliprange"), c.Ppo.Cliprange),
                        CliprangeValue = Take("value_clip", c.ValueClip, Section("cliprange_value"), c.Ppo.CliprangeValue),
                        Lam = Take("lambd", c.Lambd, Section("lam"), c.Ppo.Lam),
                        Gamma = Take("gamma", c.Gamma, Section("gamma"), c.Ppo.Gamma),
                    },
                };
            case Settings.Algorithm.Grpo:
                if (c.InitKlCoef is not null) Ignore("init_kl_coef", "ROLL reward-KL keys grpo has no use for (its KL is a loss term: use_kl_loss, kl_loss_coef)");
                return c with
                {
                    Grpo = c.Grpo with
                    {
                        NumGenerations = Take("num_return_sequences_in_group", k, Section("num_generations"), c.Grpo.NumGenerations),
                        NumIterations = Take("ppo_epochs", epochs, Section("num_iterations"), c.Grpo.NumIterations),
                        Epsilon = Take("pg_clip", clip, Section("epsilon"), Take("pg_clip_low", low, Section("epsilon"), c.Grpo.Epsilon)),
                        EpsilonHigh = Take("pg_clip_high", high, Section("epsilon_high"), c.Grpo.EpsilonHigh),
                        Beta = Take("kl_loss_coef", c.UseKlLoss switch { true => c.KlLossCoef ?? c.Grpo.Beta, false => 0.0, null => (double?)null }, Section("beta"), c.Grpo.Beta),
                    },
                };
            case Settings.Algorithm.Rloo:
                return c with
                {
                    Rloo = c.Rloo with
                    {
                        RlooK = Take("num_return_sequences_in_group", k, Section("rloo_k"), c.Rloo.RlooK),
                        NumEpochs = Take("ppo_epochs", epochs, Section("num_epochs"), c.Rloo.NumEpochs),
                        KlCoef = Take("init_kl_coef", c.InitKlCoef, Section("kl_coef"), c.Rloo.KlCoef),
                        Cliprange = Take("pg_clip", clip, Section("cliprange"), c.Rloo.Cliprange),
                        CliprangeLow = Take("pg_clip_low", low, Section("cliprange_low"), c.Rloo.CliprangeLow),
                        CliprangeHigh = Take("pg_clip_high", high, Section("cliprange_high"), c.Rloo.CliprangeHigh),
                    },
                };
            case Settings.Algorithm.ReinforcePp:
                return c with
                {
                    ReinforcePp = c.ReinforcePp with
                    {
                        NSamplesPerPrompt = Take("num_return_sequences_in_group", k, Section("n_samples_per_prompt"), c.ReinforcePp.NSamplesPerPrompt),
                        NumEpochs = Take("ppo_epochs", epochs, Section("num_epochs"), c.ReinforcePp.NumEpochs),
                        KlCoef = Take("init_kl_coef", c.InitKlCoef, Section("kl_coef"), c.ReinforcePp.KlCoef),
                        KlEstimator = Take("kl_penalty", estimator, Section("kl_estimator"), c.ReinforcePp.KlEstimator),
                        EpsClip = Take("pg_clip", clip, Section("eps_clip"), c.ReinforcePp.EpsClip),
                        Gamma = Take("gamma", c.Gamma, Section("gamma"), c.ReinforcePp.Gamma),
                        RewardClipRange = Take("reward_clip", c.RewardClip is double rc ? EquatableList.Of(-rc, rc) : null, Section("reward_clip_range"), c.ReinforcePp.RewardClipRange),
                    },
                };
            case Settings.Algorithm.OnlineDpo:
                if (c.PgClip is not null) NotHere("pg_clip");
                return c with
                {
                    OnlineDpo = c.OnlineDpo with
                    {
                        NumSamples = Take("num_return_sequences_in_group", k, Section("num_samples"), c.OnlineDpo.NumSamples),
                        NumEpochs = Take("ppo_epochs", epochs, Section("num_epochs"), c.OnlineDpo.NumEpochs),
                        KlCoef = Take("init_kl_coef", c.InitKlCoef, Section("kl_coef"), c.OnlineDpo.KlCoef),
                    },
                };
            default: // best-of-K
                if (c.PgClip is not null) NotHere("pg_clip");
                return c with
                {
                    Bok = c.Bok with
                    {
                        K = Take("num_return_sequences_in_group", k, Section("k"), c.Bok.K),
                        NumEpochs = Take("ppo_epochs", epochs, Section("num_epochs"), c.Bok.NumEpochs),
                        KlCoef = Take("init_kl_coef", c.InitKlCoef, Section("kl_coef"), c.Bok.KlCoef),
                    },
                };
        }
    }

    /// <summary>
    /// actor_infer's generating_args (with a vllm/sglang strategy_config already folded in) onto <c>generation</c>, then
    /// Hugging Face generate's and vLLM's names onto ours: num_return_sequences → n, do_sample false → temperature 0,
    /// num_beams 1 only, gpu_memory_utilization → kv_cache_memory_mb, max_model_len checked; response_length → max_new_tokens.
    /// </summary>
    private RlhfConfig Generation(RlhfConfig c, long memoryBytes)
    {
        var g = c.Generation;
        var actorInfer = c.ActorInfer;
        if (actorInfer?.GeneratingArgs is { } args)
        {
            const string r = "actor_infer.generating_args.";
            foreach (var key in GenerationSettings.Keys)
            {
                if (!Written(r + key)) continue;
                var property = typeof(GenerationSettings).GetProperty(SettingsName(key))!;
                var merged = Take(r + key, property.GetValue(args), "generation." + key, property.GetValue(g));
                g = g with { };
                property.SetValue(g, merged);
            }
            actorInfer = actorInfer with { GeneratingArgs = null };
        }
        g = g with { MaxNewTokens = Take("response_length", c.ResponseLength, Where("max_new_tokens"), g.MaxNewTokens) };
        g = g with { N = Take("generation.num_return_sequences", g.NumReturnSequences, "generation.n", g.N), NumReturnSequences = null };
        if (g.NumBeams is long beams && beams != 1)
            errors.Add(ctx.ErrorAt(Where("num_beams"), $"num_beams is {beams}: beam search is not implemented (RLHF samples its responses); use num_beams: 1"));
        if (g.DoSample == false) g = g with { Temperature = 0.0 };
        g = g with { DoSample = null, NumBeams = null };
        if (g.GpuMemoryUtilization is double share)
        {
            var mb = Math.Max(1, (long)(share * memoryBytes / (1024.0 * 1024.0)));
            if (Written("generation.kv_cache_memory_mb") && g.KvCacheMemoryMb != mb)
                errors.Add(ctx.ErrorAt(Where("gpu_memory_utilization"), $"gpu_memory_utilization ({Show(share)}) and generation.kv_cache_memory_mb ({g.KvCacheMemoryMb}) both set the KV-cache budget; keep one"));
            else g = g with { KvCacheMemoryMb = mb };
            g = g with { GpuMemoryUtilization = null };
        }
        if (g.MaxModelLen is long maxLen && c.Data.MaxPromptLength + g.MaxNewTokens > maxLen)
            errors.Add(ctx.ErrorAt(Where("max_model_len"),
                $"max_model_len {maxLen} is shorter than data.max_prompt_length {c.Data.MaxPromptLength} + generation.max_new_tokens {g.MaxNewTokens} = {c.Data.MaxPromptLength + g.MaxNewTokens}"));
        return c with { Generation = g, ActorInfer = actorInfer };

        string Where(string key) => Written("actor_infer.generating_args." + key) ? "actor_infer.generating_args." + key : "generation." + key;
    }

    /// <summary>The generated C# name of a YAML key (snake_case → PascalCase), as the settings generator spells it.</summary>
    private static string SettingsName(string key) =>
        string.Concat(key.Split('_', StringSplitOptions.RemoveEmptyEntries).Select(p => char.ToUpperInvariant(p[0]) + p[1..]));

    /// <summary>
    /// ROLL's rollout_batch_size (prompts per step) as training.num_mini_batches: rollout_batch_size × k rollouts per step
    /// are per_device_train_batch_size × gradient_accumulation_steps × world_size × num_mini_batches; the error names every number.
    /// </summary>
    public TrainingSettings RolloutBatch(RlhfConfig c, TrainingSettings t, long worldSize, long samplesPerPrompt)
    {
        if (c.RolloutBatchSize is not long prompts) return t;
        var perStep = (t.PerDeviceTrainBatchSize ?? 1) * (t.GradientAccumulationSteps ?? 1) * worldSize;
        var rollouts = prompts * samplesPerPrompt;
        if (rollouts % perStep != 0)
        {
            errors.Add(ctx.ErrorAt("rollout_batch_size",
                $"rollout_batch_size {prompts} × {samplesPerPrompt} samples per prompt = {rollouts} rollouts is not a multiple of per_device_train_batch_size {t.PerDeviceTrainBatchSize ?? 1} × gradient_accumulation_steps {t.GradientAccumulationSteps ?? 1} × world_size {worldSize} = {perStep}"));
            return t;
        }
        return t with { NumMiniBatches = Take("rollout_batch_size", rollouts / perStep, "training.num_mini_batches", t.NumMiniBatches) };
    }
}
