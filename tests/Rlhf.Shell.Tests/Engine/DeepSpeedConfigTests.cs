using FsCheck;
using FsCheck.Fluent;
using Rlhf.Core.Schedules;
using Rlhf.Settings;
using Rlhf.Shell.Config;
using Rlhf.Shell.Engine;

namespace Rlhf.Shell.Tests.Engine;

/// <summary>DeepSpeed files through the generated binder and the resolver's batch rule, and the one mapping from the generated sections onto the engine (pure, one process).</summary>
public class DeepSpeedConfigTests
{
    [Fact]
    public void A_deepspeed_config_parses_with_auto_and_defaults()
    {
        var s = Load("""
        {
          "train_batch_size": "auto", "train_micro_batch_size_per_gpu": 2, "gradient_accumulation_steps": 4,
          "gradient_clipping": 1.0, "bf16": {"enabled": true},
          "optimizer": {"type": "AdamW", "params": {"lr": 3e-6, "betas": [0.9, 0.95], "eps": 1e-8, "weight_decay": 0.0}},
          "scheduler": {"type": "WarmupCosineLR", "params": {"total_num_steps": 100, "warmup_num_steps": 10, "warmup_type": "linear"}},
          "zero_optimization": {"stage": 3, "offload_optimizer": {"device": "cpu", "pin_memory": true},
                                "reduce_bucket_size": 5e7, "stage3_param_persistence_threshold": "auto"}
        }
        """, worldSize: 2);
        Assert.Equal((16, 2, 4), DeepSpeedConfig.Batch(s, 2));   // train_batch_size derived once, by the resolver
        Assert.Equal(16, s.TrainBatchSize);
        Assert.True(s.Bf16.Enabled);
        Assert.Equal(1.0, s.GradientClipping);
        Assert.Equal(new AdamW(3e-6, 0.9, 0.95, 1e-8, 0.0), DeepSpeedConfig.AdamW(s));
        Assert.Equal(ZeroStage.Parameters, DeepSpeedConfig.Stage(s));
        Assert.Equal(OffloadDevice.Cpu, s.ZeroOptimization.OffloadOptimizer.Device);
        Assert.Equal(50_000_000, s.ZeroOptimization.ReduceBucketSize);
        Assert.Equal(100_000, s.ZeroOptimization.Stage3ParamPersistenceThreshold);
        Assert.Equal(new WarmupCosineLR(3e-6, 10, 100, 0.0, 0.0001, LinearWarmup: true), DeepSpeedConfig.Schedule(s.Scheduler, 3e-6));
    }

    [Fact]
    public void Inconsistent_batch_sizes_name_all_four_numbers_with_the_file_position()
    {
        var e = Assert.Throws<ArgumentException>(() => Load("""{"train_batch_size": 30, "train_micro_batch_size_per_gpu": 4, "gradient_accumulation_steps": 2}""", worldSize: 4));
        foreach (var part in new[] { "ds.json:1:", "train_batch_size 30", "train_micro_batch_size_per_gpu 4", "gradient_accumulation_steps 2", "world_size 4" })
            Assert.Contains(part, e.Message);
    }

    [Fact]
    public void The_engine_refuses_settings_the_resolver_has_not_seen()
    {
        var unresolved = new DeepSpeedSettings { TrainMicroBatchSizePerGpu = 2 };
        var e = Assert.Throws<ArgumentException>(() => DeepSpeedConfig.Batch(unresolved, 1));
        Assert.Contains("not resolved", e.Message);
        var wrongWorld = TestEngines.Settings(0, mb: 2, gas: 1);          // resolved for one rank
        Assert.Contains("world_size 2", Assert.Throws<ArgumentException>(() => DeepSpeedConfig.Batch(wrongWorld, 2)).Message);
        var noOptimizer = Assert.Throws<ArgumentException>(() => DeepSpeedConfig.AdamW(Parse("{}")));
        Assert.Contains("engine.optimizer is unset", noOptimizer.Message);
        var autoLr = Assert.Throws<ArgumentException>(() => DeepSpeedConfig.AdamW(Parse("""{"optimizer": {"type": "AdamW", "params": {"lr": "auto", "betas": [0.9, 0.99], "eps": 1e-8, "weight_decay": 0}}}""")));
        Assert.Contains("optimizer.params.lr is unset", autoLr.Message);
    }

