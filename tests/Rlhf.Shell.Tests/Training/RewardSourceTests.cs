using Rlhf.Core.Rollouts;
using Rlhf.Settings;
using Rlhf.Shell.Config;
using Rlhf.Shell.Training.Rewards;
using Rlhf.Shell.Training.Tasks;

namespace Rlhf.Shell.Tests.Training;

/// <summary>Reward sources: the registry, the tasks' gold rewards under their names, weighted sums, both missing-stop penalties, and the reward config keys.</summary>
public class RewardSourceTests
{
    private static RewardSample Sample(string prompt, string completion, bool stopped) =>
        new(prompt, prompt.Select(c => (int)c).ToArray(), completion, completion.Select(c => (int)c).ToArray(), stopped);

    private static readonly RewardSample[] Batch =
    [
        Sample("3141=", "1134", true),    // sort gold 1.0, reverse gold 0.8·1/4 + 0.2 = 0.4
        Sample("3141=", "1143", false),   // sort gold 0.8·2/4 = 0.4, reverse gold 0.8·2/4 = 0.4
        Sample("12=", "", true),          // sort gold 0.2
    ];

    private static float[] Scores(IRewardSource s, IReadOnlyList<RewardSample> batch)
    {
        using var scope = Rlhf.Torch.Torch.NewScope();
        var t = s.Score(batch);
        Assert.Equal(new long[] { batch.Count }, t.Shape);
        return t.ToArray<float>();
    }

    [Fact]
    public void Task_gold_rewards_are_registered_under_the_task_names()
    {
        var r = RewardRegistry.WithBuiltIns();
        Assert.Equal(SyntheticTasks.Names.Order(StringComparer.Ordinal), r.Names);
        Assert.Equal(new[] { 1.0f, 0.4f, 0.2f }, Scores(r.Source("sort"), Batch));
        Assert.Equal(new[] { 0.4f, 0.4f }, Scores(r.Source("reverse"), Batch[..2]));
    }

    [Fact]
    public void Functions_registered_from_code_are_found_by_name_and_unknown_names_list_the_known_ones()
    {
        var r = new RewardRegistry().Register("length", s => s.CompletionText.Length).Register("ids", s => s.CompletionIds.Sum() - s.PromptIds.Length);
        Assert.Equal(new[] { 4f, 4f, 0f }, Scores(r.Source("length"), Batch));
        Assert.Equal(new[] { '1' + '1' + '3' + '4' - 5f, '1' + '1' + '4' + '3' - 5f, -3f }, Scores(r.Source("ids"), Batch));
        Assert.Throws<ArgumentException>(() => r.Register("length", _ => 0));
        var e = Assert.Throws<ArgumentException>(() => r.Source("lenght"));
        Assert.Equal("reward.function: no reward function named 'lenght' is registered; registered: ids, length", e.Message);
    }

    [Fact]
    public void A_function_returning_nan_is_an_error_naming_it()
    {
        var r = new RewardRegistry().Register("bad", s => s.FinishedWithStop ? 1 : double.NaN);
        var e = Assert.Throws<InvalidOperationException>(() => Scores(r.Source("bad"), Batch));
        Assert.Contains("'bad'", e.Message);
        Assert.Contains("sample 1", e.Message);
    }

    [Fact]
    public void Weighted_sum_matches_the_hand_computed_scores()
    {
        var r = RewardRegistry.WithBuiltIns().Register("stopped", s => s.FinishedWithStop ? 1 : 0);
        var source = RewardSources.Build(new RewardSettings
        {
            Functions = EquatableList.Of(new WeightedRewardFunction { Function = "sort", Weight = 2.0 }, new WeightedRewardFunction { Function = "stopped", Weight = -0.5 }),
        }, new DataSettings(), r);
        var s = Scores(source, Batch);
        Assert.Equal(2 * 1.0 - 0.5, s[0], 5);
        Assert.Equal(2 * 0.4, s[1], 5);
        Assert.Equal(2 * 0.2 - 0.5, s[2], 5);
        Assert.Equal("2·sort + -0.5·stopped", source.Name);
    }

