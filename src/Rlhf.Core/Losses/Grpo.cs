using Rlhf.Core.Advantages;
using Rlhf.Core.Rollouts;
using Rlhf.Torch;

namespace Rlhf.Core.Losses;

using Torch = Rlhf.Torch.Torch;

/// <summary>Stats of one GRPO micro-batch, under TRL GRPOTrainer's names.</summary>
/// <param name="Loss"><c>loss</c>.</param>
/// <param name="Kl"><c>kl</c>: masked mean k3, or null when β = 0 (TRL logs it only then).</param>
/// <param name="ClipRatioLow"><c>clip_ratio/low_mean</c>: tokens with ρ &lt; 1 − ε_low and A &lt; 0.</param>
/// <param name="ClipRatioHigh"><c>clip_ratio/high_mean</c>: tokens with ρ &gt; 1 + ε_high and A &gt; 0.</param>
/// <param name="ClipRatioRegion"><c>clip_ratio/region_mean</c>: either.</param>
public sealed record GrpoStats(double Loss, double? Kl, double ClipRatioLow, double ClipRatioHigh, double ClipRatioRegion) : IStats
{
    /// <inheritdoc />
    public IReadOnlyDictionary<string, double> ToMetrics()
    {
        var m = new Dictionary<string, double>
        {
            ["loss"] = Loss,
            ["clip_ratio/low_mean"] = ClipRatioLow,
            ["clip_ratio/high_mean"] = ClipRatioHigh,
            ["clip_ratio/region_mean"] = ClipRatioRegion,
        };
        if (Kl is { } k) m["kl"] = k;
        return m;
    }
}

/// <summary>Group relative policy optimisation (Shao et al. 2024, arXiv 2402.03300) as TRL's GRPOTrainer computes it.</summary>
public static class Grpo
{
    /// <summary>
    /// Group advantages <c>(r − mean_group) / (std + 1e-4)</c> with the chosen scaling (see <see cref="GroupAdvantages.Grpo"/>).
    /// rewards [B], groupIds int[B] → [B].
    /// </summary>
    public static Tensor Advantages(Tensor rewards, IReadOnlyList<int> groupIds, GroupScaling scaling) =>
        GroupAdvantages.Grpo(rewards, groupIds, scaling);

    /// <summary>
    /// The clipped token terms <c>−min(ρA, clip(ρ, 1 − ε_low, 1 + ε_high)A)</c>, <c>ρ = exp(lp − lp_old)</c>.
    /// <paramref name="oldLogprobs"/> null means one update per generation: lp_old = lp.detach() (ρ = 1, gradient A; TRL).
    /// logprobs [B, T], oldLogprobs [B, T] or null, advantages [B] → [B, T].
    /// </summary>
    public static Tensor PolicyTerms(Tensor logprobs, Tensor? oldLogprobs, Tensor advantages, double epsilonLow, double epsilonHigh)
    {
        Guard.Rank(logprobs, 2, nameof(logprobs));
        Guard.Vector(advantages, logprobs.Size(0), nameof(advantages));
        if (oldLogprobs is not null) Guard.SameShape(logprobs, nameof(logprobs), oldLogprobs, nameof(oldLogprobs));
        using var scope = Torch.NewScope();
        var old = oldLogprobs ?? logprobs.Detach();
        var ratio = (logprobs - old).Exp();
        return Ppo.ClippedSurrogate(ratio, advantages.Unsqueeze(1), epsilonLow, epsilonHigh).MoveToOuter();
    }

    /// <summary>
    /// The KL penalty terms <c>β · k3(lp, lp_ref)</c> with TRL's unclamped k3 <c>exp(lp_ref − lp) − (lp_ref − lp) − 1</c>
    /// (GRPOTrainer <c>per_token_kl</c>). logprobs, refLogprobs [B, T] → [B, T].
    /// </summary>
    public static Tensor KlTerms(Tensor logprobs, Tensor refLogprobs, double beta)
    {
        using var scope = Torch.NewScope();
        return (Kl.K3(logprobs, refLogprobs) * beta).MoveToOuter();
    }

