using Rlhf.Settings;
using Rlhf.Shell.Config;
using Rlhf.Shell.Io;
using Rlhf.Shell.Tests.Config;
using Rlhf.Shell.Training;
using Rlhf.Shell.Training.Online;
using Rlhf.Shell.Training.Rewards;
using Xunit;

namespace Rlhf.Shell.Tests.Training.Online;

/// <summary>
/// The online loop end to end on the shipped configs (tiny random-init llama, byte tokenizer, CPU): each algorithm raises a
/// rule reward that a random policy already earns half of (the fraction of generated ids below 128, which it can raise by
/// shifting probability mass), logs Core's TRL names, and leaves the documented run directory.
/// </summary>
[Collection(MemoryCollection.Name)]
public class OnlineTrainerTests
{
    internal const int MaxNewTokens = 4;

    /// <summary>Fraction of the completion's <see cref="MaxNewTokens"/> positions holding an id below 128 (an ASCII byte).</summary>
    internal static double LowIds(RewardSample s) => s.CompletionIds.Count(id => id < 128) / (double)MaxNewTokens;

    /// <summary>An online config on the copy task with the <c>low_ids</c> rule reward; later overrides win.</summary>
    internal static RlhfConfig Load(string file, string dir, params string[] extra)
    {
        string[] overrides =
        [
            $"training.output_dir={dir}", "training.logging_steps=1", "training.learning_rate=0.01",
            "data.task=copy", "data.task_min_digits=1", "data.task_max_digits=2", "data.num_examples=100",
            $"generation.max_new_tokens={MaxNewTokens}", "generation.temperature=1.0", "reward.function=low_ids", .. extra,
        ];
        return ConfigLoader.Load(Path.Combine(TestPaths.Configs, file), overrides)
            .Match(c => c, e => throw new Xunit.Sdk.XunitException(ConfigLoader.Format(e)));
    }

    private static string TempDir() => Path.Combine(Path.GetTempPath(), "rlhf-online-" + Guid.NewGuid().ToString("N"));

    private static TrainingRun Train(RlhfConfig config, string dir)
    {
        var registry = RewardRegistry.WithBuiltIns().Register("low_ids", LowIds);
        var run = TrainingRun.Open(config, dir);
        OnlineTrainer.Run(config, run, registry);
        run.Dispose();
        return run;
    }

    // Margin: a random policy scores ≈ 0.5 (128 of 260 ids are low); the mean score of the last 5 steps must beat the first
    // 3 steps' by 0.15 — seen runs end near 0.9–1.0 within 25 steps at lr 1e-2.
    [Theory]
    [InlineData("online_dpo.yaml", "training.per_device_train_batch_size=16", "training.gradient_accumulation_steps=1")]
    [InlineData("rloo.yaml", "training.per_device_train_batch_size=16", "training.num_mini_batches=1")]
    [InlineData("bok.yaml", "training.per_device_train_batch_size=16", "training.gradient_accumulation_steps=1")]
    [InlineData("grpo.yaml", "training.per_device_train_batch_size=16", "training.gradient_accumulation_steps=1")]
    [InlineData("reinforce_pp.yaml", "training.per_device_train_batch_size=16", "training.gradient_accumulation_steps=1")]
    [InlineData("ppo.yaml", "training.per_device_train_batch_size=16", "training.gradient_accumulation_steps=1")]
    public void Each_online_algorithm_raises_the_rule_reward_over_its_start(string file, string batch, string gas)
    {
        var dir = TempDir();
        try
        {
            var config = Load(file, dir, "training.max_steps=25", batch, gas);
            var run = Train(config, dir);
            var scores = run.History.Select(r => r.Values["objective/scores"]).ToArray();
            Assert.Equal(25, scores.Length);
            var start = scores.Take(3).Average();
            var end = scores.TakeLast(5).Average();
            Assert.True(end > start + 0.15, $"{file}: objective/scores went from {start:F3} to {end:F3} (need +0.15): {string.Join(", ", scores.Select(s => s.ToString("F2")))}");
        }
        finally { if (Directory.Exists(dir)) Directory.Delete(dir, true); }
    }

