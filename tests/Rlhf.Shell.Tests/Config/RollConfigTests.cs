using FsCheck;
using FsCheck.Fluent;
using Rlhf.Settings;
using Rlhf.Shell.Config;

namespace Rlhf.Shell.Tests.Config;

/// <summary>Configs as ROLL writes them: its template names and include paths, roles with their own training_args.</summary>
public class RollConfigTests
{
    /// <summary>ROLL's DeepSpeed strategy example (docs: "DeepSpeed strategy"), verbatim.</summary>
    private static readonly string RollExample = File.ReadAllText(Path.Combine(TestPaths.Configs, "examples", "roll_deepspeed_strategy.yaml"));

    /// <summary>What this project still needs beside ROLL's keys: which trainer runs and on what data.</summary>
    private static readonly string[] RunKeys = ["training.algorithm=online_dpo", "training.total_episodes=64", "data.task=reverse"];

    private static RlhfConfig LoadExample()
    {
        var dir = Path.Combine(TestPaths.TempDir(), "examples", "qwen2.5-7B");
        Directory.CreateDirectory(dir);
        var path = Path.Combine(dir, "deepspeed.yaml");
        File.WriteAllText(path, RollExample);
        var result = ConfigLoader.Load(path, RunKeys);
        Assert.True(result.IsSuccess, string.Join("\n", result.FailToSeq()));
        return result.SuccessToSeq().Head;
    }

    [Fact]
    public void Rolls_includes_fall_back_to_the_built_in_templates_under_rolls_names()
    {
        var c = LoadExample();
        Assert.Equal(0, c.DeepspeedZero!.ZeroOptimization.Stage);
        Assert.Equal(2, c.DeepspeedZero2!.ZeroOptimization.Stage);
        Assert.Equal(3, c.DeepspeedZero3!.ZeroOptimization.Stage);
        Assert.Equal(3, c.DeepspeedZero3Cpuoffload!.ZeroOptimization.Stage);
        Assert.NotNull(c.DeepspeedZero3Cpuoffload.ZeroOptimization.OffloadParam);
    }

    [Fact]
    public void Rolls_example_resolves_the_strategy_config_to_the_zero3_template()
    {
        var c = LoadExample();
        var role = c.ActorTrain!;
        var ds = role.StrategyArgs.StrategyConfig!;
        Assert.Equal(3, ds.ZeroOptimization.Stage);
        Assert.Equal(c.DeepspeedZero3!.ZeroOptimization.Stage3MaxLiveParameters, ds.ZeroOptimization.Stage3MaxLiveParameters);
        // DeepSpeed's rule over the role's own training_args and its 16 devices: 1 × 32 × 16.
        Assert.Equal(512, ds.TrainBatchSize);
        Assert.Equal(16, role.DeviceMapping!.Count);
        Assert.Equal(AttnImplementation.Fa2, role.ModelArgs.AttnImplementation);
        Assert.Equal(1.0e-5, role.TrainingArgs.LearningRate);
    }

    [Fact]
    public void A_relative_include_that_exists_wins_over_the_built_in_one()
    {
        var root = TestPaths.TempDir();
        Directory.CreateDirectory(Path.Combine(root, "config"));
        Directory.CreateDirectory(Path.Combine(root, "examples"));
        File.WriteAllText(Path.Combine(root, "config", "deepspeed_zero3.yaml"), "deepspeed_zero3:\n  zero_optimization:\n    stage: 2\n");
        File.WriteAllText(Path.Combine(root, "examples", "x.yaml"), "defaults:\n  - ../config/deepspeed_zero3@_here_\n");
        var c = ConfigLoader.Load(Path.Combine(root, "examples", "x.yaml"), RunKeys);
        Assert.True(c.IsSuccess, string.Join("\n", c.FailToSeq()));
        Assert.Equal(2, c.SuccessToSeq().Head.DeepspeedZero3!.ZeroOptimization.Stage);
    }