    /// <summary>
    /// Per-token GRPO loss: <see cref="PolicyTerms"/> plus <see cref="KlTerms"/> when β ≠ 0.
    /// logprobs [B, T], oldLogprobs [B, T] or null, advantages [B], refLogprobs [B, T] (needed when β ≠ 0) → [B, T].
    /// </summary>
    public static Tensor PerTokenLoss(Tensor logprobs, Tensor? oldLogprobs, Tensor advantages, double epsilonLow, double epsilonHigh,
        double beta, Tensor? refLogprobs)
    {
        Guard.That(beta == 0 || refLogprobs is not null, "GRPO with β ≠ 0 needs reference logprobs");
        using var scope = Torch.NewScope();
        var loss = PolicyTerms(logprobs, oldLogprobs, advantages, epsilonLow, epsilonHigh);
        if (beta != 0) loss = loss + KlTerms(logprobs, refLogprobs!, beta);
        return loss.MoveToOuter();
    }

    /// <summary>
    /// TRL's clip statistics as tensors: <c>clip_ratio/{low,high,region}_mean</c> (fractions of active tokens whose ratio is clipped
    /// where it matters: below 1 − ε_low with A &lt; 0, above 1 + ε_high with A &gt; 0), and <c>kl</c> (masked mean unclamped k3)
    /// when <paramref name="refLogprobs"/> is given. logprobs, oldLogprobs [B, T], advantages [B, 1] or [B, T], mask [B, T] → stats.
    /// </summary>
    public static TensorStats ClipStats(Tensor logprobs, Tensor oldLogprobs, Tensor advantages, Tensor mask, double epsilonLow, double epsilonHigh,
        Tensor? refLogprobs)
    {
        using var scope = Torch.NewScope();
        using var _ = Torch.NoGrad();
        var ratio = Masked.Select(logprobs - oldLogprobs, mask).Exp();
        var low = ratio.Lt(1 - epsilonLow).LogicalAnd(advantages.Lt(0));
        var high = ratio.Gt(1 + epsilonHigh).LogicalAnd(advantages.Gt(0));
        Tensor Frac(Tensor b) => Masked.Mean(b.To(logprobs.Dtype), mask);
        var stats = new TensorStats()
            .Add("clip_ratio/low_mean", Frac(low))
            .Add("clip_ratio/high_mean", Frac(high))
            .Add("clip_ratio/region_mean", Frac(low.LogicalOr(high)));
        if (refLogprobs is not null) stats.Add("kl", Masked.Mean(Kl.K3(logprobs, refLogprobs), mask));
        return stats.MoveToOuter();
    }

    /// <summary>
    /// The GRPO loss of one micro-batch: <see cref="PerTokenLoss"/> reduced by <see cref="Aggregation.Reduce"/>, with TRL's
    /// clip-ratio and KL stats read to the host once. logprobs [B, T], oldLogprobs [B, T] or null, advantages [B], mask [B, T],
    /// refLogprobs [B, T] or null → (scalar, stats).
    /// </summary>
    public static (Tensor Loss, GrpoStats Stats) Loss(Tensor logprobs, Tensor? oldLogprobs, Tensor advantages, Tensor mask, Tensor? refLogprobs,
        double epsilonLow, double epsilonHigh, double beta, LossAggregation aggregation, long? maxCompletionLength = null, double? globalActiveTokens = null)
    {
        Guard.SameShape(logprobs, nameof(logprobs), mask, nameof(mask));
        using var scope = Torch.NewScope();
        var perToken = PerTokenLoss(logprobs, oldLogprobs, advantages, epsilonLow, epsilonHigh, beta, refLogprobs);
        var loss = Aggregation.Reduce(perToken, mask, aggregation, maxCompletionLength, globalActiveTokens);
        var t = ClipStats(logprobs, oldLogprobs ?? logprobs, advantages.Unsqueeze(1), mask, epsilonLow, epsilonHigh, beta != 0 ? refLogprobs : null);
        var v = beta != 0
            ? StatsMath.Read(loss, t["clip_ratio/low_mean"], t["clip_ratio/high_mean"], t["clip_ratio/region_mean"], t["kl"])
            : StatsMath.Read(loss, t["clip_ratio/low_mean"], t["clip_ratio/high_mean"], t["clip_ratio/region_mean"]);
        return (loss.MoveToOuter(), new GrpoStats(v[0], beta != 0 ? v[4] : null, v[1], v[2], v[3]));
    }
}
