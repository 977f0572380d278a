using Rlhf.Core.Advantages;
using Rlhf.Core.Rollouts;
using Rlhf.Torch;

namespace Rlhf.Core.Losses;

using Torch = Rlhf.Torch.Torch;

/// <summary>Stats of the PPO policy loss on one micro-batch.</summary>
/// <param name="ApproxKl"><c>policy/approxkl_avg</c>: masked mean of ½(lp − lp_old)².</param>
/// <param name="ClipFrac"><c>policy/clipfrac_avg</c>: fraction of tokens where the clipped term is the larger loss.</param>
/// <param name="Loss"><c>loss/policy_avg</c>: the policy loss.</param>
/// <param name="Ratio"><c>val/ratio</c>: mean token ratio.</param>
/// <param name="RatioVar"><c>val/ratio_var</c>: variance of the token ratios (over micro-batches after <see cref="PpoStats.Average"/>).</param>
public sealed record PolicyLossStats(double ApproxKl, double ClipFrac, double Loss, double Ratio, double RatioVar) : IStats
{
    /// <inheritdoc />
    public IReadOnlyDictionary<string, double> ToMetrics() => new Dictionary<string, double>
    {
        ["policy/approxkl_avg"] = ApproxKl,
        ["policy/clipfrac_avg"] = ClipFrac,
        ["loss/policy_avg"] = Loss,
        ["val/ratio"] = Ratio,
        ["val/ratio_var"] = RatioVar,
    };
}

/// <summary>Stats of the PPO value loss on one micro-batch.</summary>
/// <param name="Loss"><c>loss/value_avg</c>.</param>
/// <param name="ClipFrac"><c>val/clipfrac_avg</c>: fraction of tokens where the clipped value error is the larger.</param>
public sealed record ValueLossStats(double Loss, double ClipFrac) : IStats
{
    /// <inheritdoc />
    public IReadOnlyDictionary<string, double> ToMetrics() => new Dictionary<string, double>
    {
        ["loss/value_avg"] = Loss,
        ["val/clipfrac_avg"] = ClipFrac,
    };
}

/// <summary>Stats of one PPO micro-batch step, under TRL PPOv2's names.</summary>
/// <param name="Policy">Policy-loss stats.</param>
/// <param name="Value">Value-loss stats.</param>
/// <param name="EntropyAvg"><c>policy/entropy_avg</c>: masked mean token entropy, or null when no entropy was given.</param>
public sealed record PpoStats(PolicyLossStats Policy, ValueLossStats Value, double? EntropyAvg) : IStats
{
    /// <inheritdoc />
    public IReadOnlyDictionary<string, double> ToMetrics()
    {
        var m = new Dictionary<string, double>(Policy.ToMetrics());
        foreach (var kv in Value.ToMetrics()) m[kv.Key] = kv.Value;
        if (EntropyAvg is { } e) m["policy/entropy_avg"] = e;
        return m;
    }

    /// <summary>
    /// Averages micro-batch stats as TRL logs them after an update: every field is the mean over micro-batches, and
    /// <c>val/ratio_var</c> is the variance (Bessel; 0 for one micro-batch) of the micro-batch mean ratios.
    /// </summary>
    public static PpoStats Average(IReadOnlyList<PpoStats> stats)
    {
        Guard.That(stats.Count > 0, "no stats to average");
        double M(Func<PpoStats, double> f) => stats.Average(f);
        var ratios = stats.Select(s => s.Policy.Ratio).ToArray();
        var mean = ratios.Average();
        var var = ratios.Length > 1 ? ratios.Sum(r => (r - mean) * (r - mean)) / (ratios.Length - 1) : 0.0;
        double? ent = stats.All(s => s.EntropyAvg.HasValue) ? M(s => s.EntropyAvg!.Value) : null;
        return new PpoStats(
            new PolicyLossStats(M(s => s.Policy.ApproxKl), M(s => s.Policy.ClipFrac), M(s => s.Policy.Loss), mean, var),
            new ValueLossStats(M(s => s.Value.Loss), M(s => s.Value.ClipFrac)),
            ent);
    }
}

