using Rlhf.Shell.Telemetry;
using Rlhf.Shell.Training.Rewards;
using Rlhf.Shell.Training.Tasks;
using Rlhf.Torch;

namespace Rlhf.Shell.Training.Quickstart;

/// <summary>
/// A reward source that scores with <see cref="Inner"/> (the learned proxy) and, on the side, measures the task's gold
/// reward of the same rollouts — the async_rlhf paper's gold score of the training samples — so the gap between what the
/// policy is optimised for and what is wanted (Goodhart's law) can be plotted step by step.
/// </summary>
public sealed class GoldTap(IRewardSource inner, SyntheticTask task) : IRewardSource
{
    /// <summary>The source whose scores are returned.</summary>
    public IRewardSource Inner { get; } = inner;

    /// <inheritdoc />
    public string Name => Inner.Name;

    /// <summary>Mean gold reward and exact-match rate of the last scored batch (null before the first).</summary>
    public (double GoldReward, double ExactMatch)? Last { get; private set; }

    /// <inheritdoc />
    public Tensor Score(IReadOnlyList<RewardSample> batch)
    {
        var scores = Inner.Score(batch);
        if (batch.Count > 0)
        {
            var g = GoldMetrics.Evaluate(task, batch);
            Last = (g.GoldReward, g.ExactMatch);
        }
        return scores;
    }
}

/// <summary>
/// Adds the gold reward of the step's rollouts (<c>gold/reward</c>, <c>gold/exact_match</c>, from a <see cref="GoldTap"/>) to
/// every record before passing it on to <paramref name="inner"/>.
/// </summary>
public sealed class GoldMetricsSink(GoldTap tap, IMetricsSink inner) : IMetricsSink
{
    /// <summary>Key of the rollouts' mean gold reward.</summary>
    public const string GoldReward = "gold/reward";

    /// <summary>Key of the rollouts' exact-match rate.</summary>
    public const string ExactMatch = "gold/exact_match";

    /// <inheritdoc />
    public void Write(MetricsRecord record)
    {
        if (tap.Last is not var (gold, exact)) { inner.Write(record); return; }
        var values = new Dictionary<string, double>(record.Values) { [GoldReward] = gold, [ExactMatch] = exact };
        inner.Write(record with { Values = values });
    }

    /// <inheritdoc />
    public void Dispose() => inner.Dispose();
}
