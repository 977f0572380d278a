using Rlhf.Core.Losses;
using Rlhf.Core.Rollouts;
using Rlhf.Torch;

namespace Rlhf.Core.Objectives;

using Torch = Rlhf.Torch.Torch;

/// <summary>
/// Online DPO as async_rlhf / TRL OnlineDPOTrainer computes it: per prompt, the highest-scored sample is chosen and the lowest
/// rejected; the DPO loss of each pair against the reference, one unit per pair, mean over pairs.
/// </summary>
/// <param name="beta">β of the DPO loss.</param>
/// <param name="lossType">Sigmoid, IPO or hinge.</param>
public sealed class OnlineDpoObjective(double beta, DpoLossType lossType) : IObjective
{
    /// <summary>β.</summary>
    public double Beta { get; } = beta;
    /// <summary>The DPO loss.</summary>
    public DpoLossType LossType { get; } = lossType;

    /// <summary>
    /// Selects each prompt's pair (<see cref="Dpo.SelectPairs"/>, reading the scores once) and keeps only those rows, each pair's
    /// chosen row first; a pair's rows share their group id, so mini-batches that keep groups together keep pairs together.
    /// </summary>
    public ObjectiveBatch Prepare(RolloutBatch batch)
    {
        var pairs = Dpo.SelectPairs(batch.Scores, batch.GroupIds);
        var rows = new long[2 * pairs.Count];
        for (var p = 0; p < pairs.Count; p++)
        {
            rows[2 * p] = pairs.Chosen[p];
            rows[2 * p + 1] = pairs.Rejected[p];
        }
        return new ObjectiveBatch(batch.Rows(rows));
    }

    /// <summary>The pairs of a prepared batch: in each group, the first row is chosen and the second rejected.</summary>
    public static PreferencePairs Pairs(RolloutBatch prepared)
    {
        var members = Groups.Members(prepared.GroupIds);
        foreach (var g in members)
            Guard.That(g.Length == 2, $"an online-DPO batch holds two rows per prompt (chosen, rejected); the group of row {g[0]} has {g.Length}");
        return new PreferencePairs(members.Select(g => (long)g[0]).ToArray(), members.Select(g => (long)g[1]).ToArray());
    }

    /// <summary>One DPO term per pair, with TRL's reward stats.</summary>
    public ObjectiveTerms Terms(ObjectiveBatch batch, Tensor logprobs, Tensor oldLogprobs, Tensor? values)
    {
        using var scope = Torch.NewScope();
        var b = batch.Rollouts;
        var pairs = Pairs(b);
        var (terms, stats) = Dpo.OnlineTerms(logprobs, b.RefLogprobs, b.ResponseMask(), pairs, Beta, LossType);
        var mask = Torch.OnesLike(terms).Gt(0);
        return new ObjectiveTerms(terms.MoveToOuter(), null, mask.MoveToOuter(), ObjectiveUnit.Pair, LossAggregation.Bnpo, stats.MoveToOuter(), pairs);
    }
}

/// <summary>
/// Online best-of-K as async_rlhf's OnlineBoKTrainer computes it: keep each prompt's best-scored sample and train on it with the
/// negative log-likelihood summed over its tokens, mean over sequences.
/// </summary>
public sealed class BestOfKObjective : IObjective
{
    /// <summary>Keeps each prompt's best row (<see cref="BestOfK.Select"/>, reading the scores once).</summary>
    public ObjectiveBatch Prepare(RolloutBatch batch) => new(batch.Rows(BestOfK.Select(batch.Scores, batch.GroupIds)));

    /// <summary>One term <c>−Σ_t m lp</c> per kept sequence, with <c>logps/chosen</c>.</summary>
    public ObjectiveTerms Terms(ObjectiveBatch batch, Tensor logprobs, Tensor oldLogprobs, Tensor? values)
    {
        using var scope = Torch.NewScope();
        var seq = Masked.Sum(logprobs, batch.Rollouts.ResponseMask(), 1);     // [N]
        var terms = (-seq).Unsqueeze(1);
        var stats = new TensorStats().Add("logps/chosen", seq.Mean());
        var mask = Torch.OnesLike(terms).Gt(0);
        return new ObjectiveTerms(terms.MoveToOuter(), null, mask.MoveToOuter(), ObjectiveUnit.Sequence, LossAggregation.Bnpo, stats.MoveToOuter());
    }
}

