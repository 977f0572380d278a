using Rlhf.Core.Rollouts;
using Rlhf.Torch;

namespace Rlhf.Core.Losses;

using Torch = Rlhf.Torch.Torch;

/// <summary>Whether the generator/trainer ratio is taken per token or per sequence.</summary>
public enum ImportanceSamplingLevel
{
    /// <summary>ρ_t = exp(lp_trainer,t − lp_generator,t).</summary>
    Token,
    /// <summary>ρ = exp(Σ_t m (lp_trainer − lp_generator)), shared by every token of the row.</summary>
    Sequence,
}

/// <summary>What happens to a ratio above <c>clip_max</c>.</summary>
public enum ImportanceSamplingMode
{
    /// <summary>Truncated IS (TIS): <c>min(ρ, clip_max)</c>.</summary>
    Truncate,
    /// <summary>Masked IS (MIS): <c>ρ · 1[ρ ≤ clip_max]</c> — the token or sequence is dropped.</summary>
    Mask,
}

/// <summary>Settings of the generator/trainer mismatch correction (TRL <c>vllm_importance_sampling_*</c>).</summary>
/// <param name="Level">Token or sequence ratio.</param>
/// <param name="Mode">Truncate or mask ratios above the cap.</param>
/// <param name="ClipMax">The cap on the ratio (TRL <c>vllm_importance_sampling_cap</c>, 2.0).</param>
public sealed record ImportanceSamplingSettings(
    ImportanceSamplingLevel Level = ImportanceSamplingLevel.Token,
    ImportanceSamplingMode Mode = ImportanceSamplingMode.Truncate,
    double ClipMax = 2.0);

/// <summary>Stats of the IS correction, under TRL GRPOTrainer's names.</summary>
/// <param name="LogpDifferenceMean"><c>sampling/sampling_logp_difference/mean</c>: masked mean |lp_trainer − lp_generator|.</param>
/// <param name="LogpDifferenceMax"><c>sampling/sampling_logp_difference/max</c>.</param>
/// <param name="RatioMin"><c>sampling/importance_sampling_ratio/min</c> (after the correction).</param>
/// <param name="RatioMean"><c>sampling/importance_sampling_ratio/mean</c>.</param>
/// <param name="RatioMax"><c>sampling/importance_sampling_ratio/max</c>.</param>
public sealed record ImportanceSamplingStats(double LogpDifferenceMean, double LogpDifferenceMax, double RatioMin, double RatioMean, double RatioMax) : IStats
{
    /// <inheritdoc />
    public IReadOnlyDictionary<string, double> ToMetrics() => new Dictionary<string, double>
    {
        ["sampling/sampling_logp_difference/mean"] = LogpDifferenceMean,
        ["sampling/sampling_logp_difference/max"] = LogpDifferenceMax,
        ["sampling/importance_sampling_ratio/min"] = RatioMin,
        ["sampling/importance_sampling_ratio/mean"] = RatioMean,
        ["sampling/importance_sampling_ratio/max"] = RatioMax,
    };
}

/// <summary>
/// Importance-sampling correction between the generator's logprobs (vLLM-style sampler) and the trainer's recomputed logprobs of the
/// same tokens, for the bias their mismatch puts into the ratios (Yao et al. 2025, "Your efficient RL framework secretly brings you
/// off-policy RL training"; TRL <c>vllm_importance_sampling_correction</c>). Multiply the per-token loss by the weights.
/// </summary>
public static class ImportanceSampling
{
    /// <summary>
    /// Weights <c>w = correct(exp(lp_trainer − lp_generator))</c> per token or per sequence; detached (constants in the loss);
    /// 1 at padding. trainerLogprobs [B, T], generatorLogprobs [B, T], mask [B, T] → (weights [B, T], stats).
    /// </summary>
    public static (Tensor Weights, ImportanceSamplingStats Stats) Weights(Tensor trainerLogprobs, Tensor generatorLogprobs, Tensor mask,
        ImportanceSamplingSettings settings)
    {
        Guard.Rank(trainerLogprobs, 2, nameof(trainerLogprobs));
        Guard.SameShape(trainerLogprobs, nameof(trainerLogprobs), generatorLogprobs, nameof(generatorLogprobs));
        Guard.SameShape(trainerLogprobs, nameof(trainerLogprobs), mask, nameof(mask));
        Guard.That(settings.ClipMax >= 1, $"clip_max must be ≥ 1 (a ratio of 1 must pass unchanged); got {settings.ClipMax}");
        using var scope = Torch.NewScope();
        using var _ = Torch.NoGrad();
        var m = Guard.BoolMask(mask);
        var diff = Masked.Select(trainerLogprobs.Detach() - generatorLogprobs.Detach(), m);     // 0 at padding
        var logRatio = settings.Level switch
        {
            ImportanceSamplingLevel.Token => diff,
            ImportanceSamplingLevel.Sequence => diff.Sum(1, keepDim: true).Expand(diff.Shape),
            _ => throw new ArgumentOutOfRangeException(nameof(settings)),
        };
        var ratio = logRatio.Exp();
        var w = settings.Mode switch
        {
            ImportanceSamplingMode.Truncate => ratio.Clamp(null, settings.ClipMax),
            ImportanceSamplingMode.Mask => Torch.Where(ratio.Gt(settings.ClipMax), Torch.ZerosLike(ratio), ratio),
            _ => throw new ArgumentOutOfRangeException(nameof(settings)),
        };
        w = Torch.Where(m, w, 1.0);
        var active = w.MaskedSelect(m);
        var absDiff = diff.Abs().MaskedSelect(m);
        var stats = active.NumEl == 0
            ? new ImportanceSamplingStats(0, 0, 1, 1, 1)
            : new ImportanceSamplingStats(StatsMath.D(absDiff.Mean()), StatsMath.D(absDiff.Max()), StatsMath.D(active.Min()), StatsMath.D(active.Mean()), StatsMath.D(active.Max()));
        return (w.Contiguous().MoveToOuter(), stats);
    }

    /// <summary>The corrected per-token loss <c>w · ℓ</c>. perTokenLoss [B, T], weights [B, T] → [B, T].</summary>
    public static Tensor Apply(Tensor perTokenLoss, Tensor weights)
    {
        Guard.SameShape(perTokenLoss, nameof(perTokenLoss), weights, nameof(weights));
        return perTokenLoss * weights;
    }
}
