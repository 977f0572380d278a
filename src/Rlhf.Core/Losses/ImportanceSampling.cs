using Rlhf.Core.Rollouts;
using Rlhf.Torch;

namespace Rlhf.Core.Losses;

using Torch = Rlhf.Torch.Torch;

/// <summary>Whether the generator/trainer ratio is taken per token or per sequence (TRL <c>vllm_importance_sampling_mode</c> prefix).</summary>
public enum ImportanceSamplingLevel
{
    /// <summary>ρ_t = exp(lp_trainer,t − lp_generator,t).</summary>
    Token,
    /// <summary>ρ = exp(Σ_t m (lp_trainer − lp_generator)), shared by every token of the row.</summary>
    Sequence,
}

/// <summary>What happens to a ratio outside [floor, cap] (TRL <c>vllm_importance_sampling_mode</c> suffix).</summary>
public enum ImportanceSamplingMode
{
    /// <summary>Truncated IS (TIS): <c>clamp(ρ, floor, cap)</c>.</summary>
    Truncate,
    /// <summary>Masked IS (MIS, OpenRLHF icepop): <c>ρ · 1[floor ≤ ρ ≤ cap]</c> — the token or sequence is dropped.</summary>
    Mask,
}

/// <summary>
/// Importance-sampling correction between the generator's logprobs (vLLM-style sampler, the behaviour policy μ) and the trainer's
/// logprobs of the same tokens, for the bias their mismatch puts into the ratios (Yao et al. 2025, "Your efficient RL framework
/// secretly brings you off-policy RL training"; TRL GRPOTrainer <c>vllm_importance_sampling_correction</c>). With the trainer's
/// logprobs taken at the start of the step this is also AReaL's decoupled-PPO behaviour weight π_prox/μ (arXiv 2505.24298).
/// Multiply the policy-gradient terms by the weights.
/// </summary>
public static class ImportanceSampling
{
    /// <summary>
    /// The corrected weight of each ratio: truncate <c>clamp(ρ, floor, cap)</c>; mask <c>ρ</c> where <c>floor ≤ ρ ≤ cap</c>, else 0
    /// (TRL clamps / masks above <c>vllm_importance_sampling_cap</c>; the floor is the matching lower bound, 0 = none).
    /// ratio [..] → [..].
    /// </summary>
    public static Tensor Correct(Tensor ratio, ImportanceSamplingMode mode, double cap, double floor)
    {
        CheckBounds(cap, floor);
        using var scope = Torch.NewScope();
        var w = mode switch
        {
            ImportanceSamplingMode.Truncate => ratio.Clamp(floor, cap),
            ImportanceSamplingMode.Mask => Torch.Where(ratio.Gt(cap).LogicalOr(ratio.Lt(floor)), Torch.ZerosLike(ratio), ratio),
            _ => throw new ArgumentOutOfRangeException(nameof(mode)),
        };
        return w.MoveToOuter();
    }