    [Fact]
    public void Online_dpo_logs_the_trl_names_and_writes_the_run_directory()
    {
        var dir = TempDir();
        try
        {
            var config = Load("online_dpo.yaml", dir, "training.max_steps=3", "training.save_steps=2");
            var run = Train(config, dir);
            Assert.Equal([1L, 2L, 3L], run.History.Select(r => r.Step));
            Assert.Equal([16L, 32L, 48L], run.History.Select(r => r.Episode));  // 8 × 2 × 1 rollouts per step
            string[] expected =
            [
                "rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins", "logps/chosen", "logps/rejected",
                "loss/policy_avg", "objective/kl", "objective/entropy", "objective/non_score_reward", "objective/scores",
                "objective/rlhf_reward", "val/num_eos_tokens", "timing/generate_s", "timing/score_s", "timing/train_s", "tokens_per_s", "lr",
            ];
            foreach (var key in expected) Assert.True(run.History[^1].Values.ContainsKey(key), $"missing {key}; logged: {string.Join(", ", run.History[^1].Values.Keys)}");
            // training.lr_scheduler_type's default (HF, TRL): linear decay to 0 over the 3 optimizer steps, step k at 0.01 · (3 − k)/3.
            Assert.Equal([0.01, 0.01 * 2 / 3, 0.01 / 3], run.History.Select(r => Math.Round(r.Values["lr"], 12)).Select(x => x).ToArray(), (a, b) => Math.Abs(a - b) < 1e-12);
            Assert.Equal(0.0, run.History[0].Values["objective/kl"], 6);    // the first rollouts come from the reference's own weights

            Assert.True(File.Exists(Path.Combine(dir, TrainingRun.ResolvedConfigFile)));
            Assert.Equal(3, File.ReadAllLines(Path.Combine(dir, "metrics.jsonl")).Length);
            Assert.True(File.Exists(Path.Combine(dir, "checkpoints", "latest")));
            Assert.True(Directory.Exists(Path.Combine(dir, "checkpoints", "global_step2")));   // save_steps = 2 (one optimizer step per step)
            Assert.True(Directory.Exists(Path.Combine(dir, "checkpoints", "global_step3")));   // and the end
            using var final = HfModelDirectory.Load(Path.Combine(dir, "final"));
            Assert.Equal(RoleModels.Config(config.Model).HiddenSize, final.Config.HiddenSize);
        }
        finally { if (Directory.Exists(dir)) Directory.Delete(dir, true); }
    }

    [Fact]
    public void Ppo_trains_its_critic_logs_trl_value_keys_and_saves_it_beside_the_policy()
    {
        var dir = TempDir();
        try
        {
            var config = Load("ppo.yaml", dir, "training.max_steps=2");
            var run = Train(config, dir);
            foreach (var key in new[] { "loss/value_avg", "val/clipfrac_avg", "loss/policy_avg", "policy/approxkl_avg", "policy/clipfrac_avg", "val/ratio", "val/ratio_var" })
                Assert.True(run.History[^1].Values.ContainsKey(key), $"missing {key}; logged: {string.Join(", ", run.History[^1].Values.Keys)}");
            Assert.True(run.History.All(r => r.Values["loss/value_avg"] > 0), "the value loss is 0: the critic's values were not used");

            using var critic = HfModelDirectory.Load(OnlineTrainer.CriticDirectory(Path.Combine(dir, "final")));
            Assert.Equal(Rlhf.Core.Models.ModelHead.Score, critic.Config.Head);
            // The critic started from the policy's init with a fresh score head drawn from the engine seed; training moved it.
            using var gen = new Rlhf.Torch.Generator(RoleModels.InitSeed(config.Model, (ulong)config.Training.Seed));
            using var fresh = Rlhf.Torch.Torch.Randn([1, critic.Config.HiddenSize], gen, Rlhf.Torch.ScalarType.Float32) * RoleModels.InitializerRange;
            Assert.False(critic[Rlhf.Core.Models.WeightNames.Score].AllClose(fresh, 0, 1e-7), "the score head never moved: the critic was not trained");
            // 2 steps × 4 epochs × 1 mini-batch: both engines took 8 optimizer steps and checkpointed them.
            Assert.Equal("global_step8", File.ReadAllText(Path.Combine(dir, "checkpoints", "latest")).Trim());
            Assert.Equal("global_step8", File.ReadAllText(Path.Combine(OnlineTrainer.CriticDirectory(Path.Combine(dir, "checkpoints")), "latest")).Trim());
        }
        finally { if (Directory.Exists(dir)) Directory.Delete(dir, true); }
    }
}
