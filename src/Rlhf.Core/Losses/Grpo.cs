using Rlhf.Core.Advantages;
using Rlhf.Core.Rollouts;
using Rlhf.Torch;

namespace Rlhf.Core.Losses;

using Torch = Rlhf.Torch.Torch;

/// <summary>How GRPO reduces its per-token loss to a scalar (TRL <c>loss_type</c>).</summary>
public enum GrpoAggregation
{
    /// <summary>Mean over each sequence's tokens, then mean over sequences (the original GRPO; length-biased).</summary>
    Grpo,
    /// <summary>Mean over all active tokens of the local batch.</summary>
    Bnpo,
    /// <summary>Sum over tokens divided by B · max_completion_length (Dr. GRPO, arXiv 2503.20783).</summary>
    DrGrpo,
    /// <summary>Sum over tokens divided by the active tokens of the whole global batch (DAPO, arXiv 2503.14476; TRL's current default).</summary>
    Dapo,
}

/// <summary>GRPO hyperparameters; defaults from current TRL (REFERENCE.md).</summary>
/// <param name="EpsilonLow">Lower clip ε_low: ratios below 1 − ε_low are clipped.</param>
/// <param name="EpsilonHigh">Upper clip ε_high (DAPO's clip-higher): ratios above 1 + ε_high are clipped.</param>
/// <param name="Beta">Weight β of the k3 KL term in the per-token loss (0 = no reference model; 0.04 in early TRL).</param>
/// <param name="Aggregation">How the per-token loss is reduced.</param>
/// <param name="Scaling">How group-centred rewards are scaled.</param>
/// <param name="MaxCompletionLength">The max_completion_length that Dr. GRPO divides by; null = the tensors' T.</param>
public sealed record GrpoSettings(
    double EpsilonLow = 0.2,
    double EpsilonHigh = 0.2,
    double Beta = 0.0,
    GrpoAggregation Aggregation = GrpoAggregation.Dapo,
    GroupScaling Scaling = GroupScaling.Group,
    long? MaxCompletionLength = null);

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
    public static Tensor Advantages(Tensor rewards, IReadOnlyList<int> groupIds, GroupScaling scaling = GroupScaling.Group) =>
        GroupAdvantages.Grpo(rewards, groupIds, scaling);

    /// <summary>
    /// Per-token GRPO loss: <c>ρ = exp(lp − lp_old)</c>, <c>ℓ = −min(ρA, clip(ρ, 1 − ε_low, 1 + ε_high)A) + β·k3(lp, lp_ref)</c>.
    /// <paramref name="oldLogprobs"/> null means one update per generation: lp_old = lp.detach() (ρ = 1, gradient A).
    /// logprobs [B, T], oldLogprobs [B, T] or null, advantages [B], refLogprobs [B, T] (needed when β ≠ 0) → [B, T].
    /// </summary>
    public static Tensor PerTokenLoss(Tensor logprobs, Tensor? oldLogprobs, Tensor advantages, GrpoSettings settings, Tensor? refLogprobs = null)
    {
        Guard.Rank(logprobs, 2, nameof(logprobs));
        Guard.Vector(advantages, logprobs.Size(0), nameof(advantages));
        if (oldLogprobs is not null) Guard.SameShape(logprobs, nameof(logprobs), oldLogprobs, nameof(oldLogprobs));
        Guard.That(settings.Beta == 0 || refLogprobs is not null, "GRPO with β ≠ 0 needs reference logprobs");
        using var scope = Torch.NewScope();
        var old = oldLogprobs ?? logprobs.Detach();
        var ratio = (logprobs - old).Exp();
        var loss = Ppo.ClippedSurrogate(ratio, advantages.Unsqueeze(1), settings.EpsilonLow, settings.EpsilonHigh);
        if (settings.Beta != 0) loss = loss + Kl.K3(logprobs, refLogprobs!) * settings.Beta;
        return loss.MoveToOuter();
    }

    /// <summary>
    /// Reduces a per-token loss (TRL <c>loss_type</c>): <c>grpo</c> = mean_b(Σ_t m ℓ / max(Σ_t m, 1));
    /// <c>bnpo</c> = Σ m ℓ / max(Σ m, 1); <c>dr_grpo</c> = Σ m ℓ / (B · max_len); <c>dapo</c> = Σ m ℓ / N, with N the active tokens of
    /// the whole global batch (<paramref name="globalActiveTokens"/>; the local count when null).
    /// perTokenLoss [B, T], mask [B, T] → scalar.
    /// </summary>
    public static Tensor Aggregate(Tensor perTokenLoss, Tensor mask, GrpoAggregation aggregation, long? maxCompletionLength = null, double? globalActiveTokens = null)
    {
        Guard.Rank(perTokenLoss, 2, nameof(perTokenLoss));
        Guard.SameShape(perTokenLoss, nameof(perTokenLoss), mask, nameof(mask));
        using var scope = Torch.NewScope();
        var m = Guard.BoolMask(mask).To(perTokenLoss.Dtype);
        var masked = Masked.Select(perTokenLoss, mask);
        var loss = aggregation switch
        {
            GrpoAggregation.Grpo => (masked.Sum(1) / m.Sum(1).Clamp(1.0, null)).Mean(),
            GrpoAggregation.Bnpo => masked.Sum() / m.Sum().Clamp(1.0, null),
            GrpoAggregation.DrGrpo => masked.Sum() / (perTokenLoss.Size(0) * (double)(maxCompletionLength ?? perTokenLoss.Size(1))),
            GrpoAggregation.Dapo => masked.Sum() / (globalActiveTokens ?? Math.Max(1.0, m.Sum().Item())),
            _ => throw new ArgumentOutOfRangeException(nameof(aggregation)),
        };
        return loss.MoveToOuter();
    }

    /// <summary>
    /// The GRPO loss of one micro-batch: <see cref="PerTokenLoss"/> reduced by <see cref="Aggregate"/>, with TRL's clip-ratio and
    /// KL stats. logprobs [B, T], oldLogprobs [B, T] or null, advantages [B], mask [B, T], refLogprobs [B, T] or null → (scalar, stats).
    /// </summary>
    public static (Tensor Loss, GrpoStats Stats) Loss(Tensor logprobs, Tensor? oldLogprobs, Tensor advantages, Tensor mask, GrpoSettings settings,
        Tensor? refLogprobs = null, double? globalActiveTokens = null)
    {
        Guard.SameShape(logprobs, nameof(logprobs), mask, nameof(mask));
        using var scope = Torch.NewScope();
        var perToken = PerTokenLoss(logprobs, oldLogprobs, advantages, settings, refLogprobs);
        var loss = Aggregate(perToken, mask, settings.Aggregation, settings.MaxCompletionLength, globalActiveTokens);
        GrpoStats stats;
        using (Torch.NoGrad())
        {
            var old = oldLogprobs ?? logprobs;
            var ratio = (logprobs - old).Exp();
            var a = advantages.Unsqueeze(1);
            var low = ratio.Lt(1 - settings.EpsilonLow).LogicalAnd(a.Lt(0));
            var high = ratio.Gt(1 + settings.EpsilonHigh).LogicalAnd(a.Gt(0));
            double Frac(Tensor b) => StatsMath.D(Masked.Mean(b.To(logprobs.Dtype), mask));
            double? kl = settings.Beta != 0 ? StatsMath.D(Masked.Mean(Kl.K3(logprobs, refLogprobs!), mask)) : null;
            stats = new GrpoStats(StatsMath.D(loss), kl, Frac(low), Frac(high), Frac(low.LogicalOr(high)));
        }
        return (loss.MoveToOuter(), stats);
    }
}
