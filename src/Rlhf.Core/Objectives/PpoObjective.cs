using Rlhf.Core.Losses;
using Rlhf.Core.Rollouts;
using Rlhf.Torch;

namespace Rlhf.Core.Objectives;

using Torch = Rlhf.Torch.Torch;

/// <summary>
/// PPO as TRL PPOv2 (used by async_rlhf) computes it: KL-shaped token rewards with the score one past <c>seq_len</c>, GAE over the
/// critic's values, whitened advantages, clipped token ratio (masked mean), and <c>vf_coef</c> × the clipped value loss.
/// </summary>
/// <param name="clipRange">ε of the policy ratio clip.</param>
/// <param name="vfClipRange">ε_v of the value clip around the rollout values.</param>
/// <param name="vfCoef">Weight of the value loss.</param>
/// <param name="gamma">Discount γ.</param>
/// <param name="lambda">GAE λ.</param>
/// <param name="klCoef">Coefficient of the per-token KL penalty in the rewards.</param>
/// <param name="klEstimator">Estimator of the per-token KL (TRL: unclamped).</param>
/// <param name="whitenRewards">Whiten the token rewards (shift_mean = false) before GAE.</param>
/// <param name="dualClip">Dual-clip constant c &gt; 1 (Ye et al. 2020; OpenRLHF), or null.</param>
public sealed class PpoObjective(double clipRange, double vfClipRange, double vfCoef, double gamma, double lambda, double klCoef,
    KlEstimator klEstimator, bool whitenRewards, double? dualClip = null) : IObjective
{
    /// <summary>ε.</summary>
    public double ClipRange { get; } = clipRange;
    /// <summary>ε_v.</summary>
    public double VfClipRange { get; } = vfClipRange;
    /// <summary>Value-loss weight.</summary>
    public double VfCoef { get; } = vfCoef;
    /// <summary>γ.</summary>
    public double Gamma { get; } = gamma;
    /// <summary>λ.</summary>
    public double Lambda { get; } = lambda;
    /// <summary>KL coefficient.</summary>
    public double KlCoef { get; } = klCoef;
    /// <summary>KL estimator.</summary>
    public KlEstimator KlEstimator { get; } = klEstimator;
    /// <summary>Whether rewards are whitened.</summary>
    public bool WhitenRewards { get; } = whitenRewards;
    /// <summary>Dual clip, or null.</summary>
    public double? DualClip { get; } = dualClip;

    /// <summary>Token rewards, GAE and whitened advantages from the rollout values (TRL PPOv2). Needs <see cref="RolloutBatch.Values"/>.</summary>
    public ObjectiveBatch Prepare(RolloutBatch batch)
    {
        Guard.That(batch.Values is not null, "PPO needs the critic's values in the rollout batch");
        using var scope = Torch.NewScope();
        using var _ = Torch.NoGrad();
        var (rewards, _) = Rewards.TokenRewards(batch.Kl(KlEstimator), batch.Scores, batch.EndIndex(), KlCoef);
        var adv = Ppo.Advantages(rewards, batch.Values!, batch.ResponseMask(), batch.ValueMask(), Gamma, Lambda, WhitenRewards);
        return new ObjectiveBatch(batch, adv.Advantages.MoveToOuter(), adv.Returns.MoveToOuter());
    }

    /// <summary>Clipped token terms (masked mean) plus <c>vf_coef · vf</c> as the auxiliary scalar; needs fresh <paramref name="values"/>.</summary>
    public ObjectiveTerms Terms(ObjectiveBatch batch, Tensor logprobs, Tensor oldLogprobs, Tensor? values)
    {
        Guard.That(values is not null, "PPO's objective needs the critic's fresh values");
        using var scope = Torch.NewScope();
        var b = batch.Rollouts;
        var mask = b.ResponseMask();
        var (terms, stats) = Ppo.PolicyTerms(logprobs, oldLogprobs, batch.Advantages!, mask, ClipRange, DualClip);
        var (vf, vs) = Ppo.ValueTerms(values!, b.Values!, batch.Returns!, b.ValueMask(), VfClipRange);
        stats.AddRange(vs);
        return new ObjectiveTerms(terms.MoveToOuter(), null, mask.MoveToOuter(), ObjectiveUnit.Token, LossAggregation.Bnpo, stats.MoveToOuter(),
            Auxiliary: (vf * VfCoef).MoveToOuter());
    }
}