    [Fact]
    public void An_include_neither_local_nor_built_in_is_still_an_error()
    {
        var result = ConfigLoader.LoadText("defaults:\n  - ../config/deepspeed_zero4@_here_\n", "x.yaml", RunKeys, baseDirectory: TestPaths.TempDir());
        var e = Assert.Single(result.FailToSeq());
        Assert.Equal(("defaults[0]", 2), (e.KeyPath, e.Line));
        Assert.Contains("cannot find '../config/deepspeed_zero4'", e.Message);
    }

    [Fact]
    public void An_unknown_attn_implementation_is_an_error_listing_the_known_ones()
    {
        var yaml = "actor_train:\n  model_args:\n    attn_implementation: flash3\n  strategy_args:\n    strategy_name: deepspeed_train\n";
        var e = Assert.Single(ConfigLoader.LoadText(yaml, "x.yaml", RunKeys).FailToSeq());
        Assert.Equal("actor_train.model_args.attn_implementation", e.KeyPath);
        Assert.Contains("flash_attention_2", e.Message);
    }

    // ---- The issue's example with nothing added, ROLL's pipeline keys, the inference role, ignored keys ----

    private static (RlhfConfig? Config, IReadOnlyList<ConfigError> Errors, List<IgnoredKey> Ignored) LoadYaml(string yaml, bool strict = false, params string[] overrides)
    {
        var ignored = new List<IgnoredKey>();
        var r = ConfigLoader.LoadText(yaml, "roll.yaml", overrides, baseDirectory: TestPaths.TempDir(), strict: strict, ignored: ignored);
        return (r.IsSuccess ? r.SuccessToSeq().Head : null, r.FailToSeq().ToList(), ignored);
    }

    private static RlhfConfig Ok(string yaml, params string[] overrides)
    {
        var (c, errors, _) = LoadYaml(yaml, false, overrides);
        Assert.True(c is not null, string.Join("\n", errors));
        return c!;
    }

    private static ConfigError OneError(string yaml, params string[] overrides)
    {
        var (c, errors, _) = LoadYaml(yaml, false, overrides);
        Assert.Null(c);
        return Assert.Single(errors);
    }

    [Fact]
    public void Rolls_example_loads_as_written_with_nothing_added()
    {
        var (c, errors, ignored) = LoadYaml(RollExample);
        Assert.True(c is not null, string.Join("\n", errors));
        Assert.Empty(ignored);
        // training_args are the training section; ROLL's defaults name the rest (adv_estimator gae → ppo, max_steps 500).
        Assert.Equal(Algorithm.Ppo, c!.Training.Algorithm);
        Assert.Equal(500L, c.Training.MaxSteps);
        Assert.Equal((1.0e-5, 0.0, 1L, 32L, 20L, 50.0),
            (c.Training.LearningRate, c.Training.WeightDecay, c.Training.PerDeviceTrainBatchSize, c.Training.GradientAccumulationSteps, c.Training.WarmupSteps, c.Training.NumTrainEpochs));
        Assert.Equal(Dtype.Bf16, c.Model.Dtype);
        // strategy_config is ${deepspeed_zero3}, and with no engine section it is the engine, over the role's 16 devices.
        Assert.Equal(16L, c.Distributed.WorldSize);
        Assert.Equal(c.DeepspeedZero3!.ZeroOptimization with { OverlapComm = true }, c.ActorTrain!.StrategyArgs.StrategyConfig!.ZeroOptimization);
        Assert.Equal(c.Engine, c.ActorTrain.StrategyArgs.StrategyConfig);
        Assert.Equal((512L, 1L, 32L), (c.Engine.TrainBatchSize!.Value, c.Engine.TrainMicroBatchSizePerGpu!.Value, c.Engine.GradientAccumulationSteps!.Value));
    }

    [Fact]
    public void A_device_twice_in_actor_train_is_an_error_when_its_strategy_config_is_the_engine()
    {
        var e = OneError(RollExample.Replace("list(range(0,16))", "[0, 1, 1, 2]"));
        Assert.Equal("actor_train.device_mapping", e.KeyPath);
        Assert.Contains("device 1 appears more than once", e.Message);
    }

