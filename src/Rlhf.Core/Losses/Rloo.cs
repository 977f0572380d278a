using Rlhf.Core.Advantages;
using Rlhf.Core.Rollouts;
using Rlhf.Torch;

namespace Rlhf.Core.Losses;

using Torch = Rlhf.Torch.Torch;

/// <summary>RLOO hyperparameters; defaults from async_rlhf / TRL v0.9.4 (REFERENCE.md).</summary>
/// <param name="ClipRange">ε of the sequence-ratio clip (ε_low when <paramref name="ClipRangeHigh"/> is set).</param>
/// <param name="KlCoef">Coefficient of the sequence KL in the RLHF reward.</param>
/// <param name="NormalizeAdvantages">Whiten the advantages over the batch (current TRL option; off in async_rlhf).</param>
/// <param name="ClipRangeHigh">ε_high (current TRL); null = ε.</param>
public sealed record RlooSettings(double ClipRange = 0.2, double KlCoef = 0.05, bool NormalizeAdvantages = false, double? ClipRangeHigh = null);

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
    public static Tensor Advantages(Tensor rlhfReward, IReadOnlyList<int> groupIds, bool normalize = false)
    {
        using var scope = Torch.NewScope();
        var a = GroupAdvantages.LeaveOneOut(rlhfReward, groupIds);
        if (normalize) a = (a - a.Mean()) / (a.Std() + 1e-8);
        return a.MoveToOuter();
    }

    /// <summary>
    /// Sequence-level clipped loss (async_rlhf / TRL RLOO): <c>ρ = exp(Σ_t m lp − Σ_t m lp_old)</c>,
    /// <c>loss = mean(max(−A ρ, −A clip(ρ, 1 − ε, 1 + ε)))</c>.
    /// logprobs [B, T] (with grad), oldLogprobs [B, T], advantages [B], mask [B, T] → (scalar, stats).
    /// </summary>
    public static (Tensor Loss, PolicyLossStats Stats) Loss(Tensor logprobs, Tensor oldLogprobs, Tensor advantages, Tensor mask, RlooSettings settings)
    {
        Guard.Rank(logprobs, 2, nameof(logprobs));
        Guard.SameShape(logprobs, nameof(logprobs), oldLogprobs, nameof(oldLogprobs));
        Guard.SameShape(logprobs, nameof(logprobs), mask, nameof(mask));
        Guard.Vector(advantages, logprobs.Size(0), nameof(advantages));
        using var scope = Torch.NewScope();
        var diff = Masked.Sum(logprobs, mask, 1) - Masked.Sum(oldLogprobs, mask, 1);   // [B]
        var ratio = diff.Exp();
        var hi = settings.ClipRangeHigh ?? settings.ClipRange;
        var loss = Ppo.ClippedSurrogate(ratio, advantages, settings.ClipRange, hi).Mean();
        PolicyLossStats stats;
        using (Torch.NoGrad())
        {
            var l1 = -advantages * ratio;
            var l2 = -advantages * ratio.Clamp(1 - settings.ClipRange, 1 + hi);
            var ratioVar = ratio.Size(0) > 1 ? StatsMath.D(ratio.Var()) : 0.0;
            stats = new PolicyLossStats(StatsMath.D((diff.Square() * 0.5).Mean()), StatsMath.D(l2.Gt(l1).To(ratio.Dtype).Mean()),
                StatsMath.D(loss), StatsMath.D(ratio.Mean()), ratioVar);
        }
        return (loss.MoveToOuter(), stats);
    }
}