/// <summary>
/// Proximal policy optimisation (Schulman et al. 2017, arXiv 1707.06347) as TRL PPOv2 implements it for RLHF: token-level
/// ratios, GAE on KL-shaped rewards, whitened advantages, clipped value loss.
/// </summary>
public static class Ppo
{
    /// <summary>
    /// The clipped surrogate per element (rlax <c>clipped_surrogate_pg_loss</c>; OpenRLHF <c>PolicyLoss</c>):
    /// <c>ℓ = max(−A ρ, −A clip(ρ, 1 − ε_low, 1 + ε_high))</c>; with dual clip c,
    /// <c>ℓ = min(ℓ, −c A)</c> where A &lt; 0. ratio [..], advantages [..] (broadcast) → [..].
    /// </summary>
    public static Tensor ClippedSurrogate(Tensor ratio, Tensor advantages, double epsilonLow, double epsilonHigh, double? dualClip = null)
    {
        Guard.That(epsilonLow >= 0 && epsilonHigh >= 0, $"clip ranges must be ≥ 0; got {epsilonLow}, {epsilonHigh}");
        using var scope = Torch.NewScope();
        var l1 = -advantages * ratio;
        var l2 = -advantages * ratio.Clamp(1 - epsilonLow, 1 + epsilonHigh);
        var loss = l1.Maximum(l2);
        if (dualClip is { } c)
        {
            Guard.That(c > 1, $"dual clip must be > 1; got {c}");
            // For A < 0 the unclipped loss −Aρ grows without bound in ρ; dual clip caps it at −cA.
            loss = Torch.Where(advantages.Lt(0), loss.Minimum(-advantages * c), loss);
        }
        return loss.MoveToOuter();
    }

    /// <summary>
    /// PPO advantages and returns (TRL PPOv2): optional reward whitening over <paramref name="valueMask"/> (shift_mean = false,
    /// then 0 outside it), GAE with discount <paramref name="gamma"/> and <paramref name="lambda"/>, <c>returns = A + V</c>, then
    /// advantages whitened over <paramref name="responseMask"/> and 0 at padding.
    /// rewards [B, T], values [B, T], responseMask [B, T], valueMask [B, T] → (advantages [B, T], returns [B, T]).
    /// </summary>
    public static AdvantageResult Advantages(Tensor rewards, Tensor values, Tensor responseMask, Tensor valueMask, double gamma, double lambda, bool whitenRewards)
    {
        using var scope = Torch.NewScope();
        var r = whitenRewards ? Masked.Whiten(rewards, valueMask, shiftMean: false) : rewards;
        var gae = Gae.Compute(r, values, gamma, lambda);
        var adv = Masked.Whiten(gae.Advantages, responseMask);
        return new AdvantageResult(adv.MoveToOuter(), gae.Returns.MoveToOuter());
    }

    /// <summary>
    /// Per-token clipped policy terms (TRL PPOv2): <c>ρ = exp(lp − lp_old)</c> (1 at padding, so junk there cannot overflow),
    /// <c>ℓ_t = max(−A ρ, −A clip(ρ, 1 ± ε))</c> (dual clip optional), with the stats <c>policy/approxkl_avg</c> (masked mean of
    /// ½(lp − lp_old)²), <c>policy/clipfrac_avg</c>, <c>val/ratio</c> and <c>val/ratio_var</c> (Bessel variance of the token ratios;
    /// 0 for one token) as tensors. logprobs [B, T] (with grad), oldLogprobs, advantages, mask [B, T] → (terms [B, T], stats).
    /// </summary>
    public static (Tensor Terms, TensorStats Stats) PolicyTerms(Tensor logprobs, Tensor oldLogprobs, Tensor advantages, Tensor mask,
        double clipRange, double? dualClip)
    {
        Guard.Rank(logprobs, 2, nameof(logprobs));
        Guard.SameShape(logprobs, nameof(logprobs), oldLogprobs, nameof(oldLogprobs));
        Guard.SameShape(logprobs, nameof(logprobs), advantages, nameof(advantages));
        Guard.SameShape(logprobs, nameof(logprobs), mask, nameof(mask));
        using var scope = Torch.NewScope();
        var diff = Masked.Select(logprobs - oldLogprobs, mask);
        var ratio = diff.Exp();
        var terms = ClippedSurrogate(ratio, advantages, clipRange, clipRange, dualClip);
        var stats = new TensorStats();
        using (Torch.NoGrad())
        {
            var unclipped = -advantages * ratio;
            var clipped = -advantages * ratio.Clamp(1 - clipRange, 1 + clipRange);
            var n = Masked.Count(ratio, mask);
            var ratioMean = Masked.Mean(ratio, mask);
            var ratioVar = Masked.Sum((ratio - ratioMean).Square(), mask) / (n - 1).Clamp(1.0, null);
            stats.Add("policy/approxkl_avg", Masked.Mean(diff.Square() * 0.5, mask))
                .Add("policy/clipfrac_avg", Masked.Mean(clipped.Gt(unclipped).To(logprobs.Dtype), mask))
                .Add("val/ratio", ratioMean)
                .Add("val/ratio_var", ratioVar);
        }
        return (terms.MoveToOuter(), stats.MoveToOuter());
    }