    [Fact]
    public void Without_rolls_layout_training_is_still_required()
    {
        var e = OneError("data: {task: reverse}\nactor_train:\n  strategy_args: {strategy_name: deepspeed_train}\n");
        Assert.Equal(("training", "missing required key 'training'"), (e.KeyPath, e.Message));
    }

    [Fact]
    public void Pretrain_is_the_policy_directory_and_its_tokenizer()
    {
        var c = Ok(RollExample, "pretrain=models/tiny");
        Assert.Equal("models/tiny", c.Model.Path);
        Assert.Equal("models/tiny", c.ActorTrain!.ModelArgs.ModelNameOrPath);
        Assert.Equal(TokenizerKind.Hf, c.Tokenizer.Kind);
        Assert.Null(c.Pretrain);
        Assert.Equal(TokenizerKind.Byte, Ok(RollExample, "pretrain=models/tiny", "tokenizer.kind=byte").Tokenizer.Kind);
    }

    [Fact]
    public void Reward_pretrain_fills_the_critic_and_reward_model_where_they_name_no_directory()
    {
        const string roles = "critic:\n  strategy_args: {strategy_name: deepspeed_train}\nreward:\n  model_args: {dtype: bf16}\n  strategy_args: {strategy_name: hf_infer}\n";
        var c = Ok(Run + "training: {algorithm: ppo, max_steps: 2}\nreward_pretrain: models/rm\n" + roles);
        Assert.Equal(("models/rm", "models/rm"), (c.Critic!.ModelArgs.ModelNameOrPath, c.Reward!.ModelArgs!.ModelNameOrPath));
        var own = Ok(Run + "training: {algorithm: ppo, max_steps: 2}\nreward_pretrain: models/rm\n" + roles.Replace("{dtype: bf16}", "{model_name_or_path: models/own}"));
        Assert.Equal("models/own", own.Reward!.ModelArgs!.ModelNameOrPath);
        Assert.Null(own.RewardPretrain);
    }

    private static string Rlvr => Path.Combine(TestPaths.Configs, "examples", "roll_rlvr.yaml");

    [Fact]
    public void The_rlvr_example_maps_every_roll_key_onto_ours()
    {
        var ignored = new List<IgnoredKey>();
        var c = ConfigLoader.Load(Rlvr, ignored: ignored).Match(x => x, e => throw new Xunit.Sdk.XunitException(ConfigLoader.Format(e)));
        Assert.Equal(Algorithm.Grpo, c.Training.Algorithm);                                        // adv_estimator: grpo
        Assert.Equal(("roll_rlvr_tiny", 42L, "./output/roll_rlvr"), (c.RunName, c.Training.Seed, c.Training.OutputDir));
        Assert.Equal((20L, 10L, 1L, 10L), (c.Training.MaxSteps!.Value, c.Training.SaveSteps, c.Training.LoggingSteps, c.Training.EvalSteps!.Value));
        Assert.Equal("./output/roll_rlvr/ckpt", c.Checkpointing.Dir);
        Assert.Null(c.Checkpointing.ResumeFrom);                                                    // resume_from_checkpoint: false
        Assert.Equal(16L, c.Data.MaxPromptLength);                                                  // prompt_length
        Assert.Equal(16L, c.Generation.MaxNewTokens);                                               // response_length
        Assert.Equal((4L, 1L, 0.2, 0.01), (c.Grpo.NumGenerations, c.Grpo.NumIterations, c.Grpo.Epsilon, c.Grpo.Beta));
        // rollout_batch_size 8 prompts × 4 samples = 32 rollouts = 4 per device × 2 accumulation × 1 rank × 4 mini-batches.
        Assert.Equal(4L, c.Training.NumMiniBatches);
        // actor_infer: generating_args in HF generate's names, strategy_config in vLLM's.
        Assert.Equal((4L, 0.99, 0.99, 100L), (c.Generation.N!.Value, c.Generation.Temperature!.Value, c.Generation.TopP, c.Generation.TopK));
        Assert.Equal((16L, 64L), (c.Generation.BlockSize, c.Generation.MaxModelLen!.Value));
        Assert.Equal(Math.Max(1, (long)(0.002 * GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / (1024.0 * 1024.0))), c.Generation.KvCacheMemoryMb);
        Assert.Null(c.ActorInfer!.GeneratingArgs);
        Assert.Equal(StrategyName.Vllm, c.ActorInfer.StrategyArgs.StrategyName);
        Assert.Equal(StrategyName.HfInfer, c.Reference!.StrategyArgs.StrategyName);
        Assert.Equal("reverse", c.Reward!.Function);                                                // rewards: {reverse: …}
        Assert.Equal((3L, OffloadDevice.Cpu), (c.Engine.ZeroOptimization.Stage, c.Engine.ZeroOptimization.OffloadParam.Device));
        Assert.Equal(1.0e-3, c.Training.LearningRate);
    }

