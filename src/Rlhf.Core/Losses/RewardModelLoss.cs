using Rlhf.Torch;

namespace Rlhf.Core.Losses;

using Torch = Rlhf.Torch.Torch;

/// <summary>Stats of one reward-model step, under TRL RewardTrainer's names.</summary>
/// <param name="Loss"><c>loss</c>.</param>
/// <param name="Accuracy"><c>accuracy</c>: fraction of pairs with r_c &gt; r_r.</param>
/// <param name="Margin"><c>margin</c>: mean r_c − r_r.</param>
/// <param name="MeanReward"><c>mean_reward</c>: mean of all 2P rewards.</param>
public sealed record RewardModelStats(double Loss, double Accuracy, double Margin, double MeanReward) : IStats
{
    /// <inheritdoc />
    public IReadOnlyDictionary<string, double> ToMetrics() => new Dictionary<string, double>
    {
        ["loss"] = Loss,
        ["accuracy"] = Accuracy,
        ["margin"] = Margin,
        ["mean_reward"] = MeanReward,
    };
}

/// <summary>The Bradley–Terry reward-model loss (Ouyang et al. 2022; TRL RewardTrainer).</summary>
public static class RewardModelLoss
{
    /// <summary>
    /// <c>loss = −mean(logσ(r_c − r_r − margin)) + center_coef · mean((r_c + r_r)²)</c> (margin from Llama 2; centering from
    /// Eisenstein et al. 2023, TRL <c>center_rewards_coefficient</c>). rewardsChosen, rewardsRejected [P] (with grad),
    /// margin [P] or null, centerCoefficient or null → (scalar, stats).
    /// </summary>
    public static (Tensor Loss, RewardModelStats Stats) Compute(Tensor rewardsChosen, Tensor rewardsRejected, Tensor? margin = null, double? centerCoefficient = null)
    {
        Guard.Rank(rewardsChosen, 1, nameof(rewardsChosen));
        Guard.SameShape(rewardsChosen, nameof(rewardsChosen), rewardsRejected, nameof(rewardsRejected));
        if (margin is not null) Guard.SameShape(rewardsChosen, nameof(rewardsChosen), margin, nameof(margin));
        using var scope = Torch.NewScope();
        var d = rewardsChosen - rewardsRejected;
        if (margin is not null) d = d - margin;
        var loss = -d.LogSigmoid().Mean();
        if (centerCoefficient is { } c) loss = loss + (rewardsChosen + rewardsRejected).Square().Mean() * c;
        RewardModelStats stats;
        using (Torch.NoGrad())
        {
            var diff = rewardsChosen - rewardsRejected;
            var v = StatsMath.Read(loss, diff.Gt(0).To(diff.Dtype).Mean(), diff.Mean(), (rewardsChosen.Mean() + rewardsRejected.Mean()) * 0.5);
            stats = new RewardModelStats(v[0], v[1], v[2], v[3]);
        }
        return (loss.MoveToOuter(), stats);
    }
}