    [Fact]
    public void Bad_engine_files_fail_with_file_line_and_key_or_a_clear_refusal()
    {
        var stage = Assert.Throws<ArgumentException>(() => Load("""{"zero_optimization": {"stage": 4}}"""));
        Assert.Contains("ds.json:1:", stage.Message);
        Assert.Contains("zero_optimization.stage", stage.Message);
        var typo = Assert.Throws<ArgumentException>(() => Load("""{"gradient_cliping": 1.0}"""));
        Assert.Contains("gradient_clipping", typo.Message); // the did-you-mean suggestion
        var offload = Assert.Throws<ArgumentException>(() => Load("""{"zero_optimization": {"offload_optimizer": {"device": "cpu"}}}"""));
        Assert.Contains("ds.json:1:", offload.Message);
        Assert.Contains("offload_optimizer needs ZeRO stage 1, 2 or 3", offload.Message);
        var noRates = Assert.Throws<ArgumentException>(() => DeepSpeedConfig.Schedule(Load("""{"scheduler": {"type": "OneCycle", "params": {}}}""").Scheduler, 1.0));
        Assert.Contains("OneCycle needs scheduler.params.cycle_min_lr", noRates.Message); // DeepSpeed requires both rates
        var zeroSize = Assert.Throws<ArgumentException>(() => Load("""{"scheduler": {"type": "LRRangeTest", "params": {"lr_range_test_step_size": 0}}}"""));
        Assert.Contains("ds.json:1:", zeroSize.Message);
        Assert.Contains("lr_range_test_step_size", zeroSize.Message);

        // OneCycle and LRRangeTest load, with their keys (and the schema's defaults for the rest) reaching the schedule.
        var oneCycle = Load("""
        {"optimizer": {"type": "AdamW", "params": {"lr": 5.0, "betas": [0.9, 0.95]}},
         "scheduler": {"type": "OneCycle", "params": {"cycle_min_lr": 1e-4, "cycle_max_lr": 1e-3, "cycle_first_step_size": 10,
                                                      "cycle_second_step_size": 5, "decay_step_size": 5, "decay_lr_rate": 1.0, "cycle_min_mom": 0.85}}}
        """);
        var cycle = DeepSpeedConfig.Schedule(oneCycle.Scheduler, 5.0);
        Assert.IsType<OneCycle>(cycle);
        Assert.Equal(1e-4, cycle.LearningRate(0));                 // cycle_min_lr, not the optimizer's lr
        Assert.Equal(1e-3, cycle.LearningRate(10), 15);            // the peak at batch 10
        Assert.Equal(1e-4 / (1 + 1.0 * 1 / 5), cycle.LearningRate(16), 15); // one step after the 15-step cycle
        Assert.Equal((0.85, 0.99), cycle.Betas(0));                // cycle_momentum defaults to true, as in DeepSpeed
        Assert.Equal(0.85, cycle.Betas(10)!.Value.Beta1, 15);
        Assert.Equal(0.9, cycle.Betas(15)!.Value.Beta1, 15);       // cycle_max_mom's default
        var noMomentum = Load("""{"scheduler": {"type": "OneCycle", "params": {"cycle_min_lr": 0.1, "cycle_max_lr": 0.2, "cycle_momentum": false}}}""");
        Assert.Null(DeepSpeedConfig.Schedule(noMomentum.Scheduler, 1.0).Betas(3));
        var range = Load("""{"scheduler": {"type": "LRRangeTest", "params": {"lr_range_test_min_lr": 0.01, "lr_range_test_step_size": 2, "lr_range_test_staircase": true}}}""");
        var rangeSchedule = DeepSpeedConfig.Schedule(range.Scheduler, 1.0);
        Assert.IsType<LRRangeTest>(rangeSchedule);
        Assert.Equal(0.01, rangeSchedule.LearningRate(1), 15);     // floor(1/2) = 0
        Assert.Equal(0.02, rangeSchedule.LearningRate(2), 15);     // floor(2/2) = 1, step rate 1
    }

    [Fact]
    public void The_yaml_engine_section_and_the_json_file_give_the_same_settings()
    {
        var fromJson = Load("""{"train_micro_batch_size_per_gpu": 2, "gradient_clipping": 0.5, "zero_optimization": {"stage": 2, "reduce_bucket_size": 1000}}""");
        var dir = Directory.CreateTempSubdirectory("rlhf-engine-");
        try
        {
            var yaml = Path.Combine(dir.FullName, "engine.yaml");
            File.WriteAllText(yaml, "train_micro_batch_size_per_gpu: 2\ngradient_clipping: 0.5\nzero_optimization:\n  stage: 2\n  reduce_bucket_size: 1000\n");
            Assert.Equal(fromJson, DeepSpeedConfig.Load(yaml, 1));
        }
        finally { dir.Delete(recursive: true); }
        Assert.Equal(ZeroStage.Gradients, DeepSpeedConfig.Stage(fromJson));
        Assert.Equal(1000, fromJson.ZeroOptimization.ReduceBucketSize);
    }

    [Fact]
    public void A_full_configs_engine_section_is_resolved_into_what_the_engine_reads()
    {
        RlhfConfig Load(params string[] overrides) => ConfigLoader.Load(Path.Combine(Rlhf.Shell.Tests.Config.TestPaths.Configs, "quickstart.yaml"), overrides)
            .Match(x => x, e => throw new Xunit.Sdk.XunitException(ConfigLoader.Format(e)));
        // quickstart.yaml's engine (configs/zero/zero0.yaml) has no optimizer: the trainer's AdamW settings fill it.
        var c = Load("training.weight_decay=0.125", "training.adam_beta2=0.95");
        Assert.Equal(new AdamW(c.Training.LearningRate!.Value, 0.9, 0.95, c.Training.AdamEpsilon, 0.125), DeepSpeedConfig.AdamW(c.Engine));
        Assert.Equal(c.OnlineDpo.LearningRate, c.Training.LearningRate);               // the algorithm's default rate
        var ws = (int)ConfigResolver.WorldSize(c, null);
        Assert.Equal((8 * ws, 8, 1), DeepSpeedConfig.Batch(c.Engine, ws));             // per_device_train_batch_size 8
        // Values written in the engine's own optimizer section win over training.*.
        var own = Load("deepspeed_zero0.optimizer={type: AdamW, params: {lr: 0.5, eps: 0.001}}", "training.weight_decay=0.125");
        Assert.Equal(new AdamW(0.5, 0.9, 0.999, 0.001, 0.125), DeepSpeedConfig.AdamW(own.Engine));
    }