    [Fact]
    public void The_rlvr_example_lists_the_keys_it_ignores_once_grouped_with_their_lines()
    {
        var ignored = new List<IgnoredKey>();
        Assert.True(ConfigLoader.Load(Rlvr, ignored: ignored).IsSuccess);
        var lines = File.ReadAllLines(Rlvr);
        int LineOf(string text) => Array.FindIndex(lines, l => l.StartsWith(text, StringComparison.Ordinal)) + 1;
        Assert.Equal(
            new[] { ("hydra", LineOf("hydra:")), ("logging_dir", LineOf("logging_dir:")), ("system_envs", LineOf("system_envs:")),
                ("track_with", LineOf("track_with:")), ("tracker_kwargs", LineOf("tracker_kwargs:")), ("whiten_advantages", LineOf("whiten_advantages:")),
                ("actor_train.worker_cls", LineOf("  worker_cls: roll.pipeline.rlvr.actor")), ("actor_train.data_args", LineOf("  data_args:")),
                ("actor_infer.data_args", Array.FindLastIndex(lines, l => l == "  data_args:") + 1),
                ("rewards.reverse.worker_cls", LineOf("    worker_cls:")), ("rewards.reverse.tag_included", LineOf("    tag_included:")),
                ("rewards.reverse.world_size", LineOf("    world_size:")), ("rewards.reverse.infer_batch_size", LineOf("    infer_batch_size:")) }
                .OrderBy(k => k.Item2),
            ignored.Select(k => (k.KeyPath, k.Line)).OrderBy(k => k.Line));
        var warning = RollLayout.Describe(ignored);
        Assert.Single(warning.Split('\n'), l => l.Contains("warning"));
        Assert.Contains($"13 ROLL keys mean nothing here", warning);
        Assert.Contains($"hydra ({LineOf("hydra:")}), system_envs ({LineOf("system_envs:")}), actor_train.worker_cls", warning);
    }

    [Fact]
    public void Strict_makes_each_ignored_key_an_error_naming_it()
    {
        var ignored = new List<IgnoredKey>();
        Assert.True(ConfigLoader.Load(Rlvr, ignored: ignored).IsSuccess);
        var errors = ConfigLoader.Load(Rlvr, strict: true).FailToSeq().ToList();
        Assert.Equal(ignored.Select(k => (k.KeyPath, k.Line)).OrderBy(k => k), errors.Select(e => (e.KeyPath, e.Line)).OrderBy(k => k));
        Assert.All(errors, e => Assert.Contains("means nothing here", e.Message));
    }

    [Fact]
    public void The_rlvr_example_round_trips_through_show()
    {
        var c = ConfigLoader.Load(Rlvr).Match(x => x, e => throw new Xunit.Sdk.XunitException(ConfigLoader.Format(e)));
        var shown = ConfigLoader.ToYaml(c);
        var again = ConfigLoader.LoadText(shown, "shown.yaml").Match(x => x, e => throw new Xunit.Sdk.XunitException(ConfigLoader.Format(e) + "\n" + shown));
        Assert.Equal(c, again);
    }

    private const string Run = "data: {task: reverse}\n";

