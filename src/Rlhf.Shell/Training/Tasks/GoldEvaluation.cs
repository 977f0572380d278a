using Rlhf.Shell.Training.Rewards;

namespace Rlhf.Shell.Training.Tasks;

/// <summary>How a policy does on a task's held-out prompts: mean gold reward and exact-match rate over <see cref="Count"/> completions.</summary>
public sealed record GoldEvaluation(double GoldReward, double ExactMatch, int Count);

/// <summary>Evaluation against a task's gold reward, as the async_rlhf paper measures its policies (gold score and win-rate).</summary>
public static class GoldMetrics
{
    /// <summary>Mean gold reward and exact-match rate of <paramref name="samples"/> (at least one).</summary>
    public static GoldEvaluation Evaluate(SyntheticTask task, IReadOnlyList<RewardSample> samples)
    {
        if (samples.Count == 0) throw new ArgumentException("an evaluation needs at least one completion", nameof(samples));
        var gold = samples.Average(s => task.GoldReward(s.PromptText, s.CompletionText, s.FinishedWithStop));
        var exact = samples.Average(s => task.ExactMatch(s.PromptText, s.CompletionText, s.FinishedWithStop) ? 1.0 : 0.0);
        return new GoldEvaluation(gold, exact, samples.Count);
    }

    /// <summary>
    /// Win-rate of <paramref name="candidate"/> over <paramref name="baseline"/>, paired prompt by prompt: the fraction of
    /// prompts where the candidate's gold reward is higher, ties counting half — 0.5 for a policy against itself, and
    /// <c>WinRate(a, b) + WinRate(b, a) = 1</c>.
    /// </summary>
    public static double WinRate(IReadOnlyList<double> candidate, IReadOnlyList<double> baseline)
    {
        if (candidate.Count != baseline.Count || candidate.Count == 0)
            throw new ArgumentException($"a win-rate pairs completions prompt by prompt: got {candidate.Count} candidate and {baseline.Count} baseline scores (need equal, non-zero counts)");
        var wins = 0.0;
        for (var i = 0; i < candidate.Count; i++)
            wins += candidate[i] > baseline[i] ? 1.0 : candidate[i] == baseline[i] ? 0.5 : 0.0;
        return wins / candidate.Count;
    }
}
