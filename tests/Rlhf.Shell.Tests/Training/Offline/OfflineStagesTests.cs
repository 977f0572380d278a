using Rlhf.Core.Models;
using Rlhf.Settings;
using Rlhf.Shell.Config;
using Rlhf.Shell.Io;
using Rlhf.Shell.Io.Tokenizers;
using Rlhf.Shell.Tests.Config;
using Rlhf.Shell.Training;
using Rlhf.Shell.Training.Data;
using Rlhf.Shell.Training.Offline;
using Rlhf.Shell.Training.Rewards;
using Rlhf.Torch;
using Xunit;

namespace Rlhf.Shell.Tests.Training.Offline;

using Torch = Rlhf.Torch.Torch;

/// <summary>The offline stages run from the shipped configs (tiny random-init llama, synthetic tasks), seeded, on the CPU.</summary>
public class OfflineStagesTests
{
    private static RlhfConfig Config(string file, params string[] overrides) =>
        ConfigLoader.Load(Path.Combine(TestPaths.Configs, file), overrides)
            .Match(c => c, errors => throw new Xunit.Sdk.XunitException(ConfigLoader.Format(errors)));

    private static OfflineResult Run(string file, string dir, params string[] overrides)
    {
        var config = Config(file, [$"training.output_dir={dir}", .. overrides]);
        using var run = TrainingRun.Open(config);
        return OfflineStages.Run(config, run);
    }

    private static double At(OfflineResult r, long step, string key) =>
        r.History.Where(h => h.Step == step && h.Values.ContainsKey(key)).Select(h => h.Values[key]).First();

    [Fact]
    public void Sft_lowers_the_completion_loss_and_raises_the_gold_reward_of_greedy_samples()
    {
        var dir = TestPaths.TempDir();
        var r = Run("sft.yaml", dir, "training.max_steps=80", "data.task=copy", "data.num_examples=600", "data.eval_fraction=0.1", "training.logging_steps=20");
        Assert.Equal(80, r.Steps);
        // Step 0 is the evaluation of the random init; the last records hold the evaluation after training.
        var lossBefore = At(r, 0, "eval/loss");
        var goldBefore = At(r, 0, "eval/gold_reward");
        Assert.True(r.Final["eval/loss"] < lossBefore - 1.0, $"held-out completion loss {lossBefore} → {r.Final["eval/loss"]}");
        Assert.True(r.Final["eval/gold_reward"] > goldBefore + 0.15, $"greedy gold reward {goldBefore} → {r.Final["eval/gold_reward"]}");
        foreach (var key in new[] { "loss", "lr", "logps/mean", "tokens_per_s", "grad_norm" }) Assert.True(r.Final.ContainsKey(key), key);
        // HF's default schedule, linear decay to 0 over the 80 steps: step 80 (k = 79) ran at 1e-3 · 1/80.
        Assert.Equal(1e-3 / 80, r.Final["lr"], 12);
        // final/ is a language model that loads back; the engine checkpoint is there with its `latest`.
        using var w = HfModelDirectory.Load(r.FinalDirectory);
        Assert.Equal(ModelHead.LanguageModel, w.Config.Head);
        Assert.True(File.Exists(Path.Combine(dir, "checkpoints", "latest")));
        Directory.Delete(dir, true);
    }

    [Fact]
    public void Sft_follows_training_lr_scheduler_type_with_warmup_step_by_step()
    {
        var dir = TestPaths.TempDir();
        var r = Run("sft.yaml", dir, "training.max_steps=6", "training.logging_steps=1", "training.lr_scheduler_type=cosine", "training.warmup_steps=2",
            "data.task=copy", "data.num_examples=200");
        // transformers get_cosine_schedule_with_warmup (num_cycles 0.5), optimizer step k from 0 = logged step k + 1.
        for (long step = 1; step <= 6; step++)
        {
            var k = step - 1;
            var f = k < 2 ? k / 2.0 : 0.5 * (1 + Math.Cos(Math.PI * (k - 2) / 4.0));
            Assert.Equal(1e-3 * f, At(r, step, "lr"), 12);
        }
        Directory.Delete(dir, true);
    }

