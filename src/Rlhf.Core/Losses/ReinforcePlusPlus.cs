using Rlhf.Core.Advantages;
using Rlhf.Core.Rollouts;
using Rlhf.Torch;

namespace Rlhf.Core.Losses;

using Torch = Rlhf.Torch.Torch;

/// <summary>
/// REINFORCE++ (Hu 2025, arXiv 2501.03262) as its home, OpenRLHF, computes it (<c>advantage_estimator = reinforce |
/// reinforce_baseline</c>, <c>experience_maker.py</c>): token rewards from KL and the clipped score on the last token, discounted
/// returns, advantages normalised over every response token of the batch. The update itself is PPO's clipped token loss
/// (<see cref="Ppo.PolicyTerms"/>).
/// </summary>
public static class ReinforcePlusPlus
{
    /// <summary>The floor OpenRLHF puts under the variance before <c>rsqrt</c>: <c>var.clamp(min=1e-8).rsqrt()</c>.</summary>
    public const double VarianceFloor = 1e-8;

    /// <summary>
    /// OpenRLHF's batch normalisation of REINFORCE++ advantages: <c>μ = Σ m x / Σ m</c>, <c>σ² = Σ m (x − μ)² / Σ m</c> (population
    /// variance, no Bessel correction — unlike TRL's <c>masked_whiten</c>), <c>(x − μ) · rsqrt(max(σ², 1e-8))</c>; with
    /// <paramref name="divideByStd"/> false (<c>--no_advantage_std_norm</c>) only <c>x − μ</c>. 0 at padding (OpenRLHF leaves those
    /// positions as computed; every loss masks them). x [B, T], mask [B, T] (≥ 1 active) → [B, T].
    /// </summary>
    public static Tensor Normalize(Tensor x, Tensor mask, bool divideByStd)
    {
        Guard.SameShape(x, nameof(x), mask, nameof(mask));
        using var scope = Torch.NewScope();
        var mean = Masked.Mean(x, mask);
        var centered = x - mean;
        var y = divideByStd ? centered * Masked.Mean(centered.Square(), mask).Clamp(VarianceFloor, null).Rsqrt() : centered;
        return Masked.Select(y, mask).MoveToOuter();
    }

    /// <summary>
    /// REINFORCE++ advantages (OpenRLHF). With <paramref name="groupIds"/> (<c>reinforce_baseline</c>) the group mean score is
    /// subtracted first; the score is then clipped to <paramref name="rewardClipRange"/> (OpenRLHF <c>compute_reward</c>,
    /// <c>--reward_clip_range</c>); rewards <c>r_t = −kl_coef · kl_t</c> plus the score at the last response token; returns
    /// <c>G_t = Σ_{s≥t} γ^{s−t} r_s</c> (<c>get_cumulative_returns</c>); advantages = <see cref="Normalize"/>(G).
    /// Pass the KL as OpenRLHF computes it (<see cref="Kl.Estimate"/> with <see cref="Kl.OpenRlhfClamp"/>).
    /// kl [B, T], scores [B], mask [B, T] (≥ 1 token per row) → (advantages, returns) [B, T].
    /// </summary>
    public static AdvantageResult Advantages(Tensor kl, Tensor scores, Tensor mask, double klCoef, double gamma, IReadOnlyList<int>? groupIds,
        (double Min, double Max)? rewardClipRange, bool normalizeStd)
    {
        Guard.Rank(kl, 2, nameof(kl));
        Guard.SameShape(kl, nameof(kl), mask, nameof(mask));
        Guard.Vector(scores, kl.Size(0), nameof(scores));
        if (rewardClipRange is { } r0) Guard.That(r0.Min <= r0.Max, $"reward clip range [{r0.Min}, {r0.Max}] is empty");
        using var scope = Torch.NewScope();
        var m = Guard.BoolMask(mask);
        Guard.That(m.Any(1).All().Item() != 0, "REINFORCE++ needs at least one response token in every row");
        var s = groupIds is null ? scores : scores - Groups.Mean(scores, groupIds);
        if (rewardClipRange is { } r) s = s.Clamp(r.Min, r.Max);
        // Last active token: T − 1 − first_true(flip(mask)).
        var t = kl.Size(1);
        var last = Guard.IndexAdd(-Masking.FirstTrueIndices(m.Flip(1)), t - 1);
        var (rewards, _) = Rewards.TokenRewards(Masked.Select(kl, m), s, last, klCoef);
        var returns = DiscountedReturns.Compute(rewards, m, gamma);
        var adv = Normalize(returns, m, normalizeStd);
        return new AdvantageResult(adv.MoveToOuter(), returns.MoveToOuter());
    }
}
