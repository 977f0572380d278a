using Rlhf.Core.Advantages;
using Rlhf.Core.Rollouts;
using Rlhf.Torch;

namespace Rlhf.Core.Losses;

using Torch = Rlhf.Torch.Torch;

/// <summary>
/// REINFORCE++ (Hu 2025, arXiv 2501.03262; OpenRLHF <c>advantage_estimator = reinforce | reinforce_baseline</c>): token rewards
/// from KL and the score on the last token, discounted returns, advantages whitened over every response token of the batch.
/// The update itself is PPO's clipped token loss (<see cref="Ppo.PolicyLoss"/>).
/// </summary>
public static class ReinforcePlusPlus
{
    /// <summary>
    /// REINFORCE++ advantages. Rewards <c>r_t = −kl_coef · kl_t</c> plus the score at the last response token
    /// (OpenRLHF <c>compute_reward</c>); with <paramref name="groupIds"/> (<c>reinforce_baseline</c>) the group mean score is
    /// subtracted first. Returns <c>G_t = Σ_{s≥t} γ^{s−t} r_s</c>; advantages = whiten(G) over <paramref name="mask"/>
    /// (Bessel, ε = 1e-8), 0 at padding. kl [B, T], scores [B], mask [B, T] (≥ 1 token per row) → (advantages, returns) [B, T].
    /// </summary>
    public static AdvantageResult Advantages(Tensor kl, Tensor scores, Tensor mask, double klCoef, double gamma = 1.0, IReadOnlyList<int>? groupIds = null)
    {
        Guard.Rank(kl, 2, nameof(kl));
        Guard.SameShape(kl, nameof(kl), mask, nameof(mask));
        Guard.Vector(scores, kl.Size(0), nameof(scores));
        using var scope = Torch.NewScope();
        var m = Guard.BoolMask(mask);
        Guard.That(m.Any(1).All().Item() != 0, "REINFORCE++ needs at least one response token in every row");
        var s = groupIds is null ? scores : scores - Groups.Mean(scores, groupIds);
        // Last active token: T − 1 − first_true(flip(mask)).
        var t = kl.Size(1);
        var last = Guard.IndexAdd(-Masking.FirstTrueIndices(m.Flip(1)), t - 1);
        var (rewards, _) = Rewards.TokenRewards(Masked.Select(kl, m), s, last, klCoef);
        var returns = DiscountedReturns.Compute(rewards, m, gamma);
        var adv = Masked.Whiten(returns, m);
        return new AdvantageResult(adv.MoveToOuter(), returns.MoveToOuter());
    }
}
