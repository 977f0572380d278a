using Rlhf.Core.Rollouts;
using Rlhf.Torch;

namespace Rlhf.Shell.Training.Rewards;

using Torch = Rlhf.Torch.Torch;

/// <summary>
/// One rollout to score: the prompt's text (as the data gave it, before tokenisation) and ids, the completion's text
/// (decoded up to the stop token, which is not included, special tokens dropped) and ids (up to and including the stop
/// token when there is one), and whether the completion ended with the stop token.
/// </summary>
public sealed record RewardSample(string PromptText, int[] PromptIds, string CompletionText, int[] CompletionIds, bool FinishedWithStop);

/// <summary>
/// What the online loop asks for the scores of a batch of rollouts. Implementations: registered rule functions
/// (<see cref="FunctionRewardSource"/>), weighted sums (<see cref="WeightedRewardSource"/>), the missing-stop penalty
/// around any source (<see cref="MissingStopPenaltySource"/>), and — with the trainers — a learned reward model run
/// frozen (a score head on the last non-pad token), which <see cref="RewardSources.Build"/> takes as a factory.
/// </summary>
public interface IRewardSource
{
    /// <summary>A short name for logs and metrics (the function's name, or a description of the sum).</summary>
    string Name { get; }

    /// <summary>The scores of <paramref name="batch"/>: float32 [B] on the CPU, in the batch's order, all finite.</summary>
    Tensor Score(IReadOnlyList<RewardSample> batch);
}

/// <summary>A rule-based reward: a pure function of one sample (prompt and completion text and ids, stop flag) to a finite score.</summary>
public delegate double RewardFunction(RewardSample sample);

/// <summary>A registered reward function applied to every sample of a batch.</summary>
public sealed class FunctionRewardSource(string name, RewardFunction function) : IRewardSource
{
    /// <inheritdoc />
    public string Name { get; } = name;

    /// <summary>The function.</summary>
    public RewardFunction Function { get; } = function;

    /// <inheritdoc />
    public Tensor Score(IReadOnlyList<RewardSample> batch)
    {
        var scores = new float[batch.Count];
        for (var i = 0; i < batch.Count; i++)
        {
            var s = Function(batch[i]);
            if (!double.IsFinite(s))
                throw new InvalidOperationException($"reward function '{Name}' returned {s} for sample {i} of the batch (prompt \"{batch[i].PromptText}\"); scores must be finite");
            scores[i] = (float)s;
        }
        return Torch.From(scores);
    }
}

/// <summary>A weighted sum of sources: <c>score = Σ_k w_k · score_k</c>.</summary>
public sealed class WeightedRewardSource : IRewardSource
{
    /// <summary>A sum over <paramref name="terms"/> (at least one).</summary>
    public WeightedRewardSource(IReadOnlyList<(IRewardSource Source, double Weight)> terms)
    {
        if (terms.Count == 0) throw new ArgumentException("a weighted sum of rewards needs at least one term", nameof(terms));
        foreach (var (s, w) in terms)
            if (!double.IsFinite(w)) throw new ArgumentException($"the weight of reward '{s.Name}' is {w}; weights must be finite", nameof(terms));
        Terms = terms;
        Name = string.Join(" + ", terms.Select(t => $"{t.Weight}·{t.Source.Name}"));
    }

    /// <summary>The terms.</summary>
    public IReadOnlyList<(IRewardSource Source, double Weight)> Terms { get; }

    /// <inheritdoc />
    public string Name { get; }

    /// <inheritdoc />
    public Tensor Score(IReadOnlyList<RewardSample> batch)
    {
        using var scope = Torch.NewScope();
        var total = Torch.Zeros([batch.Count]);
        foreach (var (source, weight) in Terms) total = total + source.Score(batch) * weight;
        return total.MoveToOuter();
    }
}

/// <summary>
/// The missing-stop-token penalty around a source, in both anchors' variants through Core's
/// <see cref="Rlhf.Core.Rollouts.Rewards.MissingStopPenalty"/>: TRL v0.9.4 <c>non_eos_penalty</c> (<c>score = stopped ? score : penalty</c>,
/// async_rlhf uses penalty −1) or current TRL <c>missing_eos_penalty</c> (<c>score −= penalty</c> where the stop is missing).
/// </summary>
public sealed class MissingStopPenaltySource(IRewardSource inner, double penalty, MissingStopPenaltyMode mode) : IRewardSource
{
    /// <summary>The penalised source.</summary>
    public IRewardSource Inner { get; } = inner;

    /// <summary>The penalty: the replacement score (Replace) or the amount subtracted (Subtract).</summary>
    public double Penalty { get; } = penalty;

    /// <summary>Which variant.</summary>
    public MissingStopPenaltyMode Mode { get; } = mode;

    /// <inheritdoc />
    public string Name => Inner.Name;

    /// <inheritdoc />
    public Tensor Score(IReadOnlyList<RewardSample> batch)
    {
        using var scope = Torch.NewScope();
        var stopped = Torch.From(batch.Select(s => s.FinishedWithStop).ToArray());
        return Rlhf.Core.Rollouts.Rewards.MissingStopPenalty(Inner.Score(batch), stopped, Penalty, Mode).MoveToOuter();
    }
}
