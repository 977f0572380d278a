using LanguageExt;
using Rlhf.Settings;

namespace Rlhf.Shell.Config;

/// <summary>
/// Checks that span several keys and fills what one key leaves to another (pure: settings in, settings or errors out):
/// the DeepSpeed batch rule <c>train_batch_size = micro × gas × world_size</c>, algorithm defaults for the learning rate,
/// temperature and samples per prompt, and consistency rules the schema cannot express.
/// </summary>
public static class ConfigResolver
{
    /// <summary>The algorithm's default learning rate, sampling temperature (online only) and samples per prompt (online only).</summary>
    public static (double LearningRate, double? Temperature, long? SamplesPerPrompt) AlgorithmDefaults(RlhfConfig c) => c.Training.Algorithm switch
    {
        Algorithm.Sft => (c.Sft.LearningRate, null, null),
        Algorithm.RewardModel => (c.RewardModel.LearningRate, null, null),
        Algorithm.Dpo => (c.Dpo.LearningRate, null, null),
        Algorithm.OnlineDpo => (c.OnlineDpo.LearningRate, c.OnlineDpo.Temperature, c.OnlineDpo.NumSamples),
        Algorithm.Ppo => (c.Ppo.LearningRate, c.Ppo.Temperature, 1),
        Algorithm.Rloo => (c.Rloo.LearningRate, c.Rloo.Temperature, c.Rloo.RlooK),
        Algorithm.Bok => (c.Bok.LearningRate, c.Bok.Temperature, c.Bok.K),
        Algorithm.Grpo => (c.Grpo.LearningRate, c.Grpo.Temperature, c.Grpo.NumGenerations),
        Algorithm.ReinforcePp => (c.ReinforcePp.LearningRate, c.ReinforcePp.Temperature, c.ReinforcePp.NSamplesPerPrompt),
        _ => throw new ArgumentOutOfRangeException(nameof(c), c.Training.Algorithm, "unknown algorithm"),
    };

    /// <summary>Whether an algorithm generates its own rollouts (and so needs a length in episodes or steps).</summary>
    public static bool IsOnline(Algorithm a) => a is not (Algorithm.Sft or Algorithm.RewardModel or Algorithm.Dpo);

    /// <summary>
    /// The world size the batch rule uses: <paramref name="worldSize"/> (the launcher's), else distributed.world_size,
    /// else the size of actor_train's device_mapping, else 1.
    /// </summary>
    public static long WorldSize(RlhfConfig c, int? worldSize) =>
        worldSize ?? c.Distributed.WorldSize ?? c.ActorTrain?.DeviceMapping?.Count ?? 1;

    /// <summary>
    /// A random-init model section must describe a model that can be built: heads divide the width, key/value heads
    /// divide the query heads (grouped-query attention, as transformers' LlamaConfig requires), and the rotary head
    /// dimension of llama/qwen2 is even (transformers' rotate_half splits it in two). Errors name the keys involved.
    /// </summary>
    private static void CheckModelShape(ModelSettings m, string prefix, List<ConfigError> errors, BindContext ctx)
    {
        if (m.Path is not null) return;
        if (m.HiddenSize % m.NumAttentionHeads != 0)
        {
            errors.Add(ctx.ErrorAt($"{prefix}.num_attention_heads",
                $"{prefix}.hidden_size ({m.HiddenSize}) is not a multiple of {prefix}.num_attention_heads ({m.NumAttentionHeads}): each head needs a whole share of the width"));
            return;
        }
        if (m.NumKeyValueHeads is long kv && (kv > m.NumAttentionHeads || m.NumAttentionHeads % kv != 0))
            errors.Add(ctx.ErrorAt($"{prefix}.num_key_value_heads",
                $"{prefix}.num_attention_heads ({m.NumAttentionHeads}) is not a multiple of {prefix}.num_key_value_heads ({kv})"));
        var headDim = m.HiddenSize / m.NumAttentionHeads;
        if (headDim % 2 != 0 && m.ModelType is ModelType.Llama or ModelType.Qwen2)
            errors.Add(ctx.ErrorAt($"{prefix}.num_attention_heads",
                $"the head dimension {prefix}.hidden_size / {prefix}.num_attention_heads = {m.HiddenSize} / {m.NumAttentionHeads} = {headDim} is odd; rotary embeddings need an even one"));
    }