    /// <summary>
    /// Clipped policy loss (TRL PPOv2): <see cref="PolicyTerms"/> reduced by the masked mean, <c>pg = masked_mean(ℓ)</c>.
    /// logprobs [B, T] (with grad), oldLogprobs [B, T], advantages [B, T], mask [B, T] (true = response token) → (scalar, stats).
    /// Stats use masked means (TRL's approx-KL averages over padding too, where both logprobs are the same constant) and are
    /// read to the host once.
    /// </summary>
    public static (Tensor Loss, PolicyLossStats Stats) PolicyLoss(Tensor logprobs, Tensor oldLogprobs, Tensor advantages, Tensor mask,
        double clipRange, double? dualClip)
    {
        using var scope = Torch.NewScope();
        var (terms, t) = PolicyTerms(logprobs, oldLogprobs, advantages, mask, clipRange, dualClip);
        var loss = Aggregation.Reduce(terms, mask, LossAggregation.Bnpo);
        var v = StatsMath.Read(t["policy/approxkl_avg"], t["policy/clipfrac_avg"], loss, t["val/ratio"], t["val/ratio_var"]);
        return (loss.MoveToOuter(), new PolicyLossStats(v[0], v[1], v[2], v[3], v[4]));
    }

    /// <summary>
    /// Clipped value loss (TRL PPOv2): <c>v_clip = v_old + clip(v − v_old, −ε_v, ε_v)</c>,
    /// <c>vf = ½ masked_mean(max((v − ret)², (v_clip − ret)²))</c> over <paramref name="valueMask"/> (<c>¬padding_mask_p1</c>), with
    /// <c>loss/value_avg</c> and <c>val/clipfrac_avg</c> as tensors.
    /// values [B, T] (with grad), oldValues [B, T], returns [B, T], valueMask [B, T] → (scalar, stats).
    /// </summary>
    public static (Tensor Loss, TensorStats Stats) ValueTerms(Tensor values, Tensor oldValues, Tensor returns, Tensor valueMask, double vfClipRange)
    {
        Guard.Rank(values, 2, nameof(values));
        Guard.SameShape(values, nameof(values), oldValues, nameof(oldValues));
        Guard.SameShape(values, nameof(values), returns, nameof(returns));
        Guard.SameShape(values, nameof(values), valueMask, nameof(valueMask));
        using var scope = Torch.NewScope();
        var vClipped = oldValues + (values - oldValues).Clamp(-vfClipRange, vfClipRange);
        var l1 = (values - returns).Square();
        var l2 = (vClipped - returns).Square();
        var loss = Masked.Mean(l1.Maximum(l2), valueMask) * 0.5;
        var stats = new TensorStats().Add("loss/value_avg", loss).Add("val/clipfrac_avg", Masked.Mean(l2.Gt(l1).To(values.Dtype), valueMask));
        return (loss.MoveToOuter(), stats.MoveToOuter());
    }

    /// <summary>The clipped value loss of <see cref="ValueTerms"/> with its stats read once. Shapes as there → (scalar, stats).</summary>
    public static (Tensor Loss, ValueLossStats Stats) ValueLoss(Tensor values, Tensor oldValues, Tensor returns, Tensor valueMask, double vfClipRange)
    {
        using var scope = Torch.NewScope();
        var (loss, t) = ValueTerms(values, oldValues, returns, valueMask, vfClipRange);
        var v = StatsMath.Read(t["loss/value_avg"], t["val/clipfrac_avg"]);
        return (loss.MoveToOuter(), new ValueLossStats(v[0], v[1]));
    }

    /// <summary>
    /// The PPO loss of one micro-batch: <c>loss = pg + vf_coef · vf</c> (TRL PPOv2).
    /// logprobs, oldLogprobs, advantages, responseMask [B, T]; values, oldValues, returns, valueMask [B, T];
    /// entropy [B, T] or null (<see cref="Logprobs.EntropyFromLogits"/>, for <c>policy/entropy_avg</c>) → (scalar, stats).
    /// </summary>
    public static (Tensor Loss, PpoStats Stats) Loss(Tensor logprobs, Tensor oldLogprobs, Tensor advantages, Tensor responseMask,
        Tensor values, Tensor oldValues, Tensor returns, Tensor valueMask, double clipRange, double vfClipRange, double vfCoef,
        double? dualClip = null, Tensor? entropy = null)
    {
        using var scope = Torch.NewScope();
        var (pgTerms, p) = PolicyTerms(logprobs, oldLogprobs, advantages, responseMask, clipRange, dualClip);
        var pg = Aggregation.Reduce(pgTerms, responseMask, LossAggregation.Bnpo);
        var (vf, v) = ValueTerms(values, oldValues, returns, valueMask, vfClipRange);
        var loss = pg + vf * vfCoef;
        // One host read for every statistic.
        var r = StatsMath.Read(p["policy/approxkl_avg"], p["policy/clipfrac_avg"], pg, p["val/ratio"], p["val/ratio_var"], v["loss/value_avg"],
            v["val/clipfrac_avg"], entropy is null ? Torch.Scalar(0.0, ScalarType.Float64) : Masked.Mean(entropy.Detach(), responseMask));
        var ps = new PolicyLossStats(r[0], r[1], r[2], r[3], r[4]);
        var vs = new ValueLossStats(r[5], r[6]);
        double? ent = entropy is null ? null : r[7];
        return (loss.MoveToOuter(), new PpoStats(ps, vs, ent));
    }
}
