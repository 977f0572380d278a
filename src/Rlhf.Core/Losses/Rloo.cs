using Rlhf.Core.Advantages;
using Rlhf.Core.Rollouts;
using Rlhf.Torch;

namespace Rlhf.Core.Losses;

using Torch = Rlhf.Torch.Torch;

/// <summary>REINFORCE leave-one-out (Ahmadian et al. 2024, arXiv 2402.14740) as async_rlhf / TRL RLOOTrainer computes it.</summary>
public static class Rloo
{
    /// <summary>
    /// The sequence-level RLHF reward: <c>score − kl_coef · Σ_t m_t (lp − lp_ref)</c>.
    /// scores [B], logprobs [B, T], refLogprobs [B, T], mask [B, T] → [B].
    /// </summary>
    public static Tensor RlhfReward(Tensor scores, Tensor logprobs, Tensor refLogprobs, Tensor mask, double klCoef)
    {
        Guard.Vector(scores, logprobs.Size(0), nameof(scores));
        using var scope = Torch.NewScope();
        var kl = Kl.K1(logprobs, refLogprobs, mask).Sum(1);
        return (scores - kl * klCoef).MoveToOuter();
    }

    /// <summary>
    /// Leave-one-out advantages <c>A_i = R_i − (Σ_{j∈g(i)} R_j − R_i)/(k − 1)</c>, optionally whitened over the batch
    /// (<c>(A − mean)/(std + 1e-8)</c>, current TRL). rlhfReward [B], groupIds int[B] → [B].
    /// </summary>
    public static Tensor Advantages(Tensor rlhfReward, IReadOnlyList<int> groupIds, bool normalize)
    {
        using var scope = Torch.NewScope();
        var a = GroupAdvantages.LeaveOneOut(rlhfReward, groupIds);
        if (normalize) a = (a - a.Mean()) / (a.Std() + 1e-8);
        return a.MoveToOuter();
    }

    /// <summary>
    /// Sequence-level clipped terms (async_rlhf / TRL RLOO): <c>ρ = exp(Σ_t m lp − Σ_t m lp_old)</c>,
    /// <c>ℓ = max(−A ρ, −A clip(ρ, 1 − ε_low, 1 + ε_high))</c>, one unit per row, with <c>policy/approxkl_avg</c> (mean of
    /// ½(Σ lp − Σ lp_old)²), <c>policy/clipfrac_avg</c>, <c>val/ratio</c> and <c>val/ratio_var</c> (Bessel; 0 for one row) over rows.
    /// logprobs [B, T] (with grad), oldLogprobs [B, T], advantages [B], mask [B, T] → (terms [B, 1], stats).
    /// </summary>
    public static (Tensor Terms, TensorStats Stats) SequenceTerms(Tensor logprobs, Tensor oldLogprobs, Tensor advantages, Tensor mask,
        double clipRangeLow, double clipRangeHigh)
    {
        Guard.Rank(logprobs, 2, nameof(logprobs));
        Guard.SameShape(logprobs, nameof(logprobs), oldLogprobs, nameof(oldLogprobs));
        Guard.SameShape(logprobs, nameof(logprobs), mask, nameof(mask));
        Guard.Vector(advantages, logprobs.Size(0), nameof(advantages));
        using var scope = Torch.NewScope();
        var diff = Masked.Sum(logprobs, mask, 1) - Masked.Sum(oldLogprobs, mask, 1);   // [B]
        var ratio = diff.Exp();
        var terms = Ppo.ClippedSurrogate(ratio, advantages, clipRangeLow, clipRangeHigh).Unsqueeze(1);
        var stats = new TensorStats();
        using (Torch.NoGrad())
        {
            var l1 = -advantages * ratio;
            var l2 = -advantages * ratio.Clamp(1 - clipRangeLow, 1 + clipRangeHigh);
            var mean = ratio.Mean();
            stats.Add("policy/approxkl_avg", (diff.Square() * 0.5).Mean())
                .Add("policy/clipfrac_avg", l2.Gt(l1).To(ratio.Dtype).Mean())
                .Add("val/ratio", mean)
                .Add("val/ratio_var", (ratio - mean).Square().Sum() / Math.Max(1, ratio.Size(0) - 1));
        }
        return (terms.MoveToOuter(), stats.MoveToOuter());
    }

    /// <summary>
    /// Sequence-level clipped loss (async_rlhf / TRL RLOO): the mean over rows of <see cref="SequenceTerms"/>, stats read once.
    /// logprobs [B, T] (with grad), oldLogprobs [B, T], advantages [B], mask [B, T] → (scalar, stats).
    /// </summary>
    public static (Tensor Loss, PolicyLossStats Stats) Loss(Tensor logprobs, Tensor oldLogprobs, Tensor advantages, Tensor mask,
        double clipRangeLow, double clipRangeHigh)
    {
        using var scope = Torch.NewScope();
        var (terms, t) = SequenceTerms(logprobs, oldLogprobs, advantages, mask, clipRangeLow, clipRangeHigh);
        var loss = terms.Mean();
        var v = StatsMath.Read(t["policy/approxkl_avg"], t["policy/clipfrac_avg"], loss, t["val/ratio"], t["val/ratio_var"]);
        return (loss.MoveToOuter(), new PolicyLossStats(v[0], v[1], v[2], v[3], v[4]));
    }
}