    /// <summary>
    /// Runs every cross-key check and fills derived values; positions come from the binding context. ROLL's keys are
    /// mapped onto ours first (<see cref="RollMapping"/>); <paramref name="memoryBytes"/> is the memory vLLM's
    /// gpu_memory_utilization is a share of, and ROLL keys an algorithm has no use for are added to <paramref name="ignored"/>.
    /// </summary>
    public static Validation<ConfigError, RlhfConfig> Resolve(RlhfConfig c, BindContext ctx, int? worldSize = null, long memoryBytes = 0, List<IgnoredKey>? ignored = null)
    {
        var errors = new List<ConfigError>();
        ConfigError At(string path, string message) => ctx.ErrorAt(path, message);
        var roll = new RollMapping(ctx, errors, ignored ?? []);
        c = roll.Apply(c, memoryBytes);
        if (worldSize is null && c.Distributed.WorldSize is null && c.ActorTrain?.DeviceMapping is { Count: > 0 } devices)
            c = c with { Distributed = c.Distributed with { WorldSize = devices.Count } };

        if (worldSize is int ws0 && c.Distributed.WorldSize is long dws && dws != ws0)
            errors.Add(At("distributed.world_size", $"distributed.world_size is {dws} but the launcher runs {ws0} ranks"));
        var ws = WorldSize(c, worldSize);

        // A ROLL-shaped config may leave its data to later (ROLL reads it from data_args, a template here); training says so.
        if ((c.Data.Task is null) == (c.Data.Path is null) && !(roll.RollShaped && c.Data.Task is null && c.Data.Path is null))
            errors.Add(At(c.Data.Path is null ? "data" : "data.path", c.Data.Path is null
                ? "set one of data.task (a built-in synthetic task) or data.path (a JSONL file)"
                : "set only one of data.task and data.path"));
        if (c.Data.Task is { } task && !Training.Tasks.SyntheticTasks.Names.Contains(task))
            errors.Add(At("data.task", $"unknown synthetic task '{task}'; expected one of {string.Join(", ", Training.Tasks.SyntheticTasks.Names)}"));
        if (c.Data.TaskMinDigits > c.Data.TaskMaxDigits)
            errors.Add(At("data.task_min_digits", $"data.task_min_digits ({c.Data.TaskMinDigits}) is above data.task_max_digits ({c.Data.TaskMaxDigits})"));

        CheckModelShape(c.Model, "model", errors, ctx);

        var alg = AlgorithmDefaults(c);
        var algKey = AlgorithmYaml.ToYaml(c.Training.Algorithm);
        if (IsOnline(c.Training.Algorithm) && c.Training.TotalEpisodes is null && c.Training.MaxSteps is null)
            errors.Add(At("training", $"{algKey} is online: set training.total_episodes or training.max_steps"));
        if (alg.SamplesPerPrompt is long k && c.Generation.N is long n && n != k && c.Training.Algorithm != Algorithm.Ppo)
            errors.Add(At("generation.n", $"generation.n is {n} but {algKey} samples {k} per prompt; remove generation.n or make them agree"));

        // Gradient clipping: training.max_grad_norm and engine.gradient_clipping name the same thing.
        var engine = c.Engine;
        var training = c.Training;
        if (training.MaxGradNorm is double mgn)
        {
            if (engine.GradientClipping != 0 && engine.GradientClipping != mgn)
                errors.Add(At("training.max_grad_norm", $"training.max_grad_norm ({mgn}) disagrees with engine.gradient_clipping ({engine.GradientClipping})"));
            engine = engine with { GradientClipping = mgn };
        }
        training = training with
        {
            MaxGradNorm = engine.GradientClipping,
            LearningRate = training.LearningRate ?? alg.LearningRate,
        };

        var enginePath = roll.EngineFromRole ? "actor_train.strategy_args.strategy_config" : "engine";
        engine = CheckEngine(engine, enginePath, errors, ctx);
        engine = EngineOptimizer(engine, training);
        var batch = BatchSizes(engine, enginePath, training.PerDeviceTrainBatchSize, "training.per_device_train_batch_size",
            training.GradientAccumulationSteps, "training.gradient_accumulation_steps", ws, errors, ctx);
        if (batch is var (tbs, mb, gas))
        {
            engine = engine with { TrainBatchSize = tbs, TrainMicroBatchSizePerGpu = mb, GradientAccumulationSteps = gas };
            training = training with { PerDeviceTrainBatchSize = mb, GradientAccumulationSteps = gas };
        }
        if (IsOnline(training.Algorithm))
            training = roll.RolloutBatch(c, training, ws, training.Algorithm == Algorithm.Ppo ? 1 : alg.SamplesPerPrompt ?? 1);
        else if (c.RolloutBatchSize is not null) errors.Add(At("rollout_batch_size", $"rollout_batch_size is ROLL's prompts per step; {algKey} is an offline stage"));

        var generation = c.Generation with
        {
            Temperature = c.Generation.Temperature ?? alg.Temperature,
            N = c.Generation.N ?? alg.SamplesPerPrompt,
        };

        // An engine taken from actor_train was resolved above, once; the role's other checks (its devices) still run.
        var actorTrain = ResolveRole(roll.EngineFromRole ? c.ActorTrain! with { StrategyArgs = c.ActorTrain!.StrategyArgs with { StrategyConfig = null } } : c.ActorTrain,
            "actor_train", ws, errors, ctx);
        if (roll.EngineFromRole) actorTrain = actorTrain! with { StrategyArgs = actorTrain.StrategyArgs with { StrategyConfig = engine } };
        var resolved = c with
        {
            RolloutBatchSize = null,
            Training = training,
            Engine = engine,
            Generation = generation,
            ActorTrain = RollMapping.Mirror(actorTrain, training),
            ActorInfer = ResolveRole(c.ActorInfer, "actor_infer", ws, errors, ctx),
            Reference = ResolveRole(c.Reference, "reference", ws, errors, ctx),
            Reward = ResolveReward(c.Reward, errors, ctx),
            Critic = ResolveRole(c.Critic, "critic", ws, errors, ctx),
        };
        return errors.Count > 0
            ? Validation<ConfigError, RlhfConfig>.Fail(Prelude.Seq(errors))
            : Validation<ConfigError, RlhfConfig>.Success(resolved);
    }