/// <summary>
/// Supervised fine-tuning (TRL SFTTrainer): the token terms <c>−lp</c> over the completion mask, mean over all its tokens
/// (<see cref="LossAggregation.Bnpo"/>, as TRL's cross-entropy averages). Offline: no generator, so no off-policy correction;
/// reduce with <see cref="Objective.Reduce"/>.
/// </summary>
public sealed class SftObjective
{
    /// <summary>Token terms with <c>logps/mean</c>. logprobs [B, T] (with grad), mask [B, T] → terms.</summary>
    public ObjectiveTerms Terms(Tensor logprobs, Tensor mask)
    {
        Guard.Rank(logprobs, 2, nameof(logprobs));
        Guard.SameShape(logprobs, nameof(logprobs), mask, nameof(mask));
        using var scope = Torch.NewScope();
        var stats = new TensorStats().Add("logps/mean", Masked.Mean(logprobs.Detach(), mask));
        return new ObjectiveTerms((-logprobs).MoveToOuter(), null, Guard.BoolMask(mask).Clone().MoveToOuter(), ObjectiveUnit.Token, LossAggregation.Bnpo,
            stats.MoveToOuter());
    }
}

/// <summary>Offline DPO (TRL DPOTrainer) on a preference data set: one term per pair, mean over pairs, TRL's reward stats.</summary>
/// <param name="beta">β.</param>
/// <param name="lossType">Sigmoid, IPO (length-normalised logps) or hinge.</param>
/// <param name="labelSmoothing">cDPO label smoothing s ∈ [0, 0.5) (sigmoid).</param>
public sealed class OfflineDpoObjective(double beta, DpoLossType lossType, double labelSmoothing)
{
    /// <summary>β.</summary>
    public double Beta { get; } = beta;
    /// <summary>The DPO loss.</summary>
    public DpoLossType LossType { get; } = lossType;
    /// <summary>Label smoothing.</summary>
    public double LabelSmoothing { get; } = labelSmoothing;

    /// <summary>Pair terms (<see cref="Dpo.OfflineTerms"/>). chosen* [P, Tc], rejected* [P, Tr] → terms.</summary>
    public ObjectiveTerms Terms(Tensor chosenLogprobs, Tensor chosenRefLogprobs, Tensor chosenMask, Tensor rejectedLogprobs, Tensor rejectedRefLogprobs,
        Tensor rejectedMask)
    {
        using var scope = Torch.NewScope();
        var (terms, stats) = Dpo.OfflineTerms(chosenLogprobs, chosenRefLogprobs, chosenMask, rejectedLogprobs, rejectedRefLogprobs, rejectedMask,
            Beta, LossType, LabelSmoothing);
        var mask = Torch.OnesLike(terms).Gt(0);
        return new ObjectiveTerms(terms.MoveToOuter(), null, mask.MoveToOuter(), ObjectiveUnit.Pair, LossAggregation.Bnpo, stats.MoveToOuter());
    }
}

/// <summary>Bradley–Terry reward-model training (TRL RewardTrainer), see <see cref="RewardModelLoss.Compute"/>.</summary>
/// <param name="centerCoefficient">TRL <c>center_rewards_coefficient</c>, or null.</param>
/// <param name="useMargin">Subtract each pair's margin from r_c − r_r (Llama 2).</param>
public sealed class RewardModelObjective(double? centerCoefficient, bool useMargin)
{
    /// <summary>Centering coefficient, or null.</summary>
    public double? CenterCoefficient { get; } = centerCoefficient;
    /// <summary>Whether margins are used.</summary>
    public bool UseMargin { get; } = useMargin;

    /// <summary>The loss of P pairs. rewardsChosen, rewardsRejected [P] (with grad), margin [P] (needed when <see cref="UseMargin"/>) → (scalar, stats).</summary>
    public (Tensor Loss, RewardModelStats Stats) Loss(Tensor rewardsChosen, Tensor rewardsRejected, Tensor? margin)
    {
        Guard.That(!UseMargin || margin is not null, "reward_model.use_margin is on: every pair needs a margin");
        return RewardModelLoss.Compute(rewardsChosen, rewardsRejected, UseMargin ? margin : null, CenterCoefficient);
    }
}
