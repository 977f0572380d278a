using Rlhf.Core.Rollouts;
using Rlhf.Torch;

namespace Rlhf.Core.Losses;

using Torch = Rlhf.Torch.Torch;

/// <summary>A stats record that logs under TRL's metric names, so trainers write it without renaming.</summary>
public interface IStats
{
    /// <summary>The fields under their TRL metric keys (<c>objective/kl</c>, <c>policy/clipfrac_avg</c>, …).</summary>
    IReadOnlyDictionary<string, double> ToMetrics();
}

/// <summary>Helpers for computing stats: plain doubles, read under no-grad.</summary>
internal static class StatsMath
{
    /// <summary>The value of a scalar tensor as a double, without recording autograd.</summary>
    public static double D(Tensor t)
    {
        using var _ = Torch.NoGrad();
        return t.Detach().To(ScalarType.Float64).Item();
    }
}

/// <summary>
/// What a batch of rollouts says before any update (TRL PPOv2 / RLOO / online DPO <c>objective/*</c> metrics).
/// </summary>
/// <param name="Kl"><c>objective/kl</c>: mean over rows of Σ_t KL (k1 by default).</param>
/// <param name="Entropy"><c>objective/entropy</c>: mean over rows of Σ_t −lp over response tokens.</param>
/// <param name="NonScoreReward"><c>objective/non_score_reward</c>: mean over rows of Σ_t −kl_coef·KL.</param>
/// <param name="RlhfReward"><c>objective/rlhf_reward</c>: mean score + mean non-score reward.</param>
/// <param name="Scores"><c>objective/scores</c>: mean score.</param>
/// <param name="NumEosTokens"><c>val/num_eos_tokens</c>: stop tokens in the truncated responses.</param>
/// <param name="ScoresMargin"><c>objective/scores_margin</c> (online DPO: mean chosen − rejected score), or null.</param>
public sealed record RolloutStats(double Kl, double Entropy, double NonScoreReward, double RlhfReward, double Scores, double NumEosTokens,
    double? ScoresMargin = null) : IStats
{
    /// <summary>
    /// Computes the rollout metrics of TRL PPOv2 (<c>mean_kl = kl.sum(1).mean()</c>, <c>mean_entropy = (−logprobs).sum(1).mean()</c>,
    /// …). Unlike TRL, the entropy sum skips padding (TRL adds −1 per padded token through INVALID_LOGPROB).
    /// </summary>
    public static RolloutStats Compute(RolloutBatch batch, double klCoef, KlEstimator estimator = KlEstimator.K1, double? scoresMargin = null)
    {
        using var scope = Torch.NewScope();
        using var _ = Torch.NoGrad();
        var mask = batch.ResponseMask();
        var kl = batch.Kl(estimator).Sum(1).Mean();
        var entropy = Masked.Sum(-batch.Logprobs, mask, 1).Mean();
        var nonScore = kl * -klCoef;
        var scores = batch.Scores.To(ScalarType.Float64).Mean();
        var eos = batch.Responses.Eq(batch.StopTokenId).Sum();
        var nonScoreD = StatsMath.D(nonScore);
        var scoresD = StatsMath.D(scores);
        return new RolloutStats(StatsMath.D(kl), StatsMath.D(entropy), nonScoreD, scoresD + nonScoreD, scoresD, StatsMath.D(eos), scoresMargin);
    }

    /// <inheritdoc />
    public IReadOnlyDictionary<string, double> ToMetrics()
    {
        var m = new Dictionary<string, double>
        {
            ["objective/kl"] = Kl,
            ["objective/entropy"] = Entropy,
            ["objective/non_score_reward"] = NonScoreReward,
            ["objective/rlhf_reward"] = RlhfReward,
            ["objective/scores"] = Scores,
            ["val/num_eos_tokens"] = NumEosTokens,
        };
        if (ScoresMargin is { } s) m["objective/scores_margin"] = s;
        return m;
    }
}