    /// <summary>
    /// The engine's optimizer after resolution: an unset <c>engine.optimizer</c> is the trainer's own AdamW, and unset
    /// (<c>auto</c>) params take <c>training.learning_rate</c>, <c>adam_beta1</c>/<c>adam_beta2</c>, <c>adam_epsilon</c> and
    /// <c>weight_decay</c> (HF Trainer's DeepSpeed integration fills "auto" the same way).
    /// </summary>
    private static DeepSpeedSettings EngineOptimizer(DeepSpeedSettings e, TrainingSettings t)
    {
        var o = e.Optimizer ?? new OptimizerSettings { Type = OptimizerType.AdamW };
        var p = o.Params;
        return e with
        {
            Optimizer = o with
            {
                Params = p with
                {
                    Lr = p.Lr ?? t.LearningRate,
                    Betas = p.Betas ?? new EquatableList<double>([t.AdamBeta1, t.AdamBeta2]),
                    Eps = p.Eps ?? t.AdamEpsilon,
                    WeightDecay = p.WeightDecay ?? t.WeightDecay,
                },
            },
        };
    }

    /// <summary>
    /// An engine section on its own (a DeepSpeed JSON file): the engine checks and the batch rule at
    /// <paramref name="worldSize"/>, so every batch size is set afterwards; <paramref name="path"/> is the section's key path ("" for a file).
    /// </summary>
    public static Validation<ConfigError, DeepSpeedSettings> ResolveEngine(DeepSpeedSettings e, BindContext ctx, string path, long worldSize)
    {
        var errors = new List<ConfigError>();
        e = CheckEngine(e, path, errors, ctx);
        if (BatchSizes(e, path, null, "", null, "", worldSize, errors, ctx) is var (tbs, mb, gas))
            e = e with { TrainBatchSize = tbs, TrainMicroBatchSizePerGpu = mb, GradientAccumulationSteps = gas };
        return errors.Count > 0
            ? Validation<ConfigError, DeepSpeedSettings>.Fail(Prelude.Seq(errors))
            : Validation<ConfigError, DeepSpeedSettings>.Success(e);
    }

    private static string Key(string path, string key) => path.Length == 0 ? key : path + "." + key;

    private static DeepSpeedSettings CheckEngine(DeepSpeedSettings e, string path, List<ConfigError> errors, BindContext ctx)
    {
        if (e.Bf16.Enabled && e.Fp16.Enabled)
            errors.Add(ctx.ErrorAt(Key(path, "fp16.enabled"), "bf16 and fp16 cannot both be enabled"));
        var z = e.ZeroOptimization;
        if (z.OffloadParam.Device != OffloadDevice.None && z.Stage != 3)
            errors.Add(ctx.ErrorAt(Key(path, "zero_optimization.offload_param.device"), $"offload_param needs ZeRO stage 3, got stage {z.Stage}"));
        if (z.OffloadOptimizer.Device != OffloadDevice.None && z.Stage == 0)
            errors.Add(ctx.ErrorAt(Key(path, "zero_optimization.offload_optimizer.device"), "offload_optimizer needs ZeRO stage 1, 2 or 3, got stage 0"));
        return e with { ZeroOptimization = z with { OverlapComm = z.OverlapComm ?? z.Stage == 3 } };
    }

