using Rlhf.Core.Losses;
using Rlhf.Core.Rollouts;
using Rlhf.Torch;

namespace Rlhf.Core.Objectives;

using Torch = Rlhf.Torch.Torch;

/// <summary>
/// REINFORCE++ as OpenRLHF computes it: KL from <c>compute_approx_kl</c> (clamped to ±10, as OpenRLHF does), KL-shaped token
/// rewards with the clipped score on the last token, discounted returns normalised over the batch's response tokens, then PPO's
/// clipped token loss reduced over all tokens (OpenRLHF's token-level loss).
/// </summary>
/// <param name="clipRange">ε of the token-ratio clip (OpenRLHF <c>eps_clip</c>).</param>
/// <param name="klCoef">Per-token KL coefficient in the reward.</param>
/// <param name="klEstimator">KL estimator.</param>
/// <param name="gamma">Discount γ of the returns.</param>
/// <param name="baseline"><c>reinforce_baseline</c>: subtract the group mean score first.</param>
/// <param name="rewardClipRange">OpenRLHF <c>reward_clip_range</c>, or null.</param>
/// <param name="normalizeStd">Divide by the batch std (false = OpenRLHF <c>no_advantage_std_norm</c>).</param>
public sealed class ReinforcePlusPlusObjective(double clipRange, double klCoef, KlEstimator klEstimator, double gamma, bool baseline,
    (double Min, double Max)? rewardClipRange, bool normalizeStd) : IObjective
{
    /// <summary>ε.</summary>
    public double ClipRange { get; } = clipRange;
    /// <summary>KL coefficient.</summary>
    public double KlCoef { get; } = klCoef;
    /// <summary>KL estimator.</summary>
    public KlEstimator KlEstimator { get; } = klEstimator;
    /// <summary>γ.</summary>
    public double Gamma { get; } = gamma;
    /// <summary>Whether the group mean score is subtracted.</summary>
    public bool Baseline { get; } = baseline;
    /// <summary>Score clip range, or null.</summary>
    public (double Min, double Max)? RewardClipRange { get; } = rewardClipRange;
    /// <summary>Whether advantages are divided by the batch std.</summary>
    public bool NormalizeStd { get; } = normalizeStd;

    /// <summary>OpenRLHF's REINFORCE++ advantages [B, T] over the whole rollout batch.</summary>
    public ObjectiveBatch Prepare(RolloutBatch batch)
    {
        using var scope = Torch.NewScope();
        using var _ = Torch.NoGrad();
        var mask = batch.ResponseMask();
        var kl = Kl.Estimate(batch.Logprobs, batch.RefLogprobs, KlEstimator, mask, Kl.OpenRlhfClamp);
        var adv = ReinforcePlusPlus.Advantages(kl, batch.Scores, mask, KlCoef, Gamma, Baseline ? batch.GroupIds : null, RewardClipRange, NormalizeStd);
        return new ObjectiveBatch(batch, adv.Advantages.MoveToOuter(), adv.Returns.MoveToOuter());
    }

    /// <summary>PPO's clipped token terms, mean over all response tokens.</summary>
    public ObjectiveTerms Terms(ObjectiveBatch batch, Tensor logprobs, Tensor oldLogprobs, Tensor? values)
    {
        using var scope = Torch.NewScope();
        var mask = batch.Rollouts.ResponseMask();
        var (terms, stats) = Ppo.PolicyTerms(logprobs, oldLogprobs, batch.Advantages!, mask, ClipRange, null);
        return new ObjectiveTerms(terms.MoveToOuter(), null, mask.MoveToOuter(), ObjectiveUnit.Token, LossAggregation.Bnpo, stats.MoveToOuter());
    }
}
