using Rlhf.Core.Rollouts;
using Rlhf.Settings;
using Rlhf.Shell.Training.Tasks;

namespace Rlhf.Shell.Training.Rewards;

/// <summary>
/// Reward functions by name, for <c>reward: {function: NAME}</c> and <c>reward: {functions: [...]}</c>. Register your own
/// from C# (<c>registry.Register("len", s =&gt; s.CompletionText.Length)</c>) or F#
/// (<c>registry.Register("len", RewardFunction(fun s -&gt; float s.CompletionText.Length))</c>) before the trainer
/// resolves the config. An instance, not global state: each run resolves against the registry it is given.
/// </summary>
public sealed class RewardRegistry
{
    private readonly Dictionary<string, RewardFunction> _functions = new(StringComparer.Ordinal);

    /// <summary>An empty registry.</summary>
    public RewardRegistry() { }

    /// <summary>
    /// A registry holding the gold reward of every built-in synthetic task under the task's name
    /// (<see cref="SyntheticTask.GoldReward"/>: 0.8 × fraction of answer positions right + 0.2 for stopping).
    /// </summary>
    public static RewardRegistry WithBuiltIns()
    {
        var r = new RewardRegistry();
        foreach (var name in SyntheticTasks.Names)
        {
            // The answer of a prompt does not depend on the digit range the prompts were drawn with.
            var task = SyntheticTasks.Create(name, 1, SyntheticTask.MaxSupportedDigits);
            r.Register(name, s => task.GoldReward(s.PromptText, s.CompletionText, s.FinishedWithStop));
        }
        return r;
    }

    /// <summary>The registered names, sorted.</summary>
    public IReadOnlyList<string> Names => _functions.Keys.Order(StringComparer.Ordinal).ToArray();

    /// <summary>Registers <paramref name="function"/> as <paramref name="name"/>; a name already taken is an error.</summary>
    public RewardRegistry Register(string name, RewardFunction function)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(function);
        if (!_functions.TryAdd(name, function))
            throw new ArgumentException($"a reward function named '{name}' is already registered", nameof(name));
        return this;
    }

    /// <summary>Whether <paramref name="name"/> is registered.</summary>
    public bool Contains(string name) => _functions.ContainsKey(name);

    /// <summary>The source scoring with the function called <paramref name="name"/>; <paramref name="key"/> names the config key in the error.</summary>
    public IRewardSource Source(string name, string key = "reward.function") =>
        _functions.TryGetValue(name, out var f)
            ? new FunctionRewardSource(name, f)
            : throw new ArgumentException($"{key}: no reward function named '{name}' is registered; registered: {(_functions.Count == 0 ? "none" : string.Join(", ", Names))}");
}

/// <summary>Builds the reward source a config describes.</summary>
public static class RewardSources
{
    /// <summary>
    /// The source of <paramref name="reward"/>: <c>function</c> → that registered function; <c>functions</c> → their
    /// weighted sum; <c>model_args</c>/<c>strategy_args</c> → a learned reward model from <paramref name="rewardModel"/>
    /// (the trainers supply it: they own model loading); none of these → the gold reward of <c>data.task</c>.
    /// </summary>
    public static IRewardSource Build(RewardSettings? reward, DataSettings data, RewardRegistry registry, Func<RewardSettings, IRewardSource>? rewardModel = null)
    {
        if (reward?.Function is { } name) return registry.Source(name);
        if (reward?.Functions is { } terms)
            return new WeightedRewardSource(terms.Select((t, i) => (registry.Source(t.Function, $"reward.functions[{i}].function"), t.Weight)).ToArray());
        if (reward is not null && (reward.ModelArgs is not null || reward.StrategyArgs is not null))
            return rewardModel?.Invoke(reward)
                   ?? throw new ArgumentException("reward: a learned reward model is configured (model_args/strategy_args), but no reward-model loader was given");
        if (data.Task is { } task) return registry.Source(task, "data.task");
        throw new ArgumentException("reward: nothing scores the rollouts; set reward.function, reward.functions or a reward model, or use a synthetic data.task (its gold reward)");
    }

    /// <summary>
    /// <paramref name="source"/> with the missing-stop penalty the algorithm asks for: <paramref name="replaceWithPenalty"/>
    /// (TRL v0.9.4 <c>non_eos_penalty</c>) replaces the score by <paramref name="penaltyRewardValue"/>;
    /// <paramref name="missingEosPenalty"/> (current TRL) subtracts it; neither leaves the source as it is; both is an error.
    /// </summary>
    public static IRewardSource WithMissingStopPenalty(IRewardSource source, bool replaceWithPenalty, double penaltyRewardValue, double? missingEosPenalty)
    {
        if (replaceWithPenalty && missingEosPenalty is not null)
            throw new ArgumentException("set only one of non_eos_penalty (TRL v0.9.4: replace the score) and missing_eos_penalty (current TRL: subtract)");
        if (replaceWithPenalty) return new MissingStopPenaltySource(source, penaltyRewardValue, MissingStopPenaltyMode.Replace);
        if (missingEosPenalty is double p) return new MissingStopPenaltySource(source, p, MissingStopPenaltyMode.Subtract);
        return source;
    }
}