    private static DeepSpeedSettings Parse(string text) => DeepSpeedConfig.Parse(text, worldSize: 1);

    private static DeepSpeedSettings Load(string json, long worldSize = 1)
    {
        var dir = Directory.CreateTempSubdirectory("rlhf-engine-");
        var path = Path.Combine(dir.FullName, "ds.json");
        File.WriteAllText(path, json);
        try { return DeepSpeedConfig.Load(path, worldSize); }
        finally { dir.Delete(recursive: true); }
    }

    [Fact]
    public void The_batch_rule_derives_what_is_missing_and_always_multiplies_out() =>
        Prop.ForAll(Arb.From(Gen.Choose(1, 8)), Arb.From(Gen.Choose(1, 8)), Arb.From(Gen.Choose(1, 8)), (mb, gas, ws) =>
        {
            var tb = mb * gas * ws;
            foreach (var text in new[]
            {
                $"{{train_batch_size: {tb}, train_micro_batch_size_per_gpu: {mb}, gradient_accumulation_steps: {gas}}}",
                $"{{train_batch_size: {tb}, train_micro_batch_size_per_gpu: {mb}}}",
                $"{{train_batch_size: {tb}, gradient_accumulation_steps: {gas}}}",
                $"{{train_micro_batch_size_per_gpu: {mb}, gradient_accumulation_steps: {gas}}}",
            })
                Assert.Equal((tb, mb, gas), DeepSpeedConfig.Batch(DeepSpeedConfig.Parse(text, ws), ws));
        }).QuickCheckThrowOnFailure();

    [Fact]
    public void WarmupLR_follows_deepspeed_first_step_at_min_then_log_warmup_then_max()
    {
        var s = LrScheduleTests.From("WarmupLR", "log", [("warmup_min_lr", 0.0), ("warmup_max_lr", 0.01), ("warmup_num_steps", 10)], 1.0);
        Assert.Equal(0.0, s.LearningRate(0));                          // set at construction
        Assert.Equal(0.0, s.LearningRate(1));                          // iteration 0: log(1) = 0
        Assert.Equal(0.01 * Math.Log(2) / Math.Log(10), s.LearningRate(2), 12);
        Assert.Equal(0.01, s.LearningRate(11), 12);                    // iteration 10: warmed up
        Assert.Equal(0.01, s.LearningRate(500), 12);
    }

    [Fact]
    public void WarmupDecayLR_decays_linearly_to_zero_at_total_steps()
    {
        var s = LrScheduleTests.From("WarmupDecayLR", "linear", [("warmup_max_lr", 0.1), ("warmup_num_steps", 4), ("total_num_steps", 12)], 1.0);
        Assert.Equal(0.1 * 2 / 4, s.LearningRate(3), 12);              // iteration 2 of a linear warmup
        Assert.Equal(0.1, s.LearningRate(5), 12);                      // iteration 4: (12-4)/(12-4)
        Assert.Equal(0.1 * 4 / 8, s.LearningRate(9), 12);              // iteration 8
        Assert.Equal(0.0, s.LearningRate(13), 12);                     // iteration 12
        Assert.Equal(0.0, s.LearningRate(40), 12);
        Assert.Contains("total_num_steps", Assert.Throws<ArgumentException>(() => LrScheduleTests.From("WarmupDecayLR", "linear", [("warmup_num_steps", 4)], 1.0)).Message);
    }

    [Fact]
    public void WarmupCosineLR_scales_the_optimizer_lr_and_ends_at_cos_min_ratio()
    {
        var s = LrScheduleTests.From("WarmupCosineLR", "linear", [("total_num_steps", 20), ("warmup_num_steps", 5), ("cos_min_ratio", 0.1)], 2.0);
        Assert.Equal(2.0, s.LearningRate(0));                          // DeepSpeed leaves the optimizer's lr for step 1
        Assert.Equal(0.0, s.LearningRate(1), 12);                      // iteration 0, warmup_min_ratio 0
        Assert.Equal(2.0 * (0.1 + 0.9 * (1 + Math.Cos(Math.PI * 1 / 15)) / 2), s.LearningRate(6), 12); // iteration 5
        Assert.Equal(2.0 * 0.1, s.LearningRate(20), 12);               // iteration 19: (19 - 5 + 1) / 15 = 1, the floor
        Assert.Throws<ArgumentException>(() => LrScheduleTests.From("OneCycleX", "log", [], 1.0)); // not a schema enum value
    }
}