    /// <summary>
    /// Weights <c>w = Correct(exp(lp_trainer − lp_generator))</c> per token or per sequence, detached (constants in the loss), 1 at
    /// padding, and TRL's stats: <c>sampling/sampling_logp_difference/{mean,max}</c> of |lp_trainer − lp_generator| over response
    /// tokens, <c>sampling/importance_sampling_ratio/{min,mean,max}</c> of the corrected weights over response tokens (token level)
    /// or over sequences (sequence level, as TRL flattens its [B, 1] ratio). No host synchronisation.
    /// trainerLogprobs [B, T], generatorLogprobs [B, T], mask [B, T] (≥ 1 active token) → (weights [B, T], stats).
    /// </summary>
    public static (Tensor Weights, TensorStats Stats) Weights(Tensor trainerLogprobs, Tensor generatorLogprobs, Tensor mask,
        ImportanceSamplingLevel level, ImportanceSamplingMode mode, double cap, double floor)
    {
        Guard.Rank(trainerLogprobs, 2, nameof(trainerLogprobs));
        Guard.SameShape(trainerLogprobs, nameof(trainerLogprobs), generatorLogprobs, nameof(generatorLogprobs));
        Guard.SameShape(trainerLogprobs, nameof(trainerLogprobs), mask, nameof(mask));
        CheckBounds(cap, floor);
        using var scope = Torch.NewScope();
        using var _ = Torch.NoGrad();
        var m = Guard.BoolMask(mask);
        var diff = Masked.Select(trainerLogprobs.Detach() - generatorLogprobs.Detach(), m);     // 0 at padding
        Tensor w;
        TensorStats ratioStats;
        switch (level)
        {
            case ImportanceSamplingLevel.Token:
                w = Torch.Where(m, Correct(diff.Exp(), mode, cap, floor), 1.0);
                ratioStats = UnitStats(w, m);
                break;
            case ImportanceSamplingLevel.Sequence:
                var seq = Correct(diff.Sum(1, keepDim: true).Exp(), mode, cap, floor);     // [B, 1]
                w = Torch.Where(m, seq.Expand(diff.Shape), 1.0);
                ratioStats = UnitStats(seq, Torch.OnesLike(seq).Gt(0));
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(level));
        }
        var stats = LogpDifferenceStats(diff, m).AddRange(ratioStats);
        return (w.Contiguous().MoveToOuter(), stats.MoveToOuter());
    }

    /// <summary>
    /// Weights of one-unit rows (a sequence, or a preference pair whose log ratio is the sum over its two sequences) from their
    /// summed log ratios: <c>Correct(exp(logRatio))</c>, detached, with <c>sampling/importance_sampling_ratio/{min,mean,max}</c> over
    /// the units. logRatio [N] → (weights [N, 1], stats).
    /// </summary>
    public static (Tensor Weights, TensorStats Stats) UnitWeights(Tensor logRatio, ImportanceSamplingMode mode, double cap, double floor)
    {
        Guard.Rank(logRatio, 1, nameof(logRatio));
        CheckBounds(cap, floor);
        using var scope = Torch.NewScope();
        using var _ = Torch.NoGrad();
        var w = Correct(logRatio.Detach().Exp(), mode, cap, floor).Unsqueeze(1);
        return (w.Contiguous().MoveToOuter(), UnitStats(w, Torch.OnesLike(w).Gt(0)).MoveToOuter());
    }

    /// <summary>
    /// TRL's <c>sampling/sampling_logp_difference/{mean,max}</c>: |lp_trainer − lp_generator| over the active tokens.
    /// diff [B, T] (0 at padding), mask [B, T] → stats.
    /// </summary>
    public static TensorStats LogpDifferenceStats(Tensor diff, Tensor mask)
    {
        var m = Guard.BoolMask(mask);
        var abs = diff.Abs();
        return new TensorStats()
            .Add("sampling/sampling_logp_difference/mean", Masked.Mean(abs, m))
            .Add("sampling/sampling_logp_difference/max", Torch.Where(m, abs, 0.0).Max());
    }

    /// <summary>The corrected per-token loss <c>w · ℓ</c>. perTokenLoss [B, T], weights [B, T] → [B, T].</summary>
    public static Tensor Apply(Tensor perTokenLoss, Tensor weights)
    {
        Guard.SameShape(perTokenLoss, nameof(perTokenLoss), weights, nameof(weights));
        return perTokenLoss * weights;
    }

    private static TensorStats UnitStats(Tensor w, Tensor active)
    {
        // min and max over the active entries without a host round trip: fill inactive ones with +∞ / −∞.
        var m = active.Expand(w.Shape);
        return new TensorStats()
            .Add("sampling/importance_sampling_ratio/min", Torch.Where(m, w, double.PositiveInfinity).Min())
            .Add("sampling/importance_sampling_ratio/mean", Masked.Mean(w, m))
            .Add("sampling/importance_sampling_ratio/max", Torch.Where(m, w, double.NegativeInfinity).Max());
    }

    private static void CheckBounds(double cap, double floor)
    {
        Guard.That(cap >= 1, $"the importance-sampling cap must be ≥ 1 (a ratio of 1 must pass unchanged); got {cap}");
        Guard.That(floor is >= 0 and <= 1, $"the importance-sampling floor must be in [0, 1] (a ratio of 1 must pass unchanged); got {floor}");
    }
}

/// <summary>
/// The off-policy correction an objective applies to its policy-gradient terms: importance-sampling weights between the trainer's
/// proximal logprobs (π_prox: the policy at the start of the step, TRL's <c>old_per_token_logps</c>) and the generator's (μ),
/// per token or per sequence, truncated or masked to [floor, cap]. AReaL's decoupled PPO (arXiv 2505.24298) is the token level
/// with mask mode and cap <c>behav_imp_weight_cap</c>; TRL's defaults are token level, truncate, cap 3.
/// </summary>
/// <param name="level">Token or sequence ratio.</param>
/// <param name="mode">Truncate or mask ratios outside [floor, cap].</param>
/// <param name="cap">The upper bound C_max (≥ 1).</param>
/// <param name="floor">The lower bound C_min (in [0, 1]; 0 = none).</param>
public sealed class ImportanceCorrection(ImportanceSamplingLevel level, ImportanceSamplingMode mode, double cap, double floor)
{
    /// <summary>Token or sequence ratio.</summary>
    public ImportanceSamplingLevel Level { get; } = level;

    /// <summary>Truncate or mask.</summary>
    public ImportanceSamplingMode Mode { get; } = mode;

    /// <summary>The upper bound C_max.</summary>
    public double Cap { get; } = cap >= 1 ? cap : throw new ArgumentException($"the importance-sampling cap must be ≥ 1; got {cap}");

    /// <summary>The lower bound C_min.</summary>
    public double Floor { get; } = floor is >= 0 and <= 1 ? floor : throw new ArgumentException($"the importance-sampling floor must be in [0, 1]; got {floor}");
}
