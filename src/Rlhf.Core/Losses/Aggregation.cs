using Rlhf.Core.Rollouts;
using Rlhf.Torch;

namespace Rlhf.Core.Losses;

using Torch = Rlhf.Torch.Torch;

/// <summary>
/// How per-unit loss terms (per token, or per sequence or pair as one unit per row) reduce to a scalar — TRL GRPOTrainer's
/// <c>loss_type</c>, which every objective here shares. For one-unit rows (<c>[N, 1]</c>, all active) every choice but
/// <see cref="DrGrpo"/> is the plain mean over rows.
/// </summary>
public enum LossAggregation
{
    /// <summary>Mean over each row's active units, then mean over rows (the original GRPO; length-biased).</summary>
    Grpo,
    /// <summary>Mean over all active units of the local batch (TRL <c>masked_mean</c>, PPOv2 and OpenRLHF's token-level loss).</summary>
    Bnpo,
    /// <summary>Sum over units divided by N · max_completion_length (Dr. GRPO, arXiv 2503.20783).</summary>
    DrGrpo,
    /// <summary>Sum over units divided by the active units of the whole global batch (DAPO, arXiv 2503.14476; TRL's current default).</summary>
    Dapo,
}

/// <summary>The explicit reduction of per-unit loss terms (rlax/optax style: the loss returns terms, the caller chooses the reduction).</summary>
public static class Aggregation
{
    /// <summary>
    /// Reduces terms (TRL <c>loss_type</c>): <c>grpo</c> = mean_n(Σ_u m ℓ / max(Σ_u m, 1)); <c>bnpo</c> = Σ m ℓ / max(Σ m, 1);
    /// <c>dr_grpo</c> = Σ m ℓ / (N · max_len); <c>dapo</c> = Σ m ℓ / A, with A the active units of the whole global batch
    /// (<paramref name="globalActiveUnits"/>; the local count, at least 1, when null). No host synchronisation.
    /// terms [N, U], mask [N, U] → scalar.
    /// </summary>
    public static Tensor Reduce(Tensor terms, Tensor mask, LossAggregation aggregation, long? maxCompletionLength = null, double? globalActiveUnits = null)
    {
        Guard.Rank(terms, 2, nameof(terms));
        Guard.SameShape(terms, nameof(terms), mask, nameof(mask));
        using var scope = Torch.NewScope();
        var m = Guard.BoolMask(mask).To(terms.Dtype);
        var masked = Masked.Select(terms, mask);
        var loss = aggregation switch
        {
            LossAggregation.Grpo => (masked.Sum(1) / m.Sum(1).Clamp(1.0, null)).Mean(),
            LossAggregation.Bnpo => masked.Sum() / m.Sum().Clamp(1.0, null),
            LossAggregation.DrGrpo => masked.Sum() / (terms.Size(0) * (double)(maxCompletionLength ?? terms.Size(1))),
            LossAggregation.Dapo => globalActiveUnits is { } n ? masked.Sum() / n : masked.Sum() / m.Sum().Clamp(1.0, null),
            _ => throw new ArgumentOutOfRangeException(nameof(aggregation)),
        };
        return loss.MoveToOuter();
    }
}
