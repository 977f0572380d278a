using Rlhf.Torch;

namespace Rlhf.Core.Rollouts;

using Torch = Rlhf.Torch.Torch;

/// <summary>Which per-token KL estimator to use (OpenRLHF <c>compute_approx_kl</c>; Schulman, "Approximating KL divergence").</summary>
public enum KlEstimator
{
    /// <summary>k1 = r = lp − lp_ref (unbiased, can be negative).</summary>
    K1,
    /// <summary>k2 = r²/2 (biased, ≥ 0).</summary>
    K2,
    /// <summary>k3 = exp(−r) − 1 + r (unbiased, ≥ 0); unclamped as TRL computes it (OpenRLHF's ±10 clamp is opt-in).</summary>
    K3,
}

/// <summary>
/// Per-token KL estimators between the policy and the reference, with r = lp − lp_ref (Schulman, "Approximating KL divergence";
/// TRL GRPOTrainer / PPOv2 compute them unclamped; OpenRLHF <c>compute_approx_kl</c> clamps every estimator to ±10).
/// Every function takes lp, lp_ref [B, T] and an optional mask [B, T] (masked positions give 0) and returns [B, T].
/// </summary>
public static class Kl
{
    /// <summary>The clamp OpenRLHF's <c>compute_approx_kl</c> applies to every estimator: ±10. Pass it where OpenRLHF is the anchor.</summary>
    public const double OpenRlhfClamp = 10.0;

    /// <summary>k1 = lp − lp_ref. [B, T] → [B, T].</summary>
    public static Tensor K1(Tensor logprobs, Tensor refLogprobs, Tensor? mask = null) => Estimate(logprobs, refLogprobs, KlEstimator.K1, mask);

    /// <summary>k2 = (lp − lp_ref)²/2. [B, T] → [B, T].</summary>
    public static Tensor K2(Tensor logprobs, Tensor refLogprobs, Tensor? mask = null) => Estimate(logprobs, refLogprobs, KlEstimator.K2, mask);

    /// <summary>
    /// k3 = exp(−r) − 1 + r = exp(lp_ref − lp) − (lp_ref − lp) − 1, r = lp − lp_ref, unclamped (TRL GRPOTrainer <c>per_token_kl</c>).
    /// [B, T] → [B, T].
    /// </summary>
    public static Tensor K3(Tensor logprobs, Tensor refLogprobs, Tensor? mask = null) => Estimate(logprobs, refLogprobs, KlEstimator.K3, mask);

    /// <summary>
    /// The chosen estimator, clamped to ±<paramref name="clamp"/> when given (OpenRLHF: <see cref="OpenRlhfClamp"/>; TRL: none).
    /// lp, lp_ref [B, T], mask [B, T] or null → [B, T].
    /// </summary>
    public static Tensor Estimate(Tensor logprobs, Tensor refLogprobs, KlEstimator estimator, Tensor? mask = null, double? clamp = null)
    {
        Guard.SameShape(logprobs, nameof(logprobs), refLogprobs, nameof(refLogprobs));
        using var scope = Torch.NewScope();
        var r = logprobs - refLogprobs;
        var k = estimator switch
        {
            KlEstimator.K1 => r,
            KlEstimator.K2 => r.Square() * 0.5,
            // exp(−r) − 1 + r = expm1(−r) + r: expm1 keeps precision when r is small.
            KlEstimator.K3 => (-r).Expm1() + r,
            _ => throw new ArgumentOutOfRangeException(nameof(estimator)),
        };
        if (clamp is { } c) k = k.Clamp(-c, c);
        if (mask is not null) k = Masked.Select(k, mask);
        return k.MoveToOuter();
    }
}