    [Fact]
    public void A_roll_key_and_ours_set_differently_is_an_error_naming_both()
    {
        var e = OneError(Run + "training: {algorithm: grpo, max_steps: 20}\nmax_steps: 10\n");
        Assert.Equal(("max_steps", 3), (e.KeyPath, e.Line));
        Assert.Equal("max_steps (10) disagrees with training.max_steps (20); set one of them", e.Message);
        Assert.Equal(20L, Ok(Run + "training: {algorithm: grpo, max_steps: 20}\nmax_steps: 20\n").Training.MaxSteps);

        var lr = OneError(Run + "training: {algorithm: grpo, max_steps: 2, learning_rate: 1.0e-5}\nactor_train:\n  training_args: {learning_rate: 2.0e-5}\n  strategy_args: {strategy_name: deepspeed_train}\n");
        Assert.Contains("actor_train.training_args.learning_rate (2E-05) disagrees with training.learning_rate (1E-05)", lr.Message);

        var alg = OneError(Run + "training: {algorithm: rloo, max_steps: 2}\nadv_estimator: grpo\n");
        Assert.Equal("adv_estimator (grpo) disagrees with training.algorithm (rloo); set one of them", alg.Message);
    }

    [Fact]
    public void Conflict_rule_holds_for_any_pair_of_values() => Check.One(
        FsCheck.Config.QuickThrowOnFailure.WithMaxTest(40).WithQuietOnSuccess(true),
        Prop.ForAll(Arb.From(Gen.Choose(1, 4)), Arb.From(Gen.Choose(1, 4)), (ours, roll) =>
        {
            var (c, errors, _) = LoadYaml(Run + $"training: {{algorithm: grpo, max_steps: 2}}\ngrpo: {{num_generations: {ours + 1}}}\nnum_return_sequences_in_group: {roll + 1}\n");
            if (ours == roll) Assert.Equal(ours + 1L, c!.Grpo.NumGenerations);
            else Assert.Contains($"num_return_sequences_in_group ({roll + 1}) disagrees with grpo.num_generations ({ours + 1})", Assert.Single(errors).Message);
        }));

    [Fact]
    public void Roll_keys_reach_each_algorithms_own_section()
    {
        var c = Ok(Run + "training: {max_steps: 2}\nadv_estimator: reinforce\nnum_return_sequences_in_group: 4\nppo_epochs: 2\ninit_kl_coef: 0.3\nkl_penalty: mse\npg_clip: 0.1\ngamma: 0.9\nreward_clip: 5\nresume_from_checkpoint: true\n");
        Assert.Equal(Algorithm.ReinforcePp, c.Training.Algorithm);
        var r = c.ReinforcePp;
        Assert.Equal((4L, 2L, 0.3, Rlhf.Core.Rollouts.KlEstimator.K2, 0.1, 0.9), (r.NSamplesPerPrompt, r.NumEpochs, r.KlCoef, r.KlEstimator, r.EpsClip, r.Gamma));
        Assert.Equal([-5.0, 5.0], r.RewardClipRange);
        Assert.Equal("latest", c.Checkpointing.ResumeFrom);

        var p = Ok(Run + "training: {max_steps: 2}\nadv_estimator: gae\nvalue_clip: 0.5\nlambd: 0.9\npg_clip: 0.3\n");
        Assert.Equal((0.5, 0.9, 0.3), (p.Ppo.CliprangeValue, p.Ppo.Lam, p.Ppo.Cliprange));

        // value_clip means nothing without a critic: listed with the ignored keys, not an error.
        var (g, _, ignored) = LoadYaml(Run + "training: {algorithm: grpo, max_steps: 2}\nvalue_clip: 0.5\nuse_pg_clip_range: true\npg_clip_low: 0.2\npg_clip_high: 0.28\n");
        Assert.Equal((0.2, 0.28), (g!.Grpo.Epsilon, g.Grpo.EpsilonHigh!.Value));
        Assert.Equal("value_clip", Assert.Single(ignored).KeyPath);
    }

    [Fact]
    public void Rollout_batch_size_that_does_not_split_into_mini_batches_names_every_number()
    {
        var e = OneError(Run + "training: {algorithm: grpo, max_steps: 2, per_device_train_batch_size: 3}\nrollout_batch_size: 5\nnum_return_sequences_in_group: 2\n");
        Assert.Equal("rollout_batch_size", e.KeyPath);
        Assert.Contains("rollout_batch_size 5 × 2 samples per prompt = 10 rollouts is not a multiple of per_device_train_batch_size 3 × gradient_accumulation_steps 1 × world_size 1 = 3", e.Message);
    }

