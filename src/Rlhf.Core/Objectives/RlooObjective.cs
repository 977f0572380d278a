using Rlhf.Core.Losses;
using Rlhf.Core.Rollouts;
using Rlhf.Torch;

namespace Rlhf.Core.Objectives;

using Torch = Rlhf.Torch.Torch;

/// <summary>
/// RLOO as async_rlhf / TRL RLOOTrainer computes it: sequence reward <c>score − kl_coef · Σ k1</c>, leave-one-out advantages,
/// clipped sequence-level ratio, mean over sequences.
/// </summary>
/// <param name="clipRangeLow">ε_low of the sequence-ratio clip.</param>
/// <param name="clipRangeHigh">ε_high.</param>
/// <param name="klCoef">Coefficient of the sequence KL in the reward.</param>
/// <param name="normalizeAdvantages">Whiten the advantages over the batch (current TRL).</param>
public sealed class RlooObjective(double clipRangeLow, double clipRangeHigh, double klCoef, bool normalizeAdvantages) : IObjective
{
    /// <summary>ε_low.</summary>
    public double ClipRangeLow { get; } = clipRangeLow;
    /// <summary>ε_high.</summary>
    public double ClipRangeHigh { get; } = clipRangeHigh;
    /// <summary>KL coefficient.</summary>
    public double KlCoef { get; } = klCoef;
    /// <summary>Whether advantages are whitened.</summary>
    public bool NormalizeAdvantages { get; } = normalizeAdvantages;

    /// <summary>RLHF reward from the rollout logprobs, leave-one-out advantages [B].</summary>
    public ObjectiveBatch Prepare(RolloutBatch batch)
    {
        using var scope = Torch.NewScope();
        using var _ = Torch.NoGrad();
        var reward = Rloo.RlhfReward(batch.Scores, batch.Logprobs, batch.RefLogprobs, batch.ResponseMask(), KlCoef);
        return new ObjectiveBatch(batch, Rloo.Advantages(reward, batch.GroupIds, NormalizeAdvantages).MoveToOuter());
    }

    /// <summary>One clipped term per sequence.</summary>
    public ObjectiveTerms Terms(ObjectiveBatch batch, Tensor logprobs, Tensor oldLogprobs, Tensor? values)
    {
        using var scope = Torch.NewScope();
        var (terms, stats) = Rloo.SequenceTerms(logprobs, oldLogprobs, batch.Advantages!, batch.Rollouts.ResponseMask(), ClipRangeLow, ClipRangeHigh);
        var mask = Torch.OnesLike(terms).Gt(0);
        return new ObjectiveTerms(terms.MoveToOuter(), null, mask.MoveToOuter(), ObjectiveUnit.Sequence, LossAggregation.Bnpo, stats.MoveToOuter());
    }
}