    /// <summary>The reward section: at most one of function, functions and a reward model; a model's devices and engine checked as a role's (frozen: no batch rule).</summary>
    private static RewardSettings? ResolveReward(RewardSettings? reward, List<ConfigError> errors, BindContext ctx)
    {
        if (reward is null) return null;
        var isModel = reward.ModelArgs is not null || reward.StrategyArgs is not null;
        var kinds = (reward.Function is null ? 0 : 1) + (reward.Functions is null ? 0 : 1) + (isModel ? 1 : 0);
        if (kinds > 1)
            errors.Add(ctx.ErrorAt("reward", "set only one of reward.function, reward.functions and a reward model (model_args/strategy_args)"));
        if (reward.Functions is { Count: 0 })
            errors.Add(ctx.ErrorAt("reward.functions", "reward.functions is empty; list at least one {function, weight}"));
        if (reward.DeviceMapping is { } devices && devices.Distinct().Count() != devices.Count)
            errors.Add(ctx.ErrorAt("reward.device_mapping", "a device appears more than once in device_mapping"));
        if (reward.StrategyArgs?.StrategyConfig is not { } ds) return reward;
        return reward with { StrategyArgs = reward.StrategyArgs with { StrategyConfig = CheckEngine(ds, "reward.strategy_args.strategy_config", errors, ctx) } };
    }

    private static RoleSettings? ResolveRole(RoleSettings? role, string path, long globalWs, List<ConfigError> errors, BindContext ctx)
    {
        if (role is null) return null;
        if (role.DeviceMapping is { } devices)
        {
            var seen = new System.Collections.Generic.HashSet<long>();
            for (var i = 0; i < devices.Count; i++)
                if (!seen.Add(devices[i]))
                    errors.Add(ctx.ErrorAt($"{path}.device_mapping", $"device {devices[i]} appears more than once in device_mapping"));
        }
        if (role.StrategyArgs.StrategyConfig is not { } ds) return role;
        var ws = role.DeviceMapping?.Count ?? globalWs;
        ds = CheckEngine(ds, $"{path}.strategy_args.strategy_config", errors, ctx);
        var ta = role.TrainingArgs;
        var batch = BatchSizes(ds, $"{path}.strategy_args.strategy_config", ta.PerDeviceTrainBatchSize, $"{path}.training_args.per_device_train_batch_size",
            ta.GradientAccumulationSteps, $"{path}.training_args.gradient_accumulation_steps", ws, errors, ctx);
        if (batch is var (tbs, mb, gas))
        {
            ds = ds with { TrainBatchSize = tbs, TrainMicroBatchSizePerGpu = mb, GradientAccumulationSteps = gas };
            ta = ta with { PerDeviceTrainBatchSize = mb, GradientAccumulationSteps = gas };
        }
        return role with { TrainingArgs = ta, StrategyArgs = role.StrategyArgs with { StrategyConfig = ds } };
    }

    /// <summary>
    /// DeepSpeed's batch rule. Micro-batch and accumulation come from the engine keys, or else from the training keys
    /// (they must agree when both are set); one missing value of the three is derived; all three must satisfy
    /// <c>train_batch_size = micro × gas × world_size</c>, and the error names all four numbers.
    /// </summary>
    public static (long TrainBatchSize, long Micro, long Gas)? BatchSizes(
        DeepSpeedSettings e, string path, long? trainingMicro, string trainingMicroPath, long? trainingGas, string trainingGasPath,
        long worldSize, List<ConfigError> errors, BindContext ctx)
    {
        var before = errors.Count;
        if (e.TrainMicroBatchSizePerGpu is long em && trainingMicro is long tm && em != tm)
            errors.Add(ctx.ErrorAt(Key(path, "train_micro_batch_size_per_gpu"), $"train_micro_batch_size_per_gpu ({em}) disagrees with {trainingMicroPath} ({tm})"));
        if (e.GradientAccumulationSteps is long eg && trainingGas is long tg && eg != tg)
            errors.Add(ctx.ErrorAt(Key(path, "gradient_accumulation_steps"), $"gradient_accumulation_steps ({eg}) disagrees with {trainingGasPath} ({tg})"));
        if (errors.Count > before) return null;

        var resolved = BatchRule.Resolve(e.TrainBatchSize, e.TrainMicroBatchSizePerGpu ?? trainingMicro, e.GradientAccumulationSteps ?? trainingGas, worldSize, out var error);
        if (resolved is null) errors.Add(ctx.ErrorAt(e.TrainBatchSize is null ? path : Key(path, "train_batch_size"), error!));
        return resolved;
    }
}