    private const string Infer = Run + "training: {algorithm: grpo, max_steps: 2}\nactor_infer:\n  strategy_args:\n    strategy_name: vllm\n";

    [Fact]
    public void Hugging_face_generate_names_map_and_beam_search_is_refused()
    {
        var c = Ok(Infer + "  generating_args: {num_return_sequences: 8, do_sample: false, num_beams: 1, max_new_tokens: 7}\n");
        Assert.Equal((8L, 0.0, 7L), (c.Generation.N!.Value, c.Generation.Temperature!.Value, c.Generation.MaxNewTokens));
        Assert.Null(c.Generation.DoSample);
        var length = OneError(Infer + "  generating_args: {max_new_tokens: 7}\nresponse_length: 9\n");
        Assert.Equal("response_length (9) disagrees with actor_infer.generating_args.max_new_tokens (7); set one of them", length.Message);
        var e = OneError(Infer + "  generating_args: {num_beams: 4}\n");
        Assert.Equal("actor_infer.generating_args.num_beams", e.KeyPath);
        Assert.Contains("beam search is not implemented", e.Message);
    }

    [Fact]
    public void Vllm_engine_keys_in_strategy_config_are_generator_settings()
    {
        var c = Ok(Infer + "    strategy_config: {block_size: 32, max_num_seqs: 7, enable_prefix_caching: true}\n");
        Assert.Equal((32L, 7L, true), (c.Generation.BlockSize, c.Generation.MaxNumSeqs, c.Generation.EnablePrefixCaching));
        Assert.Null(c.ActorInfer!.StrategyArgs.StrategyConfig);

        var sglang = Ok(Infer.Replace("vllm", "sglang") + "    strategy_config: {mem_fraction_static: 0.001}\n");
        Assert.Equal(Math.Max(1, (long)(0.001 * GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / (1024.0 * 1024.0))), sglang.Generation.KvCacheMemoryMb);

        var both = OneError(Infer + "    strategy_config: {block_size: 32}\n  generating_args: {block_size: 16}\n");
        Assert.Contains("actor_infer.strategy_args.strategy_config.block_size and actor_infer.generating_args.block_size set the same generator setting", both.Message);

        var budget = OneError(Infer + "    strategy_config: {gpu_memory_utilization: 0.5}\ngeneration: {kv_cache_memory_mb: 64}\n");
        Assert.Contains("gpu_memory_utilization (0.5) and generation.kv_cache_memory_mb (64) both set the KV-cache budget", budget.Message);

        var len = OneError(Infer + "    strategy_config: {max_model_len: 40}\nprompt_length: 32\ngeneration: {max_new_tokens: 16}\n");
        Assert.Contains("max_model_len 40 is shorter than data.max_prompt_length 32 + generation.max_new_tokens 16 = 48", len.Message);
    }

    [Fact]
    public void A_typo_of_a_known_key_is_still_an_error_with_did_you_mean()
    {
        var top = OneError(Run + "training: {algorithm: grpo, max_steps: 2}\nrollout_batch_sise: 8\n");
        Assert.Equal("unknown key 'rollout_batch_sise'; did you mean 'rollout_batch_size'?", top.Message);
        var inner = OneError(RollExample.Replace("learning_rate:", "learnig_rate:"));
        Assert.Equal("actor_train.training_args.learnig_rate", inner.KeyPath);
        Assert.Contains("did you mean 'learning_rate'?", inner.Message);
    }

    [Fact]
    public void Rewards_with_several_domains_is_an_error_naming_them()
    {
        var e = OneError(Run + "training: {algorithm: grpo, max_steps: 2}\nrewards:\n  math_rule: {worker_cls: a.B}\n  code_sandbox: {worker_cls: c.D}\n");
        Assert.Equal("rewards", e.KeyPath);
        Assert.Contains("2 reward workers by data tag (math_rule, code_sandbox)", e.Message);
    }
}