    [Fact]
    public void The_reward_model_beats_chance_on_held_out_pairs_and_final_scores_as_a_reward_source()
    {
        var dir = TestPaths.TempDir();
        string[] data = ["data.task=copy", "data.task_min_digits=2", "data.task_max_digits=3", "data.num_examples=1000", "data.eval_fraction=0.2"];
        var r = Run("reward_model.yaml", dir, ["training.max_steps=300", "training.logging_steps=100", .. data]);
        var before = At(r, 0, "eval/accuracy");
        var after = r.Final["eval/accuracy"];
        // 200 held-out pairs: chance is 0.5 with a standard error of 0.035; 0.6 is almost three standard errors above it.
        Assert.True(after >= 0.6, $"held-out pair accuracy {before} → {after}");
        foreach (var key in new[] { "loss", "accuracy", "margin", "lr" }) Assert.True(r.Final.ContainsKey(key), key);

        // final/ has a score head and ranks the held-out pairs as the stage measured, through the reward source.
        var config = Config("reward_model.yaml", [.. data, $"reward.model_args.model_name_or_path={r.FinalDirectory}"]);
        var tokenizer = new ByteTokenizer(260);
        var encoder = PromptEncoder.From(tokenizer, config.Data, config.Tokenizer);
        var pairs = TrainingData.Preferences(config.Data, config.Training.Seed).Eval.Select(encoder.Encode).ToArray();
        using var source = LearnedRewardSource.Load(config.Reward!, config, ByteTokenizer.Pad, Device.Cpu);
        using var scope = Torch.NewScope();
        var chosen = source.Score(pairs.Select(p => new RewardSample(p.PromptText, p.PromptIds, p.ChosenText, p.ChosenIds, true)).ToArray()).ToArray<float>();
        var rejected = source.Score(pairs.Select(p => new RewardSample(p.PromptText, p.PromptIds, p.RejectedText, p.RejectedIds, true)).ToArray()).ToArray<float>();
        var accuracy = chosen.Zip(rejected, (c, r) => c > r ? 1.0 : 0.0).Average();
        Assert.True(Math.Abs(after - accuracy) <= 1.0 / pairs.Length + 1e-9, $"stage {after} vs source {accuracy}");   // batches pad differently: a near-tie may flip
        Directory.Delete(dir, true);
    }

    [Fact]
    public void Offline_dpo_raises_the_chosen_over_rejected_margin_from_zero()
    {
        var dir = TestPaths.TempDir();
        var r = Run("dpo.yaml", dir, "training.max_steps=30", "data.num_examples=400", "data.eval_fraction=0.1", "training.logging_steps=10",
            "dpo.learning_rate=1e-3");
        // Before training the policy is the reference: every implicit reward is exactly 0.
        Assert.Equal(0.0, At(r, 0, "eval/rewards/margins"), 6);
        Assert.True(r.Final["eval/rewards/margins"] > 0, $"held-out margin {r.Final["eval/rewards/margins"]}");
        Assert.True(r.Final["rewards/margins"] > 0.05, $"training margin {r.Final["rewards/margins"]}");
        foreach (var key in new[] { "rewards/chosen", "rewards/rejected", "rewards/accuracies", "logps/chosen", "logps/rejected", "loss" })
            Assert.True(r.Final.ContainsKey(key), key);
        Directory.Delete(dir, true);
    }

    [Theory]
    [InlineData("dpo.yaml", "hinge", 0.0)]
    [InlineData("dpo.yaml", "ipo", 0.0)]
    [InlineData("dpo.yaml", "sigmoid", 0.1)]
    public void Dpo_loss_variants_run_and_start_at_their_zero_margin_value(string file, string lossType, double smoothing)
    {
        var dir = TestPaths.TempDir();
        var r = Run(file, dir, "training.max_steps=1", "data.num_examples=64", "data.eval_fraction=0.25", $"dpo.loss_type={lossType}", $"dpo.label_smoothing={smoothing}");
        // At Δ = 0: sigmoid (any smoothing) log 2, hinge 1, ipo (1/(2β))² = 25 for β = 0.1.
        var expected = lossType switch { "hinge" => 1.0, "ipo" => 25.0, _ => Math.Log(2) };
        Assert.Equal(expected, At(r, 0, "eval/loss"), 5);
        Directory.Delete(dir, true);
    }

