using Rlhf.Settings;
using Rlhf.Shell.Config;

namespace Rlhf.Shell.Tests.Config;

/// <summary>Configs as ROLL writes them: its template names and include paths, roles with their own training_args.</summary>
public class RollConfigTests
{
    /// <summary>ROLL's DeepSpeed strategy example (docs: "DeepSpeed strategy"), verbatim.</summary>
    private const string RollExample = """
        defaults:
          - ../config/deepspeed_zero@_here_
          - ../config/deepspeed_zero2@_here_
          - ../config/deepspeed_zero3@_here_
          - ../config/deepspeed_zero3_cpuoffload@_here_

        actor_train:
          model_args:
            attn_implementation: fa2
            disable_gradient_checkpointing: true
            dtype: bf16
            model_type: ~
          training_args:
            learning_rate: 1.0e-5
            weight_decay: 0
            per_device_train_batch_size: 1
            gradient_accumulation_steps: 32
            warmup_steps: 20
            num_train_epochs: 50
          strategy_args:
            strategy_name: deepspeed_train
            strategy_config: ${deepspeed_zero3}
          device_mapping: list(range(0,16))
          infer_batch_size: 4
        """;

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
}
