using LanguageExt;
using Rlhf.Settings;
using Rlhf.Shell.Config;

namespace Rlhf.Shell.Tests.Config;

/// <summary>Composition, overrides, interpolation, deepspeed_config and the batch rule, end to end through the loader.</summary>
public class LoaderTests
{
    private const string Minimal = "training:\n  algorithm: online_dpo\n  total_episodes: 64\ndata:\n  task: reverse\n";

    private static RlhfConfig Ok(Validation<ConfigError, RlhfConfig> v) =>
        v.Match(c => c, errors => throw new Xunit.Sdk.XunitException("expected success, got:\n" + ConfigLoader.Format(errors)));

    private static List<string> Errors(Validation<ConfigError, RlhfConfig> v) =>
        v.Match(_ => throw new Xunit.Sdk.XunitException("expected errors, got success"), errors => errors.Select(e => e.ToString()).ToList());

    private static string Write(string dir, string name, string text)
    {
        var path = Path.Combine(dir, name);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, text);
        return path;
    }

    [Fact]
    public void Defaults_and_algorithm_defaults_fill_a_minimal_config()
    {
        var c = Ok(ConfigLoader.LoadText(Minimal));
        Assert.Equal(Algorithm.OnlineDpo, c.Training.Algorithm);
        Assert.Equal(3e-6, c.Training.LearningRate);     // online_dpo.learning_rate
        Assert.Equal(0.7, c.Generation.Temperature);      // online_dpo.temperature
        Assert.Equal(2L, c.Generation.N);                 // online_dpo.num_samples
        Assert.Equal(0.1, c.OnlineDpo.Beta);
        Assert.Equal(16L, c.Generation.BlockSize);
        Assert.Equal(0L, c.Engine.ZeroOptimization.Stage);
        Assert.False(c.Engine.ZeroOptimization.OverlapComm);
        Assert.Equal((1L, 1L, 1L), (c.Engine.TrainBatchSize!.Value, c.Engine.TrainMicroBatchSizePerGpu!.Value, c.Engine.GradientAccumulationSteps!.Value));
        Assert.Null(c.ActorTrain);
    }

    [Fact]
    public void Overrides_set_values_create_sections_and_parse_yaml_values()
    {
        var c = Ok(ConfigLoader.LoadText(Minimal, overrides:
        [
            "training.learning_rate=1e-5", "generation.stop_token_ids=[7, 8]", "+logging.csv=true",
            "actor_train.strategy_args.strategy_name=deepspeed_train", "actor_train.device_mapping=list(range(2,6))",
            "run_name=a=b",
        ]));
        Assert.Equal(1e-5, c.Training.LearningRate);
        Assert.Equal([7L, 8L], c.Generation.StopTokenIds);
        Assert.True(c.Logging.Csv);
        Assert.Equal(StrategyName.DeepspeedTrain, c.ActorTrain!.StrategyArgs.StrategyName);
        Assert.Equal([2L, 3L, 4L, 5L], c.ActorTrain.DeviceMapping!);
        Assert.Equal("a=b", c.RunName);
    }

    [Fact]
    public void Later_overrides_win_and_override_errors_point_at_the_argument()
    {
        var c = Ok(ConfigLoader.LoadText(Minimal, overrides: ["training.seed=1", "training.seed=2"]));
        Assert.Equal(2L, c.Training.Seed);
        var errors = Errors(ConfigLoader.LoadText(Minimal, overrides: ["training.seed=1", "generation.top_p=2"]));
        Assert.Equal(["<command line>:2:18: generation.top_p: out of range: must be ≤ 1, got 2"], errors);
    }

    [Fact]
    public void Interpolation_substitutes_scalars_inside_strings_and_whole_sections()
    {
        var c = Ok(ConfigLoader.LoadText(Minimal + """
            run_name: seed${training.seed}-${data.task}
            logging:
              dir: ${training.output_dir}/logs
            checkpointing:
              dir: '\${not.a.reference}'
            """));
        Assert.Equal("seed42-reverse", c.RunName);            // training.seed is the schema default
        Assert.Equal("output/logs", c.Logging.Dir);
        Assert.Equal("${not.a.reference}", c.Checkpointing.Dir);
    }

    [Fact]
    public void Interpolation_resolves_chains_and_sections_shared_by_roles()
    {
        var c = Ok(ConfigLoader.LoadText(Minimal + """
            deepspeed_zero2:
              zero_optimization: { stage: 2 }
              gradient_clipping: ${deepspeed_zero3.gradient_clipping}
            deepspeed_zero3:
              zero_optimization: { stage: 3 }
              gradient_clipping: 1.0
            engine: ${deepspeed_zero2}
            actor_train:
              strategy_args: { strategy_name: deepspeed_train, strategy_config: "${deepspeed_zero3}" }
              training_args: { per_device_train_batch_size: 2, gradient_accumulation_steps: 3 }
              device_mapping: list(range(0,4))
            """));
        Assert.Equal(2L, c.Engine.ZeroOptimization.Stage);
        Assert.Equal(1.0, c.Engine.GradientClipping);
        var ds = c.ActorTrain!.StrategyArgs.StrategyConfig!;
        Assert.Equal(3L, ds.ZeroOptimization.Stage);
        Assert.True(ds.ZeroOptimization.OverlapComm); // stage 3 default
        Assert.Equal((24L, 2L, 3L), (ds.TrainBatchSize!.Value, ds.TrainMicroBatchSizePerGpu!.Value, ds.GradientAccumulationSteps!.Value));
    }

    [Fact]
    public void Defaults_compose_in_order_with_self_last_and_packages()
    {
        var dir = TestPaths.TempDir();
        Write(dir, "base/a.yaml", "training:\n  algorithm: ppo\n  seed: 1\n  total_episodes: 8\ndata:\n  task: copy\n");
        Write(dir, "base/b.yaml", "training:\n  seed: 2\n  output_dir: from_b\n");
        Write(dir, "gen.yaml", "temperature: 0.3\ntop_k: 5\n");
        var main = Write(dir, "main.yaml", "defaults:\n  - base/a\n  - base/b.yaml\n  - gen@generation\ntraining:\n  output_dir: mine\n");
        var c = Ok(ConfigLoader.Load(main));
        Assert.Equal(Algorithm.Ppo, c.Training.Algorithm); // from a
        Assert.Equal(2L, c.Training.Seed);                 // b overrides a
        Assert.Equal("mine", c.Training.OutputDir);        // the file itself overrides its defaults
        Assert.Equal(0.3, c.Generation.Temperature);       // placed under generation by @generation
        Assert.Equal(5L, c.Generation.TopK);

        var selfFirst = Write(dir, "self_first.yaml", "defaults: [_self_, base/a, base/b]\ntraining:\n  output_dir: mine\n");
        Assert.Equal("from_b", Ok(ConfigLoader.Load(selfFirst)).Training.OutputDir);
    }

    [Fact]
    public void Lists_are_replaced_not_concatenated_when_composing()
    {
        var dir = TestPaths.TempDir();
        Write(dir, "base.yaml", Minimal + "generation:\n  stop_token_ids: [1, 2, 3]\n");
        var main = Write(dir, "main.yaml", "defaults: [base]\ngeneration:\n  stop_token_ids: [9]\n");
        Assert.Equal([9L], Ok(ConfigLoader.Load(main)).Generation.StopTokenIds);
    }

    [Fact]
    public void DeepSpeed_json_is_the_base_of_the_engine_and_yaml_keys_win()
    {
        var dir = TestPaths.TempDir();
        Write(dir, "ds.json", """
            {
              "train_batch_size": "auto",
              "train_micro_batch_size_per_gpu": 4,
              "gradient_accumulation_steps": 2,
              "gradient_clipping": 1.0,
              "bf16": { "enabled": true },
              "zero_optimization": { "stage": 2, "reduce_bucket_size": 5e7, "overlap_comm": true }
            }
            """);
        var main = Write(dir, "main.yaml", Minimal + "deepspeed_config: ds.json\nengine:\n  zero_optimization:\n    stage: 1\ndistributed:\n  world_size: 2\n");
        var c = Ok(ConfigLoader.Load(main));
        Assert.Equal(1L, c.Engine.ZeroOptimization.Stage);
        Assert.Equal(50_000_000L, c.Engine.ZeroOptimization.ReduceBucketSize);
        Assert.True(c.Engine.Bf16.Enabled);
        Assert.Equal(1.0, c.Engine.GradientClipping);
        Assert.Equal(1.0, c.Training.MaxGradNorm);
        Assert.Equal(16L, c.Engine.TrainBatchSize);            // 4 × 2 × 2 derived
        Assert.Equal(4L, c.Training.PerDeviceTrainBatchSize);  // copied back to the training section
        Assert.Null(c.DeepspeedConfig);
    }

    public static TheoryData<long?, long?, long?, int, long, long, long> BatchCases => new()
    {
        // tbs, micro, gas, world → tbs, micro, gas
        { null, null, null, 1, 1, 1, 1 },
        { null, null, null, 4, 4, 1, 1 },
        { 32, null, null, 4, 32, 8, 1 },
        { 32, 2, null, 4, 32, 2, 4 },
        { 32, null, 2, 4, 32, 4, 2 },
        { null, 2, 3, 4, 24, 2, 3 },
        { null, 2, null, 4, 8, 2, 1 },
        { null, null, 3, 2, 6, 1, 3 },
        { 24, 2, 3, 4, 24, 2, 3 },
    };

    [Theory]
    [MemberData(nameof(BatchCases))]
    public void Batch_rule_derives_the_missing_value(long? tbs, long? micro, long? gas, int world, long eTbs, long eMicro, long eGas)
    {
        static string Key(string k, long? v) => v is null ? "" : $"  {k}: {v}\n";
        var yaml = Minimal + "engine:\n" + Key("train_batch_size", tbs) + Key("train_micro_batch_size_per_gpu", micro) + Key("gradient_accumulation_steps", gas) + "  steps_per_print: 10\n";
        var c = Ok(ConfigLoader.LoadText(yaml, worldSize: world));
        Assert.Equal((eTbs, eMicro, eGas), (c.Engine.TrainBatchSize!.Value, c.Engine.TrainMicroBatchSizePerGpu!.Value, c.Engine.GradientAccumulationSteps!.Value));
        Assert.Equal(eTbs, eMicro * eGas * world);
    }

    [Fact]
    public void Batch_rule_error_names_all_four_numbers()
    {
        var errors = Errors(ConfigLoader.LoadText(Minimal + "engine:\n  train_batch_size: 10\n  train_micro_batch_size_per_gpu: 2\n  gradient_accumulation_steps: 3\n", worldSize: 2));
        var e = Assert.Single(errors);
        Assert.Equal("<text>:7:21: engine.train_batch_size: inconsistent batch sizes: train_batch_size 10 ≠ train_micro_batch_size_per_gpu 2 × gradient_accumulation_steps 3 × world_size 2 (= 12)", e);
    }

    [Fact]
    public void Launcher_world_size_must_agree_with_the_config()
    {
        var errors = Errors(ConfigLoader.LoadText(Minimal + "distributed:\n  world_size: 2\n", worldSize: 4));
        Assert.Equal(["<text>:7:15: distributed.world_size: distributed.world_size is 2 but the launcher runs 4 ranks"], errors);
    }

    [Fact]
    public void Auto_means_the_default_or_derived_value()
    {
        var c = Ok(ConfigLoader.LoadText(Minimal + "engine:\n  gradient_clipping: auto\n  train_batch_size: auto\n  zero_optimization:\n    reduce_bucket_size: auto\n"));
        Assert.Equal(0.0, c.Engine.GradientClipping);
        Assert.Equal(500_000_000L, c.Engine.ZeroOptimization.ReduceBucketSize);
        Assert.Equal(1L, c.Engine.TrainBatchSize);
    }

    [Fact]
    public void Loading_never_throws_on_a_missing_file()
    {
        var errors = Errors(ConfigLoader.Load(Path.Combine(TestPaths.TempDir(), "nope.yaml")));
        Assert.EndsWith("nope.yaml:1:1: config file not found", Assert.Single(errors));
    }
}