    [Fact]
    public void The_learned_reward_source_equals_a_hand_run_forward_of_the_same_weights()
    {
        var dir = TestPaths.TempDir();
        var config = Config("reward_model.yaml", $"reward.model_args.model_name_or_path={dir}", "reward.infer_batch_size=2");
        var arch = RoleModels.Architecture(config.Model, ModelHead.Score);
        using (var w = ModelInit.Random(arch, 7)) HfModelDirectory.Save(dir, w);
        using var source = LearnedRewardSource.Load(config.Reward!, config, ByteTokenizer.Pad, Device.Cpu);
        var samples = new[]
        {
            new RewardSample("12=", [258, 49, 50, 61], "21", [50, 49, 257], true),
            new RewardSample("3141=", [258, 51, 49, 52, 49, 61], "1413141", [49, 52, 49, 51, 49, 52, 49], false),
            new RewardSample("9=", [258, 57, 61], "", [257], true),
        };
        using var scope = Torch.NewScope();
        var scores = source.Score(samples).ToArray<float>();
        using var weights = HfModelDirectory.Load(dir);
        for (var i = 0; i < samples.Length; i++)
        {
            // Each row alone, unpadded: the score head at its last token.
            var ids = samples[i].PromptIds.Concat(samples[i].CompletionIds).Select(x => (long)x).ToArray();
            var hidden = Transformer.ForwardHidden(weights, Torch.From(ids, 1, ids.Length));
            var expected = ScoreHead.PerToken(weights, hidden).Select(1, ids.Length - 1).Item();
            Assert.Equal(expected, scores[i], 4);
        }
        Directory.Delete(dir, true);
    }

    [Fact]
    public void A_bad_data_line_fails_with_file_and_line_before_any_model_loads()
    {
        var dir = TestPaths.TempDir();
        var data = Path.Combine(dir, "pairs.jsonl");
        File.WriteAllLines(data, ["{\"prompt\": \"a\", \"chosen\": \"b\", \"rejected\": \"c\"}", "{\"prompt\": \"a\", \"chosen\": 3, \"rejected\": \"c\"}"]);
        // The model directory does not exist: reaching the model would fail with a different error.
        var config = Config("dpo.yaml", "data.task=null", $"data.path={data}", $"model.path={Path.Combine(dir, "no-model")}", $"training.output_dir={Path.Combine(dir, "out")}");
        using var run = TrainingRun.Open(config);
        var e = Assert.Throws<DataFormatException>(() => OfflineStages.Run(config, run));
        Assert.StartsWith($"{data}:2:", e.Message);
        Assert.Contains("chosen", e.Message);
        Directory.Delete(dir, true);
    }

    [Fact]
    public void Steps_follow_the_batch_rule_and_name_every_number_when_an_epoch_is_empty()
    {
        Assert.Equal(12, OfflineStages.Steps(100, 4, 2, 1.0, null));        // ⌊⌊100/4⌋/2⌋ = 12
        Assert.Equal(30, OfflineStages.Steps(100, 4, 2, 2.5, null));
        Assert.Equal(7, OfflineStages.Steps(100, 4, 2, 1.0, 7));
        var e = Assert.Throws<ArgumentException>(() => OfflineStages.Steps(10, 4, 3, 1.0, null));
        Assert.Contains("10", e.Message);
        Assert.Contains("4", e.Message);
        Assert.Contains("3", e.Message);
        Assert.Contains("12", e.Message);
    }

    [Fact]
    public void Packing_masks_exactly_the_positions_that_predict_response_tokens()
    {
        using var scope = Torch.NewScope();
        var b = SequenceBatch.Pack([([1, 2], [3, 4, 5]), ([1], [6])], padId: 0, maxLength: 4, Device.Cpu);
        Assert.Equal(new long[] { 1, 2, 3, 4, 1, 6, 0, 0 }, b.Ids.ToArray<long>());
        Assert.Equal(new long[] { 1, 1, 1, 1, 1, 1, 0, 0 }, b.AttentionMask.ToArray<long>());
        // Row 0 (cut to 4 tokens): positions 1, 2 predict 3, 4. Row 1: position 0 predicts 6.
        Assert.Equal(new[] { false, true, true, true, false, false }, b.ResponseMask.ToArray<bool>());
        Assert.Equal(6, b.Tokens);
    }
}