    [Fact]
    public void Build_picks_function_functions_model_or_the_task_gold_reward()
    {
        var r = RewardRegistry.WithBuiltIns();
        Assert.Equal("reverse", RewardSources.Build(new RewardSettings { Function = "reverse" }, new DataSettings { Task = "sort" }, r).Name);
        Assert.Equal("sort", RewardSources.Build(null, new DataSettings { Task = "sort" }, r).Name);
        var model = new RewardSettings { ModelArgs = new ModelArgs { ModelNameOrPath = "models/rm" } };
        var learned = new FunctionRewardSource("rm", _ => 0);
        Assert.Same(learned, RewardSources.Build(model, new DataSettings { Task = "sort" }, r, _ => learned));
        Assert.Contains("no reward-model loader", Assert.Throws<ArgumentException>(() => RewardSources.Build(model, new DataSettings(), r)).Message);
        Assert.Contains("nothing scores the rollouts", Assert.Throws<ArgumentException>(() => RewardSources.Build(null, new DataSettings { Path = "p.jsonl" }, r)).Message);
        Assert.Contains("reward.functions[1].function", Assert.Throws<ArgumentException>(() => RewardSources.Build(
            new RewardSettings { Functions = EquatableList.Of(new WeightedRewardFunction { Function = "sort" }, new WeightedRewardFunction { Function = "nope" }) }, new DataSettings(), r)).Message);
    }

    [Fact]
    public void Missing_stop_penalty_in_both_anchor_variants()
    {
        var sort = RewardRegistry.WithBuiltIns().Source("sort");
        // TRL v0.9.4 (async_rlhf): score = stopped ? score : -1.
        Assert.Equal(new[] { 1.0f, -1.0f, 0.2f }, Scores(RewardSources.WithMissingStopPenalty(sort, true, -1.0, null), Batch));
        // Current TRL: score -= 1.5 where the stop is missing.
        var sub = Scores(RewardSources.WithMissingStopPenalty(sort, false, -1.0, 1.5), Batch);
        Assert.Equal(1.0f, sub[0]);
        Assert.Equal(0.4f - 1.5f, sub[1], 5);
        Assert.Equal(0.2f, sub[2]);
        Assert.Same(sort, RewardSources.WithMissingStopPenalty(sort, false, -1.0, null));
        Assert.Throws<ArgumentException>(() => RewardSources.WithMissingStopPenalty(sort, true, -1.0, 1.0));
        var wrapped = (MissingStopPenaltySource)RewardSources.WithMissingStopPenalty(sort, true, -2.0, null);
        Assert.Equal(MissingStopPenaltyMode.Replace, wrapped.Mode);
    }

    private static RlhfConfig Load(string reward) =>
        ConfigLoader.LoadText("training: {algorithm: online_dpo, total_episodes: 64}\ndata: {task: sort}\n" + reward, "reward.yaml")
            .Match(c => c, e => throw new Xunit.Sdk.XunitException(ConfigLoader.Format(e)));

    [Fact]
    public void Reward_keys_bind_from_yaml()
    {
        Assert.Equal("sort", Load("reward: {function: sort}").Reward!.Function);
        var sum = Load("reward:\n  functions:\n    - {function: sort, weight: 0.5}\n    - {function: copy}\n").Reward!.Functions!;
        Assert.Equal(2, sum.Count);
        Assert.Equal(0.5, sum[0].Weight);
        Assert.Equal(1.0, sum[1].Weight);   // the schema's default
        var role = Load("reward:\n  model_args: {model_name_or_path: models/rm}\n  strategy_args: {strategy_name: hf_infer}\n  device_mapping: list(range(0,2))\n").Reward!;
        Assert.Equal("models/rm", role.ModelArgs!.ModelNameOrPath);
        Assert.Equal(2, role.DeviceMapping!.Count);
    }

    [Fact]
    public void Conflicting_reward_keys_are_config_errors()
    {
        var e = ConfigLoader.LoadText("training: {algorithm: online_dpo, total_episodes: 64}\ndata: {task: sort}\nreward:\n  function: sort\n  model_args: {model_name_or_path: m}\n", "reward.yaml");
        var errors = e.Match(_ => throw new Xunit.Sdk.XunitException("expected errors, got success"), errs => ConfigLoader.Format(errs));
        Assert.Contains("reward.yaml:", errors);
        Assert.Contains("set only one of reward.function, reward.functions and a reward model", errors);
    }
}
